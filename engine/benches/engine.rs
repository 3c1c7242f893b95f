//! Native engine benchmarks: the rule layer at 10 / 1,000 / 100,000 rules,
//! the full decision (HS256 verification + rules) and token issuance, with
//! `jsonwebtoken`'s own decode/encode of the same token as the reference.
//!
//! Kong's flows (`dialect kong`): an authorization-code exchange (authorize,
//! then the code at the token endpoint), client_credentials issuance, and
//! an access decision with a valid token, fresh and from the memo.
//!
//! Run: `cargo bench -p warden-engine --bench engine`
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use warden_engine::fixtures::{CONSUMER1 as C1, pairs, realistic_headers as headers};
use warden_engine::internal::token::Claims;
use warden_engine::synth::LastRule;
use warden_engine::{FixedServices, Policy, Request, VerifiedTokens};

const NOW: u64 = 1_700_000_000;

fn demo() -> (Policy, FixedServices) {
    let src = include_str!("../../policies/demo.policy");
    let host = FixedServices::at(NOW);
    (
        Policy::compile(src, &host).expect("demo policy compiles"),
        host,
    )
}

fn token(policy: &Policy, host: &FixedServices) -> String {
    let query = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        C1.0, C1.1
    );
    let headers = Vec::new();
    let req = Request {
        method: "GET",
        authority: "test.com",
        path: "/a/oauth2/token",
        query: &query,
        headers: &headers,
        ..Default::default()
    };
    let reply = policy.decide(&req, host);
    let body: serde_json::Value =
        serde_json::from_slice(&reply.reply().expect("token reply").body).unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

fn rule_decision(c: &mut Criterion) {
    let mut group = c.benchmark_group("rule_decision");
    for n in [10usize, 1_000, 100_000] {
        let host = FixedServices::at(NOW);
        let policy = Policy::compile(&warden_engine::synth::policy(n), &host)
            .expect("synthetic policy compiles");
        let g = policy.graph();
        let last = LastRule::of(n);
        let consumer = g.consumer_id(&last.consumer);
        let hs = pairs(&last.headers);
        let (by_route, by_domain) = last.requests(&hs);
        group.bench_with_input(BenchmarkId::new("route", n), &by_route, |b, req| {
            b.iter(|| black_box(g.rule_verdict(black_box(req), black_box(consumer))))
        });
        group.bench_with_input(BenchmarkId::new("domain", n), &by_domain, |b, req| {
            b.iter(|| black_box(g.rule_verdict(black_box(req), black_box(consumer))))
        });
    }
    group.finish();
}

fn full_decision(c: &mut Criterion) {
    let (policy, host) = demo();
    let t = token(&policy, &host);
    let owned = headers(Some(&t));
    let hs = pairs(&owned);
    let req = Request {
        method: "GET",
        scheme: "http",
        authority: "gw.example.org",
        path: "/a/items",
        headers: &hs,
        ..Default::default()
    };
    assert_eq!(
        policy
            .decide(&req, &host)
            .forward()
            .and_then(|f| f.consumer.as_deref()),
        Some("consumer1")
    );
    let mut group = c.benchmark_group("full_decision");
    group.bench_function("warden_native", |b| {
        b.iter(|| black_box(policy.decide(black_box(&req), &host)))
    });
    // The same token again, answered from the verified-token memo.
    let mut memo = VerifiedTokens::new(VerifiedTokens::DEFAULT_CAPACITY);
    group.bench_function("warden_native_repeat_token", |b| {
        b.iter(|| black_box(policy.decide_with(black_box(&req), &host, &mut memo)))
    });

    let key = DecodingKey::from_secret(C1.1.as_bytes());
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            black_box(jsonwebtoken::decode::<Claims>(black_box(&t), &key, &validation).unwrap())
        })
    });
    group.finish();
}

fn issuance(c: &mut Criterion) {
    let (policy, host) = demo();
    let query = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        C1.0, C1.1
    );
    let owned = headers(None);
    let hs = pairs(&owned);
    let req = Request {
        method: "GET",
        authority: "test.com",
        path: "/a/oauth2/token",
        query: &query,
        headers: &hs,
        ..Default::default()
    };
    let mut group = c.benchmark_group("issuance");
    group.bench_function("warden_native", |b| {
        b.iter(|| black_box(policy.decide(black_box(&req), &host)))
    });

    let t = token(&policy, &host);
    let claims: Claims = jsonwebtoken::dangerous::insecure_decode_claims(&t).unwrap();
    let key = EncodingKey::from_secret(C1.1.as_bytes());
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("application/at+jwt".into());
    group.bench_function("jsonwebtoken_encode", |b| {
        b.iter(|| black_box(jsonwebtoken::encode(&header, black_box(&claims), &key).unwrap()))
    });
    group.finish();
}

/// Parse, check and compile the synthetic policy at 100,000 consumers,
/// routes and domains (200,000 rules): the target is ≤ 1 s natively.
fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    let host = FixedServices::at(NOW);
    for n in [1_000usize, 100_000] {
        let source = warden_engine::synth::policy(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &source, |b, src| {
            b.iter(|| Policy::compile(black_box(src), &host).expect("compiles"))
        });
    }
    group.finish();
}

/// `policies/kong-code-pkce.policy` with its two secrets.
fn kong_policy() -> (Policy, FixedServices) {
    let src = include_str!("../../policies/kong-code-pkce.policy");
    let mut host = FixedServices::at(NOW);
    host.secrets = vec![
        (
            "env:WARDEN_SIGNING_KEY".into(),
            b"0123456789abcdef0123456789abcdef-kong-bench".to_vec(),
        ),
        ("env:PROVISION_KEY".into(), b"provision-bench".to_vec()),
    ];
    let policy = Policy::compile(src, &host).expect("kong-code-pkce.policy compiles");
    (policy, host)
}

const KONG_AUTHORIZE: &str = "provision_key=provision-bench&authenticated_userid=user-1\
     &client_id=webapp-client&response_type=code&scope=email";

/// POST `body` (a form) to `path` over HTTPS.
fn kong_post(
    policy: &Policy,
    host: &FixedServices,
    path: &str,
    body: &str,
) -> warden_engine::Decision {
    let req = Request {
        method: "POST",
        scheme: "https",
        authority: "gw.example.org",
        path,
        headers: &[("content-type", "application/x-www-form-urlencoded")],
        body: Some(body.as_bytes()),
        ..Default::default()
    };
    policy.decide(&req, host)
}

/// One authorization-code flow: authorize, then exchange the code; the
/// token endpoint's JSON reply.
fn kong_code_flow(policy: &Policy, host: &FixedServices) -> serde_json::Value {
    let d = kong_post(policy, host, "/api/oauth2/authorize", KONG_AUTHORIZE);
    let reply = d.reply().expect("authorize replies");
    assert_eq!(reply.status, 200, "{}", reply.reason);
    // {"redirect_uri":"https://app.example.com/callback?code=…"}: the code
    // is base64url, so it ends at the closing quote.
    let body = std::str::from_utf8(&reply.body).unwrap();
    let code = &body[body.find("code=").expect("a code") + 5..];
    let code = &code[..code.find(['&', '"']).unwrap()];
    let exchange = format!(
        "grant_type=authorization_code&code={code}\
         &client_id=webapp-client&client_secret=webapp-secret"
    );
    let d = kong_post(policy, host, "/api/oauth2/token", &exchange);
    let reply = d.reply().expect("token replies");
    assert_eq!(reply.status, 200, "{}", reply.reason);
    serde_json::from_slice(&reply.body).unwrap()
}

/// A policy's in-process store holds `MEMORY_STORE_CAPACITY` entries and
/// refuses more (503) while the clock stands still: a fast machine filled
/// one within a benchmark. Runs `flow` `iters` times, on a fresh policy
/// from `make` (and so a fresh store) every `FLOWS_PER_STORE` runs; the
/// time taken, with making the policies left out.
fn on_fresh_stores<P>(iters: u64, make: impl Fn() -> P, flow: impl Fn(&P)) -> Duration {
    const FLOWS_PER_STORE: u64 = 100_000;
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let policy = make();
        let flows = (iters - done).min(FLOWS_PER_STORE);
        let started = Instant::now();
        for _ in 0..flows {
            flow(&policy);
        }
        elapsed += started.elapsed();
        done += flows;
    }
    elapsed
}

fn kong(c: &mut Criterion) {
    let mut group = c.benchmark_group("kong");

    // Authorize + exchange against a store that keeps every refresh token
    // issued (as a server's does, for their TTL: 14 days here), fresh every
    // FLOWS_PER_STORE flows (`on_fresh_stores`).
    let (policy, host) = kong_policy();
    let first = kong_code_flow(&policy, &host);
    assert!(first["refresh_token"].is_string());
    group.bench_function("code_exchange", |b| {
        b.iter_custom(|iters| {
            on_fresh_stores(iters, kong_policy, |(policy, host)| {
                black_box(kong_code_flow(policy, host));
            })
        })
    });

    // Kong's client_credentials issuance (beside `issuance/warden_native`);
    // the store keeps each token issued, fresh as above.
    let cc_policy = || {
        let src = include_str!("../../policies/kong-client-credentials.policy");
        let mut host = FixedServices::at(NOW);
        host.secrets = vec![(
            "env:WARDEN_SIGNING_KEY".into(),
            b"0123456789abcdef0123456789abcdef-kong-bench".to_vec(),
        )];
        let policy = Policy::compile(src, &host).expect("kong-client-credentials.policy compiles");
        (policy, host)
    };
    let cc = "grant_type=client_credentials&client_id=SOME-CLIENT-ID\
              &client_secret=SOME-CLIENT-SECRET&scope=email";
    let issue = |(policy, host): &(Policy, FixedServices)| {
        let d = kong_post(policy, host, "/mock/oauth2/token", black_box(cc));
        assert_eq!(d.reply().map(|r| r.status), Some(200), "{d:?}");
    };
    issue(&cc_policy());
    group.bench_function("client_credentials", |b| {
        b.iter_custom(|iters| on_fresh_stores(iters, cc_policy, issue))
    });

    // Access to /api with the exchanged token and the realistic headers of
    // `full_decision`: X-Consumer-* and X-Authenticated-* headers upstream.
    let token = first["access_token"].as_str().unwrap();
    let owned = headers(Some(token));
    let hs = pairs(&owned);
    let req = Request {
        method: "GET",
        scheme: "https",
        authority: "gw.example.org",
        path: "/api/items",
        headers: &hs,
        ..Default::default()
    };
    let forward = policy.decide(&req, &host);
    let set = &forward
        .forward()
        .expect("the token is accepted")
        .set_headers;
    assert!(
        set.iter()
            .any(|(n, v)| n == "x-authenticated-userid" && v == "user-1")
    );
    group.bench_function(BenchmarkId::new("access_decision", "fresh"), |b| {
        b.iter(|| black_box(policy.decide(black_box(&req), &host)))
    });
    let mut memo = VerifiedTokens::new(VerifiedTokens::DEFAULT_CAPACITY);
    assert_eq!(policy.decide_with(&req, &host, &mut memo), forward);
    group.bench_function(BenchmarkId::new("access_decision", "memo"), |b| {
        b.iter(|| black_box(policy.decide_with(black_box(&req), &host, &mut memo)))
    });
    group.finish();
}

criterion_group!(
    benches,
    rule_decision,
    full_decision,
    issuance,
    compile,
    kong
);
criterion_main!(benches);
