//! Kong's endpoints and access, natively: one `dialect kong` policy compiled
//! once; each input is a *sequence* of requests decided against one fresh
//! `FixedServices` (clock, counter randomness, in-process store), so that a
//! code, refresh token or access token that an earlier request obtained can
//! be replayed by a later one. A sequence of one request is the stateless
//! case.
//!
//! Input: requests separated by `0xFE`. Each request is a selector byte,
//! then up to four fields separated by `0xFF`: query, content-type field,
//! body, Authorization header (absent when the field is). Selector bits:
//!
//! | bits  | meaning |
//! |-------|---------|
//! | 0–1   | 0 `POST /api/oauth2/authorize`, 1 `POST /api/oauth2/token`, 2 `GET /api/items` (access), 3 `GET /open/items` (anonymous, hide_credentials, global) |
//! | 2     | plain `http` instead of `https` |
//! | 3     | decide on the head first (`body: None`); a `NeedBody` answer is then decided again with the body, as the host does |
//! | 4–5   | content type: 0 `application/json`, 1 `application/x-www-form-urlencoded`, 2 `multipart/form-data; boundary=<field>`, 3 the field itself |
//! | 6     | advance the clock 30 s first (tokens live 60 s) |
//! | 7     | other method: `PUT` on the endpoints, `POST` on the access paths |
//!
//! In the query, body and Authorization fields, `$code`, `$refresh` and
//! `$access` are replaced by the last code, refresh token and access token
//! the sequence was given (`$basic` by `webapp-client:webapp-secret` in
//! base64, `$verifier` by the RFC 7636 appendix B verifier).
//!
//! Checked: no panic; every reply's status is in 200..600, its headers are
//! valid HTTP field names and values, and its body is JSON (Kong answers
//! everything here in JSON); a `NeedBody` only when the body was not given;
//! a forwarded request's headers are valid too; an access decision is the
//! same with and without the verified-token memo; and a token just issued
//! over HTTPS is accepted at once on `/api/items`.
//!
//! With `KONG_FUZZ_TRACE` set, each decision is printed to stderr (to see
//! what a seed does: `KONG_FUZZ_TRACE=1 ./kong_endpoints seeds/kong_endpoints/*`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use warden_engine::{Decision, FixedServices, Policy, Reply, Request, VerifiedTokens};

const NOW: u64 = 1_700_000_000;
/// Requests per input beyond this are ignored (keeps an input's run short).
const MAX_REQUESTS: usize = 16;

const POLICY: &str = r#"
dialect kong
signing_key "fuzz-signing-key-0123456789abcdef-0123456789abcdef"
consumer bob {
  custom_id bob-1
  credential {
    name          webapp
    client_id     webapp-client
    client_secret webapp-secret
    redirect_uris ["https://app.example.com/callback", "http://abc.com/cb?x=1"]
  }
  credential {
    name          mobile
    client_id     mobile-client
    client_type   public
    redirect_uris ["com.example.app://callback"]
  }
}
consumer anon { username anonymous }
route api  { path_prefix /api }
route open { path_prefix /open }
rule api {
  match route [api]
  enable_authorization_code true
  enable_client_credentials true
  enable_implicit_grant     true
  enable_password_grant     true
  scopes                    [email, profile]
  mandatory_scope           true
  provision_key             provision123
  pkce                      lax
  token_expiration          60
  refresh_token_ttl         3600
  realm                     api
}
rule open {
  match route [open]
  enable_client_credentials true
  anonymous                 anon
  hide_credentials          true
  global_credentials        true
}
"#;

fn tracing() -> bool {
    static T: OnceLock<bool> = OnceLock::new();
    *T.get_or_init(|| std::env::var_os("KONG_FUZZ_TRACE").is_some())
}

fn trace(method: &str, path: &str, d: &Decision) {
    if !tracing() {
        return;
    }
    match d {
        Decision::Reply(r) => eprintln!(
            "{method} {path}: {} {} ({})",
            r.status,
            String::from_utf8_lossy(&r.body),
            r.reason
        ),
        Decision::Forward(f) => eprintln!("{method} {path}: forward {:?}", f.set_headers),
        Decision::NeedBody { max_bytes } => {
            eprintln!("{method} {path}: need the body ({max_bytes})")
        }
        Decision::RefreshKeys { url } => eprintln!("{method} {path}: fetch {url}"),
        Decision::Fetch(f) => eprintln!("{method} {path}: call {}", f.url),
    }
}

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        Policy::compile(POLICY, &FixedServices::at(NOW)).unwrap_or_else(|e| panic!("{e:?}"))
    })
}

/// What earlier replies of the sequence handed out.
#[derive(Default)]
struct Harvest {
    code: String,
    refresh: String,
    access: String,
}

impl Harvest {
    fn expand(&self, field: &[u8]) -> String {
        let text = String::from_utf8_lossy(field);
        if !text.contains('$') {
            return text.into_owned();
        }
        text.replace("$code", &self.code)
            .replace("$refresh", &self.refresh)
            .replace("$access", &self.access)
            // base64("webapp-client:webapp-secret")
            .replace("$basic", "d2ViYXBwLWNsaWVudDp3ZWJhcHAtc2VjcmV0")
            .replace("$verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    }

    /// Remember the code and tokens a reply body carries; the access token
    /// it issued, if any.
    fn take(&mut self, body: &Value) -> Option<String> {
        let mut issued = None;
        if let Some(t) = body["access_token"].as_str() {
            self.access = t.to_owned();
            issued = Some(t.to_owned());
        }
        if let Some(r) = body["refresh_token"].as_str() {
            self.refresh = r.to_owned();
        }
        if let Some(uri) = body["redirect_uri"].as_str() {
            let params = uri.split_once(['?', '#']).map_or("", |(_, p)| p);
            for (k, v) in form_urlencoded_pairs(params) {
                match k.as_str() {
                    "code" => self.code = v,
                    "access_token" => {
                        self.access = v.clone();
                        issued = Some(v);
                    }
                    _ => {}
                }
            }
        }
        issued
    }
}

/// `a=b&c=d` (with `#` as a second separator: a fragment after a query).
fn form_urlencoded_pairs(s: &str) -> Vec<(String, String)> {
    s.split(['&', '#'])
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let dec = |x: &str| {
                percent_decode(x.as_bytes())
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_else(|| x.to_owned())
            };
            Some((dec(k), dec(v)))
        })
        .collect()
}

fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// RFC 9110 `token` characters.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// What `http::HeaderValue` accepts: no control character but HTAB.
fn valid_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (b >= 0x20 && b != 0x7f) || b == b'\t')
}

fn check_headers(headers: &[(String, String)], what: &str) {
    for (n, v) in headers {
        assert!(valid_name(n), "{what}: invalid header name {n:?}");
        assert!(valid_value(v), "{what}: invalid value of header {n}: {v:?}");
    }
}

/// A well-formed Kong reply; its body as JSON.
fn check_reply(r: &Reply) -> Value {
    assert!((200..600).contains(&r.status), "status {}", r.status);
    check_headers(&r.headers, "reply");
    let json: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
        panic!(
            "{} reply body is not JSON ({e}): {:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        )
    });
    let ct = r
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    assert!(
        ct.is_some_and(|(_, v)| v.starts_with("application/json")),
        "{} reply with content type {ct:?}",
        r.status
    );
    json
}

fn check(decision: &Decision, body_given: bool) -> Option<Value> {
    match decision {
        Decision::Reply(r) => Some(check_reply(r)),
        Decision::Forward(f) => {
            check_headers(&f.set_headers, "forward");
            for n in &f.remove_headers {
                assert!(
                    valid_name(n),
                    "forward: invalid header name to remove {n:?}"
                );
            }
            None
        }
        Decision::NeedBody { .. } => {
            assert!(!body_given, "NeedBody although the body was given");
            None
        }
        // The Kong dialect has no external issuers or introspection.
        Decision::RefreshKeys { .. } | Decision::Fetch(_) => {
            panic!("a Kong-dialect policy asked for an outbound call: {decision:?}")
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let policy = policy();
    let mut services = FixedServices::at(NOW);
    let mut memo = VerifiedTokens::new(VerifiedTokens::DEFAULT_CAPACITY);
    let mut harvest = Harvest::default();

    for one in data.split(|&b| b == 0xFE).take(MAX_REQUESTS) {
        let Some((&selector, rest)) = one.split_first() else {
            continue;
        };
        let mut fields = rest.splitn(4, |&b| b == 0xFF);
        let query = harvest.expand(fields.next().unwrap_or_default());
        let ct_field = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
        let body = harvest.expand(fields.next().unwrap_or_default());
        let authorization = fields.next().map(|a| harvest.expand(a));

        let kind = selector & 3;
        let endpoint = kind < 2;
        let path = [
            "/api/oauth2/authorize",
            "/api/oauth2/token",
            "/api/items",
            "/open/items",
        ][kind as usize];
        let method = match (endpoint, selector & 0x80 != 0) {
            (true, false) | (false, true) => "POST",
            (true, true) => "PUT",
            (false, false) => "GET",
        };
        let content_type = match (selector >> 4) & 3 {
            0 => "application/json".to_owned(),
            1 => "application/x-www-form-urlencoded".to_owned(),
            2 => format!("multipart/form-data; boundary={ct_field}"),
            _ => ct_field,
        };
        if selector & 0x40 != 0 {
            services.now += 30;
        }
        let mut headers = vec![("content-type", content_type.as_str())];
        if let Some(a) = &authorization {
            headers.push(("authorization", a.as_str()));
        }
        let req = Request {
            method,
            scheme: if selector & 4 != 0 { "http" } else { "https" },
            authority: "kong.test",
            path,
            query: &query,
            headers: &headers,
            body: Some(body.as_bytes()),
            ..Default::default()
        };

        let mut decision = None;
        if selector & 8 != 0 {
            let head = Request { body: None, ..req };
            let d = policy.decide(&head, &services);
            trace(method, path, &d);
            check(&d, false);
            if !matches!(d, Decision::NeedBody { .. }) {
                decision = Some(d);
            }
        }
        let decision = decision.unwrap_or_else(|| {
            let d = policy.decide(&req, &services);
            trace(method, path, &d);
            check(&d, true);
            d
        });
        if !endpoint {
            // Access decisions touch no state: the memo changes nothing.
            let remembered = policy.decide_with(&req, &services, &mut memo);
            assert_eq!(decision, remembered, "the memo changed an access decision");
            continue;
        }
        let Decision::Reply(reply) = &decision else {
            panic!("{path} answered {decision:?}");
        };
        let json: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        let issued = harvest.take(&json);
        if let Some(token) = issued.filter(|_| reply.status == 200 && req.scheme == "https") {
            let bearer = format!("Bearer {token}");
            let use_it = Request {
                method: "GET",
                scheme: "https",
                authority: "kong.test",
                path: "/api/items",
                headers: &[("authorization", bearer.as_str())],
                ..Default::default()
            };
            let d = policy.decide(&use_it, &services);
            trace("GET", "/api/items (the token just issued)", &d);
            check(&d, false);
            assert!(
                matches!(d, Decision::Forward(_)),
                "a token just issued ({}) is refused: {d:?}",
                reply.reason
            );
        }
    }
});
