//! Kong's OAuth2 flows against the real `warden serve`, over HTTPS that the
//! gateway terminates itself (a certificate made here, reqwest over rustls):
//! the `policies/kong-*.policy` files answer Kong's documented requests —
//! authorization code with PKCE, implicit, password, client_credentials and
//! refresh — with Kong's status codes, errors and upstream headers, and the
//! HTTPS requirement holds on the plain listener unless a trusted proxy
//! terminated TLS and the policy accepts that.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

mod support;

use reqwest::blocking::Client;
use serde_json::{Value, json};
use support::{Server, policy, tls_client, tls_server};

const SIGNING_KEY: &str = "kong-e2e-signing-key-0123456789abcdef0123";
const PROVISION_KEY: &str = "provision-e2e-123";

/// A Kong-dialect server on `policy_file` with HTTPS, and a client for it.
struct Kong {
    server: Server,
    client: Client,
    /// `https://localhost:PORT`
    base: String,
}

impl Kong {
    fn start(policy_file: &str, extra: &[&str]) -> Kong {
        let path = policy(policy_file);
        let mut args = vec!["--policy", path.as_str()];
        args.extend(extra);
        let env = [
            ("WARDEN_SIGNING_KEY", SIGNING_KEY),
            ("PROVISION_KEY", PROVISION_KEY),
        ];
        let (server, pem) = tls_server(&args, &env);
        let base = server.https_localhost();
        Kong {
            server,
            client: tls_client(&pem, false),
            base,
        }
    }

    /// POST a JSON body: the status and the JSON answer (callers that look
    /// at headers use [`Self::post_raw`]).
    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn post_raw(&self, path: &str) -> reqwest::blocking::RequestBuilder {
        self.client.post(format!("{}{path}", self.base))
    }

    /// GET through the echo upstream: the status and what the upstream saw.
    fn echo(&self, target: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.client.get(format!("{}{target}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().unwrap();
        (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
    }
}

fn error(body: &Value) -> (&str, &str) {
    (
        body["error"].as_str().unwrap_or("-"),
        body["error_description"].as_str().unwrap_or("-"),
    )
}

fn redirect_param(body: &Value, name: &str) -> Option<String> {
    support::redirect_param(body["redirect_uri"].as_str()?, name)
}

#[test]
fn authorization_code_with_pkce_then_refresh_as_kong() {
    let k = Kong::start("kong-code-pkce.policy", &[]);
    // RFC 7636 appendix B.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let authorize = json!({
        "client_id": "mobile-client", "response_type": "code", "scope": "email profile",
        "provision_key": PROVISION_KEY, "authenticated_userid": "user-42",
        "redirect_uri": "http://localhost:8000/cb", "state": "xyz",
        "code_challenge": challenge, "code_challenge_method": "S256",
    });
    let (status, body) = k.post("/api/oauth2/authorize", &authorize);
    assert_eq!(status, 200, "{body}");
    assert!(
        body["redirect_uri"]
            .as_str()
            .unwrap()
            .starts_with("http://localhost:8000/cb?code=")
    );
    assert_eq!(redirect_param(&body, "state").as_deref(), Some("xyz"));
    let code = redirect_param(&body, "code").unwrap();

    // Without a challenge a public client is refused, through its redirect URI.
    let mut bare = authorize.clone();
    bare.as_object_mut().unwrap().remove("code_challenge");
    bare.as_object_mut()
        .unwrap()
        .remove("code_challenge_method");
    let (status, body) = k.post("/api/oauth2/authorize", &bare);
    assert_eq!(status, 400);
    assert_eq!(
        redirect_param(&body, "error_description").as_deref(),
        Some("code_challenge is required for public clients")
    );

    let exchange = json!({"grant_type": "authorization_code", "client_id": "mobile-client", "code": code, "code_verifier": verifier});
    let resp = k
        .post_raw("/api/oauth2/token")
        .json(&exchange)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["pragma"], "no-cache");
    let tokens: Value = resp.json().unwrap();
    assert_eq!(
        (tokens["token_type"].as_str(), tokens["expires_in"].as_u64()),
        (Some("bearer"), Some(3600))
    );
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();

    // The code is single-use.
    let (status, body) = k.post("/api/oauth2/token", &exchange);
    assert_eq!(
        (status, error(&body)),
        (400, ("invalid_grant", "Invalid code"))
    );

    // The token reaches the upstream with Kong's headers.
    let (status, seen) = k.echo("/api/orders?x=1", Some(&access));
    assert_eq!(status, 200, "{seen}");
    let h = &seen["headers"];
    assert_eq!(h["x-consumer-username"], "bob");
    assert_eq!(h["x-credential-identifier"], "mobile-client");
    assert_eq!(h["x-authenticated-scope"], "email profile");
    assert_eq!(h["x-authenticated-userid"], "user-42");
    assert_eq!(h["x-consumer-id"].as_str().map(str::len), Some(36));

    // Refresh: a new pair; the old access and refresh tokens die at once.
    let (status, renewed) = k.post("/api/oauth2/token", &json!({"grant_type": "refresh_token", "client_id": "mobile-client", "refresh_token": refresh}));
    assert_eq!(status, 200, "{renewed}");
    let (status, _) = k.echo("/api/orders", Some(&access));
    assert_eq!(status, 401);
    let (status, _) = k.echo(
        "/api/orders",
        Some(renewed["access_token"].as_str().unwrap()),
    );
    assert_eq!(status, 200);
    let (status, body) = k.post("/api/oauth2/token", &json!({"grant_type": "refresh_token", "client_id": "mobile-client", "refresh_token": refresh}));
    assert_eq!(
        (status, error(&body)),
        (400, ("invalid_grant", "Invalid refresh_token"))
    );

    // No token: Kong's 401 and challenge.
    let resp = k
        .client
        .get(format!("{}/api/orders", k.base))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer realm=\"api\"");
    let body: Value = resp.json().unwrap();
    assert_eq!(
        error(&body),
        ("invalid_request", "The access token is missing")
    );
    k.server
        .assert_logs_keep(&[&access, &refresh, &code, PROVISION_KEY, verifier]);
}

#[test]
fn implicit_grant_and_confidential_code_flow() {
    let k = Kong::start("kong-code-pkce.policy", &[]);
    let (status, body) = k.post(
        "/api/oauth2/authorize",
        &json!({
            "client_id": "webapp-client", "response_type": "token", "scope": "email",
            "provision_key": PROVISION_KEY, "authenticated_userid": "u1", "state": "s",
        }),
    );
    assert_eq!(status, 200, "{body}");
    let uri = body["redirect_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("https://app.example.com/callback#access_token="),
        "{uri}"
    );
    let token = redirect_param(&body, "access_token").unwrap();
    assert_eq!(k.echo("/api/x", Some(&token)).0, 200);

    // A confidential client needs no PKCE under `pkce lax`; a wrong secret
    // through HTTP Basic is Kong's 401.
    let (_, body) = k.post(
        "/api/oauth2/authorize",
        &json!({
            "client_id": "webapp-client", "response_type": "code", "scope": "email",
            "provision_key": PROVISION_KEY, "authenticated_userid": "u1",
        }),
    );
    let code = redirect_param(&body, "code").unwrap();
    let resp = k
        .post_raw("/api/oauth2/token")
        .basic_auth("webapp-client", Some("wrong"))
        .form(&[("grant_type", "authorization_code"), ("code", &code)])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Basic realm=\"OAuth2.0\""
    );
    let resp = k
        .post_raw("/api/oauth2/token")
        .basic_auth("webapp-client", Some("webapp-secret"))
        .form(&[("grant_type", "authorization_code"), ("code", &code)])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Kong's answers to other mistakes.
    let (status, body) = k.post("/api/oauth2/authorize", &json!({"client_id": "webapp-client", "response_type": "code", "provision_key": "wrong", "authenticated_userid": "u1"}));
    assert_eq!(
        (status, error(&body)),
        (400, ("invalid_provision_key", "Invalid provision_key"))
    );
    let resp = k
        .client
        .get(format!("{}/api/oauth2/token", k.base))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 405);
    let body: Value = resp.json().unwrap();
    assert_eq!(
        error(&body),
        (
            "invalid_method",
            "The HTTP method GET is invalid for the token endpoint"
        )
    );
}

#[test]
fn password_grant_hides_credentials_and_anonymous_proceeds() {
    let k = Kong::start("kong-password.policy", &[]);
    let (status, tokens) = k.post("/api/oauth2/token", &json!({
        "grant_type": "password", "client_id": "backend-client", "client_secret": "backend-secret",
        "provision_key": PROVISION_KEY, "authenticated_userid": "alice",
    }));
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let (status, seen) = k.echo("/api/me", Some(access));
    assert_eq!(status, 200);
    assert_eq!(seen["headers"]["x-authenticated-userid"], "alice");
    assert!(
        seen["headers"].get("authorization").is_none(),
        "hide_credentials: {seen}"
    );
    // The query form, hidden too.
    let (status, seen) = k.echo(&format!("/api/me?a=1&access_token={access}"), None);
    assert_eq!((status, seen["query"].as_str()), (200, Some("a=1")));
    // A form body's access_token, removed from the body forwarded.
    let form = format!("access_token={access}&keep=1");
    let resp = k
        .post_raw("/api/me")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .unwrap();
    let seen: Value = resp.json().unwrap();
    assert_eq!(seen["body_bytes"], 6, "{seen}");
    // The public route: no token proceeds as the anonymous consumer, and
    // its matched path is stripped.
    let (status, seen) = k.echo("/public/x?q=1", None);
    assert_eq!(status, 200);
    assert_eq!(
        (seen["path"].as_str(), seen["query"].as_str()),
        (Some("/x"), Some("q=1"))
    );
    assert_eq!(k.echo("/public", None).1["path"], "/");
    assert_eq!(seen["headers"]["x-anonymous-consumer"], "true");
    assert_eq!(seen["headers"]["x-consumer-username"], "anonymous-guest");
    // Spoofed identity headers never pass.
    let resp = k
        .client
        .get(format!("{}/public/x", k.base))
        .header("x-consumer-username", "admin")
        .header("x-credential-identifier", "root")
        .send()
        .unwrap();
    let seen: Value = resp.json().unwrap();
    assert_eq!(seen["headers"]["x-consumer-username"], "anonymous-guest");
    assert!(seen["headers"].get("x-credential-identifier").is_none());
    let (status, body) = k.post("/api/oauth2/token", &json!({
        "grant_type": "password", "client_id": "backend-client", "client_secret": "backend-secret", "provision_key": PROVISION_KEY,
    }));
    assert_eq!(
        (status, error(&body)),
        (
            400,
            (
                "invalid_authenticated_userid",
                "Missing authenticated_userid parameter"
            )
        )
    );
}

#[test]
fn https_is_required_unless_a_trusted_proxy_terminated_it_and_the_policy_accepts() {
    let k = Kong::start(
        "kong-client-credentials.policy",
        &["--trusted-proxy", "127.0.0.1"],
    );
    let body = json!({"grant_type": "client_credentials", "client_id": "SOME-CLIENT-ID", "client_secret": "SOME-CLIENT-SECRET", "scope": "email"});
    let (status, tokens) = k.post("/mock/oauth2/token", &body);
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens.get("refresh_token").is_none());
    let (status, seen) = k.echo("/mock/x", tokens["access_token"].as_str());
    assert_eq!(
        (status, seen["headers"]["x-consumer-custom-id"].as_str()),
        (200, Some("bob-1"))
    );

    let plain = Client::new();
    let url = format!("{}/mock/oauth2/token", k.server.base);
    for xfp in [None, Some("https")] {
        let mut req = plain.post(&url).json(&body);
        if let Some(v) = xfp {
            req = req.header("x-forwarded-proto", v);
        }
        let resp = req.send().unwrap();
        assert_eq!(resp.status(), 400);
        let b: Value = resp.json().unwrap();
        assert_eq!(
            error(&b),
            ("access_denied", "You must use HTTPS"),
            "x-forwarded-proto {xfp:?}"
        );
    }

    // With accept_http_if_already_terminated, the trusted proxy's word counts.
    let src = std::fs::read_to_string(policy("kong-client-credentials.policy"))
        .unwrap()
        .replace(
            "  scopes [email, profile]",
            "  scopes [email, profile]\n  accept_http_if_already_terminated true",
        );
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kong-terminated-{}.policy", std::process::id()));
    std::fs::write(&file, src).unwrap();
    let env = [("WARDEN_SIGNING_KEY", SIGNING_KEY)];
    let s = Server::launch(
        &[
            "--policy",
            file.to_str().unwrap(),
            "--trusted-proxy",
            "127.0.0.1",
        ],
        &env,
    );
    let url = format!("{}/mock/oauth2/token", s.base);
    let resp = plain
        .post(&url)
        .header("x-forwarded-proto", "https")
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = plain.post(&url).json(&body).send().unwrap();
    assert_eq!(resp.status(), 400);
}

#[test]
fn import_errors_name_the_yaml_line_and_exit_nonzero() {
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kong-bad-{}.yml", std::process::id()));
    std::fs::write(
        &file,
        "_format_version: \"3.0\"\nplugins:\n- name: key-auth\n",
    )
    .unwrap();
    let out = support::warden()
        .args(["import", "kong"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:3:9: plugin `key-auth` has no Warden equivalent",
            file.display()
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing printed on failure");
}
