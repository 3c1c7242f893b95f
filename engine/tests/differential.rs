//! Differential testing of the decision graph.
//!
//! A deliberately naive reference evaluator interprets the checked model
//! directly — rules scanned in declaration order, routes scanned for the
//! longest prefix, strings compared one by one; no graph, no indexes — and
//! proptest generates random policies (as text, so the parser and checker run
//! too) and random requests. The compiled graph and the reference must agree
//! on every decision: route resolution and the rule layer's verdict for every
//! kind of consumer (instance, rule-scoped, none).

use proptest::prelude::*;
use warden_engine::graph::{DecisionGraph, Verdict};
use warden_engine::model::{self, Action, ConsumerId, DomainPattern, INSTANCE, Matcher, Model};
use warden_engine::{FixedHost, Request, syntax};

// ---- the reference evaluator -------------------------------------------------

/// Host without port, lower case, without a trailing dot; brackets dropped.
fn reference_host(authority: &str) -> String {
    let lower = authority.to_ascii_lowercase();
    let host = if let Some(bracketed) = lower.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("").to_string()
    } else {
        match lower.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h.to_string(),
            _ => lower.clone(),
        }
    };
    host.strip_suffix('.').map(str::to_string).unwrap_or(host)
}

/// The declared route for `path`: the longest path prefix at a `/` boundary.
fn reference_route<'m>(m: &'m Model, path: &str) -> Option<&'m model::Route> {
    m.routes
        .iter()
        .filter(|r| {
            r.path_prefix.as_deref().is_some_and(|p| {
                path == p
                    || (path.starts_with(p)
                        && (p.ends_with('/') || path[p.len()..].starts_with('/')))
            })
        })
        .max_by_key(|r| r.path_prefix.as_ref().map_or(0, String::len))
}

fn reference_matches(
    matcher: &Matcher,
    route: Option<&str>,
    service: Option<&str>,
    host: &str,
) -> bool {
    let is = |names: &[(String, _)], v: Option<&str>| {
        v.is_some_and(|v| names.iter().any(|(n, _)| n == v))
    };
    match matcher {
        Matcher::Route(names) => is(names, route),
        Matcher::RouteAndService(routes, services) => is(routes, route) && is(services, service),
        Matcher::RoutePrefix(prefixes) => {
            route.is_some_and(|r| prefixes.iter().any(|(p, _)| r.starts_with(p.as_str())))
        }
        Matcher::Service(names) => is(names, service),
        Matcher::Domain(patterns) => patterns.iter().any(|(p, _)| match p {
            DomainPattern::Exact(h) => host == h,
            DomainPattern::Suffix(s) => host.ends_with(s.as_str()),
            DomainPattern::Prefix(s) => host.starts_with(s.as_str()),
        }),
    }
}

/// Route name, upstream and verdict, straight from the model.
fn reference(
    m: &Model,
    req: &Request<'_>,
    consumer: Option<ConsumerId>,
) -> (Option<String>, Option<String>, Verdict) {
    let declared = match req.route {
        Some(name) => m.routes.iter().find(|r| r.name == name),
        None => reference_route(m, req.path),
    };
    let route = declared
        .map(|r| r.name.clone())
        .or(req.route.map(str::to_string));
    let upstream = declared.and_then(|r| r.upstream.clone());
    let service = req.service.map(str::to_string).or(upstream.clone());
    let host = reference_host(req.authority);
    let in_scope =
        |scope: u32| consumer.is_some_and(|c| m.scopes[scope as usize].consumers.contains(&c));

    let rule = m
        .rules
        .iter()
        .find(|r| reference_matches(&r.matcher, route.as_deref(), service.as_deref(), &host));
    let verdict = match rule.map(|r| &r.action) {
        Some(Action::Disable) => Verdict::Pass,
        Some(Action::Authenticate(scope)) => {
            if in_scope(*scope) {
                Verdict::Allowed
            } else {
                Verdict::Unauthenticated
            }
        }
        Some(Action::Allow(ids)) => match consumer {
            Some(c) if in_scope(INSTANCE) && ids.contains(&c) => Verdict::Allowed,
            Some(_) if in_scope(INSTANCE) => Verdict::Denied,
            _ => Verdict::Unauthenticated,
        },
        None => {
            let global = m.global_auth.unwrap_or(m.rules.is_empty());
            match (global, in_scope(INSTANCE)) {
                (false, _) => Verdict::Pass,
                (true, true) => Verdict::Allowed,
                (true, false) => Verdict::Unauthenticated,
            }
        }
    };
    (route, upstream, verdict)
}

// ---- random policies and requests --------------------------------------------

const ROUTE_NAMES: &[&str] = &["r0", "r1", "r2", "int-a", "int-b"];
const PREFIXES: &[&str] = &["/", "/a", "/a/b", "/b", "/ab", "/c/d/"];
const SERVICES: &[&str] = &["svc1", "svc2", "http://127.0.0.1:9000"];
const DOMAINS: &[&str] = &[
    "a.com", "*.a.com", "*.com", "api*", "b.a.com", "*a.com", "[::1]", "x.org",
];

#[derive(Debug, Clone)]
enum GenMatcher {
    Route(Vec<usize>),
    RouteAndService(Vec<usize>, Vec<usize>),
    RoutePrefix(Vec<&'static str>),
    Service(Vec<usize>),
    Domain(Vec<usize>),
}

#[derive(Debug, Clone)]
enum GenAction {
    Allow(Vec<usize>),
    Own(usize),
    Disable,
}

#[derive(Debug, Clone)]
struct GenPolicy {
    global_auth: Option<bool>,
    consumers: usize,
    /// (name index, prefix index or none, upstream index or none)
    routes: Vec<(usize, Option<usize>, Option<usize>)>,
    rules: Vec<(GenMatcher, GenAction)>,
}

fn idx(n: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..n, 1..3)
}

fn gen_matcher() -> impl Strategy<Value = GenMatcher> {
    prop_oneof![
        idx(ROUTE_NAMES.len()).prop_map(GenMatcher::Route),
        (idx(ROUTE_NAMES.len()), idx(SERVICES.len()))
            .prop_map(|(r, s)| GenMatcher::RouteAndService(r, s)),
        proptest::collection::vec(
            prop_oneof![Just("int-"), Just("r"), Just("int-a"), Just("x")],
            1..3
        )
        .prop_map(GenMatcher::RoutePrefix),
        idx(SERVICES.len()).prop_map(GenMatcher::Service),
        idx(DOMAINS.len()).prop_map(GenMatcher::Domain),
    ]
}

fn gen_policy() -> impl Strategy<Value = GenPolicy> {
    let routes = proptest::collection::vec(
        (
            0..ROUTE_NAMES.len(),
            proptest::option::of(0..PREFIXES.len()),
            proptest::option::of(0..SERVICES.len()),
        ),
        0..5,
    );
    let action = prop_oneof![
        4 => proptest::collection::vec(0..4usize, 0..4).prop_map(GenAction::Allow),
        2 => (1..3usize).prop_map(GenAction::Own),
        1 => Just(GenAction::Disable),
    ];
    let rules = proptest::collection::vec((gen_matcher(), action), 0..6);
    (
        proptest::option::of(any::<bool>()),
        1..5usize,
        routes,
        rules,
    )
        .prop_map(|(global_auth, consumers, routes, rules)| GenPolicy {
            global_auth,
            consumers,
            routes,
            rules,
        })
}

fn list<T: AsRef<str>>(items: impl IntoIterator<Item = T>) -> String {
    let quoted: Vec<String> = items
        .into_iter()
        .map(|s| format!("\"{}\"", s.as_ref()))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// Policy text for a generated policy (always valid: names deduplicated).
fn render(p: &GenPolicy) -> String {
    let mut s = String::new();
    if let Some(g) = p.global_auth {
        s.push_str(&format!("global_auth {g}\n"));
    }
    for c in 0..p.consumers {
        s.push_str(&format!(
            "consumer c{c} {{ client_id id{c}; client_secret s{c} }}\n"
        ));
    }
    let (mut names, mut prefixes) = (Vec::new(), Vec::new());
    for (name, prefix, upstream) in &p.routes {
        if names.contains(name) {
            continue;
        }
        names.push(*name);
        s.push_str(&format!("route {} {{", ROUTE_NAMES[*name]));
        if let Some(px) = prefix.filter(|px| !prefixes.contains(px)) {
            prefixes.push(px);
            s.push_str(&format!(" path_prefix \"{}\";", PREFIXES[px]));
        }
        if let Some(u) = upstream.filter(|&u| SERVICES[u].starts_with("http")) {
            s.push_str(&format!(" upstream \"{}\";", SERVICES[u]));
        }
        s.push_str(" }\n");
    }
    for (i, (matcher, action)) in p.rules.iter().enumerate() {
        s.push_str(&format!("rule n{i} {{\n"));
        match matcher {
            GenMatcher::Route(r) => s.push_str(&format!(
                "  match route {}\n",
                list(r.iter().map(|&i| ROUTE_NAMES[i]))
            )),
            GenMatcher::RouteAndService(r, sv) => s.push_str(&format!(
                "  match route {}\n  match service {}\n",
                list(r.iter().map(|&i| ROUTE_NAMES[i])),
                list(sv.iter().map(|&i| SERVICES[i]))
            )),
            GenMatcher::RoutePrefix(px) => {
                s.push_str(&format!("  match route_prefix {}\n", list(px)))
            }
            GenMatcher::Service(sv) => s.push_str(&format!(
                "  match service {}\n",
                list(sv.iter().map(|&i| SERVICES[i]))
            )),
            GenMatcher::Domain(d) => s.push_str(&format!(
                "  match domain {}\n",
                list(d.iter().map(|&i| DOMAINS[i]))
            )),
        }
        match action {
            GenAction::Allow(ids) => {
                let names: Vec<String> = ids
                    .iter()
                    .filter(|&&c| c < p.consumers)
                    .map(|c| format!("c{c}"))
                    .collect();
                s.push_str(&format!("  allow {}\n", list(names)));
            }
            GenAction::Own(n) => {
                for k in 0..*n {
                    s.push_str(&format!(
                        "  consumer c{k} {{ client_id r{i}id{k}; client_secret r{i}s{k} }}\n"
                    ));
                }
            }
            GenAction::Disable => s.push_str("  disable\n"),
        }
        s.push_str("}\n");
    }
    s
}

#[derive(Debug, Clone)]
struct GenRequest {
    path: &'static str,
    authority: &'static str,
    route: Option<&'static str>,
    service: Option<&'static str>,
    consumer: Option<usize>,
}

fn gen_request() -> impl Strategy<Value = GenRequest> {
    let paths = prop_oneof![
        Just("/"),
        Just("/a"),
        Just("/a/"),
        Just("/a/b"),
        Just("/a/b/c"),
        Just("/ab"),
        Just("/b/x"),
        Just("/c"),
        Just("/c/d"),
        Just("/c/d/e")
    ];
    let hosts = prop_oneof![
        Just("a.com"),
        Just("x.a.com"),
        Just("API.a.com:80"),
        Just("b.com"),
        Just("api.b.org"),
        Just("[::1]:8080"),
        Just("x.org."),
        Just("xa.com"),
        Just("com"),
        Just("")
    ];
    let routes = proptest::option::of(prop_oneof![
        Just("r0"),
        Just("r1"),
        Just("int-a"),
        Just("int-zz"),
        Just("other")
    ]);
    let services = proptest::option::of(prop_oneof![Just("svc1"), Just("svc2"), Just("nope")]);
    (
        paths,
        hosts,
        routes,
        services,
        proptest::option::of(0..12usize),
    )
        .prop_map(|(path, authority, route, service, consumer)| GenRequest {
            path,
            authority,
            route,
            service,
            consumer,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn graph_agrees_with_the_reference(policy in gen_policy(), requests in proptest::collection::vec(gen_request(), 1..12)) {
        let text = render(&policy);
        let ast = syntax::parse(&text).map_err(|d| TestCaseError::fail(format!("{d:?}\n{text}")))?;
        let (m, _warnings) = model::check(&text, &ast, &FixedHost::at(0))
            .map_err(|e| TestCaseError::fail(format!("{e:?}\n{text}")))?;
        let graph = DecisionGraph::compile(&m);
        let headers = Vec::new();
        for r in &requests {
            let req = Request {
                method: "GET", scheme: "http", authority: r.authority, path: r.path, headers: &headers,
                route: r.route, service: r.service, ..Default::default()
            };
            let consumer = r.consumer.filter(|&c| c < m.consumers.len()).map(|c| c as ConsumerId);
            let (route, upstream, verdict) = reference(&m, &req, consumer);
            prop_assert_eq!(graph.rule_verdict(&req, consumer), verdict, "{:?} consumer {:?}\n{}", r, consumer, text);
            let host = FixedHost::at(0);
            if let Some(f) = graph.decide(&req, &host).forward() {
                prop_assert_eq!(&f.route, &route, "{:?}\n{}", r, text);
                prop_assert_eq!(&f.upstream, &upstream, "{:?}\n{}", r, text);
            }
        }
    }
}
