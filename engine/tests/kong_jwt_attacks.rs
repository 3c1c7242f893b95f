//! The JWT attack corpus for the Kong dialect: tokens forged here from raw
//! JSON, base64url and HMAC against a Kong policy (its `signing_key` known
//! to the forger wherever an attack needs a valid signature, so that only
//! the attacked property is wrong). Every attack ends in Kong's 401 —
//! `invalid_token` "The access token is invalid or has expired" with Kong's
//! `WWW-Authenticate` — never a panic, a forward, or the token in the log
//! reason; baselines made by the same forger are forwarded, so a broken
//! forger cannot make the attacks pass. The Higress corpus is
//! `jwt_attacks.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::{Sha256, Sha384};
use warden_engine::fixtures::request;
use warden_engine::{Decision, FixedServices, Policy, Request};

const NOW: u64 = 1_700_000_000;
const KEY: &str = "kong-attack-signing-key-0123456789abcdef01";
const CLIENT_SECRET: &str = "secret123";

const POLICY: &str = r#"
dialect kong
signing_key "kong-attack-signing-key-0123456789abcdef01"
consumer bob { credential { client_id clientid123; client_secret secret123; redirect_uris ["http://google.test/kong"] } }
consumer eve { credential { client_id clientid-eve; client_secret secret-eve } }
route api   { hosts [api.test]; service svc-a }
route other { hosts [other.test]; service svc-a }
route glob  { hosts [global.test] }
rule api   { match route [api, other]; enable_password_grant true; provision_key p; scopes [email, admin] }
rule glob  { match route [glob]; enable_client_credentials true; global_credentials true }
"#;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn claims() -> Map<String, Value> {
    json!({
        "aud": "svc-a", "client_id": "clientid123", "exp": NOW + 3600, "iat": NOW,
        "iss": "Warden", "jti": "0b6a2f57-3c1e-4a8d-9d5e-7f2c1a9e0001", "scope": "email", "sub": "bob",
        "authenticated_userid": "alice",
    })
    .as_object()
    .unwrap()
    .clone()
}

fn header() -> Map<String, Value> {
    json!({"alg": "HS256", "typ": "application/at+jwt"})
        .as_object()
        .unwrap()
        .clone()
}

/// `header.payload.signature`, HS256 with `key` (or HS384 when the header says so).
fn sign(header: &Map<String, Value>, claims: &Map<String, Value>, key: &[u8]) -> String {
    let msg = format!(
        "{}.{}",
        b64(Value::Object(header.clone()).to_string()),
        b64(Value::Object(claims.clone()).to_string())
    );
    let sig = if header["alg"] == "HS384" {
        let mut m = Hmac::<Sha384>::new_from_slice(key).unwrap();
        m.update(msg.as_bytes());
        m.finalize().into_bytes().to_vec()
    } else {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(msg.as_bytes());
        m.finalize().into_bytes().to_vec()
    };
    format!("{msg}.{}", b64(sig))
}

fn forged(f: impl FnOnce(&mut Map<String, Value>, &mut Map<String, Value>)) -> String {
    let (mut h, mut c) = (header(), claims());
    f(&mut h, &mut c);
    sign(&h, &c, KEY.as_bytes())
}

struct Kong {
    policy: Policy,
    services: FixedServices,
}

impl Kong {
    fn new() -> Kong {
        let services = FixedServices::at(NOW);
        let policy = Policy::compile(POLICY, &services).unwrap();
        Kong { policy, services }
    }

    fn decide(
        &self,
        host: &str,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Decision {
        let req = request(
            (method, "https"),
            host,
            target,
            headers,
            body.map(str::as_bytes),
        );
        self.policy.decide(&req, &self.services)
    }

    fn with_token(&self, host: &str, token: &str) -> Decision {
        let bearer = format!("Bearer {token}");
        self.decide(host, "GET", "/x", &[("authorization", &bearer)], None)
    }
}

fn assert_refused(name: &str, d: &Decision, token: &str) {
    let Decision::Reply(r) = d else {
        panic!("{name}: not refused: {d:?}");
    };
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(r.status, 401, "{name}");
    assert_eq!(body["error"], "invalid_token", "{name}: {body}");
    assert_eq!(
        body["error_description"], "The access token is invalid or has expired",
        "{name}"
    );
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            "Bearer error=\"invalid_token\", error_description=\"The access token is invalid or has expired\""
        ),
        "{name}"
    );
    assert!(
        (token.len() < 16 || !r.reason.contains(token))
            && !r.reason.contains(KEY)
            && !r.reason.contains(CLIENT_SECRET),
        "{name}: {}",
        r.reason
    );
}

#[test]
fn kong_tokens_resist_the_attacks() {
    let k = Kong::new();
    // Baselines: the forger makes tokens the engine accepts, on both routes
    // of the service the token is bound to.
    let good = forged(|_, _| {});
    for host in ["api.test", "other.test"] {
        assert!(
            matches!(k.with_token(host, &good), Decision::Forward(_)),
            "baseline on {host}"
        );
    }
    let mut cases: Vec<(String, String, &str)> = vec![
        (
            "alg none".into(),
            forged(|h, _| {
                h.insert("alg".into(), "none".into());
            })
            .rsplit_once('.')
            .unwrap()
            .0
            .to_string()
                + ".",
            "api.test",
        ),
        (
            "alg None, no signature".into(),
            format!(
                "{}.",
                forged(|h, _| {
                    h.insert("alg".into(), "None".into());
                })
                .rsplit_once('.')
                .unwrap()
                .0
            ),
            "api.test",
        ),
        (
            "HS384 with the right key".into(),
            forged(|h, _| {
                h.insert("alg".into(), "HS384".into());
            }),
            "api.test",
        ),
        (
            "RS256 header, HMAC signature".into(),
            forged(|h, _| {
                h.insert("alg".into(), "RS256".into());
            }),
            "api.test",
        ),
        (
            "typ JWT".into(),
            forged(|h, _| {
                h.insert("typ".into(), "JWT".into());
            }),
            "api.test",
        ),
        (
            "crit header".into(),
            forged(|h, _| {
                h.insert("crit".into(), json!(["exp"]));
            }),
            "api.test",
        ),
        (
            "jwk header with attacker key".into(),
            {
                let (mut h, c) = (header(), claims());
                h.insert("jwk".into(), json!({"kty": "oct", "k": b64("attacker")}));
                sign(&h, &c, b"attacker")
            },
            "api.test",
        ),
        (
            "signed with the client secret (Higress-style)".into(),
            sign(&header(), &claims(), CLIENT_SECRET.as_bytes()),
            "api.test",
        ),
        (
            "expired beyond the skew".into(),
            forged(|_, c| {
                c.insert("exp".into(), json!(NOW - 61));
                c.insert("iat".into(), json!(NOW - 4000));
            }),
            "api.test",
        ),
        (
            "issued in the future".into(),
            forged(|_, c| {
                c.insert("iat".into(), json!(NOW + 61));
            }),
            "api.test",
        ),
        (
            "not yet valid".into(),
            forged(|_, c| {
                c.insert("nbf".into(), json!(NOW + 61));
            }),
            "api.test",
        ),
        (
            "wrong issuer".into(),
            forged(|_, c| {
                c.insert("iss".into(), "Higress-Gateway".into());
            }),
            "api.test",
        ),
        (
            "sub of another consumer".into(),
            forged(|_, c| {
                c.insert("sub".into(), "eve".into());
            }),
            "api.test",
        ),
        (
            "unknown client".into(),
            forged(|_, c| {
                c.insert("client_id".into(), "nobody".into());
            }),
            "api.test",
        ),
        (
            "another service's token".into(),
            forged(|_, c| {
                c.insert("aud".into(), "svc-b".into());
            }),
            "api.test",
        ),
        (
            "a route-bound token on a global plugin of another service".into(),
            good.clone(),
            "global.test",
        ),
        (
            "no jti".into(),
            forged(|_, c| {
                c.remove("jti");
            }),
            "api.test",
        ),
        (
            "scope as a number".into(),
            forged(|_, c| {
                c.insert("scope".into(), json!(5));
            }),
            "api.test",
        ),
        (
            "claims as an array".into(),
            {
                let msg = format!(
                    "{}.{}",
                    b64(Value::Object(header()).to_string()),
                    b64("[1,2,3]")
                );
                let mut m = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
                m.update(msg.as_bytes());
                format!("{msg}.{}", b64(m.finalize().into_bytes()))
            },
            "api.test",
        ),
    ];
    // Tampering with a granted scope or user without re-signing.
    let (h, p, s) = {
        let mut parts = good.split('.');
        (
            parts.next().unwrap().to_string(),
            parts.next().unwrap().to_string(),
            parts.next().unwrap().to_string(),
        )
    };
    let mut escalated = claims();
    escalated.insert("scope".into(), "email admin".into());
    cases.push((
        "scope escalated, old signature".into(),
        format!("{h}.{}.{s}", b64(Value::Object(escalated).to_string())),
        "api.test",
    ));
    let mut other_user = claims();
    other_user.insert("authenticated_userid".into(), "root".into());
    cases.push((
        "user changed, old signature".into(),
        format!("{h}.{}.{s}", b64(Value::Object(other_user).to_string())),
        "api.test",
    ));
    cases.push((
        "standard base64 payload".into(),
        format!("{h}.{}=.{s}", p),
        "api.test",
    ));
    // Every truncation of a real token.
    for cut in 1..good.len() {
        cases.push((
            format!("truncated at {cut}"),
            good[..cut].to_string(),
            "api.test",
        ));
    }
    let n = cases.len();
    for (name, token, host) in &cases {
        assert_refused(name, &k.with_token(host, token), token);
    }
    assert!(n > good.len(), "{n} cases");
}

#[test]
fn a_refreshed_token_is_refused_although_its_signature_is_valid() {
    let k = Kong::new();
    let form = "grant_type=password&client_id=clientid123&client_secret=secret123&provision_key=p&authenticated_userid=alice&scope=email";
    let h = [("content-type", "application/x-www-form-urlencoded")];
    let Decision::Reply(r) = k.decide("api.test", "POST", "/oauth2/token", &h, Some(form)) else {
        panic!()
    };
    let tokens: Value = serde_json::from_slice(&r.body).unwrap();
    let (access, refresh) = (
        tokens["access_token"].as_str().unwrap(),
        tokens["refresh_token"].as_str().unwrap(),
    );
    assert!(matches!(
        k.with_token("api.test", access),
        Decision::Forward(_)
    ));
    let form = format!(
        "grant_type=refresh_token&client_id=clientid123&client_secret=secret123&refresh_token={refresh}"
    );
    let Decision::Reply(r) = k.decide("api.test", "POST", "/oauth2/token", &h, Some(&form)) else {
        panic!()
    };
    assert_eq!(r.status, 200);
    assert_refused("refreshed", &k.with_token("api.test", access), access);
    // Through a memo that remembered it as valid, too.
    let mut memo = warden_engine::VerifiedTokens::new(8);
    let bearer = format!("Bearer {access}");
    let headers = [("authorization", bearer.as_str())];
    let req = Request {
        method: "GET",
        scheme: "https",
        authority: "api.test",
        path: "/x",
        headers: &headers,
        ..Default::default()
    };
    let fresh = FixedServices::at(NOW);
    let d = k.policy.decide_with(&req, &fresh, &mut memo);
    assert!(
        matches!(d, Decision::Forward(_)),
        "another store has not seen the refresh"
    );
    assert_refused(
        "refreshed, remembered",
        &k.policy.decide_with(&req, &k.services, &mut memo),
        access,
    );
}
