//! What a policy whose tokens the host's keys sign publishes, so that
//! others verify them without sharing a secret: the host's public keys at
//! `/.well-known/jwks.json` (RFC 7517) and, for each such scope whose
//! `issuer` is a URL, its authorization server metadata (RFC 8414) at
//! `/.well-known/oauth-authorization-server` followed by the issuer's path.
//!
//! The metadata is resolved when the policy compiles; only the key set is
//! asked of the host per request (its keys rotate without a recompile).
//! A policy signing HS256 alone publishes nothing: those paths stay
//! ordinary requests, exactly as before.

use crate::model::{Dialect, Scope};
use crate::request::{Reply, Request};
use crate::services::Services;

/// Where the host's public keys are published.
pub(super) const JWKS_PATH: &str = "/.well-known/jwks.json";
/// RFC 8414 §3: the metadata's well-known prefix.
pub(super) const METADATA_PREFIX: &str = "/.well-known/oauth-authorization-server";

/// The documents a compiled policy serves.
#[derive(Debug, Default)]
pub(super) struct Published {
    /// Whether any scope signs with the host's keys.
    jwks: bool,
    /// (path, metadata JSON) for each such scope with a URL issuer; the
    /// first scope declared wins a path.
    metadata: Vec<(Box<str>, Box<str>)>,
}

impl Published {
    /// What `scopes` publish.
    pub(super) fn of(scopes: &[Scope]) -> Published {
        let mut p = Published::default();
        for s in scopes
            .iter()
            .filter(|s| s.settings.signing_alg.is_asymmetric())
        {
            p.jwks = true;
            let Some((origin, path)) = url_parts(&s.settings.issuer) else {
                continue;
            };
            let at = format!("{METADATA_PREFIX}{path}");
            if p.metadata.iter().any(|(known, _)| **known == *at) {
                continue;
            }
            let doc = metadata(s, origin);
            p.metadata.push((at.into(), doc.into()));
        }
        p
    }

    /// The reply for `req` when its path is a published document.
    pub(super) fn answer(&self, req: &Request<'_>, services: &dyn Services) -> Option<Reply> {
        if !self.jwks || !req.path.starts_with("/.well-known/") {
            return None;
        }
        let body = if req.path == JWKS_PATH {
            services.public_keys()
        } else {
            let (_, doc) = self.metadata.iter().find(|(p, _)| **p == *req.path)?;
            doc.to_string()
        };
        if !matches!(req.method, "GET" | "HEAD") {
            return Some(Reply {
                status: 405,
                headers: vec![("allow".into(), "GET, HEAD".into())],
                body: Vec::new(),
                reason: format!("{} of a published document", req.method),
            });
        }
        Some(Reply {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                // Verifiers refetch within minutes of a key rotation.
                ("cache-control".into(), "public, max-age=300".into()),
            ],
            body: if req.method == "HEAD" {
                Vec::new()
            } else {
                body.into_bytes()
            },
            reason: format!("published {}", req.path),
        })
    }
}

/// `https://host[:port][/path]` → (`https://host[:port]`, `/path` without a
/// trailing `/`); `None` for an issuer that is not an http(s) URL.
fn url_parts(issuer: &str) -> Option<(&str, &str)> {
    let rest = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))?;
    if rest.is_empty() || rest.contains(['?', '#']) {
        return None;
    }
    let split = rest
        .find('/')
        .map_or(issuer.len(), |i| issuer.len() - rest.len() + i);
    let (origin, path) = issuer.split_at(split);
    Some((origin, path.trim_end_matches('/')))
}

/// RFC 8414 §2 metadata for scope `s`, whose endpoints live under its issuer.
fn metadata(s: &Scope, origin: &str) -> String {
    let issuer = s.settings.issuer.trim_end_matches('/');
    let k = &s.settings.kong;
    let mut doc = serde_json::Map::new();
    doc.insert("issuer".into(), s.settings.issuer.clone().into());
    let (token_path, grants, responses): (&str, Vec<&str>, Vec<&str>) = match s.settings.dialect {
        Dialect::Higress => (&s.settings.auth_path, vec!["client_credentials"], vec![]),
        Dialect::Kong => {
            let mut grants = Vec::new();
            let mut responses = Vec::new();
            if k.enable_authorization_code {
                grants.push("authorization_code");
                responses.push("code");
            }
            if k.enable_implicit_grant {
                grants.push("implicit");
                responses.push("token");
            }
            if k.enable_client_credentials {
                grants.push("client_credentials");
            }
            if k.enable_password_grant {
                grants.push("password");
            }
            if k.enable_authorization_code || k.enable_password_grant {
                grants.push("refresh_token");
            }
            ("/oauth2/token", grants, responses)
        }
    };
    if !responses.is_empty() {
        doc.insert(
            "authorization_endpoint".into(),
            format!("{issuer}/oauth2/authorize").into(),
        );
    }
    doc.insert(
        "token_endpoint".into(),
        format!("{issuer}{token_path}").into(),
    );
    doc.insert("jwks_uri".into(), format!("{origin}{JWKS_PATH}").into());
    if let Some(scopes) = &k.scopes {
        doc.insert("scopes_supported".into(), scopes.clone().into());
    }
    // RFC 8414: REQUIRED, even for a server without an authorization endpoint.
    doc.insert("response_types_supported".into(), responses.into());
    doc.insert("grant_types_supported".into(), grants.into());
    doc.insert(
        "token_endpoint_auth_methods_supported".into(),
        vec!["client_secret_basic", "client_secret_post"].into(),
    );
    if k.enable_authorization_code {
        doc.insert(
            "code_challenge_methods_supported".into(),
            vec!["S256"].into(),
        );
    }
    serde_json::Value::Object(doc).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_urls_split_into_origin_and_path() {
        assert_eq!(
            url_parts("https://gw.example"),
            Some(("https://gw.example", ""))
        );
        assert_eq!(
            url_parts("https://gw.example:8443/api/"),
            Some(("https://gw.example:8443", "/api"))
        );
        assert_eq!(
            url_parts("http://127.0.0.1:8080/a/b"),
            Some(("http://127.0.0.1:8080", "/a/b"))
        );
        assert_eq!(url_parts("Higress-Gateway"), None);
        assert_eq!(url_parts("https://"), None);
        assert_eq!(url_parts("https://x/?q"), None);
    }
}
