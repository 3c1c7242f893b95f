//! Revocation (RFC 7009) and introspection (RFC 7662) of a scope's own
//! tokens, for scopes with `revocation true`: a POST to a path ending in
//! `/oauth2/revoke` or `/oauth2/introspect` (beside the token endpoint),
//! form-encoded, by a client of the scope authenticated as on the token
//! endpoint (HTTP Basic or `client_id`/`client_secret`).
//!
//! Revoking puts the token's `jti` in the store's revocation set until the
//! token expires: every node sharing the store refuses it from then on
//! (revocations are mirrored into each node's memory, so the request path
//! asks no backend). A client may revoke only its own tokens; whatever the
//! token, the answer is 200 (RFC 7009 §2.2), so revocation reveals nothing.
//! Introspection answers `{"active": false}` for any token that does not
//! verify here now (bad, expired, revoked, another scope's).

use std::borrow::Cow;

use crate::graph::{Ctx, DecisionGraph};
use crate::model::ScopeId;
use crate::oauth::{
    MAX_PARAMS_LEN, OAuthError, basic_credentials, json_reply as json, presented_matches,
};
use crate::token::Expect;
use crate::{Decision, Reply, Services};

/// Which of the two endpoints a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Revoke,
    Introspect,
}

impl Endpoint {
    pub(crate) fn of(path: &str) -> Option<Endpoint> {
        if path.ends_with("/oauth2/revoke") {
            Some(Endpoint::Revoke)
        } else if path.ends_with("/oauth2/introspect") {
            Some(Endpoint::Introspect)
        } else {
            None
        }
    }
}

#[derive(Default)]
struct Params {
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Answer `which` for scope `scope`.
pub(crate) fn endpoint<F>(
    graph: &DecisionGraph,
    ctx: &Ctx<'_>,
    scope: ScopeId,
    which: Endpoint,
    services: &dyn Services,
) -> Decision<F> {
    match answer(graph, ctx, scope, which, services) {
        Ok(reply) => Decision::Reply(reply),
        Err(None) => Decision::NeedBody {
            max_bytes: MAX_PARAMS_LEN as u32,
        },
        Err(Some(e)) => Decision::Reply(e.reply()),
    }
}

fn answer(
    graph: &DecisionGraph,
    ctx: &Ctx<'_>,
    scope: ScopeId,
    which: Endpoint,
    services: &dyn Services,
) -> Result<Reply, Option<OAuthError>> {
    let req = ctx.req;
    if req.method != "POST" {
        let mut r = json(
            405,
            &serde_json::json!({"error": "invalid_request", "error_description": "this endpoint accepts POST"}),
            format!(
                "{} on a revocation or introspection endpoint",
                req.method.chars().take(16).collect::<String>()
            ),
        );
        r.headers.push(("allow".into(), "POST".into()));
        return Ok(r);
    }
    let media = req.header("content-type").unwrap_or("");
    if !media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    {
        return Err(Some(OAuthError::InvalidRequest(
            "the request must be `application/x-www-form-urlencoded`".into(),
        )));
    }
    let body = req.body.ok_or(None)?;
    if body.len() > MAX_PARAMS_LEN {
        return Err(Some(OAuthError::InvalidRequest(
            "the request parameters are too long".into(),
        )));
    }
    let mut p = Params::default();
    for (k, v) in form_urlencoded::parse(body) {
        let slot = match &*k {
            "token" => &mut p.token,
            "client_id" => &mut p.client_id,
            "client_secret" => &mut p.client_secret,
            _ => continue, // `token_type_hint` and the rest: ignored (RFC 7009 §2.1)
        };
        if slot.is_some() {
            return Err(Some(OAuthError::InvalidRequest(format!(
                "`{k}` is given more than once"
            ))));
        }
        *slot = Some(v.into_owned());
    }
    // The client, authenticated as on the token endpoint.
    let basic = basic_credentials(req).map_err(Some)?;
    let invalid = OAuthError::InvalidClient {
        basic: basic.is_some(),
    };
    let (client_id, secret, raw) = match basic {
        Some(b) => (b.id, Some(b.secret), b.raw_secret),
        None => (
            p.client_id.clone().unwrap_or_default(),
            p.client_secret.clone(),
            None,
        ),
    };
    let s = graph.scope(scope);
    let keys = &s
        .clients
        .get(client_id.as_str())
        .ok_or_else(|| Some(invalid.clone()))?
        .keys;
    let genuine = secret.as_deref().is_some_and(|presented| {
        presented_matches(&keys.check, presented, raw.as_deref(), services)
    });
    if !genuine {
        return Err(Some(invalid));
    }
    let token = p
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Some(OAuthError::InvalidRequest("missing `token`".into())))?;
    let now = services.now();
    let expect = |consumer| Expect {
        issuer: &s.settings.issuer,
        consumer: graph.consumer_name(consumer),
        audience: None,
        now,
        skew: s.settings.clock_skew_seconds,
    };
    let verified = graph
        .verify_token(s, &token, &expect, services)
        .ok()
        .filter(|(_, c)| !services.is_revoked(&c.jti));
    let reason: Cow<'static, str>;
    let reply = match which {
        Endpoint::Revoke => {
            match verified {
                Some((_, claims)) if claims.client_id == client_id => {
                    if let Err(e) = services.revoke(&claims.jti, claims.exp) {
                        // RFC 7009 §2.2.1: the client may retry later.
                        let body = serde_json::json!({"error": "temporarily_unavailable", "error_description": "The authorization server is temporarily unavailable"});
                        return Ok(json(
                            503,
                            &body,
                            format!("the store could not revoke: {}", e.0),
                        ));
                    }
                    reason =
                        format!("revoked token `{}` of client `{client_id}`", claims.jti).into();
                }
                Some(_) => reason = "revocation of another client's token: ignored".into(),
                None => reason = "revocation of a token that does not verify: nothing to do".into(),
            }
            Reply {
                status: 200,
                headers: vec![("cache-control".into(), "no-store".into())],
                body: Vec::new(),
                reason: reason.into_owned(),
            }
        }
        Endpoint::Introspect => match verified {
            Some((consumer, c)) => {
                let mut doc = serde_json::json!({
                    "active": true,
                    "client_id": c.client_id,
                    "sub": c.sub,
                    "aud": c.aud,
                    "iss": c.iss,
                    "exp": c.exp,
                    "iat": c.iat,
                    "jti": c.jti,
                    "token_type": "Bearer",
                });
                if let Some(scope) = &c.scope {
                    doc["scope"] = scope.clone().into();
                }
                if let Some(user) = &c.authenticated_userid {
                    doc["username"] = user.clone().into();
                }
                json(
                    200,
                    &doc,
                    format!(
                        "introspected an active token of consumer `{}`",
                        graph.consumer_name(consumer)
                    ),
                )
            }
            None => json(
                200,
                &serde_json::json!({"active": false}),
                "introspected an inactive token".into(),
            ),
        },
    };
    Ok(reply)
}
