//! Kong's token endpoint (`issue_token` in Kong's `access.lua`): the
//! `authorization_code`, `client_credentials`, `password` and
//! `refresh_token` grants, in Kong's order of checks — where a later check
//! fails, its error replaces an earlier one, as Kong's `response_params` is
//! overwritten — and the token issuance every grant and the implicit flow
//! share.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::records::{self, CodeGrant, RefreshGrant};
use super::{OAuthError, Params, https, json, random_token};
use crate::graph::{ClientKeys, CompiledScope, Ctx, DecisionGraph};
use crate::model::{ClientSecret, ConsumerId, ScopeId};
use crate::store::{IssuedToken, StoreError, key};
use crate::token::{self, Claims};
use crate::{Reply, Services};

/// A token endpoint's failure: an OAuth error (with Kong's 401 + `Basic`
/// challenge when the client used the Authorization header), or the store.
pub(super) enum Failure {
    OAuth(OAuthError, bool),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// Lifetime of "never expiring" tokens (`token_expiration 0`): a JWT
/// access token carries an `exp` (RFC 9068 §2.2), so it is 100 years.
pub(super) const NEVER: u64 = 100 * 365 * 86_400;

/// The token endpoint of scope `scope`.
pub(super) fn token(
    graph: &DecisionGraph,
    ctx: &Ctx<'_>,
    scope: ScopeId,
    params: &Params,
    services: &dyn Services,
) -> Reply {
    let s = graph.scope(scope);
    let state = params.str("state");
    match grant(graph, ctx, scope, s, params, services) {
        Ok((mut body, reason)) => {
            if let Some(state) = state {
                body.insert("state".into(), state.into());
            }
            json(200, &Value::Object(body), reason)
        }
        Err(Failure::OAuth(e, basic)) => {
            let mut body = json!({"error": e.error, "error_description": e.description});
            if let Some(state) = state {
                body["state"] = state.into();
            }
            let reason = format!("token request refused: {}: {}", e.error, e.description);
            let mut reply = json(if basic { 401 } else { 400 }, &body, reason);
            if basic {
                reply
                    .headers
                    .push(("www-authenticate".into(), "Basic realm=\"OAuth2.0\"".into()));
            }
            reply
        }
        Err(Failure::Store(e)) => json(
            503,
            &json!({"error": "temporarily_unavailable", "error_description": "The authorization server is temporarily unavailable"}),
            e.to_string(),
        ),
    }
}

/// The client a request names, how it authenticated, and its secret.
struct Client<'g> {
    id: Option<String>,
    secret: Option<String>,
    /// The Basic secret as sent, when form-decoding changed it.
    raw_secret: Option<String>,
    /// Through the Authorization header (HTTP Basic).
    from_header: bool,
    found: Option<(&'g str, ConsumerId, &'g ClientKeys)>,
}

/// Kong's `retrieve_client_credentials`: parameters, else HTTP Basic in the
/// scope's `auth_header_name` (id and secret each form-decoded, RFC 6749
/// §2.3.1), else a lone `client_id` parameter.
fn client<'g>(s: &'g CompiledScope, ctx: &Ctx<'_>, params: &Params) -> Client<'g> {
    let mut c = Client {
        id: None,
        secret: None,
        raw_secret: None,
        from_header: false,
        found: None,
    };
    let header = ctx.req.header(&s.settings.auth_header_name);
    if let (Some(id), Some(secret)) = (params.str("client_id"), params.str("client_secret")) {
        c.id = Some(id.into());
        c.secret = Some(secret.into());
    } else if let Some(value) = header {
        c.from_header = true;
        let encoded = value
            .trim_start()
            .strip_prefix("Basic")
            .or_else(|| value.trim_start().strip_prefix("basic"))
            .map(str::trim);
        let decoded = encoded
            .and_then(|e| STANDARD.decode(e).ok())
            .and_then(|d| String::from_utf8(d).ok());
        if let Some(d) = decoded {
            let (id, secret) = match d.split_once(':') {
                Some((id, secret)) => (id, Some(secret)),
                None => (d.as_str(), None),
            };
            c.id = crate::oauth::form_decode(id);
            if let Some(secret) = secret {
                (c.secret, c.raw_secret) = crate::oauth::split_secret(secret);
            }
        }
    } else if let Some(id) = params.str("client_id") {
        c.id = Some(id.into());
    }
    c.found =
        c.id.as_deref()
            .filter(|id| !id.is_empty())
            .and_then(|id| s.clients.get(id))
            .map(|c| (&*c.id, c.consumer, &c.keys));
    c
}

fn grant(
    graph: &DecisionGraph,
    ctx: &Ctx<'_>,
    scope: ScopeId,
    s: &CompiledScope,
    params: &Params,
    services: &dyn Services,
) -> Result<(Map<String, Value>, String), Failure> {
    let k = &s.settings.kong;
    if !https(ctx.req, k.accept_http_if_already_terminated) {
        return Err(Failure::OAuth(
            OAuthError::new("access_denied", "You must use HTTPS"),
            false,
        ));
    }
    let mut error: Option<OAuthError> = None;
    let mut basic = false;
    let grant_type = params.str("grant_type").unwrap_or("");
    let known = match grant_type {
        "authorization_code" | "refresh_token" => true,
        "client_credentials" => k.enable_client_credentials,
        "password" => k.enable_password_grant,
        _ => false,
    };
    if !known {
        error = Some(OAuthError::new(
            "unsupported_grant_type",
            "Invalid grant_type",
        ));
    }
    let c = client(s, ctx, params);
    if grant_type != "client_credentials" {
        match c.found {
            Some((_, _, keys)) if !keys.redirect_uris.is_empty() => {
                let wanted = params.str("redirect_uri");
                if wanted.is_some_and(|w| !keys.redirect_uris.iter().any(|u| u == w))
                    || (params.has("redirect_uri") && wanted.is_none())
                {
                    error = Some(OAuthError::new(
                        "invalid_request",
                        "Invalid redirect_uri that does not match with any redirect_uri created with the application",
                    ));
                }
            }
            _ => {
                error = Some(OAuthError::invalid_client());
                basic |= c.from_header;
            }
        }
    }
    if let Some((_, _, keys)) = c.found {
        let presented = c.secret.as_deref().unwrap_or("");
        let genuine = match &keys.check {
            ClientSecret::Plain(_) | ClientSecret::Hashed(_) => {
                c.secret.is_some()
                    && crate::oauth::presented_matches(
                        &keys.check,
                        presented,
                        c.raw_secret.as_deref(),
                        services,
                    )
            }
            ClientSecret::Public => {
                if !presented.trim().is_empty() {
                    error = Some(OAuthError::new(
                        "invalid_request",
                        "client_secret is disallowed for public clients",
                    ));
                }
                true
            }
        };
        if !genuine {
            error = Some(OAuthError::invalid_client());
            basic |= c.from_header;
        }
    }
    if let Some(e) = error {
        return Err(Failure::OAuth(e, basic));
    }
    let refuse = |e: OAuthError| Failure::OAuth(e, false);
    let user = params.str("authenticated_userid");
    match grant_type {
        "authorization_code" => {
            let Some((client_id, consumer, keys)) = c.found else {
                return Err(refuse(OAuthError::invalid_client()));
            };
            let invalid = || refuse(OAuthError::new("invalid_grant", "Invalid code"));
            let (code_key, grant): (_, CodeGrant) =
                stored(services, records::CODE, params.str("code"))?.ok_or_else(invalid)?;
            if (!s.settings.global_credentials && grant.aud != ctx.service_key())
                || grant.client_id != client_id
            {
                return Err(invalid());
            }
            if grant.challenge.is_some() || requires_pkce(s, keys) {
                pkce(params, grant.challenge.as_deref()).map_err(refuse)?;
            }
            if s.settings.global_credentials && grant.plugin != *s.label {
                return Err(invalid());
            }
            // Single use: of concurrent redemptions, one takes the code.
            if services.store_take(&code_key)?.is_none() {
                return Err(invalid());
            }
            let body = generate(
                graph,
                ctx,
                scope,
                &Grant {
                    consumer,
                    client_id,
                    user: grant.authenticated_userid.as_deref(),
                    scope: grant.scope.as_deref(),
                },
                Refresh::New,
                services,
            )?;
            Ok((
                body,
                format!(
                    "exchanged a code for a token of `{}`",
                    graph.consumer_name(consumer)
                ),
            ))
        }
        "client_credentials" => {
            if user.is_some() && !provision_key_matches(s, params) {
                return Err(refuse(OAuthError::new(
                    "invalid_provision_key",
                    "Invalid provision_key",
                )));
            }
            let Some((client_id, consumer, keys)) = c.found else {
                return Err(Failure::OAuth(OAuthError::invalid_client(), c.from_header));
            };
            if matches!(keys.check, ClientSecret::Public) {
                // RFC 6749 §4.4: for confidential clients only (Kong issues
                // such a token to anyone who knows a public client's id).
                return Err(refuse(OAuthError::new(
                    "unauthorized_client",
                    "The client_credentials grant is for confidential clients only",
                )));
            }
            let scope_str = super::authorize::requested_scope(s, params).map_err(refuse)?;
            let body = generate(
                graph,
                ctx,
                scope,
                &Grant {
                    consumer,
                    client_id,
                    user,
                    scope: scope_str.as_deref(),
                },
                Refresh::None,
                services,
            )?;
            Ok((
                body,
                format!(
                    "issued a client_credentials token to `{}`",
                    graph.consumer_name(consumer)
                ),
            ))
        }
        "password" => {
            if !provision_key_matches(s, params) {
                return Err(refuse(OAuthError::new(
                    "invalid_provision_key",
                    "Invalid provision_key",
                )));
            }
            let Some(user) = user.filter(|u| !u.trim().is_empty()) else {
                return Err(refuse(OAuthError::new(
                    "invalid_authenticated_userid",
                    "Missing authenticated_userid parameter",
                )));
            };
            let Some((client_id, consumer, _)) = c.found else {
                return Err(refuse(OAuthError::invalid_client()));
            };
            let scope_str = super::authorize::requested_scope(s, params).map_err(refuse)?;
            let body = generate(
                graph,
                ctx,
                scope,
                &Grant {
                    consumer,
                    client_id,
                    user: Some(user),
                    scope: scope_str.as_deref(),
                },
                Refresh::New,
                services,
            )?;
            Ok((
                body,
                format!(
                    "issued a password-grant token to `{}`",
                    graph.consumer_name(consumer)
                ),
            ))
        }
        _ => {
            // refresh_token
            let Some((client_id, consumer, _)) = c.found else {
                return Err(refuse(OAuthError::invalid_client()));
            };
            let invalid = || refuse(OAuthError::new("invalid_grant", "Invalid refresh_token"));
            let refresh = params.str("refresh_token").unwrap_or_default();
            let (refresh_key, old): (_, RefreshGrant) =
                stored(services, records::REFRESH, Some(refresh))?.ok_or_else(invalid)?;
            if !s.settings.global_credentials && old.aud != ctx.service_key() {
                return Err(invalid());
            }
            if old.client_id != client_id {
                return Err(refuse(OAuthError::invalid_client()));
            }
            if let Some(scopes) = &old.scope {
                let allowed = s.settings.kong.scopes.as_deref().unwrap_or(&[]);
                if scopes
                    .split_whitespace()
                    .any(|w| !allowed.iter().any(|a| a == w))
                {
                    return Err(refuse(OAuthError::new("invalid_scope", "Scope mismatch")));
                }
            }
            let how = if k.reuse_refresh_token {
                Refresh::Reuse(refresh)
            } else {
                // Single use: of concurrent refreshes, one takes the token.
                if services.store_take(&refresh_key)?.is_none() {
                    return Err(invalid());
                }
                Refresh::New
            };
            // The access token issued with it dies now (Kong deletes or
            // replaces its row).
            services.revoke(
                &old.jti,
                old.exp.saturating_add(s.settings.clock_skew_seconds),
            )?;
            let body = generate(
                graph,
                ctx,
                scope,
                &Grant {
                    consumer,
                    client_id,
                    user: old.authenticated_userid.as_deref(),
                    scope: old.scope.as_deref(),
                },
                how,
                services,
            )?;
            Ok((
                body,
                format!("refreshed a token of `{}`", graph.consumer_name(consumer)),
            ))
        }
    }
}

/// The record kept under `space` for the code or token `presented` (its
/// store key too), if there is one that decodes.
fn stored<T: for<'de> serde::Deserialize<'de>>(
    services: &dyn Services,
    space: &str,
    presented: Option<&str>,
) -> Result<Option<(String, T)>, Failure> {
    let Some(presented) = presented.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let k = key(space, presented);
    let record = services.store_get(&k)?.and_then(|b| records::decode(&b));
    Ok(record.map(|r| (k, r)))
}

/// Kong's `requires_pkce`: for public clients unless `pkce none`, for
/// every client with `pkce strict`.
pub(super) fn requires_pkce(s: &CompiledScope, keys: &ClientKeys) -> bool {
    use crate::model::Pkce;
    match (
        s.settings.kong.pkce,
        matches!(keys.check, ClientSecret::Public),
    ) {
        (Pkce::Strict, _) => true,
        (Pkce::Lax, public) => public,
        (Pkce::None, _) => false,
    }
}

/// Kong's `validate_pkce_verifier`.
fn pkce(params: &Params, challenge: Option<&str>) -> Result<(), OAuthError> {
    let verifier = match params.get("code_verifier") {
        None => {
            return Err(OAuthError::new(
                "invalid_request",
                "code_verifier is required for PKCE authorization requests",
            ));
        }
        Some(super::params::Param::Other) => {
            return Err(OAuthError::new(
                "invalid_request",
                "code_verifier is not a string",
            ));
        }
        Some(super::params::Param::Str(v)) => v,
    };
    if !(43..=128).contains(&verifier.len()) {
        return Err(OAuthError::new(
            "invalid_request",
            "code_verifier must be between 43 and 128 characters",
        ));
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let matches = challenge.is_some_and(|c| {
        use subtle::ConstantTimeEq;
        bool::from(c.as_bytes().ct_eq(computed.as_bytes()))
    });
    if !matches {
        return Err(OAuthError::new("invalid_grant", "Invalid code"));
    }
    Ok(())
}

/// The presented `provision_key` is the scope's (constant time).
pub(super) fn provision_key_matches(s: &CompiledScope, params: &Params) -> bool {
    match (&s.settings.kong.provision_key, params.str("provision_key")) {
        (Some(key), Some(presented)) => key.matches(presented.as_bytes()),
        _ => false,
    }
}

/// Whether a refresh token comes with the access token.
pub(super) enum Refresh<'a> {
    /// None (client_credentials, implicit).
    None,
    /// A new one (unless tokens never expire).
    New,
    /// The one presented, kept (`reuse_refresh_token`).
    Reuse(&'a str),
}

/// What an access token is issued for.
pub(super) struct Grant<'a> {
    pub(super) consumer: ConsumerId,
    pub(super) client_id: &'a str,
    /// Kong's `authenticated_userid`.
    pub(super) user: Option<&'a str>,
    pub(super) scope: Option<&'a str>,
}

/// Kong's `generate_token`: sign an access token for `grant` and, as
/// asked, a refresh token; the response parameters.
pub(super) fn generate(
    graph: &DecisionGraph,
    ctx: &Ctx<'_>,
    scope: ScopeId,
    grant: &Grant<'_>,
    refresh: Refresh<'_>,
    services: &dyn Services,
) -> Result<Map<String, Value>, Failure> {
    let Grant {
        consumer,
        client_id,
        user,
        scope: scope_str,
    } = *grant;
    if let Some(e) = user.and_then(super::bad_user) {
        return Err(Failure::OAuth(e, false));
    }
    let s = graph.scope(scope);
    // (The grant's client was found in this scope before it was made.)
    let keys = match s.clients.get(client_id) {
        Some(c) => &c.keys,
        None => return Err(Failure::OAuth(OAuthError::invalid_client(), false)),
    };
    let now = services.now();
    let ttl = s.settings.token_ttl;
    let mut jti = [0u8; 16];
    services.random_bytes(&mut jti);
    let aud = if s.settings.global_credentials {
        "default".to_string()
    } else {
        ctx.service_key().to_string()
    };
    let claims = Claims {
        aud: aud.clone(),
        client_id: client_id.to_string(),
        exp: now.saturating_add(if ttl == 0 { NEVER } else { ttl }),
        iat: now,
        iss: s.settings.issuer.clone(),
        jti: token::uuid_v4(jti),
        nbf: None,
        scope: scope_str.map(str::to_string),
        sub: graph.consumer_name(consumer).to_string(),
        authenticated_userid: user.map(str::to_string),
    };
    let access = token::issue(&claims, &keys.signing, services)
        .map_err(|e| Failure::Store(StoreError(e.to_string())))?;
    let refresh_token = match refresh {
        Refresh::None => None,
        Refresh::New if ttl == 0 => None,
        Refresh::New => Some(random_token(services)),
        Refresh::Reuse(t) => Some(t.to_string()),
    };
    if let Some(r) = &refresh_token {
        let grant = RefreshGrant {
            client_id: client_id.to_string(),
            authenticated_userid: claims.authenticated_userid.clone(),
            scope: claims.scope.clone(),
            aud,
            jti: claims.jti.clone(),
            exp: claims.exp,
        };
        services.store_put(
            &key(records::REFRESH, r),
            &records::encode(&grant),
            s.settings.kong.refresh_token_ttl,
        )?;
    }
    // The token's record (Kong's `oauth2_tokens` row, without the token),
    // for the Admin API to list and revoke. A store that cannot keep it
    // does not stop the grant: the token is valid either way.
    let record = IssuedToken {
        id: claims.jti.clone(),
        client_id: client_id.to_string(),
        consumer: claims.sub.clone(),
        authenticated_userid: claims.authenticated_userid.clone(),
        scope: claims.scope.clone(),
        aud: claims.aud.clone(),
        issued_at: now,
        expires_at: claims.exp,
        refreshable: refresh_token.is_some(),
    };
    let _ = services.store_put(
        &IssuedToken::key(&record.id),
        &records::encode(&record),
        claims.exp.saturating_sub(now).max(1),
    );
    let mut body = Map::new();
    body.insert("access_token".into(), access.into());
    body.insert("token_type".into(), "bearer".into());
    if ttl > 0 {
        body.insert("expires_in".into(), ttl.into());
    }
    if let Some(r) = refresh_token {
        body.insert("refresh_token".into(), r.into());
    }
    Ok(body)
}

impl From<Failure> for OAuthError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::OAuth(e, _) => e,
            Failure::Store(_) => OAuthError::new(
                "temporarily_unavailable",
                "The authorization server is temporarily unavailable",
            ),
        }
    }
}

/// Store a new code for `grant` (the authorize endpoint): the code.
pub(super) fn store_code(services: &dyn Services, grant: &CodeGrant) -> Result<String, OAuthError> {
    let code = random_token(services);
    services
        .store_put(
            &key(records::CODE, &code),
            &records::encode(grant),
            records::CODE_TTL,
        )
        .map_err(|e| OAuthError::from(Failure::Store(e)))?;
    Ok(code)
}
