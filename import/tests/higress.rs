//! `higress_to_policy`: every example of the Higress oauth2 page
//! (higress.io, "OAuth2 Authentication", `plugins/wasm-cpp/extensions/oauth`)
//! and of the MSE page ("Microservices Engine: OAuth plug-in") imports,
//! compiles and behaves as the page says; the imports decide like the
//! hand-written policies of `policies/`; refusals name their line and
//! column; one golden text.
//!
//! The two pages give the same six YAML blocks (the constants below, copied
//! verbatim). Instance-level blocks import as bare configurations; the
//! route- and domain-level ones are placed where the pages say, as
//! `matchRules` of a WasmPlugin, in the fixtures under `tests/higress/`
//! (which `fixtures_hold_the_pages_yaml_verbatim` checks). Requests name
//! their route as Higress's gateway does (`Request::route`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use warden_engine::fixtures::{
    CONSUMER1 as C1, CONSUMER2 as C2, HIGRESS_SAMPLE_EXP, HIGRESS_SAMPLE_IAT, HIGRESS_SAMPLE_TOKEN,
    access_token, consumer, policy_source, status, token_target,
};
use warden_engine::{Decision, FixedServices, Policy, Request};
use warden_import::{ImportError, higress_to_policy};

const NOW: u64 = 1_700_000_000;

/// Higress page, "Route Granularity Configuration Authentication" ("For the
/// two routes `route-a` and `route-b`, do the following plugin
/// configuration"); MSE page, "Route-scoped tokens".
const PAGE_ROUTE_LEVEL: &str = "consumers:
- name: consumer1
  client_id: 12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx
  client_secret: abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx
";

/// Higress page, same section ("If you want the same configuration to share
/// credential access permissions"); MSE page, "Shared tokens across routes".
const PAGE_SHARED: &str = "global_credentials: true
consumers:
- name: consumer1
  client_id: 12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx
  client_secret: abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx
";

/// Higress page, "Global Configuration Authentication, Route Granularity
/// Authorization", "At the instance level"; MSE page, "Instance-level
/// consumers with route-level access control", "Instance-level
/// configuration".
const PAGE_INSTANCE: &str = "global_auth: false
consumers:
- name: consumer1
  client_id: 12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx
  client_secret: abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx
- name: consumer2
  client_id: 87654321-xxxx-xxxx-xxxx-xxxxxxxxxxxx
  client_secret: hgfedcba-xxxx-xxxx-xxxx-xxxxxxxxxxxx
";

/// Same sections: "For the routes `route-a` and `route-b`" / "Route-level
/// configuration (applied to route-a and route-b)".
const PAGE_ALLOW_ROUTES: &str = "allow:
- consumer1
";

/// Same sections: "For the domains `*.example.com` and `test.com`" /
/// "Domain-level configuration".
const PAGE_ALLOW_DOMAINS: &str = "allow:
- consumer2
";

/// Higress page, "Enable at Gateway Instance Level"; MSE page, "Gateway-wide
/// authentication".
const PAGE_GATEWAY: &str = "global_auth: true
consumers:
- name: consumer1
  client_id: 12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx
  client_secret: abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx
- name: consumer2
  client_id: 87654321-xxxx-xxxx-xxxx-xxxxxxxxxxxx
  client_secret: hgfedcba-xxxx-xxxx-xxxx-xxxxxxxxxxxx
";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/higress/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A compiled policy and the clock it decides with.
struct Gw {
    policy: Policy,
    services: FixedServices,
}

fn compile(text: &str, name: &str) -> Gw {
    let services = FixedServices::at(NOW);
    let policy = Policy::compile(text, &services).unwrap_or_else(|d| {
        let shown: Vec<String> = d.iter().map(ToString::to_string).collect();
        panic!("{name} does not compile:\n{}\n{text}", shown.join("\n"))
    });
    let warnings: Vec<String> = policy.warnings().iter().map(ToString::to_string).collect();
    assert!(warnings.is_empty(), "{name}: {warnings:?}\n{text}");
    Gw { policy, services }
}

fn import_text(yaml: &str, name: &str) -> String {
    higress_to_policy(yaml, name).unwrap_or_else(|e| panic!("{e}"))
}

fn import(yaml: &str, name: &str) -> Gw {
    compile(&import_text(yaml, name), name)
}

fn import_fixture(name: &str) -> Gw {
    import(&fixture(name), name)
}

/// A policy of `policies/`, written by hand.
fn hand(name: &str) -> Gw {
    compile(&policy_source(name), name)
}

impl Gw {
    fn at(mut self, now: u64) -> Gw {
        self.services.now = now;
        self
    }

    fn call(
        &self,
        method: &str,
        host: &str,
        route: Option<&str>,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Decision {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let req = Request {
            method,
            scheme: "http",
            authority: host,
            path,
            query,
            headers,
            body: Some(body),
            route,
            ..Default::default()
        };
        self.policy.decide(&req, &self.services)
    }

    fn get(&self, host: &str, route: Option<&str>, target: &str, token: Option<&str>) -> Decision {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        self.call("GET", host, route, target, &headers, b"")
    }

    /// The token endpoint's decision for `client` (GET, as the pages' first
    /// request example).
    fn token_request(&self, host: &str, route: Option<&str>, client: (&str, &str)) -> Decision {
        self.get(host, route, &token_target("/oauth2/token", client), None)
    }

    fn token(&self, host: &str, route: Option<&str>, client: (&str, &str)) -> String {
        access_token(&self.token_request(host, route, client)).unwrap()
    }

    /// (status, consumer): 0 and the consumer for a forward.
    fn outcome(
        &self,
        host: &str,
        route: Option<&str>,
        token: Option<&str>,
    ) -> (u16, Option<String>) {
        let d = self.get(host, route, "/x", token);
        (status(&d), d.forward().and_then(|f| f.consumer.clone()))
    }
}

fn reply_of(d: &Decision) -> (u16, String) {
    let r = d
        .reply()
        .unwrap_or_else(|| panic!("expected a reply, got {d:?}"));
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

/// The JSON payload of a JWT, as text (base64url, no padding).
fn payload(token: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let part = token.split('.').nth(1).unwrap();
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in part.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(&pad);
        out.push_str(line);
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------
// The pages' YAML, as given

#[test]
fn fixtures_hold_the_pages_yaml_verbatim() {
    for (file, blocks) in [
        ("route-granularity.yaml", vec![(PAGE_ROUTE_LEVEL, 6)]),
        ("shared-tokens.yaml", vec![(PAGE_SHARED, 6)]),
        (
            "demo.yaml",
            vec![
                (PAGE_INSTANCE, 4),
                (PAGE_ALLOW_ROUTES, 6),
                (PAGE_ALLOW_DOMAINS, 6),
            ],
        ),
        ("gateway-wide.yaml", vec![(PAGE_GATEWAY, 4)]),
    ] {
        let text = fixture(file);
        for (block, by) in blocks {
            assert!(text.contains(&indent(block, by)), "{file} lacks\n{block}");
        }
    }
}

#[test]
fn every_instance_level_block_imports_bare_and_compiles() {
    // As MSE's console takes them: a configuration of the instance.
    for (name, yaml) in [
        ("route-level.yaml", PAGE_ROUTE_LEVEL),
        ("shared.yaml", PAGE_SHARED),
        ("instance.yaml", PAGE_INSTANCE),
        ("gateway.yaml", PAGE_GATEWAY),
    ] {
        import(yaml, name);
    }
    // Without rules and without global_auth, a configuration at the
    // instance authenticates every request ("global effect occurs only when
    // there are no domain and route configurations").
    let gw = import(PAGE_ROUTE_LEVEL, "route-level.yaml");
    assert_eq!(status(&gw.get("test.com", None, "/", None)), 401);
    let t1 = gw.token("test.com", None, C1);
    assert_eq!(
        gw.outcome("other.test", Some("route-z"), Some(&t1)),
        (0, Some("consumer1".into()))
    );
    // `global_auth: false` and no rules: nothing is checked.
    let gw = import(PAGE_INSTANCE, "instance.yaml");
    assert_eq!(gw.outcome("test.com", Some("route-a"), None), (0, None));
}

#[test]
fn the_rule_level_blocks_are_refused_at_the_instance() {
    // "Can only be configured on fine-grained rules such as routes or domains."
    for block in [PAGE_ALLOW_ROUTES, PAGE_ALLOW_DOMAINS] {
        let e = higress_to_policy(block, "allow.yaml").unwrap_err();
        assert_eq!((e.line, e.column), (1, Some(1)), "{e}");
        assert!(e.message.contains("`allow` is rule-level only"), "{e}");
    }
}

// ---------------------------------------------------------------------------
// Behaviour, as the pages describe it

#[test]
fn global_authentication_route_and_domain_authorization() {
    let gw = import_fixture("demo.yaml");
    let t1 = gw.token("gw.test", Some("route-a"), C1);
    // consumer2 by POST, as the pages' second request example, on test.com.
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        C2.0, C2.1
    );
    let post = gw.call(
        "POST",
        "test.com",
        None,
        "/oauth2/token",
        &[("content-type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    let t2 = access_token(&post).unwrap();

    // "When these two routes are matched, it will allow access for the
    // caller with name as consumer1, and other callers will not be allowed."
    for route in ["route-a", "route-b"] {
        let ok = gw.get("gw.test", Some(route), "/items", Some(&t1));
        assert_eq!(consumer(&ok), Some("consumer1"));
        assert_eq!(
            ok.forward().unwrap().set_headers,
            vec![("x-mse-consumer".to_owned(), "consumer1".to_owned())]
        );
        let denied = gw.get("gw.test", Some(route), "/items", Some(&t2));
        assert_eq!(reply_of(&denied), (403, "Access Denied".to_owned()));
        let missing = gw.get("gw.test", Some(route), "/items", None);
        assert_eq!(reply_of(&missing), (401, "Invalid Jwt token".to_owned()));
        assert_eq!(
            missing.reply().unwrap().header("www-authenticate"),
            Some("Bearer realm=\"http://gw.test/items\"")
        );
    }
    // "When a matching domain is found, it will allow access for the caller
    // with name as consumer2."
    for host in ["api.example.com", "a.b.example.com:8443", "test.com"] {
        assert_eq!(
            gw.outcome(host, None, Some(&t2)),
            (0, Some("consumer2".into())),
            "{host}"
        );
        assert_eq!(gw.outcome(host, None, Some(&t1)).0, 403, "{host}");
        assert_eq!(gw.outcome(host, None, None).0, 401, "{host}");
    }
    // `*.example.com` is a suffix: not the bare domain. global_auth false:
    // what no rule matches passes without a token.
    assert_eq!(gw.outcome("example.com", None, None), (0, None));
    assert_eq!(gw.outcome("gw.test", Some("route-c"), None), (0, None));
    // The route rule comes first: on route-a at test.com, consumer1 it is.
    assert_eq!(
        gw.outcome("test.com", Some("route-a"), Some(&t1)),
        (0, Some("consumer1".into()))
    );
}

#[test]
fn the_pages_sample_token_is_accepted_while_valid() {
    // Issued by a Higress gateway to consumer1 (aud `default`).
    let gw = import_fixture("demo.yaml").at(HIGRESS_SAMPLE_IAT + 10);
    assert_eq!(
        gw.outcome("gw.test", Some("route-a"), Some(HIGRESS_SAMPLE_TOKEN)),
        (0, Some("consumer1".into()))
    );
    let gw = gw.at(HIGRESS_SAMPLE_EXP + 60 + 1);
    assert_eq!(
        gw.outcome("gw.test", Some("route-a"), Some(HIGRESS_SAMPLE_TOKEN))
            .0,
        401
    );
}

#[test]
fn the_pages_request_examples_at_the_gateway_instance_level() {
    // "requiring all requests to be authenticated before access"
    let gw = import_fixture("gateway-wide.yaml");
    for (host, route) in [("test.com", None), ("any.test", Some("route-z"))] {
        assert_eq!(
            reply_of(&gw.get(host, route, "/", None)),
            (401, "Invalid Jwt token".to_owned())
        );
    }
    // curl 'http://test.com/oauth2/token?grant_type=client_credentials&…'
    let d = gw.token_request("test.com", None, C1);
    let (code, body) = reply_of(&d);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"token_type\":\"bearer\""), "{body}");
    assert!(body.contains("\"expires_in\":7200"), "{body}");
    let t1 = access_token(&d).unwrap();
    let claims = payload(&t1);
    for claim in [
        "\"aud\":\"default\"",
        "\"iss\":\"Higress-Gateway\"",
        "\"sub\":\"consumer1\"",
        "\"client_id\":\"12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx\"",
    ] {
        assert!(claims.contains(claim), "{claims}");
    }
    // curl 'http://test.com' -H 'Authorization: Bearer …'
    assert_eq!(
        gw.outcome("test.com", None, Some(&t1)),
        (0, Some("consumer1".into()))
    );
    let t2 = gw.token("other.test", Some("route-q"), C2);
    assert_eq!(
        gw.outcome("test.com", Some("route-a"), Some(&t2)),
        (0, Some("consumer2".into()))
    );
    let gw = gw.at(HIGRESS_SAMPLE_IAT + 100);
    assert_eq!(
        gw.outcome("test.com", None, Some(HIGRESS_SAMPLE_TOKEN)),
        (0, Some("consumer1".into()))
    );
}

#[test]
fn shared_tokens_with_global_credentials_true() {
    // "If you want the same configuration to share credential access
    // permissions": a token of route-a is good on route-b.
    let gw = import_fixture("shared-tokens.yaml");
    let ta = gw.token("gw.test", Some("route-a"), C1);
    assert!(payload(&ta).contains("\"aud\":\"default\""));
    for route in ["route-a", "route-b"] {
        assert_eq!(
            gw.outcome("gw.test", Some(route), Some(&ta)),
            (0, Some("consumer1".into()))
        );
        assert_eq!(gw.outcome("gw.test", Some(route), None).0, 401);
    }
    // Other routes are not configured: they pass.
    assert_eq!(gw.outcome("gw.test", Some("route-c"), None), (0, None));
    // consumer2 is not a consumer of this configuration.
    assert_eq!(
        status(&gw.token_request("gw.test", Some("route-a"), C2)),
        400
    );
}

#[test]
fn route_scoped_tokens_with_global_credentials_false() {
    // "the credentials issued under route-a cannot be used to access
    // route-b, and vice versa" — with `global_credentials: false`.
    let gw = import_fixture("route-scoped.yaml");
    let ta = gw.token("gw.test", Some("route-a"), C1);
    let tb = gw.token("gw.test", Some("route-b"), C1);
    assert!(payload(&ta).contains("\"aud\":\"route-a\""));
    assert!(payload(&tb).contains("\"aud\":\"route-b\""));
    assert_eq!(
        gw.outcome("gw.test", Some("route-a"), Some(&ta)),
        (0, Some("consumer1".into()))
    );
    assert_eq!(
        gw.outcome("gw.test", Some("route-b"), Some(&tb)),
        (0, Some("consumer1".into()))
    );
    assert_eq!(gw.outcome("gw.test", Some("route-b"), Some(&ta)).0, 401);
    assert_eq!(gw.outcome("gw.test", Some("route-a"), Some(&tb)).0, 401);
    // The pages' sample token has aud `default`: not valid on either.
    let gw = gw.at(HIGRESS_SAMPLE_IAT + 10);
    assert_eq!(
        gw.outcome("gw.test", Some("route-a"), Some(HIGRESS_SAMPLE_TOKEN))
            .0,
        401
    );
}

#[test]
fn the_first_example_as_written_shares_tokens_as_its_field_table_says() {
    // The pages' first example sets no global_credentials, and claims
    // route-scoped tokens; their field table (and Higress's C++ plugin)
    // default global_credentials to true, which shares them. The import
    // follows the default, and says so in the rule.
    let text = import_text(&fixture("route-granularity.yaml"), "r.yaml");
    assert!(
        text.contains("# global_credentials unset: Higress's default (true)"),
        "{text}"
    );
    let gw = compile(&text, "r.yaml");
    let ta = gw.token("gw.test", Some("route-a"), C1);
    assert_eq!(
        gw.outcome("gw.test", Some("route-b"), Some(&ta)),
        (0, Some("consumer1".into()))
    );
}

// ---------------------------------------------------------------------------
// Equivalence with the hand-written scenario policies

/// Every token both gateways issue (by route and host), then every request
/// with each of them, none, or garbage, on routes and hosts the examples
/// name: the same status and consumer from both, each accepting the
/// other's tokens.
fn assert_equivalent(imported: &Gw, written: &Gw, what: &str) {
    let routes = [Some("route-a"), Some("route-b"), Some("route-c"), None];
    let hosts = ["gw.test", "api.example.com", "test.com", "example.com"];
    let mut tokens: Vec<Option<String>> = vec![None, Some("garbage".into())];
    for client in [C1, C2] {
        for route in routes {
            for host in ["gw.test", "test.com"] {
                let a = imported.token_request(host, route, client);
                let b = written.token_request(host, route, client);
                assert_eq!(
                    status(&a),
                    status(&b),
                    "{what}: token for {} on {route:?} at {host}",
                    client.0
                );
                for d in [a, b] {
                    if let Ok(t) = access_token(&d) {
                        tokens.push(Some(t));
                    }
                }
            }
        }
    }
    assert!(tokens.len() > 2, "{what}: no token issued");
    for token in &tokens {
        for route in routes {
            for host in hosts {
                assert_eq!(
                    imported.outcome(host, route, token.as_deref()),
                    written.outcome(host, route, token.as_deref()),
                    "{what}: {route:?} at {host} with {token:?}"
                );
            }
        }
    }
}

#[test]
fn imports_decide_like_the_hand_written_policies() {
    for (yaml, policy) in [
        ("demo.yaml", "demo.policy"),
        ("demo-rules.yaml", "demo.policy"),
        ("gateway-wide.yaml", "gateway-wide.policy"),
        ("shared-tokens.yaml", "shared-tokens.policy"),
        ("route-scoped.yaml", "route-scoped.policy"),
        // As written, the first example is the shared-tokens scenario.
        ("route-granularity.yaml", "shared-tokens.policy"),
    ] {
        assert_equivalent(&import_fixture(yaml), &hand(policy), yaml);
    }
}

#[test]
fn the_rules_form_is_the_resource_form() {
    // Same policy, but for the header and the rules' source comments.
    let strip = |t: String| -> Vec<String> {
        t.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        strip(import_text(&fixture("demo.yaml"), "a")),
        strip(import_text(&fixture("demo-rules.yaml"), "b"))
    );
}

// ---------------------------------------------------------------------------
// Fields and rules beyond the pages' examples

#[test]
fn global_auth_unset_true_and_false() {
    let yaml = |global: &str| {
        format!(
            "{global}consumers:
- name: consumer1
  client_id: {}
  client_secret: {}
_rules_:
- _match_route_: [route-a]
  allow: [consumer1]
",
            C1.0, C1.1
        )
    };
    // Unset, with rules: only what a rule matches authenticates.
    let gw = import(&yaml(""), "unset.yaml");
    assert_eq!(gw.outcome("gw.test", Some("route-a"), None).0, 401);
    assert_eq!(gw.outcome("gw.test", Some("route-b"), None), (0, None));
    // true: everything authenticates, and the rules restrict further.
    let gw = import(&yaml("global_auth: true\n"), "true.yaml");
    assert_eq!(gw.outcome("gw.test", Some("route-b"), None).0, 401);
    let t = gw.token("gw.test", Some("route-b"), C1);
    assert_eq!(
        gw.outcome("gw.test", Some("route-b"), Some(&t)),
        (0, Some("consumer1".into()))
    );
    // false: as unset here.
    let gw = import(&yaml("global_auth: false\n"), "false.yaml");
    assert_eq!(gw.outcome("gw.test", Some("route-b"), None), (0, None));
    assert_eq!(gw.outcome("gw.test", Some("route-a"), None).0, 401);
}

#[test]
fn every_setting_maps_and_rules_do_not_inherit_the_instance() {
    let yaml = "
spec:
  defaultConfig:
    global_auth: true
    issuer: https://gw.example
    auth_path: token
    global_credentials: false
    auth_header_name: X-Token
    token_ttl: 60
    clock_skew_seconds: 5
    keep_token: false
    consumers:
    - name: consumer1
      client_id: 12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx
      client_secret: abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx
  matchRules:
  - service: [orders.default.svc.cluster.local:8080]
    config:
      token_ttl: 120
      consumers:
      - name: consumer2
        client_id: 87654321-xxxx-xxxx-xxxx-xxxxxxxxxxxx
        client_secret: hgfedcba-xxxx-xxxx-xxxx-xxxxxxxxxxxx
apiVersion: extensions.higress.io/v1alpha1
kind: WasmPlugin
";
    let text = import_text(yaml, "settings.yaml");
    for line in [
        "issuer https://gw.example\nauth_path /token\nglobal_credentials false\nauth_header_name X-Token\ntoken_ttl 60\nclock_skew_seconds 5\nkeep_token false\n",
        "  match service [orders.default.svc.cluster.local:8080]\n  token_ttl 120\n  # Higress's defaults: a rule does not inherit spec.defaultConfig's settings\n  issuer Higress-Gateway\n  auth_path /oauth2/token\n  global_credentials true\n  auth_header_name Authorization\n  clock_skew_seconds 60\n  keep_token true\n",
        "# auth_path `token` as Higress reads it: `/token` (it adds the leading `/`)\n",
    ] {
        assert!(text.contains(line), "{line}\nnot in\n{text}");
    }
    let gw = compile(&text, "settings.yaml");
    // The instance: its path, issuer, lifetime, header; the token is bound
    // to the route (global_credentials false) and removed upstream.
    let d = gw.get(
        "gw.test",
        Some("route-a"),
        &token_target("/api/token", C1),
        None,
    );
    let (code, body) = reply_of(&d);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"expires_in\":60"), "{body}");
    let t1 = access_token(&d).unwrap();
    assert!(payload(&t1).contains("\"iss\":\"https://gw.example\""));
    assert!(payload(&t1).contains("\"aud\":\"route-a\""));
    let header = format!("Bearer {t1}");
    let ok = gw.call(
        "GET",
        "gw.test",
        Some("route-a"),
        "/x",
        &[("X-Token", &header)],
        b"",
    );
    assert_eq!(consumer(&ok), Some("consumer1"));
    assert!(
        ok.forward()
            .unwrap()
            .remove_headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("x-token"))
    );
    assert_eq!(gw.outcome("gw.test", Some("route-a"), Some(&t1)).0, 401);
    // The rule, on its service: Higress's defaults but its own token_ttl.
    let on_service = |gw: &Gw, target: &str, headers: &[(&str, &str)]| {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let req = Request {
            method: "GET",
            scheme: "http",
            authority: "gw.test",
            path,
            query,
            headers,
            body: Some(b""),
            route: Some("orders"),
            service: Some("orders.default.svc.cluster.local:8080"),
            ..Default::default()
        };
        gw.policy.decide(&req, &gw.services)
    };
    let d = on_service(&gw, &token_target("/oauth2/token", C2), &[]);
    assert!(reply_of(&d).1.contains("\"expires_in\":120"));
    let t2 = access_token(&d).unwrap();
    assert!(payload(&t2).contains("\"iss\":\"Higress-Gateway\""));
    assert!(payload(&t2).contains("\"aud\":\"default\""));
    let header = format!("Bearer {t2}");
    let ok = on_service(&gw, "/x", &[("Authorization", &header)]);
    assert_eq!(consumer(&ok), Some("consumer2"));
    let removed = &ok.forward().unwrap().remove_headers;
    assert!(
        !removed
            .iter()
            .any(|h| h.eq_ignore_ascii_case("authorization")),
        "{removed:?}"
    );
    // consumer1 belongs to the instance, not to the rule.
    let d = on_service(&gw, &token_target("/oauth2/token", C1), &[]);
    assert_eq!(status(&d), 400);
}

#[test]
fn rules_disable_and_are_left_out() {
    let yaml = format!(
        "apiVersion: extensions.higress.io/v1alpha1
kind: WasmPlugin
spec:
  defaultConfig:
    global_auth: true
    consumers:
    - name: consumer1
      client_id: {}
      client_secret: {}
  matchRules:
  - ingress: [health]
    config:
      _disable_: true
  - ingress: [route-a]
    configDisable: true
    config:
      allow: [nobody]
  - ingress: [closed]
  - ingress: [route-a, route-b]
    service: [a.svc]
    config: {{allow: [consumer1]}}
",
        C1.0, C1.1
    );
    let text = import_text(&yaml, "d.yaml");
    assert!(text.contains(
        "# from matchRules[1] (ingress: route-a): `configDisable: true`, so Higress leaves this rule out\n"
    ));
    assert!(text.contains("  match route [health]\n  disable\n"));
    assert!(text.contains("  match route [closed]\n  # no `allow` and no `consumers`: Higress admits no consumer here (401 without a valid token, 403 with one)\n  allow []\n"));
    assert!(text.contains("# from matchRules[3] (ingress: route-a, route-b; service: a.svc)\nrule {\n  match route [route-a, route-b]\n  match service [a.svc]\n  allow [consumer1]\n}\n"));
    let gw = compile(&text, "d.yaml");
    assert_eq!(gw.outcome("gw.test", Some("health"), None), (0, None));
    let t = gw.token("gw.test", Some("route-q"), C1);
    assert_eq!(gw.outcome("gw.test", Some("closed"), None).0, 401);
    assert_eq!(gw.outcome("gw.test", Some("closed"), Some(&t)).0, 403);
    assert_eq!(
        gw.outcome("gw.test", Some("route-a"), Some(&t)),
        (0, Some("consumer1".into()))
    );
    assert_eq!(gw.outcome("gw.test", Some("route-a"), None).0, 401);
}

#[test]
fn plugin_config_and_route_prefixes() {
    let yaml = format!(
        "apiVersion: extensions.higress.io/v1alpha1
kind: WasmPlugin
metadata: {{name: oauth}}
spec:
  priority: 350
  phase: AUTHN
  pluginConfig:
    consumers:
    - {{name: consumer1, client_id: {}, client_secret: {}}}
    global_auth: false
    _rules_:
    - _match_route_prefix_: [api-]
      allow: [consumer1]
",
        C1.0, C1.1
    );
    let text = import_text(&yaml, "p.yaml");
    assert!(text.starts_with("# generated by warden import higress from p.yaml\n# Higress WasmPlugin oauth: spec.pluginConfig is the whole configuration; its fields are the instance's, each `_rules_` entry a rule (the first that matches wins)\n# left out (how Higress loads the Wasm module, not what it decides): priority, phase\n"), "{text}");
    assert!(text.contains("# from spec.pluginConfig._rules_[0] (_match_route_prefix_: api-)\nrule {\n  match route_prefix [api-]\n"));
    let gw = compile(&text, "p.yaml");
    assert_eq!(gw.outcome("gw.test", Some("api-orders"), None).0, 401);
    assert_eq!(gw.outcome("gw.test", Some("web"), None), (0, None));
}

#[test]
fn disabled_default_config_leaves_rules_of_their_own() {
    let yaml = format!(
        "apiVersion: extensions.higress.io/v1alpha1
kind: WasmPlugin
spec:
  defaultConfigDisable: true
  defaultConfig:
    global_auth: true
  matchRules:
  - domain: [\"api*\"]
    config:
      consumers:
      - name: consumer1
        client_id: {}
        client_secret: {}
",
        C1.0, C1.1
    );
    let gw = import(&yaml, "off.yaml");
    assert_eq!(gw.outcome("web.test", None, None), (0, None));
    assert_eq!(gw.outcome("api.test", None, None).0, 401);
    let t = gw.token("api.test", None, C1);
    assert_eq!(
        gw.outcome("api2.test", None, Some(&t)),
        (0, Some("consumer1".into()))
    );
}

// ---------------------------------------------------------------------------
// Refusals, each at its line and column

struct Case {
    name: &'static str,
    yaml: String,
    at: (usize, usize),
    message: &'static str,
}

fn case(
    name: &'static str,
    yaml: impl Into<String>,
    at: (usize, usize),
    message: &'static str,
) -> Case {
    Case {
        name,
        yaml: yaml.into(),
        at,
        message,
    }
}

/// A WasmPlugin head; `spec:` is its line 3.
const HEAD: &str = "apiVersion: extensions.higress.io/v1alpha1
kind: WasmPlugin
spec:
  defaultConfig:
    consumers:
    - name: consumer1
      client_id: id-1
      client_secret: secret-1
";

fn with_rules(rules: &str) -> String {
    format!("{HEAD}  matchRules:\n{rules}")
}

fn cases() -> Vec<Case> {
    vec![
        case(
            "not a mapping",
            "- a\n",
            (1, 1),
            "must be a WasmPlugin resource",
        ),
        case("bad YAML", "consumers: [\n", (2, 1), "invalid YAML"),
        case(
            "istio's WasmPlugin",
            "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nspec: {}\n",
            (1, 13),
            "`apiVersion` must be `extensions.higress.io/v1alpha1`",
        ),
        case(
            "another kind",
            "apiVersion: extensions.higress.io/v1alpha1\nkind: McpBridge\nspec: {}\n",
            (2, 7),
            "`kind` must be `WasmPlugin`, found `McpBridge`",
        ),
        case(
            "no spec",
            "apiVersion: extensions.higress.io/v1alpha1\nkind: WasmPlugin\n",
            (1, 1),
            "needs a `spec`",
        ),
        case(
            "unknown spec field",
            format!("{HEAD}  matchRule: []\n"),
            (9, 3),
            "unknown field `matchRule` (did you mean `matchRules`?)",
        ),
        case(
            "fail open",
            format!("{HEAD}  failStrategy: FAIL_OPEN\n"),
            (9, 17),
            "Warden fails closed",
        ),
        case(
            "pluginConfig beside defaultConfig",
            format!("{HEAD}  pluginConfig: {{}}\n"),
            (4, 3),
            "`spec.defaultConfig` beside `spec.pluginConfig`",
        ),
        case(
            "unknown instance field",
            "consumers: []\nglobal_auth: false\nconsumer: x\n",
            (3, 1),
            "the plugin configuration: unknown field `consumer` (did you mean `consumers`?)",
        ),
        case(
            "allow at the instance",
            format!("{HEAD}    allow: [consumer1]\n"),
            (9, 5),
            "spec.defaultConfig: `allow` is rule-level only",
        ),
        case(
            "global_auth in a rule",
            with_rules("  - ingress: [a]\n    config:\n      global_auth: true\n"),
            (12, 7),
            "matchRules[0].config: `global_auth` is instance-level only",
        ),
        case(
            "global_auth not a boolean",
            "global_auth: \"true\"\nconsumers: []\n",
            (1, 14),
            "`global_auth` must be `true` or `false`, found a string",
        ),
        case(
            "token_ttl as a string",
            "token_ttl: \"7200\"\n",
            (1, 12),
            "`token_ttl` must be a number, found a string",
        ),
        case(
            "token_ttl zero",
            "token_ttl: 0\n",
            (1, 12),
            "`token_ttl` must be at least 1",
        ),
        case(
            "clock skew too long",
            "clock_skew_seconds: 99999999999\n",
            (1, 21),
            "more than a policy holds",
        ),
        case(
            "empty auth_path",
            "auth_path: \"\"\n",
            (1, 12),
            "an empty `auth_path` becomes `/` in Higress",
        ),
        case(
            "auth_path with a query",
            "auth_path: /token?x=1\n",
            (1, 12),
            "must be a plain path suffix",
        ),
        case(
            "bad header name",
            "auth_header_name: \"X Token\"\n",
            (1, 19),
            "must be a header name",
        ),
        case(
            "both header names",
            "auth_header_name: A\nauth_header: B\n",
            (2, 1),
            "are the same setting",
        ),
        case(
            "consumer without a secret",
            "consumers:\n- name: consumer1\n  client_id: id-1\n",
            (2, 3),
            "consumers[0] has no `client_secret`",
        ),
        case(
            "unknown consumer field",
            "consumers:\n- name: consumer1\n  client_id: id-1\n  client_secret: s\n  credential: x\n",
            (5, 3),
            "consumers[0]: unknown field `credential`",
        ),
        case(
            "duplicate consumer name",
            format!("{HEAD}    - name: consumer1\n      client_id: id-2\n      client_secret: s\n"),
            (9, 7),
            "consumers[1]: the name `consumer1` is also consumers[0]'s",
        ),
        case(
            "duplicate client_id",
            format!("{HEAD}    - name: consumer2\n      client_id: id-1\n      client_secret: s\n"),
            (10, 7),
            "the client_id `id-1` is also consumers[0]'s",
        ),
        case(
            "client_id as a number",
            "consumers:\n- name: consumer1\n  client_id: 12345\n  client_secret: s\n",
            (3, 14),
            "`client_id` must be a string, found a number",
        ),
        case(
            "a rule matching nothing",
            with_rules("  - config:\n      allow: [consumer1]\n"),
            (10, 5),
            "matchRules[0] matches nothing: it needs one of `ingress`, `domain`, `service`",
        ),
        case(
            "a rule with empty match lists",
            with_rules("  - ingress: []\n    domain: []\n"),
            (10, 5),
            "matches nothing",
        ),
        case(
            "ingress and domain",
            with_rules(
                "  - ingress: [a]\n    domain: [b.test]\n    config: {allow: [consumer1]}\n",
            ),
            (11, 5),
            "matches by `domain` beside `ingress`: Higress would silently ignore `domain`",
        ),
        case(
            "service and domain",
            with_rules("  - domain: [b.test]\n    service: [s]\n"),
            (10, 5),
            "matches by `domain` beside `service`",
        ),
        case(
            "unknown consumer in allow",
            with_rules(
                "  - ingress: [a]\n    config:\n      allow:\n      - consumer1\n      - consumr2\n",
            ),
            (14, 9),
            "no consumer `consumr2` in spec.defaultConfig's `consumers`",
        ),
        case(
            "allow with consumers",
            with_rules(
                "  - ingress: [a]\n    config:\n      consumers: []\n      allow: [consumer1]\n",
            ),
            (13, 7),
            "`allow` and `consumers` cannot be in one rule",
        ),
        case(
            "allow with a setting",
            with_rules(
                "  - ingress: [a]\n    config:\n      allow: [consumer1]\n      keep_token: false\n",
            ),
            (12, 7),
            "`allow` and `keep_token` cannot be in one rule",
        ),
        case(
            "settings without consumers",
            with_rules("  - ingress: [a]\n    config:\n      global_credentials: false\n"),
            (12, 7),
            "has its own settings but no consumers",
        ),
        case(
            "an empty consumers list",
            with_rules("  - ingress: [a]\n    config:\n      consumers: []\n"),
            (12, 7),
            "has its own settings but no consumers",
        ),
        case(
            "allow without an instance",
            "apiVersion: extensions.higress.io/v1alpha1\nkind: WasmPlugin\nspec:\n  matchRules:\n  - ingress: [a]\n    config:\n      allow: [consumer1]\n",
            (7, 15),
            "there is no instance configuration (spec.defaultConfig)",
        ),
        case(
            "disable beside allow",
            "consumers: []\n_rules_:\n- _match_route_: [a]\n  _disable_: true\n  allow: []\n",
            (5, 3),
            "`_disable_: true` turns the plugin off for this rule, so Higress ignores `allow`",
        ),
        case(
            "a domain with a port",
            with_rules("  - domain:\n    - test.com:8080\n"),
            (11, 7),
            "a domain matches the host without its port",
        ),
        case(
            "a domain with an inner star",
            with_rules("  - domain: [\"a.*.test\"]\n"),
            (10, 14),
            "Higress treats `*` as a wildcard only at the start or the end",
        ),
        case(
            "a match key in a matchRule's config",
            with_rules("  - ingress: [a]\n    config:\n      _match_domain_: [b]\n"),
            (12, 7),
            "use `domain` beside `config`",
        ),
        case(
            "a grpc route type",
            with_rules("  - ingress: [a]\n    routeType: GRPC\n"),
            (11, 16),
            "`routeType: GRPC` has no Warden equivalent",
        ),
        case(
            "_rules_ beside matchRules",
            format!(
                "{HEAD}    _rules_: [{{_match_route_: [a]}}]\n  matchRules: [{{ingress: [b]}}]\n"
            ),
            (9, 5),
            "Higress replaces these rules by the matchRules",
        ),
        case(
            "nothing to import",
            "_rules_: []\n",
            (1, 1),
            "nothing to import",
        ),
        case(
            "a control character",
            "issuer: \"a\\u0001b\"\n",
            (1, 9),
            "contains the control character U+0001",
        ),
        case(
            "metadata typo",
            "apiVersion: extensions.higress.io/v1alpha1\nkind: WasmPlugin\nmetadata:\n  nmae: x\nspec: {}\n",
            (4, 3),
            "`metadata`: unknown field `nmae` (did you mean `name`?)",
        ),
    ]
}

#[test]
fn refusals_name_line_and_column() {
    let mut failures = Vec::new();
    for c in cases() {
        match higress_to_policy(&c.yaml, "h.yaml") {
            Ok(p) => failures.push(format!("{}: imported:\n{p}", c.name)),
            Err(ImportError {
                source_name,
                line,
                column,
                message,
            }) => {
                assert_eq!(source_name, "h.yaml");
                if (line, column) != (c.at.0, Some(c.at.1)) || !message.contains(c.message) {
                    failures.push(format!(
                        "{}: got {line}:{column:?} {message:?}, want {}:{} …{}…",
                        c.name, c.at.0, c.at.1, c.message
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_display_file_line_column() {
    let e = higress_to_policy("token_ttl: 0\n", "oauth.yaml").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("oauth.yaml:1:12: the plugin configuration: `token_ttl`"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------
// The text itself

#[test]
fn golden_global_authentication_route_and_domain_authorization() {
    let want = "\
# generated by warden import higress from demo.yaml
# Higress WasmPlugin higress-system/oauth: spec.defaultConfig is the instance, each spec.matchRules entry a rule (the first that matches wins)
# left out (how Higress loads the Wasm module, not what it decides): url oci://higress-registry.cn-hangzhou.cr.aliyuncs.com/plugins/oauth:1.0.0

# from spec.defaultConfig
global_auth false

consumer consumer1 {
  client_id 12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx
  client_secret \"abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx\"
}

consumer consumer2 {
  client_id 87654321-xxxx-xxxx-xxxx-xxxxxxxxxxxx
  client_secret \"hgfedcba-xxxx-xxxx-xxxx-xxxxxxxxxxxx\"
}

# from matchRules[0] (ingress: route-a, route-b)
rule {
  match route [route-a, route-b]
  allow [consumer1]
}

# from matchRules[1] (domain: *.example.com, test.com)
rule {
  match domain [*.example.com, test.com]
  allow [consumer2]
}
";
    assert_eq!(import_text(&fixture("demo.yaml"), "demo.yaml"), want);
}

#[test]
fn output_is_deterministic_and_quotes_what_needs_it() {
    let yaml = "consumers:
- name: team a
  client_id: \"true\"
  client_secret: 'say \"hi\"'
issuer: Higress Gateway
_rules_:
- _match_domain_: [\"*.example.com\"]
  _match_route_: []
  allow: [team a, team a]
";
    let a = import_text(yaml, "q.yaml");
    assert_eq!(a, import_text(yaml, "q.yaml"));
    for line in [
        "issuer \"Higress Gateway\"\n",
        "consumer \"team a\" {\n  client_id \"true\"\n  client_secret \"say \\\"hi\\\"\"\n}\n",
        "  allow [\"team a\"]\n",
    ] {
        assert!(a.contains(line), "{line}\nnot in\n{a}");
    }
    let gw = compile(&a, "q.yaml");
    let target =
        "/oauth2/token?grant_type=client_credentials&client_id=true&client_secret=say%20%22hi%22";
    let t = access_token(&gw.get("x.example.com", None, target, None)).unwrap();
    assert_eq!(
        gw.outcome("x.example.com", None, Some(&t)),
        (0, Some("team a".into()))
    );
}

// ---------------------------------------------------------------------------
// Properties: no panics, errors inside the file, every import compiles

mod properties {
    use proptest::prelude::*;
    use serde_norway::{Mapping, Value};
    use warden_engine::{FixedServices, Policy};
    use warden_import::higress_to_policy;

    /// Field names the importer looks at, so that random trees reach deep.
    const KEYS: &[&str] = &[
        "apiVersion",
        "kind",
        "spec",
        "pluginConfig",
        "defaultConfig",
        "defaultConfigDisable",
        "matchRules",
        "ingress",
        "domain",
        "service",
        "config",
        "configDisable",
        "routeType",
        "consumers",
        "name",
        "client_id",
        "client_secret",
        "allow",
        "global_auth",
        "issuer",
        "auth_path",
        "global_credentials",
        "auth_header_name",
        "token_ttl",
        "clock_skew_seconds",
        "keep_token",
        "_rules_",
        "_match_route_",
        "_match_domain_",
        "_match_service_",
        "_disable_",
        "x",
    ];

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z0-9./:*-]{0,12}".prop_map(Value::String),
            prop::sample::select(vec![
                "extensions.higress.io/v1alpha1",
                "WasmPlugin",
                "consumer1",
                "route-a",
                "*.example.com",
            ])
            .prop_map(|s| Value::String(s.to_owned())),
            any::<String>().prop_map(Value::String),
        ]
    }

    fn tree() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Sequence),
                prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(
                    |entries| {
                        let mut m = Mapping::new();
                        for (k, v) in entries {
                            m.insert(Value::String(k.to_owned()), v);
                        }
                        Value::Mapping(m)
                    }
                ),
            ]
        })
    }

    fn strings(pool: &'static [&'static str], max: usize) -> impl Strategy<Value = Value> {
        prop::collection::vec(prop::sample::select(pool), 0..max).prop_map(|v| {
            Value::Sequence(v.into_iter().map(|s| Value::String(s.to_owned())).collect())
        })
    }

    const NAMES: &[&str] = &["consumer1", "consumer2", "c 3", "true", "#x"];

    fn consumers() -> impl Strategy<Value = Value> {
        prop::collection::vec(
            (
                prop::sample::select(NAMES),
                prop::sample::select(&["id-1", "id-2", "id 3", "id-4"][..]),
                prop::sample::select(&["s1", "s\"2", "s 3"][..]),
            ),
            0..4,
        )
        .prop_map(|list| {
            Value::Sequence(
                list.into_iter()
                    .map(|(n, id, s)| {
                        let mut m = Mapping::new();
                        m.insert("name".into(), n.into());
                        m.insert("client_id".into(), id.into());
                        m.insert("client_secret".into(), s.into());
                        Value::Mapping(m)
                    })
                    .collect(),
            )
        })
    }

    /// Settings, some of which Warden cannot hold.
    fn settings() -> impl Strategy<Value = Vec<(&'static str, Value)>> {
        let setting = prop_oneof![
            prop::sample::select(&["Higress-Gateway", "https://gw", "a b", ""][..])
                .prop_map(|v| ("issuer", Value::from(v))),
            prop::sample::select(&["/oauth2/token", "token", "", "/a b", "/t?x"][..])
                .prop_map(|v| ("auth_path", Value::from(v))),
            any::<bool>().prop_map(|v| ("global_credentials", Value::from(v))),
            prop::sample::select(&["X-Token", "authorization", "Host", "a b"][..])
                .prop_map(|v| ("auth_header_name", Value::from(v))),
            prop::sample::select(&[0u64, 1, 7200, 4_000_000_000][..])
                .prop_map(|v| ("token_ttl", Value::from(v))),
            prop::sample::select(&[0u64, 60, 4_000_000_000][..])
                .prop_map(|v| ("clock_skew_seconds", Value::from(v))),
            any::<bool>().prop_map(|v| ("keep_token", Value::from(v))),
        ];
        prop::collection::vec(setting, 0..3)
    }

    const MATCH_NAMES: &[&str] = &[
        "route-a",
        "*.example.com",
        "api*",
        "*",
        "test.com:80",
        "[::1]",
        "a*b",
        "x y",
        "svc.ns:8080",
    ];

    fn rule() -> impl Strategy<Value = Value> {
        let matches = prop::collection::vec(
            (
                prop::sample::select(
                    &[
                        "_match_route_",
                        "_match_domain_",
                        "_match_service_",
                        "_match_route_prefix_",
                    ][..],
                ),
                strings(MATCH_NAMES, 3),
            ),
            0..3,
        );
        let action = prop_oneof![
            strings(NAMES, 3).prop_map(|a| vec![("allow", a)]),
            consumers().prop_map(|c| vec![("consumers", c)]),
            settings(),
            any::<bool>().prop_map(|d| vec![("_disable_", Value::from(d))]),
            Just(Vec::new()),
        ];
        (matches, action, action_extra()).prop_map(|(matches, action, extra)| {
            let mut m = Mapping::new();
            for (k, v) in matches.into_iter().chain(action).chain(extra) {
                m.insert(k.into(), v);
            }
            Value::Mapping(m)
        })
    }

    fn action_extra() -> impl Strategy<Value = Vec<(&'static str, Value)>> {
        prop_oneof![
            4 => Just(Vec::new()),
            1 => consumers().prop_map(|c| vec![("consumers", c)]),
        ]
    }

    /// A bare configuration, nearly valid.
    fn config() -> impl Strategy<Value = Mapping> {
        (
            consumers(),
            prop::option::of(any::<bool>()),
            settings(),
            prop::collection::vec(rule(), 0..4),
        )
            .prop_map(|(consumers, global_auth, settings, rules)| {
                let mut m = Mapping::new();
                m.insert("consumers".into(), consumers);
                if let Some(g) = global_auth {
                    m.insert("global_auth".into(), g.into());
                }
                for (k, v) in settings {
                    m.insert(k.into(), v);
                }
                if !rules.is_empty() {
                    m.insert("_rules_".into(), Value::Sequence(rules));
                }
                m
            })
    }

    /// The same, as a WasmPlugin: `_rules_` entries become matchRules.
    fn resource(mut bare: Mapping) -> String {
        let rules = bare.remove("_rules_");
        let mut match_rules = Vec::new();
        for r in rules
            .and_then(|r| r.as_sequence().cloned())
            .unwrap_or_default()
        {
            let mut rule = Mapping::new();
            let mut config = Mapping::new();
            for (k, v) in r.as_mapping().cloned().unwrap_or_default() {
                match k.as_str() {
                    Some("_match_route_") => {
                        rule.insert("ingress".into(), v);
                    }
                    Some("_match_domain_") => {
                        rule.insert("domain".into(), v);
                    }
                    Some("_match_service_") => {
                        rule.insert("service".into(), v);
                    }
                    Some("_match_route_prefix_") => {}
                    _ => {
                        config.insert(k, v);
                    }
                }
            }
            rule.insert("config".into(), Value::Mapping(config));
            match_rules.push(Value::Mapping(rule));
        }
        let mut spec = Mapping::new();
        spec.insert("defaultConfig".into(), Value::Mapping(bare));
        spec.insert("matchRules".into(), Value::Sequence(match_rules));
        let mut doc = Mapping::new();
        doc.insert("apiVersion".into(), "extensions.higress.io/v1alpha1".into());
        doc.insert("kind".into(), "WasmPlugin".into());
        doc.insert("spec".into(), Value::Mapping(spec));
        serde_norway::to_string(&Value::Mapping(doc)).unwrap()
    }

    /// An error's line is inside the file; an import always compiles.
    fn check(yaml: &str) -> Result<(), TestCaseError> {
        match higress_to_policy(yaml, "fuzz.yaml") {
            Err(e) => {
                let lines = yaml.lines().count().max(1);
                prop_assert!(
                    e.line >= 1 && e.line <= lines + 1,
                    "line {} of {}: {}",
                    e.line,
                    lines,
                    e
                );
                prop_assert!(!e.message.is_empty());
            }
            Ok(policy) => {
                let compiled = Policy::compile(&policy, &FixedServices::at(1));
                prop_assert!(
                    compiled.is_ok(),
                    "{:?}\n{}\nfrom\n{}",
                    compiled
                        .err()
                        .map(|d| d.iter().map(ToString::to_string).collect::<Vec<_>>()),
                    policy,
                    yaml
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn never_panics_on_arbitrary_text(s in "[-:a-z0-9_ \n\"'\\[\\]{},&*!|>#~.]{0,200}") {
            check(&s)?;
            check(&format!("apiVersion: extensions.higress.io/v1alpha1\nkind: WasmPlugin\n{s}"))?;
        }

        #[test]
        fn never_panics_on_random_structures(
            entries in prop::collection::vec((prop::sample::select(KEYS), tree()), 0..5),
        ) {
            let mut m = Mapping::new();
            for (k, v) in entries {
                m.insert(Value::String(k.to_owned()), v);
            }
            check(&serde_norway::to_string(&Value::Mapping(m)).unwrap())?;
        }

        #[test]
        fn nearly_valid_configurations_import_to_policies_that_compile(bare in config()) {
            check(&serde_norway::to_string(&Value::Mapping(bare.clone())).unwrap())?;
            check(&resource(bare))?;
        }
    }
}
