//! Through the guest: the full decision (request in, HS256 verification,
//! rules, decision out) and token issuance, each run by the wasmtime host
//! exactly as `warden serve` runs them, beside the same work done natively by
//! the engine and by `jsonwebtoken` alone, in one run.
//!
//! Run: `cargo bench -p warden-host --bench guest`
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use warden_engine::fixtures::{CONSUMER1 as C1, access_token, realistic_headers};
use warden_engine::internal::token::Claims;
use warden_engine::{FixedServices, Policy, VerifiedTokens};
use warden_host::{Clock, GuestComponent, OwnedRequest, PolicyRuntime, RuntimeOptions};

const NOW: u64 = 1_700_000_000;
const DEMO: &str = include_str!("../../policies/demo.policy");

fn token_request() -> OwnedRequest {
    OwnedRequest::get(&format!(
        "/a/oauth2/token?grant_type=client_credentials&client_id={}&client_secret={}",
        C1.0, C1.1
    ))
}

/// A realistic request: 12 headers, as a browser or SDK sends them.
fn api_request(token: &str) -> OwnedRequest {
    OwnedRequest::get("/a/items")
        .with_authority("gw.example.org")
        .with_headers(realistic_headers(Some(token)))
}

fn guest(c: &mut Criterion) {
    let options = RuntimeOptions {
        clock: Clock::Fixed(NOW),
        ..Default::default()
    };
    let runtime = PolicyRuntime::load_with(
        GuestComponent::shared().unwrap(),
        "demo.policy",
        DEMO,
        options,
    )
    .unwrap();
    runtime.prewarm(1).unwrap();
    let issued = runtime.decide(&token_request()).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&issued.reply().unwrap().body).unwrap();
    let token = body["access_token"].as_str().unwrap().to_string();
    let req = api_request(&token);
    assert_eq!(
        runtime
            .decide(&req)
            .unwrap()
            .forward()
            .and_then(|f| f.consumer.as_deref()),
        Some("consumer1")
    );

    let host = FixedServices::at(NOW);
    let native = Policy::compile(DEMO, &host).unwrap();
    let key = DecodingKey::from_secret(C1.1.as_bytes());
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();

    // A token seen for the first time: cycle through more distinct tokens
    // (each a different `jti`) than an instance's verified-token memo holds,
    // so that every decision parses and verifies its token afresh.
    let fresh: Vec<OwnedRequest> = (0..4 * VerifiedTokens::DEFAULT_CAPACITY)
        .map(|_| {
            let t = token_request();
            let d = native.decide(&t.fields().request(t.beside()), &host);
            api_request(&access_token(&d).unwrap())
        })
        .collect();
    let req_head = req.fields();
    let native_req = req_head.request(req.beside());
    let mut group = c.benchmark_group("full_decision");
    let mut k = 0;
    group.bench_function("warden_guest", |b| {
        b.iter(|| {
            k = (k + 1) % fresh.len();
            black_box(runtime.decide(black_box(&fresh[k])).unwrap())
        })
    });
    group.bench_function("warden_native", |b| {
        b.iter(|| black_box(native.decide(black_box(&native_req), &host)))
    });
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            black_box(jsonwebtoken::decode::<Claims>(black_box(&token), &key, &validation).unwrap())
        })
    });
    group.finish();

    // The same token again: answered from the verified-token memo.
    let mut memo = VerifiedTokens::new(VerifiedTokens::DEFAULT_CAPACITY);
    let mut group = c.benchmark_group("repeat_token");
    group.bench_function("warden_guest", |b| {
        b.iter(|| black_box(runtime.decide(black_box(&req)).unwrap()))
    });
    group.bench_function("warden_native", |b| {
        b.iter(|| black_box(native.decide_with(black_box(&native_req), &host, &mut memo)))
    });
    group.finish();

    let token_req = token_request();
    let claims: Claims = jsonwebtoken::dangerous::insecure_decode_claims(&token).unwrap();
    let enc = EncodingKey::from_secret(C1.1.as_bytes());
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("application/at+jwt".into());
    let mut group = c.benchmark_group("issuance");
    group.bench_function("warden_guest", |b| {
        b.iter(|| black_box(runtime.decide(black_box(&token_req)).unwrap()))
    });
    group.bench_function("warden_native", |b| {
        let head = token_req.fields();
        let native_req = head.request(token_req.beside());
        b.iter(|| black_box(native.decide(black_box(&native_req), &host)))
    });
    group.bench_function("jsonwebtoken_encode", |b| {
        b.iter(|| black_box(jsonwebtoken::encode(&header, black_box(&claims), &enc).unwrap()))
    });
    group.finish();

    // The round trip alone: a request that matches no rule and needs no
    // token, with the 12 headers of a realistic request (and with none).
    let open = OwnedRequest::get("/public")
        .with_authority("gw.example.org")
        .with_headers(realistic_headers(None));
    let bare = OwnedRequest::get("/public").with_authority("gw.example.org");
    let mut group = c.benchmark_group("guest_call");
    group.bench_function("unruled_request_12_headers", |b| {
        b.iter(|| black_box(runtime.decide(black_box(&open)).unwrap()))
    });
    group.bench_function("unruled_request_no_headers", |b| {
        b.iter(|| black_box(runtime.decide(black_box(&bare)).unwrap()))
    });
    group.bench_function("native_unruled_request_12_headers", |b| {
        let head = open.fields();
        let native_req = head.request(open.beside());
        b.iter(|| black_box(native.decide(black_box(&native_req), &host)))
    });
    let component = GuestComponent::shared().unwrap();
    group.bench_function("instantiate_from_pool", |b| {
        b.iter(|| {
            component
                .probe(RuntimeOptions::default().memory_limit)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, guest);
criterion_main!(benches);
