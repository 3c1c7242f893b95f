//! The HTTP gateway of `warden serve`, in phases (as pingora's `ProxyHttp`):
//!
//! 0. **connection** ([`conn`]): HTTP/1.1 or h2 with prior knowledge (h2c)
//!    on the plain listener; on the TLS one ([`Gateway::serve_tls`]),
//!    HTTP/1.1 or h2 as ALPN agrees. The scheme is `https` there, else what
//!    a trusted proxy's `X-Forwarded-Proto` says;
//! 1. **request filter** ([`filter`]): on the head alone — two `Host`
//!    headers refused, hop-by-hop headers removed, an absolute-form target
//!    made to agree with `Host`;
//! 2. **decide**: the [`PolicyRuntime`] decides on the head
//!    ([`OwnedRequest::from_head`]); only when the decision asks for the
//!    body (`need-body`: a POST to the token endpoint) is a bounded body
//!    read ([`body`]) and the request decided again with it;
//! 3. **upstream request** ([`upstream`]): a reply is answered
//!    ([`reply`]); a forward gets the decision's header edits and goes to
//!    the decision's upstream (else the gateway's default), its body
//!    streaming through unread;
//! 4. **response**: the upstream's, hop-by-hop headers removed, streamed
//!    back (trailers too); a WebSocket the upstream accepted is bridged
//!    ([`tunnel`]); Warden's own answers to a gRPC call are put in gRPC's
//!    terms ([`grpc`]);
//! 5. **logging**: one line per decision.
//!
//! Fail closed: if the guest fails, the client gets a 503 and nothing is
//! forwarded. Nothing here panics on client input; logs carry the method,
//! the path (never the query, which may hold a client secret) and the
//! decision's reason, never a header value.
//!
//! The policy can be replaced while the gateway serves ([`Gateway::replace_policy`]):
//! each request takes the current policy once, at its start, and finishes on
//! it; the previous policy's instances go when its last request does.

mod body;
mod conn;
mod fetch;
mod filter;
mod grpc;
mod header_cache;
mod pool;
mod reply;
mod stream;
mod tunnel;
pub mod upstream;
mod workers;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::Request;
use hyper::header::{HeaderMap, HeaderName};
use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::bindings::GuestDecision;
use crate::error::HostError;
use crate::metrics::metrics;
use crate::request::OwnedRequest;
use crate::runtime::PolicyRuntime;
use crate::tls::TrustedProxies;
pub use reply::Response;
pub use tunnel::TunnelLimits;
pub use upstream::Upstreams;
use warden_engine::{Decision, Notes, Upstream, UpstreamRef};
pub use workers::{Listeners, Workers};

/// Boxed error of bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub use stream::Body;

/// The most body a decision may ask to read, whatever the guest says.
const MAX_DECISION_BODY: u32 = 1 << 20;

/// The gateway: a policy, a default upstream and the HTTP client.
#[derive(Debug)]
pub struct Gateway {
    policy: ArcSwap<PolicyRuntime>,
    default_upstream: Upstream,
    upstreams: Upstreams,
    /// Token requests decided off the workers at once (see `decide`).
    token_slots: Semaphore,
    /// Peers whose `X-Forwarded-Proto` (and user header) counts.
    trusted_proxies: TrustedProxies,
    /// Where a trusted proxy names the end user it authenticated
    /// (`--user-header`): read from those peers only, removed from all.
    user_header: Option<HeaderName>,
    /// The policy's outbound calls in flight (introspection).
    fetches: std::sync::Arc<fetch::Fetches>,
    /// How long a WebSocket may stay open.
    tunnel_limits: TunnelLimits,
}

/// The client end of a connection; its `X-Forwarded-For` entry is
/// formatted once, not per request.
#[derive(Debug, Clone)]
struct Peer {
    addr: SocketAddr,
    forwarded_for: hyper::header::HeaderValue,
}

impl Peer {
    fn new(addr: SocketAddr) -> Peer {
        let ip = addr.ip().to_string();
        Peer {
            addr,
            // An IP address's text is always a valid header value.
            forwarded_for: hyper::header::HeaderValue::from_str(&ip)
                .unwrap_or(hyper::header::HeaderValue::from_static("unknown")),
        }
    }
}

/// Worker threads of `warden serve` by default: one per CPU the process may
/// run on (its affinity mask, e.g. under `taskset`).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl Gateway {
    /// A gateway deciding with `runtime` and forwarding to `default_upstream`
    /// when the decision names none.
    pub fn new(runtime: Arc<PolicyRuntime>, default_upstream: Upstream) -> Self {
        Gateway {
            policy: ArcSwap::new(runtime),
            default_upstream,
            upstreams: Upstreams::default(),
            token_slots: Semaphore::new(2 * default_workers()),
            trusted_proxies: TrustedProxies::default(),
            user_header: None,
            fetches: std::sync::Arc::default(),
            tunnel_limits: TunnelLimits::default(),
        }
    }

    /// Close WebSockets after these idle and total times.
    pub fn with_tunnel_limits(mut self, limits: TunnelLimits) -> Self {
        self.tunnel_limits = limits;
        self
    }

    /// Take the end user from this header of a trusted proxy's requests
    /// (`--user-header`); the header is removed from every request.
    pub fn with_user_header(mut self, header: Option<HeaderName>) -> Self {
        self.user_header = header;
        self
    }

    /// Believe `X-Forwarded-Proto` from these peers (`--trusted-proxy`).
    pub fn with_trusted_proxies(mut self, trusted: TrustedProxies) -> Self {
        self.trusted_proxies = trusted;
        self
    }

    /// The policy requests are decided with now.
    pub fn policy(&self) -> Arc<PolicyRuntime> {
        self.policy.load_full()
    }

    /// Decide new requests with `runtime` from now on; requests already
    /// being decided finish on the policy they started with. Returns that
    /// previous policy.
    pub fn replace_policy(&self, runtime: Arc<PolicyRuntime>) -> Arc<PolicyRuntime> {
        self.policy.swap(runtime)
    }

    /// Serve HTTP/1.1 on `listener` until `shutdown` completes, then stop
    /// accepting and let open connections finish (at most 10 s).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.accept(listener, None, shutdown).await
    }

    /// Serve HTTPS on `listener` (TLS with `tls`; HTTP/1.1 or h2 as ALPN
    /// agrees) until `shutdown` completes, as [`Self::serve`].
    pub async fn serve_tls(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        self.accept(listener, Some(acceptor), shutdown).await
    }

    async fn accept(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let drain = conn::Drain::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // e.g. EMFILE: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let client = Peer::new(peer);
            let gateway = Arc::clone(&self);
            let secure = tls.is_some();
            let tunnels = drain.watcher();
            let service = service_fn(move |req| {
                let gateway = Arc::clone(&gateway);
                let (tunnels, client) = (tunnels.clone(), client.clone());
                async move {
                    Ok::<_, Infallible>(
                        gateway
                            .handle_with(req, Some(&client), secure, Some(tunnels))
                            .await,
                    )
                }
            });
            let (tls, stop) = (tls.clone(), drain.watcher());
            tokio::spawn(async move {
                let served = match tls {
                    // Plain: HTTP/1.1, or h2 with prior knowledge (h2c).
                    None => match conn::sniff(&stream).await {
                        Some(protocol) => conn::serve(stream, protocol, service, stop).await,
                        None => {
                            return tracing::debug!(%peer, "no request within the header timeout");
                        }
                    },
                    // TLS: h2 or HTTP/1.1, as ALPN agreed.
                    Some(acceptor) => {
                        let handshake = tokio::time::timeout(
                            conn::HEADER_READ_TIMEOUT,
                            acceptor.accept(stream),
                        );
                        let stream = match handshake.await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                return tracing::debug!(%peer, "TLS handshake failed: {e}");
                            }
                            Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                        };
                        let protocol = match stream.get_ref().1.alpn_protocol() {
                            Some(b"h2") => conn::Protocol::Http2,
                            _ => conn::Protocol::Http1,
                        };
                        conn::serve(stream, protocol, service, stop).await
                    }
                };
                if let Err(e) = served {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            });
        }
        drop(listener);
        tokio::select! {
            () = drain.shutdown() => {}
            () = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open at shutdown"),
        }
        Ok(())
    }

    /// The scheme the client used: `https` on a TLS connection; on a plain
    /// one, what a trusted proxy's `X-Forwarded-Proto` says (`http` or
    /// `https`), else `http`. The second value: TLS ended at that proxy.
    fn scheme(
        &self,
        headers: &hyper::HeaderMap,
        peer: Option<SocketAddr>,
        tls: bool,
    ) -> (&'static str, bool) {
        if tls {
            return ("https", false);
        }
        let trusted = peer.is_some_and(|p| self.trusted_proxies.contains(p.ip()));
        // The last value: the one the nearest (trusted) proxy added, when it
        // appends rather than replaces.
        let forwarded = headers
            .get_all("x-forwarded-proto")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim);
        match forwarded {
            Some(proto) if trusted && proto.eq_ignore_ascii_case("https") => ("https", true),
            _ => ("http", false),
        }
    }

    /// The end user a trusted proxy named in the `--user-header` header
    /// (one field, UTF-8, not blank); the header is removed whoever sent
    /// it, so that neither the policy nor an upstream sees a client's own.
    fn trusted_user(&self, headers: &mut HeaderMap, peer: Option<SocketAddr>) -> Option<String> {
        let name = self.user_header.as_ref()?;
        let trusted = peer.is_some_and(|p| self.trusted_proxies.contains(p.ip()));
        let mut values = headers.get_all(name).iter();
        let user = match (values.next(), values.next()) {
            // Several fields: which one the proxy set is unknown, so none.
            (Some(v), None) if trusted => std::str::from_utf8(v.as_bytes())
                .ok()
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned),
            _ => None,
        };
        headers.remove(name);
        user
    }

    /// Ask `policy`: on this worker thread, or off it for a token request.
    ///
    /// A decision runs inline, as a proxy-wasm filter runs in Envoy: it takes
    /// microseconds, it is bounded (10 ms of CPU time by default, then it
    /// fails closed), and it never waits on tokio (the guest does no WASI
    /// stream I/O). Handing it to another thread cost two context switches
    /// per request, most of the gateway's overhead when cores are few. A
    /// request the policy may answer as its token endpoint is the exception:
    /// checking a client secret stored as a password hash takes tens of
    /// milliseconds on purpose, so it runs on the blocking pool, a bounded
    /// number at a time, and never stalls the requests a worker is serving.
    async fn decide(
        &self,
        policy: &Arc<PolicyRuntime>,
        context: OwnedRequest,
    ) -> (OwnedRequest, Result<(GuestDecision, Notes), HostError>) {
        if !policy.may_issue_tokens(context.path()) {
            let started = std::time::Instant::now();
            let decision = policy.decide_in_place(&context);
            metrics()
                .guest_call_seconds
                .observe(started.elapsed().as_secs_f64());
            return (context, decision);
        }
        let Ok(_slot) = self.token_slots.acquire().await else {
            let closed = HostError::Unavailable("the gateway is shutting down");
            return (context, Err(closed));
        };
        let runtime = Arc::clone(policy);
        let (method, path) = (context.method().to_owned(), context.path().to_owned());
        match tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let decision = runtime.decide_in_place(&context);
            metrics()
                .guest_call_seconds
                .observe(started.elapsed().as_secs_f64());
            (context, decision)
        })
        .await
        {
            Ok(done) => done,
            Err(_) => {
                let context = OwnedRequest::default()
                    .with_method(&method)
                    .with_path(&path);
                let failed = HostError::Unavailable("the token request's thread failed");
                (context, Err(failed))
            }
        }
    }

    /// Handle one request that came from `peer`, over TLS or not, phase by
    /// phase (see the module documentation). A WebSocket upgrade is not
    /// offered here (no connection to bridge it on): it goes as a plain
    /// request.
    pub async fn handle<B>(&self, req: Request<B>, peer: Option<SocketAddr>, tls: bool) -> Response
    where
        B: Into<Body>,
    {
        let peer = peer.map(Peer::new);
        self.handle_with(req, peer.as_ref(), tls, None).await
    }

    /// [`Self::handle`], with the connection's shutdown watch for a
    /// WebSocket it may bridge; a gRPC call gets Warden's own answers in
    /// gRPC's terms.
    async fn handle_with<B>(
        &self,
        req: Request<B>,
        peer: Option<&Peer>,
        tls: bool,
        tunnels: Option<tokio::sync::watch::Receiver<bool>>,
    ) -> Response
    where
        B: Into<Body>,
    {
        let grpc = grpc::is_call(req.headers());
        let response = self.respond(req, peer, tls, tunnels).await;
        if grpc {
            grpc::answer(response).await
        } else {
            response
        }
    }

    async fn respond<B>(
        &self,
        req: Request<B>,
        client: Option<&Peer>,
        tls: bool,
        tunnels: Option<tokio::sync::watch::Receiver<bool>>,
    ) -> Response
    where
        B: Into<Body>,
    {
        let started = std::time::Instant::now();
        let peer = client.map(|c| c.addr);
        let (mut parts, body) = req.into_parts();
        let body: Body = body.into();
        let hop = match filter::request_filter(&mut parts) {
            Ok(hop) => hop,
            Err(refused) => return *refused,
        };
        // The client's side of a WebSocket upgrade, taken before the head
        // goes upstream.
        let upgrade = match (hop.websocket, tunnels) {
            (true, Some(stop)) => parts
                .extensions
                .remove::<hyper::upgrade::OnUpgrade>()
                .map(|client| (client, stop)),
            _ => None,
        };
        let (scheme, proxy_terminated) = self.scheme(&parts.headers, peer, tls);
        let trusted_user = self.trusted_user(&mut parts.headers, peer);
        // This request finishes on the policy it starts with.
        let policy = self.policy.load_full();
        let mut context = OwnedRequest::from_head(&parts, peer, scheme, trusted_user.as_deref());
        context.proxy_terminated = proxy_terminated;
        let (context, decision) = self.decide(&policy, context).await;
        // A token of an external issuer names a key the host's copy of its
        // JWK Set lacks: fetch it again (bounded, awaited here, never on a
        // worker thread), then decide again, once.
        let (context, decision) = match decision {
            Ok((Decision::RefreshKeys { url }, _)) => {
                let remote = std::sync::Arc::clone(policy.options().keys.remote());
                if !remote.refetch(&url).await {
                    tracing::error!(%url, "the policy asked for a key set it does not list");
                    return reply::unavailable();
                }
                let mut context = context;
                context.keys_refreshed = true;
                self.decide(&policy, context).await
            }
            other => (context, other),
        };
        // The decision needs an outbound answer (token introspection): made
        // while this request waits — no worker waits — then decided again.
        let (context, decision) = match decision {
            Ok((Decision::Fetch(call), _)) => {
                let mut context = context;
                context.fetched = Some(if policy.may_fetch(&call.url) {
                    let client = policy.options().outbound.clone();
                    self.fetches.fetch(&client, call).await
                } else {
                    tracing::error!(url = %call.url.split('?').next().unwrap_or_default(), "the policy asked for a call to an endpoint it does not declare");
                    crate::request::FetchOutcome::Failed(
                        "endpoint not declared by the policy".into(),
                    )
                });
                self.decide(&policy, context).await
            }
            other => (context, other),
        };
        let (context, decision, body) = match decision {
            Ok((Decision::NeedBody { max_bytes }, _)) => {
                let max_bytes = max_bytes.min(MAX_DECISION_BODY);
                let read = match body::read_bounded(&parts.headers, body, max_bytes).await {
                    Ok(read) => read,
                    Err(refused) => return refused,
                };
                let mut context = context;
                context.body = Some(read.clone());
                let (context, decision) = self.decide(&policy, context).await;
                (context, decision, Body::full(read))
            }
            other => (context, other, body),
        };
        let latency = started.elapsed();
        let m = metrics();
        let (decision, notes) = match decision {
            Ok((decision, notes)) => (Ok(decision), notes),
            Err(e) => (Err(e), Notes::default()),
        };
        // A forward is read where the guest packed it (nothing copied);
        // one that does not read fails closed like any failed guest call.
        let packed;
        let decision = match decision.map(Decision::into_forward) {
            Ok(Ok(forward)) => {
                packed = forward;
                packed
                    .read()
                    .map(Decision::Forward)
                    .map_err(HostError::BadDecision)
            }
            Ok(Err(other)) => Ok(other),
            Err(e) => Err(e),
        };
        let rule = policy.rule_name(&notes).unwrap_or("-");
        let token = notes.token.as_str();
        if matches!(decision, Ok(Decision::Reply(_) | Decision::Forward(_))) {
            m.decision_seconds.observe(latency.as_secs_f64());
            m.token_checks.with_label_values(&[token]).inc();
        }
        let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        match decision {
            Ok(Decision::Reply(reply)) => {
                let error_key = reply
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("x-error-key"))
                    .map_or("-", |(_, v)| v.as_str());
                tracing::info!(method = %context.method(), path = %context.path(), rule, status = reply.status, reason = %reply.reason, error_key, token = %token, latency_us, "reply");
                m.requests
                    .with_label_values(&[
                        crate::metrics::status_label(reply.status).as_ref(),
                        "-",
                        rule,
                    ])
                    .inc();
                if reply.status == 200 && policy.may_issue_tokens(context.path()) {
                    let grant = crate::metrics::grant_of(context.query(), context.body.as_deref());
                    m.tokens_issued.with_label_values(&[grant]).inc();
                }
                reply::policy_reply(reply)
            }
            Ok(Decision::Forward(forward)) => {
                let upstream = forward
                    .upstream
                    .unwrap_or_else(|| self.default_upstream.borrowed());
                let route = forward.route.unwrap_or("-");
                tracing::info!(
                    method = %context.method(), path = %context.path(),
                    consumer = %forward.consumer.unwrap_or("-"),
                    route, rule, %upstream, token = %token, latency_us, "forward"
                );
                m.requests
                    .with_label_values(&["forward", route, rule])
                    .inc();
                let body = match forward.body {
                    Some(replaced) => Body::full(replaced.to_vec()),
                    None => body,
                };
                let Some(req) = upstream::upstream_request(
                    parts,
                    body,
                    &forward,
                    client.map(|c| &c.forwarded_for),
                    scheme,
                ) else {
                    return reply::unavailable();
                };
                match (upgrade, upstream) {
                    (None, _) => self.upstreams.send(upstream, req, hop.te_trailers).await,
                    (Some((client, stop)), UpstreamRef::Http(http)) => {
                        tunnel::open(client, http, req, self.tunnel_limits, stop).await
                    }
                    (Some(_), _) => {
                        tracing::warn!(%upstream, "a WebSocket upgrade for an upstream that takes none");
                        reply::plain(
                            hyper::StatusCode::BAD_GATEWAY,
                            "this upstream does not take WebSocket upgrades\n",
                        )
                    }
                }
            }
            Ok(Decision::NeedBody { .. }) => {
                tracing::error!(method = %context.method(), path = %context.path(), "the policy asked for the body again after reading it");
                reply::unavailable()
            }
            Ok(Decision::RefreshKeys { url }) => {
                tracing::error!(method = %context.method(), path = %context.path(), %url, "the policy asked for a key set again after it was fetched");
                reply::unavailable()
            }
            Ok(Decision::Fetch(_)) => {
                tracing::error!(method = %context.method(), path = %context.path(), "the policy asked for another call after its answer");
                reply::unavailable()
            }
            Err(e) => {
                tracing::error!(method = %context.method(), path = %context.path(), "policy evaluation failed: {e}");
                reply::unavailable()
            }
        }
    }
}

#[cfg(test)]
mod pool_tests;
#[cfg(test)]
mod tests;
