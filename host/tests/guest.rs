//! The engine through the real guest component in the wasmtime host
//! (`PolicyRuntime`, no HTTP): the demo policy's decisions, diagnostics,
//! the injected clock, secrets, deadlines, memory limits and traps, and the
//! instance pool under concurrent use.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_engine::fixtures::{
    CONSUMER1 as C1, CONSUMER2 as C2, HIGRESS_SAMPLE_TOKEN as HIGRESS_SAMPLE, access_token,
    consumer, status, token_target,
};
use warden_host::{
    Clock, GuestComponent, HostError, LoadError, ManualClock, OwnedRequest, PolicyRuntime,
    RuntimeOptions, Severity, Upstream,
};

const NOW: u64 = 1_700_000_000;

fn demo_source() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/demo.policy"
    ))
    .unwrap()
}

fn load(source: &str, options: RuntimeOptions) -> PolicyRuntime {
    PolicyRuntime::load_with(
        GuestComponent::shared().unwrap(),
        "test.policy",
        source,
        options,
    )
    .unwrap_or_else(|e| panic!("{e}: {e:?}"))
}

fn demo_at(clock: Clock) -> PolicyRuntime {
    load(
        &demo_source(),
        RuntimeOptions {
            clock,
            ..Default::default()
        },
    )
}

fn get(authority: &str, target: &str, token: Option<&str>) -> OwnedRequest {
    let req = OwnedRequest::get(target).with_authority(authority);
    match token {
        Some(t) => req.with_header("Authorization", &format!("Bearer {t}")),
        None => req,
    }
}

/// A token from the demo policy's token endpoint (GET, client_credentials).
fn token(rt: &PolicyRuntime, authority: &str, path: &str, client: (&str, &str)) -> String {
    access_token(
        &rt.decide(&get(authority, &token_target(path, client), None))
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn demo_policy_round_trip() {
    let rt = demo_at(Clock::Fixed(NOW));
    assert!(rt.warnings().is_empty(), "{:?}", rt.warnings());
    let routes: Vec<_> = rt
        .routes()
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.path_prefix.as_deref(),
                r.upstream.clone(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        [
            ("route-a", Some("/a"), Some(Upstream::Echo)),
            ("route-b", Some("/b"), Some(Upstream::Echo))
        ]
    );

    let t1 = token(&rt, "localhost", "/a/oauth2/token", C1);
    let t2 = token(&rt, "test.com", "/oauth2/token", C2);

    let ok = rt
        .decide(&get("localhost:8080", "/a/items", Some(&t1)))
        .unwrap();
    assert_eq!(consumer(&ok), Some("consumer1"));
    let f = ok.forward().unwrap();
    assert_eq!(
        f.set_headers,
        vec![("x-mse-consumer".to_owned(), "consumer1".to_owned())]
    );
    assert_eq!(
        (f.route.as_deref(), f.upstream.as_ref()),
        (Some("route-a"), Some(&Upstream::Echo))
    );

    let denied = rt.decide(&get("localhost", "/a", Some(&t2))).unwrap();
    let r = denied.reply().unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (403, b"Access Denied".as_slice())
    );
    assert!(!r.reason.is_empty(), "a reply says why, for the logs");

    let missing = rt.decide(&get("localhost", "/a", None)).unwrap();
    let r = missing.reply().unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (401, b"Invalid Jwt token".as_slice())
    );
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));

    assert_eq!(
        consumer(&rt.decide(&get("api.example.com", "/x", Some(&t2))).unwrap()),
        Some("consumer2")
    );
    assert_eq!(
        status(&rt.decide(&get("a.b.example.com", "/", Some(&t1))).unwrap()),
        403
    );

    // Unruled: forwarded without a token; a spoofed consumer header is removed.
    let open = rt
        .decide(&get("localhost", "/public", None).with_header("X-Mse-Consumer", "admin"))
        .unwrap();
    let f = open.forward().unwrap();
    assert_eq!(f.consumer, None);
    assert!(
        f.remove_headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("x-mse-consumer"))
    );

    let text = rt.explain(&get("test.com", "/x", None)).unwrap();
    assert!(!text.trim().is_empty());
    assert_eq!(rt.stats().instances_failed, 0);
}

#[test]
fn a_malformed_request_head_is_refused() {
    let rt = demo_at(Clock::Fixed(NOW));
    let req = get("localhost", "/public", None).with_header("accept", "*/*");
    let good = req.head().to_vec();
    let with = |head: &[u8]| req.clone().with_raw_head(head.to_vec());
    assert!(rt.decide(&with(&good)).unwrap().forward().is_some());
    let mut truncated = good.clone();
    truncated.pop();
    let mut not_utf8 = good.clone();
    *not_utf8.last_mut().unwrap() = 0xff;
    for bad in [truncated, not_utf8] {
        let d = rt.decide(&with(&bad)).unwrap();
        let reply = d.reply().expect("refused");
        assert_eq!(reply.status, 400);
        assert!(
            reply
                .reason
                .starts_with("malformed request head: truncated at byte")
                || reply.reason.contains("is not UTF-8"),
            "{}",
            reply.reason
        );
    }
}

#[test]
fn guest_and_native_engine_agree() {
    // Outside the token endpoint, decisions are deterministic given the
    // clock: the guest must decide exactly as the engine does natively.
    let source = demo_source();
    let rt = demo_at(Clock::Fixed(NOW));
    let host = warden_engine::FixedServices::at(NOW);
    let native = warden_engine::Policy::compile(&source, &host).unwrap();
    let t1 = token(&rt, "localhost", "/a/oauth2/token", C1);
    let requests = [
        get("localhost", "/a/items?x=1", Some(&t1)),
        get("localhost", "/b", Some(&t1)),
        get("localhost", "/a", None),
        get("localhost", "/a", Some("not-a-token")),
        get("test.com", "/", Some(&t1)),
        get("[::1]:8080", "/public", None).with_header("x-mse-consumer", "x"),
        OwnedRequest::new("DELETE", "/oauth2/token").with_authority("test.com"),
    ];
    for req in &requests {
        assert_eq!(
            rt.decide(req).unwrap(),
            native.decide(&req.fields().request(req.beside()), &host),
            "{req:?}"
        );
    }
}

#[test]
fn diagnostics_come_back_with_line_and_column() {
    let source = "consumer alice { client_id a; client_secret sa }\nisuer x\ntoken_ttl 2x\n";
    let diagnostics = match PolicyRuntime::load("broken.policy", source) {
        Err(LoadError::Invalid { name, diagnostics }) => {
            assert_eq!(name, "broken.policy");
            diagnostics
        }
        other => panic!("expected diagnostics, got {other:?}"),
    };
    let errors: Vec<_> = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 2, "{diagnostics:#?}");
    let isuer = errors[0];
    assert_eq!(
        (isuer.line, isuer.column, &source[isuer.span.clone()]),
        (2, 1, "isuer")
    );
    assert!(isuer.message.contains("`isuer`"), "{}", isuer.message);
    assert_eq!(isuer.help.as_deref(), Some("did you mean `issuer`?"));
    let ttl = errors[1];
    assert_eq!(
        (ttl.line, ttl.column, &source[ttl.span.clone()]),
        (3, 11, "2x")
    );
    let rendered = ttl.render("broken.policy", source);
    assert!(rendered.contains("--> broken.policy:3:11"), "{rendered}");
    assert!(rendered.contains("3 | token_ttl 2x\n"), "{rendered}");
}

#[test]
fn the_clock_is_injected_without_warden_now() {
    // A fixed clock: the Higress sample token is valid only around its iat/exp.
    let (iat, exp) = (1_687_944_263, 1_687_951_463);
    let at = |now| {
        demo_at(Clock::Fixed(now))
            .decide(&get("localhost", "/a", Some(HIGRESS_SAMPLE)))
            .unwrap()
    };
    assert_eq!(consumer(&at(iat + 10)), Some("consumer1"));
    assert_eq!(status(&at(exp + 61)), 401, "expired beyond the clock skew");
    assert_eq!(
        status(&at(iat - 61)),
        401,
        "issued in the future beyond the skew"
    );

    // A manual clock moves under a live runtime: tokens it issued expire,
    // also once the instance's verified-token memo remembers them.
    let clock = ManualClock::at(NOW);
    let rt = demo_at(Clock::Manual(clock.clone()));
    let t1 = token(&rt, "localhost", "/a/oauth2/token", C1);
    for _ in 0..2 {
        assert_eq!(
            consumer(&rt.decide(&get("localhost", "/a", Some(&t1))).unwrap()),
            Some("consumer1")
        );
    }
    clock.advance(7200 + 60);
    assert_eq!(
        consumer(&rt.decide(&get("localhost", "/a", Some(&t1))).unwrap()),
        Some("consumer1"),
        "valid within the clock skew"
    );
    clock.advance(1);
    assert_eq!(
        status(&rt.decide(&get("localhost", "/a", Some(&t1))).unwrap()),
        401
    );
}

#[test]
fn secrets_come_from_the_host() {
    let dir = std::env::temp_dir().join(format!("warden-guest-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, "s3cret\n").unwrap();
    let source = format!(
        "global_auth true\nconsumer alice {{ client_id alice-id; client_secret file {} }}\n",
        file.display()
    );
    let rt = load(
        &source,
        RuntimeOptions {
            clock: Clock::Fixed(NOW),
            ..Default::default()
        },
    );
    // The file's trailing newline is not part of the secret.
    token(&rt, "localhost", "/oauth2/token", ("alice-id", "s3cret"));

    let missing = "consumer alice { client_id a; client_secret env WARDEN_TEST_SURELY_UNSET }\n";
    match PolicyRuntime::load("p", missing) {
        Err(LoadError::Invalid { diagnostics, .. }) => {
            assert!(
                diagnostics[0]
                    .message
                    .contains("env:WARDEN_TEST_SURELY_UNSET"),
                "{diagnostics:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `n` consumers, routes and rules: big enough that compiling takes a while.
fn big_policy(n: usize) -> String {
    let mut s = String::from("global_auth false\n");
    for k in 0..n {
        s.push_str(&format!(
            "consumer c{k} {{ client_id id-{k}; client_secret secret-{k} }}\n"
        ));
        s.push_str(&format!("route r{k} {{ path_prefix /r{k} }}\n"));
        s.push_str(&format!("rule {{ match route [r{k}]; allow [c{k}] }}\n"));
    }
    s
}

#[test]
fn the_deadline_interrupts_the_guest() {
    // A running computation is interrupted: compiling 20k rules takes far
    // longer than 1 ms.
    let source = big_policy(20_000);
    let options = RuntimeOptions {
        compile_deadline: Duration::from_millis(1),
        ..Default::default()
    };
    let started = Instant::now();
    match PolicyRuntime::load_with(
        GuestComponent::shared().unwrap(),
        "big.policy",
        &source,
        options,
    ) {
        Err(LoadError::Host(HostError::Timeout {
            call: "compile", ..
        })) => {}
        other => panic!("expected a compile timeout, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "interrupted late: {:?}",
        started.elapsed()
    );

    // A zero deadline interrupts a decision at once; the runtime then drops
    // the instance and keeps serving with fresh ones.
    let zero = load(
        &demo_source(),
        RuntimeOptions {
            deadline: Duration::ZERO,
            ..Default::default()
        },
    );
    let err = zero.decide(&get("localhost", "/a", None)).unwrap_err();
    assert!(
        matches!(err, HostError::Timeout { call: "decide", .. }),
        "{err}"
    );
    let err = zero.decide(&get("localhost", "/a", None)).unwrap_err();
    assert!(matches!(err, HostError::Timeout { .. }), "{err}");
    assert_eq!(zero.stats().instances_failed, 2);
}

#[test]
fn a_trap_fails_the_call_and_the_runtime_keeps_serving() {
    // A 16 MiB body cannot fit in an instance capped at 8 MiB: the guest
    // traps while the request is copied in.
    let options = RuntimeOptions {
        memory_limit: 8 << 20,
        clock: Clock::Fixed(NOW),
        ..Default::default()
    };
    let rt = load(&demo_source(), options);
    let huge = OwnedRequest::post("/a", vec![b'x'; 16 << 20]);
    let err = rt.decide(&huge).unwrap_err();
    assert!(
        matches!(err, HostError::Trap { call: "decide", .. }),
        "{err}"
    );
    let before = rt.stats();
    assert_eq!(before.instances_failed, 1);
    assert_eq!(
        status(&rt.decide(&get("localhost", "/a", None)).unwrap()),
        401
    );
    assert_eq!(
        rt.stats().instances_created,
        before.instances_created + 1,
        "a fresh instance replaced it"
    );
}

#[test]
fn the_pool_serves_many_threads() {
    let rt = Arc::new(demo_at(Clock::Fixed(NOW)));
    let t1 = token(&rt, "localhost", "/a/oauth2/token", C1);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (rt, t1) = (Arc::clone(&rt), t1.clone());
            std::thread::spawn(move || {
                for j in 0..50 {
                    let d = rt.decide(&get("localhost", "/a/x", Some(&t1))).unwrap();
                    assert_eq!(consumer(&d), Some("consumer1"));
                    if (i + j) % 10 == 0 {
                        let t = token(&rt, "test.com", "/oauth2/token", C2);
                        assert_eq!(
                            consumer(&rt.decide(&get("test.com", "/", Some(&t))).unwrap()),
                            Some("consumer2")
                        );
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = rt.stats();
    assert_eq!(stats.instances_failed, 0);
    assert!(
        stats.instances_created <= 9,
        "one instance per concurrent caller at most: {stats:?}"
    );
    assert_eq!(stats.idle as u64, stats.instances_created);
}

#[test]
fn the_compiled_component_is_cached_on_disk_and_recovers_from_corruption() {
    use warden_host::{ComponentConfig, GUEST_WASM};
    let dir = std::env::temp_dir().join(format!("warden-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = ComponentConfig {
        cache_dir: Some(dir.clone()),
        pooling: false,
        ..Default::default()
    };
    let artifacts = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect()
    };
    let decide = |component: GuestComponent| {
        let rt = PolicyRuntime::load_with(
            Arc::new(component),
            "demo",
            &demo_source(),
            RuntimeOptions::default(),
        )
        .unwrap();
        assert_eq!(
            status(&rt.decide(&get("localhost", "/a", None)).unwrap()),
            401
        );
    };

    decide(GuestComponent::load(GUEST_WASM, &config).unwrap());
    let cached = artifacts();
    assert_eq!(cached.len(), 1, "{cached:?}");
    let written = std::fs::read(&cached[0]).unwrap();

    decide(GuestComponent::load(GUEST_WASM, &config).unwrap()); // from the cache
    std::fs::write(&cached[0], b"not a compiled component").unwrap();
    decide(GuestComponent::load(GUEST_WASM, &config).unwrap()); // recompiled
    assert_eq!(
        std::fs::read(&cached[0]).unwrap(),
        written,
        "the corrupt artifact was overwritten"
    );
    assert_eq!(artifacts().len(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn hashed_secrets_are_verified_by_the_host_off_the_call_budget() {
    const KEY: &str = "0123456789abcdef0123456789abcdef-signing";
    let phc = warden_engine::hash_argon2id(b"guest-secret", &[1; 16]).unwrap();
    // argon2id at OWASP cost takes milliseconds natively: a third of that
    // is the budget, which the guest itself needs only microseconds of (a
    // third, not less: a loaded machine stretches the guest's own wall time
    // too, and the wall-clock backstop is 4× the budget).
    let started = Instant::now();
    assert!(warden_engine::verify_secret_hash(&phc, b"guest-secret"));
    let hash = started.elapsed();
    let budget = (hash / 3).max(Duration::from_millis(1));
    assert!(
        hash > budget,
        "the hash ({hash:?}) is slower than the budget"
    );

    let source = format!(
        "global_auth true\nsigning_key \"{KEY}\"\nconsumer h {{ client_id h1; client_secret hash \"{phc}\" }}\n"
    );
    let rt = load(
        &source,
        RuntimeOptions {
            clock: Clock::Fixed(NOW),
            deadline: budget,
            ..Default::default()
        },
    );
    let token = token(&rt, "gw", "/oauth2/token", ("h1", "guest-secret"));
    assert_eq!(
        consumer(&rt.decide(&get("gw", "/x", Some(&token))).unwrap()),
        Some("h")
    );
    let wrong = rt
        .decide(&get(
            "gw",
            &token_target("/oauth2/token", ("h1", "guest-secreT")),
            None,
        ))
        .unwrap();
    assert_eq!(status(&wrong), 400, "{wrong:?}");
    assert_eq!(rt.stats().instances_failed, 0, "no call ran out of budget");
}

#[test]
fn the_demo_policy_instance_stays_within_4_mib_of_linear_memory() {
    let rt = demo_at(Clock::Fixed(NOW));
    let t = token(&rt, "test.com", "/a/oauth2/token", C1);
    for _ in 0..100 {
        rt.decide(&get("test.com", "/a/x", Some(&t))).unwrap();
    }
    // More distinct tokens than the verified-token memo holds: it stays bounded.
    for _ in 0..1_200 {
        let t = token(&rt, "test.com", "/a/oauth2/token", C1);
        let d = rt.decide(&get("test.com", "/a/x", Some(&t))).unwrap();
        assert_eq!(consumer(&d), Some("consumer1"));
    }
    assert_eq!(
        rt.stats().instances_created,
        1,
        "one instance served them all"
    );
    let peak = rt.stats().peak_memory;
    eprintln!("demo policy: peak guest linear memory {peak} bytes");
    assert!(peak > 0, "the peak is tracked");
    assert!(peak <= 4 << 20, "{peak} bytes > 4 MiB");
}

#[test]
fn a_large_policy_compiles_in_the_guest_within_the_default_limits() {
    // Issue 16's scale target: 100,000 consumers and routes, 200,000 rules
    // (21 MB of text) in the default 64 MiB instance (62 MiB on 12-03).
    let n: usize = std::env::var("WARDEN_TEST_SYNTH_N").map_or(100_000, |v| v.parse().unwrap());
    let defaults = RuntimeOptions::default();
    let memory_limit = std::env::var("WARDEN_TEST_MEMORY_MIB")
        .map_or(defaults.memory_limit, |v| v.parse::<usize>().unwrap() << 20);
    let source = warden_engine::synth::policy(n);
    let started = Instant::now();
    let rt = load(
        &source,
        RuntimeOptions {
            clock: Clock::Fixed(NOW),
            memory_limit,
            ..defaults
        },
    );
    let took = started.elapsed();
    let stats = rt.stats();
    eprintln!(
        "{n} consumers/routes, {} rules ({} bytes): compiled in the guest in {took:?}, peak linear memory {} MiB",
        2 * n,
        source.len(),
        stats.peak_memory >> 20
    );
    let d = rt
        .decide(&get("gw", &format!("/r{}/x", n - 1), None))
        .unwrap();
    assert_eq!(status(&d), 401, "the last route's rule applies");
}
