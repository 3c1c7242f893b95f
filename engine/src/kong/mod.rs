//! Kong's `oauth2` plugin, as the policy's `dialect kong` answers it: the
//! authorization endpoint (`authorize`), the token endpoint's grants
//! (`grant`), and access to a protected route (`access`), with Kong's
//! parameters, order of checks, status codes and wording (read from Kong's
//! `kong/plugins/oauth2/access.lua` and its spec suite).
//!
//! Warden issues RFC 9068 JWT access tokens signed with the scope's
//! `signing_key` where Kong issues random strings: a valid token needs no
//! store lookup. What Kong keeps in its database — authorization codes,
//! refresh tokens, and (here) the ids of access tokens that a refresh
//! replaced — lives in the host's store ([`crate::Services`]).

pub(crate) mod access;
mod authorize;
mod csrf;
mod grant;
mod page;
mod page_html;
pub mod params;
mod records;

use crate::Reply;
use crate::graph::{Ctx, DecisionGraph};
use crate::model::ScopeId;
use crate::{Decision, Request, Services};
use params::Params;

/// Largest body Kong's endpoints read parameters from.
pub const MAX_PARAMS_LEN: usize = 16 * 1024;

/// Which of Kong's endpoints a path is: Kong matches `/oauth2/token` and
/// `/oauth2/authorize` at the end of the path, with or without a trailing `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Authorize,
}

impl Endpoint {
    pub fn of(path: &str) -> Option<Endpoint> {
        let p = path.strip_suffix('/').unwrap_or(path);
        if p.ends_with("/oauth2/token") {
            Some(Endpoint::Token)
        } else if p.ends_with("/oauth2/authorize") {
            Some(Endpoint::Authorize)
        } else {
            None
        }
    }
}

/// The paths a host should treat as token requests (they may hash a
/// password and use the store).
pub const PATHS: &[&str] = &[
    "/oauth2/token",
    "/oauth2/token/",
    "/oauth2/authorize",
    "/oauth2/authorize/",
];

/// Answer a request on one of Kong's endpoints of scope `scope`.
pub(crate) fn endpoint<F>(
    graph: &DecisionGraph,
    ctx: &Ctx<'_>,
    scope: ScopeId,
    which: Endpoint,
    services: &dyn Services,
) -> Decision<F> {
    let req = ctx.req;
    let realm = graph.scope(scope).settings.kong.realm.as_deref();
    // Warden's authorization page: its GET, and the POSTs of its form.
    let page = which == Endpoint::Authorize
        && graph
            .scope(scope)
            .settings
            .kong
            .authorization_page
            .is_some();
    if page && req.method == "GET" {
        let params = Params::from_query(req.query);
        return Decision::Reply(page::show(graph, ctx, scope, &params, services));
    }
    if req.method != "POST" {
        let name = match which {
            Endpoint::Token => "token",
            Endpoint::Authorize => "authorization",
        };
        let description = format!(
            "The HTTP method {} is invalid for the {name} endpoint",
            printable(req.method)
        );
        let challenge = challenge(realm, Some("invalid_method"), Some(&description));
        let mut reply = json(
            405,
            &serde_json::json!({"error": "invalid_method", "error_description": description}),
            format!("method {} on the {name} endpoint", printable(req.method)),
        );
        reply.headers.push(("www-authenticate".into(), challenge));
        return Decision::Reply(reply);
    }
    let Some(params) = parameters(req) else {
        return Decision::NeedBody {
            max_bytes: MAX_PARAMS_LEN as u32,
        };
    };
    let reply = match which {
        Endpoint::Token => grant::token(graph, ctx, scope, &params, services),
        Endpoint::Authorize if page && params.has(page::ACTION) => {
            page::submit(graph, ctx, scope, &params, services)
        }
        Endpoint::Authorize => authorize::authorize(graph, ctx, scope, &params, services),
    };
    Decision::Reply(reply)
}

/// The query merged with the body; `None` when the body is needed first.
fn parameters(req: &Request<'_>) -> Option<Params> {
    let mut params = Params::from_query(req.query);
    if matches!(req.method, "POST" | "PUT" | "PATCH") {
        let ct = req.header("content-type").unwrap_or("");
        if params::parameter_body(ct) {
            params.merge_body(ct, req.body?);
        }
    }
    Some(params)
}

/// Kong's `make_www_authenticate_header`.
pub(crate) fn challenge(
    realm: Option<&str>,
    error: Option<&str>,
    description: Option<&str>,
) -> String {
    let mut params = Vec::new();
    if let Some(r) = realm.filter(|r| !r.is_empty()) {
        params.push(format!("realm=\"{r}\""));
    }
    if let Some(e) = error {
        params.push(format!("error=\"{e}\""));
    }
    if let Some(d) = description {
        params.push(format!("error_description=\"{d}\""));
    }
    if params.is_empty() {
        "Bearer".into()
    } else {
        format!("Bearer {}", params.join(", "))
    }
}

/// A JSON answer with Kong's `no-store` headers.
pub(crate) fn json(status: u16, body: &serde_json::Value, reason: String) -> Reply {
    Reply {
        status,
        headers: vec![
            (
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            ),
            ("cache-control".into(), "no-store".into()),
            ("pragma".into(), "no-cache".into()),
        ],
        body: body.to_string().into_bytes(),
        reason,
    }
}

/// Kong's answer when no route matches (its router's words).
pub(crate) fn no_route() -> Reply {
    let mut reply = json(
        404,
        &serde_json::json!({"message": "no Route matched with those values"}),
        "no route matches".into(),
    );
    reply.headers.truncate(1);
    reply
}

/// Kong's answer to plain HTTP on a `protocols [https]` route.
pub(crate) fn use_https() -> Reply {
    let mut reply = json(
        426,
        &serde_json::json!({"message": "Please use HTTPS protocol"}),
        "the route is HTTPS only".into(),
    );
    reply.headers.truncate(1);
    reply
        .headers
        .push(("upgrade".into(), "TLS/1.2, HTTP/1.1".into()));
    reply
}

/// An RFC 6749 error in Kong's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OAuthError {
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub(crate) fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            error,
            description: description.into(),
        }
    }

    fn invalid_client() -> Self {
        OAuthError::new("invalid_client", "Invalid client authentication")
    }
}

/// An `authenticated_userid` is forwarded as a header
/// (`X-Authenticated-Userid`): control characters are refused where it is
/// given (Kong signs anything into its tokens and then forwards it).
pub(crate) fn bad_user(user: &str) -> Option<OAuthError> {
    user.chars().any(char::is_control).then(|| {
        OAuthError::new(
            "invalid_authenticated_userid",
            "authenticated_userid must not contain control characters",
        )
    })
}

/// At most 40 printable characters of client input, for messages and logs.
fn printable(s: &str) -> String {
    s.chars().take(40).flat_map(char::escape_default).collect()
}

/// Kong's HTTPS requirement (`check_https`): TLS at the gateway, or at a
/// trusted proxy when `accept_http_if_already_terminated`.
fn https(req: &Request<'_>, accept_terminated: bool) -> bool {
    req.scheme.eq_ignore_ascii_case("https") && (!req.proxy_terminated || accept_terminated)
}

/// `len` random bytes as base64url: codes and refresh tokens.
fn random_token(services: &dyn Services) -> String {
    use base64::Engine as _;
    let mut b = [0u8; 24];
    services.random_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_as_kong_matches_them() {
        assert_eq!(Endpoint::of("/oauth2/token"), Some(Endpoint::Token));
        assert_eq!(Endpoint::of("/api/oauth2/token/"), Some(Endpoint::Token));
        assert_eq!(Endpoint::of("/oauth2/authorize"), Some(Endpoint::Authorize));
        assert_eq!(Endpoint::of("/oauth2/tokens"), None);
        assert_eq!(Endpoint::of("/oauth2/token//"), None);
        assert_eq!(challenge(None, None, None), "Bearer");
        assert_eq!(
            challenge(Some("api"), Some("invalid_token"), Some("x")),
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"x\""
        );
    }
}
