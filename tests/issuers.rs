//! External issuers through the real binary: an identity provider made of
//! PyJWT and `cryptography` (tests/support/peers/idp.py) signs tokens and
//! publishes its JWK Set, served by Python's own `http.server`; `warden
//! serve` fetches the set from loopback, lets the consumer a token names
//! through where `allow` lists it, fetches the set again (once) for a key
//! it has not seen — rotation at the provider — and keeps the keys it has
//! when the provider is down.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

#[path = "support/peers.rs"]
mod peers;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::Server;

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("issuers-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn idp(args: &[&str]) -> String {
    let out = Command::new(peers::python())
        .arg(peers::script("idp.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "idp.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Python's `http.server` serving `dir` on a free loopback port: the
/// provider's JWK Set. Its request log goes to `log`.
struct Static {
    child: Child,
    port: u16,
    log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Static {
    fn start(dir: &Path) -> Static {
        Static::on(dir, free_port())
    }

    fn on(dir: &Path, port: u16) -> Static {
        let log = dir.with_extension("http.log");
        let child = Command::new(peers::python())
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Static { child, port, log }
    }

    /// How many times the key set was fetched.
    fn fetches(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("GET /jwks.json")
            .count()
    }
}

impl Drop for Static {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str) -> String {
    json!({"iss": "https://idp.test", "aud": "warden", "sub": sub, "iat": now(),
           "exp": now() + 300, "scope": "read", "email": format!("{sub}@idp.test")})
    .to_string()
}

fn serve(jwks_url: &str, dir: &Path) -> Server {
    let policy = format!(
        r#"
jwt_issuer idp {{
  iss               "https://idp.test"
  audiences         [warden]
  algorithms        [RS256, ES256]
  jwks_url          "{jwks_url}"
  jwks_refresh      1h
  consumers         [alice, bob]
  required_scopes   [read]
  claims_to_headers {{ email X-User-Email }}
}}
issuers [idp]
global_auth false
route a {{ path_prefix /a; upstream echo }}
rule a {{ match route [a]; allow [alice] }}
"#
    );
    let file = dir.join("policy.policy");
    std::fs::write(&file, policy).unwrap();
    Server::launch(&["--policy".as_ref(), file.as_os_str()], &[])
}

fn call(server: &Server, token: &str) -> (u16, Value) {
    let resp = server.get("gw", "/a/x", Some(token));
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

#[test]
fn the_providers_consumer_reaches_its_route_and_a_rotated_key_is_fetched_once() {
    let dir = tmp("rotation");
    let keys = dir.join("idp");
    idp(&["keygen", keys.to_str().unwrap(), "k1", "RS256"]);
    let jwks = Static::start(&keys);
    let url = format!("http://127.0.0.1:{}/jwks.json", jwks.port);
    let server = serve(&url, &dir);
    assert!(server.logs().contains("jwks fetched"), "{}", server.logs());
    let before = jwks.fetches();
    assert_eq!(before, 1, "fetched once at start");

    let alice = idp(&[
        "mint",
        keys.to_str().unwrap(),
        "k1",
        "RS256",
        &claims("alice"),
    ]);
    let (status, echo) = call(&server, &alice);
    assert_eq!(status, 200, "{}", server.logs());
    assert_eq!(echo["headers"]["x-mse-consumer"], "alice");
    assert_eq!(echo["headers"]["x-user-email"], "alice@idp.test");
    let bob = idp(&[
        "mint",
        keys.to_str().unwrap(),
        "k1",
        "RS256",
        &claims("bob"),
    ]);
    assert_eq!(call(&server, &bob).0, 403, "bob is not in `allow`");
    let mut wrong = serde_json::from_str::<Value>(&claims("alice")).unwrap();
    wrong["aud"] = json!("someone-else");
    let wrong = idp(&[
        "mint",
        keys.to_str().unwrap(),
        "k1",
        "RS256",
        &wrong.to_string(),
    ]);
    assert_eq!(call(&server, &wrong).0, 401);
    assert_eq!(jwks.fetches(), before, "known keys need no fetch");

    // The provider rotates: a new ES256 key, published. Its first token makes
    // Warden fetch the set again, and passes at once.
    idp(&["keygen", keys.to_str().unwrap(), "k2", "ES256"]);
    let rotated = idp(&[
        "mint",
        keys.to_str().unwrap(),
        "k2",
        "ES256",
        &claims("alice"),
    ]);
    assert_eq!(call(&server, &rotated).0, 200, "{}", server.logs());
    assert_eq!(jwks.fetches(), before + 1);

    // A kid the provider never published: one more fetch at most, however
    // many requests name it, then 401.
    let mut forged = rotated.clone();
    let header = base64_json(&json!({"alg": "ES256", "kid": "never", "typ": "at+jwt"}));
    forged.replace_range(..forged.find('.').unwrap(), &header);
    let fetched = jwks.fetches();
    for _ in 0..20 {
        assert_eq!(call(&server, &forged).0, 401);
    }
    assert!(
        jwks.fetches() <= fetched + 1,
        "{} fetches",
        jwks.fetches() - fetched
    );

    // The provider goes down: the keys Warden has keep working.
    drop(jwks);
    assert_eq!(call(&server, &alice).0, 200);
    assert_eq!(call(&server, &rotated).0, 200);
}

fn base64_json(v: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[test]
fn a_provider_down_at_start_is_reported_and_fetched_when_a_token_asks() {
    let dir = tmp("late");
    let keys = dir.join("idp");
    idp(&["keygen", keys.to_str().unwrap(), "k1", "RS256"]);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/jwks.json");
    let server = serve(&url, &dir);
    assert!(
        server.logs().contains("jwks fetch failed") && server.logs().contains("Connection refused"),
        "{}",
        server.logs()
    );
    // The provider comes up: the first token makes Warden fetch its keys.
    let jwks = Static::on(&keys, port);
    let alice = idp(&[
        "mint",
        keys.to_str().unwrap(),
        "k1",
        "RS256",
        &claims("alice"),
    ]);
    assert_eq!(call(&server, &alice).0, 200, "{}", server.logs());
    assert_eq!(jwks.fetches(), 1);
}
