//! Access to a route a Kong-dialect scope protects (Kong's
//! `do_authentication`, `parse_access_token` and `set_consumer`): the token
//! from `auth_header_name` (`Bearer`/`Token` and the token, or the raw
//! token), else the `access_token` parameter of the query or body; Kong's
//! 401 answers; `hide_credentials`; the `anonymous` fallback; and the
//! `X-Consumer-*` / `X-Authenticated-*` headers upstream.

use std::borrow::Cow;

use serde_json::json;

use super::params::{Params, parameter_body};
use super::{challenge, json};
use crate::graph::{Ctx, DecisionGraph, Granted, VerifiedTokens};
use crate::model::{ConsumerId, ScopeId};
use crate::request::SetHeaders;
use crate::token::TokenError;
use crate::{Decision, Reply, Services};

/// Largest body read for an `access_token` parameter.
pub(crate) const MAX_ACCESS_BODY: u32 = 1 << 20;

const INVALID: &str = "The access token is invalid or has expired";

/// Who a Kong-dialect request proceeds as.
pub(crate) enum Access {
    /// A valid token of this consumer, and what it granted.
    Token(ConsumerId, Granted),
    /// Authentication failed; the scope's `anonymous` consumer.
    Anonymous(ConsumerId),
}

/// What stops a Kong-dialect request at authentication.
pub(crate) enum Stop {
    /// Kong's 401 (or another answer).
    Reply(Reply),
    /// The token may be in the body: read at most this many bytes.
    NeedBody(u32),
}

impl<F> From<Stop> for Decision<F> {
    fn from(s: Stop) -> Decision<F> {
        match s {
            Stop::Reply(r) => Decision::Reply(r),
            Stop::NeedBody(max_bytes) => Decision::NeedBody { max_bytes },
        }
    }
}

/// Authenticate `ctx`'s request in Kong scope `scope`: the consumer it
/// proceeds as, or what stops it (a 401, or a request for the body the
/// token may be in).
pub(crate) fn authenticate(
    graph: &DecisionGraph,
    ctx: &mut Ctx<'_>,
    scope: ScopeId,
    services: &dyn Services,
    memo: Option<&mut VerifiedTokens>,
) -> Result<Access, Stop> {
    let s = graph.scope(scope);
    let k = &s.settings.kong;
    let token = credential(ctx, &s.settings.auth_header_name, s.settings.keep_token)?;
    let result = match token.as_deref() {
        None | Some("") => Err(Refusal::Unauthorized(unauthorized(
            k.realm.as_deref(),
            None,
            TokenError::Missing,
        ))),
        Some(t) => verify(graph, ctx, scope, t, services, memo),
    };
    match (result, k.anonymous) {
        (Ok(access), _) => Ok(access),
        (Err(Refusal::GlobalToken(reply)), _) => Err(Stop::Reply(reply)),
        (Err(Refusal::Unauthorized(_)), Some(anonymous)) => Ok(Access::Anonymous(anonymous)),
        (Err(Refusal::Unauthorized(reply)), None) => Err(Stop::Reply(reply)),
    }
}

enum Refusal {
    /// Kong's 401s; `anonymous` applies.
    Unauthorized(Reply),
    /// A global token on a plugin without `global_credentials`: Kong
    /// answers it before `anonymous` is considered.
    GlobalToken(Reply),
}

/// The token a request carries, as Kong's `parse_access_token` finds it;
/// with `hide_credentials` (`!keep`) its place is recorded for removal.
fn credential(ctx: &mut Ctx<'_>, header: &str, keep: bool) -> Result<Option<String>, Stop> {
    let req = ctx.req;
    if let Some(value) = req.header(header) {
        let parts: Vec<&str> = value.split_ascii_whitespace().collect();
        let token = match parts.as_slice() {
            [scheme, token]
                if scheme.eq_ignore_ascii_case("bearer")
                    || scheme.eq_ignore_ascii_case("token") =>
            {
                (*token).to_string()
            }
            _ => value.to_string(),
        };
        if !keep {
            // Kong clears the header only for `Bearer`/`Token` values; a raw
            // token is removed as well (never forwarded).
            ctx.edits.remove_header = Some(header.to_string());
        }
        return Ok(Some(token));
    }
    let mut params = Params::from_query(req.query);
    let ct = req.header("content-type").unwrap_or("");
    let body_may_hold_it = matches!(req.method, "POST" | "PUT" | "PATCH") && parameter_body(ct);
    // The body is read when the token may be there, and with
    // hide_credentials also when the query has one: Kong's body value wins,
    // and a token in the body must not reach the upstream.
    if body_may_hold_it && (!params.has("access_token") || !keep) {
        let Some(body) = req.body else {
            return Err(Stop::NeedBody(MAX_ACCESS_BODY));
        };
        params.merge_body(ct, body);
    }
    let token = params.str("access_token").map(str::to_string);
    if !keep && params.has("access_token") {
        let query: Vec<(String, String)> = form_urlencoded::parse(req.query.as_bytes())
            .filter(|(k, _)| k != "access_token")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        ctx.edits.query = Some(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish(),
        );
        if req.method != "GET"
            && let Some(body) = req.body
        {
            ctx.edits.body = without_token(ct, body);
        }
    }
    Ok(token)
}

/// `body` without its `access_token` (form, JSON or multipart; Kong strips
/// only form bodies and lets the others' token through); `None`: leave it
/// as it is.
fn without_token(content_type: &str, body: &[u8]) -> Option<Vec<u8>> {
    if let Some(kept) = super::params::multipart_without(content_type, body, "access_token") {
        return Some(kept);
    }
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        let kept: Vec<(String, String)> = form_urlencoded::parse(body)
            .filter(|(k, _)| k != "access_token")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(kept)
            .finish();
        return Some(form.into_bytes());
    }
    if media.eq_ignore_ascii_case("application/json")
        && let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(body)
        && map.remove("access_token").is_some()
    {
        return serde_json::to_vec(&map).ok();
    }
    None
}

/// Verify `token` for Kong scope `scope` (or find it in `memo`): signature,
/// issuer, subject, times, then Kong's audience rules and revocation.
fn verify(
    graph: &DecisionGraph,
    ctx: &Ctx<'_>,
    scope: ScopeId,
    token: &str,
    services: &dyn Services,
    memo: Option<&mut VerifiedTokens>,
) -> Result<Access, Refusal> {
    let s = graph.scope(scope);
    let realm = s.settings.kong.realm.as_deref();
    let refuse = |why| Refusal::Unauthorized(unauthorized(realm, Some(INVALID), why));
    let v = graph
        .verify_in(ctx, scope, token, services, memo, None)
        .map_err(|(_, why)| refuse(why))?;
    // Kong binds a token to the service that issued it unless it is global:
    // a global plugin takes global tokens and its own route's.
    if v.global && !s.settings.global_credentials {
        let description = "The access token is global, but the current plugin is configured without 'global_credentials'";
        let mut reply = json(
            401,
            &json!({"error": "invalid_token", "error_description": description}),
            "a global token on a plugin without global_credentials".into(),
        );
        reply.headers.push((
            "www-authenticate".into(),
            challenge(realm, Some("invalid_token"), Some(INVALID)),
        ));
        return Err(Refusal::GlobalToken(reply));
    }
    if !v.global && !v.here {
        return Err(refuse(TokenError::Audience));
    }
    let consumer = v.consumer;
    let Some(granted) = v.granted else {
        return Err(refuse(TokenError::UnknownClient));
    };
    if services.is_revoked(&granted.jti) {
        return Err(refuse(TokenError::Revoked));
    }
    Ok(Access::Token(consumer, granted))
}

/// Kong's 401: `invalid_request` "The access token is missing", or
/// `invalid_token` with `description`.
fn unauthorized(realm: Option<&str>, description: Option<&str>, why: TokenError) -> Reply {
    let (body, header) = match description {
        None => (
            json!({"error": "invalid_request", "error_description": "The access token is missing"}),
            challenge(realm, None, None),
        ),
        Some(d) => (
            json!({"error": "invalid_token", "error_description": d}),
            challenge(realm, Some("invalid_token"), Some(d)),
        ),
    };
    let mut reply = json(401, &body, why.to_string());
    reply.headers.retain(|(n, _)| n == "content-type");
    reply.headers.push(("www-authenticate".into(), header));
    reply
}

/// The headers Kong's `set_consumer` sets upstream for `consumer` (with a
/// token's grant, or anonymous).
pub(crate) fn consumer_headers<'g>(
    graph: &'g DecisionGraph,
    consumer: ConsumerId,
    granted: Option<Granted>,
    set: &mut SetHeaders<'g>,
) {
    let who = graph.kong_consumer(consumer);
    let mut put = |name: &'static str, value: Cow<'g, str>| set.push((name.into(), value));
    put("x-consumer-id", Cow::Borrowed(&who.id));
    if let Some(c) = &who.custom_id {
        put("x-consumer-custom-id", Cow::Borrowed(c));
    }
    if let Some(u) = &who.username {
        put("x-consumer-username", Cow::Borrowed(u));
    }
    match granted {
        Some(g) => {
            put("x-credential-identifier", g.client_id.into_string().into());
            if let Some(scope) = g.scope {
                put("x-authenticated-scope", scope.into_string().into());
            }
            if let Some(user) = g.user {
                put("x-authenticated-userid", user.into_string().into());
            }
        }
        None => put("x-anonymous-consumer", "true".into()),
    }
}

/// Kong's answer when a consumer is not allowed (its ACL plugin's words).
pub(crate) fn forbidden() -> Reply {
    let mut reply = json(
        403,
        &json!({"message": "You cannot consume this service"}),
        "consumer not allowed by the matching rule".into(),
    );
    reply.headers.retain(|(n, _)| n == "content-type");
    reply
}
