//! What other servers send Warden, as bytes: a JWK Set (`parse_jwks`, as
//! `jwt_issuer … jwks` and the host's fetched `jwks_url` copies read it), and
//! an introspection server's answer (any status, any body) to a policy that
//! introspects — decided to the end, never a panic, never a forward unless
//! the answer is an active token.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use warden_engine::internal::model::parse_jwks;
use warden_engine::{Decision, Fetched, FixedServices, Policy, Request};

const NOW: u64 = 1_700_000_000;
const POLICY: &str = r#"
introspection corp {
  endpoint        "http://127.0.0.1:9/introspect"
  client_id       warden
  client_secret   "warden-secret"
  required_scopes [read]
  payload_headers { username X-User }
  cache_ttl       0
}
introspect corp
"#;

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| Policy::compile(POLICY, &FixedServices::at(NOW)).expect("compiles"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(keys) = parse_jwks(text) {
            assert!(!keys.is_empty() && keys.len() <= 64);
        }
    }
    let (status, body) = match data.split_first() {
        Some((&s, rest)) => (if s < 128 { 200 } else { u16::from(s) + 172 }, rest),
        None => (200, data),
    };
    let headers = [("authorization", "Bearer opaque")];
    let req = Request {
        method: "GET",
        scheme: "https",
        authority: "gw.example.org",
        path: "/x",
        headers: &headers,
        fetched: Some(Fetched::Response { status, body }),
        ..Default::default()
    };
    let services = FixedServices::at(NOW);
    match policy().decide(&req, &services) {
        Decision::Forward(_) => {
            let v: serde_json::Value = serde_json::from_slice(body).expect("a forward read JSON");
            assert_eq!(status, 200);
            assert!(v.get("active").is_some());
        }
        Decision::Reply(r) => assert!(matches!(r.status, 401 | 403 | 503), "{}", r.status),
        other => panic!("{other:?}"),
    }
});
