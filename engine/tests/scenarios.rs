//! The Higress/MSE scenarios, decided natively by the engine, on the policy
//! files under `policies/` that the README walks through.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use warden_engine::fixtures::{
    CONSUMER1 as C1, CONSUMER2 as C2, HIGRESS_SAMPLE_TOKEN as HIGRESS_SAMPLE, Scenario,
    access_token, consumer, status, token_target,
};
use warden_engine::{Decision, FixedServices, Policy, Request};

const NOW: u64 = 1_700_000_000;

struct Harness(Scenario);

impl Harness {
    fn load(name: &str) -> Harness {
        Harness(Scenario::load(name, NOW))
    }

    /// `source` compiled at `NOW` (warnings allowed).
    fn compile(source: &str) -> Harness {
        let services = FixedServices::at(NOW);
        let policy = Policy::compile(source, &services).unwrap();
        Harness(Scenario { policy, services })
    }

    fn at(mut self, now: u64) -> Self {
        self.0.services.now = now;
        self
    }

    fn call(
        &self,
        method: &str,
        authority: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Decision {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let req = Request {
            method,
            scheme: "http",
            authority,
            path,
            query,
            headers,
            body: Some(body),
            ..Default::default()
        };
        self.0.decide(&req)
    }

    fn get(&self, authority: &str, target: &str, token: Option<&str>) -> Decision {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        self.call("GET", authority, target, &headers, b"")
    }

    /// A token from the token endpoint at `authority` + `path` (GET).
    fn token(&self, authority: &str, path: &str, client: (&str, &str)) -> String {
        access_token(&self.get(authority, &token_target(path, client), None)).unwrap()
    }
}

fn claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn demo_route_and_domain_authorization() {
    let gw = Harness::load("demo.policy");
    let t1 = gw.token("localhost", "/a/oauth2/token", C1);
    let t2 = gw.token("test.com", "/oauth2/token", C2);

    let ok = gw.get("localhost:8080", "/a/items", Some(&t1));
    assert_eq!(consumer(&ok), Some("consumer1"));
    let f = ok.forward().unwrap();
    assert_eq!(
        f.set_headers,
        vec![("x-mse-consumer".to_string(), "consumer1".to_string())]
    );
    assert_eq!(
        (f.route.as_deref(), f.upstream.as_ref()),
        (Some("route-a"), Some(&warden_engine::Upstream::Echo))
    );
    assert_eq!(
        consumer(&gw.get("localhost", "/b", Some(&t1))),
        Some("consumer1")
    );

    let denied = gw.get("localhost", "/a", Some(&t2));
    let r = denied.reply().unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (403, b"Access Denied".as_slice())
    );
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .starts_with("Bearer realm=\"http://localhost/a\"")
    );

    let missing = gw.get("localhost", "/a", None);
    let r = missing.reply().unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (401, b"Invalid Jwt token".as_slice())
    );
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"http://localhost/a\"")
    );
    let bad = gw.get("localhost", "/a", Some("not-a-token"));
    assert!(
        bad.reply()
            .unwrap()
            .header("www-authenticate")
            .unwrap()
            .ends_with("error=\"invalid_token\"")
    );

    assert_eq!(
        consumer(&gw.get("api.example.com", "/x", Some(&t2))),
        Some("consumer2")
    );
    assert_eq!(
        consumer(&gw.get("API.EXAMPLE.COM:8443", "/x", Some(&t2))),
        Some("consumer2")
    );
    assert_eq!(
        consumer(&gw.get("test.com", "/", Some(&t2))),
        Some("consumer2")
    );
    assert_eq!(status(&gw.get("a.b.example.com", "/", Some(&t1))), 403);
    assert_eq!(
        status(&gw.get("example.com", "/", None)),
        0,
        "the bare domain is not under *.example.com"
    );

    // Unruled: passes without a token, and a spoofed consumer header is removed.
    let open = gw.call(
        "GET",
        "localhost",
        "/public",
        &[("X-Mse-Consumer", "admin")],
        b"",
    );
    let f = open.forward().unwrap();
    assert_eq!(f.consumer, None);
    assert!(f.remove_headers.contains(&"x-mse-consumer".to_string()));
    assert!(f.set_headers.is_empty());
    // The token path is never forwarded, even where no rule applies: the
    // instance consumers answer there.
    let d = gw.get(
        "localhost",
        "/oauth2/token?grant_type=client_credentials",
        None,
    );
    assert_eq!(status(&d), 400);
    assert_eq!(
        gw.token("localhost", "/oauth2/token", C1)
            .split('.')
            .count(),
        3
    );
}

#[test]
fn first_matching_rule_wins() {
    let gw = Harness::load("demo.policy");
    let t1 = gw.token("localhost", "/a/oauth2/token", C1);
    let t2 = gw.token("localhost", "/a/oauth2/token", C2);
    // route-a (rule 1) and test.com (rule 2) both match: rule 1 decides.
    assert_eq!(
        consumer(&gw.get("test.com", "/a", Some(&t1))),
        Some("consumer1")
    );
    assert_eq!(status(&gw.get("test.com", "/a", Some(&t2))), 403);
}

#[test]
fn issued_tokens_have_the_higress_claims() {
    let gw = Harness::load("demo.policy");
    let t = gw.token("test.com", "/oauth2/token", C1);
    let c = claims(&t);
    assert_eq!(c["iss"], "Higress-Gateway");
    assert_eq!(c["sub"], "consumer1");
    assert_eq!(c["aud"], "default");
    assert_eq!(c["client_id"], C1.0);
    assert_eq!(c["iat"], NOW);
    assert_eq!(c["exp"], NOW + 7200);
    assert_eq!(c["jti"].as_str().unwrap().len(), 36);
}

#[test]
fn token_endpoint_post_basic_and_errors() {
    let gw = Harness::load("demo.policy");
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        C1.0, C1.1
    );
    let d = gw.call("POST", "test.com", "/oauth2/token", &form, body.as_bytes());
    let r = d.reply().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.header("cache-control"), r.header("pragma")),
        (Some("no-store"), Some("no-cache"))
    );
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (json["token_type"].as_str(), json["expires_in"].as_u64()),
        (Some("bearer"), Some(7200))
    );

    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", C2.0, C2.1))
    );
    let d = gw.call(
        "GET",
        "test.com",
        "/oauth2/token?grant_type=client_credentials",
        &[("Authorization", &basic)],
        b"",
    );
    assert_eq!(status(&d), 200);
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:nope", C2.0))
    );
    let d = gw.call(
        "GET",
        "test.com",
        "/oauth2/token?grant_type=client_credentials",
        &[("Authorization", &wrong)],
        b"",
    );
    let r = d.reply().unwrap();
    assert_eq!(
        (r.status, r.header("www-authenticate")),
        (401, Some("Basic realm=\"token\""))
    );

    let error = |d: Decision| {
        let r = d.reply().unwrap().clone();
        let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(r.header("cache-control"), Some("no-store"));
        (r.status, json["error"].as_str().unwrap().to_string())
    };
    let q = |q: &str| gw.get("test.com", &format!("/oauth2/token?{q}"), None);
    assert_eq!(
        error(q(&format!(
            "grant_type=client_credentials&client_id={}&client_secret=x",
            C1.0
        ))),
        (400, "invalid_client".into())
    );
    assert_eq!(
        error(q(
            "grant_type=client_credentials&client_id=unknown&client_secret=x"
        )),
        (400, "invalid_client".into())
    );
    assert_eq!(
        error(q(&format!(
            "grant_type=client_credentials&client_id={}",
            C1.0
        ))),
        (400, "invalid_client".into())
    );
    assert_eq!(
        error(q("grant_type=authorization_code&code=x")),
        (400, "unsupported_grant_type".into())
    );
    assert_eq!(error(q("client_id=x")), (400, "invalid_request".into()));
    let json = [("Content-Type", "application/json")];
    assert_eq!(
        error(gw.call("POST", "test.com", "/oauth2/token", &json, b"{}")),
        (400, "invalid_request".into())
    );
    assert_eq!(
        error(gw.call("DELETE", "test.com", "/oauth2/token", &[], b"")),
        (405, "invalid_request".into())
    );
}

#[test]
fn route_scoped_tokens_stay_on_their_route() {
    let gw = Harness::load("route-scoped.policy");
    let ta = gw.token("localhost", "/a/oauth2/token", C1);
    let tb = gw.token("localhost", "/b/oauth2/token", C1);
    assert_eq!(claims(&ta)["aud"], "route-a");
    assert_eq!(claims(&tb)["aud"], "route-b");
    assert_eq!(
        consumer(&gw.get("localhost", "/a/x", Some(&ta))),
        Some("consumer1")
    );
    assert_eq!(
        consumer(&gw.get("localhost", "/b/x", Some(&tb))),
        Some("consumer1")
    );
    assert_eq!(status(&gw.get("localhost", "/b/x", Some(&ta))), 401);
    assert_eq!(status(&gw.get("localhost", "/a/x", Some(&tb))), 401);
    assert_eq!(status(&gw.get("localhost", "/a/x", None)), 401);
    assert_eq!(
        consumer(&gw.get("localhost", "/c", None)),
        None,
        "unruled paths pass"
    );
    // The Higress sample has aud `default`: not valid on a route-scoped rule.
    let gw = gw.at(1_687_944_300);
    assert_eq!(
        status(&gw.get("localhost", "/a", Some(HIGRESS_SAMPLE))),
        401
    );
}

#[test]
fn shared_tokens_work_on_every_route_of_the_rule() {
    let gw = Harness::load("shared-tokens.policy");
    let ta = gw.token("localhost", "/a/oauth2/token", C1);
    assert_eq!(claims(&ta)["aud"], "default");
    assert_eq!(
        consumer(&gw.get("localhost", "/b/x", Some(&ta))),
        Some("consumer1")
    );
    assert_eq!(
        consumer(&gw.get("localhost", "/a/x", Some(&ta))),
        Some("consumer1")
    );
}

#[test]
fn gateway_wide_authentication() {
    let gw = Harness::load("gateway-wide.policy");
    assert_eq!(status(&gw.get("anything.test", "/", None)), 401);
    assert_eq!(
        status(&gw.get("anything.test", "/deep/path?x=1", None)),
        401
    );
    let t2 = gw.token("anything.test", "/any/prefix/oauth2/token", C2);
    assert_eq!(
        consumer(&gw.get("other.test", "/x", Some(&t2))),
        Some("consumer2")
    );
}

#[test]
fn the_higress_sample_token_is_accepted_only_while_valid() {
    let exp = 1_687_951_463;
    let gw = Harness::load("demo.policy").at(1_687_944_263 + 10);
    assert_eq!(
        consumer(&gw.get("localhost", "/a", Some(HIGRESS_SAMPLE))),
        Some("consumer1")
    );
    let gw = gw.at(exp + 60);
    assert_eq!(
        consumer(&gw.get("localhost", "/a", Some(HIGRESS_SAMPLE))),
        Some("consumer1"),
        "within clock skew"
    );
    let gw = gw.at(exp + 61);
    assert_eq!(
        status(&gw.get("localhost", "/a", Some(HIGRESS_SAMPLE))),
        401
    );
    let gw = gw.at(1_687_944_263 - 61);
    assert_eq!(
        status(&gw.get("localhost", "/a", Some(HIGRESS_SAMPLE))),
        401,
        "iat in the future beyond skew"
    );
}

#[test]
fn keep_token_false_removes_the_credential() {
    let src = std::fs::read_to_string(format!(
        "{}/../policies/gateway-wide.policy",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace("keep_token         true", "keep_token false");
    let gw = Harness::compile(&src);
    let t = gw.token("x", "/oauth2/token", C1);
    let d = gw.get("x", "/", Some(&t));
    assert!(
        d.forward()
            .unwrap()
            .remove_headers
            .contains(&"authorization".to_string())
    );
}

#[test]
fn token_query_param_reads_a_token_where_no_header_is_and_can_hide_it() {
    let src = |keep: bool| {
        format!(
            "global_auth true\ntoken_query_param access_token\nkeep_token {keep}\n\
             consumer c {{ client_id id; client_secret s3cret }}\n"
        )
    };
    let gw = Harness::compile(&src(false));
    let t = gw.token("h", "/oauth2/token", ("id", "s3cret"));
    // The token in the query: accepted, and removed from what goes upstream
    // (the rest of the query kept, in order).
    let d = gw.get("h", &format!("/ws?room=1&access_token={t}&x=%20"), None);
    let f = d.forward().expect("query token accepted");
    assert_eq!(f.consumer.as_deref(), Some("c"));
    assert_eq!(f.query.as_deref(), Some("room=1&x=+"));
    // Without a token anywhere, or with two: refused.
    assert_eq!(status(&gw.get("h", "/ws?room=1", None)), 401);
    let twice = format!("/ws?access_token={t}&access_token={t}");
    assert_eq!(status(&gw.get("h", &twice, None)), 401);
    assert_eq!(status(&gw.get("h", "/ws?access_token=", None)), 401);
    assert_eq!(status(&gw.get("h", "/ws?access_token=forged", None)), 401);
    // The header wins over the query; a header-borne token leaves the
    // query as it was.
    let d = gw.get("h", "/ws?access_token=forged", Some(&t));
    assert_eq!(d.forward().unwrap().query.as_deref(), Some(""));
    // keep_token true: the query goes upstream untouched.
    let gw = Harness::compile(&src(true));
    let t = gw.token("h", "/oauth2/token", ("id", "s3cret"));
    let d = gw.get("h", &format!("/ws?access_token={t}"), None);
    assert_eq!(d.forward().unwrap().query, None);
    // Off by default (as Higress): a query token is no token.
    let gw =
        Harness::compile("global_auth true\nconsumer c { client_id id; client_secret s3cret }\n");
    let t = gw.token("h", "/oauth2/token", ("id", "s3cret"));
    assert_eq!(
        status(&gw.get("h", &format!("/ws?access_token={t}"), None)),
        401
    );
}

#[test]
fn custom_header_names_and_settings() {
    let src = r#"
        global_auth true
        auth_header_name X-Token
        consumer_header X-Caller
        issuer my-gw
        auth_path /token
        token_ttl 5m
        consumer c { client_id id; client_secret s3cret }
    "#;
    let gw = Harness::compile(src);
    let t = gw.token("h", "/token", ("id", "s3cret"));
    assert_eq!(
        (claims(&t)["iss"].as_str(), claims(&t)["exp"].as_u64()),
        (Some("my-gw"), Some(NOW + 300))
    );
    let d = gw.call("GET", "h", "/", &[("x-token", &format!("Bearer {t}"))], b"");
    assert_eq!(
        d.forward().unwrap().set_headers,
        vec![("x-caller".into(), "c".into())]
    );
    assert_eq!(
        status(&gw.get("h", "/", Some(&t))),
        401,
        "Authorization is not the configured header"
    );
}

#[test]
fn global_auth_unset_authenticates_everything_only_without_rules() {
    let consumers = "consumer c { client_id id; client_secret s }\n";
    let gw = Harness::compile(consumers);
    assert_eq!(status(&gw.get("h", "/", None)), 401);
    let with_rule = format!("{consumers}rule {{ match domain [x.com]; allow [c] }}\n");
    let gw = Harness::compile(&with_rule);
    assert_eq!(consumer(&gw.get("h", "/", None)), None);
    assert_eq!(status(&gw.get("x.com", "/", None)), 401);
    let off = format!("global_auth false\n{consumers}");
    let gw = Harness::compile(&off);
    assert_eq!(consumer(&gw.get("h", "/", None)), None);
    assert_eq!(
        gw.token("h", "/oauth2/token", ("id", "s"))
            .split('.')
            .count(),
        3,
        "no rules: token endpoint still served"
    );
}

#[test]
fn disabled_rules_and_host_supplied_routes_and_services() {
    let src = r#"
        global_auth true
        consumer c { client_id id; client_secret s }
        rule { match route [health]; disable }
        rule { match route_prefix [internal-]; allow [c] }
        rule { match route [orders]; match service [orders.svc]; disable }
    "#;
    let host = FixedServices::at(NOW);
    let policy = Policy::compile(src, &host).unwrap();
    let headers = Vec::new();
    let decide = |route: Option<&str>, service: Option<&str>| {
        let req = Request {
            method: "GET",
            authority: "h",
            path: "/",
            headers: &headers,
            route,
            service,
            ..Default::default()
        };
        policy.decide(&req, &host)
    };
    assert!(decide(Some("health"), None).forward().is_some());
    assert_eq!(status(&decide(Some("internal-billing"), None)), 401);
    assert!(
        decide(Some("orders"), Some("orders.svc"))
            .forward()
            .is_some()
    );
    assert_eq!(status(&decide(Some("orders"), Some("other.svc"))), 401);
    assert_eq!(status(&decide(None, None)), 401);
}

#[test]
fn explain_and_dot_describe_the_decision() {
    let gw = Harness::load("demo.policy");
    let headers = Vec::new();
    let req = Request {
        method: "GET",
        authority: "test.com",
        path: "/x",
        headers: &headers,
        ..Default::default()
    };
    let text = gw.0.policy.explain(&req, &gw.0.services);
    assert!(
        text.contains("first matching rule: rule `domains`"),
        "{text}"
    );
    assert!(text.contains("reply 401 (no bearer token)"), "{text}");
    let dot = gw.0.policy.graph().to_dot();
    assert!(
        dot.starts_with("digraph warden {") && dot.contains("allow\\nconsumer2"),
        "{dot}"
    );
}

#[test]
fn rule_verdicts_at_scale() {
    use warden_engine::internal::graph::Verdict;
    let n = 10_000;
    let host = FixedServices::at(NOW);
    let policy = Policy::compile(&warden_engine::synth::policy(n), &host).unwrap();
    let g = policy.graph();
    let headers = Vec::new();
    let req = |authority, path| Request {
        method: "GET",
        authority,
        path,
        headers: &headers,
        ..Default::default()
    };
    let last = g.consumer_id(&format!("c{}", n - 1));
    let other = g.consumer_id("c0");
    let path = format!("/r{}/x", n - 1);
    let host_name = format!("api.d{}.example.com", n - 1);
    assert_eq!(g.rule_verdict(&req("h", &path), last), Verdict::Allowed);
    assert_eq!(g.rule_verdict(&req("h", &path), other), Verdict::Denied);
    assert_eq!(
        g.rule_verdict(&req("h", &path), None),
        Verdict::Unauthenticated
    );
    assert_eq!(
        g.rule_verdict(&req(&host_name, "/"), last),
        Verdict::Allowed
    );
    assert_eq!(
        g.rule_verdict(&req(&host_name, "/"), other),
        Verdict::Denied
    );
    assert_eq!(g.rule_verdict(&req("h", "/unrouted"), None), Verdict::Pass);
    // Identical allow sets are shared; one authorize node per set.
    let (nodes, rules, sets) = g.stats();
    assert_eq!((rules, sets), (2 * n, n));
    assert!(nodes <= 3 * n + 3, "{nodes}");
}

#[test]
fn ipv6_hosts_match_bracketed_patterns() {
    let src = "consumer c { client_id id; client_secret s }\nrule { match domain [\"[::1]\"]; allow [c] }\n";
    let gw = Harness::compile(src);
    assert_eq!(status(&gw.get("[::1]:8080", "/", None)), 401);
    assert_eq!(consumer(&gw.get("127.0.0.1:8080", "/", None)), None);
}

/// `match service` with an upstream URL matches the route's upstream in
/// canonical form, however either is written.
#[test]
fn service_rules_match_upstreams_in_canonical_form() {
    let gw = Harness::compile(&format!(
        "consumer c {{ client_id {}; client_secret {} }}\n\
         route r {{ path_prefix /r; upstream \"http://Backend:8080/\" }}\n\
         rule {{ match service [\"HTTP://backend:8080\"]; allow [c] }}\n",
        C1.0, C1.1
    ));
    assert_eq!(status(&gw.get("x", "/r/items", None)), 401);
    assert_eq!(status(&gw.get("x", "/elsewhere", None)), 0);
}
