//! The HTTP gateway of `warden serve`: request → policy decision → reply or
//! forward.
//!
//! For each request the gateway collects the body (capped), builds the
//! request context ([`OwnedRequest`]), asks the [`PolicyRuntime`] for one
//! decision, and then either sends the decision's reply or applies its header
//! edits (remove, then set) and forwards to the decision's upstream (else the
//! gateway's default, see [`upstream`]). Fail closed: if the guest fails, the
//! client gets a 503 and nothing is forwarded. Nothing here panics on client
//! input; logs carry the method, the path (never the query, which may hold a
//! client secret) and the decision's reason, never a header value.
//!
//! The policy can be replaced while the gateway serves ([`Gateway::replace_policy`]):
//! each request takes the current policy once, at its start, and finishes on
//! it; the previous policy's instances go when its last request does.

pub mod upstream;

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::error::HostError;
use crate::request::OwnedRequest;
use crate::runtime::PolicyRuntime;
pub use upstream::{Upstream, Upstreams};
use warden_engine::{Decision, Forward, Reply};

/// Boxed error of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The gateway's response body.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// The largest request body the gateway reads (larger → 413).
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;
/// How long a client may take to send its headers or its body.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The gateway: a policy, a default upstream and the HTTP client.
#[derive(Debug)]
pub struct Gateway {
    policy: ArcSwap<Served>,
    default_upstream: Upstream,
    upstreams: Upstreams,
    body_limit: usize,
    /// Token requests decided off the workers at once (see `decide`).
    token_slots: Semaphore,
}

/// A policy being served, with its routes' upstreams parsed once, when it
/// is loaded, rather than per request.
#[derive(Debug)]
struct Served {
    runtime: Arc<PolicyRuntime>,
    /// Each route's `upstream` text → the upstream, or why it is unusable.
    upstreams: HashMap<String, Result<Upstream, String>>,
}

impl Served {
    fn new(runtime: Arc<PolicyRuntime>) -> Arc<Served> {
        let upstreams = runtime
            .routes()
            .iter()
            .map(|r| {
                let parsed = r.upstream.parse::<Upstream>().map_err(|e| e.to_string());
                (r.upstream.clone(), parsed)
            })
            .collect();
        Arc::new(Served { runtime, upstreams })
    }

    /// The upstream a decision names (parsed now only if no route declared it).
    fn upstream(&self, name: &str) -> Result<Cow<'_, Upstream>, String> {
        match self.upstreams.get(name) {
            Some(Ok(upstream)) => Ok(Cow::Borrowed(upstream)),
            Some(Err(e)) => Err(e.clone()),
            None => name
                .parse::<Upstream>()
                .map(Cow::Owned)
                .map_err(|e| e.to_string()),
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
            policy: ArcSwap::new(Served::new(runtime)),
            default_upstream,
            upstreams: Upstreams::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            token_slots: Semaphore::new(2 * default_workers()),
        }
    }

    /// The policy requests are decided with now.
    pub fn policy(&self) -> Arc<PolicyRuntime> {
        Arc::clone(&self.policy.load().runtime)
    }

    /// Decide new requests with `runtime` from now on; requests already
    /// being decided finish on the policy they started with. Returns that
    /// previous policy.
    pub fn replace_policy(&self, runtime: Arc<PolicyRuntime>) -> Arc<PolicyRuntime> {
        Arc::clone(&self.policy.swap(Served::new(runtime)).runtime)
    }

    /// Change the request body cap.
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    /// Serve HTTP/1.1 on `listener` until `shutdown` completes, then stop
    /// accepting and let open connections finish (at most 10 s).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
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
            let gateway = Arc::clone(&self);
            let service = service_fn(move |req| {
                let gateway = Arc::clone(&gateway);
                async move { Ok::<_, Infallible>(gateway.handle(req, Some(peer)).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            });
        }
        drop(listener);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open at shutdown"),
        }
        Ok(())
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
        policy: &Arc<Served>,
        context: OwnedRequest,
    ) -> (OwnedRequest, Result<Decision, HostError>) {
        if !policy.runtime.may_issue_tokens(&context.path) {
            let decision = policy.runtime.decide(&context);
            return (context, decision);
        }
        let Ok(_slot) = self.token_slots.acquire().await else {
            let closed = HostError::Unavailable("the gateway is shutting down");
            return (context, Err(closed));
        };
        let runtime = Arc::clone(&policy.runtime);
        let (method, path) = (context.method.clone(), context.path.clone());
        match tokio::task::spawn_blocking(move || {
            let decision = runtime.decide(&context);
            (context, decision)
        })
        .await
        {
            Ok(done) => done,
            Err(_) => {
                let context = OwnedRequest {
                    method,
                    path,
                    ..Default::default()
                };
                let failed = HostError::Unavailable("the token request's thread failed");
                (context, Err(failed))
            }
        }
    }

    /// Handle one request.
    pub async fn handle<B>(&self, req: Request<B>, peer: Option<SocketAddr>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = req.into_parts();
        // Two Host headers would let the policy and the upstream disagree on
        // the host (RFC 9112 §3.2: a server must answer 400).
        if parts.headers.get_all(header::HOST).iter().count() > 1 {
            return plain(StatusCode::BAD_REQUEST, "more than one Host header\n");
        }
        // Hop-by-hop headers end here, before the policy decides and edits:
        // a client's `Connection: x-mse-consumer` must not remove what the
        // policy sets.
        upstream::strip_hop_by_hop(&mut parts.headers);
        // An absolute-form target (`GET http://host/path`) overrides `Host`
        // (RFC 9112 §3.2.2). Make them agree, so that the policy decides on
        // the same host the upstream will see.
        if let Some(authority) = parts.uri.authority()
            && let Ok(value) = HeaderValue::from_str(authority.as_str())
        {
            parts.headers.insert(header::HOST, value);
        }
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.body_limit as u64) {
            return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
        }
        let body =
            match tokio::time::timeout(READ_TIMEOUT, Limited::new(body, self.body_limit).collect())
                .await
            {
                Ok(Ok(collected)) => collected.to_bytes(),
                Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                    return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
                }
                Ok(Err(e)) => {
                    tracing::debug!("could not read request body: {e}");
                    return plain(StatusCode::BAD_REQUEST, "could not read request body\n");
                }
                Err(_) => return plain(StatusCode::REQUEST_TIMEOUT, "request body timed out\n"),
            };

        let context = request_context(&parts, &body, peer);
        // This request finishes on the policy it starts with.
        let policy = self.policy.load_full();
        let (context, decision) = self.decide(&policy, context).await;
        match decision {
            Ok(Decision::Reply(reply)) => {
                tracing::info!(method = %context.method, path = %context.path, status = reply.status, reason = %reply.reason, "reply");
                reply_response(reply)
            }
            Ok(Decision::Forward(forward)) => {
                let upstream = match forward.upstream.as_deref().map(|u| policy.upstream(u)) {
                    None => Cow::Borrowed(&self.default_upstream),
                    Some(Ok(upstream)) => upstream,
                    Some(Err(e)) => {
                        tracing::warn!("policy named an unusable upstream: {e}");
                        return plain(StatusCode::BAD_GATEWAY, "bad gateway\n");
                    }
                };
                tracing::info!(
                    method = %context.method, path = %context.path,
                    consumer = %forward.consumer.as_deref().unwrap_or("-"),
                    route = %forward.route.as_deref().unwrap_or("-"),
                    %upstream, "forward"
                );
                let Some(req) = forwarded_request(parts, body, &forward, peer) else {
                    return plain(StatusCode::SERVICE_UNAVAILABLE, "service unavailable\n");
                };
                self.upstreams.send(&upstream, req).await
            }
            Err(e) => {
                tracing::error!(method = %context.method, path = %context.path, "policy evaluation failed: {e}");
                plain(StatusCode::SERVICE_UNAVAILABLE, "service unavailable\n")
            }
        }
    }
}

/// The request context the policy decides on.
pub fn request_context(
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    peer: Option<SocketAddr>,
) -> OwnedRequest {
    let authority = parts
        .headers
        .get(header::HOST)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    OwnedRequest {
        method: parts.method.as_str().to_owned(),
        scheme: "http".to_owned(),
        authority,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        route: None,
        service: None,
        peer: peer.map(|p| p.to_string()),
    }
}

/// The request to send upstream: the client's, with the decision's edits
/// applied (removals first, then sets). `None` if an edit is not a valid
/// header: failing closed beats forwarding without a header the policy set.
fn forwarded_request(
    mut parts: hyper::http::request::Parts,
    body: Bytes,
    forward: &Forward,
    peer: Option<SocketAddr>,
) -> Option<Request<Bytes>> {
    for name in &forward.remove_headers {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            parts.headers.remove(name);
        }
    }
    for (name, value) in &forward.set_headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                parts.headers.insert(name, value);
            }
            _ => {
                tracing::error!(header = %name, "policy set an invalid header; not forwarding");
                return None;
            }
        }
    }
    if let Some(peer) = peer {
        let ip = peer.ip().to_string();
        let xff = match parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip,
        };
        if let Ok(value) = HeaderValue::from_str(&xff) {
            parts.headers.insert("x-forwarded-for", value);
        }
    }
    Some(Request::from_parts(parts, body))
}

/// The HTTP response for a policy reply. A status or header the guest got
/// wrong turns into a 503 rather than a guess.
fn reply_response(reply: Reply) -> Response<Body> {
    let Ok(status) = StatusCode::from_u16(reply.status) else {
        tracing::error!(
            status = reply.status,
            "policy replied with an invalid status"
        );
        return plain(StatusCode::SERVICE_UNAVAILABLE, "service unavailable\n");
    };
    let mut response = Response::new(full(reply.body));
    *response.status_mut() = status;
    for (name, value) in &reply.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                response.headers_mut().append(name, value);
            }
            _ => {
                tracing::error!(header = %name, "policy replied with an invalid header");
                return plain(StatusCode::SERVICE_UNAVAILABLE, "service unavailable\n");
            }
        }
    }
    response
}

pub(crate) fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A short plain-text response.
pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests;
