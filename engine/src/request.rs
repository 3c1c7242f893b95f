//! The request context the engine decides on, and the decision it returns.
//!
//! These are what `wit/warden.wit`'s `request` and `decision` carry (packed:
//! [`crate::packed`]). `Request` borrows everything so that the
//! guest (and native callers) pass what they already hold without copying.

use std::borrow::Cow;

use smallvec::SmallVec;

/// One HTTP request as the gateway received it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// Upper-case method, e.g. `GET`.
    pub method: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// `scheme` is `https` only because a proxy the host trusts said so.
    pub proxy_terminated: bool,
    /// Host header / :authority, possibly with a port.
    pub authority: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    /// Raw query string without the leading `?`.
    pub query: &'a str,
    /// (name, value) pairs, names in any case, in arrival order.
    pub headers: &'a [(&'a str, &'a str)],
    /// Request body; `None` when the host has not read it. A decision that
    /// needs it (a POST to the token endpoint) is then
    /// [`Decision::NeedBody`], and the host decides again with the body.
    pub body: Option<&'a [u8]>,
    /// The host's route name, when it has one.
    pub route: Option<&'a str>,
    /// The host's upstream service name, when it has one.
    pub service: Option<&'a str>,
    /// Client address.
    pub peer: Option<&'a str>,
    /// The end user a proxy the host trusts has authenticated (a header the
    /// host reads only from such a proxy, and removes from every request):
    /// who the Kong dialect's authorization page signs in.
    pub trusted_user: Option<&'a str>,
    /// The host fetched again the JWK Set a `RefreshKeys` decision named.
    pub keys_refreshed: bool,
    /// What the host got for the `Fetch` the previous decision asked for.
    pub fetched: Option<Fetched<'a>>,
}

/// The answer to a [`Decision::Fetch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched<'a> {
    /// The server answered (any status).
    Response { status: u16, body: &'a [u8] },
    /// No answer: refused, timed out, not allowed; why, for the logs.
    Failed(&'a str),
}

/// An HTTP request the host makes for the policy (token introspection), to
/// an endpoint the policy declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// `GET` or `POST`.
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl<'a> Request<'a> {
    /// The first value of header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// How a decision was reached, for the host's logs and metrics: never
/// part of what the client or the upstream sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notes {
    /// The rule the request entered: its index in [`crate::Policy::rules`]
    /// (`None`: no rule matched, the instance's `global_auth` applied).
    pub rule: Option<u32>,
    /// How the request's token was checked.
    pub token: TokenCheck,
}

/// How a request's token was checked (see [`Notes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenCheck {
    /// No token was examined (none was needed, or none was presented).
    #[default]
    None,
    /// A token this memo verified before: the signature was not checked
    /// again (audience, times and revocation were).
    Remembered,
    /// A token verified now: signature, issuer, subject and times.
    Verified,
    /// An opaque token whose introspection answer came from the cache.
    IntrospectionCached,
    /// An opaque token introspected by the call this request made.
    Introspected,
    /// A token was presented and refused.
    Rejected,
}

impl TokenCheck {
    /// The name logs and metrics use (`remembered`, `introspection_cached`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenCheck::None => "none",
            TokenCheck::Remembered => "remembered",
            TokenCheck::Verified => "verified",
            TokenCheck::IntrospectionCached => "introspection_cached",
            TokenCheck::Introspected => "introspected",
            TokenCheck::Rejected => "rejected",
        }
    }
}

/// What to do with a request. `F` is how a forward is held: the engine's
/// own [`Forward`], or a host's form of it (the wasmtime host keeps the
/// packed buffer the guest returned, and reads it in place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<F = Forward> {
    /// Let it through, with these edits.
    Forward(F),
    /// Answer it directly.
    Reply(Reply),
    /// The decision needs the request body, which the host has not passed
    /// (`Request::body` is `None`): read at most `max_bytes` of it (a longer
    /// body is the host's 413) and decide again with it. Every other request
    /// is decided on its head alone, so that its body can stream upstream.
    NeedBody { max_bytes: u32 },
    /// A token names a key the host's copy of the JWK Set at `url` lacks:
    /// fetch it again, then decide again with `Request::keys_refreshed`.
    RefreshKeys { url: String },
    /// The decision needs the answer to this request (an introspection
    /// call): make it, without blocking other requests, and decide again
    /// with `Request::fetched`.
    Fetch(Outbound),
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
    /// Where that route sends traffic (`None`: the host's default).
    pub upstream: Option<crate::Upstream>,
    /// A path to forward instead of the client's (starting with `/`;
    /// the upstream's base path is put before it).
    pub path: Option<String>,
    /// A query string (without `?`) to forward instead of the client's.
    pub query: Option<String>,
    /// A body to forward instead of the client's (which the decision read).
    pub body: Option<Vec<u8>>,
}

/// A [`Forward`] as the evaluator makes it, borrowing what it can from the
/// policy and the request: names and values that the policy or the request
/// already holds are not copied, and up to a few headers are kept inline.
/// The guest packs it straight into the buffer it returns, so that a
/// forwarded request costs it no string of its own; [`Self::to_forward`]
/// is the owned form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForwardRef<'a> {
    pub set_headers: SetHeaders<'a>,
    pub remove_headers: SmallVec<[Cow<'a, str>; 2]>,
    pub consumer: Option<Cow<'a, str>>,
    pub route: Option<&'a str>,
    pub upstream: Option<crate::UpstreamRef<'a>>,
    pub path: Option<Cow<'a, str>>,
    pub query: Option<Cow<'a, str>>,
    pub body: Option<Cow<'a, [u8]>>,
}

/// The headers a [`ForwardRef`] sets: two are kept inline (the demo policy
/// sets one), more spill to the heap (Kong's five consumer headers).
pub type SetHeaders<'a> = SmallVec<[(Cow<'a, str>, Cow<'a, str>); 2]>;

impl ForwardRef<'_> {
    /// The owned form.
    pub fn to_forward(&self) -> Forward {
        let owned = |s: &Option<Cow<'_, str>>| s.as_deref().map(str::to_owned);
        Forward {
            set_headers: self
                .set_headers
                .iter()
                .map(|(n, v)| ((**n).to_owned(), (**v).to_owned()))
                .collect(),
            remove_headers: self
                .remove_headers
                .iter()
                .map(|n| (**n).to_owned())
                .collect(),
            consumer: owned(&self.consumer),
            route: self.route.map(str::to_owned),
            upstream: self.upstream.map(crate::UpstreamRef::to_upstream),
            path: owned(&self.path),
            query: owned(&self.query),
            body: self.body.as_deref().map(<[u8]>::to_vec),
        }
    }
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

impl Decision<std::convert::Infallible> {
    /// This decision, which holds no forward, as a decision of any forward
    /// type.
    pub fn any_forward<G>(self) -> Decision<G> {
        match self.into_forward() {
            Ok(never) => match never {},
            Err(other) => other,
        }
    }
}

impl Decision {
    /// The reply, if this decision is one.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Decision::Reply(r) => Some(r),
            _ => None,
        }
    }

    /// The forward edits, if this decision is one.
    pub fn forward(&self) -> Option<&Forward> {
        match self {
            Decision::Forward(f) => Some(f),
            _ => None,
        }
    }
}

impl<F> Decision<F> {
    /// `400 Bad Request`, for a request the engine cannot read; `reason` is
    /// for the logs.
    pub fn bad_request(reason: String) -> Self {
        Decision::Reply(Reply {
            status: 400,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: b"Bad Request".to_vec(),
            reason,
        })
    }

    /// The forward, if this decision is one; else the decision itself, as
    /// a decision of any forward type (it holds none).
    pub fn into_forward<G>(self) -> Result<F, Decision<G>> {
        Err(match self {
            Decision::Forward(f) => return Ok(f),
            Decision::Reply(r) => Decision::Reply(r),
            Decision::NeedBody { max_bytes } => Decision::NeedBody { max_bytes },
            Decision::RefreshKeys { url } => Decision::RefreshKeys { url },
            Decision::Fetch(f) => Decision::Fetch(f),
        })
    }

    /// This decision with its forward, if it is one, converted by `convert`.
    pub fn map_forward<G>(self, convert: impl FnOnce(F) -> G) -> Decision<G> {
        match self.into_forward() {
            Ok(f) => Decision::Forward(convert(f)),
            Err(other) => other,
        }
    }

    /// This decision with its forward, if it is one, converted by `convert`.
    pub fn try_map_forward<G, E>(
        self,
        convert: impl FnOnce(F) -> Result<G, E>,
    ) -> Result<Decision<G>, E> {
        match self.into_forward() {
            Ok(f) => convert(f).map(Decision::Forward),
            Err(other) => Ok(other),
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
