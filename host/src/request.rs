//! [`OwnedRequest`]: the request context the host hands to the guest.
//!
//! The gateway (or a test, or `warden explain`) fills one per HTTP request;
//! [`crate::PolicyRuntime::decide`] lends it to the guest without copying its
//! strings on the host side. It mirrors the WIT `request` record and the
//! engine's borrowed [`warden_engine::Request`].

/// One HTTP request, owned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedRequest {
    /// Upper-case method, e.g. `GET`.
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Host header / :authority, possibly with a port.
    pub authority: String,
    /// Path without the query string.
    pub path: String,
    /// Raw query string without the leading `?`.
    pub query: String,
    /// Header names in any case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// The host's route name, when it has one.
    pub route: Option<String>,
    /// The host's upstream service name, when it has one.
    pub service: Option<String>,
    /// Client address.
    pub peer: Option<String>,
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
    pub fn post(target: &str, body: impl Into<Vec<u8>>) -> Self {
        OwnedRequest {
            body: body.into(),
            ..Self::new("POST", target)
        }
    }

    /// Add a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the authority (Host).
    pub fn with_authority(mut self, authority: &str) -> Self {
        self.authority = authority.into();
        self
    }

    /// The first value of header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The headers packed as the WIT request carries them
    /// ([`warden_engine::pack_headers`]).
    pub fn packed_headers(&self) -> Vec<u8> {
        warden_engine::pack_headers(self.header_pairs())
    }

    /// The headers as borrowed (name, value) pairs.
    pub fn header_pairs(&self) -> Vec<(&str, &str)> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    /// The engine's borrowed view (for evaluating natively, e.g. to
    /// compare), with `headers` from [`Self::header_pairs`].
    pub fn as_engine<'a>(
        &'a self,
        headers: &'a [(&'a str, &'a str)],
    ) -> warden_engine::Request<'a> {
        warden_engine::Request {
            method: &self.method,
            scheme: &self.scheme,
            authority: &self.authority,
            path: &self.path,
            query: &self.query,
            headers,
            body: &self.body,
            route: self.route.as_deref(),
            service: self.service.as_deref(),
            peer: self.peer.as_deref(),
        }
    }
}
