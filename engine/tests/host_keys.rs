//! Tokens signed by the host's keys (`signing_alg`), decided end to end by
//! the engine on `policies/signing-keys.policy` (ES256) with the test key
//! ring: the attacks on asymmetric JWTs — algorithm confusion (HS256 keyed
//! with the public key, RFC 8725 §2.1), `alg: none`, another algorithm's
//! valid signature, missing and unknown `kid`, a `kid` of another
//! algorithm's key, embedded keys — all end in 401 with the failure class in
//! the reason; rotation keeps old keys verifying; and the key set and RFC
//! 8414 metadata are published, and only by such policies.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use warden_engine::fixtures::{
    CONSUMER1 as C1, Scenario, access_token, get, key_ring, pairs, status, token_target,
};
use warden_engine::internal::token::{TYP, TokenError};
use warden_engine::{Decision, FixedServices, KeyRing};

const NOW: u64 = 1_700_000_000;
const ISSUER: &str = "https://gateway.example";

fn gateway(ring: KeyRing) -> Scenario {
    let mut services = FixedServices::at(NOW);
    services.keys = ring;
    Scenario::with_services("signing-keys.policy", services)
}

fn all_keys() -> KeyRing {
    key_ring(&["eddsa-a", "es256-a", "es256-b", "es384-a", "rs256-a"])
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decide(gw: &Scenario, token: &str) -> Decision {
    let headers = vec![("Authorization".to_string(), format!("Bearer {token}"))];
    gw.decide(&get("localhost", "/a/x", &pairs(&headers)))
}

/// The failure class of a 401 (its log reason), or `forward`.
fn outcome(d: &Decision) -> String {
    match d {
        Decision::Forward(f) => format!("forward as {}", f.consumer.as_deref().unwrap_or("-")),
        Decision::Reply(r) => {
            assert_eq!(r.status, 401, "{r:?}");
            assert_eq!(r.body, b"Invalid Jwt token");
            r.reason.clone()
        }
        other => panic!("{other:?}"),
    }
}

fn claims() -> Value {
    json!({
        "aud": "default", "client_id": C1.0, "exp": NOW + 600, "iat": NOW,
        "iss": ISSUER, "jti": "5f1d7a0e-2c3b-4d5e-8f90-a1b2c3d4e5f6", "sub": "consumer1",
    })
}

/// `header.claims` signed by the ring's key `kid` (None: `sig` as given).
fn forge(ring: &KeyRing, header: &Value, claims: &Value, kid: Option<&str>) -> String {
    let msg = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let sig = kid.map_or_else(String::new, |k| ring.sign(k, msg.as_bytes()).unwrap());
    format!("{msg}.{sig}")
}

fn hs256(header: &Value, claims: &Value, key: &[u8]) -> String {
    let msg = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(msg.as_bytes());
    format!("{msg}.{}", b64(mac.finalize().into_bytes()))
}

#[test]
fn issued_tokens_carry_the_newest_keys_kid_and_verify() {
    let gw = gateway(all_keys());
    let d = gw.decide(&get("localhost", &token_target("/a/oauth2/token", C1), &[]));
    let token = access_token(&d).unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        json!({"alg": "ES256", "kid": "es256-b", "typ": TYP})
    );
    assert_eq!(outcome(&decide(&gw, &token)), "forward as consumer1");
}

#[test]
fn asymmetric_attacks_are_refused_with_their_class() {
    let ring = all_keys();
    let gw = gateway(all_keys());
    let es = |kid: &str| json!({"alg": "ES256", "kid": kid, "typ": TYP});
    let jwks: Value = serde_json::from_str(&ring.public_jwks()).unwrap();
    let public_es = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == "es256-b")
        .unwrap()
        .clone();
    let hs = json!({"alg": "HS256", "kid": "es256-b", "typ": TYP});
    let reason = |e: TokenError| e.to_string();
    let algorithm = |a: &str| reason(TokenError::Algorithm(a.into()));
    let cases: Vec<(&str, String, String)> = vec![
        (
            "baseline: signed by es256-b",
            forge(&ring, &es("es256-b"), &claims(), Some("es256-b")),
            "forward as consumer1".into(),
        ),
        (
            "rotation: signed by the older es256-a",
            forge(&ring, &es("es256-a"), &claims(), Some("es256-a")),
            "forward as consumer1".into(),
        ),
        (
            "HS256 keyed with the public JWK's JSON",
            hs256(&hs, &claims(), public_es.to_string().as_bytes()),
            algorithm("HS256"),
        ),
        (
            "HS256 keyed with the public key's x coordinate",
            hs256(&hs, &claims(), public_es["x"].as_str().unwrap().as_bytes()),
            algorithm("HS256"),
        ),
        (
            "HS256 with the client secret (a Higress-style token)",
            hs256(
                &json!({"alg": "HS256", "typ": TYP}),
                &claims(),
                C1.1.as_bytes(),
            ),
            algorithm("HS256"),
        ),
        (
            "alg none, no signature",
            forge(&ring, &json!({"alg": "none", "typ": TYP}), &claims(), None) + "x",
            algorithm("none"),
        ),
        (
            "EdDSA, validly signed by eddsa-a",
            forge(
                &ring,
                &json!({"alg": "EdDSA", "kid": "eddsa-a", "typ": TYP}),
                &claims(),
                Some("eddsa-a"),
            ),
            algorithm("EdDSA"),
        ),
        (
            "ES384, validly signed by es384-a",
            forge(
                &ring,
                &json!({"alg": "ES384", "kid": "es384-a", "typ": TYP}),
                &claims(),
                Some("es384-a"),
            ),
            algorithm("ES384"),
        ),
        (
            "RS256, validly signed by rs256-a",
            forge(
                &ring,
                &json!({"alg": "RS256", "kid": "rs256-a", "typ": TYP}),
                &claims(),
                Some("rs256-a"),
            ),
            algorithm("RS256"),
        ),
        (
            "es256 alg in lower case",
            forge(
                &ring,
                &json!({"alg": "es256", "kid": "es256-b", "typ": TYP}),
                &claims(),
                Some("es256-b"),
            ),
            algorithm("es256"),
        ),
        (
            "no kid",
            forge(
                &ring,
                &json!({"alg": "ES256", "typ": TYP}),
                &claims(),
                Some("es256-b"),
            ),
            reason(TokenError::NoKeyId),
        ),
        (
            "an unknown kid",
            forge(&ring, &es("nope"), &claims(), Some("es256-b")),
            reason(TokenError::UnknownKey),
        ),
        (
            "kid of the EdDSA key on an ES256 token",
            forge(&ring, &es("eddsa-a"), &claims(), Some("es256-b")),
            reason(TokenError::UnknownKey),
        ),
        (
            "kid path traversal",
            forge(&ring, &es("../../etc/passwd"), &claims(), Some("es256-b")),
            reason(TokenError::UnknownKey),
        ),
        (
            "signed by es256-a, kid says es256-b",
            forge(&ring, &es("es256-b"), &claims(), Some("es256-a")),
            reason(TokenError::Signature),
        ),
        (
            "claims changed after signing",
            {
                let t = forge(&ring, &es("es256-b"), &claims(), Some("es256-b"));
                let mut parts: Vec<&str> = t.split('.').collect();
                let mut c = claims();
                c["sub"] = json!("consumer2");
                let evil = b64(c.to_string());
                parts[1] = &evil;
                parts.join(".")
            },
            reason(TokenError::Signature),
        ),
        (
            "an embedded jwk, validly signed",
            forge(
                &ring,
                &json!({"alg": "ES256", "kid": "es256-b", "typ": TYP, "jwk": public_es}),
                &claims(),
                Some("es256-b"),
            ),
            reason(TokenError::EmbeddedKey),
        ),
        (
            "a jku, validly signed",
            forge(
                &ring,
                &json!({"alg": "ES256", "kid": "es256-b", "typ": TYP, "jku": "https://attacker.example/jwks"}),
                &claims(),
                Some("es256-b"),
            ),
            reason(TokenError::EmbeddedKey),
        ),
        (
            "wrong issuer, validly signed",
            forge(
                &ring,
                &es("es256-b"),
                &{
                    let mut c = claims();
                    c["iss"] = json!("Higress-Gateway");
                    c
                },
                Some("es256-b"),
            ),
            reason(TokenError::Issuer),
        ),
    ];
    let mut failures = Vec::new();
    for (name, token, want) in &cases {
        let got = outcome(&decide(&gw, token));
        if &got != want {
            failures.push(format!("{name}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_removed_key_no_longer_verifies_and_no_key_means_no_token() {
    let ring = all_keys();
    let old = forge(
        &ring,
        &json!({"alg": "ES256", "kid": "es256-a", "typ": TYP}),
        &claims(),
        Some("es256-a"),
    );
    let gw = gateway(key_ring(&["es256-b"]));
    assert_eq!(
        outcome(&decide(&gw, &old)),
        TokenError::UnknownKey.to_string()
    );
    // A host without an ES256 key cannot issue: a 500, never an HS256 token.
    let gw = gateway(key_ring(&["eddsa-a"]));
    let d = gw.decide(&get("localhost", &token_target("/a/oauth2/token", C1), &[]));
    assert_eq!(status(&d), 500, "{d:?}");
}

#[test]
fn the_key_set_and_the_metadata_are_published() {
    let gw = gateway(all_keys());
    let d = gw.decide(&get("localhost", "/.well-known/jwks.json", &[]));
    let r = d.reply().unwrap();
    assert_eq!(r.status, 200);
    let jwks: Value = serde_json::from_slice(&r.body).unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        ["eddsa-a", "es256-a", "es256-b", "es384-a", "rs256-a"]
    );
    assert!(!String::from_utf8_lossy(&r.body).contains("\"d\""));

    let d = gw.decide(&get(
        "localhost",
        "/.well-known/oauth-authorization-server",
        &[],
    ));
    let meta: Value = serde_json::from_slice(&d.reply().unwrap().body).unwrap();
    assert_eq!(meta["issuer"], ISSUER);
    assert_eq!(
        meta["token_endpoint"],
        "https://gateway.example/oauth2/token"
    );
    assert_eq!(
        meta["jwks_uri"],
        "https://gateway.example/.well-known/jwks.json"
    );
    assert_eq!(meta["grant_types_supported"], json!(["client_credentials"]));

    let headers = [("content-type", "application/json")];
    let post = warden_engine::fixtures::request(
        ("POST", "http"),
        "localhost",
        "/.well-known/jwks.json",
        &headers,
        Some(b"{}"),
    );
    assert_eq!(status(&gw.decide(&post)), 405);

    // An HS256-only policy publishes nothing: the path is an ordinary request.
    let demo = Scenario::load("demo.policy", NOW);
    let d = demo.decide(&get("localhost", "/.well-known/jwks.json", &[]));
    assert!(d.forward().is_some(), "{d:?}");
}
