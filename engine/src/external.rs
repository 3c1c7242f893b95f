//! Tokens of external issuers (`jwt_issuer`): JWTs an identity provider
//! signed with a key it publishes, accepted by a scope that lists the
//! issuer in `issuers`.
//!
//! A scope tries an issuer only when the token's (unverified) `iss` is
//! exactly that issuer's, never its own. Then, in order: the header (an
//! algorithm the issuer allows, no `crit`, no key carried or pointed at),
//! the key (by `kid`; the key's type and own `alg` must fit the token's
//! algorithm), the signature (checked by the host, natively), then the
//! claims: `iss`, an accepted `aud`, `exp`/`nbf`/`iat` with the scope's
//! clock skew, the consumer claim, and the required scopes. Every refusal
//! is a [`TokenError`] naming the class, never echoing the token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::Services;
use crate::keys::{Alg, KeyRef, SigCheck};
use crate::model::{ConsumerId, ExternalIssuer, IssuerKeys, PublicJwk};
use crate::token::{MAX_TOKEN_LEN, TokenError};

/// Who a verified external token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    /// The policy's consumer of that name, when it lists one.
    pub consumer: Option<ConsumerId>,
    /// The consumer claim's value.
    pub name: String,
    /// Headers for the upstream (`claims_to_headers`).
    pub headers: Vec<(String, String)>,
}

/// The three segments, decoded header and claims as JSON objects.
struct Parts<'t> {
    header: serde_json::Map<String, Value>,
    claims: serde_json::Map<String, Value>,
    message: &'t str,
    signature: &'t str,
}

fn object(segment: &str) -> Result<serde_json::Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenError::BadHeader),
    }
}

fn split(token: &str) -> Result<Parts<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(TokenError::Malformed);
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(TokenError::Malformed);
    }
    let header = object(h)?;
    let claims = object(p).map_err(|e| match e {
        TokenError::BadHeader => {
            TokenError::BadClaims("the claims set is not a JSON object".into())
        }
        other => other,
    })?;
    Ok(Parts {
        header,
        claims,
        message: &token[..h.len() + 1 + p.len()],
        signature: s,
    })
}

/// The token's `iss`, unverified: which issuer to try (nothing else is
/// trusted from it). `None` when it has no string `iss` or does not decode.
pub(crate) fn peek_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    if payload.len() > MAX_TOKEN_LEN {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: String,
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok().map(|i| i.iss)
}

fn str_claim<'c>(claims: &'c serde_json::Map<String, Value>, name: &str) -> Option<&'c str> {
    claims.get(name).and_then(Value::as_str)
}

/// A NumericDate claim: absent, or an integer (or integral float) ≥ 0.
fn time_claim(
    claims: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| *f >= 0.0 && f.is_finite())
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| TokenError::BadClaims(format!("`{name}` is not a NumericDate"))),
    }
}

/// The scopes a token grants: `scope` (space-separated) or else `scp` (a
/// list, or a space-separated string).
fn granted_scopes(claims: &serde_json::Map<String, Value>) -> Vec<&str> {
    match claims.get("scope").or_else(|| claims.get("scp")) {
        Some(Value::String(s)) => s.split(' ').filter(|s| !s.is_empty()).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Verify `token` as issued by `issuer`, at `now` with `skew` seconds of
/// leeway.
/// `refreshed`: the host has just fetched the issuer's JWK Set again, so an
/// unknown key is refused rather than asked for once more.
pub(crate) fn verify(
    issuer: &ExternalIssuer,
    token: &str,
    (now, skew, refreshed): (u64, u64, bool),
    services: &dyn Services,
) -> Result<Principal, TokenError> {
    let p = split(token)?;
    let alg_name = p
        .header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(TokenError::BadHeader)?;
    let alg = Alg::parse(alg_name)
        .filter(|a| issuer.algorithms.contains(a))
        .ok_or_else(|| {
            TokenError::Algorithm(
                alg_name
                    .chars()
                    .take(16)
                    .flat_map(char::escape_default)
                    .collect(),
            )
        })?;
    if p.header.contains_key("crit") {
        return Err(TokenError::Critical);
    }
    if ["jwk", "jku", "x5u", "x5c"]
        .iter()
        .any(|k| p.header.contains_key(*k))
    {
        return Err(TokenError::EmbeddedKey);
    }
    // Identity providers type access tokens `at+jwt` (RFC 9068) or `JWT`,
    // or not at all; an ID token or another JOSE object is refused.
    match p.header.get("typ") {
        None => {}
        Some(Value::String(t))
            if ["jwt", "at+jwt", "application/at+jwt"]
                .iter()
                .any(|ok| t.eq_ignore_ascii_case(ok)) => {}
        Some(_) => return Err(TokenError::Type),
    }
    let kid = match p.header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(TokenError::BadHeader),
    };
    let check = match &issuer.keys {
        IssuerKeys::Inline(keys) => match PublicJwk::select(keys, kid, alg) {
            Some(jwk) => {
                services.verify_signature(KeyRef::Jwk(&jwk.json), alg, p.message, p.signature)
            }
            None => SigCheck::UnknownKey,
        },
        IssuerKeys::Url { url, .. } => {
            match services.verify_signature(
                KeyRef::Remote { url, kid },
                alg,
                p.message,
                p.signature,
            ) {
                SigCheck::UnknownKey if !refreshed => {
                    return Err(TokenError::RefreshKeys(url.clone()));
                }
                other => other,
            }
        }
    };
    match check {
        SigCheck::Valid => {}
        SigCheck::Invalid => return Err(TokenError::Signature),
        SigCheck::UnknownKey => return Err(TokenError::UnknownKey),
    }
    let c = &p.claims;
    if str_claim(c, "iss") != Some(issuer.iss.as_str()) {
        return Err(TokenError::Issuer);
    }
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => issuer.audiences.iter().any(|w| w == a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| issuer.audiences.iter().any(|w| w == a)),
        _ => false,
    };
    if !aud_ok {
        return Err(TokenError::Audience);
    }
    let exp =
        time_claim(c, "exp")?.ok_or_else(|| TokenError::BadClaims("missing field `exp`".into()))?;
    if now > exp.saturating_add(skew) {
        return Err(TokenError::Expired);
    }
    if time_claim(c, "nbf")?.is_some_and(|nbf| now < nbf.saturating_sub(skew)) {
        return Err(TokenError::NotYetValid);
    }
    if time_claim(c, "iat")?.is_some_and(|iat| now < iat.saturating_sub(skew)) {
        return Err(TokenError::IssuedInFuture);
    }
    let name = str_claim(c, &issuer.consumer_claim)
        .filter(|n| !n.is_empty() && n.len() <= 256 && !n.chars().any(char::is_control))
        .ok_or_else(|| TokenError::NoConsumer(issuer.consumer_claim.clone()))?;
    let granted = granted_scopes(c);
    if let Some(missing) = issuer
        .required_scopes
        .iter()
        .find(|r| !granted.contains(&r.as_str()))
    {
        return Err(TokenError::InsufficientScope(missing.clone()));
    }
    let consumer = issuer
        .consumers
        .iter()
        .find(|(n, _)| n == name)
        .map(|&(_, id)| id);
    let headers = issuer
        .claims_to_headers
        .iter()
        .filter_map(|(claim, header)| {
            let v = str_claim(c, claim)?;
            // A header value cannot hold control characters.
            (!v.chars().any(char::is_control)).then(|| (header.clone(), v.to_string()))
        })
        .collect();
    Ok(Principal {
        consumer,
        name: name.to_string(),
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(kid: Option<&str>, kty: &str, crv: Option<&str>, alg: Option<Alg>) -> PublicJwk {
        PublicJwk {
            kid: kid.map(str::to_string),
            kty: kty.into(),
            crv: crv.map(str::to_string),
            alg,
            json: String::new(),
        }
    }

    #[test]
    fn keys_are_picked_by_kid_and_must_fit_the_algorithm() {
        let keys = [
            jwk(Some("r"), "RSA", None, None),
            jwk(Some("e"), "EC", Some("P-256"), Some(Alg::ES256)),
            jwk(None, "OKP", Some("Ed25519"), None),
        ];
        assert_eq!(
            PublicJwk::select(&keys, Some("r"), Alg::RS256)
                .unwrap()
                .kid
                .as_deref(),
            Some("r")
        );
        assert!(PublicJwk::select(&keys, Some("r"), Alg::ES256).is_none());
        assert!(PublicJwk::select(&keys, Some("e"), Alg::ES384).is_none());
        assert!(PublicJwk::select(&keys, Some("x"), Alg::RS256).is_none());
        assert_eq!(
            PublicJwk::select(&keys, None, Alg::EdDSA).unwrap().kty,
            "OKP"
        );
        let two_rsa = [
            jwk(Some("a"), "RSA", None, None),
            jwk(Some("b"), "RSA", None, None),
        ];
        assert!(
            PublicJwk::select(&two_rsa, None, Alg::RS256).is_none(),
            "ambiguous without a kid"
        );
    }

    #[test]
    fn scopes_read_scope_then_scp() {
        let claims = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            granted_scopes(&claims(serde_json::json!({"scope": "a  b"}))),
            ["a", "b"]
        );
        assert_eq!(
            granted_scopes(&claims(serde_json::json!({"scp": ["a", 1, "c"]}))),
            ["a", "c"]
        );
        assert_eq!(
            granted_scopes(&claims(serde_json::json!({"scope": "x", "scp": ["y"]}))),
            ["x"]
        );
        assert!(granted_scopes(&claims(serde_json::json!({}))).is_empty());
    }
}
