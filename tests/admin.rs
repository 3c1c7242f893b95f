//! The Admin API (`warden serve --admin`) against the real binary: Kong's
//! paths, fields and errors word for word (docs/kong-admin-api.md), and
//! what a change does — a credential made here gets tokens at once (here,
//! and on another node sharing Redis within a second), survives a restart
//! with Redis, and deleting it kills its tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

#[path = "support/redis.rs"]
mod redis_server;
mod support;

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};
use support::{Server, policy, tls_client, tls_server, warden};

const SIGNING_KEY: &str = "admin-e2e-signing-key-0123456789abcdef01";
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

struct Node {
    server: Server,
    client: Client,
    base: String,
    admin: Option<String>,
}

/// A file with the Admin API's token: one per call, as the tests of this
/// binary start servers in parallel (rewriting a shared file could be read
/// half-written by another server starting).
fn token_file() -> String {
    static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("admin-token-{}-{n}", std::process::id()));
    std::fs::write(&path, format!("{ADMIN_TOKEN}\n")).unwrap();
    path.display().to_string()
}

impl Node {
    /// The Kong client-credentials policy over HTTPS; `admin`: with the
    /// Admin API (token-protected); `store`: `--store` URL.
    fn start(admin: bool, store: Option<&str>) -> Node {
        let path = policy("kong-client-credentials.policy");
        let tokens = token_file();
        let mut args = vec!["--policy", path.as_str()];
        if admin {
            args.extend([
                "--admin",
                "127.0.0.1:0",
                "--admin-token-file",
                tokens.as_str(),
            ]);
        }
        if let Some(s) = store {
            args.extend(["--store", s]);
        }
        let (server, pem) = tls_server(&args, &[("WARDEN_SIGNING_KEY", SIGNING_KEY)]);
        Node {
            base: server.https_localhost(),
            admin: server.admin.clone(),
            server,
            client: tls_client(&pem, false),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.admin.as_ref().unwrap());
        let mut req = self
            .client
            .request(method.parse().unwrap(), url)
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// The client_credentials grant: the status and the answer.
    fn grant(&self, id: &str, secret: &str) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}/mock/oauth2/token", self.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", "email"),
            ])
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn echo_at(&self, path: &str, token: &str) -> u16 {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    }

    fn echo(&self, token: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}/mock/x", self.base))
            .bearer_auth(token)
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
    }
}

#[test]
fn consumers_and_credentials_as_kong_with_kong_errors() {
    let n = Node::start(true, None);
    // Kong's schema violations, word for word.
    assert_eq!(
        n.call("POST", "/consumers", Some(json!({}))),
        (
            400,
            json!({"code": 2, "name": "schema violation",
                   "message": "schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')",
                   "fields": {"@entity": ["at least one of these fields must be non-empty: 'custom_id', 'username'"]}})
        )
    );
    let (status, alice) = n.call(
        "POST",
        "/consumers",
        Some(json!({"username": "alice", "custom_id": "a-1"})),
    );
    assert_eq!(status, 201, "{alice}");
    assert_eq!(alice["username"], "alice");
    assert_eq!(alice["tags"], Value::Null);
    assert_eq!(alice["id"].as_str().unwrap().len(), 36);
    assert_eq!(
        n.call("POST", "/consumers", Some(json!({"username": "alice"}))),
        (
            409,
            json!({"code": 5, "name": "unique constraint violation",
                   "message": "UNIQUE violation detected on '{username=\"alice\"}'",
                   "fields": {"username": "alice"}})
        )
    );
    // The policy's own consumers count too (bob is in the policy file).
    assert_eq!(
        n.call("POST", "/consumers", Some(json!({"username": "bob"})))
            .0,
        409
    );
    assert_eq!(
        n.call("GET", "/consumers/alice", None),
        (200, alice.clone())
    );
    let id = alice["id"].as_str().unwrap();
    assert_eq!(n.call("GET", &format!("/consumers/{id}"), None).1, alice);
    assert_eq!(
        n.call("GET", "/consumers?custom_id=a-1", None),
        (200, json!({"data": [alice.clone()], "next": null}))
    );
    assert_eq!(
        n.call("GET", "/consumers/nobody", None),
        (404, json!({"message": "Not found"}))
    );
    assert_eq!(
        n.call(
            "POST",
            "/consumers/nobody/oauth2",
            Some(json!({"name": "x"}))
        ),
        (404, json!({"message": "Not found"}))
    );
    assert_eq!(
        n.call("POST", "/consumers/alice/oauth2", Some(json!({}))),
        (
            400,
            json!({"code": 2, "name": "schema violation",
                   "message": "schema violation (name: required field missing)",
                   "fields": {"name": "required field missing"}})
        )
    );
    let (status, body) = n.call(
        "POST",
        "/consumers/alice/oauth2",
        Some(json!({"name": "x", "redirect_uris": ["http://valid.test", "not-valid"]})),
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["fields"],
        json!({"redirect_uris": [null, "cannot parse 'not-valid'"]})
    );
    assert_eq!(
        body["message"],
        "schema violation (redirect_uris.2: cannot parse 'not-valid')"
    );
    assert_eq!(
        n.call(
            "POST",
            "/consumers/alice/oauth2",
            Some(json!({"name": "x", "client_type": "spa"}))
        )
        .1["fields"],
        json!({"client_type": "expected one of: confidential, public"})
    );
    assert_eq!(
        n.call("DELETE", "/consumers", None),
        (405, json!({"message": "Method not allowed"}))
    );

    // A credential with a generated client_id and secret gets tokens at once.
    let (status, app) = n.call(
        "POST",
        "/consumers/alice/oauth2",
        Some(json!({"name": "Alice's App", "redirect_uris": ["https://alice.example/cb"]})),
    );
    assert_eq!(status, 201, "{app}");
    let (client_id, secret) = (
        app["client_id"].as_str().unwrap().to_string(),
        app["client_secret"].as_str().unwrap().to_string(),
    );
    for generated in [&client_id, &secret] {
        assert_eq!(generated.len(), 32);
        assert!(generated.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
    assert_eq!(app["consumer"], json!({"id": id}));
    assert_eq!(app["client_type"], "confidential");
    assert_eq!(app["hash_secret"], false);
    let (status, tokens) = n.grant(&client_id, &secret);
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let (status, seen) = n.echo(&access);
    assert_eq!(status, 200);
    assert_eq!(seen["headers"]["x-consumer-username"], "alice");
    assert_eq!(seen["headers"]["x-consumer-custom-id"], "a-1");
    assert_eq!(seen["headers"]["x-consumer-id"], id);
    assert_eq!(
        seen["headers"]["x-credential-identifier"],
        client_id.as_str()
    );

    // Lookups: nested by client_id or id, and what an authorization page asks.
    let by_client = n.call("GET", &format!("/consumers/alice/oauth2/{client_id}"), None);
    assert_eq!(by_client, (200, app.clone()));
    assert_eq!(
        n.call("GET", &format!("/oauth2?client_id={client_id}"), None),
        (200, json!({"data": [app.clone()], "next": null}))
    );
    assert_eq!(n.call("GET", &format!("/oauth2/{client_id}"), None).1, app);
    // A client_id the policy already has is taken.
    assert_eq!(
        n.call(
            "POST",
            "/consumers/alice/oauth2",
            Some(json!({"name": "y", "client_id": "SOME-CLIENT-ID"}))
        ),
        (
            409,
            json!({"code": 5, "name": "unique constraint violation",
                   "message": "UNIQUE violation detected on '{client_id=\"SOME-CLIENT-ID\"}'",
                   "fields": {"client_id": "SOME-CLIENT-ID"}})
        )
    );

    // Issued tokens are listed (never the token itself) and revocable.
    let (status, list) = n.call("GET", "/oauth2_tokens", None);
    assert_eq!(status, 200);
    let row = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["client_id"] == client_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["credential"], json!({"id": app["id"]}));
    assert_eq!(
        (row["token_type"].as_str(), row["scope"].as_str()),
        (Some("bearer"), Some("email"))
    );
    assert_eq!(row["access_token"], Value::Null);
    let token_id = row["id"].as_str().unwrap();
    assert_eq!(
        n.call("DELETE", &format!("/oauth2_tokens/{token_id}"), None)
            .0,
        204
    );
    assert_eq!(n.echo(&access).0, 401);
    assert_eq!(n.call("DELETE", "/oauth2_tokens/blah", None).0, 204);

    // A hashed secret: shown once at creation, a hash afterwards, and it works.
    let (status, hashed) = n.call(
        "POST",
        "/consumers/alice/oauth2",
        Some(json!({"name": "h", "client_id": "hashed-client", "client_secret": "hashed-secret-1", "hash_secret": true})),
    );
    assert_eq!(status, 201, "{hashed}");
    assert_eq!(hashed["client_secret"], "hashed-secret-1");
    let stored = n
        .call("GET", "/consumers/alice/oauth2/hashed-client", None)
        .1;
    assert!(
        stored["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("$argon2id$"),
        "{stored}"
    );
    assert_eq!(n.grant("hashed-client", "hashed-secret-1").0, 200);
    // (A bad secret in the body is Kong's 400 invalid_client; 401 is for Basic.)
    assert_eq!(
        n.grant("hashed-client", "wrong").1["error"],
        "invalid_client"
    );
    assert_eq!(
        n.call(
            "PATCH",
            "/consumers/alice/oauth2/hashed-client",
            Some(json!({"client_secret": "x"}))
        )
        .1["fields"],
        json!({"@entity": ["all or none of these fields must be set: 'hash_secret', 'client_secret'"]})
    );
    let (status, renamed) = n.call(
        "PATCH",
        "/consumers/alice/oauth2/hashed-client",
        Some(json!({"name": "renamed"})),
    );
    assert_eq!((status, renamed["name"].as_str()), (200, Some("renamed")));

    // Deleting the credential kills its tokens and its grants.
    let (_, tokens) = n.grant(&client_id, &secret);
    let access = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(n.echo(&access).0, 200);
    assert_eq!(
        n.call(
            "DELETE",
            &format!("/consumers/alice/oauth2/{client_id}"),
            None
        )
        .0,
        204
    );
    assert_eq!(n.echo(&access).0, 401);
    assert_eq!(n.grant(&client_id, &secret).1["error"], "invalid_client");
    assert_eq!(
        n.call(
            "DELETE",
            &format!("/consumers/alice/oauth2/{client_id}"),
            None
        ),
        (404, json!({"message": "Not found"}))
    );
    // Deleting the consumer takes its other credential along; twice is 204.
    assert_eq!(n.call("DELETE", "/consumers/alice", None).0, 204);
    assert_eq!(
        n.grant("hashed-client", "hashed-secret-1").1["error"],
        "invalid_client"
    );
    assert_eq!(n.call("DELETE", "/consumers/alice", None).0, 204);
    // The policy's own client still works.
    assert_eq!(n.grant("SOME-CLIENT-ID", "SOME-CLIENT-SECRET").0, 200);
    n.server
        .assert_logs_keep(&[&secret, "hashed-secret-1", ADMIN_TOKEN]);
}

#[test]
fn every_call_needs_the_token_and_bodies_are_read_as_kong_reads_them() {
    let n = Node::start(true, None);
    let admin = n.admin.clone().unwrap();
    let c = &n.client;
    let resp = c.get(format!("{admin}/consumers")).send().unwrap();
    assert_eq!(resp.status(), 401);
    let resp = c
        .get(format!("{admin}/consumers"))
        .bearer_auth("admin-token-0123456789abcdeX")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    // A form, as Kong's docs write it with curl: repeated keys are arrays.
    let resp = c
        .post(format!("{admin}/consumers"))
        .bearer_auth(ADMIN_TOKEN)
        .form(&[("username", "carol"), ("custom_id", "")])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let carol: Value = resp.json().unwrap();
    assert_eq!(carol["custom_id"], Value::Null);
    let resp = c
        .post(format!("{admin}/consumers/carol/oauth2"))
        .bearer_auth(ADMIN_TOKEN)
        .body("name=web&redirect_uris=https://a.example/1&redirect_uris=https://a.example/2&hash_secret=false")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let app: Value = resp.json().unwrap();
    assert_eq!(
        app["redirect_uris"],
        json!(["https://a.example/1", "https://a.example/2"])
    );
    let resp = c
        .post(format!("{admin}/consumers"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().unwrap(),
        json!({"message": "Cannot parse JSON body"})
    );
    let resp = c
        .post(format!("{admin}/consumers"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "text/plain")
        .body("username=x")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 415);
    let resp = c
        .get(format!("{admin}/nothing-here"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Beyond loopback, no token file: refused at start.
    let out = warden()
        .args(["serve", "--listen", "127.0.0.1:0", "--admin", "0.0.0.0:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("not a loopback address: give --admin-token-file"),
        "{err}"
    );
}

/// Wait (at most 1 s) until `ok` holds; how long it took.
fn within_a_second(mut ok: impl FnMut() -> bool, what: &str) -> Duration {
    let started = Instant::now();
    while !ok() {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{what}: not within 1 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    started.elapsed()
}

#[test]
fn changes_reach_every_node_on_redis_within_a_second_and_survive_a_restart() {
    let redis = redis_server::shared();
    let url = redis.url(5);
    let a = Node::start(true, Some(&url));
    let b = Node::start(false, Some(&url));
    let (status, _) = a.call("POST", "/consumers", Some(json!({"username": "dave"})));
    assert_eq!(status, 201);
    let (status, app) = a.call(
        "POST",
        "/consumers/dave/oauth2",
        Some(json!({"name": "d", "client_id": "dave-client", "client_secret": "dave-secret-1"})),
    );
    assert_eq!(status, 201, "{app}");
    let took = within_a_second(
        || b.grant("dave-client", "dave-secret-1").0 == 200,
        "new credential on B",
    );
    eprintln!("a credential made on A worked on B after {took:?}");
    let (_, tokens) = b.grant("dave-client", "dave-secret-1");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(a.echo(&access).0, 200);

    // A node started later (or restarted) has it from the start.
    let c = Node::start(false, Some(&url));
    assert_eq!(c.grant("dave-client", "dave-secret-1").0, 200);
    assert_eq!(c.echo(&access).0, 200);

    // Deleted on A: B's token and grants fail within a second.
    assert_eq!(a.call("DELETE", "/consumers/dave", None).0, 204);
    let took = within_a_second(|| b.echo(&access).0 == 401, "B's token after the delete");
    eprintln!("a deleted credential's token failed on B after {took:?}");
    within_a_second(
        || c.grant("dave-client", "dave-secret-1").1["error"] == "invalid_client",
        "C's grant",
    );
}

#[test]
fn upserts_as_deck_sends_them_and_pages_as_kong() {
    let n = Node::start(true, None);
    // decK creates with PUT and an id of its own.
    let consumer_id = "3f0c1c8a-9f7e-4d2b-8a1e-5b6c7d8e9f01";
    let (status, erin) = n.call(
        "PUT",
        &format!("/consumers/{consumer_id}"),
        Some(json!({"username": "erin", "custom_id": "e-1"})),
    );
    assert_eq!(
        (status, erin["id"].as_str()),
        (200, Some(consumer_id)),
        "{erin}"
    );
    let cred_id = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let (status, app) = n.call(
        "PUT",
        &format!("/consumers/erin/oauth2/{cred_id}"),
        Some(json!({"name": "deck app", "client_id": "erin-client", "client_secret": "erin-secret-1"})),
    );
    assert_eq!((status, app["id"].as_str()), (200, Some(cred_id)), "{app}");
    assert_eq!(n.grant("erin-client", "erin-secret-1").0, 200);
    // PUT again replaces: what it leaves out is reset (the secret is new).
    let (status, again) = n.call(
        "PUT",
        &format!("/consumers/erin/oauth2/{cred_id}"),
        Some(json!({"name": "deck app 2", "client_id": "erin-client"})),
    );
    assert_eq!(status, 200, "{again}");
    let fresh = again["client_secret"].as_str().unwrap();
    assert_ne!(fresh, "erin-secret-1");
    assert_eq!(
        n.grant("erin-client", "erin-secret-1").1["error"],
        "invalid_client"
    );
    assert_eq!(n.grant("erin-client", fresh).0, 200);
    // By client_id in the path (Kong's endpoint key).
    let (status, by_key) = n.call(
        "PUT",
        "/consumers/erin/oauth2/erin-other",
        Some(json!({"name": "other", "client_secret": "s-2"})),
    );
    assert_eq!(
        (status, by_key["client_id"].as_str()),
        (200, Some("erin-other"))
    );
    // PATCH a consumer: the username moves, the old one is free again.
    let (status, patched) = n.call(
        "PATCH",
        "/consumers/erin",
        Some(json!({"username": "erin2"})),
    );
    assert_eq!(
        (status, patched["username"].as_str()),
        (200, Some("erin2")),
        "{patched}"
    );
    assert_eq!(n.call("GET", "/consumers/erin", None).0, 404);
    let (_, echoed) = n.echo(
        n.grant("erin-other", "s-2").1["access_token"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(echoed["headers"]["x-consumer-username"], "erin2");
    assert_eq!(
        n.call("POST", "/consumers", Some(json!({"username": "erin"})))
            .0,
        201
    );

    // Pages: 5 more consumers, 3 a page, in id order, following `offset`.
    for i in 0..5 {
        assert_eq!(
            n.call(
                "POST",
                "/consumers",
                Some(json!({"username": format!("page-{i}")}))
            )
            .0,
            201
        );
    }
    let (_, all) = n.call("GET", "/consumers", None);
    let total = all["data"].as_array().unwrap().len();
    assert_eq!(total, 7);
    assert!(all.get("offset").is_none());
    let mut seen = Vec::new();
    let mut path = "/consumers?size=3".to_string();
    loop {
        let (status, body) = n.call("GET", &path, None);
        assert_eq!(status, 200, "{body}");
        seen.extend(
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_string()),
        );
        match body["next"].as_str() {
            Some(next) => {
                assert!(body["offset"].is_string());
                path = next.to_string();
            }
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!((seen.len(), &seen), (7, &sorted));
    assert_eq!(
        n.call("GET", "/consumers?size=0", None),
        (
            400,
            json!({"code": 9, "name": "invalid size", "message": "size must be an integer between 1 and 1000"})
        )
    );
    assert_eq!(
        n.call("GET", "/consumers?offset=x", None).1["name"],
        "invalid offset"
    );
}

#[test]
fn deleting_a_credential_kills_its_codes_and_refresh_tokens_too() {
    let path = policy("kong-code-pkce.policy");
    let tokens = token_file();
    let env = [
        ("WARDEN_SIGNING_KEY", SIGNING_KEY),
        ("PROVISION_KEY", "provision-admin-1"),
    ];
    let (server, pem) = tls_server(
        &[
            "--policy",
            path.as_str(),
            "--admin",
            "127.0.0.1:0",
            "--admin-token-file",
            tokens.as_str(),
        ],
        &env,
    );
    let n = Node {
        base: server.https_localhost(),
        admin: server.admin.clone(),
        server,
        client: tls_client(&pem, false),
    };
    assert_eq!(
        n.call("POST", "/consumers", Some(json!({"username": "frank"})))
            .0,
        201
    );
    let (status, _) = n.call(
        "POST",
        "/consumers/frank/oauth2",
        Some(
            json!({"name": "web", "client_id": "frank-web", "client_secret": "frank-secret",
                    "redirect_uris": ["https://frank.example/cb"]}),
        ),
    );
    assert_eq!(status, 201);
    let post = |path: &str, body: Value| -> (u16, Value) {
        let resp = n
            .client
            .post(format!("{}{path}", n.base))
            .json(&body)
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
    };
    let code = || -> String {
        let (status, body) = post(
            "/api/oauth2/authorize",
            json!({"client_id": "frank-web", "response_type": "code", "scope": "email",
                   "provision_key": "provision-admin-1", "authenticated_userid": "f-1"}),
        );
        assert_eq!(status, 200, "{body}");
        let uri = body["redirect_uri"].as_str().unwrap();
        assert!(uri.starts_with("https://frank.example/cb?code="), "{uri}");
        support::redirect_param(uri, "code").unwrap()
    };
    let exchange = |code: &str| {
        post(
            "/api/oauth2/token",
            json!({"grant_type": "authorization_code", "code": code,
                   "client_id": "frank-web", "client_secret": "frank-secret"}),
        )
    };
    let (status, pair) = exchange(&code());
    assert_eq!(status, 200, "{pair}");
    let refresh = pair["refresh_token"].as_str().unwrap().to_string();
    let waiting = code();

    assert_eq!(
        n.call("DELETE", "/consumers/frank/oauth2/frank-web", None)
            .0,
        204
    );
    let (status, body) = exchange(&waiting);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client")),
        "{body}"
    );
    let (status, body) = post(
        "/api/oauth2/token",
        json!({"grant_type": "refresh_token", "refresh_token": refresh,
               "client_id": "frank-web", "client_secret": "frank-secret"}),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client")),
        "{body}"
    );
    assert_eq!(
        n.echo_at("/api/x", pair["access_token"].as_str().unwrap()),
        401
    );
}
