//! JWT access tokens: issue and verify (RFC 9068 profile, Higress-compatible).
//!
//! Tokens are HS256 JWTs signed with the consumer's client secret (or the
//! scope's `signing_key`) — or, with a scope's `signing_alg`, RS256, ES256 or
//! EdDSA JWTs signed by a key the host holds, named by `kid` ([`Signing`]) —
//! header `typ` `application/at+jwt`, claims `aud`,
//! `client_id`, `exp`, `iat`, `iss`, `jti`, optional `scope`, and `sub` (the
//! consumer name) — exactly what a Higress gateway issues, so tokens cross
//! between the two unchanged; Kong-dialect tokens may add
//! `authenticated_userid`.
//!
//! Verification is split so the caller can pick the key between the steps:
//! [`parse`] checks the structure, header (the scope's one algorithm, RFC
//! 8725) and claim types without trusting anything; the caller finds the
//! consumer by `client_id`; then [`Unverified::verify`] checks the signature
//! (HS256 with `jsonwebtoken`; a host key through [`Services`]) and the
//! registered claims against the host's
//! clock — not the system clock, so `WARDEN_NOW` and every host agree.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::Services;
use crate::keys::{Alg, KeyRef, SigCheck};
use crate::model::Secret;

/// What signs (and verifies) a scope's tokens.
#[derive(Debug, Clone)]
pub enum Signing {
    /// HS256 with this key: the client secret, or the scope's `signing_key`.
    Hmac(Secret),
    /// The host's current key for this (asymmetric) algorithm; tokens name
    /// it by `kid`, and any host key of the algorithm verifies.
    Host(Alg),
}

impl Signing {
    /// The one algorithm tokens signed this way carry.
    pub fn alg(&self) -> Alg {
        match self {
            Signing::Hmac(_) => Alg::HS256,
            Signing::Host(alg) => *alg,
        }
    }
}

/// The JWT `typ` of access tokens (RFC 9068 §2.1).
pub const TYP: &str = "application/at+jwt";

/// Longest token accepted; anything longer is rejected before decoding.
pub const MAX_TOKEN_LEN: usize = 8192;

/// Why a token was rejected. Messages are for logs: they never hold the token
/// or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("credential is not `Bearer <token>`")]
    NotBearer,
    #[error("more than one credential header")]
    Ambiguous,
    #[error("token is not three base64url segments")]
    Malformed,
    #[error("token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    #[error("token header is not valid JSON with an `alg`")]
    BadHeader,
    #[error("token algorithm `{0}` is not the one this scope's key is bound to")]
    Algorithm(String),
    #[error("token header embeds or points at a key (`jwk`, `jku`, `x5u`, `x5c`): refused")]
    EmbeddedKey,
    #[error("token has no `kid` naming the key that signed it")]
    NoKeyId,
    #[error("token `kid` names no key of this algorithm")]
    UnknownKey,
    #[error("token has no string claim `{0}` naming its consumer")]
    NoConsumer(String),
    #[error("token lacks the required scope `{0}`")]
    InsufficientScope(String),
    /// Not a refusal: the key may be new at the issuer; the host is to
    /// fetch its JWK Set again (`Decision::RefreshKeys`) and ask again.
    #[error("token `kid` not in the fetched key set yet: fetching it again")]
    RefreshKeys(String),
    #[error("token `typ` is not `application/at+jwt`")]
    Type,
    #[error("token has a `crit` header, and no extension is understood")]
    Critical,
    #[error("token claims are not valid JSON of the expected types: {0}")]
    BadClaims(String),
    #[error("token signature does not verify")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token issued in the future (`iat` beyond the allowed clock skew)")]
    IssuedInFuture,
    #[error("token not valid yet (`nbf`)")]
    NotYetValid,
    #[error("token issuer does not match")]
    Issuer,
    #[error("token subject does not name the client's consumer")]
    Subject,
    #[error("token audience does not match this route")]
    Audience,
    #[error("token client_id is not a known client here")]
    UnknownClient,
    #[error("token was revoked (refreshed)")]
    Revoked,
    #[error("token could not be signed: {0}")]
    Sign(String),
}

/// The claims Warden issues and checks, in Higress's (sorted) order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    pub client_id: String,
    pub exp: u64,
    pub iat: u64,
    pub iss: String,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub sub: String,
    /// Kong's `authenticated_userid`: the resource owner an
    /// authorization-code, implicit or password grant was for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated_userid: Option<String>,
}

/// Sign `claims` as `signing` says (`typ` `application/at+jwt`): HS256 here,
/// an asymmetric algorithm by the host, with the signing key's `kid`.
pub fn issue(
    claims: &Claims,
    signing: &Signing,
    services: &dyn Services,
) -> Result<String, TokenError> {
    match signing {
        Signing::Hmac(secret) => {
            crate::hmac_crypto::ensure_installed();
            let mut header = Header::new(Algorithm::HS256);
            header.typ = Some(TYP.to_string());
            jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret.expose()))
                .map_err(|e| TokenError::Sign(e.to_string()))
        }
        Signing::Host(alg) => {
            let kid = services
                .signing_key(*alg)
                .ok_or_else(|| TokenError::Sign(format!("the host has no {alg} signing key")))?;
            let header = serde_json::json!({"alg": alg.name(), "kid": kid, "typ": TYP});
            let claims = serde_json::to_vec(claims).map_err(|e| TokenError::Sign(e.to_string()))?;
            let message = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims)
            );
            let signature = services.sign(&kid, &message).ok_or_else(|| {
                TokenError::Sign(format!("the host could not sign with key `{kid}`"))
            })?;
            Ok(format!("{message}.{signature}"))
        }
    }
}

/// A random version-4 UUID, from 16 random bytes (the `jti` format Higress uses).
pub fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut h = [0u8; 32];
    // 16 bytes always fit 32 hex digits.
    let _ = hex::encode_to_slice(b, &mut h);
    // 8-4-4-4-12 hex digits (ASCII, so each byte is one char).
    let mut uuid = String::with_capacity(36);
    for (i, &digit) in h.iter().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            uuid.push('-');
        }
        uuid.push(char::from(digit));
    }
    uuid
}

/// The parts of a JOSE header Warden looks at. A key carried in the token
/// itself (`jwk`, `x5c`) or pointed at (`jku`, `x5u`) is never trusted or
/// fetched: a header with one is refused (RFC 8725 §3.10).
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Present,
    #[serde(default)]
    jwk: Present,
    #[serde(default)]
    jku: Present,
    #[serde(default)]
    x5u: Present,
    #[serde(default)]
    x5c: Present,
}

/// Whether a member is present at all, whatever its value (`null` included).
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Present(true))
    }
}

/// RFC 7515/7519: the header and the claims set are JSON objects (serde would
/// also read a struct from an array, field by field).
fn is_object(json: &[u8]) -> bool {
    json.trim_ascii_start().first() == Some(&b'{')
}

/// A structurally valid token whose signature has not been checked yet.
#[derive(Debug)]
pub struct Unverified<'t> {
    pub claims: Claims,
    /// The header's `kid`, if any.
    pub kid: Option<String>,
    message: &'t str,
    signature: &'t str,
}

/// Split and decode `token`, checking the header (`alg` exactly `alg`, typ,
/// no crit, no embedded key) and the claim types. Nothing here is trusted
/// until [`Unverified::verify`].
pub fn parse(token: &str, alg: Alg) -> Result<Unverified<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(TokenError::Malformed);
    }
    let header = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| TokenError::Malformed)?;
    if !is_object(&header) {
        return Err(TokenError::BadHeader);
    }
    let header: JoseHeader = serde_json::from_slice(&header).map_err(|_| TokenError::BadHeader)?;
    if header.alg != alg.name() {
        let alg: String = header
            .alg
            .chars()
            .take(16)
            .flat_map(char::escape_default)
            .collect();
        return Err(TokenError::Algorithm(alg));
    }
    if header.crit.0 {
        return Err(TokenError::Critical);
    }
    if header.jwk.0 || header.jku.0 || header.x5u.0 || header.x5c.0 {
        return Err(TokenError::EmbeddedKey);
    }
    match header.typ.as_deref() {
        Some(t) if t.eq_ignore_ascii_case(TYP) || t.eq_ignore_ascii_case("at+jwt") => {}
        _ => return Err(TokenError::Type),
    }
    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| TokenError::Malformed)?;
    if !is_object(&payload) {
        return Err(TokenError::BadClaims(
            "the claims set is not a JSON object".into(),
        ));
    }
    let claims: Claims =
        serde_json::from_slice(&payload).map_err(|e| TokenError::BadClaims(claim_error(&e)))?;
    let message = &token[..h.len() + 1 + p.len()];
    Ok(Unverified {
        claims,
        kid: header.kid,
        message,
        signature: s,
    })
}

/// A short description of a claims error without echoing token content.
fn claim_error(e: &serde_json::Error) -> String {
    // Only serde's messages about fields are kept: they quote a field name
    // (from our struct), never a value the client chose.
    let text = e.to_string();
    let short = text.split(" at line").next().unwrap_or_default();
    if short.starts_with("missing field `") || short.starts_with("duplicate field `") {
        short.to_string()
    } else if e.is_syntax() || e.is_eof() {
        "the claims set is not valid JSON".to_string()
    } else {
        "a claim has the wrong type".to_string()
    }
}

/// What a verified token must say.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub consumer: &'a str,
    /// `None` accepts any audience.
    pub audience: Option<&'a str>,
    pub now: u64,
    pub skew: u64,
}

/// The times a verified token is re-checked against on every use (with its
/// audience, see [`Validity::check`]). Kept by
/// [`crate::graph::VerifiedTokens`] so that a remembered token is judged
/// exactly as a fresh one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub exp: u64,
    pub iat: u64,
    pub nbf: Option<u64>,
}

impl Validity {
    /// The audience `aud`, then the times (`exp`, `iat`, `nbf` with `skew`
    /// seconds of leeway), in that order.
    pub fn check(&self, aud: &str, expect: &Expect<'_>) -> Result<(), TokenError> {
        if expect.audience.is_some_and(|want| aud != want) {
            return Err(TokenError::Audience);
        }
        if expect.now > self.exp.saturating_add(expect.skew) {
            return Err(TokenError::Expired);
        }
        if expect.now < self.iat.saturating_sub(expect.skew) {
            return Err(TokenError::IssuedInFuture);
        }
        if self
            .nbf
            .is_some_and(|nbf| expect.now < nbf.saturating_sub(expect.skew))
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

impl Claims {
    /// The times re-checked on every use of this token.
    pub fn validity(&self) -> Validity {
        Validity {
            exp: self.exp,
            iat: self.iat,
            nbf: self.nbf,
        }
    }
}

impl Unverified<'_> {
    /// Check the signature as `signing` says (the algorithm was checked by
    /// [`parse`]), then issuer, subject, audience and times (`exp`, `iat`,
    /// `nbf` with `skew` seconds of leeway).
    pub fn verify(
        self,
        signing: &Signing,
        expect: &Expect<'_>,
        services: &dyn Services,
    ) -> Result<Claims, TokenError> {
        match signing {
            Signing::Hmac(secret) => {
                crate::hmac_crypto::ensure_installed();
                let key = DecodingKey::from_secret(secret.expose());
                match jsonwebtoken::crypto::verify(
                    self.signature,
                    self.message.as_bytes(),
                    &key,
                    Algorithm::HS256,
                ) {
                    Ok(true) => {}
                    Ok(false) | Err(_) => return Err(TokenError::Signature),
                }
            }
            Signing::Host(alg) => {
                let kid = self.kid.as_deref().ok_or(TokenError::NoKeyId)?;
                match services.verify_signature(
                    KeyRef::Own(kid),
                    *alg,
                    self.message,
                    self.signature,
                ) {
                    SigCheck::Valid => {}
                    SigCheck::Invalid => return Err(TokenError::Signature),
                    SigCheck::UnknownKey => return Err(TokenError::UnknownKey),
                }
            }
        }
        let c = self.claims;
        if c.iss != expect.issuer {
            return Err(TokenError::Issuer);
        }
        if c.sub != expect.consumer {
            return Err(TokenError::Subject);
        }
        c.validity().check(&c.aud, expect)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample token from the Higress documentation, signed with consumer1's secret.
    const HIGRESS_SAMPLE: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6ImFwcGxpY2F0aW9uXC9hdCtqd3QifQ.eyJhdWQiOiJkZWZhdWx0IiwiY2xpZW50X2lkIjoiMTIzNDU2NzgteHh4eC14eHh4LXh4eHgteHh4eHh4eHh4eHh4IiwiZXhwIjoxNjg3OTUxNDYzLCJpYXQiOjE2ODc5NDQyNjMsImlzcyI6IkhpZ3Jlc3MtR2F0ZXdheSIsImp0aSI6IjEwOTU5ZDFiLThkNjEtNGRlYy1iZWE3LTk0ODEwMzc1YjYzYyIsInN1YiI6ImNvbnN1bWVyMSJ9.NkT_rG3DcV9543vBQgneVqoGfIhVeOuUBwLJJ4Wycb0";

    fn expect(now: u64) -> Expect<'static> {
        Expect {
            issuer: "Higress-Gateway",
            consumer: "consumer1",
            audience: Some("default"),
            now,
            skew: 60,
        }
    }

    fn secret() -> Signing {
        Signing::Hmac(Secret::new("abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx"))
    }

    fn parse(token: &str) -> Result<Unverified<'_>, TokenError> {
        super::parse(token, Alg::HS256)
    }

    #[test]
    fn higress_sample_verifies_inside_its_validity_only() {
        let t = parse(HIGRESS_SAMPLE).unwrap();
        assert_eq!(t.claims.client_id, "12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
        assert_eq!(t.claims.iat, 1_687_944_263);
        let c = t
            .verify(
                &secret(),
                &expect(1_687_944_263 + 100),
                &crate::FixedServices::default(),
            )
            .unwrap();
        assert_eq!(c.sub, "consumer1");
        let after = parse(HIGRESS_SAMPLE).unwrap().verify(
            &secret(),
            &expect(1_687_951_463 + 61),
            &crate::FixedServices::default(),
        );
        assert_eq!(after, Err(TokenError::Expired));
        let within_skew = parse(HIGRESS_SAMPLE).unwrap().verify(
            &secret(),
            &expect(1_687_951_463 + 60),
            &crate::FixedServices::default(),
        );
        assert!(within_skew.is_ok());
        let before = parse(HIGRESS_SAMPLE).unwrap().verify(
            &secret(),
            &expect(1_687_944_263 - 61),
            &crate::FixedServices::default(),
        );
        assert_eq!(before, Err(TokenError::IssuedInFuture));
        let wrong = parse(HIGRESS_SAMPLE).unwrap().verify(
            &Signing::Hmac(Secret::new("nope")),
            &expect(1_687_944_300),
            &crate::FixedServices::default(),
        );
        assert_eq!(wrong, Err(TokenError::Signature));
    }

    #[test]
    fn jti_is_a_version_4_uuid_of_its_bytes() {
        assert_eq!(uuid_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let bytes: [u8; 16] = std::array::from_fn(|i| i as u8 * 17);
        assert_eq!(uuid_v4(bytes), "00112233-4455-4677-8899-aabbccddeeff");
    }

    #[test]
    fn issued_tokens_round_trip_and_have_the_higress_shape() {
        let claims = Claims {
            aud: "default".into(),
            client_id: "12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx".into(),
            exp: 10_007_200,
            iat: 10_000_000,
            iss: "Higress-Gateway".into(),
            jti: uuid_v4([7; 16]),
            nbf: None,
            scope: None,
            sub: "consumer1".into(),
            authenticated_userid: None,
        };
        let token = issue(&claims, &secret(), &crate::FixedServices::default()).unwrap();
        let header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "HS256", "typ": "application/at+jwt"})
        );
        let back = parse(&token)
            .unwrap()
            .verify(
                &secret(),
                &expect(10_000_001),
                &crate::FixedServices::default(),
            )
            .unwrap();
        assert_eq!(back, claims);
        assert_eq!(claims.jti, "07070707-0707-4707-8707-070707070707");
    }

    #[test]
    fn hostile_headers_are_rejected() {
        let enc = |v: &str| URL_SAFE_NO_PAD.encode(v);
        let body = HIGRESS_SAMPLE.split('.').nth(1).unwrap();
        let with_header = |h: &str| format!("{}.{body}.sig", enc(h));
        let cases = [
            (
                r#"{"alg":"none","typ":"application/at+jwt"}"#,
                TokenError::Algorithm("none".into()),
            ),
            (
                r#"{"alg":"RS256","typ":"application/at+jwt"}"#,
                TokenError::Algorithm("RS256".into()),
            ),
            (
                r#"{"alg":"HS512","typ":"application/at+jwt"}"#,
                TokenError::Algorithm("HS512".into()),
            ),
            (r#"{"alg":"HS256","typ":"JWT"}"#, TokenError::Type),
            (r#"{"alg":"HS256"}"#, TokenError::Type),
            (
                r#"{"alg":"HS256","typ":"at+jwt","crit":["exp"]}"#,
                TokenError::Critical,
            ),
            (r#"{"typ":"at+jwt"}"#, TokenError::BadHeader),
            (
                "{\"alg\":\"€€€€€€\",\"typ\":\"at+jwt\"}",
                TokenError::Algorithm("\\u{20ac}".repeat(6)),
            ),
            ("not json", TokenError::BadHeader),
        ];
        for (h, want) in cases {
            assert_eq!(parse(&with_header(h)).unwrap_err(), want, "{h}");
        }
        for bad in ["", "a.b", "a.b.c.d", "..", "a..c", "@@.@@.@@"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse(&"a".repeat(MAX_TOKEN_LEN + 1)).unwrap_err(),
            TokenError::TooLong
        );
    }
}
