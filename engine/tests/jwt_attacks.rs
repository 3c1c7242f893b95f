//! A JWT attack corpus, decided end to end by the engine on the policy files
//! under `policies/`.
//!
//! Every attack must end in the same reply — 401, body `Invalid Jwt token`, a
//! `Bearer realm=…` challenge — never in a panic, and with a log `reason` that
//! names the failure class and holds neither the token nor any secret. Forged
//! tokens are built here from raw JSON, base64url and HMAC, signed with
//! consumer1's real secret wherever the attack needs a valid signature, so
//! that only the attacked property is wrong. A few valid baselines (and the
//! boundaries of the clock skew and of the length limit) make sure the forger
//! itself is right: a mistake in it would otherwise let every case pass for
//! the wrong reason.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use std::panic::{AssertUnwindSafe, catch_unwind};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::{Sha256, Sha384, Sha512};
use warden_engine::Decision;
use warden_engine::fixtures::{
    CONSUMER1 as C1, CONSUMER2 as C2, HIGRESS_SAMPLE_TOKEN, Scenario, access_token, pairs,
    token_target,
};
use warden_engine::internal::token::{MAX_TOKEN_LEN, TYP, TokenError};

const NOW: u64 = 1_700_000_000;
/// The policies' defaults (`clock_skew_seconds`, `token_ttl`, `issuer`).
const SKEW: u64 = 60;
const TTL: u64 = 7200;
const ISSUER: &str = "Higress-Gateway";
/// A key the attacker controls (for `jku`/`x5u`/`jwk` and wrong signatures).
const ATTACKER_KEY: &[u8] = b"attacker-controlled-key-0123456789abcdef";
const SECRETS: [&str; 3] = [C1.1, C2.1, "attacker-controlled-key-0123456789abcdef"];

// ---------------------------------------------------------------- the harness

struct Harness(Scenario);

impl Harness {
    fn load(name: &str) -> Harness {
        Harness(Scenario::load(name, NOW))
    }

    fn decide(&self, target: &str, headers: &[(String, String)]) -> Decision {
        let headers = pairs(headers);
        self.0
            .decide(&warden_engine::fixtures::get("localhost", target, &headers))
    }

    /// consumer1's token from the token endpoint under `prefix`.
    fn issue(&self, prefix: &str) -> String {
        let target = token_target(&format!("{prefix}/oauth2/token"), C1);
        access_token(&self.decide(&target, &[])).unwrap()
    }
}

// ---------------------------------------------------------------- the forger

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hs(bits: u16, key: &[u8], msg: &[u8]) -> Vec<u8> {
    macro_rules! mac {
        ($d:ty) => {{
            let mut m = Hmac::<$d>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }};
    }
    match bits {
        256 => mac!(Sha256),
        384 => mac!(Sha384),
        512 => mac!(Sha512),
        _ => unreachable!(),
    }
}

/// How the third segment is made.
#[derive(Clone, Copy)]
enum Sig<'a> {
    /// HMAC-SHA-`bits` of `header.payload` with this key.
    Hs(u16, &'a [u8]),
    /// These exact characters.
    Raw(&'a str),
}

/// `b64(header).b64(payload).signature`, from raw bytes (so that duplicate
/// keys, arrays and non-JSON survive).
fn jws(header: &str, payload: &[u8], sig: Sig<'_>) -> String {
    let msg = format!("{}.{}", b64(header), b64(payload));
    let s = match sig {
        Sig::Hs(bits, key) => b64(hs(bits, key, msg.as_bytes())),
        Sig::Raw(s) => s.to_string(),
    };
    format!("{msg}.{s}")
}

const SECRET1: &[u8] = C1.1.as_bytes();
/// The header Warden (and Higress) issue.
fn header() -> Map<String, Value> {
    json!({"alg": "HS256", "typ": TYP})
        .as_object()
        .unwrap()
        .clone()
}

fn header_with(f: impl FnOnce(&mut Map<String, Value>)) -> String {
    let mut h = header();
    f(&mut h);
    Value::Object(h).to_string()
}

/// consumer1's claims, valid at `NOW` on a `default`-audience rule.
fn claims() -> Map<String, Value> {
    json!({
        "aud": "default",
        "client_id": C1.0,
        "exp": NOW + TTL,
        "iat": NOW,
        "iss": ISSUER,
        "jti": "5f1d7a0e-2c3b-4d5e-8f90-a1b2c3d4e5f6",
        "sub": "consumer1",
    })
    .as_object()
    .unwrap()
    .clone()
}

fn claims_with(f: impl FnOnce(&mut Map<String, Value>)) -> String {
    let mut c = claims();
    f(&mut c);
    Value::Object(c).to_string()
}

/// The standard header, `payload`, signed HS256 with consumer1's secret.
fn signed(payload: &str) -> String {
    jws(
        &header_with(|_| {}),
        payload.as_bytes(),
        Sig::Hs(256, SECRET1),
    )
}

/// `header`, the valid claims, signed with `sig`.
fn with_header(header: &str, sig: Sig<'_>) -> String {
    jws(header, claims_with(|_| {}).as_bytes(), sig)
}

fn valid() -> String {
    signed(&claims_with(|_| {}))
}

/// A validly signed consumer1 token of exactly `len` bytes (grown by an
/// ignored `pad` claim and, to reach every length, a `kid`).
fn sized(len: usize) -> String {
    let start = (len.saturating_sub(400)) * 3 / 4;
    for kid in 0..4 {
        let h = header_with(|h| {
            if kid > 0 {
                h.insert("kid".into(), json!("k".repeat(kid)));
            }
        });
        for pad in start.. {
            let p = claims_with(|c| {
                c.insert("pad".into(), json!("x".repeat(pad)));
            });
            let t = jws(&h, p.as_bytes(), Sig::Hs(256, SECRET1));
            if t.len() == len {
                return t;
            }
            if t.len() > len {
                break;
            }
        }
    }
    panic!("no token of {len} bytes");
}

// ---------------------------------------------------------------- the cases

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Gw {
    /// `demo.policy`: `/a` is route-a, consumer1 allowed, `aud` `default`.
    Demo,
    /// `route-scoped.policy`: `aud` must be the route name.
    Scoped,
}

#[derive(Debug)]
enum Want {
    /// Forwarded as consumer1.
    Forward,
    /// 401, the reason in one of these classes (see [`class_of`]).
    Reject(&'static [&'static str]),
}

const ANY: &[&str] = &[
    "Missing",
    "NotBearer",
    "Ambiguous",
    "Malformed",
    "TooLong",
    "BadHeader",
    "Algorithm",
    "Type",
    "Critical",
    "EmbeddedKey",
    "NoKeyId",
    "UnknownKey",
    "BadClaims",
    "Signature",
    "Expired",
    "IssuedInFuture",
    "NotYetValid",
    "Issuer",
    "Subject",
    "Audience",
    "UnknownClient",
];

struct Case {
    name: String,
    gw: Gw,
    path: &'static str,
    headers: Vec<(String, String)>,
    want: Want,
    /// Text the reason must contain besides its class (e.g. the refused `alg`).
    mentions: Option<String>,
}

/// The failure class a log reason names: the `TokenError` variant whose
/// message it is.
fn class_of(reason: &str) -> Option<&'static str> {
    let units = [
        ("Missing", TokenError::Missing),
        ("NotBearer", TokenError::NotBearer),
        ("Ambiguous", TokenError::Ambiguous),
        ("Malformed", TokenError::Malformed),
        ("TooLong", TokenError::TooLong),
        ("BadHeader", TokenError::BadHeader),
        ("Type", TokenError::Type),
        ("Critical", TokenError::Critical),
        ("EmbeddedKey", TokenError::EmbeddedKey),
        ("NoKeyId", TokenError::NoKeyId),
        ("UnknownKey", TokenError::UnknownKey),
        ("Signature", TokenError::Signature),
        ("Expired", TokenError::Expired),
        ("IssuedInFuture", TokenError::IssuedInFuture),
        ("NotYetValid", TokenError::NotYetValid),
        ("Issuer", TokenError::Issuer),
        ("Subject", TokenError::Subject),
        ("Audience", TokenError::Audience),
        ("UnknownClient", TokenError::UnknownClient),
    ];
    if let Some((name, _)) = units.iter().find(|(_, e)| e.to_string() == reason) {
        return Some(name);
    }
    let prefixed = |e: TokenError, name| {
        let text = e.to_string();
        let stem = text.split("@@").next().unwrap().to_string();
        reason.starts_with(&stem).then_some(name)
    };
    prefixed(TokenError::Algorithm("@@".into()), "Algorithm")
        .or_else(|| prefixed(TokenError::BadClaims("@@".into()), "BadClaims"))
}

fn auth(value: impl Into<String>) -> Vec<(String, String)> {
    vec![("Authorization".to_string(), value.into())]
}

struct Corpus(Vec<Case>);

impl Corpus {
    fn add(
        &mut self,
        name: impl Into<String>,
        gw: Gw,
        path: &'static str,
        headers: Vec<(String, String)>,
        want: Want,
    ) {
        self.0.push(Case {
            name: name.into(),
            gw,
            path,
            headers,
            want,
            mentions: None,
        });
    }

    /// `Authorization: Bearer <token>` on demo's `/a`.
    fn bearer(&mut self, name: impl Into<String>, token: &str, want: Want) {
        self.add(name, Gw::Demo, "/a", auth(format!("Bearer {token}")), want);
    }

    fn reject(&mut self, name: impl Into<String>, token: &str, classes: &'static [&'static str]) {
        self.bearer(name, token, Want::Reject(classes));
    }

    fn mentioning(&mut self, text: impl Into<String>) {
        self.0.last_mut().unwrap().mentions = Some(text.into());
    }
}

fn corpus(demo: &Harness, scoped: &Harness) -> Vec<Case> {
    let mut c = Corpus(Vec::new());
    let good = valid();
    let issued = demo.issue("/a");

    // Baselines: the forger and the harness are right.
    c.bearer(
        "baseline: token issued by demo.policy",
        &issued,
        Want::Forward,
    );
    c.bearer("baseline: forged valid token", &good, Want::Forward);
    c.add(
        "baseline: issued token among realistic headers",
        Gw::Demo,
        "/a",
        warden_engine::fixtures::realistic_headers(Some(&issued)),
        Want::Forward,
    );
    c.bearer(
        "baseline: token of exactly MAX_TOKEN_LEN bytes",
        &sized(MAX_TOKEN_LEN),
        Want::Forward,
    );
    c.bearer(
        "baseline: exp + skew == now (last accepted second)",
        &signed(&claims_with(|m| {
            m.insert("exp".into(), json!(NOW - SKEW));
            m.insert("iat".into(), json!(NOW - SKEW - TTL));
        })),
        Want::Forward,
    );
    c.bearer(
        "baseline: iat - skew == now (first accepted second)",
        &signed(&claims_with(|m| {
            m.insert("iat".into(), json!(NOW + SKEW));
            m.insert("exp".into(), json!(NOW + SKEW + TTL));
        })),
        Want::Forward,
    );
    c.bearer(
        "baseline: nbf - skew == now",
        &signed(&claims_with(|m| {
            m.insert("nbf".into(), json!(NOW + SKEW));
        })),
        Want::Forward,
    );
    c.bearer(
        "baseline: typ `at+jwt` (RFC 9068 short form)",
        &with_header(
            &header_with(|h| {
                h.insert("typ".into(), json!("at+jwt"));
            }),
            Sig::Hs(256, SECRET1),
        ),
        Want::Forward,
    );

    // Scheme variants with a valid token.
    for (name, value) in [
        ("scheme `bearer`", format!("bearer {good}")),
        ("scheme `BEARER`", format!("BEARER {good}")),
        ("scheme `Bearer  x` (two spaces)", format!("Bearer  {good}")),
    ] {
        c.add(name, Gw::Demo, "/a", auth(value), Want::Forward);
    }
    // Malformed credentials: a credential was sent, but not `Bearer <token>`.
    let missing: &[&str] = &["NotBearer"];
    for (name, value) in [
        ("`Bearer` alone", "Bearer".to_string()),
        ("`Bearer ` with nothing after", "Bearer ".to_string()),
        ("`Bearer\\tTOKEN`", format!("Bearer\t{good}")),
        ("`Basic TOKEN`", format!("Basic {good}")),
        ("`TOKEN` without a scheme", good.clone()),
        ("`Bearer TOKEN extra`", format!("Bearer {good} extra")),
        ("`Bearer:TOKEN`", format!("Bearer:{good}")),
        (
            "`Bearer\\u{a0}TOKEN` (no-break space)",
            format!("Bearer\u{a0}{good}"),
        ),
        (
            "`Bearé TOKEN` (non-ASCII scheme, 6 bytes)",
            format!("Bearé {good}"),
        ),
        (
            "`Bear€ TOKEN` (byte 6 inside a character)",
            format!("Bear€ {good}"),
        ),
        ("empty Authorization value", String::new()),
    ] {
        c.add(name, Gw::Demo, "/a", auth(value), Want::Reject(missing));
    }
    c.add(
        "no Authorization header",
        Gw::Demo,
        "/a",
        vec![],
        Want::Reject(&["Missing"]),
    );
    c.add(
        "two Authorization headers, both valid",
        Gw::Demo,
        "/a",
        vec![
            ("Authorization".into(), format!("Bearer {good}")),
            ("authorization".into(), format!("Bearer {issued}")),
        ],
        Want::Reject(&["Ambiguous"]),
    );
    c.add(
        "two Authorization headers, garbage then valid",
        Gw::Demo,
        "/a",
        vec![
            ("AUTHORIZATION".into(), "Bearer x".into()),
            ("Authorization".into(), format!("Bearer {good}")),
        ],
        Want::Reject(&["Ambiguous"]),
    );

    // alg none, in every case, with and without a signature.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = header_with(|h| {
            h.insert("alg".into(), json!(alg));
        });
        let unsigned = with_header(&h, Sig::Raw(""));
        c.reject(
            format!("alg `{alg}`, empty signature"),
            &unsigned,
            &["Malformed", "Algorithm"],
        );
        c.reject(
            format!("alg `{alg}`, HS256 signature by the secret"),
            &with_header(&h, Sig::Hs(256, SECRET1)),
            &["Algorithm"],
        );
        c.mentioning(format!("`{alg}`"));
        c.reject(
            format!("alg `{alg}`, junk signature"),
            &with_header(&h, Sig::Raw("c2lnbmF0dXJl")),
            &["Algorithm"],
        );
    }
    // Algorithm not bound to the key: other HMACs, validly signed.
    for (alg, bits) in [("HS384", 384), ("HS512", 512)] {
        let h = header_with(|h| {
            h.insert("alg".into(), json!(alg));
        });
        c.reject(
            format!("alg `{alg}` validly signed with the secret"),
            &with_header(&h, Sig::Hs(bits, SECRET1)),
            &["Algorithm"],
        );
        c.mentioning(alg);
    }
    // Algorithm confusion: an asymmetric alg, HMAC-signed with the secret.
    for alg in [
        "RS256", "ES256", "PS256", "EdDSA", "hs256", "HS256 ", "HS2560",
    ] {
        let h = header_with(|h| {
            h.insert("alg".into(), json!(alg));
        });
        c.reject(
            format!("alg `{alg}` with an HMAC-SHA256 signature by the secret"),
            &with_header(&h, Sig::Hs(256, SECRET1)),
            &["Algorithm"],
        );
    }
    c.reject(
        "alg missing, validly signed",
        &with_header(
            &header_with(|h| {
                h.remove("alg");
            }),
            Sig::Hs(256, SECRET1),
        ),
        &["BadHeader"],
    );
    c.reject(
        "alg `null`, validly signed",
        &with_header(
            &header_with(|h| {
                h.insert("alg".into(), Value::Null);
            }),
            Sig::Hs(256, SECRET1),
        ),
        &["BadHeader"],
    );
    c.reject(
        "alg with a newline (log injection)",
        &with_header(
            &header_with(|h| {
                h.insert("alg".into(), json!("none\nFORGED LOG LINE"));
            }),
            Sig::Hs(256, SECRET1),
        ),
        &["Algorithm"],
    );
    c.reject(
        "duplicate `alg` in the header (HS256 then none)",
        &with_header(
            &format!(r#"{{"alg":"HS256","typ":"{TYP}","alg":"none"}}"#),
            Sig::Hs(256, SECRET1),
        ),
        &["BadHeader"],
    );

    // kid injection, with a wrong signature.
    for kid in [
        "../../../../dev/null",
        "' OR '1'='1",
        "/etc/passwd",
        "\u{0000}",
    ] {
        let h = header_with(|h| {
            h.insert("kid".into(), json!(kid));
        });
        c.reject(
            format!("kid {kid:?}, signed by the attacker"),
            &with_header(&h, Sig::Hs(256, ATTACKER_KEY)),
            &["Signature"],
        );
        c.reject(
            format!("kid {kid:?}, signed with the empty key"),
            &with_header(&h, Sig::Hs(256, b"")),
            &["Signature"],
        );
    }
    // Key-carrying headers: never fetched, never trusted, refused outright
    // (RFC 8725 §3.10).
    for (name, key, value) in [
        ("jku", "jku", json!("https://attacker.example/jwks.json")),
        ("x5u", "x5u", json!("https://attacker.example/cert.pem")),
        (
            "jwk (embedded oct key)",
            "jwk",
            json!({"kty": "oct", "k": b64(ATTACKER_KEY)}),
        ),
        ("x5c", "x5c", json!(["MIIBattacker"])),
    ] {
        let h = header_with(|h| {
            h.insert(key.into(), value.clone());
        });
        c.reject(
            format!("{name} header, signed with the attacker's key"),
            &with_header(&h, Sig::Hs(256, ATTACKER_KEY)),
            &["EmbeddedKey"],
        );
        c.reject(
            format!("{name} header, validly signed"),
            &with_header(&h, Sig::Hs(256, SECRET1)),
            &["EmbeddedKey"],
        );
    }
    c.reject(
        "crit [\"exp\"], validly signed",
        &with_header(
            &header_with(|h| {
                h.insert("crit".into(), json!(["exp"]));
            }),
            Sig::Hs(256, SECRET1),
        ),
        &["Critical"],
    );
    c.reject(
        "crit [], validly signed",
        &with_header(
            &header_with(|h| {
                h.insert("crit".into(), json!([]));
            }),
            Sig::Hs(256, SECRET1),
        ),
        &["Critical"],
    );
    c.reject(
        "typ `JWT`, validly signed",
        &with_header(
            &header_with(|h| {
                h.insert("typ".into(), json!("JWT"));
            }),
            Sig::Hs(256, SECRET1),
        ),
        &["Type"],
    );
    c.reject(
        "typ missing, validly signed",
        &with_header(
            &header_with(|h| {
                h.remove("typ");
            }),
            Sig::Hs(256, SECRET1),
        ),
        &["Type"],
    );
    c.reject(
        "typ `application/jwt`, validly signed",
        &with_header(
            &header_with(|h| {
                h.insert("typ".into(), json!("application/jwt"));
            }),
            Sig::Hs(256, SECRET1),
        ),
        &["Type"],
    );

    // Times.
    c.reject(
        "expired beyond the skew (exp + skew + 1 == now)",
        &signed(&claims_with(|m| {
            m.insert("exp".into(), json!(NOW - SKEW - 1));
            m.insert("iat".into(), json!(NOW - SKEW - 1 - TTL));
        })),
        &["Expired"],
    );
    c.reject(
        "exp 0",
        &signed(&claims_with(|m| {
            m.insert("exp".into(), json!(0));
        })),
        &["Expired"],
    );
    c.reject(
        "Higress sample token, long expired",
        HIGRESS_SAMPLE_TOKEN,
        &["Expired"],
    );
    c.reject(
        "nbf in the future beyond the skew",
        &signed(&claims_with(|m| {
            m.insert("nbf".into(), json!(NOW + SKEW + 1));
        })),
        &["NotYetValid"],
    );
    c.reject(
        "iat in the future beyond the skew",
        &signed(&claims_with(|m| {
            m.insert("iat".into(), json!(NOW + SKEW + 1));
            m.insert("exp".into(), json!(NOW + SKEW + 1 + TTL));
        })),
        &["IssuedInFuture"],
    );
    c.reject(
        "iat u64::MAX",
        &signed(&claims_with(|m| {
            m.insert("iat".into(), json!(u64::MAX));
        })),
        &["IssuedInFuture"],
    );
    for field in ["exp", "iat", "nbf"] {
        let base = claims()[if field == "nbf" { "iat" } else { field }]
            .as_u64()
            .unwrap();
        for (kind, v) in [
            ("a float", json!(base as f64)),
            ("a float with a fraction", json!(base as f64 + 0.5)),
            ("a string", json!(base.to_string())),
            ("negative", json!(-1)),
            ("null", Value::Null),
            ("an object", json!({"$numberLong": base.to_string()})),
            ("an array", json!([base])),
            ("a bool", json!(true)),
        ] {
            if field == "nbf" && kind == "null" {
                continue; // an absent nbf, which is fine
            }
            c.reject(
                format!("{field} as {kind}"),
                &signed(&claims_with(|m| {
                    m.insert(field.into(), v.clone());
                })),
                &["BadClaims"],
            );
        }
    }
    for field in ["exp", "iat", "aud", "client_id", "iss", "jti", "sub"] {
        c.reject(
            format!("{field} missing"),
            &signed(&claims_with(|m| {
                m.remove(field);
            })),
            &["BadClaims"],
        );
    }
    // serde_json reads the number text itself: overflow and exponents.
    for (name, raw) in [
        (
            "exp 2^64 (overflows u64)",
            "18446744073709551616".to_string(),
        ),
        ("exp 1e400", "1e400".to_string()),
        ("exp in exponent form", format!("{}e0", NOW + TTL)),
    ] {
        let p = claims_with(|_| {})
            .replace(&format!("\"exp\":{}", NOW + TTL), &format!("\"exp\":{raw}"));
        assert!(p.contains(&raw), "{name}: {p}");
        c.reject(name, &signed(&p), &["BadClaims"]);
    }
    c.reject(
        "exp as a string carrying a newline (log injection)",
        &signed(&claims_with(|m| {
            m.insert("exp".into(), json!("1\nFORGED LOG LINE"));
        })),
        &["BadClaims"],
    );

    // Identity.
    c.reject(
        "wrong iss",
        &signed(&claims_with(|m| {
            m.insert("iss".into(), json!("Evil-Gateway"));
        })),
        &["Issuer"],
    );
    c.reject(
        "iss in another case",
        &signed(&claims_with(|m| {
            m.insert("iss".into(), json!("higress-gateway"));
        })),
        &["Issuer"],
    );
    c.reject(
        "sub consumer2 with consumer1's client_id, signed by consumer1",
        &signed(&claims_with(|m| {
            m.insert("sub".into(), json!("consumer2"));
        })),
        &["Subject"],
    );
    c.reject(
        "sub consumer2 with consumer1's client_id, signed by consumer2",
        &jws(
            &header_with(|_| {}),
            claims_with(|m| {
                m.insert("sub".into(), json!("consumer2"));
            })
            .as_bytes(),
            Sig::Hs(256, C2.1.as_bytes()),
        ),
        &["Signature"],
    );
    c.reject(
        "client_id of consumer2, sub consumer1, signed by consumer1",
        &signed(&claims_with(|m| {
            m.insert("client_id".into(), json!(C2.0));
        })),
        &["Signature"],
    );
    c.reject(
        "unknown client_id, signed by consumer1",
        &signed(&claims_with(|m| {
            m.insert(
                "client_id".into(),
                json!("00000000-0000-0000-0000-000000000000"),
            );
        })),
        &["UnknownClient"],
    );
    c.reject(
        "client_id is consumer1's secret",
        &signed(&claims_with(|m| {
            m.insert("client_id".into(), json!(C1.1));
        })),
        &["UnknownClient"],
    );
    c.reject(
        "sub as a number",
        &signed(&claims_with(|m| {
            m.insert("sub".into(), json!(1));
        })),
        &["BadClaims"],
    );

    // Audiences on the route-scoped policy.
    let ta = scoped.issue("/a");
    let scoped_aud = |aud: Value| {
        signed(&claims_with(|m| {
            m.insert("aud".into(), aud);
        }))
    };
    let on_scoped = |c: &mut Corpus, name: &str, path: &'static str, token: &str, want: Want| {
        c.add(
            name,
            Gw::Scoped,
            path,
            auth(format!("Bearer {token}")),
            want,
        );
    };
    on_scoped(
        &mut c,
        "route-scoped: route-a token on route-a (baseline)",
        "/a/x",
        &ta,
        Want::Forward,
    );
    on_scoped(
        &mut c,
        "route-scoped: forged aud route-a on route-a (baseline)",
        "/a/x",
        &scoped_aud(json!("route-a")),
        Want::Forward,
    );
    on_scoped(
        &mut c,
        "route-scoped: route-a token on route-b",
        "/b/x",
        &ta,
        Want::Reject(&["Audience"]),
    );
    on_scoped(
        &mut c,
        "route-scoped: `default` aud token",
        "/a/x",
        &good,
        Want::Reject(&["Audience"]),
    );
    on_scoped(
        &mut c,
        "route-scoped: demo-issued `default` token",
        "/a/x",
        &issued,
        Want::Reject(&["Audience"]),
    );
    on_scoped(
        &mut c,
        "route-scoped: aud = the host",
        "/a/x",
        &scoped_aud(json!("localhost")),
        Want::Reject(&["Audience"]),
    );
    on_scoped(
        &mut c,
        "route-scoped: aud `Route-A` (case)",
        "/a/x",
        &scoped_aud(json!("Route-A")),
        Want::Reject(&["Audience"]),
    );
    on_scoped(
        &mut c,
        "route-scoped: aud [route-a, route-b]",
        "/b/x",
        &scoped_aud(json!(["route-a", "route-b"])),
        Want::Reject(&["BadClaims"]),
    );
    on_scoped(
        &mut c,
        "route-scoped: aud [route-b]",
        "/b/x",
        &scoped_aud(json!(["route-b"])),
        Want::Reject(&["BadClaims"]),
    );
    c.reject(
        "demo: aud route-a on a `default` rule",
        &scoped_aud(json!("route-a")),
        &["Audience"],
    );

    // Signature surgery.
    let (h, rest) = good.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    c.reject(
        "signature stripped (`h.p.`)",
        &format!("{h}.{p}."),
        &["Malformed"],
    );
    c.reject(
        "signature and its dot stripped (`h.p`)",
        &format!("{h}.{p}"),
        &["Malformed"],
    );
    c.reject(
        "empty header (`.p.s`)",
        &format!(".{p}.{s}"),
        &["Malformed"],
    );
    c.reject(
        "empty payload (`h..s`)",
        &format!("{h}..{s}"),
        &["Malformed"],
    );
    c.reject("three dots only", "..", &["Malformed"]);
    let other = signed(&claims_with(|m| {
        m.insert("jti".into(), json!("another-token"));
    }));
    let other_sig = other.rsplit('.').next().unwrap();
    c.reject(
        "signature of another token",
        &format!("{h}.{p}.{other_sig}"),
        &["Signature"],
    );
    c.reject(
        "signature of the issued token",
        &format!("{h}.{p}.{}", issued.rsplit('.').next().unwrap()),
        &["Signature"],
    );
    let flipped = b64(claims_with(|m| {
        m.insert("sub".into(), json!("consumer2"));
    }));
    c.reject(
        "payload tampered after signing (sub flipped)",
        &format!("{h}.{flipped}.{s}"),
        &["Signature"],
    );
    let later = b64(claims_with(|m| {
        m.insert("exp".into(), json!(NOW + 10 * TTL));
    }));
    c.reject(
        "payload tampered after signing (exp extended)",
        &format!("{h}.{later}.{s}"),
        &["Signature"],
    );
    let h384 = b64(header_with(|h| {
        h.insert("alg".into(), json!("HS384"));
    }));
    c.reject(
        "header swapped after signing (alg HS384)",
        &format!("{h384}.{p}.{s}"),
        &["Algorithm"],
    );
    // base64url without padding encodes 2 spare bits in the last character
    // of a 32-byte MAC: setting them must not give a second valid signature.
    let last = s.chars().last().unwrap();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.iter().position(|&b| b as char == last).unwrap();
    for spare in 1..4 {
        let malleable = alphabet[(idx & !3) | ((idx & 3) ^ spare)] as char;
        let s2 = format!("{}{malleable}", &s[..s.len() - 1]);
        c.reject(
            format!("signature with its spare bits set ({spare})"),
            &format!("{h}.{p}.{s2}"),
            &["Signature"],
        );
    }
    c.reject(
        "signature with one more character",
        &format!("{good}A"),
        &["Signature"],
    );
    c.reject(
        "signature doubled",
        &format!("{h}.{p}.{s}{s}"),
        &["Signature"],
    );
    c.reject(
        "signature of the wrong key length (HS512 bytes)",
        &with_header(&header_with(|_| {}), Sig::Hs(512, SECRET1)),
        &["Signature"],
    );
    c.reject(
        "extra segment (`h.p.s.x`)",
        &format!("{good}.x"),
        &["Malformed"],
    );
    c.reject(
        "extra empty segment (`h.p.s.`)",
        &format!("{good}."),
        &["Malformed"],
    );
    c.reject(
        "JWE-shaped (five segments)",
        &format!("{h}.{p}.{s}.{s}.{s}"),
        &["Malformed"],
    );
    // Every proper prefix and suffix of a valid token.
    for (which, token) in [("forged", &good), ("issued", &issued)] {
        for k in 1..token.len() {
            c.reject(
                format!("{which} token truncated to {k} of {}", token.len()),
                &token[..k],
                &["Malformed", "Signature"],
            );
            c.reject(
                format!("{which} token without its first {k} bytes"),
                &token[k..],
                ANY,
            );
        }
    }

    // Size.
    c.reject(
        "MAX_TOKEN_LEN + 1 bytes, validly signed",
        &sized(MAX_TOKEN_LEN + 1),
        &["TooLong"],
    );
    c.reject(
        "16 KiB token, validly signed",
        &sized(16 * 1024),
        &["TooLong"],
    );
    c.reject(
        "1 MiB token, validly signed",
        &sized(1024 * 1024),
        &["TooLong"],
    );
    c.reject("1 MiB of `A`", &"A".repeat(1024 * 1024), &["TooLong"]);
    c.reject("1 MiB of dots", &".".repeat(1024 * 1024), &["TooLong"]);

    // Payload shapes, validly signed.
    c.reject("non-JSON payload", &signed("not json"), &["BadClaims"]);
    c.reject("empty payload JSON object", &signed("{}"), &["BadClaims"]);
    c.reject("JSON `null` payload", &signed("null"), &["BadClaims"]);
    c.reject(
        "JSON string payload",
        &signed("\"consumer1\""),
        &["BadClaims"],
    );
    c.reject(
        "JSON array payload [\"consumer1\"]",
        &signed(r#"["consumer1"]"#),
        &["BadClaims"],
    );
    // (Arrays in field order and `crit: null`: `jose_json_is_read_strictly`, below.)
    let body = claims_with(|_| {});
    let dup = body.replacen("{", r#"{"sub":"consumer2","#, 1);
    c.reject(
        "duplicate-key JSON (`sub` twice)",
        &signed(&dup),
        &["BadClaims"],
    );
    let dup = body.replacen("{", &format!(r#"{{"exp":{},"#, NOW - 10 * TTL), 1);
    c.reject(
        "duplicate-key JSON (`exp` twice)",
        &signed(&dup),
        &["BadClaims"],
    );
    c.reject(
        "payload with trailing garbage",
        &signed(&format!("{body}x")),
        &["BadClaims"],
    );
    c.reject(
        "payload as two JSON objects",
        &signed(&format!("{body}{body}")),
        &["BadClaims"],
    );
    c.reject(
        "payload in UTF-16",
        &jws(
            &header_with(|_| {}),
            &body
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect::<Vec<_>>(),
            Sig::Hs(256, SECRET1),
        ),
        &["BadClaims"],
    );
    c.reject(
        "payload with a UTF-8 BOM",
        &signed(&format!("\u{feff}{body}")),
        &["BadClaims"],
    );
    c.reject(
        "non-UTF-8 payload",
        &jws(
            &header_with(|_| {}),
            b"\xff\xfe{\"sub\":1}",
            Sig::Hs(256, SECRET1),
        ),
        &["BadClaims"],
    );
    c.reject(
        "duplicate `sub` spelled with a \\u escape",
        &signed(&body.replacen("{", r#"{"s\u0075b":"consumer2","#, 1)),
        &["BadClaims"],
    );
    // Deep nesting (within the length limit): no stack overflow. Signed by
    // the attacker, so whatever the parser makes of it, it must end in 401.
    let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000));
    c.reject(
        "2000-deep array in an ignored header field",
        &with_header(
            &format!(r#"{{"alg":"HS256","typ":"{TYP}","x":{deep}}}"#),
            Sig::Hs(256, ATTACKER_KEY),
        ),
        &["Signature", "BadHeader"],
    );
    c.reject(
        "2000-deep array as `crit`",
        &with_header(
            &format!(r#"{{"alg":"HS256","typ":"{TYP}","crit":{deep}}}"#),
            Sig::Hs(256, ATTACKER_KEY),
        ),
        &["Critical", "BadHeader"],
    );
    c.reject(
        "2000-deep array in an ignored claim",
        &jws(
            &header_with(|_| {}),
            body.replacen("{", &format!(r#"{{"x":{deep},"#), 1)
                .as_bytes(),
            Sig::Hs(256, ATTACKER_KEY),
        ),
        &["Signature", "BadClaims"],
    );
    c.reject(
        "lone surrogate in `sub`",
        &signed(&body.replace(r#""sub":"consumer1""#, r#""sub":"\ud800consumer1""#)),
        &["BadClaims"],
    );
    c.reject(
        "header not JSON",
        &with_header("not json", Sig::Hs(256, SECRET1)),
        &["BadHeader"],
    );
    c.reject("header not base64", &format!("@@@.{p}.{s}"), &["Malformed"]);
    c.reject(
        "payload not base64",
        &format!("{h}.@@@.{s}"),
        &["Malformed"],
    );

    // The standard base64 alphabet, padding, and whitespace.
    let mixed = (0..)
        .map(|i| {
            signed(&claims_with(|m| {
                m.insert("jti".into(), json!(format!("jti-{i}")));
            }))
        })
        .find(|t| t.contains('-') && t.contains('_'))
        .unwrap();
    c.bearer(
        "baseline: token used for the alphabet cases",
        &mixed,
        Want::Forward,
    );
    let standard = mixed.replace('-', "+").replace('_', "/");
    c.reject(
        "standard alphabet (`+`, `/`)",
        &standard,
        &["Malformed", "Signature"],
    );
    let pad = |seg: &str| format!("{seg}{}", "=".repeat((4 - seg.len() % 4) % 4));
    let padded: Vec<String> = mixed.split('.').map(pad).collect();
    assert!(
        padded.iter().any(|s| s.ends_with('=')),
        "padding changes something"
    );
    c.reject(
        "`=` padding on every segment",
        &padded.join("."),
        &["Malformed", "Signature"],
    );
    let sig_only = format!(
        "{}.{}",
        mixed.rsplit_once('.').unwrap().0,
        pad(mixed.rsplit('.').next().unwrap())
    );
    if sig_only != mixed {
        c.reject("`=` padding on the signature", &sig_only, &["Signature"]);
    }
    let reencoded: Vec<String> = mixed
        .split('.')
        .map(|seg| STANDARD.encode(URL_SAFE_NO_PAD.decode(seg).unwrap()))
        .collect();
    c.reject(
        "standard base64 with padding (re-encoded)",
        &reencoded.join("."),
        &["Malformed", "Signature"],
    );
    for (name, ws) in [
        ("space", " "),
        ("tab", "\t"),
        ("newline", "\n"),
        ("CRLF", "\r\n"),
        ("NUL", "\0"),
    ] {
        let mid = good.len() / 2;
        let t = format!("{}{ws}{}", &good[..mid], &good[mid..]);
        let classes: &[&str] = if ws == "\0" {
            &["Malformed"]
        } else {
            &["NotBearer", "Malformed"]
        };
        c.reject(format!("{name} inside the token"), &t, classes);
        let t = format!("{}.{ws}{}", h, &good[h.len() + 1..]);
        c.reject(format!("{name} after the first dot"), &t, classes);
    }

    c.0
}

// ---------------------------------------------------------------- the checks

/// What went wrong with `case`, if anything.
fn check(case: &Case, d: &Decision) -> Result<(), String> {
    let classes = match case.want {
        Want::Forward => {
            let f = d
                .forward()
                .ok_or_else(|| format!("expected forward as consumer1, got {d:?}"))?;
            if f.consumer.as_deref() != Some("consumer1") {
                return Err(format!("forwarded as {:?}", f.consumer));
            }
            return Ok(());
        }
        Want::Reject(classes) => classes,
    };
    let r = match d {
        Decision::Reply(r) => r,
        Decision::Forward(f) => {
            return Err(format!(
                "FORWARDED (consumer {:?}) instead of 401",
                f.consumer
            ));
        }
        Decision::NeedBody { .. } => return Err("asked for the body instead of 401".into()),
        Decision::RefreshKeys { url } => {
            return Err(format!("asked to fetch {url} instead of 401"));
        }
        Decision::Fetch(f) => return Err(format!("asked to call {} instead of 401", f.url)),
    };
    if r.status != 401 {
        return Err(format!(
            "status {} (reason {:?}), expected 401",
            r.status, r.reason
        ));
    }
    if r.body != b"Invalid Jwt token" {
        return Err(format!("body {:?}", String::from_utf8_lossy(&r.body)));
    }
    let challenge = r.header("www-authenticate").unwrap_or("");
    if !challenge.starts_with("Bearer realm=\"http://localhost/") {
        return Err(format!("www-authenticate {challenge:?}"));
    }
    let reason = &r.reason;
    if reason.trim().is_empty() {
        return Err("empty reason".into());
    }
    let class = class_of(reason)
        .ok_or_else(|| format!("reason {reason:?} names no known failure class"))?;
    if !classes.contains(&class) {
        return Err(format!(
            "reason {reason:?} is class {class}, expected one of {classes:?}"
        ));
    }
    // A credential was presented exactly when the reason is not `Missing`.
    let invalid_token = challenge.contains("error=\"invalid_token\"");
    if invalid_token != (class != "Missing") {
        return Err(format!("challenge {challenge:?} for class {class}"));
    }
    if let Some(m) = &case.mentions
        && !reason.contains(m.as_str())
    {
        return Err(format!("reason {reason:?} does not mention {m}"));
    }
    if reason.chars().any(char::is_control) {
        return Err(format!(
            "reason {reason:?} has control characters (log injection)"
        ));
    }
    if reason.len() > 200 {
        return Err(format!("reason is {} bytes long", reason.len()));
    }
    for secret in SECRETS {
        if reason.contains(secret) {
            return Err(format!("reason {reason:?} holds a secret"));
        }
    }
    for (_, value) in &case.headers {
        let pieces = std::iter::once(value.as_str())
            .chain(value.split(|ch: char| ch.is_whitespace() || ch == '.'));
        for piece in pieces {
            if piece.len() > 8 && reason.contains(piece) {
                return Err(format!(
                    "reason {reason:?} holds (part of) the token: {piece:?}"
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn the_forger_reproduces_the_engines_signatures() {
    let demo = Harness::load("demo.policy");
    let issued = demo.issue("/a");
    let (msg, sig) = issued.rsplit_once('.').unwrap();
    assert_eq!(b64(hs(256, SECRET1, msg.as_bytes())), sig);
    let (msg, sig) = HIGRESS_SAMPLE_TOKEN.rsplit_once('.').unwrap();
    assert_eq!(b64(hs(256, SECRET1, msg.as_bytes())), sig);
    for len in [
        MAX_TOKEN_LEN - 1,
        MAX_TOKEN_LEN,
        MAX_TOKEN_LEN + 1,
        16 * 1024,
    ] {
        assert_eq!(sized(len).len(), len);
    }
}

#[test]
fn jwt_attack_corpus() {
    let demo = Harness::load("demo.policy");
    let scoped = Harness::load("route-scoped.policy");
    let cases = corpus(&demo, &scoped);
    let mut failures = Vec::new();
    let (mut attacks, mut baselines) = (0, 0);
    for case in &cases {
        match case.want {
            Want::Forward => baselines += 1,
            Want::Reject(_) => attacks += 1,
        }
        let gw = match case.gw {
            Gw::Demo => &demo,
            Gw::Scoped => &scoped,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| gw.decide(case.path, &case.headers)));
        let result = match outcome {
            Ok(d) => check(case, &d),
            Err(p) => Err(format!(
                "PANIC: {}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        };
        if let Err(why) = result {
            failures.push(format!(
                "[{:?} {}] {}: {why}",
                case.gw, case.path, case.name
            ));
        }
    }
    eprintln!(
        "jwt_attack_corpus: {} cases ({attacks} attacks, {baselines} baselines), {} failed",
        cases.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// A JOSE header and a JWT claims set are JSON *objects* (RFC 7515 §4, RFC
/// 7519 §7.2 step 10), and `crit`, when present, is a non-empty array (RFC
/// 7515 §4.1.11). serde's derived `Deserialize` also reads a struct from a
/// JSON array in field order; `token::parse` must not inherit that: a header
/// `["HS256","application/at+jwt"]` or a claims array in `Claims` field order
/// is refused, and so is `"crit": null` (any `crit` member is critical).
/// Only the holder of the secret could sign such tokens, but Higress and
/// other JWT libraries reject them, and so does Warden.
#[test]
fn jose_json_is_read_strictly() {
    let demo = Harness::load("demo.policy");
    let positional = json!([
        "default",
        C1.0,
        NOW + TTL,
        NOW,
        ISSUER,
        "jti",
        null,
        null,
        "consumer1"
    ]);
    let cases = [
        (
            "JSON array payload with every claim in field order",
            signed(&positional.to_string()),
            &["BadClaims"][..],
        ),
        (
            "JSON array header [\"HS256\", typ]",
            with_header(&json!(["HS256", TYP]).to_string(), Sig::Hs(256, SECRET1)),
            &["BadHeader"][..],
        ),
        (
            "crit null, validly signed",
            with_header(
                &format!(r#"{{"alg":"HS256","crit":null,"typ":"{TYP}"}}"#),
                Sig::Hs(256, SECRET1),
            ),
            &["Critical", "BadHeader"][..],
        ),
    ];
    let mut failures = Vec::new();
    for (name, token, classes) in cases {
        let case = Case {
            name: name.into(),
            gw: Gw::Demo,
            path: "/a",
            headers: auth(format!("Bearer {token}")),
            want: Want::Reject(classes),
            mentions: None,
        };
        if let Err(why) = check(&case, &demo.decide(case.path, &case.headers)) {
            failures.push(format!("{name}: {why}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
