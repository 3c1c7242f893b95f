//! The request context the engine decides on, and the decision it returns.
//!
//! These mirror the `request` and `decision` records of `wit/warden.wit`; the
//! guest converts between the two. `Request` borrows everything so that the
//! guest (and native callers) pass what they already hold without copying.

/// One HTTP request as the gateway received it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// Upper-case method, e.g. `GET`.
    pub method: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// Host header / :authority, possibly with a port.
    pub authority: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    /// Raw query string without the leading `?`.
    pub query: &'a str,
    /// Header names in any case, in arrival order.
    pub headers: &'a [(String, String)],
    /// Request body (only read on the token endpoint).
    pub body: &'a [u8],
    /// The host's route name, when it has one.
    pub route: Option<&'a str>,
    /// The host's upstream service name, when it has one.
    pub service: Option<&'a str>,
    /// Client address.
    pub peer: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// The first value of header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let it through, with these edits.
    Forward(Forward),
    /// Answer it directly.
    Reply(Reply),
}

/// Header edits and metadata for a request that goes upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forward {
    /// Headers to set, replacing whatever the client sent.
    pub set_headers: Vec<(String, String)>,
    /// Headers to remove (case-insensitive names).
    pub remove_headers: Vec<String>,
    /// The authenticated consumer, when there is one.
    pub consumer: Option<String>,
    /// The route the policy resolved.
    pub route: Option<String>,
    /// Where that route sends traffic (`echo` or an `http://` base URL).
    pub upstream: Option<String>,
}

/// A response produced by Warden itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Why, for logs: never sent to the client, never holds a secret.
    pub reason: String,
}

impl Decision {
    /// The reply, if this decision is one.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Decision::Reply(r) => Some(r),
            Decision::Forward(_) => None,
        }
    }

    /// The forward edits, if this decision is one.
    pub fn forward(&self) -> Option<&Forward> {
        match self {
            Decision::Forward(f) => Some(f),
            Decision::Reply(_) => None,
        }
    }
}

impl Reply {
    /// The first value of response header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
