//! [`OwnedRequest`]: the request context the host hands to the guest.
//!
//! The gateway fills one per HTTP request from the request head
//! ([`OwnedRequest::from_head`]): the text fields and the headers are packed
//! straight from hyper's request parts into the one buffer the WIT
//! `request.head` carries ([`warden_engine::packed`]), so that neither the
//! gateway nor the boundary allocates per field. Tests and `warden explain`
//! build one by hand with the `with_*` methods. [`crate::PolicyRuntime::decide`]
//! lends it to the guest without copying on the host side. The body is absent
//! until a decision asks for it (`need-body`).

use std::cell::RefCell;
use std::io::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use hyper::header;
use warden_engine::packed::{self, Beside, HeadBuilder, HeadField, RequestHead};

/// One HTTP request, owned: its head packed, the rest beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRequest {
    /// Method, scheme, authority, path, query, route, service, peer and
    /// trusted user, then the header block, in the WIT `request.head` form.
    /// Only this module writes it, so its fields always read back.
    head: HeadBuffer,
    /// `https` only because a trusted proxy said so (`X-Forwarded-Proto`).
    pub proxy_terminated: bool,
    /// The body, once read; `None` until a decision asks for it.
    pub body: Option<Bytes>,
    /// The JWK Set a `RefreshKeys` decision named was fetched again.
    pub keys_refreshed: bool,
    /// The answer to a `Fetch` decision.
    pub fetched: Option<FetchOutcome>,
}

/// A packed head's buffer. The gateway takes it from its thread's spares
/// and it goes back there when the request is done, so that a worker packs
/// one request after another into a few buffers instead of allocating one
/// per request: at most [`SPARE_HEADS`] per thread, none over
/// [`SPARE_HEAD_BYTES`] (a head with a large cookie is simply freed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct HeadBuffer(Vec<u8>);

/// Spare head buffers kept per thread.
const SPARE_HEADS: usize = 64;
/// The largest head buffer kept as a spare.
const SPARE_HEAD_BYTES: usize = 8 * 1024;

thread_local! {
    static SPARES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

impl HeadBuffer {
    /// One of this thread's spares (emptied by its next writer), or a new
    /// buffer.
    fn spare() -> Vec<u8> {
        SPARES
            .try_with(|spares| spares.try_borrow_mut().ok()?.pop())
            .ok()
            .flatten()
            .unwrap_or_default()
    }
}

impl Drop for HeadBuffer {
    fn drop(&mut self) {
        if self.0.capacity() == 0 || self.0.capacity() > SPARE_HEAD_BYTES {
            return;
        }
        let buf = std::mem::take(&mut self.0);
        // At thread exit the spares may be gone already: the buffer is freed.
        let _ = SPARES.try_with(|spares| {
            if let Ok(mut spares) = spares.try_borrow_mut()
                && spares.len() < SPARE_HEADS
            {
                spares.push(buf);
            }
        });
    }
}

/// `bytes` as text, invalid UTF-8 replaced. Header values are nearly always
/// ASCII: checked first with `from_utf8` (word at a time), which is several
/// times faster than `from_utf8_lossy`'s chunk walk (0.9 % of the gateway's
/// samples, once per header, before it).
fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// What the host got for a `Fetch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    Response { status: u16, body: Bytes },
    Failed(String),
}

impl Default for OwnedRequest {
    /// `GET /` over `http`, with an empty authority and no headers.
    fn default() -> Self {
        OwnedRequest::from_fields(RequestHead {
            method: "GET",
            scheme: "http",
            path: "/",
            ..RequestHead::default()
        })
    }
}

impl OwnedRequest {
    fn from_fields(head: RequestHead<'_>) -> Self {
        OwnedRequest {
            head: HeadBuffer(head.pack()),
            proxy_terminated: false,
            body: None,
            keys_refreshed: false,
            fetched: None,
        }
    }

    /// A request for `target` (`/path?query`) with `method`, scheme `http`
    /// and authority `localhost`.
    pub fn new(method: &str, target: &str) -> Self {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let method = method.to_ascii_uppercase();
        OwnedRequest::from_fields(RequestHead {
            method: &method,
            scheme: "http",
            authority: "localhost",
            path: if path.is_empty() { "/" } else { path },
            query,
            ..RequestHead::default()
        })
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
    /// or `https`): its head only, packed in one buffer as it is read.
    /// Header values that are not UTF-8 are converted lossily (the policy
    /// compares text); the `Host` header, else the target's authority (h2's
    /// `:authority`), is the authority. `trusted_user` is the end user a
    /// trusted proxy named (`--user-header`).
    pub fn from_head(
        parts: &hyper::http::request::Parts,
        peer: Option<SocketAddr>,
        scheme: &str,
        trusted_user: Option<&str>,
    ) -> Self {
        let headers: usize = parts
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum();
        let path = parts.uri.path();
        let query = parts.uri.query().unwrap_or("");
        let text = 64 + path.len() + query.len() + headers;
        let mut b = HeadBuilder::in_buffer(HeadBuffer::spare(), parts.headers.len(), text);
        b.field(Some(parts.method.as_str().as_bytes()));
        b.field(Some(scheme.as_bytes()));
        match parts.headers.get(header::HOST) {
            Some(host) => b.field(Some(lossy(host.as_bytes()).as_bytes())),
            None => b.field(Some(
                parts.uri.authority().map_or("", |a| a.as_str()).as_bytes(),
            )),
        }
        b.field(Some(path.as_bytes()));
        b.field(Some(query.as_bytes()));
        b.field(None); // route: the gateway routes by the policy's own routes
        b.field(None); // service
        match peer {
            // Formatted straight into the buffer: no string of its own.
            Some(peer) => b.field_with(|buf| {
                let _ = write!(buf, "{peer}");
            }),
            None => b.field(None),
        }
        b.field(trusted_user.map(str::as_bytes));
        for (name, value) in &parts.headers {
            b.header(name.as_str(), &lossy(value.as_bytes()));
        }
        OwnedRequest {
            head: HeadBuffer(b.finish()),
            proxy_terminated: false,
            body: None,
            keys_refreshed: false,
            fetched: None,
        }
    }

    /// The head, read: its fields and headers.
    pub fn fields(&self) -> RequestHead<'_> {
        // Only this module writes `head`, always whole: it reads back.
        RequestHead::unpack(&self.head.0).unwrap_or_default()
    }

    /// The packed head, as the guest receives it.
    pub fn head(&self) -> &[u8] {
        &self.head.0
    }

    /// What crosses beside the head: with [`Self::fields`], the engine's
    /// request (`req.fields().request(req.beside())`).
    pub fn beside(&self) -> Beside<'_> {
        Beside {
            body: self.body.as_deref(),
            proxy_terminated: self.proxy_terminated,
            keys_refreshed: self.keys_refreshed,
            fetched: self.fetched.as_ref().map(|f| match f {
                FetchOutcome::Response { status, body } => warden_engine::Fetched::Response {
                    status: *status,
                    body,
                },
                FetchOutcome::Failed(why) => warden_engine::Fetched::Failed(why),
            }),
        }
    }

    fn field(&self, field: HeadField) -> Option<&str> {
        packed::head_field(&self.head.0, field)
    }

    pub fn method(&self) -> &str {
        self.field(HeadField::Method).unwrap_or_default()
    }

    pub fn scheme(&self) -> &str {
        self.field(HeadField::Scheme).unwrap_or_default()
    }

    pub fn authority(&self) -> &str {
        self.field(HeadField::Authority).unwrap_or_default()
    }

    pub fn path(&self) -> &str {
        self.field(HeadField::Path).unwrap_or_default()
    }

    pub fn query(&self) -> &str {
        self.field(HeadField::Query).unwrap_or_default()
    }

    pub fn route(&self) -> Option<&str> {
        self.field(HeadField::Route)
    }

    pub fn service(&self) -> Option<&str> {
        self.field(HeadField::Service)
    }

    pub fn peer(&self) -> Option<&str> {
        self.field(HeadField::Peer)
    }

    pub fn trusted_user(&self) -> Option<&str> {
        self.field(HeadField::TrustedUser)
    }

    /// Replace one field, or add headers: the head is packed again (for
    /// tests and tools; the gateway packs each head once).
    fn edit(mut self, set: Option<(HeadField, Option<&str>)>, add: &[(&str, &str)]) -> Self {
        let old = std::mem::take(&mut self.head.0);
        let mut head = RequestHead::unpack(&old).unwrap_or_default();
        if let Some((field, value)) = set {
            let text = value.unwrap_or_default();
            match field {
                HeadField::Method => head.method = text,
                HeadField::Scheme => head.scheme = text,
                HeadField::Authority => head.authority = text,
                HeadField::Path => head.path = text,
                HeadField::Query => head.query = text,
                HeadField::Route => head.route = value,
                HeadField::Service => head.service = value,
                HeadField::Peer => head.peer = value,
                HeadField::TrustedUser => head.trusted_user = value,
            }
        }
        head.headers.extend_from_slice(add);
        self.head = HeadBuffer(head.pack());
        self
    }

    pub fn with_method(self, method: &str) -> Self {
        self.edit(Some((HeadField::Method, Some(method))), &[])
    }

    pub fn with_scheme(self, scheme: &str) -> Self {
        self.edit(Some((HeadField::Scheme, Some(scheme))), &[])
    }

    /// Set the authority (Host).
    pub fn with_authority(self, authority: &str) -> Self {
        self.edit(Some((HeadField::Authority, Some(authority))), &[])
    }

    pub fn with_path(self, path: &str) -> Self {
        self.edit(Some((HeadField::Path, Some(path))), &[])
    }

    pub fn with_query(self, query: &str) -> Self {
        self.edit(Some((HeadField::Query, Some(query))), &[])
    }

    pub fn with_route(self, route: Option<&str>) -> Self {
        self.edit(Some((HeadField::Route, route)), &[])
    }

    pub fn with_service(self, service: Option<&str>) -> Self {
        self.edit(Some((HeadField::Service, service)), &[])
    }

    pub fn with_peer(self, peer: Option<&str>) -> Self {
        self.edit(Some((HeadField::Peer, peer)), &[])
    }

    pub fn with_trusted_user(self, user: Option<&str>) -> Self {
        self.edit(Some((HeadField::TrustedUser, user)), &[])
    }

    /// Add a header, after the others.
    pub fn with_header(self, name: &str, value: &str) -> Self {
        self.edit(None, &[(name, value)])
    }

    /// Add headers, in order.
    pub fn with_headers<N: AsRef<str>, V: AsRef<str>>(
        self,
        headers: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let owned: Vec<(N, V)> = headers.into_iter().collect();
        let added: Vec<(&str, &str)> = owned
            .iter()
            .map(|(n, v)| (n.as_ref(), v.as_ref()))
            .collect();
        self.edit(None, &added)
    }

    /// Replace the packed head with `head`, as it is: for tests of what the
    /// guest does with a head a faulty host packed (it answers 400).
    pub fn with_raw_head(mut self, head: Vec<u8>) -> Self {
        self.head = HeadBuffer(head);
        self
    }

    /// The headers as borrowed (name, value) pairs (empty if the block is
    /// malformed, which only a hand-made block can be).
    pub fn header_pairs(&self) -> Vec<(&str, &str)> {
        self.fields().headers
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

    fn packed(target: &str, headers: &[(&str, &str)]) -> OwnedRequest {
        let mut req = hyper::Request::get(target);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let (parts, ()) = req.body(()).unwrap().into_parts();
        OwnedRequest::from_head(&parts, None, "http", None)
    }

    #[test]
    fn a_thread_packs_one_head_after_another_into_its_spare_buffers() {
        let first = packed(
            "/a?x=1",
            &[("host", "a.example"), ("x-long", &"v".repeat(300))],
        );
        let buffer = first.head().as_ptr();
        drop(first);
        // The next head goes into the buffer the first gave back, and reads
        // as itself, nothing of the first left over.
        let second = packed("/bb", &[("host", "b.example")]);
        assert_eq!(second.head().as_ptr(), buffer);
        assert_eq!(
            (second.path(), second.query(), second.authority()),
            ("/bb", "", "b.example")
        );
        assert_eq!(second.header_pairs(), [("host", "b.example")]);
        // A buffer over the spares' limit is freed, not kept; at most
        // SPARE_HEADS are kept.
        let spares = || SPARES.with_borrow(Vec::len);
        assert_eq!(spares(), 0);
        drop(packed("/", &[("cookie", &"c".repeat(SPARE_HEAD_BYTES))]));
        assert_eq!(spares(), 0);
        drop(second);
        assert_eq!(spares(), 1);
        let many: Vec<_> = (0..SPARE_HEADS + 5).map(|_| packed("/", &[])).collect();
        assert_eq!(many[0].head().as_ptr(), buffer);
        drop(many);
        assert_eq!(spares(), SPARE_HEADS);
    }

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
        let ctx = OwnedRequest::from_head(
            &parts,
            Some("127.0.0.1:5".parse().unwrap()),
            "https",
            Some("alice"),
        );
        assert_eq!(
            (ctx.method(), ctx.authority(), ctx.path(), ctx.query()),
            ("GET", "api.example.com:8080", "/a/b", "x=1")
        );
        assert_eq!(ctx.scheme(), "https");
        assert_eq!(ctx.trusted_user(), Some("alice"));
        assert_eq!((ctx.route(), ctx.service()), (None, None));
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
        assert_eq!(ctx.peer(), Some("127.0.0.1:5"));
        // Editing a field packs the head again, headers kept.
        let edited = ctx
            .clone()
            .with_authority("b.example")
            .with_route(Some("r"));
        assert_eq!(
            (edited.authority(), edited.route()),
            ("b.example", Some("r"))
        );
        assert_eq!(edited.header_pairs(), ctx.header_pairs());
        assert_eq!(
            edited
                .with_authority("api.example.com:8080")
                .with_route(None),
            ctx
        );
    }
}
