//! Kong's authorization endpoint (`authorize` in Kong's `access.lua`): the
//! application's own page, having authenticated the user, POSTs the
//! `provision_key`, `authenticated_userid`, `client_id`, `response_type`
//! (`code` or `token`), `scope`, `redirect_uri`, `state` and PKCE challenge,
//! and gets back `{"redirect_uri": …}` to send the user to — with a code in
//! the query, an access token in the fragment (implicit), or the error.
//! Kong's order: HTTPS, provision key and user stop at once; the later
//! checks all run and the last failure wins ([`check`]), then the code or
//! token is issued ([`issue`]) — both shared with Warden's own
//! authorization page (`page`), which redirects where this answers JSON.

use serde_json::{Map, Value, json};

use super::grant::{Grant, Refresh, generate, provision_key_matches, requires_pkce, store_code};
use super::params::{Param, lua_escape};
use super::records::CodeGrant;
use super::{OAuthError, Params, https, json};
use crate::graph::{ClientKeys, CompiledScope, Ctx, DecisionGraph};
use crate::model::{ConsumerId, ScopeId};
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

    let checked = check(s, params);
    let mut error = checked.error.clone();
    let mut out = Map::new();
    let mut issued = false;
    let mut reason = String::new();
    if error.is_none() && checked.client.is_some() {
        match issue(graph, ctx, scope, &checked, user, services) {
            Ok((m, why)) => {
                out = m;
                issued = true;
                reason = why;
            }
            Err(e) => error = Some(e),
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
    let body = match checked.redirect {
        Some(uri) => json!({"redirect_uri": with_params(uri, &out, checked.implicit && issued)}),
        None => Value::Object(out),
    };
    json(status, &body, reason)
}

/// What Kong's `authorize` finds in a request after its first checks
/// (HTTPS, provision key, user): the client, where to redirect, and the
/// last failure of the checks that all run.
pub(super) struct Checked<'g> {
    /// The client (with redirect URIs) that `client_id` names.
    pub(super) client: Option<(&'g str, ConsumerId, &'g ClientKeys)>,
    /// The `redirect_uri` given, when registered; the client's first one
    /// when none is given or (Kong) when it does not match.
    pub(super) redirect: Option<&'g str>,
    /// A `redirect_uri` was given and is not the client's.
    pub(super) redirect_mismatch: bool,
    /// `response_type=token`.
    pub(super) implicit: bool,
    /// The scopes granted (joined with spaces).
    pub(super) scope: Option<String>,
    /// The PKCE S256 challenge, normalised.
    pub(super) challenge: Option<String>,
    /// The last check that failed, as Kong's `response_params` keeps it.
    pub(super) error: Option<OAuthError>,
}

/// Kong's checks of response type, scope, client, redirect URI and PKCE,
/// in Kong's order (a later failure replaces an earlier one).
pub(super) fn check<'g>(s: &'g CompiledScope, params: &Params) -> Checked<'g> {
    let k = &s.settings.kong;
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
        .and_then(|id| s.clients.get(id))
        .filter(|c| !c.keys.redirect_uris.is_empty())
        .map(|c| (&*c.id, c.consumer, &c.keys));
    let mut redirect = None;
    let mut redirect_mismatch = false;
    match client {
        None => {
            error = Some(OAuthError::new(
                "invalid_client",
                "Invalid client authentication",
            ))
        }
        Some((_, _, keys)) => {
            let first = keys.redirect_uris[0].as_str();
            let given = match params.get("redirect_uri") {
                None => Some(first),
                Some(Param::Str(u)) => keys
                    .redirect_uris
                    .iter()
                    .find(|r| *r == u)
                    .map(String::as_str),
                Some(_) => None,
            };
            if given.is_none() {
                error = Some(OAuthError::new(
                    "invalid_request",
                    "Invalid redirect_uri that does not match with any redirect_uri created with the application",
                ));
                redirect_mismatch = true;
            }
            redirect = Some(given.unwrap_or(first));
        }
    }
    let (challenge, challenge_failed) = match challenge(params) {
        Err(e) => {
            error = Some(e);
            (None, true)
        }
        Ok(c) => (c, false),
    };
    if let Some((_, _, keys)) = client
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
    Checked {
        client,
        redirect,
        redirect_mismatch,
        implicit,
        scope: scopes.ok().flatten(),
        challenge,
        error,
    }
}

/// Grant what `checked` (without an error) asks for to `user`: a code in
/// the store, or (implicit) an access token; the redirect's parameters and
/// a reason for the log.
pub(super) fn issue(
    graph: &DecisionGraph,
    ctx: &Ctx<'_>,
    scope: ScopeId,
    checked: &Checked<'_>,
    user: &str,
    services: &dyn Services,
) -> Result<(Map<String, Value>, String), OAuthError> {
    let s = graph.scope(scope);
    let Some((client_id, consumer, _)) = checked.client else {
        return Err(OAuthError::invalid_client());
    };
    let out = if checked.implicit {
        generate(
            graph,
            ctx,
            scope,
            &Grant {
                consumer,
                client_id,
                user: Some(user),
                scope: checked.scope.as_deref(),
            },
            Refresh::None,
            services,
        )
        .map_err(OAuthError::from)?
    } else {
        let grant = CodeGrant {
            client_id: client_id.to_string(),
            authenticated_userid: Some(user.to_string()),
            scope: checked.scope.clone(),
            challenge: checked.challenge.clone(),
            plugin: s.label.to_string(),
            aud: if s.settings.global_credentials {
                "default".into()
            } else {
                ctx.service_key().into()
            },
        };
        let code = store_code(services, &grant)?;
        let mut m = Map::new();
        m.insert("code".into(), code.into());
        m
    };
    let reason = format!(
        "authorized `{}` ({})",
        graph.consumer_name(consumer),
        if checked.implicit {
            "implicit token"
        } else {
            "code"
        }
    );
    Ok((out, reason))
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
pub(super) fn with_params(uri: &str, params: &Map<String, Value>, in_fragment: bool) -> String {
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
