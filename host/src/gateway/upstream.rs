//! The upstream phases: the request sent upstream (the client's, with the
//! decision's edits and the body streaming through unread unless a decision
//! read it), and the response coming back.
//!
//! `echo` answers with a JSON description of what it received (so a demo or
//! a test can see `x-mse-consumer`); it drains the body and reports its
//! length. An HTTP upstream gets the request with hop-by-hop headers
//! stripped, in HTTP/1.1 on a connection of the worker's own pool
//! ([`super::pool`]), or in HTTP/2 for an `h2c`
//! upstream (gRPC): one multiplexed connection, bodies streaming both ways
//! and trailers passed through (`grpc-status`), `TE: trailers` kept when
//! the client sent it, `:authority` the upstream's. A connection failure
//! becomes a 502, no response headers within 30 s a 504.

use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::http::uri::PathAndQuery;
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use warden_engine::packed::ForwardView;
use warden_engine::{HttpUpstreamRef, UpstreamRef};

use super::body::READ_TIMEOUT;
use super::filter::strip_hop_by_hop;
use super::reply::{Response, plain};
use super::{Body, header_cache, pool};

/// How long an upstream may take to answer (headers) before a 504.
pub(super) const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to an upstream may take before a 502.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// h2c upstreams: how often an idle connection is pinged.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(30);
/// Header names set on every forwarded request, built once: inserting by
/// `&'static str` copies a custom name into a new `HeaderName` each time
/// (one allocation per request that the gateway's profile showed).
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The request to send upstream: the client's, with the decision's edits
/// applied (removals first, then sets), `X-Forwarded-For` extended by
/// `forwarded_for` (the peer's address) and
/// `X-Forwarded-Proto` set to the scheme the gateway decided on.
/// `None` if an edit is not a valid header: failing closed beats forwarding
/// without a header the policy set.
pub(super) fn upstream_request(
    mut parts: Parts,
    body: Body,
    forward: &ForwardView<'_>,
    forwarded_for: Option<&HeaderValue>,
    scheme: &'static str,
) -> Option<Request<Body>> {
    // Removed by `&str`: the map looks a name up without building a
    // `HeaderName` (a custom name would be an allocation per removal per
    // request); a name that is not a valid header name is simply not there.
    for name in forward.remove_headers.iter() {
        parts.headers.remove(name);
    }
    for (name, value) in forward.set_headers.iter() {
        match (header_cache::name(name), header_cache::value(value)) {
            (Some(name), Some(value)) => {
                parts.headers.insert(name, value);
            }
            _ => {
                tracing::error!(header = %name, "policy set an invalid header; not forwarding");
                return None;
            }
        }
    }
    if let Some(ip) = forwarded_for {
        let xff = match parts.headers.get(&X_FORWARDED_FOR) {
            Some(prev) => {
                let mut joined = Vec::with_capacity(prev.len() + 2 + ip.len());
                joined.extend_from_slice(prev.as_bytes());
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(ip.as_bytes());
                HeaderValue::from_maybe_shared(Bytes::from(joined)).ok()
            }
            None => Some(ip.clone()),
        };
        if let Some(value) = xff {
            parts.headers.insert(X_FORWARDED_FOR, value);
        }
    }
    parts
        .headers
        .insert(X_FORWARDED_PROTO, HeaderValue::from_static(scheme));
    if forward.query.is_some() || forward.path.is_some() {
        let path = forward.path.unwrap_or(parts.uri.path());
        if !path.starts_with('/') {
            tracing::error!("policy set a path that does not start with `/`; not forwarding");
            return None;
        }
        let query = forward.query.or(parts.uri.query()).unwrap_or("");
        let target = if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{query}")
        };
        let mut uri = parts.uri.clone().into_parts();
        match target.parse() {
            Ok(pq) => uri.path_and_query = Some(pq),
            Err(_) => {
                tracing::error!("policy set an invalid query; not forwarding");
                return None;
            }
        }
        parts.uri = Uri::from_parts(uri).ok()?;
    }
    if let Some(replaced) = forward.body {
        // The gateway passes the replacement whole: its length is known.
        parts.headers.remove(header::TRANSFER_ENCODING);
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(replaced.len()));
    }
    Some(Request::from_parts(parts, body))
}

/// The URI of a request to `upstream`: its authority and base path, then
/// the request's path and query. `None` (logged) if the decision named an
/// upstream that is not a URL: the policy compiler checked the authority
/// and base path, so a guest that sent anything else (an authority the URI
/// does not keep as it is, `x@evil`) gets no request through.
pub(super) fn upstream_uri(upstream: HttpUpstreamRef<'_>, parts: &Parts) -> Option<Uri> {
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let target = format!(
        "http://{}{}{path_and_query}",
        upstream.authority, upstream.base_path
    );
    let uri = target
        .parse::<Uri>()
        .ok()
        .filter(|uri| uri.authority().map(|a| a.as_str()) == Some(upstream.authority))
        .filter(|_| !upstream.authority.contains('@'));
    if uri.is_none() {
        tracing::error!(upstream = %upstream.authority, "the decision named an upstream that is not a URL");
    }
    uri
}

/// Sends forwarded requests; holds the h2c client (HTTP/1.1 connections
/// are pooled per worker thread, [`pool`]).
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// h2c (gRPC) upstreams; HTTP/1.1 ones go through [`pool`].
    h2c: Client<HttpConnector, Body>,
}

impl Default for Upstreams {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        Upstreams {
            h2c: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .timer(TokioTimer::new())
                .http2_keep_alive_interval(H2_KEEP_ALIVE)
                .http2_keep_alive_timeout(H2_KEEP_ALIVE)
                .build(connector),
        }
    }
}

impl Upstreams {
    /// Send `req` (already edited by the policy) to `upstream`; the
    /// response, its hop-by-hop headers removed. `te_trailers`: the client
    /// said it takes trailers (`TE: trailers`), which an h2c upstream is told.
    pub async fn send(
        &self,
        upstream: UpstreamRef<'_>,
        req: Request<Body>,
        te_trailers: bool,
    ) -> Response {
        match upstream {
            UpstreamRef::Echo => echo(req).await,
            UpstreamRef::Http(http) => self.proxy(http, req, None).await,
            UpstreamRef::H2c(http) => self.proxy(http, req, Some(te_trailers)).await,
        }
    }

    /// `h2c`: `Some(te_trailers)` for an HTTP/2 upstream.
    async fn proxy(
        &self,
        upstream: HttpUpstreamRef<'_>,
        req: Request<Body>,
        h2c: Option<bool>,
    ) -> Response {
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let sent = match h2c {
            None => {
                let Some(target) = origin_form(upstream, &parts) else {
                    return plain(StatusCode::BAD_GATEWAY, "bad gateway\n");
                };
                parts.uri = target;
                parts.version = hyper::Version::HTTP_11;
                let mut out = Request::from_parts(parts, body);
                pool::ensure_host(&mut out, upstream.authority);
                let sending = pool::send(upstream.authority, out);
                match tokio::time::timeout(UPSTREAM_TIMEOUT, sending).await {
                    Ok(Ok(response)) => Ok(Ok(response.map(Body::pooled))),
                    Ok(Err(pool::Failure::NotAuthority)) => {
                        tracing::error!(upstream = %upstream.authority, "the decision named an upstream that is not a URL");
                        return plain(StatusCode::BAD_GATEWAY, "bad gateway\n");
                    }
                    Ok(Err(pool::Failure::Failed(e))) => Ok(Err(e)),
                    Err(elapsed) => Err(elapsed),
                }
            }
            Some(te_trailers) => {
                let Some(uri) = upstream_uri(upstream, &parts) else {
                    return plain(StatusCode::BAD_GATEWAY, "bad gateway\n");
                };
                parts.uri = uri;
                parts.version = hyper::Version::HTTP_2;
                // `:authority` is the upstream's (from the URI); a `Host`
                // naming another would make the request malformed
                // (RFC 9113 §8.3.1).
                parts.headers.remove(header::HOST);
                if te_trailers {
                    parts
                        .headers
                        .insert(header::TE, HeaderValue::from_static("trailers"));
                }
                let out = Request::from_parts(parts, body);
                match tokio::time::timeout(UPSTREAM_TIMEOUT, self.h2c.request(out)).await {
                    Ok(Ok(response)) => Ok(Ok(response.map(Body::boxed))),
                    Ok(Err(e)) => Ok(Err(e.into())),
                    Err(elapsed) => Err(elapsed),
                }
            }
        };
        match sent {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                hyper::Response::from_parts(parts, body)
            }
            Ok(Err(e)) => {
                tracing::warn!(upstream = %upstream.authority, "upstream request failed: {e}");
                plain(StatusCode::BAD_GATEWAY, "bad gateway\n")
            }
            Err(_) => {
                tracing::warn!(upstream = %upstream.authority, "upstream timed out");
                plain(StatusCode::GATEWAY_TIMEOUT, "gateway timeout\n")
            }
        }
    }
}

/// The target of an HTTP/1.1 request to `upstream`, in origin form: its
/// base path, then the request's path and query. The authority is checked
/// when a connection to it is made ([`pool`]).
fn origin_form(upstream: HttpUpstreamRef<'_>, parts: &Parts) -> Option<Uri> {
    let target = match (upstream.base_path, parts.uri.path_and_query()) {
        ("", Some(pq)) => Ok(pq.clone()),
        (base, pq) => {
            PathAndQuery::from_str(&format!("{base}{}", pq.map_or("/", PathAndQuery::as_str)))
        }
    };
    match target {
        Ok(pq) => Some(Uri::from(pq)),
        Err(_) => {
            tracing::error!(upstream = %upstream.authority, "the decision named a base path that is not one");
            None
        }
    }
}

/// The echo upstream: 200 `application/json` with what it received (the
/// body drained and counted, never kept).
async fn echo(req: Request<Body>) -> Response {
    let (parts, mut body) = req.into_parts();
    let mut body_bytes: u64 = 0;
    let drained = tokio::time::timeout(READ_TIMEOUT, async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                body_bytes += data.len() as u64;
            }
        }
        Ok::<_, super::BoxError>(())
    })
    .await;
    if !matches!(drained, Ok(Ok(()))) {
        return plain(StatusCode::BAD_REQUEST, "could not read request body\n");
    }
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_owned(), values.join(", ").into());
    }
    let description = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "body_bytes": body_bytes,
    });
    let mut response = hyper::Response::new(Body::full(description.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
