//! Opaque tokens, vouched for by an RFC 7662 introspection server
//! (`introspection NAME { … }`, a scope's `introspect NAME`), as Gravitee's
//! `oauth2` policy with its generic OAuth2 resource checks them
//! (docs/gravitee-oauth2.md) — with the deviations the README lists.
//!
//! Two phases, so that a slow server never holds a worker: the first call
//! finds the token and looks for a cached answer in the store; on a miss it
//! answers [`Decision::Fetch`] with the introspection request, the host
//! makes it asynchronously and decides again with [`Request::fetched`],
//! and the second call judges the answer. Positive answers are cached in the
//! store (shared by every node on Redis) under a SHA-256 of the token, never
//! the token, for no longer than `cache_ttl` nor past the token's `exp`.
//! Every outcome carries Gravitee's error key: in the reply's
//! `x-error-key` header and the log reason.

use std::convert::Infallible;

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::external::Principal;
use crate::model::{ConsumerId, Introspection};
use crate::request::{Decision, Fetched, Outbound, Reply, Request};
use crate::services::Services;

/// Gravitee's realm.
const REALM: &str = "gravitee.io";

fn reply(
    status: u16,
    key: &str,
    body: &str,
    challenge: String,
    why: String,
) -> Box<Decision<Infallible>> {
    Box::new(Decision::Reply(Reply {
        status,
        headers: vec![
            ("content-type".into(), "text/plain; charset=utf-8".into()),
            ("www-authenticate".into(), challenge),
            ("x-error-key".into(), key.into()),
            ("cache-control".into(), "no-store".into()),
        ],
        body: body.as_bytes().to_vec(),
        reason: format!("{key}: {why}"),
    }))
}

fn unauthorized(key: &str, presented: bool, why: &str) -> Box<Decision<Infallible>> {
    let mut challenge = format!("Bearer realm=\"{REALM}\"");
    if presented {
        challenge.push_str(", error=\"invalid_token\"");
    }
    reply(401, key, "Unauthorized", challenge, why.into())
}

fn unavailable(key: &str, why: String) -> Box<Decision<Infallible>> {
    reply(
        503,
        key,
        "temporarily_unavailable",
        format!("Bearer realm=\"{REALM}\""),
        why,
    )
}

/// Gravitee's `TokenExtractor`: the first `header` value whose scheme is
/// `Bearer` (any case, space optional), trimmed; else the `access_token`
/// query parameter. `None`: no token at all.
fn extract<'r>(req: &Request<'r>, header: &str) -> Option<std::borrow::Cow<'r, str>> {
    for (name, value) in req.headers {
        if name.eq_ignore_ascii_case(header)
            && value
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
        {
            return Some(value[6..].trim().into());
        }
    }
    form_urlencoded::parse(req.query.as_bytes())
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| std::borrow::Cow::Owned(v.trim().to_string()))
}

/// Where a positive answer for `token` is cached.
fn cache_key(id: u32, token: &str) -> String {
    format!(
        "introspect:{id}:{}",
        hex::encode(Sha256::digest(token.as_bytes()))
    )
}

/// The request that introspects `token`.
fn request(i: &Introspection, token: &str) -> Outbound {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut url = i.endpoint.clone();
    if let Some(param) = &i.token_query {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("{}={}", enc(param), enc(token)));
    }
    let mut headers = vec![("accept".to_string(), "application/json".to_string())];
    if let (Some((header, scheme)), Some(id), Some(secret)) =
        (&i.client_auth, &i.client_id, &i.client_secret)
    {
        // RFC 6749 §2.3.1: the id and secret form-encoded, then base64.
        let pair = format!(
            "{}:{}",
            enc(id),
            enc(&String::from_utf8_lossy(secret.expose()))
        );
        let creds = base64::engine::general_purpose::STANDARD.encode(pair);
        headers.push((header.clone(), format!("{scheme} {creds}")));
    }
    if let Some(h) = &i.token_header {
        headers.push((h.clone(), token.to_string()));
    }
    let body = i.token_form.as_ref().map(|field| {
        headers.push((
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
        format!("{}={}", enc(field), enc(token)).into_bytes()
    });
    Outbound {
        method: i.method.clone(),
        url,
        headers,
        body,
    }
}

/// Gravitee's lenient `active`: `true`, `"true"` or a non-zero number.
fn active(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    }
}

/// The scopes an answer grants: `scope`, else `scp`; a list, or a string
/// split on `separator`.
fn scopes<'p>(payload: &'p serde_json::Map<String, Value>, separator: &str) -> Vec<&'p str> {
    match payload.get("scope").or_else(|| payload.get("scp")) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => s.split(separator).filter(|s| !s.is_empty()).collect(),
        _ => Vec::new(),
    }
}

/// A claim's value as a header value (strings as they are; numbers and
/// booleans written out), `None` for anything else.
fn header_value(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!s.chars().any(char::is_control) && s.len() <= 4096).then_some(s)
}

/// Introspect the request's token with `i` (the scope's `introspect`,
/// number `id`): who it is, or the decision to answer (a reply, or the
/// fetch to make first). `consumer` finds a policy consumer by name.
pub(crate) fn authenticate(
    (i, id): (&Introspection, u32),
    req: &Request<'_>,
    header: &str,
    services: &dyn Services,
    consumer: &dyn Fn(&str) -> Option<ConsumerId>,
) -> Result<Principal, Box<Decision<Infallible>>> {
    let Some(token) = extract(req, header) else {
        return Err(unauthorized(
            "OAUTH2_MISSING_HEADER",
            false,
            "no OAuth authorization header was supplied",
        ));
    };
    if token.is_empty() {
        return Err(unauthorized(
            "OAUTH2_MISSING_ACCESS_TOKEN",
            true,
            "no OAuth access token was supplied",
        ));
    }
    if token.len() > crate::token::MAX_TOKEN_LEN {
        return Err(unauthorized(
            "OAUTH2_INVALID_ACCESS_TOKEN",
            true,
            "the token is too long",
        ));
    }
    let key = cache_key(id, &token);
    let cached = if i.cache_ttl > 0 {
        services.store_get(&key).ok().flatten()
    } else {
        None
    };
    let now = services.now();
    let payload: serde_json::Map<String, Value> = match (cached, req.fetched) {
        (Some(bytes), _) => match serde_json::from_slice(&bytes) {
            Ok(Value::Object(p)) => p,
            _ => {
                return Err(unavailable(
                    "OAUTH2_INVALID_SERVER_RESPONSE",
                    "a cached answer does not read".into(),
                ));
            }
        },
        (None, None) => return Err(Box::new(Decision::Fetch(request(i, &token)))),
        (None, Some(Fetched::Failed(why))) => {
            return Err(unavailable(
                "OAUTH2_SERVER_UNAVAILABLE",
                format!("introspection `{}` failed: {why}", i.name),
            ));
        }
        (None, Some(Fetched::Response { status, body })) => {
            if status != 200 {
                return Err(unavailable(
                    "OAUTH2_SERVER_UNAVAILABLE",
                    format!("introspection `{}` answered {status}", i.name),
                ));
            }
            let Ok(Value::Object(p)) = serde_json::from_slice::<Value>(body) else {
                return Err(unavailable(
                    "OAUTH2_INVALID_SERVER_RESPONSE",
                    format!(
                        "introspection `{}` answered 200 with a body that is not a JSON object",
                        i.name
                    ),
                ));
            };
            let Some(flag) = p.get("active") else {
                return Err(unavailable(
                    "OAUTH2_INVALID_SERVER_RESPONSE",
                    format!(
                        "introspection `{}` answered without `active` (RFC 7662 §2.2)",
                        i.name
                    ),
                ));
            };
            if !active(flag) {
                return Err(unauthorized(
                    "OAUTH2_INVALID_ACCESS_TOKEN",
                    true,
                    "the authorization server says the token is not active",
                ));
            }
            let exp = p.get("exp").and_then(Value::as_u64);
            let ttl = match exp {
                Some(exp) => i.cache_ttl.min(exp.saturating_sub(now)),
                None => i.cache_ttl,
            };
            if ttl > 0 {
                // Best effort: a store that is down costs a later AS call.
                let _ = services.store_put(&key, &serde_json::to_vec(&p).unwrap_or_default(), ttl);
            }
            p
        }
    };
    if p_expired(&payload, now) {
        return Err(unauthorized(
            "OAUTH2_INVALID_ACCESS_TOKEN",
            true,
            "the token's `exp` has passed",
        ));
    }
    if !i.required_scopes.is_empty() {
        let granted = scopes(&payload, &i.scope_separator);
        let ok = if i.strict {
            i.required_scopes
                .iter()
                .all(|r| granted.contains(&r.as_str()))
        } else {
            i.required_scopes
                .iter()
                .any(|r| granted.contains(&r.as_str()))
        };
        if !ok {
            let wanted = i.required_scopes.join(" ");
            return Err(reply(
                403,
                "OAUTH2_INSUFFICIENT_SCOPE",
                "insufficient_scope",
                format!(
                    "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{wanted}\""
                ),
                format!("the token lacks the required scopes `{wanted}`"),
            ));
        }
    }
    let name = payload
        .get(&i.user_claim)
        .and_then(Value::as_str)
        .or_else(|| payload.get("client_id").and_then(Value::as_str))
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.len() <= 256 && !n.chars().any(char::is_control))
        .unwrap_or_default()
        .to_string();
    let headers = i
        .payload_headers
        .iter()
        .filter_map(|(claim, h)| Some((h.clone(), header_value(payload.get(claim)?)?)))
        .collect();
    Ok(Principal {
        consumer: (!name.is_empty()).then(|| consumer(&name)).flatten(),
        name,
        headers,
    })
}

/// An answer (fresh or cached) whose `exp` has passed.
fn p_expired(payload: &serde_json::Map<String, Value>, now: u64) -> bool {
    payload
        .get("exp")
        .and_then(Value::as_u64)
        .is_some_and(|exp| exp <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_as_gravitee_finds_them() {
        let q = |headers: &'static [(&'static str, &'static str)], query: &'static str| {
            let req = Request {
                headers,
                query,
                ..Default::default()
            };
            extract(&req, "authorization").map(|t| t.into_owned())
        };
        assert_eq!(
            q(&[("Authorization", "Bearer abc ")], ""),
            Some("abc".into())
        );
        assert_eq!(q(&[("authorization", "bearerXYZ")], ""), Some("XYZ".into()));
        assert_eq!(
            q(
                &[("Authorization", "Basic x"), ("Authorization", "Bearer t")],
                ""
            ),
            Some("t".into())
        );
        assert_eq!(
            q(&[("Authorization", "Bearer   ")], "access_token=q"),
            Some("".into())
        );
        assert_eq!(
            q(&[("Authorization", "Basic x")], "access_token=q%2B1"),
            Some("q+1".into())
        );
        assert_eq!(q(&[], ""), None);
    }

    #[test]
    fn active_is_read_leniently_and_scopes_split() {
        assert!(active(&Value::Bool(true)) && active(&"true".into()) && active(&1.into()));
        assert!(!active(&"false".into()) && !active(&Value::Null) && !active(&0.into()));
        let p = serde_json::json!({"scope": "a  b"});
        assert_eq!(scopes(p.as_object().unwrap(), " "), ["a", "b"]);
        let p = serde_json::json!({"scp": ["x", "y"]});
        assert_eq!(scopes(p.as_object().unwrap(), " "), ["x", "y"]);
        let p = serde_json::json!({"scope": "a,b"});
        assert_eq!(scopes(p.as_object().unwrap(), ","), ["a", "b"]);
    }
}
