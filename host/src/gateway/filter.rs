//! The request filter: the first phase, on the request head alone, before
//! any policy decision and before a byte of the body is read.
//!
//! It refuses heads that would let the policy and the upstream disagree on
//! what the request is (two `Host` headers), removes hop-by-hop headers (a
//! client's `Connection: x-mse-consumer` must not remove what the policy
//! sets), and makes an absolute-form target and `Host` agree. What the
//! removed headers asked for that Warden does carry out is kept in [`Hop`]:
//! a WebSocket upgrade, and `TE: trailers` (gRPC's, RFC 9113 §8.2.2).

use hyper::StatusCode;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;

use super::reply::{Response, plain};

/// What the hop-by-hop headers of a request asked for, that the gateway
/// carries to the upstream itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Hop {
    /// `Connection: upgrade` + `Upgrade: websocket` on an HTTP/1.1 `GET`.
    pub(super) websocket: bool,
    /// `TE: trailers`: the client takes trailers (gRPC clients send it).
    pub(super) te_trailers: bool,
}

/// Filter the head in place: what its hop-by-hop headers asked for, or the
/// answer for a head refused here.
pub(super) fn request_filter(parts: &mut Parts) -> Result<Hop, Box<Response>> {
    // Two Host headers would let the policy and the upstream disagree on
    // the host (RFC 9112 §3.2: a server must answer 400).
    if parts.headers.get_all(header::HOST).iter().count() > 1 {
        return Err(Box::new(plain(
            StatusCode::BAD_REQUEST,
            "more than one Host header\n",
        )));
    }
    let hop = Hop {
        websocket: parts.method == hyper::Method::GET
            && parts.version == hyper::Version::HTTP_11
            && has_token(&parts.headers, header::CONNECTION, "upgrade")
            && has_token(&parts.headers, header::UPGRADE, "websocket"),
        te_trailers: has_token(&parts.headers, header::TE, "trailers"),
    };
    // Hop-by-hop headers end here, before the policy decides and edits.
    strip_hop_by_hop(&mut parts.headers);
    // h2 may split `cookie` into several fields; an HTTP/1.1 upstream must
    // get one (RFC 9113 §8.2.3).
    if parts.version == hyper::Version::HTTP_2 {
        join_cookies(&mut parts.headers);
    }
    // An absolute-form target (`GET http://host/path`) overrides `Host`
    // (RFC 9112 §3.2.2). Make them agree, so that the policy decides on
    // the same host the upstream will see.
    if let Some(authority) = parts.uri.authority()
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(header::HOST, value);
    }
    Ok(hop)
}

/// Whether a comma-separated header lists `token` (any case).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Join several `cookie` fields into one, with `"; "`.
fn join_cookies(headers: &mut HeaderMap) {
    let cookies: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if cookies.len() < 2 {
        return;
    }
    if let Ok(joined) = HeaderValue::from_bytes(&cookies.join(&b"; "[..])) {
        headers.insert(header::COOKIE, joined);
    }
}

/// Remove hop-by-hop headers (RFC 9110 §7.6.1), including any the
/// `Connection` header names.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // The values are shared, not copied, and the names they list removed
    // by `&str`: making a `HeaderName` of `keep-alive`, which nginx and most
    // upstreams name on every response, would be an allocation each time.
    if let Some(first) = headers.get(header::CONNECTION).cloned() {
        // More than one `Connection` line is rare: only then a vector.
        let more: Vec<HeaderValue> = headers
            .get_all(header::CONNECTION)
            .iter()
            .skip(1)
            .cloned()
            .collect();
        for value in std::iter::once(&first).chain(&more) {
            for name in value.to_str().unwrap_or_default().split(',') {
                headers.remove(name.trim());
            }
        }
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
    fn h2_cookie_fields_are_joined() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        join_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2");
    }

    #[test]
    fn websocket_upgrades_and_te_trailers_are_kept_as_flags() {
        let head = |method: &str, headers: &[(&str, &str)]| {
            let mut req = hyper::Request::builder().method(method).uri("/ws");
            for (n, v) in headers {
                req = req.header(*n, *v);
            }
            let (mut parts, ()) = req.body(()).unwrap().into_parts();
            let hop = request_filter(&mut parts).ok().unwrap();
            assert!(!parts.headers.contains_key(header::UPGRADE));
            hop
        };
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ];
        assert!(head("GET", &ws).websocket);
        assert!(!head("POST", &ws).websocket);
        assert!(!head("GET", &[("upgrade", "websocket")]).websocket);
        assert!(!head("GET", &[("connection", "upgrade"), ("upgrade", "h2c")]).websocket);
        assert!(head("POST", &[("te", "trailers")]).te_trailers);
        assert!(!head("POST", &[("te", "gzip")]).te_trailers);
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
        // Several `Connection` lines, names in any case, and tokens that
        // name no header: every header named goes, nothing else.
        let mut h = HeaderMap::new();
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("X-One,, bad name"),
        );
        h.append(header::CONNECTION, HeaderValue::from_static(" x-two "));
        // A value that is not visible ASCII is not read at all.
        let unreadable = HeaderValue::from_bytes(b"x-three, \xe9").unwrap();
        h.append(header::CONNECTION, unreadable);
        for name in ["x-one", "x-two", "x-three"] {
            h.insert(name, HeaderValue::from_static("1"));
        }
        strip_hop_by_hop(&mut h);
        assert_eq!(
            h.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
            ["x-three"]
        );
    }
}
