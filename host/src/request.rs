//! [`OwnedRequest`]: the request context the host hands to the guest.
//!
//! The gateway fills one per HTTP request from the request head
//! ([`OwnedRequest::from_head`], headers packed straight from hyper's
//! `HeaderMap` into the block the WIT `request` record carries); tests and
//! `warden explain` build one by hand. [`crate::PolicyRuntime::decide`] lends
//! it to the guest without copying on the host side. The body is absent
//! until a decision asks for it (`need-body`).

use std::net::SocketAddr;

use bytes::Bytes;
use hyper::header;

/// One HTTP request, owned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedRequest {
    /// Upper-case method, e.g. `GET`.
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// `https` only because a trusted proxy said so (`X-Forwarded-Proto`).
    pub proxy_terminated: bool,
    /// Host header / :authority, possibly with a port.
    pub authority: String,
    /// Path without the query string.
    pub path: String,
    /// Raw query string without the leading `?`.
    pub query: String,
    /// The headers, in arrival order, packed as the WIT request carries
    /// them ([`warden_engine::push_header`]).
    headers: Vec<u8>,
    /// The body, once read; `None` until a decision asks for it.
    pub body: Option<Bytes>,
    /// The host's route name, when it has one.
    pub route: Option<String>,
    /// The host's upstream service name, when it has one.
    pub service: Option<String>,
    /// Client address.
    pub peer: Option<String>,
    /// The end user a trusted proxy authenticated (`--user-header`).
    pub trusted_user: Option<String>,
    /// The JWK Set a `RefreshKeys` decision named was fetched again.
    pub keys_refreshed: bool,
    /// The answer to a `Fetch` decision.
    pub fetched: Option<FetchOutcome>,
}

/// What the host got for a `Fetch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    Response { status: u16, body: Bytes },
    Failed(String),
}

impl OwnedRequest {
    /// A request for `target` (`/path?query`) with `method`, scheme `http`
    /// and authority `localhost`.
    pub fn new(method: &str, target: &str) -> Self {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        OwnedRequest {
            method: method.to_ascii_uppercase(),
            scheme: "http".into(),
            authority: "localhost".into(),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            query: query.into(),
            ..Default::default()
        }
    }

    /// `GET target`.
    pub fn get(target: &str) -> Self {
        Self::new("GET", target)
    }

    /// `POST target` with `body`.
    pub fn post(target: &str, body: impl Into<Bytes>) -> Self {
        OwnedRequest {
            body: Some(body.into()),
            ..Self::new("POST", target)
        }
    }

    /// The context of a request the gateway received over `scheme` (`http`
    /// or `https`): its head only. Header values that are not UTF-8 are
    /// converted lossily (the policy compares text); the `Host` header, else
    /// the target's authority (h2's `:authority`), is the authority.
    pub fn from_head(
        parts: &hyper::http::request::Parts,
        peer: Option<SocketAddr>,
        scheme: &str,
    ) -> Self {
        let authority = match parts.headers.get(header::HOST) {
            Some(host) => String::from_utf8_lossy(host.as_bytes()).into_owned(),
            None => parts
                .uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
        };
        let size: usize = parts
            .headers
            .iter()
            .map(|(n, v)| 8 + n.as_str().len() + v.len())
            .sum();
        let mut headers = Vec::with_capacity(size);
        for (name, value) in &parts.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            warden_engine::push_header(&mut headers, name.as_str(), &value);
        }
        OwnedRequest {
            method: parts.method.as_str().to_owned(),
            scheme: scheme.to_owned(),
            proxy_terminated: false,
            authority,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or("").to_owned(),
            headers,
            body: None,
            route: None,
            service: None,
            peer: peer.map(|p| p.to_string()),
            trusted_user: None,
            keys_refreshed: false,
            fetched: None,
        }
    }

    /// Add a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        warden_engine::push_header(&mut self.headers, name, value);
        self
    }

    /// Add headers, in order.
    pub fn with_headers<N: AsRef<str>, V: AsRef<str>>(
        mut self,
        headers: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        for (name, value) in headers {
            warden_engine::push_header(&mut self.headers, name.as_ref(), value.as_ref());
        }
        self
    }

    /// Replace the header block with `block`, as it is: for tests of what
    /// the guest does with a block a faulty host packed (it answers 400).
    pub fn with_packed_headers(mut self, block: Vec<u8>) -> Self {
        self.headers = block;
        self
    }

    /// Set the authority (Host).
    pub fn with_authority(mut self, authority: &str) -> Self {
        self.authority = authority.into();
        self
    }

    /// The packed header block, as the guest receives it.
    pub fn packed_headers(&self) -> &[u8] {
        &self.headers
    }

    /// The headers as borrowed (name, value) pairs (empty if the block is
    /// malformed, which only a hand-made block can be).
    pub fn header_pairs(&self) -> Vec<(&str, &str)> {
        warden_engine::unpack_headers(&self.headers).unwrap_or_default()
    }

    /// The first value of header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_pairs()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_is_packed_straight_from_the_header_map() {
        let req = hyper::Request::get("/a/b?x=1")
            .header("host", "api.example.com:8080")
            .header("x-two", "1")
            .header("x-two", "2")
            .header(
                "x-bytes",
                hyper::header::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
            )
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let ctx = OwnedRequest::from_head(&parts, Some("127.0.0.1:5".parse().unwrap()), "https");
        assert_eq!(
            (
                ctx.method.as_str(),
                ctx.authority.as_str(),
                ctx.path.as_str(),
                ctx.query.as_str()
            ),
            ("GET", "api.example.com:8080", "/a/b", "x=1")
        );
        assert_eq!(ctx.scheme, "https");
        assert_eq!(ctx.body, None);
        assert_eq!(
            ctx.header_pairs(),
            [
                ("host", "api.example.com:8080"),
                ("x-two", "1"),
                ("x-two", "2"),
                ("x-bytes", "caf\u{fffd}")
            ]
        );
        assert_eq!(ctx.peer.as_deref(), Some("127.0.0.1:5"));
    }
}
