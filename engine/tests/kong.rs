#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]
//! The Kong dialect in the engine: Kong's flows (authorize, every grant,
//! refresh, PKCE), access (headers, 401s, anonymous, hide_credentials) and
//! schema errors, decided natively with a fixed clock and the in-process
//! store. The same behaviour over HTTPS against `warden serve` is in the
//! workspace's `tests/kong.rs`.

use serde_json::Value;
use warden_engine::fixtures::request;
use warden_engine::{Decision, FixedServices, Policy};

const NOW: u64 = 1_700_000_000;

const POLICY: &str = r#"
dialect kong
signing_key "0123456789abcdef0123456789abcdef-kong-test"
consumer bob {
  username bob
  custom_id bob-1
  credential { name testapp; client_id clientid123; client_secret secret123; redirect_uris ["http://google.com/kong"] }
  credential { name pub; client_id clientid-public; client_type public; redirect_uris ["http://google.com/kong"] }
  credential { name multi; client_id clientid-multi; client_secret secret-multi; redirect_uris ["http://google.com/kong", "http://abc.com/cb?x=1"] }
  credential { name nouris; client_id clientid-nouris; client_secret secret-nouris }
}
consumer anon { username anonymous }
route api { path_prefix /api }
route open { path_prefix /open }
rule api {
  match route [api]
  enable_authorization_code true
  enable_client_credentials true
  enable_implicit_grant true
  enable_password_grant true
  scopes [email, profile]
  mandatory_scope true
  provision_key provision123
  token_expiration 5
  realm service
}
rule open {
  match route [open]
  enable_client_credentials true
  anonymous anon
  hide_credentials true
  global_credentials true
}
"#;

struct Kong {
    policy: Policy,
    services: FixedServices,
}

fn kong() -> Kong {
    let services = FixedServices::at(NOW);
    let policy = Policy::compile(POLICY, &services).unwrap_or_else(|e| panic!("{e:?}"));
    Kong { policy, services }
}

/// What a reply said: status, JSON body, headers.
struct Answer {
    status: u16,
    body: Value,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn error(&self) -> (u16, &str, &str) {
        (
            self.status,
            self.body["error"].as_str().unwrap_or("-"),
            self.body["error_description"].as_str().unwrap_or("-"),
        )
    }

    /// The `redirect_uri`'s query or fragment parameters.
    fn redirect_params(&self) -> Vec<(String, String)> {
        let uri = self.body["redirect_uri"].as_str().expect("a redirect_uri");
        let params = uri.split_once(['?', '#']).map_or("", |(_, p)| p);
        form_urlencoded::parse(params.as_bytes())
            .into_owned()
            .collect()
    }
}

impl Kong {
    fn decide(
        &self,
        method: &str,
        scheme: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Decision {
        let req = request(
            (method, scheme),
            "kong.test",
            target,
            headers,
            body.map(str::as_bytes),
        );
        self.policy.decide(&req, &self.services)
    }

    /// POST a JSON body over HTTPS.
    fn post(&self, path: &str, body: Value) -> Answer {
        let text = body.to_string();
        let headers = [("content-type", "application/json")];
        answer(self.decide("POST", "https", path, &headers, Some(&text)))
    }

    fn get(&self, target: &str, headers: &[(&str, &str)]) -> Decision {
        self.decide("GET", "https", target, headers, None)
    }

    fn code(&self, client_id: &str, extra: Value) -> String {
        let mut body = serde_json::json!({
            "provision_key": "provision123", "authenticated_userid": "userid123",
            "client_id": client_id, "response_type": "code", "scope": "email",
        });
        merge(&mut body, extra);
        let a = self.post("/api/oauth2/authorize", body);
        assert_eq!(a.status, 200, "{}", a.body);
        let params = a.redirect_params();
        params
            .iter()
            .find(|(k, _)| k == "code")
            .expect("a code")
            .1
            .clone()
    }
}

fn merge(into: &mut Value, extra: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, extra) {
        a.extend(b);
    }
}

fn answer(d: Decision) -> Answer {
    match d {
        Decision::Reply(r) => Answer {
            status: r.status,
            body: serde_json::from_slice(&r.body).unwrap_or(Value::Null),
            headers: r.headers,
        },
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn forwarded(d: Decision) -> Vec<(String, String)> {
    match d {
        Decision::Forward(f) => f.set_headers,
        other => panic!("expected a forward, got {other:?}"),
    }
}

fn header<'a>(set: &'a [(String, String)], name: &str) -> Option<&'a str> {
    set.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[test]
fn code_flow_issues_tokens_that_carry_the_grant_upstream() {
    let k = kong();
    let code = k.code("clientid123", serde_json::json!({"state": "hello"}));
    let a = k.post(
        "/api/oauth2/token",
        serde_json::json!({"grant_type": "authorization_code", "code": code, "client_id": "clientid123", "client_secret": "secret123", "state": "s1"}),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["token_type"], "bearer");
    assert_eq!(a.body["expires_in"], 5);
    assert_eq!(a.body["state"], "s1");
    assert!(
        a.body["refresh_token"]
            .as_str()
            .is_some_and(|r| r.len() >= 32)
    );
    assert_eq!(
        (a.header("cache-control"), a.header("pragma")),
        (Some("no-store"), Some("no-cache"))
    );
    let token = a.body["access_token"].as_str().unwrap().to_string();

    let bearer = format!("Bearer {token}");
    let set = forwarded(k.get("/api/items", &[("authorization", &bearer)]));
    assert_eq!(header(&set, "x-consumer-custom-id"), Some("bob-1"));
    assert_eq!(header(&set, "x-consumer-username"), Some("bob"));
    assert_eq!(header(&set, "x-credential-identifier"), Some("clientid123"));
    assert_eq!(header(&set, "x-authenticated-scope"), Some("email"));
    assert_eq!(header(&set, "x-authenticated-userid"), Some("userid123"));
    assert!(header(&set, "x-consumer-id").is_some_and(|id| id.len() == 36));
    assert_eq!(header(&set, "x-anonymous-consumer"), None);
    // Kong also takes `token <t>`, a raw token and `?access_token=`.
    for h in [format!("token {token}"), token.clone()] {
        forwarded(k.get("/api/items", &[("authorization", &h)]));
    }
    forwarded(k.get(&format!("/api/items?access_token={token}"), &[]));

    // A code is single-use.
    let again = k.post(
        "/api/oauth2/token",
        serde_json::json!({"grant_type": "authorization_code", "code": code, "client_id": "clientid123", "client_secret": "secret123"}),
    );
    assert_eq!(again.error(), (400, "invalid_grant", "Invalid code"));
}

#[test]
fn authorize_errors_as_kong_words_them() {
    let k = kong();
    let base = || serde_json::json!({"provision_key": "provision123", "authenticated_userid": "u", "client_id": "clientid123", "response_type": "code", "scope": "email"});
    let with = |extra: Value| {
        let mut b = base();
        merge(&mut b, extra);
        k.post("/api/oauth2/authorize", b)
    };
    assert_eq!(
        with(serde_json::json!({"provision_key": "nope"})).error(),
        (400, "invalid_provision_key", "Invalid provision_key")
    );
    assert_eq!(
        with(serde_json::json!({"authenticated_userid": "  "})).error(),
        (
            400,
            "invalid_authenticated_userid",
            "Missing authenticated_userid parameter"
        )
    );
    assert_eq!(
        with(serde_json::json!({"client_id": "nobody"})).error(),
        (400, "invalid_client", "Invalid client authentication")
    );
    // Errors with a client go back through its redirect URI.
    let a = with(serde_json::json!({"scope": "wot"}));
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body["redirect_uri"],
        "http://google.com/kong?error=invalid_scope&error_description=%22wot%22%20is%20an%20invalid%20scope"
    );
    let a = with(serde_json::json!({"response_type": "nope"}));
    assert_eq!(
        a.redirect_params(),
        [
            ("error".into(), "unsupported_response_type".into()),
            ("error_description".into(), "Invalid response_type".into())
        ]
    );
    let a = k.post("/api/oauth2/authorize", serde_json::json!({"provision_key": "provision123", "authenticated_userid": "u", "client_id": "clientid123", "response_type": "code"}));
    assert_eq!(a.redirect_params()[1].1, "You must specify a scope");
    let a = with(serde_json::json!({"redirect_uri": "http://evil.com/"}));
    assert!(
        a.body["redirect_uri"]
            .as_str()
            .unwrap()
            .starts_with("http://google.com/kong?error=invalid_request")
    );
    // A second registered URI keeps its own query.
    let a = with(
        serde_json::json!({"client_id": "clientid-multi", "redirect_uri": "http://abc.com/cb?x=1", "state": "st"}),
    );
    let uri = a.body["redirect_uri"].as_str().unwrap();
    assert!(uri.starts_with("http://abc.com/cb?code="), "{uri}");
    assert!(uri.ends_with("&state=st&x=1"), "{uri}");
    // Over plain HTTP: refused before anything else.
    let text = base().to_string();
    let h = [("content-type", "application/json")];
    let a = answer(k.decide("POST", "http", "/api/oauth2/authorize", &h, Some(&text)));
    assert_eq!(a.error(), (400, "access_denied", "You must use HTTPS"));
    // Other methods: 405 with Kong's challenge.
    let a = answer(k.get("/api/oauth2/authorize", &[]));
    assert_eq!(
        a.error(),
        (
            405,
            "invalid_method",
            "The HTTP method GET is invalid for the authorization endpoint"
        )
    );
    assert_eq!(
        a.header("www-authenticate"),
        Some(
            "Bearer realm=\"service\", error=\"invalid_method\", error_description=\"The HTTP method GET is invalid for the authorization endpoint\""
        )
    );
}

#[test]
fn pkce_is_required_of_public_clients_and_checked_at_the_exchange() {
    let k = kong();
    let a = k.post("/api/oauth2/authorize", serde_json::json!({"provision_key": "provision123", "authenticated_userid": "u", "client_id": "clientid-public", "response_type": "code", "scope": "email"}));
    assert_eq!(
        a.redirect_params()[1].1,
        "code_challenge is required for public clients"
    );
    let a = k.post("/api/oauth2/authorize", serde_json::json!({"provision_key": "provision123", "authenticated_userid": "u", "client_id": "clientid-public", "response_type": "code", "scope": "email", "code_challenge": "x", "code_challenge_method": "plain"}));
    assert_eq!(
        a.redirect_params()[1].1,
        "code_challenge_method is not supported, must be S256"
    );

    // RFC 7636 appendix B.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let code = k.code(
        "clientid-public",
        serde_json::json!({"code_challenge": challenge, "code_challenge_method": "S256"}),
    );
    let exchange = |extra: Value| {
        let mut b = serde_json::json!({"grant_type": "authorization_code", "code": code, "client_id": "clientid-public"});
        merge(&mut b, extra);
        k.post("/api/oauth2/token", b)
    };
    assert_eq!(
        exchange(serde_json::json!({})).error(),
        (
            400,
            "invalid_request",
            "code_verifier is required for PKCE authorization requests"
        )
    );
    assert_eq!(
        exchange(serde_json::json!({"code_verifier": "short"})).error(),
        (
            400,
            "invalid_request",
            "code_verifier must be between 43 and 128 characters"
        )
    );
    assert_eq!(
        exchange(serde_json::json!({"code_verifier": 5})).error(),
        (400, "invalid_request", "code_verifier is not a string")
    );
    assert_eq!(
        exchange(serde_json::json!({"code_verifier": "x".repeat(43)})).error(),
        (400, "invalid_grant", "Invalid code")
    );
    assert_eq!(
        exchange(serde_json::json!({"code_verifier": verifier, "client_secret": "s"})).error(),
        (
            400,
            "invalid_request",
            "client_secret is disallowed for public clients"
        )
    );
    let a = exchange(serde_json::json!({"code_verifier": verifier}));
    assert_eq!(a.status, 200, "{}", a.body);
}

#[test]
fn refreshing_rotates_and_kills_the_old_tokens() {
    let mut k = kong();
    let code = k.code("clientid123", serde_json::json!({}));
    let a = k.post("/api/oauth2/token", serde_json::json!({"grant_type": "authorization_code", "code": code, "client_id": "clientid123", "client_secret": "secret123"}));
    let (old_access, old_refresh) = (
        a.body["access_token"].as_str().unwrap().to_string(),
        a.body["refresh_token"].as_str().unwrap().to_string(),
    );
    let old = format!("Bearer {old_access}");
    forwarded(k.get("/api/x", &[("authorization", &old)]));

    let b = k.post("/api/oauth2/token", serde_json::json!({"grant_type": "refresh_token", "refresh_token": old_refresh, "client_id": "clientid123", "client_secret": "secret123"}));
    assert_eq!(b.status, 200, "{}", b.body);
    assert_ne!(b.body["refresh_token"].as_str(), Some(old_refresh.as_str()));
    let refused = answer(k.get("/api/x", &[("authorization", &old)]));
    assert_eq!(
        refused.error(),
        (
            401,
            "invalid_token",
            "The access token is invalid or has expired"
        )
    );
    assert_eq!(
        refused.header("www-authenticate"),
        Some(
            "Bearer realm=\"service\", error=\"invalid_token\", error_description=\"The access token is invalid or has expired\""
        )
    );
    let again = k.post("/api/oauth2/token", serde_json::json!({"grant_type": "refresh_token", "refresh_token": old_refresh, "client_id": "clientid123", "client_secret": "secret123"}));
    assert_eq!(
        again.error(),
        (400, "invalid_grant", "Invalid refresh_token")
    );
    // Another client's refresh token.
    let c = k.post("/api/oauth2/token", serde_json::json!({"grant_type": "refresh_token", "refresh_token": b.body["refresh_token"], "client_id": "clientid-multi", "client_secret": "secret-multi"}));
    assert_eq!(
        c.error(),
        (400, "invalid_client", "Invalid client authentication")
    );

    // The new token expires after token_expiration (5 s).
    let new = format!("Bearer {}", b.body["access_token"].as_str().unwrap());
    forwarded(k.get("/api/x", &[("authorization", &new)]));
    k.services.now = NOW + 5 + 61;
    assert_eq!(
        answer(k.get("/api/x", &[("authorization", &new)])).status,
        401
    );
}

#[test]
fn password_and_client_credentials_grants() {
    let k = kong();
    let a = k.post("/api/oauth2/token", serde_json::json!({"grant_type": "password", "provision_key": "provision123", "authenticated_userid": "id123", "client_id": "clientid123", "client_secret": "secret123", "scope": "email profile"}));
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body["refresh_token"].is_string());
    // A user id is forwarded as a header: no control characters (found by the fuzzer).
    for path in ["/api/oauth2/token", "/api/oauth2/authorize"] {
        let a = k.post(path, serde_json::json!({"grant_type": "password", "response_type": "code", "provision_key": "provision123", "authenticated_userid": "u\r\nx-admin: 1", "client_id": "clientid123", "client_secret": "secret123", "scope": "email"}));
        assert_eq!(
            a.error(),
            (
                400,
                "invalid_authenticated_userid",
                "authenticated_userid must not contain control characters"
            ),
            "{path}"
        );
    }
    let a = k.post("/api/oauth2/token", serde_json::json!({"grant_type": "password", "provision_key": "provision123", "client_id": "clientid123", "client_secret": "secret123", "scope": "email"}));
    assert_eq!(
        a.error(),
        (
            400,
            "invalid_authenticated_userid",
            "Missing authenticated_userid parameter"
        )
    );
    let a = k.post("/api/oauth2/token", serde_json::json!({"grant_type": "client_credentials", "client_id": "clientid123", "client_secret": "secret123", "scope": "email"}));
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.get("refresh_token").is_none());
    let a = k.post("/api/oauth2/token", serde_json::json!({"grant_type": "client_credentials", "client_id": "clientid123", "client_secret": "wrong", "scope": "email"}));
    assert_eq!(
        a.error(),
        (400, "invalid_client", "Invalid client authentication")
    );
    // Wrong secret through HTTP Basic: 401 with Kong's challenge.
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("clientid123:wrong")
    );
    let text = serde_json::json!({"grant_type": "password", "provision_key": "provision123", "authenticated_userid": "u", "scope": "email"}).to_string();
    let h = [
        ("content-type", "application/json"),
        ("authorization", basic.as_str()),
    ];
    let a = answer(k.decide("POST", "https", "/api/oauth2/token", &h, Some(&text)));
    assert_eq!(
        a.error(),
        (401, "invalid_client", "Invalid client authentication")
    );
    assert_eq!(
        a.header("www-authenticate"),
        Some("Basic realm=\"OAuth2.0\"")
    );
    let a = k.post("/api/oauth2/token", serde_json::json!({"grant_type": "nope", "client_id": "clientid123", "client_secret": "secret123"}));
    assert_eq!(
        a.error(),
        (400, "unsupported_grant_type", "Invalid grant_type")
    );
    // A credential without redirect URIs serves client_credentials only.
    let a = k.post("/api/oauth2/token", serde_json::json!({"grant_type": "password", "provision_key": "provision123", "authenticated_userid": "u", "client_id": "clientid-nouris", "client_secret": "secret-nouris", "scope": "email"}));
    assert_eq!(
        a.error(),
        (400, "invalid_client", "Invalid client authentication")
    );
    // A form body and a multipart body read the same.
    let h = [("content-type", "application/x-www-form-urlencoded")];
    let form =
        "grant_type=client_credentials&client_id=clientid123&client_secret=secret123&scope=email";
    assert_eq!(
        answer(k.decide("POST", "https", "/api/oauth2/token", &h, Some(form))).status,
        200
    );
    let multipart = "--b\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--b\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\nclientid123\r\n--b\r\nContent-Disposition: form-data; name=\"client_secret\"\r\n\r\nsecret123\r\n--b\r\nContent-Disposition: form-data; name=\"scope\"\r\n\r\nemail\r\n--b--\r\n";
    let h = [("content-type", "multipart/form-data; boundary=b")];
    assert_eq!(
        answer(k.decide("POST", "https", "/api/oauth2/token", &h, Some(multipart))).status,
        200
    );
    // Without its body, a POST asks for it.
    let h = [("content-type", "application/json")];
    assert!(matches!(
        k.decide("POST", "https", "/api/oauth2/token", &h, None),
        Decision::NeedBody { .. }
    ));
}

#[test]
fn implicit_grant_puts_the_token_in_the_fragment() {
    let k = kong();
    let a = k.post("/api/oauth2/authorize", serde_json::json!({"provision_key": "provision123", "authenticated_userid": "u", "client_id": "clientid123", "response_type": "token", "scope": "email", "state": "xyz"}));
    assert_eq!(a.status, 200, "{}", a.body);
    let uri = a.body["redirect_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("http://google.com/kong#access_token="),
        "{uri}"
    );
    assert!(
        uri.ends_with("&expires_in=5&state=xyz&token_type=bearer"),
        "{uri}"
    );
}

#[test]
fn missing_tokens_anonymous_and_hidden_credentials() {
    let k = kong();
    let a = answer(k.get("/api/x", &[]));
    assert_eq!(
        a.error(),
        (401, "invalid_request", "The access token is missing")
    );
    assert_eq!(
        a.header("www-authenticate"),
        Some("Bearer realm=\"service\"")
    );
    // Anonymous: no token proceeds as `anon`.
    let set = forwarded(k.get("/open/x", &[]));
    assert_eq!(header(&set, "x-anonymous-consumer"), Some("true"));
    assert_eq!(header(&set, "x-consumer-username"), Some("anonymous"));
    assert_eq!(header(&set, "x-credential-identifier"), None);
    // A global token of /open, with hide_credentials: the query loses it.
    let a = k.post("/open/oauth2/token", serde_json::json!({"grant_type": "client_credentials", "client_id": "clientid123", "client_secret": "secret123"}));
    assert_eq!(a.status, 200, "{}", a.body);
    let token = a.body["access_token"].as_str().unwrap();
    match k.get(&format!("/open/x?a=1&access_token={token}&b=2"), &[]) {
        Decision::Forward(f) => {
            assert_eq!(f.query.as_deref(), Some("a=1&b=2"));
            assert_eq!(
                header(&f.set_headers, "x-credential-identifier"),
                Some("clientid123")
            );
        }
        other => panic!("{other:?}"),
    }
    // With the token in the query too, the body is still read and cleaned
    // (found by the fuzzer: it used to stream on with its token).
    let h = [("content-type", "application/json")];
    let with_both = format!("/open/x?access_token={token}");
    let body = format!(r#"{{"access_token":"{token}","a":1}}"#);
    assert!(matches!(
        k.decide("POST", "https", &with_both, &h, None),
        Decision::NeedBody { .. }
    ));
    match k.decide("POST", "https", &with_both, &h, Some(&body)) {
        Decision::Forward(f) => assert_eq!(f.body.as_deref(), Some(&br#"{"a":1}"#[..])),
        other => panic!("{other:?}"),
    }
    // In a JSON body too (Kong lets that one through to the upstream).
    let json = format!(r#"{{"access_token":"{token}","a":1}}"#);
    let h = [("content-type", "application/json")];
    match k.decide("POST", "https", "/open/x", &h, Some(&json)) {
        Decision::Forward(f) => assert_eq!(f.body.as_deref(), Some(&br#"{"a":1}"#[..])),
        other => panic!("{other:?}"),
    }
    let bearer = format!("Bearer {token}");
    match k.get("/open/x", &[("Authorization", &bearer)]) {
        Decision::Forward(f) => assert!(f.remove_headers.iter().any(|h| h == "authorization")),
        other => panic!("{other:?}"),
    }
    // The same global token on /api, whose plugin is not global.
    let a = answer(k.get("/api/x", &[("authorization", &bearer)]));
    assert_eq!(
        a.error(),
        (
            401,
            "invalid_token",
            "The access token is global, but the current plugin is configured without 'global_credentials'"
        )
    );
    // Client-sent consumer headers never pass.
    match k.get(
        "/open/x",
        &[
            ("x-consumer-username", "admin"),
            ("x-authenticated-userid", "root"),
        ],
    ) {
        Decision::Forward(f) => {
            assert!(
                f.remove_headers
                    .iter()
                    .any(|h| h == "x-authenticated-userid")
            );
            assert_eq!(
                header(&f.set_headers, "x-consumer-username"),
                Some("anonymous")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn schema_errors_are_compile_errors_at_the_line() {
    let services = FixedServices::at(NOW);
    let base = "dialect kong\nsigning_key \"0123456789abcdef0123456789abcdef-x\"\nconsumer c { credential { client_id a; client_secret b; redirect_uris [\"http://x.com\"] } }\n";
    for (body, want) in [
        (
            "rule r { match route [x]; scopes [a] }",
            "at least one of these fields must be true",
        ),
        (
            "rule r { match route [x]; enable_client_credentials true; mandatory_scope true }",
            "`mandatory_scope` is true, so `scopes` is required",
        ),
        (
            "rule r { match route [x]; enable_password_grant true }",
            "enable_password_grant needs a `provision_key`",
        ),
        (
            "rule r { match route [x]; enable_client_credentials true; pkce maybe }",
            "expected one of: none, lax, strict",
        ),
        (
            "rule r { match route [x]; enable_client_credentials true; refresh_token_ttl 100000001 }",
            "value should be between 0 and 100000000",
        ),
        (
            "rule r { match route [x]; enable_client_credentials true; token_ttl 5 }",
            "Kong's name for it is `token_expiration`",
        ),
        (
            "rule r { match route [x]; enable_client_credentials true; anonymous ghost }",
            "anonymous consumer `ghost` is not declared",
        ),
        (
            "consumer d { credential { client_id d; client_secret s; redirect_uris [\"http://x.com/#f\"] } }",
            "fragment not allowed in 'http://x.com/#f'",
        ),
        (
            "consumer d { credential { client_id d; client_type public; client_secret s } }",
            "a public client has no `client_secret`",
        ),
        (
            "consumer d { id not-a-uuid; client_id d; client_secret s }",
            "expected a valid UUID",
        ),
        (
            "consumer d { username \"a\\nb\"; client_id d; client_secret s }",
            "may not contain control characters",
        ),
        (
            "consumer d { client_id \"d\\tx\"; client_secret s }",
            "may not contain control characters",
        ),
    ] {
        let src = format!("{base}route x {{ path_prefix /x }}\n{body}\n");
        let errors = Policy::compile(&src, &services).expect_err(body);
        let e = errors.iter().find(|d| {
            d.message.contains(want) || d.help.as_deref().is_some_and(|h| h.contains(want))
        });
        let e = e.unwrap_or_else(|| panic!("{body}: {errors:?}"));
        assert_eq!(e.line, 5, "{body}: {e:?}");
    }
    let no_key = "dialect kong\nconsumer c { client_id a; client_secret b }\nroute x { path_prefix /x }\nrule r { match route [x]; enable_client_credentials true }\n";
    let errors = Policy::compile(no_key, &services).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|d| d.message == "the Kong dialect needs a `signing_key`" && d.line == 4),
        "{errors:?}"
    );
    let higress = "consumer c { client_id a; client_secret b }\nrule r { match route [x]; enable_client_credentials true }\n";
    let errors = Policy::compile(higress, &services).unwrap_err();
    assert!(
        errors.iter().any(|d| d
            .help
            .as_deref()
            .is_some_and(|h| h.contains("dialect kong"))),
        "{errors:?}"
    );
}

#[test]
fn never_expiring_tokens_and_reused_refresh_tokens() {
    let src = POLICY.replace("  token_expiration 5\n", "  token_expiration 0\n").replace(
        "rule open {",
        "route reuse { path_prefix /reuse }\nrule reuse { match route [reuse]; enable_password_grant true; provision_key provision123; reuse_refresh_token true; refresh_token_ttl 0 }\nrule open {",
    );
    let mut services = FixedServices::at(NOW);
    let policy = Policy::compile(&src, &services).unwrap_or_else(|e| panic!("{e:?}"));
    let post = |services: &FixedServices, path: &str, body: Value| {
        let text = body.to_string();
        let h = [("content-type", "application/json")];
        let req = request(
            ("POST", "https"),
            "kong.test",
            path,
            &h,
            Some(text.as_bytes()),
        );
        answer(policy.decide(&req, services))
    };
    // token_expiration 0: no expires_in, no refresh token, and the token
    // still works a year on.
    let a = post(
        &services,
        "/api/oauth2/token",
        serde_json::json!({"grant_type": "password", "provision_key": "provision123", "authenticated_userid": "u", "client_id": "clientid123", "client_secret": "secret123", "scope": "email"}),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body.get("expires_in").is_none() && a.body.get("refresh_token").is_none(),
        "{}",
        a.body
    );
    services.now = NOW + 365 * 86_400;
    let bearer = format!("Bearer {}", a.body["access_token"].as_str().unwrap());
    let h = [("authorization", bearer.as_str())];
    let req = request(("GET", "https"), "kong.test", "/api/x", &h, None);
    assert!(matches!(
        policy.decide(&req, &services),
        Decision::Forward(_)
    ));

    // reuse_refresh_token: the same refresh token works again and again;
    // each refresh still kills the access token before it.
    let a = post(
        &services,
        "/reuse/oauth2/token",
        serde_json::json!({"grant_type": "password", "provision_key": "provision123", "authenticated_userid": "u", "client_id": "clientid123", "client_secret": "secret123"}),
    );
    let refresh = a.body["refresh_token"].as_str().unwrap().to_string();
    let mut previous = a.body["access_token"].as_str().unwrap().to_string();
    for _ in 0..3 {
        services.now += 1;
        let b = post(
            &services,
            "/reuse/oauth2/token",
            serde_json::json!({"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "clientid123", "client_secret": "secret123"}),
        );
        assert_eq!(b.status, 200, "{}", b.body);
        assert_eq!(b.body["refresh_token"].as_str(), Some(refresh.as_str()));
        let old = format!("Bearer {previous}");
        let h = [("authorization", old.as_str())];
        let req = request(("GET", "https"), "kong.test", "/reuse/x", &h, None);
        assert_eq!(answer(policy.decide(&req, &services)).status, 401);
        previous = b.body["access_token"].as_str().unwrap().to_string();
    }
}

/// The host's store refusing (down, full): the endpoints answer 503
/// `temporarily_unavailable`; nothing is issued.
#[test]
fn a_store_that_refuses_is_a_503() {
    struct Down(FixedServices);
    impl warden_engine::Services for Down {
        fn now(&self) -> u64 {
            self.0.now
        }
        fn random_bytes(&self, buf: &mut [u8]) {
            self.0.random_bytes(buf)
        }
        fn secret(&self, reference: &str) -> Option<Vec<u8>> {
            self.0.secret(reference)
        }
        fn store_put(&self, _: &str, _: &[u8], _: u64) -> Result<(), warden_engine::StoreError> {
            Err(warden_engine::StoreError("down".into()))
        }
        fn store_get(&self, k: &str) -> Result<Option<Vec<u8>>, warden_engine::StoreError> {
            self.0.store_get(k)
        }
        fn store_take(&self, k: &str) -> Result<Option<Vec<u8>>, warden_engine::StoreError> {
            self.0.store_take(k)
        }
        fn store_delete(&self, k: &str) -> Result<(), warden_engine::StoreError> {
            self.0.store_delete(k)
        }
        fn revoke(&self, id: &str, until: u64) -> Result<(), warden_engine::StoreError> {
            self.0.revoke(id, until)
        }
        fn is_revoked(&self, id: &str) -> bool {
            self.0.is_revoked(id)
        }
    }
    let k = kong();
    let down = Down(FixedServices::at(NOW));
    let h = [("content-type", "application/json")];
    for (path, body) in [
        (
            "/api/oauth2/authorize",
            serde_json::json!({"provision_key": "provision123", "authenticated_userid": "u", "client_id": "clientid123", "response_type": "code", "scope": "email"}),
        ),
        (
            "/api/oauth2/token",
            serde_json::json!({"grant_type": "password", "provision_key": "provision123", "authenticated_userid": "u", "client_id": "clientid123", "client_secret": "secret123", "scope": "email"}),
        ),
    ] {
        let text = body.to_string();
        let req = request(
            ("POST", "https"),
            "kong.test",
            path,
            &h,
            Some(text.as_bytes()),
        );
        let a = answer(k.policy.decide(&req, &down));
        // The authorization endpoint says it through the client's redirect
        // URI (RFC 6749 §4.1.2.1), the token endpoint in its body.
        let error = match a.body["error"].as_str() {
            Some(e) => e.to_string(),
            None => {
                a.redirect_params()
                    .into_iter()
                    .find(|(k, _)| k == "error")
                    .unwrap()
                    .1
            }
        };
        assert_eq!(
            (a.status, error.as_str()),
            (503, "temporarily_unavailable"),
            "{path}: {}",
            a.body
        );
    }
}

/// A consumer is in every plugin's scope (Kong's consumers are global): its
/// credentials are in each scope's client list, however many plugins there
/// are (each list but the last copies them).
#[test]
fn a_consumer_in_hundreds_of_plugins_gets_tokens_at_each() {
    let mut src = String::from(
        "dialect kong\nsigning_key \"0123456789abcdef0123456789abcdef-kong-test\"\nconsumer bob { username bob; credential { client_id cid; client_secret csecret } }\n",
    );
    for k in 0..300 {
        src.push_str(&format!(
            "route r{k} {{ path_prefix /r{k} }}\nrule r{k} {{ match route [r{k}]; enable_client_credentials true }}\n"
        ));
    }
    let services = FixedServices::at(NOW);
    let k = Kong {
        policy: Policy::compile(&src, &services).unwrap_or_else(|e| panic!("{e:?}")),
        services,
    };
    for route in ["r0", "r150", "r299"] {
        let a = k.post(
            &format!("/{route}/oauth2/token"),
            serde_json::json!({"grant_type": "client_credentials", "client_id": "cid", "client_secret": "csecret"}),
        );
        assert_eq!(a.status, 200, "{route}: {}", a.body);
        assert!(a.body["access_token"].is_string(), "{route}: {}", a.body);
    }
}
