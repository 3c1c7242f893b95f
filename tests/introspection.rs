//! Opaque tokens introspected (RFC 7662) through the real binary, against
//! an authorization server built on Python's `authlib` (its
//! `IntrospectionEndpoint`; tests/support/peers/introspection_as.py):
//! Gravitee's outcomes and error keys, the cache (positive answers only,
//! shared by concurrent misses, kept while the server is down), a slow
//! server that slows no one else, and servers answering garbage or errors.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

#[path = "support/peers.rs"]
mod peers;
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::Server;

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("introspection-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An authlib introspection server on a free loopback port.
struct AuthServer {
    child: Child,
    port: u16,
}

impl AuthServer {
    fn start(tokens: &Path, extra: &[&str]) -> AuthServer {
        let mut child = Command::new(peers::python())
            .arg(peers::script("introspection_as.py"))
            .args(["--port", "0", "--tokens"])
            .arg(tokens)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on 127.0.0.1:")
            .unwrap_or_else(|| panic!("introspection_as.py printed {line:?}"))
            .parse()
            .unwrap();
        AuthServer { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/introspect", self.port)
    }

    /// Introspection calls so far.
    fn calls(&self) -> u64 {
        self.stats()["introspections"].as_u64().unwrap()
    }

    fn stats(&self) -> Value {
        reqwest::blocking::get(format!("http://127.0.0.1:{}/stats", self.port))
            .unwrap()
            .json()
            .unwrap()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn tokens(dir: &Path) -> PathBuf {
    let exp = now() + 3600;
    let mut list = vec![
        json!({"token": "tok-read", "scope": "read", "sub": "alice", "username": "alice", "client_id": "app1", "exp": exp}),
        json!({"token": "tok-admin", "scope": "read admin", "sub": "bob", "username": "bob", "client_id": "app1", "exp": exp}),
        json!({"token": "tok-inactive", "active": false, "scope": "read", "sub": "carol"}),
    ];
    for i in 0..8 {
        list.push(json!({"token": format!("tok-{i}"), "scope": "read", "sub": format!("user{i}"), "exp": exp}));
    }
    let file = dir.join("tokens.json");
    std::fs::write(&file, Value::Array(list).to_string()).unwrap();
    file
}

fn block(name: &str, url: &str, scopes: &str) -> String {
    format!(
        r#"
introspection {name} {{
  endpoint          "{url}"
  method            POST
  client_id         warden
  client_secret     "warden-secret"
  token_query_param none
  token_form_field  token
  required_scopes   [{scopes}]
  payload_headers   {{ username X-User }}
  cache_ttl         5m
}}"#
    )
}

struct Setup {
    _dir: PathBuf,
    server: Server,
    main: AuthServer,
    slow: AuthServer,
    _garbage: AuthServer,
    _broken: AuthServer,
}

fn setup(name: &str) -> Setup {
    let dir = tmp(name);
    let list = tokens(&dir);
    let main = AuthServer::start(&list, &[]);
    let slow = AuthServer::start(&list, &["--delay-ms", "2000"]);
    let garbage = AuthServer::start(&list, &["--garbage"]);
    let broken = AuthServer::start(&list, &["--status", "500"]);
    // Gravitee's defaults: GET, the token as `?token=`, Basic client auth.
    let mut policy = format!(
        "global_auth false\nintrospection corp-get {{ endpoint \"{}\"; client_id warden; client_secret \"warden-secret\" }}\n",
        main.url()
    );
    for (n, url, scopes) in [
        ("corp-read", main.url(), "read"),
        ("corp-admin", main.url(), "admin"),
        ("corp-slow", slow.url(), "read"),
        ("corp-garbage", garbage.url(), "read"),
        ("corp-broken", broken.url(), "read"),
    ] {
        policy.push_str(&block(n, &url, scopes));
    }
    for (route, with) in [
        ("get", "corp-get"),
        ("read", "corp-read"),
        ("admin", "corp-admin"),
        ("slow", "corp-slow"),
        ("garbage", "corp-garbage"),
        ("broken", "corp-broken"),
    ] {
        policy.push_str(&format!(
            "\nroute {route} {{ path_prefix /{route}; upstream echo }}\nrule {route} {{ match route [{route}]; introspect {with} }}\n"
        ));
    }
    policy.push_str("route open { path_prefix /open; upstream echo }\n");
    let file = dir.join("policy.policy");
    std::fs::write(&file, policy).unwrap();
    let server = Server::launch(&["--policy".as_ref(), file.as_os_str()], &[]);
    Setup {
        _dir: dir,
        server,
        main,
        slow,
        _garbage: garbage,
        _broken: broken,
    }
}

/// Status, error key, and the echo (or the body) of `GET path` with `auth`.
fn call(server: &Server, path: &str, auth: Option<&str>) -> (u16, String, Value) {
    let mut req = server.client.get(format!("{}{path}", server.base));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let key = resp
        .headers()
        .get("x-error-key")
        .map_or("-", |v| v.to_str().unwrap())
        .to_string();
    let text = resp.text().unwrap();
    (
        status,
        key,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn gravitees_outcomes_with_their_keys_and_the_cache() {
    let mut s = setup("outcomes");
    let (status, key, echo) = call(&s.server, "/read/x", Some("Bearer tok-read"));
    assert_eq!(
        (status, key.as_str()),
        (200, "-"),
        "{echo}\n{}",
        s.server.logs()
    );
    assert_eq!(echo["headers"]["x-mse-consumer"], "alice");
    assert_eq!(echo["headers"]["x-user"], "alice");
    let calls = s.main.calls();
    assert_eq!(calls, 1);
    let last = &s.main.stats()["last"];
    assert_eq!(
        (last["method"].as_str(), last["form"].clone()),
        (Some("POST"), json!(["token"]))
    );
    assert_eq!(last["authorization_scheme"], "Basic");
    // Gravitee's defaults: a GET with the token in the query.
    assert_eq!(call(&s.server, "/get/x", Some("Bearer tok-read")).0, 200);
    let last = &s.main.stats()["last"];
    assert_eq!(
        (last["method"].as_str(), last["query"].clone()),
        (Some("GET"), json!(["token"]))
    );
    let calls = s.main.calls();
    // A cached positive answer: no second call.
    assert_eq!(call(&s.server, "/read/y", Some("bearer tok-read")).0, 200);
    assert_eq!(s.main.calls(), calls);
    // The decision log says which answer was fresh and which cached.
    let logs = s.server.logs();
    let forwards = |path: &str| -> Vec<String> {
        logs.lines()
            .filter(|l| l.contains(" forward") && l.contains(path))
            .map(str::to_string)
            .collect()
    };
    let first = forwards("/read/x");
    assert!(
        first.len() == 1 && first[0].contains("token=introspected"),
        "{logs}"
    );
    let cached = forwards("/read/y");
    assert!(
        cached.len() == 1 && cached[0].contains("token=introspection_cached"),
        "{logs}"
    );

    let cases = [
        ("/read/x", None, 401, "OAUTH2_MISSING_HEADER"),
        (
            "/read/x",
            Some("Basic d2FyZGVuOng="),
            401,
            "OAUTH2_MISSING_HEADER",
        ),
        (
            "/read/x",
            Some("Bearer   "),
            401,
            "OAUTH2_MISSING_ACCESS_TOKEN",
        ),
        (
            "/read/x",
            Some("Bearer tok-inactive"),
            401,
            "OAUTH2_INVALID_ACCESS_TOKEN",
        ),
        (
            "/read/x",
            Some("Bearer tok-unknown"),
            401,
            "OAUTH2_INVALID_ACCESS_TOKEN",
        ),
        (
            "/admin/x",
            Some("Bearer tok-read"),
            403,
            "OAUTH2_INSUFFICIENT_SCOPE",
        ),
        ("/admin/x", Some("Bearer tok-admin"), 200, "-"),
        (
            "/garbage/x",
            Some("Bearer tok-read"),
            503,
            "OAUTH2_INVALID_SERVER_RESPONSE",
        ),
        (
            "/broken/x",
            Some("Bearer tok-read"),
            503,
            "OAUTH2_SERVER_UNAVAILABLE",
        ),
    ];
    for (path, auth, want, want_key) in cases {
        let (status, key, body) = call(&s.server, path, auth);
        assert_eq!(
            (status, key.as_str()),
            (want, want_key),
            "{path} {auth:?}: {body}"
        );
    }
    let logs = s.server.logs();
    assert!(
        logs.contains("OAUTH2_INSUFFICIENT_SCOPE"),
        "the key is in the log line"
    );
    // Inactive answers are not cached: asked again.
    let before = s.main.calls();
    call(&s.server, "/read/x", Some("Bearer tok-inactive"));
    assert_eq!(s.main.calls(), before + 1);

    // The server goes down: cached tokens keep passing, others get 503.
    s.main.stop();
    assert_eq!(call(&s.server, "/read/x", Some("Bearer tok-read")).0, 200);
    let (status, key, _) = call(&s.server, "/read/x", Some("Bearer tok-1"));
    assert_eq!((status, key.as_str()), (503, "OAUTH2_SERVER_UNAVAILABLE"));
    s.server
        .assert_logs_keep(&["tok-read", "tok-1", "warden-secret"]);
}

#[test]
fn a_slow_server_slows_no_one_else_and_concurrent_misses_make_one_call() {
    let s = setup("slow");
    let base = s.server.base.clone();
    let started = Instant::now();
    let slow = std::thread::spawn(move || {
        let resp = reqwest::blocking::Client::new()
            .get(format!("{base}/slow/x"))
            .bearer_auth("tok-2")
            .send()
            .unwrap();
        (resp.status().as_u16(), Instant::now())
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(call(&s.server, "/open/x", None).0, 200);
        assert_eq!(call(&s.server, "/read/x", Some("Bearer tok-read")).0, 200);
        worst = worst.max(t.elapsed());
    }
    assert!(
        worst < Duration::from_millis(500),
        "other requests waited {worst:?}"
    );
    let (status, done) = slow.join().unwrap();
    assert_eq!(status, 200);
    assert!(
        done - started >= Duration::from_secs(2),
        "the slow call was made"
    );

    // Ten concurrent requests with one uncached token: one call.
    let before = s.slow.calls();
    let threads: Vec<_> = (0..10)
        .map(|_| {
            let base = s.server.base.clone();
            std::thread::spawn(move || {
                reqwest::blocking::Client::new()
                    .get(format!("{base}/slow/x"))
                    .bearer_auth("tok-3")
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(
        s.slow.calls(),
        before + 1,
        "concurrent misses share one call"
    );
    let _ = &s.main;
}
