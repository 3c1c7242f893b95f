//! Tokens of an external identity provider (`jwt_issuer`, inline JWK Set),
//! decided end to end by the engine: the consumer its claim names reaches a
//! rule whose `allow` lists it, claims become headers (a client's own copy
//! is removed), scopes are required, and every way such a token can be
//! wrong is a 401 (403 for a missing scope) naming the class. The scope's
//! own tokens keep working beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use warden_engine::fixtures::{access_token, get, key_ring, pairs, token_target};
use warden_engine::internal::token::TokenError;
use warden_engine::{Decision, FixedServices, KeyRing, Policy};

const NOW: u64 = 1_700_000_000;
const POLICY: &str = r#"
issuer "https://gateway.example"
consumer consumer1 { client_id c1; client_secret "consumer1-secret-0123456789abcdef" }
jwt_issuer idp {
  iss               "https://idp.example"
  audiences         [warden, other]
  algorithms        [RS256, ES256]
  jwks              env IDP_JWKS
  consumers         [alice, bob]
  required_scopes   [read]
  claims_to_headers { email X-User-Email }
}
issuers [idp]
route a { path_prefix /a; upstream echo }
route b { path_prefix /b; upstream echo }
rule a { match route [a]; allow [alice, consumer1] }
rule b { match route [b]; issuers [idp]; keep_token false }
"#;

/// The identity provider's keys (test keys; its JWK Set is public).
fn idp() -> KeyRing {
    key_ring(&["rs256-a", "es256-a"])
}

struct Gw {
    policy: Policy,
    services: FixedServices,
}

fn gateway() -> Gw {
    let mut services = FixedServices::at(NOW);
    services.secrets = vec![("env:IDP_JWKS".into(), idp().public_jwks().into_bytes())];
    let policy = Policy::compile(POLICY, &services).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(policy.warnings().is_empty(), "{:?}", policy.warnings());
    Gw { policy, services }
}

fn claims(sub: &str) -> Value {
    json!({"iss": "https://idp.example", "aud": ["warden"], "sub": sub, "exp": NOW + 300,
           "iat": NOW, "scope": "read write", "email": format!("{sub}@example.com")})
}

fn sign(alg: &str, kid: Option<&str>, claims: &Value) -> String {
    let mut header = json!({"alg": alg, "typ": "at+jwt"});
    if let Some(k) = kid {
        header["kid"] = json!(k);
    }
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let msg = format!("{}.{}", b64(&header), b64(claims));
    let key = kid.unwrap_or("rs256-a");
    format!("{msg}.{}", idp().sign(key, msg.as_bytes()).unwrap())
}

fn decide(gw: &Gw, path: &str, token: &str, extra: &[(&str, &str)]) -> Decision {
    let mut headers = vec![("Authorization".to_string(), format!("Bearer {token}"))];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    gw.policy
        .decide(&get("localhost", path, &pairs(&headers)), &gw.services)
}

fn outcome(d: &Decision) -> String {
    match d {
        Decision::Forward(f) => format!("forward as {}", f.consumer.as_deref().unwrap_or("-")),
        Decision::Reply(r) => format!("{} {}", r.status, r.reason),
        other => format!("{other:?}"),
    }
}

#[test]
fn the_providers_tokens_name_consumers_that_allow_lists_use() {
    let gw = gateway();
    let alice = sign("RS256", Some("rs256-a"), &claims("alice"));
    let d = decide(&gw, "/a/x", &alice, &[("X-User-Email", "forged@evil")]);
    let f = d.forward().unwrap_or_else(|| panic!("{d:?}"));
    assert_eq!(f.consumer.as_deref(), Some("alice"));
    assert!(
        f.set_headers
            .contains(&("x-user-email".into(), "alice@example.com".into())),
        "{f:?}"
    );
    assert!(
        f.set_headers
            .contains(&("x-mse-consumer".into(), "alice".into())),
        "{f:?}"
    );
    assert!(
        f.remove_headers.iter().any(|h| h == "x-user-email"),
        "a client's copy is removed"
    );
    // ES256, by the other key, without a kid: the only EC key fits.
    let es = sign("ES256", Some("es256-a"), &claims("alice"));
    assert_eq!(outcome(&decide(&gw, "/a/x", &es, &[])), "forward as alice");

    // bob is the provider's, not in `allow`; carol is no consumer at all.
    let bob = sign("RS256", Some("rs256-a"), &claims("bob"));
    assert_eq!(decide(&gw, "/a/x", &bob, &[]).reply().unwrap().status, 403);
    let carol = sign("RS256", Some("rs256-a"), &claims("carol"));
    assert_eq!(
        decide(&gw, "/a/x", &carol, &[]).reply().unwrap().status,
        403
    );
    // A rule that only authenticates takes anyone the provider vouches for,
    // and removes the credential (`keep_token false`).
    let d = decide(&gw, "/b/x", &carol, &[]);
    let f = d.forward().unwrap_or_else(|| panic!("{d:?}"));
    assert_eq!(f.consumer.as_deref(), Some("carol"));
    assert!(
        f.remove_headers.iter().any(|h| h == "authorization"),
        "{f:?}"
    );

    // The gateway's own tokens still pass where their consumer is allowed.
    let d = gw.policy.decide(
        &get(
            "localhost",
            &token_target(
                "/a/oauth2/token",
                ("c1", "consumer1-secret-0123456789abcdef"),
            ),
            &[],
        ),
        &gw.services,
    );
    let own = access_token(&d).unwrap();
    assert_eq!(
        outcome(&decide(&gw, "/a/x", &own, &[])),
        "forward as consumer1"
    );
}

#[test]
fn every_wrong_provider_token_is_refused_with_its_class() {
    let gw = gateway();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims("alice");
        f(&mut c);
        c
    };
    let err = |e: TokenError| format!("401 {e}");
    let cases: Vec<(&str, String, String)> = vec![
        (
            "audience not accepted",
            sign(
                "RS256",
                Some("rs256-a"),
                &with(&|c| c["aud"] = json!("someone")),
            ),
            err(TokenError::Audience),
        ),
        (
            "no audience",
            sign(
                "RS256",
                Some("rs256-a"),
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("aud");
                }),
            ),
            err(TokenError::Audience),
        ),
        (
            "expired beyond the skew",
            sign(
                "RS256",
                Some("rs256-a"),
                &with(&|c| c["exp"] = json!(NOW - 61)),
            ),
            err(TokenError::Expired),
        ),
        (
            "no exp",
            sign(
                "RS256",
                Some("rs256-a"),
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            ),
            err(TokenError::BadClaims("missing field `exp`".into())),
        ),
        (
            "not yet valid",
            sign(
                "RS256",
                Some("rs256-a"),
                &with(&|c| c["nbf"] = json!(NOW + 120)),
            ),
            err(TokenError::NotYetValid),
        ),
        (
            "issued in the future",
            sign(
                "RS256",
                Some("rs256-a"),
                &with(&|c| c["iat"] = json!(NOW + 120)),
            ),
            err(TokenError::IssuedInFuture),
        ),
        (
            "no sub",
            sign(
                "RS256",
                Some("rs256-a"),
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("sub");
                }),
            ),
            err(TokenError::NoConsumer("sub".into())),
        ),
        (
            "scope read missing",
            sign(
                "RS256",
                Some("rs256-a"),
                &with(&|c| c["scope"] = json!("write")),
            ),
            "403 token lacks the required scope `read`".into(),
        ),
        (
            "kid unknown",
            {
                let t = sign("RS256", Some("rs256-a"), &claims("alice"));
                let (_, rest) = t.split_once('.').unwrap();
                let h = json!({"alg": "RS256", "kid": "zz"}).to_string();
                format!("{}.{rest}", URL_SAFE_NO_PAD.encode(h))
            },
            err(TokenError::UnknownKey),
        ),
        (
            "ES256 header, RSA key's kid",
            {
                let t = sign("RS256", Some("rs256-a"), &claims("alice"));
                let (_, rest) = t.split_once('.').unwrap();
                format!(
                    "{}.{rest}",
                    URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": "rs256-a"}).to_string())
                )
            },
            err(TokenError::UnknownKey),
        ),
        (
            "RS384 is not allowed",
            {
                let t = sign("RS256", Some("rs256-a"), &claims("alice"));
                let (_, rest) = t.split_once('.').unwrap();
                format!(
                    "{}.{rest}",
                    URL_SAFE_NO_PAD.encode(json!({"alg": "RS384", "kid": "rs256-a"}).to_string())
                )
            },
            err(TokenError::Algorithm("RS384".into())),
        ),
        (
            "HS256 keyed with the JWK Set",
            {
                use hmac::{Hmac, Mac};
                let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
                let msg = format!(
                    "{}.{}",
                    b64(&json!({"alg": "HS256"})),
                    b64(&claims("alice"))
                );
                let mut mac =
                    Hmac::<sha2::Sha256>::new_from_slice(idp().public_jwks().as_bytes()).unwrap();
                mac.update(msg.as_bytes());
                format!(
                    "{msg}.{}",
                    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
                )
            },
            err(TokenError::Algorithm("HS256".into())),
        ),
        (
            "signature of other claims",
            {
                let t = sign("RS256", Some("rs256-a"), &claims("alice"));
                let other = sign("RS256", Some("rs256-a"), &claims("bob"));
                let (head, _) = t.rsplit_once('.').unwrap();
                let (_, sig) = other.rsplit_once('.').unwrap();
                format!("{head}.{sig}")
            },
            err(TokenError::Signature),
        ),
        (
            "an id token (typ JOSE+JSON)",
            {
                let t = sign("RS256", Some("rs256-a"), &claims("alice"));
                let (_, rest) = t.split_once('.').unwrap();
                format!(
                    "{}.{rest}",
                    URL_SAFE_NO_PAD.encode(
                        json!({"alg": "RS256", "kid": "rs256-a", "typ": "dpop+jwt"}).to_string()
                    )
                )
            },
            err(TokenError::Type),
        ),
        (
            "jku header",
            {
                let t = sign("RS256", Some("rs256-a"), &claims("alice"));
                let (_, rest) = t.split_once('.').unwrap();
                format!(
                    "{}.{rest}",
                    URL_SAFE_NO_PAD.encode(
                        json!({"alg": "RS256", "kid": "rs256-a", "jku": "https://evil/jwks"})
                            .to_string()
                    )
                )
            },
            err(TokenError::EmbeddedKey),
        ),
    ];
    let mut failures = Vec::new();
    for (name, token, want) in &cases {
        let got = outcome(&decide(&gw, "/a/x", token, &[]));
        if &got != want {
            failures.push(format!("{name}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A token of an issuer the scope does not list is judged as its own.
    let stranger = sign(
        "RS256",
        Some("rs256-a"),
        &with(&|c| c["iss"] = json!("https://evil.example")),
    );
    assert_eq!(
        decide(&gw, "/a/x", &stranger, &[]).reply().unwrap().status,
        401
    );
    let r = decide(
        &gw,
        "/a/x",
        &sign("RS256", Some("rs256-a"), &with(&|c| c["scope"] = json!(""))),
        &[],
    );
    let challenge = &r
        .reply()
        .unwrap()
        .headers
        .iter()
        .find(|(k, _)| k == "www-authenticate")
        .unwrap()
        .1;
    assert!(
        challenge.contains(r#"error="insufficient_scope", scope="read""#),
        "{challenge}"
    );
}

#[test]
fn issuer_blocks_are_checked_at_the_line() {
    let services = FixedServices::at(NOW);
    let bad = [
        (
            "jwt_issuer x { iss a }",
            "jwt_issuer `x` needs `audiences`, `algorithms`, `jwks` or `jwks_url`",
        ),
        (
            "jwt_issuer x { iss a; audiences [b]; algorithms [HS256]; jwks_url \"https://x\" }",
            "`HS256` is not an algorithm",
        ),
        (
            "jwt_issuer x { iss a; audiences [b]; algorithms [RS256]; jwks \"{}\" }",
            "not a JWK Set",
        ),
        (
            "jwt_issuer x { iss a; audiences [b]; algorithms [RS256]; jwks \"{\\\"keys\\\":[{\\\"kty\\\":\\\"oct\\\",\\\"k\\\":\\\"AA\\\"}]}\" }",
            "not an RSA, EC P-256/P-384 or Ed25519 public key",
        ),
        (
            "jwt_issuer x { iss a; audiences [b]; algorithms [RS256]; jwks_url ftp://x }",
            "must be an http(s) URL",
        ),
        ("issuers [nope]", "unknown jwt_issuer `nope`"),
        (
            "introspection a { method GET }",
            "introspection `a` needs an `endpoint`",
        ),
        (
            "introspection a { endpoint \"http://x/i\" }",
            "it needs `client_id` and `client_secret`",
        ),
        (
            "introspection a { endpoint \"http://x/i\"; client_auth_header none; token_form_field t }",
            "`token_form_field` needs `method POST`",
        ),
        (
            "introspection a { endpoint \"http://x/i\"; method PUT }",
            "`method` is GET or POST",
        ),
        ("introspect b", "unknown introspection `b`"),
    ];
    for (src, want) in bad {
        let errors = Policy::compile(src, &services).unwrap_err();
        assert!(
            errors.iter().any(|d| d.message.contains(want)),
            "{src}: {:?}",
            errors.iter().map(|d| &d.message).collect::<Vec<_>>()
        );
    }
}
