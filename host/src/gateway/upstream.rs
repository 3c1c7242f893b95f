//! Where forwarded requests go: the built-in echo upstream, or an HTTP
//! upstream reached through a reverse-proxy client.
//!
//! The gateway calls [`Upstreams::send`] after it has applied the decision's
//! header edits. `echo` answers with a JSON description of exactly what it
//! received (so a demo or a test can see `x-mse-consumer`); an
//! `http://host:port[/base]` upstream gets the request with hop-by-hop
//! headers stripped, and a connection failure becomes a 502.

use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{Body, plain};
use crate::error::HostError;

/// How long an upstream may take to answer (headers) before a 504.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// A place to forward requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// The built-in echo upstream.
    Echo,
    /// An HTTP server: `http://host:port` plus an optional base path.
    Http { authority: String, base: String },
}

impl FromStr for Upstream {
    type Err = HostError;

    fn from_str(s: &str) -> Result<Self, HostError> {
        if s == "echo" {
            return Ok(Upstream::Echo);
        }
        let bad = |why: &str| HostError::Config(format!("invalid upstream `{s}`: {why}"));
        let uri: Uri = s
            .parse()
            .map_err(|_| bad("expected `echo` or `http://host:port[/base]`"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(bad("https upstreams are not supported yet; use http")),
            _ => return Err(bad("expected `echo` or `http://host:port[/base]`")),
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?.to_string();
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        if uri.query().is_some() {
            return Err(bad("a query string is not allowed"));
        }
        let base = uri.path().trim_end_matches('/').to_owned();
        Ok(Upstream::Http { authority, base })
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::Echo => f.write_str("echo"),
            Upstream::Http { authority, base } => write!(f, "http://{authority}{base}"),
        }
    }
}

/// Sends forwarded requests; holds the pooled HTTP client.
#[derive(Debug, Clone)]
pub struct Upstreams {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Upstreams {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        Upstreams {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

impl Upstreams {
    /// Send `req` (already edited by the policy) to `upstream`.
    pub async fn send(&self, upstream: &Upstream, req: Request<Bytes>) -> Response<Body> {
        match upstream {
            Upstream::Echo => echo(&req),
            Upstream::Http { authority, base } => self.proxy(authority, base, req).await,
        }
    }

    async fn proxy(&self, authority: &str, base: &str, req: Request<Bytes>) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let uri = match format!("http://{authority}{base}{path_and_query}").parse::<Uri>() {
            Ok(uri) => uri,
            Err(_) => return plain(StatusCode::BAD_GATEWAY, "bad gateway\n"),
        };
        parts.uri = uri;
        parts.version = hyper::Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        let out = Request::from_parts(parts, Full::new(body));
        match tokio::time::timeout(UPSTREAM_TIMEOUT, self.client.request(out)).await {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.map_err(Into::into).boxed_unsync())
            }
            Ok(Err(e)) => {
                tracing::warn!(upstream = %authority, "upstream request failed: {e}");
                plain(StatusCode::BAD_GATEWAY, "bad gateway\n")
            }
            Err(_) => {
                tracing::warn!(upstream = %authority, "upstream timed out");
                plain(StatusCode::GATEWAY_TIMEOUT, "gateway timeout\n")
            }
        }
    }
}

/// The echo upstream: 200 `application/json` with what it received.
fn echo(req: &Request<Bytes>) -> Response<Body> {
    let mut headers = serde_json::Map::new();
    for name in req.headers().keys() {
        let values: Vec<String> = req
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_owned(), values.join(", ").into());
    }
    let body = serde_json::json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.uri().query().unwrap_or(""),
        "headers": headers,
    });
    let mut response = Response::new(super::full(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Remove hop-by-hop headers (RFC 9110 §7.6.1), including any the
/// `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstreams() {
        assert_eq!("echo".parse::<Upstream>().unwrap(), Upstream::Echo);
        assert_eq!(
            "http://127.0.0.1:9000/api/".parse::<Upstream>().unwrap(),
            Upstream::Http {
                authority: "127.0.0.1:9000".into(),
                base: "/api".into()
            }
        );
        assert_eq!(
            "http://localhost:9000"
                .parse::<Upstream>()
                .unwrap()
                .to_string(),
            "http://localhost:9000"
        );
        for bad in [
            "",
            "ftp://x",
            "https://x",
            "http://u:p@x",
            "x y",
            "http://x/?a=1",
            "/path",
        ] {
            assert!(bad.parse::<Upstream>().is_err(), "{bad}");
        }
    }

    #[test]
    fn strips_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("5"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }
}
