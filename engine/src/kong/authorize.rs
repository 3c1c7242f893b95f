//! Kong's authorization endpoint (`authorize` in Kong's `access.lua`): the
//! application's own page, having authenticated the user, POSTs the
//! `provision_key`, `authenticated_userid`, `client_id`, `response_type`
//! (`code` or `token`), `scope`, `redirect_uri`, `state` and PKCE challenge,
//! and gets back `{"redirect_uri": …}` to send the user to — with a code in
//! the query, an access token in the fragment (implicit), or the error.
//! Kong's order: HTTPS, provision key and user stop at once; the later
//! checks all run and the last failure wins.

use serde_json::{Map, Value, json};

use super::grant::{Grant, Refresh, generate, provision_key_matches, requires_pkce, store_code};
use super::params::{Param, lua_escape};
use super::records::CodeGrant;
use super::{OAuthError, Params, https, json};
use crate::graph::{CompiledScope, Ctx, DecisionGraph};
use crate::model::ScopeId;
use crate::{Reply, Services};

pub(super) fn authorize(
    graph: &DecisionGraph,
    ctx: &Ctx<'_>,
    scope: ScopeId,
    params: &Params,
    services: &dyn Services,
) -> Reply {
    let s = graph.scope(scope);
    let k = &s.settings.kong;
    let state = params.str("state");
    let early = if !https(ctx.req, k.accept_http_if_already_terminated) {
        Some(OAuthError::new("access_denied", "You must use HTTPS"))
    } else if !provision_key_matches(s, params) {
        Some(OAuthError::new(
            "invalid_provision_key",
            "Invalid provision_key",
        ))
    } else if params
        .str("authenticated_userid")
        .is_none_or(|u| u.trim().is_empty())
    {
        Some(OAuthError::new(
            "invalid_authenticated_userid",
            "Missing authenticated_userid parameter",
        ))
    } else {
        params.str("authenticated_userid").and_then(super::bad_user)
    };
    if let Some(e) = early {
        return error_body(&e, state);
    }
    let user = params.str("authenticated_userid").unwrap_or_default();

    let mut error = None;
    let response_type = params.str("response_type").unwrap_or("");
    let implicit = response_type == "token";
    if !((response_type == "code" && k.enable_authorization_code)
        || (implicit && k.enable_implicit_grant))
    {
        error = Some(OAuthError::new(
            "unsupported_response_type",
            "Invalid response_type",
        ));
    }
    let scopes = requested_scope(s, params);
    if let Err(e) = &scopes {
        error = Some(e.clone());
    }
    let client = params
        .str("client_id")
        .filter(|id| !id.is_empty())
        .and_then(|id| s.clients.get_key_value(id))
        .filter(|(_, (_, keys))| !keys.redirect_uris.is_empty());
    let mut redirect = None;
    match client {
        None => {
            error = Some(OAuthError::new(
                "invalid_client",
                "Invalid client authentication",
            ))
        }
        Some((_, (_, keys))) => {
            let first = &keys.redirect_uris[0];
            match params.get("redirect_uri") {
                None => redirect = Some(first.as_str()),
                Some(Param::Str(u)) if keys.redirect_uris.iter().any(|r| r == u) => {
                    redirect = Some(u.as_str())
                }
                Some(_) => {
                    error = Some(OAuthError::new(
                        "invalid_request",
                        "Invalid redirect_uri that does not match with any redirect_uri created with the application",
                    ));
                    redirect = Some(first.as_str());
                }
            }
        }
    }
    let (challenge, challenge_failed) = match challenge(params) {
        Err(e) => {
            error = Some(e);
            (None, true)
        }
        Ok(c) => (c, false),
    };
    if let Some((_, (_, keys))) = client
        && challenge.is_none()
        && !challenge_failed
        && requires_pkce(s, keys)
    {
        let kind = if matches!(keys.check, crate::model::ClientSecret::Public) {
            "public"
        } else {
            "confidential"
        };
        error = Some(OAuthError::new(
            "invalid_request",
            format!("code_challenge is required for {kind} clients"),
        ));
    }

    let mut out = Map::new();
    let mut issued = false;
    let mut reason = String::new();
    if let (None, Some((client_id, (consumer, _)))) = (&error, client) {
        {
            let scope_str = scopes.ok().flatten();
            let done = if implicit {
                generate(
                    graph,
                    ctx,
                    scope,
                    &Grant {
                        consumer: *consumer,
                        client_id,
                        user: Some(user),
                        scope: scope_str.as_deref(),
                    },
                    Refresh::None,
                    services,
                )
                .map_err(OAuthError::from)
            } else {
                let grant = CodeGrant {
                    client_id: client_id.to_string(),
                    authenticated_userid: Some(user.to_string()),
                    scope: scope_str,
                    challenge,
                    plugin: s.label.to_string(),
                    aud: if s.settings.global_credentials {
                        "default".into()
                    } else {
                        ctx.service_key().into()
                    },
                };
                store_code(services, &grant).map(|code| {
                    let mut m = Map::new();
                    m.insert("code".into(), code.into());
                    m
                })
            };
            match done {
                Ok(m) => {
                    out = m;
                    issued = true;
                    reason = format!(
                        "authorized `{}` ({})",
                        graph.consumer_name(*consumer),
                        if implicit { "implicit token" } else { "code" }
                    );
                }
                Err(e) => error = Some(e),
            }
        }
    }
    if let Some(e) = &error {
        out.insert("error".into(), e.error.into());
        out.insert("error_description".into(), e.description.clone().into());
        reason = format!("authorization refused: {}: {}", e.error, e.description);
    }
    if let Some(state) = state {
        out.insert("state".into(), state.into());
    }
    let status = match &error {
        // The store could not keep the code (or the implicit grant's
        // revocations): the server's fault, as the token endpoint says.
        Some(e) if e.error == "temporarily_unavailable" => 503,
        Some(_) => 400,
        None => 200,
    };
    let body = match redirect {
        Some(uri) => json!({"redirect_uri": with_params(uri, &out, implicit && issued)}),
        None => Value::Object(out),
    };
    json(status, &body, reason)
}

fn error_body(e: &OAuthError, state: Option<&str>) -> Reply {
    let mut body = json!({"error": e.error, "error_description": e.description});
    if let Some(state) = state {
        body["state"] = state.into();
    }
    json(
        400,
        &body,
        format!("authorization refused: {}: {}", e.error, e.description),
    )
}

/// Kong's `retrieve_scope`: with `scopes` configured, each requested scope
/// must be one of them (joined with single spaces); without a scope,
/// `mandatory_scope` refuses. Without `scopes`, a requested scope is ignored.
pub(super) fn requested_scope(
    s: &CompiledScope,
    params: &Params,
) -> Result<Option<String>, OAuthError> {
    let k = &s.settings.kong;
    let requested = params.get("scope");
    match (&k.scopes, requested) {
        (Some(_), Some(Param::Other)) => {
            Err(OAuthError::new("invalid_scope", "scope must be a string"))
        }
        (Some(allowed), Some(Param::Str(text))) => {
            let mut out = Vec::new();
            for v in text.split_whitespace() {
                if !allowed.iter().any(|a| a == v) {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        format!("\"{v}\" is an invalid scope"),
                    ));
                }
                out.push(v);
            }
            Ok((!out.is_empty()).then(|| out.join(" ")))
        }
        (_, None) if k.mandatory_scope => {
            Err(OAuthError::new("invalid_scope", "You must specify a scope"))
        }
        _ => Ok(None),
    }
}

/// Kong's `retrieve_code_challenge`: the S256 challenge, normalised to
/// base64url without padding; `plain` and other methods are refused.
fn challenge(params: &Params) -> Result<Option<String>, OAuthError> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let method = params.get("code_challenge_method");
    let Some(challenge) = params.get("code_challenge") else {
        if method.is_some() {
            return Err(OAuthError::new(
                "invalid_request",
                "code_challenge is required when code_method is present",
            ));
        }
        return Ok(None);
    };
    match method {
        None => {}
        Some(Param::Str(m)) if m == "S256" || m == "s256" => {}
        Some(_) => {
            return Err(OAuthError::new(
                "invalid_request",
                "code_challenge_method is not supported, must be S256",
            ));
        }
    }
    let Param::Str(challenge) = challenge else {
        return Err(OAuthError::new(
            "invalid_request",
            "code_challenge must be a string",
        ));
    };
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let normal = challenge.replace('+', "-").replace('/', "_");
    Ok(Some(match LENIENT.decode(&normal) {
        Ok(bytes) => URL_SAFE_NO_PAD.encode(bytes),
        Err(_) => challenge.clone(),
    }))
}

/// `uri` with `params` merged into its query (or, for an implicit grant's
/// token, its fragment), re-encoded as Kong's `encode_args` does: keys
/// sorted, every byte but `A-Z a-z 0-9 _` escaped.
fn with_params(uri: &str, params: &Map<String, Value>, in_fragment: bool) -> String {
    let (rest, fragment) = match uri.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (uri, None),
    };
    let (base, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let merge = |existing: Option<&str>| {
        let mut all: std::collections::BTreeMap<String, String> = existing
            .map(|e| {
                form_urlencoded::parse(e.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        for (k, v) in params {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            all.insert(k.clone(), v);
        }
        all.iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    lua_escape(k)
                } else {
                    format!("{}={}", lua_escape(k), lua_escape(v))
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    };
    if in_fragment {
        let q = query.map(|q| format!("?{q}")).unwrap_or_default();
        format!("{base}{q}#{}", merge(fragment))
    } else {
        let f = fragment.map(|f| format!("#{f}")).unwrap_or_default();
        format!("{base}?{}{f}", merge(query))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_built_as_kong_builds_them() {
        let mut p = Map::new();
        p.insert("error".into(), "invalid_scope".into());
        p.insert(
            "error_description".into(),
            "\"wot\" is an invalid scope".into(),
        );
        assert_eq!(
            with_params("http://google.com/kong", &p, false),
            "http://google.com/kong?error=invalid_scope&error_description=%22wot%22%20is%20an%20invalid%20scope"
        );
        let mut p = Map::new();
        p.insert("code".into(), "abc".into());
        p.insert("state".into(), "s 1".into());
        assert_eq!(
            with_params("http://x.com/cb?a=1&z=2", &p, false),
            "http://x.com/cb?a=1&code=abc&state=s%201&z=2"
        );
        p.insert("expires_in".into(), 5.into());
        assert_eq!(
            with_params("http://x.com/cb?a=1", &p, true),
            "http://x.com/cb?a=1#code=abc&expires_in=5&state=s%201"
        );
    }
}
