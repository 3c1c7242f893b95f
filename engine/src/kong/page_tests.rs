//! The authorization page's flows, decided natively: the consent page and
//! its headers, the errors shown and those redirected, sign-in, Approve
//! (a code that the token endpoint exchanges with the PKCE verifier),
//! Deny, CSRF refusals, a trusted proxy's user, and Kong's own POST beside.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code may unwrap

use serde_json::Value;

use crate::fixtures::request;
use crate::{Decision, FixedServices, Policy, Reply};

const NOW: u64 = 1_700_000_000;
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn policy_text() -> String {
    let alice = crate::secret_hash::hash_argon2id(b"wonderland", &[3; 16]).unwrap();
    format!(
        r#"
dialect kong
signing_key "0123456789abcdef0123456789abcdef-page-test"
consumer bob {{
  credential {{ name "Bob's <Shop>"; client_id shop; client_type public; redirect_uris ["http://127.0.0.1:9000/callback", "com.shop.app://cb"] }}
  credential {{ name nouris; client_id nouris; client_secret s3cret }}
}}
route api {{ path_prefix /api }}
rule api {{
  match route [api]
  enable_authorization_code true
  enable_implicit_grant true
  scopes [email, profile]
  provision_key provision123
  authorization_page {{
    user alice {{ password_hash "{alice}" }}
  }}
}}
"#
    )
}

struct Page {
    policy: Policy,
    services: FixedServices,
}

fn page() -> Page {
    let services = FixedServices::at(NOW);
    let policy = Policy::compile(&policy_text(), &services).unwrap_or_else(|e| panic!("{e:?}"));
    Page { policy, services }
}

const AUTHORIZE: &str = "/api/oauth2/authorize";

fn query(extra: &str) -> String {
    format!(
        "{AUTHORIZE}?response_type=code&client_id=shop&redirect_uri=http%3A%2F%2F127.0.0.1%3A9000%2Fcallback&scope=email+profile&state=st%26%3C1&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}"
    )
}

impl Page {
    fn decide(
        &self,
        (method, scheme): (&str, &str),
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
        user: Option<&str>,
    ) -> Reply {
        let mut req = request(
            (method, scheme),
            "gw.test",
            target,
            headers,
            body.map(str::as_bytes),
        );
        req.trusted_user = user;
        match self.policy.decide(&req, &self.services) {
            Decision::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn get(&self, target: &str, user: Option<&str>) -> Reply {
        self.decide(("GET", "https"), target, &[], None, user)
    }

    /// POST `fields` as a form, with the cookie `cookie`.
    fn post(&self, fields: &[(String, String)], cookie: Option<&str>, user: Option<&str>) -> Reply {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let cookie = cookie.map(|c| format!("__Host-warden-csrf={c}"));
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if let Some(c) = &cookie {
            headers.push(("cookie", c));
        }
        self.decide(("POST", "https"), AUTHORIZE, &headers, Some(&body), user)
    }
}

fn header<'r>(r: &'r Reply, name: &str) -> Option<&'r str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn text(r: &Reply) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

/// The nonce the page set, and its form's hidden fields (unescaped).
fn form(r: &Reply) -> (String, Vec<(String, String)>) {
    let cookie = header(r, "set-cookie").expect("a cookie");
    let nonce = cookie["__Host-warden-csrf=".len()..]
        .split(';')
        .next()
        .unwrap();
    let html = text(r);
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let fields = html
        .split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|rest| {
            let (name, rest) = rest.split_once("\" value=\"").unwrap();
            let value = rest.split_once("\">").unwrap().0;
            (unescape(name), unescape(value))
        })
        .collect();
    (nonce.to_string(), fields)
}

fn with(mut fields: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    fields.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    fields
}

/// The query parameters of a 302's `Location`.
fn location(r: &Reply) -> (String, Vec<(String, String)>) {
    assert_eq!(r.status, 302, "{}", text(r));
    let loc = header(r, "location").unwrap();
    let (base, params) = loc.split_once(['?', '#']).unwrap();
    let params = form_urlencoded::parse(params.as_bytes())
        .into_owned()
        .collect();
    (base.to_string(), params)
}

fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_consent_page_and_its_headers() {
    let p = page();
    let r = p.get(&query(""), None);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(header(&r, "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(header(&r, "x-frame-options"), Some("DENY"));
    assert_eq!(header(&r, "cache-control"), Some("no-store"));
    assert_eq!(header(&r, "referrer-policy"), Some("no-referrer"));
    let csp = header(&r, "content-security-policy").unwrap();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9000;"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = text(&r);
    assert!(html.contains("Authorize Bob&#39;s &lt;Shop&gt;"), "{html}");
    assert!(html.contains("<li><code>email</code></li>\n<li><code>profile</code></li>"));
    assert!(html.contains("name=\"password\" type=\"password\""));
    assert!(!html.contains("<script") && !html.contains("Bob's <Shop>"));
    let (nonce, fields) = form(&r);
    assert_eq!(nonce.len(), 22);
    assert_eq!(param(&fields, "state"), Some("st&<1"));
    assert_eq!(
        param(&fields, "redirect_uri"),
        Some("http://127.0.0.1:9000/callback")
    );
    assert!(param(&fields, "csrf_token").is_some());
    assert!(html.contains(&format!("action=\"{AUTHORIZE}\"")));
    // A cookie the browser already has is kept (two tabs stay valid).
    let cookie = format!("__Host-warden-csrf={nonce}");
    let again = p.decide(
        ("GET", "https"),
        &query(""),
        &[("cookie", &cookie)],
        None,
        None,
    );
    assert_eq!(form(&again).0, nonce);
}

#[test]
fn client_and_redirect_errors_are_pages_the_others_redirects() {
    let p = page();
    for target in [
        format!(
            "{AUTHORIZE}?response_type=code&client_id=nobody&redirect_uri=http://127.0.0.1:9000/callback"
        ),
        format!("{AUTHORIZE}?response_type=code&client_id=nouris"),
        format!(
            "{AUTHORIZE}?response_type=code&client_id=shop&redirect_uri=http://evil.example/cb"
        ),
        format!("{AUTHORIZE}?response_type=code&client_id=shop&redirect_uri=a&redirect_uri=b"),
    ] {
        let r = p.get(&target, None);
        assert_eq!(r.status, 400, "{target}");
        assert_eq!(header(&r, "location"), None, "{target}");
        assert_eq!(header(&r, "content-type"), Some("text/html; charset=utf-8"));
        assert!(
            header(&r, "content-security-policy")
                .unwrap()
                .contains("form-action 'none'")
        );
    }
    // Over plain HTTP: a page too.
    let r = p.decide(("GET", "http"), &query(""), &[], None, None);
    assert_eq!((r.status, header(&r, "location")), (400, None));

    for (extra, error, description) in [
        ("&scope=wot", "invalid_scope", "\"wot\" is an invalid scope"),
        (
            "&response_type=password",
            "unsupported_response_type",
            "Invalid response_type",
        ),
        (
            "&code_challenge_method=plain",
            "invalid_request",
            "code_challenge_method is not supported, must be S256",
        ),
    ] {
        // The later value of a repeated key is not a string: replace instead.
        let target = query("")
            .replace("&scope=email+profile", "")
            .replace("&response_type=code", "")
            .replace("&code_challenge_method=S256", "");
        let target = format!(
            "{target}{extra}{}",
            if extra.contains("response_type") {
                "&scope=email&code_challenge_method=S256"
            } else {
                "&response_type=code"
            }
        );
        let r = p.get(&target, None);
        let (base, params) = location(&r);
        assert_eq!(base, "http://127.0.0.1:9000/callback");
        assert_eq!(param(&params, "error"), Some(error), "{target}");
        assert_eq!(
            param(&params, "error_description"),
            Some(description),
            "{target}"
        );
        assert_eq!(param(&params, "state"), Some("st&<1"));
    }
    let bare = format!("{AUTHORIZE}?response_type=code&client_id=shop&scope=email&state=s");
    let (_, params) = location(&p.get(&bare, None));
    assert_eq!(
        param(&params, "error_description"),
        Some("code_challenge is required for public clients")
    );
}

#[test]
fn sign_in_approve_and_exchange_the_code() {
    let p = page();
    let (nonce, fields) = form(&p.get(&query(""), None));
    // A wrong password: the page again, the username kept, no redirect.
    let r = p.post(
        &with(
            fields.clone(),
            &[
                ("page_action", "approve"),
                ("username", "alice"),
                ("password", "nope"),
            ],
        ),
        Some(&nonce),
        None,
    );
    assert_eq!(r.status, 401, "{}", text(&r));
    assert_eq!(header(&r, "location"), None);
    assert!(text(&r).contains("Wrong username or password."));
    assert!(text(&r).contains("value=\"alice\" required"));
    let r = p.post(
        &with(
            fields.clone(),
            &[
                ("page_action", "approve"),
                ("username", "mallory"),
                ("password", "wonderland"),
            ],
        ),
        Some(&nonce),
        None,
    );
    assert_eq!(r.status, 401);
    // The right one: back to the client with a code and the state.
    let r = p.post(
        &with(
            fields,
            &[
                ("page_action", "approve"),
                ("username", "alice"),
                ("password", "wonderland"),
            ],
        ),
        Some(&nonce),
        None,
    );
    let (base, params) = location(&r);
    assert_eq!(base, "http://127.0.0.1:9000/callback");
    assert_eq!(param(&params, "state"), Some("st&<1"));
    let code = param(&params, "code").unwrap();
    // The same code as Kong's POST gives: PKCE holds, then a token for alice.
    let exchange = |verifier: &str| {
        let body = format!(
            "grant_type=authorization_code&client_id=shop&code={code}&code_verifier={verifier}&redirect_uri=http://127.0.0.1:9000/callback"
        );
        p.decide(
            ("POST", "https"),
            "/api/oauth2/token",
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(&body),
            None,
        )
    };
    assert_eq!(
        exchange("wrong-verifier-wrong-verifier-wrong-verifier").status,
        400
    );
    let r = exchange(VERIFIER);
    assert_eq!(r.status, 200, "{}", text(&r));
    let tokens: Value = serde_json::from_slice(&r.body).unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let auth = format!("Bearer {access}");
    let headers = [("authorization", auth.as_str())];
    let req = request(("GET", "https"), "gw.test", "/api/orders", &headers, None);
    let forward = p.policy.decide(&req, &p.services);
    let set = &forward.forward().unwrap().set_headers;
    assert!(
        set.contains(&("x-authenticated-userid".into(), "alice".into())),
        "{set:?}"
    );
    assert!(
        set.contains(&("x-authenticated-scope".into(), "email profile".into())),
        "{set:?}"
    );
}

#[test]
fn deny_and_csrf_refusals() {
    let mut p = page();
    let (nonce, fields) = form(&p.get(&query(""), None));
    let deny = with(fields.clone(), &[("page_action", "deny")]);
    let (_, params) = location(&p.post(&deny, Some(&nonce), None));
    assert_eq!(param(&params, "error"), Some("access_denied"));
    assert_eq!(param(&params, "state"), Some("st&<1"));
    assert_eq!(param(&params, "code"), None);

    let approve = with(
        fields.clone(),
        &[
            ("page_action", "approve"),
            ("username", "alice"),
            ("password", "wonderland"),
        ],
    );
    let forged: Vec<(String, String)> = approve
        .iter()
        .map(|(k, v)| match k.as_str() {
            "csrf_token" => (
                k.clone(),
                format!(
                    "{}.AAAA{}",
                    &v[..v.find('.').unwrap()],
                    &v[v.find('.').unwrap() + 5..]
                ),
            ),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    let other_scope: Vec<(String, String)> = approve
        .iter()
        .map(|(k, v)| match k.as_str() {
            "scope" => (k.clone(), "email".into()),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    let no_token: Vec<(String, String)> = approve
        .iter()
        .filter(|(k, _)| k != "csrf_token")
        .cloned()
        .collect();
    let other_nonce = "BBBBBBBBBBBBBBBBBBBBBB";
    for (fields, cookie) in [
        (&forged, Some(nonce.as_str())),
        (&other_scope, Some(&nonce)),
        (&no_token, Some(&nonce)),
        (&approve, None),
        (&approve, Some(other_nonce)),
        (&deny, None),
    ] {
        let r = p.post(fields, cookie, None);
        assert_eq!(r.status, 403, "{}", text(&r));
        assert_eq!(header(&r, "location"), None);
        assert!(text(&r).contains("This form has expired"));
    }
    // Ten minutes on, the form has expired.
    p.services.now = NOW + 600;
    let r = p.post(&approve, Some(&nonce), None);
    assert_eq!((r.status, header(&r, "location")), (403, None));
}

#[test]
fn a_trusted_proxys_user_needs_no_password() {
    let p = page();
    let r = p.get(&query(""), Some("carol"));
    let html = text(&r);
    assert!(
        html.contains("Signed in as <strong>carol</strong>"),
        "{html}"
    );
    assert!(!html.contains("type=\"password\""));
    let (nonce, fields) = form(&r);
    let r = p.post(
        &with(fields, &[("page_action", "approve")]),
        Some(&nonce),
        Some("carol"),
    );
    let (_, params) = location(&r);
    let code = param(&params, "code").unwrap();
    let body = format!(
        "grant_type=authorization_code&client_id=shop&code={code}&code_verifier={VERIFIER}"
    );
    let r = p.decide(
        ("POST", "https"),
        "/api/oauth2/token",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(&body),
        None,
    );
    let tokens: Value = serde_json::from_slice(&r.body).unwrap();
    let claims = tokens["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    use base64::Engine as _;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["authenticated_userid"], "carol");
    // A user the proxy named with control characters is nobody.
    let r = p.get(&query(""), Some("carol\tadmin"));
    assert!(text(&r).contains("type=\"password\""));
}

#[test]
fn implicit_through_the_page_and_kongs_own_post_beside_it() {
    let p = page();
    let target = format!(
        "{AUTHORIZE}?response_type=token&client_id=shop&scope=email&state=s1&redirect_uri=com.shop.app%3A%2F%2Fcb&code_challenge={CHALLENGE}"
    );
    let r = p.get(&target, None);
    assert!(
        header(&r, "content-security-policy")
            .unwrap()
            .contains("form-action 'self' com.shop.app://cb;")
    );
    let (nonce, fields) = form(&r);
    let r = p.post(
        &with(
            fields,
            &[
                ("page_action", "approve"),
                ("username", "alice"),
                ("password", "wonderland"),
            ],
        ),
        Some(&nonce),
        None,
    );
    assert_eq!(r.status, 302);
    let loc = header(&r, "location").unwrap();
    assert!(loc.starts_with("com.shop.app://cb#access_token="), "{loc}");
    assert!(loc.contains("&state=s1"), "{loc}");
    // Kong's POST (no page_action): JSON, as before.
    let body = format!(
        "response_type=code&client_id=shop&scope=email&provision_key=provision123&authenticated_userid=u1&code_challenge={CHALLENGE}&code_challenge_method=S256"
    );
    let r = p.decide(
        ("POST", "https"),
        AUTHORIZE,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(&body),
        None,
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let answer: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(
        answer["redirect_uri"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:9000/callback?code=")
    );
}

fn compile_error(policy: &str) -> String {
    use std::fmt::Write as _;
    let services = FixedServices::at(NOW);
    let errors = Policy::compile(policy, &services).unwrap_err();
    let mut out = String::new();
    for d in &errors {
        let help = d
            .help
            .as_deref()
            .map_or(String::new(), |h| format!(" ({h})"));
        let _ = writeln!(out, "{}:{}: {}{help}", d.line, d.column, d.message);
    }
    out
}

#[test]
fn schema_errors_at_their_line() {
    let head = "dialect kong\nsigning_key \"0123456789abcdef0123456789abcdef-page-test\"\nconsumer c { credential { client_id x; client_type public; redirect_uris [\"http://a.b/c\"] } }\n";
    let e = compile_error(&format!(
        "{head}rule r {{\n  match route [x]\n  enable_client_credentials true\n  authorization_page true\n}}\nroute x {{ path_prefix /x }}\n"
    ));
    assert!(
        e.contains(
            "7:3: `authorization_page` needs `enable_authorization_code` or `enable_implicit_grant`"
        ),
        "{e}"
    );
    let alice = crate::secret_hash::hash_argon2id(b"pw", &[1; 16]).unwrap();
    for (body, want) in [
        (
            format!(
                "authorization_page {{ user a {{ password_hash \"{alice}\" }}\n user a {{ password_hash \"{alice}\" }} }}"
            ),
            "5:7: duplicate user `a`",
        ),
        (
            "authorization_page { user a { password_hash \"x\" } }".to_string(),
            "4:45: `password_hash`: not a PHC hash string",
        ),
        (
            "authorization_page { user a { pasword_hash x } }".to_string(),
            "4:31: unknown setting `pasword_hash` in a user (did you mean `password_hash`?)",
        ),
        (
            "authorization_page { usr a }".to_string(),
            "4:22: unknown setting `usr` in `authorization_page` (did you mean `user`?)",
        ),
        (
            "authorization_page { user a }".to_string(),
            "4:22: user `a` has no `password_hash`",
        ),
        (
            "authorization_page false { }".to_string(),
            "4:26: `authorization_page false` has no users",
        ),
        (
            "authorization_page".to_string(),
            "4:1: `authorization_page` needs a value",
        ),
        (
            "authorization_page maybe".to_string(),
            "4:20: `authorization_page` must be `true` or `false`",
        ),
    ] {
        let e = compile_error(&format!("{head}{body}\nenable_authorization_code true\n"));
        assert!(e.contains(want), "{body}\n{e}");
    }
    // With the page, the code flow needs no provision_key.
    let services = FixedServices::at(NOW);
    let ok = format!("{head}enable_authorization_code true\nauthorization_page true\n");
    assert!(Policy::compile(&ok, &services).is_ok());
    let e = compile_error(&format!("{head}enable_authorization_code true\n"));
    assert!(
        e.contains("enable_authorization_code needs a `provision_key`"),
        "{e}"
    );
    let higress = compile_error("authorization_page true\n");
    assert!(
        higress.contains("`authorization_page` is a setting of Kong's dialect"),
        "{higress}"
    );
}
