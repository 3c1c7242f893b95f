//! Differential test of Kong's order of checks: a deliberately literal
//! transliteration of `issue_token` and `authorize` from Kong's
//! `kong/plugins/oauth2/access.lua` (every check in Kong's order, a later
//! failure replacing an earlier one, as Kong's `response_params` is
//! overwritten), with Warden's documented deviations applied, against the
//! engine, on random token and authorization requests (random parameters,
//! values valid, invalid or of the wrong JSON type, HTTP Basic or not, HTTPS
//! or not). Both must answer the same status, `error` and
//! `error_description`.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use warden_engine::{Decision, FixedServices, Policy, Request};

const NOW: u64 = 1_700_000_000;
const POLICY: &str = r#"
dialect kong
signing_key "kong-differential-key-0123456789abcdef012"
consumer bob {
  credential { client_id clientid123; client_secret secret123; redirect_uris ["http://google.test/kong", "http://two.test/two"] }
  credential { client_id clientid-public; client_type public; redirect_uris ["http://google.test/kong"] }
  credential { client_id clientid-nouris; client_secret secret-nouris }
}
route api { hosts [api.test] }
rule api {
  match route [api]
  enable_authorization_code true
  enable_client_credentials true
  enable_implicit_grant true
  enable_password_grant true
  scopes [email, profile]
  mandatory_scope true
  provision_key p
}
"#;
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A registered client, as Kong's `oauth2_credentials` row.
struct Client {
    id: &'static str,
    secret: Option<&'static str>,
    public: bool,
    redirect_uris: &'static [&'static str],
}

const CLIENTS: &[Client] = &[
    Client {
        id: "clientid123",
        secret: Some("secret123"),
        public: false,
        redirect_uris: &["http://google.test/kong", "http://two.test/two"],
    },
    Client {
        id: "clientid-public",
        secret: None,
        public: true,
        redirect_uris: &["http://google.test/kong"],
    },
    Client {
        id: "clientid-nouris",
        secret: Some("secret-nouris"),
        public: false,
        redirect_uris: &[],
    },
];

fn client(id: Option<&str>) -> Option<&'static Client> {
    let id = id.filter(|i| !i.is_empty())?;
    CLIENTS.iter().find(|c| c.id == id)
}

type Outcome = (u16, String, String);

fn err(status: u16, e: &str, d: &str) -> Outcome {
    (status, e.into(), d.into())
}

/// A string parameter (Lua: `type(v) == "string"`), or `None`.
fn s<'a>(p: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Value::as_str)
}

/// `retrieve_scope`, Kong's words.
fn scope(p: &Map<String, Value>) -> Result<(), Outcome> {
    const SCOPES: [&str; 2] = ["email", "profile"];
    match p.get("scope") {
        Some(Value::String(text)) => {
            for v in text.split_whitespace() {
                if !SCOPES.contains(&v) {
                    return Err(err(
                        400,
                        "invalid_scope",
                        &format!("\"{v}\" is an invalid scope"),
                    ));
                }
            }
            Ok(())
        }
        Some(_) => Err(err(400, "invalid_scope", "scope must be a string")),
        None => Err(err(400, "invalid_scope", "You must specify a scope")),
    }
}

/// The code the test issued before the request, and what it was issued with.
struct IssuedCode {
    code: String,
    client: &'static str,
    pkce: bool,
}

/// Kong's `issue_token`, literally (Warden's deviations marked).
fn reference_token(
    p: &Map<String, Value>,
    basic: Option<(&str, Option<&str>)>,
    https: bool,
    issued: &IssuedCode,
) -> Outcome {
    if !https {
        return err(400, "access_denied", "You must use HTTPS");
    }
    let mut e: Option<Outcome> = None;
    let mut unauthorized = false;
    let grant = s(p, "grant_type");
    if !matches!(
        grant,
        Some("authorization_code" | "refresh_token" | "client_credentials" | "password")
    ) {
        e = Some(err(400, "unsupported_grant_type", "Invalid grant_type"));
    }
    // retrieve_client_credentials
    let (id, secret, from_header) = match (s(p, "client_id"), s(p, "client_secret"), basic) {
        (Some(i), Some(sec), _) => (Some(i), Some(sec), false),
        (_, _, Some((i, sec))) => (Some(i), sec, true),
        (i, _, None) => (i, None, false),
    };
    let c = client(id);
    if grant != Some("client_credentials") {
        match c {
            Some(c) if !c.redirect_uris.is_empty() => {
                let wanted = p.get("redirect_uri");
                let ok = match wanted {
                    None => true,
                    Some(Value::String(u)) => c.redirect_uris.contains(&u.as_str()),
                    Some(_) => false,
                };
                if !ok {
                    e = Some(err(
                        400,
                        "invalid_request",
                        "Invalid redirect_uri that does not match with any redirect_uri created with the application",
                    ));
                }
            }
            _ => {
                e = Some(err(400, "invalid_client", "Invalid client authentication"));
                unauthorized |= from_header;
            }
        }
    }
    if let Some(c) = c {
        if c.public {
            if secret.is_some_and(|x| !x.trim().is_empty()) {
                e = Some(err(
                    400,
                    "invalid_request",
                    "client_secret is disallowed for public clients",
                ));
            }
        } else if secret.is_none() || c.secret != secret {
            e = Some(err(400, "invalid_client", "Invalid client authentication"));
            unauthorized |= from_header;
        }
    }
    if let Some((_, e, d)) = e {
        return (if unauthorized { 401 } else { 400 }, e, d);
    }
    // Only client_credentials gets here without a client (checked below).
    let no_client = || {
        // Warden: 401 through Basic on every grant (Kong: 400 here).
        err(
            if from_header { 401 } else { 400 },
            "invalid_client",
            "Invalid client authentication",
        )
    };
    if grant == Some("client_credentials") {
        if p.contains_key("authenticated_userid") && s(p, "provision_key") != Some("p") {
            return err(400, "invalid_provision_key", "Invalid provision_key");
        }
        let Some(c) = c else { return no_client() };
        if c.public {
            // Warden: RFC 6749 §4.4 (Kong issues the token).
            return err(
                400,
                "unauthorized_client",
                "The client_credentials grant is for confidential clients only",
            );
        }
        return scope(p).err().unwrap_or_else(|| err(200, "", ""));
    }
    let c = c.unwrap();
    match grant.unwrap() {
        "authorization_code" => {
            // Warden: invalid_grant where Kong says invalid_request.
            let invalid = err(400, "invalid_grant", "Invalid code");
            if s(p, "code") != Some(issued.code.as_str()) || issued.client != c.id {
                return invalid;
            }
            if issued.pkce || c.public {
                match p.get("code_verifier") {
                    None => {
                        return err(
                            400,
                            "invalid_request",
                            "code_verifier is required for PKCE authorization requests",
                        );
                    }
                    Some(Value::String(v)) if !(43..=128).contains(&v.len()) => {
                        return err(
                            400,
                            "invalid_request",
                            "code_verifier must be between 43 and 128 characters",
                        );
                    }
                    Some(Value::String(v)) if issued.pkce && v == VERIFIER => {}
                    Some(Value::String(_)) => return err(400, "invalid_grant", "Invalid code"),
                    Some(_) => return err(400, "invalid_request", "code_verifier is not a string"),
                }
            }
            err(200, "", "")
        }
        "password" => {
            if s(p, "provision_key") != Some("p") {
                return err(400, "invalid_provision_key", "Invalid provision_key");
            }
            if s(p, "authenticated_userid").is_none_or(|u| u.trim().is_empty()) {
                return err(
                    400,
                    "invalid_authenticated_userid",
                    "Missing authenticated_userid parameter",
                );
            }
            scope(p).err().unwrap_or_else(|| err(200, "", ""))
        }
        _ => err(400, "invalid_grant", "Invalid refresh_token"), // no refresh token was issued
    }
}

/// Kong's `authorize`, literally: the last failure wins.
fn reference_authorize(p: &Map<String, Value>, https: bool) -> (Outcome, Option<&'static str>) {
    if !https {
        return (err(400, "access_denied", "You must use HTTPS"), None);
    }
    if s(p, "provision_key") != Some("p") {
        return (
            err(400, "invalid_provision_key", "Invalid provision_key"),
            None,
        );
    }
    if s(p, "authenticated_userid").is_none_or(|u| u.trim().is_empty()) {
        return (
            err(
                400,
                "invalid_authenticated_userid",
                "Missing authenticated_userid parameter",
            ),
            None,
        );
    }
    let mut e = None;
    if !matches!(s(p, "response_type"), Some("code" | "token")) {
        e = Some(err(
            400,
            "unsupported_response_type",
            "Invalid response_type",
        ));
    }
    if let Err(x) = scope(p) {
        e = Some(x);
    }
    let c = client(s(p, "client_id")).filter(|c| !c.redirect_uris.is_empty());
    let mut target = None;
    match c {
        None => e = Some(err(400, "invalid_client", "Invalid client authentication")),
        Some(c) => {
            target = Some(c.redirect_uris[0]);
            match p.get("redirect_uri") {
                None => {}
                Some(Value::String(u)) if c.redirect_uris.contains(&u.as_str()) => {
                    target = c.redirect_uris.iter().copied().find(|r| r == u);
                }
                Some(_) => {
                    e = Some(err(
                        400,
                        "invalid_request",
                        "Invalid redirect_uri that does not match with any redirect_uri created with the application",
                    ))
                }
            }
        }
    }
    let challenge = p.get("code_challenge");
    let method = p.get("code_challenge_method");
    let mut challenge_failed = true;
    if method.is_some() && challenge.is_none() {
        e = Some(err(
            400,
            "invalid_request",
            "code_challenge is required when code_method is present",
        ));
    } else if challenge.is_some()
        && method.is_some_and(|m| !matches!(m.as_str(), Some("S256" | "s256")))
    {
        e = Some(err(
            400,
            "invalid_request",
            "code_challenge_method is not supported, must be S256",
        ));
    } else if challenge.is_some() && !challenge.unwrap().is_string() {
        e = Some(err(
            400,
            "invalid_request",
            "code_challenge must be a string",
        ));
    } else {
        challenge_failed = false;
    }
    if let Some(c) = c
        && challenge.is_none()
        && !challenge_failed
        && c.public
    {
        e = Some(err(
            400,
            "invalid_request",
            "code_challenge is required for public clients",
        ));
    }
    (e.unwrap_or_else(|| err(200, "", "")), target)
}

/// What the engine answered: status, error, description (from the body or
/// the redirect URI's parameters), and the redirect target.
fn engine_outcome(d: &Decision) -> (Outcome, Option<String>) {
    let Decision::Reply(r) = d else {
        panic!("{d:?}")
    };
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    if let Some(uri) = body["redirect_uri"].as_str() {
        let (target, params) = uri.split_once(['?', '#']).unwrap();
        let params: Map<String, Value> = form_urlencoded::parse(params.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        let e = params.get("error").and_then(Value::as_str).unwrap_or("");
        let d = params
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("");
        let target = target.split('?').next().unwrap().to_string();
        // A registered URI with its own query keeps it.
        return ((r.status, e.into(), d.into()), Some(target));
    }
    let e = body["error"].as_str().unwrap_or("");
    let d = body["error_description"].as_str().unwrap_or("");
    ((r.status, e.into(), d.into()), None)
}

fn value(options: &'static [Option<Value>]) -> impl Strategy<Value = Option<Value>> {
    prop::sample::select(options.to_vec())
}

fn params() -> impl Strategy<Value = Map<String, Value>> {
    use std::sync::LazyLock;
    type Choices = Vec<(&'static str, Vec<Option<Value>>)>;
    static CHOICES: LazyLock<Choices> = LazyLock::new(|| {
        // Absent, or one of the values; the first (the valid one) four times
        // as likely, so that requests get past the early checks.
        let v = |xs: &[Value]| -> Vec<Option<Value>> {
            let valid = std::iter::repeat_n(xs[0].clone(), 3).map(Some);
            std::iter::once(None)
                .chain(valid)
                .chain(xs.iter().cloned().map(Some))
                .collect()
        };
        vec![
            (
                "grant_type",
                v(&[
                    json!("authorization_code"),
                    json!("client_credentials"),
                    json!("password"),
                    json!("refresh_token"),
                    json!("implicit"),
                ]),
            ),
            (
                "client_id",
                v(&[
                    json!("clientid123"),
                    json!("clientid-public"),
                    json!("clientid-nouris"),
                    json!("nobody"),
                    json!(""),
                ]),
            ),
            (
                "client_secret",
                v(&[
                    json!("secret123"),
                    json!("secret-nouris"),
                    json!("wrong"),
                    json!(""),
                    json!("  "),
                ]),
            ),
            ("provision_key", v(&[json!("p"), json!("q"), json!(1)])),
            ("authenticated_userid", v(&[json!("alice"), json!("  ")])),
            (
                "scope",
                v(&[
                    json!("email"),
                    json!("email  profile"),
                    json!("wot"),
                    json!(""),
                    json!(5),
                ]),
            ),
            ("code", v(&[json!("CODE"), json!("junk")])),
            (
                "code_verifier",
                v(&[
                    json!(VERIFIER),
                    json!("x".repeat(43)),
                    json!("short"),
                    json!(12),
                ]),
            ),
            (
                "redirect_uri",
                v(&[
                    json!("http://google.test/kong"),
                    json!("http://two.test/two"),
                    json!("http://evil.test/"),
                    json!(7),
                ]),
            ),
            ("refresh_token", v(&[json!("junk")])),
            (
                "response_type",
                v(&[json!("code"), json!("token"), json!("nope")]),
            ),
            ("code_challenge", v(&[json!(CHALLENGE), json!(3)])),
            (
                "code_challenge_method",
                v(&[json!("S256"), json!("s256"), json!("plain")]),
            ),
        ]
    });
    let strategies: Vec<_> = CHOICES
        .iter()
        .map(|(k, opts)| (Just(*k), prop::sample::select(opts.clone())))
        .collect();
    let _ = value;
    strategies.prop_map(|pairs| {
        pairs
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect()
    })
}

fn basic() -> impl Strategy<Value = Option<(&'static str, Option<&'static str>)>> {
    prop::sample::select(vec![
        None,
        Some(("clientid123", Some("secret123"))),
        Some(("clientid123", Some("wrong"))),
        Some(("clientid-public", None)),
        Some(("clientid-public", Some(""))),
        Some(("nobody", Some("x"))),
    ])
}

fn decide(
    policy: &Policy,
    services: &FixedServices,
    path: &str,
    p: &Map<String, Value>,
    basic: Option<(&str, Option<&str>)>,
    https: bool,
) -> Decision {
    let body = Value::Object(p.clone()).to_string();
    let auth = basic.map(|(id, secret)| {
        let raw = match secret {
            Some(s) => format!("{id}:{s}"),
            None => id.to_string(),
        };
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    });
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let req = Request {
        method: "POST",
        scheme: if https { "https" } else { "http" },
        authority: "api.test",
        path,
        headers: &headers,
        body: Some(body.as_bytes()),
        ..Default::default()
    };
    policy.decide(&req, services)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

    #[test]
    fn the_token_endpoint_checks_in_kongs_order(mut p in params(), basic in basic(), https in prop::bool::weighted(0.9), pkce in any::<bool>()) {
        let services = FixedServices::at(NOW);
        let policy = Policy::compile(POLICY, &services).unwrap();
        // A code issued to clientid123 before the request (with a PKCE challenge or not).
        let mut authorize = json!({"provision_key": "p", "authenticated_userid": "u", "client_id": "clientid123", "response_type": "code", "scope": "email"});
        if pkce {
            authorize["code_challenge"] = CHALLENGE.into();
        }
        let d = decide(&policy, &services, "/oauth2/authorize", authorize.as_object().unwrap(), None, true);
        let ((status, _, _), _) = engine_outcome(&d);
        prop_assert_eq!(status, 200);
        let Decision::Reply(r) = &d else { unreachable!() };
        let uri: Value = serde_json::from_slice(&r.body).unwrap();
        let code = uri["redirect_uri"].as_str().unwrap().split("code=").nth(1).unwrap().to_string();
        if p.get("code") == Some(&json!("CODE")) {
            p.insert("code".into(), code.clone().into());
        }
        let issued = IssuedCode { code, client: "clientid123", pkce };
        let want = reference_token(&p, basic, https, &issued);
        let (got, _) = engine_outcome(&decide(&policy, &services, "/oauth2/token", &p, basic, https));
        prop_assert_eq!(got, want, "params {:?} basic {:?} https {}", p, basic, https);
    }

    #[test]
    fn the_authorization_endpoint_checks_in_kongs_order(p in params(), https in prop::bool::weighted(0.9)) {
        let services = FixedServices::at(NOW);
        let policy = Policy::compile(POLICY, &services).unwrap();
        let (want, target) = reference_authorize(&p, https);
        let (got, got_target) = engine_outcome(&decide(&policy, &services, "/oauth2/authorize", &p, None, https));
        prop_assert_eq!(got, want, "params {:?}", p);
        prop_assert_eq!(got_target.as_deref(), target, "params {:?}", p);
    }
}
