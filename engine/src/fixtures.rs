//! Known values shared by the tests and benchmarks of every crate (feature
//! `test-util`): the consumers and the sample token of the Higress page, a
//! realistic set of request headers, the scenario policies of `policies/`
//! compiled natively ([`Scenario`]), and helpers that read decisions. Nothing
//! in the engine itself uses them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test data: a failure is the test's

use crate::{Decision, FixedServices, Policy};

/// consumer1 of the Higress examples: (client_id, client_secret).
pub const CONSUMER1: (&str, &str) = (
    "12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    "abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
);
/// consumer2 of the Higress examples: (client_id, client_secret).
pub const CONSUMER2: (&str, &str) = (
    "87654321-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    "hgfedcba-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
);

/// The sample `access_token` of the Higress page: issued by a Higress gateway
/// to consumer1 (aud `default`), signed with consumer1's secret.
pub const HIGRESS_SAMPLE_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6ImFwcGxpY2F0aW9uXC9hdCtqd3QifQ.eyJhdWQiOiJkZWZhdWx0IiwiY2xpZW50X2lkIjoiMTIzNDU2NzgteHh4eC14eHh4LXh4eHgteHh4eHh4eHh4eHh4IiwiZXhwIjoxNjg3OTUxNDYzLCJpYXQiOjE2ODc5NDQyNjMsImlzcyI6IkhpZ3Jlc3MtR2F0ZXdheSIsImp0aSI6IjEwOTU5ZDFiLThkNjEtNGRlYy1iZWE3LTk0ODEwMzc1YjYzYyIsInN1YiI6ImNvbnN1bWVyMSJ9.NkT_rG3DcV9543vBQgneVqoGfIhVeOuUBwLJJ4Wycb0";
/// `iat` of [`HIGRESS_SAMPLE_TOKEN`].
pub const HIGRESS_SAMPLE_IAT: u64 = 1_687_944_263;
/// `exp` of [`HIGRESS_SAMPLE_TOKEN`].
pub const HIGRESS_SAMPLE_EXP: u64 = 1_687_951_463;

/// Twelve headers, as a browser or SDK sends them; the last is
/// `authorization: Bearer <token>` (or a bogus bearer when `token` is None).
pub fn realistic_headers(token: Option<&str>) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = [
        ("host", "gw.example.org"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) warden-bench/1.0",
        ),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate, br"),
        ("accept-language", "en-US,en;q=0.9"),
        ("cache-control", "no-cache"),
        ("connection", "keep-alive"),
        ("x-request-id", "6f1c2b9e-5d0a-4a8e-9c11-0b7f3e2d1a44"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    h.push((
        "authorization".into(),
        format!("Bearer {}", token.unwrap_or("none")),
    ));
    h
}

/// `method target` (`/path?query`, split at the first `?`) over `scheme`
/// at `authority`, with `headers` and `body`.
pub fn request<'a>(
    (method, scheme): (&'a str, &'a str),
    authority: &'a str,
    target: &'a str,
    headers: &'a [(&'a str, &'a str)],
    body: Option<&'a [u8]>,
) -> crate::Request<'a> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    crate::Request {
        method,
        scheme,
        authority,
        path,
        query,
        headers,
        body,
        ..Default::default()
    }
}

/// `GET target` (`/path?query`, split at the first `?`) over http at
/// `authority`, with `headers`.
pub fn get<'a>(
    authority: &'a str,
    target: &'a str,
    headers: &'a [(&'a str, &'a str)],
) -> crate::Request<'a> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    crate::Request {
        method: "GET",
        scheme: "http",
        authority,
        path,
        query,
        headers,
        ..Default::default()
    }
}

/// Borrowed (name, value) pairs of owned headers, as [`crate::Request`] takes them.
pub fn pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// `path?grant_type=client_credentials&client_id=…&client_secret=…`
pub fn token_target(path: &str, (client_id, secret): (&str, &str)) -> String {
    format!("{path}?grant_type=client_credentials&client_id={client_id}&client_secret={secret}")
}

/// The `access_token` of a successful token-endpoint decision, or what came instead.
pub fn access_token(d: &crate::Decision) -> Result<String, String> {
    let reply = d
        .reply()
        .ok_or_else(|| format!("the token endpoint forwarded: {d:?}"))?;
    if reply.status != 200 {
        return Err(format!(
            "status {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        ));
    }
    let body: serde_json::Value = serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
    body["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no access_token in {body}"))
}

/// The text of `policies/{name}` (the scenario policies the README shows).
pub fn policy_source(name: &str) -> String {
    let path = format!("{}/../policies/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A scenario policy compiled natively, with the services (a fixed clock)
/// it decides with.
pub struct Scenario {
    pub policy: Policy,
    pub services: FixedServices,
}

impl Scenario {
    /// `policies/{name}` at `now`; it must compile without warnings.
    pub fn load(name: &str, now: u64) -> Scenario {
        Scenario::with_services(name, FixedServices::at(now))
    }

    /// `policies/{name}` decided with `services` (a key ring, say).
    pub fn with_services(name: &str, services: FixedServices) -> Scenario {
        let policy = Policy::compile(&policy_source(name), &services)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(
            policy.warnings().is_empty(),
            "{name}: {:?}",
            policy.warnings()
        );
        Scenario { policy, services }
    }

    /// Decide `req`.
    pub fn decide(&self, req: &crate::Request<'_>) -> Decision {
        self.policy.decide(req, &self.services)
    }
}

/// The consumer a forward decision names (panics on any other decision).
pub fn consumer(d: &Decision) -> Option<&str> {
    d.forward()
        .unwrap_or_else(|| panic!("expected forward, got {d:?}"))
        .consumer
        .as_deref()
}

/// The status of a reply decision; 0 for a forward.
pub fn status(d: &Decision) -> u16 {
    d.reply().map_or(0, |r| r.status)
}

/// Test-only signing keys (public, in `engine/testdata/keys`): (kid, PEM).
/// Two ES256 keys (`es256-a` older, `es256-b` newer: rotation), and one each
/// of EdDSA, ES384 and RS256.
pub const TEST_KEYS: [(&str, &str); 5] = [
    ("eddsa-a", include_str!("../testdata/keys/eddsa-a.pem")),
    ("es256-a", include_str!("../testdata/keys/es256-a.pem")),
    ("es256-b", include_str!("../testdata/keys/es256-b.pem")),
    ("es384-a", include_str!("../testdata/keys/es384-a.pem")),
    ("rs256-a", include_str!("../testdata/keys/rs256-a.pem")),
];

/// A key ring of the [`TEST_KEYS`] named `kids`, in that order.
#[cfg(feature = "rust-crypto")]
pub fn key_ring(kids: &[&str]) -> crate::KeyRing {
    let keys = kids
        .iter()
        .map(|kid| {
            let (_, pem) = TEST_KEYS
                .iter()
                .find(|(k, _)| k == kid)
                .unwrap_or_else(|| panic!("no test key `{kid}`"));
            crate::HostKey::from_pem(kid, pem.as_bytes()).unwrap_or_else(|e| panic!("{kid}: {e}"))
        })
        .collect();
    crate::KeyRing::new(keys).unwrap_or_else(|e| panic!("{e}"))
}
