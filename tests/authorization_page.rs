//! Warden's authorization page in a real browser: headless Chromium driven
//! over WebDriver (`fantoccini`, chromedriver started once for this test
//! binary) against the real `warden serve` over HTTPS on loopback, with
//! `policies/kong-authorization-page.policy` (its redirect URI pointed at a
//! small callback server of the test's own). Signing in and approving lands
//! on the client's redirect URI with a code and the state, which the token
//! endpoint exchanges (PKCE) for a token that reaches the upstream; Deny
//! lands with `error=access_denied`; a wrong password shows the page again.
//! With reqwest: a forged CSRF token is a 403 without a code, and a trusted
//! SSO proxy's user header signs the user in — and counts from no one else.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

#[path = "support/browser.rs"]
mod browser;
#[path = "support/redis.rs"]
mod redis_server;
mod support;

use browser::{Browser, Callback, free_port, tmp};
use reqwest::blocking::Client;
use serde_json::Value;
use support::{Server, policy, redirect_param, tls_server};

const SIGNING_KEY: &str = "page-e2e-signing-key-0123456789abcdef0123";
// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// The demo policy's redirect URI, which each test points at its own port.
const DEMO_REDIRECT: &str = "http://127.0.0.1:8000/callback";

/// `warden serve` over HTTPS with the demo policy, its redirect URI
/// `redirect`, and `extra` arguments; a client trusting its certificate
/// that does not follow redirects.
fn serve(redirect: &str, extra: &[&str]) -> (Server, Client, String) {
    let src = std::fs::read_to_string(policy("kong-authorization-page.policy")).unwrap();
    assert!(src.contains(DEMO_REDIRECT));
    let file = tmp(&format!(
        "authorization-page-{}-{}.policy",
        std::process::id(),
        free_port()
    ));
    std::fs::write(&file, src.replace(DEMO_REDIRECT, redirect)).unwrap();
    let mut args = vec!["--policy", file.to_str().unwrap()];
    args.extend(extra);
    let (server, pem) = tls_server(&args, &[("WARDEN_SIGNING_KEY", SIGNING_KEY)]);
    let base = server.https_localhost();
    let client = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (server, client, base)
}

fn authorize_url(base: &str, redirect: &str, state: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", "demo-shop"),
            ("redirect_uri", redirect),
            ("scope", "profile orders"),
            ("state", state),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    format!("{base}/api/oauth2/authorize?{query}")
}

/// Exchange `code` with the PKCE verifier: the token endpoint's answer.
fn exchange(client: &Client, base: &str, code: &str, redirect: &str) -> (u16, Value) {
    let resp = client
        .post(format!("{base}/api/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "demo-shop"),
            ("code", code),
            ("code_verifier", VERIFIER),
            ("redirect_uri", redirect),
        ])
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
}

/// What the echo upstream saw of `GET /api/orders` with `token`.
fn upstream(client: &Client, base: &str, token: &str, user_header: Option<&str>) -> (u16, Value) {
    let mut req = client.get(format!("{base}/api/orders")).bearer_auth(token);
    if let Some(u) = user_header {
        req = req.header("x-forwarded-user", u);
    }
    let resp = req.send().unwrap();
    (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
}

#[test]
fn sign_in_approve_land_on_the_redirect_uri_and_exchange_the_code() {
    let callback = Callback::start();
    let (server, client, base) = serve(&callback.uri, &[]);
    let browser = Browser::start();
    browser.goto(&authorize_url(&base, &callback.uri, "xyz 1&2"));
    assert_eq!(browser.title(), "Authorize Demo Shop");
    let page = browser.source();
    assert!(
        page.contains("<code>profile</code>") && page.contains("<code>orders</code>"),
        "{page}"
    );
    browser.fill("#username", "alice");
    browser.fill("#password", "wonderland");
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    std::fs::write(tmp("authorization-page.png"), &png).unwrap();

    browser.click("button[value=approve]");
    let landed = browser.wait_for_url(&callback.uri);
    assert_eq!(redirect_param(&landed, "state").as_deref(), Some("xyz 1&2"));
    let code = redirect_param(&landed, "code").expect("a code");
    browser.wait_for_text("the client got its answer");
    assert!(
        callback.targets().iter().any(|t| t.contains("code=")),
        "{:?}",
        callback.targets()
    );
    let (status, tokens) = exchange(&client, &base, &code, &callback.uri);
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let (status, seen) = upstream(&client, &base, &access, None);
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["headers"]["x-authenticated-userid"], "alice");
    assert_eq!(seen["headers"]["x-authenticated-scope"], "profile orders");
    assert_eq!(seen["headers"]["x-consumer-username"], "shop");
    // Single use.
    assert_eq!(exchange(&client, &base, &code, &callback.uri).0, 400);
    server.assert_logs_keep(&["wonderland", &code, &access, VERIFIER]);
}

#[test]
fn a_wrong_password_shows_the_page_again_and_deny_goes_back_with_access_denied() {
    let callback = Callback::start();
    let (server, _, base) = serve(&callback.uri, &[]);
    let browser = Browser::start();
    let start = authorize_url(&base, &callback.uri, "s-42");
    browser.goto(&start);
    browser.fill("#username", "alice");
    browser.fill("#password", "not-her-password");
    browser.click("button[value=approve]");
    browser.wait_for_text("Wrong username or password.");
    let at = browser.url();
    assert!(
        at.starts_with(&format!("{base}/api/oauth2/authorize")),
        "the page again, at {at}"
    );
    assert!(callback.targets().is_empty());
    // Deny needs no password.
    browser.click("button[value=deny]");
    let landed = browser.wait_for_url(&callback.uri);
    assert_eq!(
        redirect_param(&landed, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(redirect_param(&landed, "state").as_deref(), Some("s-42"));
    assert_eq!(redirect_param(&landed, "code"), None);
    server.assert_logs_keep(&["not-her-password"]);
}

/// A page's cookie nonce and hidden fields, read with reqwest.
fn page_form(
    client: &Client,
    url: &str,
    user: Option<&str>,
) -> (reqwest::StatusCode, String, Vec<(String, String)>, String) {
    let mut req = client.get(url);
    if let Some(u) = user {
        req = req.header("x-forwarded-user", u);
    }
    let resp = req.send().unwrap();
    let status = resp.status();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string())
        .unwrap_or_default();
    let html = resp.text().unwrap();
    let fields = html
        .split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|rest| {
            let (name, rest) = rest.split_once("\" value=\"").unwrap();
            let value = rest.split_once("\">").unwrap().0.replace("&amp;", "&");
            (name.to_string(), value)
        })
        .collect();
    (status, cookie, fields, html)
}

#[test]
fn a_forged_csrf_token_is_refused_and_the_headers_are_strict() {
    let callback = Callback::start();
    let (server, client, base) = serve(&callback.uri, &[]);
    let url = authorize_url(&base, &callback.uri, "st");
    let resp = client.get(&url).send().unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self' "));
    let cookie = h["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("__Host-warden-csrf=")
            && cookie.contains("HttpOnly")
            && cookie.contains("Secure")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    let (_, cookie, fields, _) = page_form(&client, &url, None);
    let login = [
        ("page_action", "approve"),
        ("username", "alice"),
        ("password", "wonderland"),
    ];
    let post = |fields: &[(String, String)], cookie: Option<&str>| {
        let mut req = client.post(format!("{base}/api/oauth2/authorize")).form(
            &fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain(login)
                .collect::<Vec<_>>(),
        );
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send().unwrap()
    };
    let tampered: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| {
            let v = if k == "csrf_token" {
                let (exp, mac) = v.split_once('.').unwrap();
                let flipped = if mac.starts_with('A') { "B" } else { "A" };
                format!("{exp}.{flipped}{}", &mac[1..])
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    let widened: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| match k.as_str() {
            "scope" => (k.clone(), "profile".to_string()),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    for (what, fields, cookie) in [
        ("a tampered token", &tampered, Some(cookie.as_str())),
        ("another request's fields", &widened, Some(&cookie)),
        ("no cookie", &fields, None),
        (
            "another cookie",
            &fields,
            Some("__Host-warden-csrf=AAAAAAAAAAAAAAAAAAAAAA"),
        ),
    ] {
        let resp = post(fields, cookie);
        assert_eq!(resp.status(), 403, "{what}");
        assert!(resp.headers().get("location").is_none(), "{what}");
        assert!(
            resp.text().unwrap().contains("This form has expired"),
            "{what}"
        );
    }
    // The genuine form, for contrast: a redirect with a code.
    let resp = post(&fields, Some(&cookie));
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}?code=", callback.uri)),
        "{location}"
    );
    // An unknown client or an unregistered redirect URI: a page, no redirect.
    for bad in [
        url.replace("client_id=demo-shop", "client_id=nobody"),
        url.replace("redirect_uri=http", "redirect_uri=https"),
    ] {
        let resp = client.get(&bad).send().unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        assert!(resp.headers().get("location").is_none());
    }
    // A bad scope goes back to the client, with the state.
    let resp = client
        .get(url.replace("scope=profile", "scope=admin"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap();
    assert_eq!(
        redirect_param(location, "error").as_deref(),
        Some("invalid_scope")
    );
    assert_eq!(redirect_param(location, "state").as_deref(), Some("st"));
    server.assert_logs_keep(&["wonderland"]);
}

#[test]
fn a_trusted_proxys_user_header_signs_the_user_in_and_reaches_no_one() {
    let callback = Callback::start();
    let (server, client, base) = serve(
        &callback.uri,
        &[
            "--trusted-proxy",
            "127.0.0.1/32",
            "--user-header",
            "X-Forwarded-User",
        ],
    );
    let url = authorize_url(&base, &callback.uri, "sso");
    let (status, cookie, fields, html) = page_form(&client, &url, Some("carol"));
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Signed in as <strong>carol</strong>"),
        "{html}"
    );
    assert!(!html.contains("type=\"password\""), "no sign-in form");
    let mut form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    form.push(("page_action", "approve"));
    let resp = client
        .post(format!("{base}/api/oauth2/authorize"))
        .header("cookie", &cookie)
        .header("x-forwarded-user", "carol")
        .form(&form)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let code = redirect_param(&location, "code").expect("a code");
    assert_eq!(redirect_param(&location, "state").as_deref(), Some("sso"));
    let (status, tokens) = exchange(&client, &base, &code, &callback.uri);
    assert_eq!(status, 200, "{tokens}");
    let (status, seen) = upstream(
        &client,
        &base,
        tokens["access_token"].as_str().unwrap(),
        Some("mallory"),
    );
    assert_eq!(status, 200);
    assert_eq!(seen["headers"]["x-authenticated-userid"], "carol");
    assert!(seen["headers"].get("x-forwarded-user").is_none(), "{seen}");
    drop(server);
}

#[test]
fn the_user_header_of_an_untrusted_peer_is_ignored() {
    let callback = Callback::start();
    let (server, client, base) = serve(
        &callback.uri,
        // TEST-NET-1: no peer of this test is trusted.
        &[
            "--trusted-proxy",
            "192.0.2.0/24",
            "--user-header",
            "X-Forwarded-User",
        ],
    );
    let url = authorize_url(&base, &callback.uri, "x");
    let (status, cookie, fields, html) = page_form(&client, &url, Some("carol"));
    assert_eq!(status, 200);
    assert!(
        html.contains("type=\"password\""),
        "the sign-in form shows: {html}"
    );
    assert!(!html.contains("carol"));
    // Approving as carol without her password: the page again.
    let mut form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    form.push(("page_action", "approve"));
    let post = |form: &[(&str, &str)]| {
        client
            .post(format!("{base}/api/oauth2/authorize"))
            .header("cookie", &cookie)
            .header("x-forwarded-user", "carol")
            .form(form)
            .send()
            .unwrap()
    };
    assert_eq!(post(&form).status(), 401);
    // Signed in as bob, the header reaches no upstream either.
    form.extend([("username", "bob"), ("password", "builder")]);
    let resp = post(&form);
    assert_eq!(resp.status(), 302);
    let code = redirect_param(resp.headers()["location"].to_str().unwrap(), "code").unwrap();
    let (status, tokens) = exchange(&client, &base, &code, &callback.uri);
    assert_eq!(status, 200, "{tokens}");
    let (status, seen) = upstream(
        &client,
        &base,
        tokens["access_token"].as_str().unwrap(),
        Some("carol"),
    );
    assert_eq!(status, 200);
    assert_eq!(seen["headers"]["x-authenticated-userid"], "bob");
    assert!(seen["headers"].get("x-forwarded-user").is_none(), "{seen}");
    drop(server);
}

/// The README's walkthrough, end to end: two nodes on one Redis, an
/// application made through node A's Admin API, a code from the page in the
/// browser on node A, exchanged on node B.
#[test]
fn a_code_from_the_page_on_one_node_is_exchanged_on_the_other() {
    let redis = redis_server::shared();
    let store = redis.url(0);
    let callback = Callback::start();
    let token_file = tmp(&format!("page-admin-token-{}", std::process::id()));
    std::fs::write(&token_file, "page-admin-token-0123456789").unwrap();
    let (a, client, base_a) = serve(
        "http://127.0.0.1:1/unused",
        &[
            "--store",
            &store,
            "--admin",
            "127.0.0.1:0",
            "--admin-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    let (_b, client_b, base_b) = serve("http://127.0.0.1:1/unused", &["--store", &store]);
    let admin = a.admin.clone().unwrap();
    let call = |path: &str, body: serde_json::Value| {
        let resp = client
            .post(format!("{admin}{path}"))
            .bearer_auth("page-admin-token-0123456789")
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201, "{path}");
    };
    call("/consumers", serde_json::json!({"username": "shop2"}));
    call(
        "/consumers/shop2/oauth2",
        serde_json::json!({"name": "Second Shop", "client_id": "second-shop",
                           "client_type": "public", "redirect_uris": [callback.uri]}),
    );
    let browser = Browser::start();
    let url = authorize_url(&base_a, &callback.uri, "two-nodes")
        .replace("client_id=demo-shop", "client_id=second-shop");
    browser.goto(&url);
    assert_eq!(browser.title(), "Authorize Second Shop");
    browser.fill("#username", "bob");
    browser.fill("#password", "builder");
    browser.click("button[value=approve]");
    let landed = browser.wait_for_url(&callback.uri);
    let code = redirect_param(&landed, "code").expect("a code");
    // On node B (its own certificate: its own client).
    let resp = client_b
        .post(format!("{base_b}/api/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "second-shop"),
            ("code", code.as_str()),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let tokens: Value = resp.json().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    for (client, base) in [(&client, &base_a), (&client_b, &base_b)] {
        let (status, seen) = upstream(client, base, access, None);
        assert_eq!(status, 200, "{seen}");
        assert_eq!(seen["headers"]["x-consumer-username"], "shop2");
        assert_eq!(seen["headers"]["x-authenticated-userid"], "bob");
    }
}
