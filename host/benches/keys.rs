//! Asymmetric tokens and introspection through the guest, beside the same
//! work done natively, in one run:
//! - ES256, RS256 and EdDSA verification of first-seen tokens (4,096
//!   distinct tokens cycled, more than the memo holds) through the guest —
//!   whose signature check is the host's native `keys.verify` — against
//!   `jsonwebtoken::decode` of the same tokens with the same public key;
//! - an introspection cache hit (the answer in the store) through the guest.
//!
//! Run: `cargo bench -p warden-host --bench keys`
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use warden_engine::MemoryStore;
use warden_engine::fixtures::{CONSUMER1 as C1, access_token, key_ring};
use warden_host::services::{SharedKeys, StateStore};
use warden_host::{Clock, GuestComponent, OwnedRequest, PolicyRuntime, RuntimeOptions};

const NOW: u64 = 1_700_000_000;
const TOKENS: usize = 4096;

fn runtime(source: &str, keys: SharedKeys, store: StateStore) -> PolicyRuntime {
    let options = RuntimeOptions {
        clock: Clock::Fixed(NOW),
        keys,
        store,
        ..Default::default()
    };
    let rt = PolicyRuntime::load_with(GuestComponent::shared().unwrap(), "bench", source, options)
        .unwrap_or_else(|e| panic!("{e}"));
    rt.prewarm(1).unwrap();
    rt
}

fn verify(c: &mut Criterion) {
    let policy = include_str!("../../policies/signing-keys.policy");
    for (alg, kid) in [
        ("ES256", "es256-b"),
        ("RS256", "rs256-a"),
        ("EdDSA", "eddsa-a"),
    ] {
        let source = policy.replace("signing_alg ES256", &format!("signing_alg {alg}"));
        let keys = SharedKeys::new(key_ring(&[kid]));
        let rt = runtime(&source, keys, StateStore::default());
        let issue = OwnedRequest::get(&format!(
            "/a/oauth2/token?grant_type=client_credentials&client_id={}&client_secret={}",
            C1.0, C1.1
        ));
        let tokens: Vec<String> = (0..TOKENS)
            .map(|_| access_token(&rt.decide(&issue).unwrap()).unwrap())
            .collect();
        let requests: Vec<OwnedRequest> = tokens
            .iter()
            .map(|t| {
                OwnedRequest::get("/a/items").with_header("Authorization", &format!("Bearer {t}"))
            })
            .collect();
        assert!(rt.decide(&requests[0]).unwrap().forward().is_some());
        // The same public key, natively.
        let jwks: serde_json::Value =
            serde_json::from_str(&key_ring(&[kid]).public_jwks()).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
        let key = DecodingKey::from_jwk(&jwk).unwrap();
        let algorithm: Algorithm = alg.parse().unwrap();
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&["default"]);
        validation.validate_exp = false;

        let mut group = c.benchmark_group(format!("verify_first_seen_{alg}"));
        let mut i = 0;
        group.bench_function("warden_guest", |b| {
            b.iter(|| {
                i = (i + 1) % TOKENS;
                black_box(rt.decide(&requests[i]).unwrap())
            })
        });
        let mut j = 0;
        group.bench_function("jsonwebtoken_decode", |b| {
            b.iter(|| {
                j = (j + 1) % TOKENS;
                black_box(
                    jsonwebtoken::decode::<serde_json::Value>(&tokens[j], &key, &validation)
                        .unwrap(),
                )
            })
        });
        group.finish();
    }
}

fn introspection_cache_hit(c: &mut Criterion) {
    let source = r#"
introspection corp { endpoint "http://127.0.0.1:9/introspect"; client_auth_header none; required_scopes [read]; payload_headers { username X-User } }
introspect corp
"#;
    let store = Arc::new(MemoryStore::new());
    let key = format!(
        "introspect:0:{}",
        hex::encode(Sha256::digest(b"opaque-token-1"))
    );
    let answer =
        br#"{"active":true,"scope":"read","sub":"alice","username":"alice","exp":1700003600}"#;
    store.put(&key, answer, 300, NOW).unwrap();
    let rt = runtime(source, SharedKeys::default(), StateStore::Memory(store));
    let req = OwnedRequest::get("/x").with_header("Authorization", "Bearer opaque-token-1");
    let d = rt.decide(&req).unwrap();
    assert_eq!(
        d.forward().and_then(|f| f.consumer.as_deref()),
        Some("alice"),
        "{d:?}"
    );
    c.bench_function("introspection_cache_hit/warden_guest", |b| {
        b.iter(|| black_box(rt.decide(&req).unwrap()))
    });
}

criterion_group!(benches, verify, introspection_cache_hit);
criterion_main!(benches);
