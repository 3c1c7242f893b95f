//! End to end: the real `warden` binary, real HTTP on loopback, a real HTTP
//! client (reqwest) and an independent JWT library (`jwt`) to read the tokens.
//! Every example of the Higress page, on the policy files under `policies/`.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, UntrustedToken};
use reqwest::blocking::Response;
use support::{Server, policy, warden};
use warden_engine::fixtures::{
    CONSUMER1 as C1, CONSUMER2 as C2, HIGRESS_SAMPLE_TOKEN as HIGRESS_SAMPLE,
};

/// The echo upstream's view of the request.
fn echoed(resp: Response) -> serde_json::Value {
    assert_eq!(resp.status(), 200, "expected the echo upstream");
    resp.json().unwrap()
}

fn text(resp: Response) -> (u16, Option<String>, String) {
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, challenge, resp.text().unwrap())
}

/// Claims of `token`, verified with `secret` by an independent JWT library
/// (`jwt-compact`, which Warden does not use). Registered time claims come back
/// as Unix seconds beside the others.
fn independent_claims(token: &str, secret: &str) -> BTreeMap<String, serde_json::Value> {
    let key = Hs256Key::new(secret.as_bytes());
    let untrusted = UntrustedToken::new(token).expect("jwt-compact parses Warden's token");
    assert_eq!(untrusted.algorithm(), "HS256");
    assert_eq!(
        untrusted.header().token_type.as_deref(),
        Some("application/at+jwt")
    );
    let verified = Hs256
        .validator::<BTreeMap<String, serde_json::Value>>(&key)
        .validate(&untrusted)
        .expect("jwt-compact verifies Warden's token");
    let claims = verified.claims();
    let mut all = claims.custom.clone();
    for (name, at) in [("exp", claims.expiration), ("iat", claims.issued_at)] {
        all.insert(
            name.into(),
            at.expect("time claim present").timestamp().into(),
        );
    }
    all
}

#[test]
fn demo_walkthrough() {
    walkthrough(&Server::start(None, None));
}

/// The same on `--workers 1` (the single-threaded scheduler), with four
/// clients at once on top.
#[test]
fn demo_walkthrough_on_one_worker_thread() {
    let s = Server::launch(&["--workers", "1"], &[]);
    walkthrough(&s);
    let t1 = s.token("localhost", "/a/oauth2/token", C1);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..50 {
                    let echo = echoed(s.get("localhost", "/a/x", Some(&t1)));
                    assert_eq!(echo["headers"]["x-mse-consumer"], "consumer1");
                }
            });
        }
    });
}

fn walkthrough(s: &Server) {
    let t1 = s.token("localhost", "/a/oauth2/token", C1);
    // POST, as in the Higress page, on a domain rule.
    let resp = s
        .client
        .post(format!("{}/oauth2/token", s.base))
        .header("host", "test.com")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            C2.0, C2.1
        ))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["pragma"], "no-cache");
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(
        (body["token_type"].as_str(), body["expires_in"].as_u64()),
        (Some("bearer"), Some(7200))
    );
    let t2 = body["access_token"].as_str().unwrap().to_string();

    // consumer1 reaches /a; the upstream sees X-Mse-Consumer.
    let echo = echoed(s.get("localhost", "/a/items?x=1", Some(&t1)));
    assert_eq!(echo["headers"]["x-mse-consumer"], "consumer1");
    assert_eq!(
        (echo["path"].as_str(), echo["query"].as_str()),
        (Some("/a/items"), Some("x=1"))
    );
    assert_eq!(
        echo["headers"]["authorization"],
        format!("Bearer {t1}"),
        "keep_token defaults to true"
    );

    // consumer2 on /a: 403; no token: 401, with RFC 6750 challenges.
    let (status, challenge, body) = text(s.get("localhost", "/a", Some(&t2)));
    assert_eq!((status, body.as_str()), (403, "Access Denied"));
    assert!(challenge.unwrap().contains("error=\"insufficient_scope\""));
    let (status, challenge, body) = text(s.get("localhost", "/a", None));
    assert_eq!((status, body.as_str()), (401, "Invalid Jwt token"));
    assert_eq!(challenge.unwrap(), "Bearer realm=\"http://localhost/a\"");
    let (status, challenge, _) = text(s.get("localhost", "/a", Some("garbage")));
    assert_eq!(status, 401);
    assert!(challenge.unwrap().ends_with("error=\"invalid_token\""));

    // Domains: consumer2 on *.example.com and test.com, consumer1 not.
    assert_eq!(
        echoed(s.get("api.example.com", "/", Some(&t2)))["headers"]["x-mse-consumer"],
        "consumer2"
    );
    assert_eq!(
        echoed(s.get("test.com:8080", "/x", Some(&t2)))["headers"]["x-mse-consumer"],
        "consumer2"
    );
    assert_eq!(text(s.get("api.example.com", "/", Some(&t1))).0, 403);
    assert_eq!(text(s.get("api.example.com", "/", None)).0, 401);

    // An unruled path passes without a token, and a spoofed consumer header is dropped.
    let resp = s
        .client
        .get(format!("{}/public", s.base))
        .header("x-mse-consumer", "admin")
        .send()
        .unwrap();
    let echo = echoed(resp);
    assert!(echo["headers"].get("x-mse-consumer").is_none(), "{echo}");
    s.assert_logs_keep(&[C1.1, C2.1, &t1, &t2]);
}

#[test]
fn tokens_decode_with_an_independent_jwt_library() {
    let s = Server::start(None, Some(1_800_000_000));
    let t = s.token("test.com", "/oauth2/token", C1);
    let c = independent_claims(&t, C1.1);
    assert_eq!(c["iss"], "Higress-Gateway");
    assert_eq!(c["sub"], "consumer1");
    assert_eq!(c["aud"], "default");
    assert_eq!(c["client_id"], C1.0);
    assert_eq!(c["iat"], 1_800_000_000u64);
    assert_eq!(c["exp"], 1_800_007_200u64);
    let jti = c["jti"].as_str().unwrap();
    assert_eq!((jti.len(), &jti[14..15]), (36, "4"), "a v4 UUID: {jti}");
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t.split('.').next().unwrap())
        .unwrap();
    let raw: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        (raw["alg"].as_str(), raw["typ"].as_str()),
        (Some("HS256"), Some("application/at+jwt"))
    );
    // And with the wrong secret it does not verify there either.
    let untrusted = UntrustedToken::new(&t).unwrap();
    let wrong = Hs256
        .validator::<BTreeMap<String, serde_json::Value>>(&Hs256Key::new(b"wrong"))
        .validate(&untrusted);
    assert!(wrong.is_err());
}

#[test]
fn the_higress_sample_token_honours_warden_now() {
    let inside = Server::start(None, Some(1_687_944_263 + 3600));
    let echo = echoed(inside.get("localhost", "/a", Some(HIGRESS_SAMPLE)));
    assert_eq!(echo["headers"]["x-mse-consumer"], "consumer1");
    drop(inside);
    let after = Server::start(None, Some(1_687_951_463 + 61));
    let (status, challenge, body) = text(after.get("localhost", "/a", Some(HIGRESS_SAMPLE)));
    assert_eq!((status, body.as_str()), (401, "Invalid Jwt token"));
    assert!(challenge.unwrap().contains("invalid_token"));
}

#[test]
fn route_scoped_and_shared_tokens() {
    let scoped = Server::start(Some("route-scoped.policy"), None);
    let ta = scoped.token("localhost", "/a/oauth2/token", C1);
    let tb = scoped.token("localhost", "/b/oauth2/token", C1);
    assert_eq!(independent_claims(&ta, C1.1)["aud"], "route-a");
    assert_eq!(
        echoed(scoped.get("localhost", "/a/x", Some(&ta)))["headers"]["x-mse-consumer"],
        "consumer1"
    );
    assert_eq!(
        echoed(scoped.get("localhost", "/b/x", Some(&tb)))["headers"]["x-mse-consumer"],
        "consumer1"
    );
    assert_eq!(text(scoped.get("localhost", "/b/x", Some(&ta))).0, 401);
    assert_eq!(text(scoped.get("localhost", "/a/x", Some(&tb))).0, 401);

    let shared = Server::start(Some("shared-tokens.policy"), None);
    let ta = shared.token("localhost", "/a/oauth2/token", C1);
    assert_eq!(independent_claims(&ta, C1.1)["aud"], "default");
    assert_eq!(
        echoed(shared.get("localhost", "/b/x", Some(&ta)))["headers"]["x-mse-consumer"],
        "consumer1"
    );
}

#[test]
fn gateway_wide_authentication() {
    let s = Server::start(Some("gateway-wide.policy"), None);
    assert_eq!(text(s.get("anything.test", "/", None)).0, 401);
    assert_eq!(text(s.get("localhost", "/some/path", None)).0, 401);
    let t = s.token("localhost", "/oauth2/token", C2);
    assert_eq!(
        echoed(s.get("other.test", "/x", Some(&t)))["headers"]["x-mse-consumer"],
        "consumer2"
    );
}

#[test]
fn token_endpoint_errors_over_http() {
    let s = Server::start(None, None);
    let url = format!("{}/a/oauth2/token", s.base);
    let resp = s.client.put(&url).send().unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(body["error"], "invalid_request");

    let resp = s
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);

    let resp = s.get(
        "localhost",
        &format!(
            "/a/oauth2/token?grant_type=client_credentials&client_id={}&client_secret=wrong",
            C1.0
        ),
        None,
    );
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<serde_json::Value>().unwrap()["error"],
        "invalid_client"
    );

    let resp = s
        .client
        .get(format!("{url}?grant_type=client_credentials"))
        .basic_auth(C1.0, Some("wrong"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Basic realm=\"token\"");
    let resp = s
        .client
        .get(format!("{url}?grant_type=client_credentials"))
        .basic_auth(C1.0, Some(C1.1))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    s.assert_logs_keep(&[C1.1, "wrong"]);
}

/// RFC 6749 §2.3.1: the Basic id and secret are form-urlencoded, each on
/// its own: a secret holding `&` or `=` is one secret, encoded or not.
#[test]
fn basic_credentials_with_ampersands_and_equals_signs() {
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("basic-amp.policy");
    std::fs::write(
        &file,
        "consumer c { client_id \"a&b=c\"; client_secret \"abc&anything=1\" }\n",
    )
    .unwrap();
    let s = Server::launch(&["--policy".as_ref(), file.as_os_str()], &[]);
    let url = format!("{}/oauth2/token?grant_type=client_credentials", s.base);
    let basic = |raw: &str| {
        use base64::Engine as _;
        let value = base64::engine::general_purpose::STANDARD.encode(raw);
        s.client
            .get(&url)
            .header("authorization", format!("Basic {value}"))
            .send()
            .unwrap()
            .status()
    };
    // As reqwest (and many clients) send it, unencoded…
    let resp = s
        .client
        .get(&url)
        .basic_auth("a&b=c", Some("abc&anything=1"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // …and form-urlencoded as the RFC asks.
    assert_eq!(basic("a%26b%3Dc:abc%26anything%3D1"), 200);
    // Only the whole secret is the secret.
    assert_eq!(basic("a%26b%3Dc:abc"), 401);
    assert_eq!(basic("a:b=c:abc&anything=1"), 401);
}

#[test]
fn check_reports_errors_with_line_and_column() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let bad = dir.join("unknown-consumer.policy");
    std::fs::write(&bad, "consumer alice { client_id a; client_secret s }\nrule {\n  match route [r]\n  allow [alcie]\n}\n").unwrap();
    let (code, stderr) = check(&[bad.as_os_str()]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("unknown consumer `alcie` in `allow`"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown-consumer.policy:4:10"), "{stderr}");
    assert!(stderr.contains("did you mean `alice`?"), "{stderr}");
    assert!(stderr.contains("  allow [alcie]\n"), "{stderr}");

    let files = [
        "demo.policy",
        "route-scoped.policy",
        "shared-tokens.policy",
        "gateway-wide.policy",
    ]
    .map(policy);
    let (code, stderr) = check(&files.each_ref().map(|f| f.as_ref()));
    assert_eq!(code, Some(0), "{stderr}");

    assert_eq!(check(&["/nonexistent/x.policy".as_ref()]).0, Some(1));

    // Upstreams `serve` could not reach are refused by `check`, at the value.
    for (upstream, why) in [
        ("http://u:p@x:80", "credentials in the URL"),
        ("http://x:80/?a=1", "a query string is not allowed"),
        ("http://x:notaport", "the port `notaport` is not a number"),
    ] {
        let file = dir.join("bad-upstream.policy");
        std::fs::write(
            &file,
            format!("route r {{\n  upstream \"{upstream}\"\n}}\n"),
        )
        .unwrap();
        let (code, stderr) = check(&[file.as_os_str()]);
        assert_eq!(code, Some(1), "{upstream}: {stderr}");
        assert!(stderr.contains("bad-upstream.policy:2:12"), "{stderr}");
        assert!(stderr.contains(why), "{upstream}: {stderr}");
    }

    // A policy that needs more guest memory than allowed says so, and how
    // to allow more; the flag's own bound is checked up front.
    let big = dir.join("big.policy");
    std::fs::write(&big, warden_engine::synth::policy(5_000)).unwrap();
    let (code, stderr) = check(&["--memory-mib".as_ref(), "4".as_ref(), big.as_os_str()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("out of guest memory: an instance may use 4 MiB (`--memory-mib`"),
        "{stderr}"
    );
    let (code, stderr) = check(&[big.as_os_str()]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _) = check(&["--memory-mib".as_ref(), "257".as_ref(), big.as_os_str()]);
    assert_eq!(code, Some(2), "clap refuses it");
}

/// `warden check ARGS…`: its exit code and stderr.
fn check(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = warden().arg("check").args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn explain_describes_a_decision() {
    let out = warden()
        .args([
            "explain",
            "--policy",
            &policy("demo.policy"),
            "-H",
            "Host: api.example.com",
            "/x",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("hostname `api.example.com`"), "{text}");
    assert!(
        text.contains("first matching rule: rule `domains`"),
        "{text}"
    );
    assert!(text.contains("reply 401 (no bearer token)"), "{text}");
}

#[test]
fn hostile_requests_fail_closed() {
    use std::io::{Read, Write};
    let s = Server::start(None, None);
    let t1 = s.token("localhost", "/a/oauth2/token", C1);
    let addr = s.base.strip_prefix("http://").unwrap().to_string();
    // Raw HTTP/1.1, because HTTP client libraries normalise what we must send.
    let raw = |request: &str| {
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        conn.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
    };
    // Path confusion: `//a`, `/./a`, `/%61` would route around route-a here
    // but reach /a at an upstream that normalises paths.
    for path in ["//a/x", "/./a/x", "/b/../a/x", "/%61/x"] {
        let answer = raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        ));
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
    }
    // `Connection` naming the consumer header cannot strip what Warden sets,
    // and every Kong-style identity header a client sends is dropped.
    let resp = s
        .client
        .get(format!("{}/a", s.base))
        .bearer_auth(&t1)
        .header("connection", "x-mse-consumer")
        .header("x-consumer-groups", "admins")
        .header("X-Authenticated-Userid", "root")
        .send()
        .unwrap();
    let echo = echoed(resp);
    assert_eq!(echo["headers"]["x-mse-consumer"], "consumer1");
    assert!(echo["headers"].get("x-consumer-groups").is_none(), "{echo}");
    assert!(
        echo["headers"].get("x-authenticated-userid").is_none(),
        "{echo}"
    );
    // Two Host headers: the policy and the upstream could disagree, so 400.
    let answer = raw(
        "GET / HTTP/1.1\r\nHost: public.test\r\nHost: api.example.com\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // A token whose header is not valid UTF-8-safe to truncate: 401, not a trap.
    let hostile = "eyJhbGciOiLigqzigqzigqzigqzigqzigqwifQ.e30.x";
    assert_eq!(text(s.get("localhost", "/a", Some(hostile))).0, 401);
    // The server is still healthy.
    assert_eq!(
        echoed(s.get("localhost", "/a", Some(&t1)))["headers"]["x-mse-consumer"],
        "consumer1"
    );
    s.assert_logs_keep(&[C1.1, C2.1, &t1, hostile]);
}

#[test]
fn hashed_secrets_from_the_cli_to_a_token() {
    use std::io::Write;
    const SECRET: &str = "e2e hashed secret";
    const KEY: &str = "e2e-signing-key-0123456789abcdef0123456789";
    let mut child = warden()
        .arg("hash-secret")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{SECRET}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let phc = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert!(!phc.contains(SECRET));

    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hashed.policy");
    std::fs::write(
        &file,
        format!(
            "global_auth true\nsigning_key env WARDEN_E2E_SIGNING_KEY\n\
             consumer svc {{\n  client_id svc-1\n  client_secret hash \"{phc}\"\n}}\n"
        ),
    )
    .unwrap();
    let s = Server::launch(
        &["--policy".as_ref(), file.as_os_str()],
        &[("WARDEN_E2E_SIGNING_KEY", KEY)],
    );
    let token = s.token("gw", "/oauth2/token", ("svc-1", SECRET));
    let claims = independent_claims(&token, KEY);
    assert_eq!(claims["sub"], "svc");
    assert_eq!(
        echoed(s.get("gw", "/api", Some(&token)))["headers"]["x-mse-consumer"],
        "svc"
    );
    let url = "/oauth2/token?grant_type=client_credentials&client_id=svc-1&client_secret=nope";
    assert_eq!(s.get("gw", url, None).status(), 400);
    s.assert_logs_keep(&[SECRET, KEY, &phc, &token]);
}

/// A token request whose client secret is a password hash takes tens of
/// milliseconds on purpose; it runs off the worker threads, so on a single
/// worker other requests are not held up behind it.
#[test]
fn slow_token_requests_do_not_stall_a_worker() {
    let phc = warden_engine::hash_argon2id(b"right secret", &[9; 16]).unwrap();
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("slow-hash.policy");
    std::fs::write(
        &file,
        format!(
            "global_auth false\nsigning_key \"e2e-signing-key-0123456789abcdef0123456789\"\n\
             consumer svc {{\n  client_id svc-1\n  client_secret hash \"{phc}\"\n}}\n"
        ),
    )
    .unwrap();
    let s = Server::launch(
        &[
            "--workers".as_ref(),
            "1".as_ref(),
            "--policy".as_ref(),
            file.as_os_str(),
        ],
        &[],
    );
    let wrong = "/oauth2/token?grant_type=client_credentials&client_id=svc-1&client_secret=wrong";
    assert_eq!(s.get("gw", wrong, None).status(), 400); // warm
    let started = std::time::Instant::now();
    assert_eq!(s.get("gw", wrong, None).status(), 400);
    let one_hash = started.elapsed();

    // Public requests, each sent while another client keeps the gateway
    // hashing wrong secrets back to back.
    let hashing = std::sync::atomic::AtomicBool::new(true);
    let mut waits = std::thread::scope(|scope| {
        scope.spawn(|| {
            for _ in 0..8 {
                assert_eq!(s.get("gw", wrong, None).status(), 400);
            }
            hashing.store(false, std::sync::atomic::Ordering::SeqCst);
        });
        let mut waits = Vec::new();
        while hashing.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(one_hash / 4);
            let t = std::time::Instant::now();
            assert_eq!(s.get("gw", "/public", None).status(), 200);
            if hashing.load(std::sync::atomic::Ordering::SeqCst) {
                waits.push(t.elapsed());
            }
        }
        waits
    });
    assert!(
        waits.len() >= 3,
        "too few requests during the hashing: {waits:?}"
    );
    waits.sort();
    let median = waits[waits.len() / 2];
    assert!(
        median < one_hash / 4,
        "requests waited behind password hashes: median {median:?} of {waits:?}, one hash request {one_hash:?}"
    );
}
