//! Differential testing of the decision walk that serves requests.
//!
//! A deliberately naive reference evaluator interprets the checked model
//! directly — rules scanned in declaration order, routes scanned for the
//! longest prefix, strings compared one by one, tokens judged by how the test
//! minted them; no graph, no indexes, no JWT code of the engine — and
//! proptest generates random policies (as text, so the parser and checker run
//! too) and random requests carrying random credentials: valid tokens,
//! expired ones, tokens from the future, signed with a foreign key, of the
//! wrong issuer or subject, scoped to a route or host, of consumers of other
//! scopes, garbage, no token at all, and token-endpoint requests with right
//! and wrong secrets. The production path (`Policy::decide_with`, with the
//! verified-token memo, as the guest calls it) must make the reference's
//! decision every time: status, challenge, consumer, headers, route,
//! upstream, and the claims of issued tokens. The rule layer alone
//! (`rule_verdict`, a mode of the same walk) must agree too.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use sha2::Sha256;
use warden_engine::internal::graph::{Verdict, VerifiedTokens};
use warden_engine::internal::model::{
    self, Action, ConsumerId, DomainPattern, INSTANCE, Matcher, Model,
};
use warden_engine::internal::syntax;
use warden_engine::{Decision, FixedServices, Policy, Request};

/// The clock of every decision.
const NOW: u64 = 1_800_000_000;

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
        .max_by_key(|r| r.path_prefix.as_deref().map_or(0, str::len))
}

fn reference_matches(
    matcher: &Matcher,
    route: Option<&str>,
    service: Option<&str>,
    host: &str,
) -> bool {
    let is =
        |names: &[Box<str>], v: Option<&str>| v.is_some_and(|v| names.iter().any(|n| &**n == v));
    match matcher {
        Matcher::Route(names) => is(names, route),
        Matcher::RouteAndService(both) => is(&both.0, route) && is(&both.1, service),
        Matcher::RoutePrefix(prefixes) => {
            route.is_some_and(|r| prefixes.iter().any(|p| r.starts_with(&**p)))
        }
        Matcher::Service(names) => is(names, service),
        Matcher::Domain(patterns) => patterns.iter().any(|p| match p {
            DomainPattern::Exact(h) => *host == **h,
            DomainPattern::Suffix(s) => host.ends_with(&**s),
            DomainPattern::Prefix(s) => host.starts_with(&**s),
        }),
    }
}

/// What the reference knows of a request once its rule is found.
struct Resolved<'m> {
    route: Option<String>,
    upstream: Option<warden_engine::Upstream>,
    host: String,
    /// The first matching rule's action; `None` when no rule matches.
    action: Option<&'m Action>,
}

fn resolve<'m>(m: &'m Model, req: &Request<'_>) -> Resolved<'m> {
    let declared = match req.route {
        Some(name) => m.routes.iter().find(|r| &*r.name == name),
        None => reference_route(m, req.path),
    };
    let route = declared
        .map(|r| r.name.to_string())
        .or(req.route.map(str::to_string));
    let upstream = declared.and_then(|r| r.options().upstream.clone());
    let service = req
        .service
        .map(str::to_string)
        .or(upstream.as_ref().map(|u| u.to_string()));
    let host = reference_host(req.authority);
    let action = m
        .rules
        .iter()
        .find(|r| reference_matches(&r.matcher, route.as_deref(), service.as_deref(), &host))
        .map(|r| &r.action);
    Resolved {
        route,
        upstream,
        host,
        action,
    }
}

/// The scope a request must authenticate with (`None`: it need not), and
/// the `allow` list it must then be on.
fn requirement<'m>(m: &Model, r: &Resolved<'m>) -> Option<(u32, Option<&'m [ConsumerId]>)> {
    match r.action {
        Some(Action::Disable) => None,
        Some(Action::Authenticate(scope)) => Some((*scope, None)),
        Some(Action::Allow(ids)) => Some((INSTANCE, Some(&ids[..]))),
        None => m
            .global_auth
            .unwrap_or(m.rules.is_empty())
            .then_some((INSTANCE, None)),
    }
}

/// The rule layer's verdict for an already-identified consumer.
fn reference_verdict(m: &Model, req: &Request<'_>, consumer: Option<ConsumerId>) -> Verdict {
    let r = resolve(m, req);
    let in_scope =
        |scope: u32| consumer.is_some_and(|c| m.scopes[scope as usize].consumers.contains(&c));
    match requirement(m, &r) {
        None => Verdict::Pass,
        Some((scope, _)) if !in_scope(scope) => Verdict::Unauthenticated,
        Some((_, Some(ids))) if !ids.contains(&consumer.unwrap_or(u32::MAX)) => Verdict::Denied,
        Some(_) => Verdict::Allowed,
    }
}

/// A token as the test minted it (and so, what it says).
#[derive(Debug, Clone)]
struct Minted {
    client_id: String,
    /// The key it was signed with.
    key: String,
    sub: String,
    iss: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// What the client presented.
#[derive(Debug, Clone)]
enum Credential {
    None,
    /// `Authorization: <value>` that is no JWT at all.
    Junk(&'static str),
    Token(Minted),
}

/// The consumer `minted` authenticates as in `scope`, if it does: a client
/// of the scope, signed with that client's secret, naming that consumer,
/// issued by the scope's issuer, for the audience this request has, and
/// within its lifetime (60 s of skew).
/// The secret the generated policy gave `client_id` (the test's own record,
/// not the engine's `Secret`).
fn secret_of<'p>(secrets: &'p [(String, String, String)], client_id: &str) -> Option<&'p str> {
    secrets
        .iter()
        .find(|(id, _, _)| id == client_id)
        .map(|(_, secret, _)| secret.as_str())
}

fn reference_token(
    m: &Model,
    secrets: &[(String, String, String)],
    scope: u32,
    r: &Resolved<'_>,
    minted: &Minted,
) -> Option<ConsumerId> {
    let s = &m.scopes[scope as usize];
    let &id = s.consumers.iter().find(|&&c| {
        m.consumers[c as usize]
            .credentials
            .iter()
            .any(|cr| *cr.client_id == *minted.client_id)
    })?;
    let consumer = &m.consumers[id as usize];
    let credential = consumer
        .credentials
        .iter()
        .find(|cr| *cr.client_id == *minted.client_id)?;
    let signed_right = secret_of(secrets, &credential.client_id) == Some(minted.key.as_str());
    let audience = if s.settings.global_credentials {
        "default".to_string()
    } else {
        r.route.clone().unwrap_or_else(|| r.host.clone())
    };
    let on_time = NOW <= minted.exp + 60 && NOW + 60 >= minted.iat;
    (signed_right
        && *minted.sub == *consumer.name
        && minted.iss == s.settings.issuer
        && minted.aud == audience
        && on_time)
        .then_some(id)
}

/// The reference's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    Forward {
        consumer: Option<String>,
        route: Option<String>,
        upstream: Option<warden_engine::Upstream>,
        /// The credential header is removed (`keep_token false`).
        token_removed: bool,
    },
    /// 401; `presented`: the challenge says `error="invalid_token"`.
    Unauthorized { presented: bool },
    /// 403 `insufficient_scope`.
    Forbidden,
    /// The token endpoint issued a token with these claims.
    Issued {
        sub: String,
        aud: String,
        iss: String,
    },
    /// The token endpoint refused the client (400 `invalid_client`).
    InvalidClient,
}

fn reference_decision(
    m: &Model,
    secrets: &[(String, String, String)],
    req: &Request<'_>,
    credential: &Credential,
) -> Expected {
    let r = resolve(m, req);
    let required = requirement(m, &r);
    if req.path.ends_with("/oauth2/token") {
        // Answered by the rule's own scope, else the instance's.
        let scope = match r.action {
            Some(Action::Authenticate(s)) => *s,
            _ => INSTANCE,
        };
        let s = &m.scopes[scope as usize];
        let Credential::Token(minted) = credential else {
            return Expected::InvalidClient;
        };
        let client = s.consumers.iter().find_map(|&c| {
            let consumer = &m.consumers[c as usize];
            consumer
                .credentials
                .iter()
                .find(|cr| *cr.client_id == *minted.client_id)
                .map(|cr| (consumer, cr))
        });
        return match client {
            Some((consumer, cr))
                if secret_of(secrets, &cr.client_id) == Some(minted.key.as_str()) =>
            {
                Expected::Issued {
                    sub: consumer.name.to_string(),
                    aud: if s.settings.global_credentials {
                        "default".into()
                    } else {
                        r.route.clone().unwrap_or_else(|| r.host.clone())
                    },
                    iss: s.settings.issuer.clone(),
                }
            }
            _ => Expected::InvalidClient,
        };
    }
    let forward = |consumer: Option<ConsumerId>, scope: Option<u32>| Expected::Forward {
        consumer: consumer.map(|c| m.consumers[c as usize].name.to_string()),
        route: r.route.clone(),
        upstream: r.upstream.clone(),
        token_removed: scope.is_some_and(|s| !m.scopes[s as usize].settings.keep_token),
    };
    let Some((scope, allow)) = required else {
        return forward(None, None);
    };
    let consumer = match credential {
        Credential::None => return Expected::Unauthorized { presented: false },
        Credential::Junk(_) => None,
        Credential::Token(minted) => reference_token(m, secrets, scope, &r, minted),
    };
    match (consumer, allow) {
        (None, _) => Expected::Unauthorized { presented: true },
        (Some(c), Some(ids)) if !ids.contains(&c) => Expected::Forbidden,
        (Some(c), _) => forward(Some(c), Some(scope)),
    }
}

/// What the production path decided, in the reference's terms (or why it
/// cannot be read as any of them).
fn observed(d: &Decision) -> Result<Expected, String> {
    match d {
        Decision::Forward(f) => {
            let consumer_set = f
                .set_headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("x-mse-consumer"))
                .map(|(_, v)| v.clone());
            if consumer_set != f.consumer {
                return Err(format!(
                    "consumer header {consumer_set:?} vs {:?}",
                    f.consumer
                ));
            }
            if !f
                .remove_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case("x-mse-consumer"))
            {
                return Err("a client's x-mse-consumer is not removed".into());
            }
            Ok(Expected::Forward {
                consumer: f.consumer.clone(),
                route: f.route.clone(),
                upstream: f.upstream.clone(),
                token_removed: f
                    .remove_headers
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case("authorization")),
            })
        }
        Decision::Reply(r) => {
            let challenge = r.header("www-authenticate").unwrap_or("");
            match r.status {
                401 => Ok(Expected::Unauthorized {
                    presented: challenge.contains("error=\"invalid_token\""),
                }),
                403 if challenge.contains("error=\"insufficient_scope\"") => {
                    Ok(Expected::Forbidden)
                }
                200 => {
                    let body: serde_json::Value =
                        serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
                    let token = body["access_token"].as_str().ok_or("no access_token")?;
                    let payload = token.split('.').nth(1).ok_or("not a JWT")?;
                    let claims: serde_json::Value = serde_json::from_slice(
                        &URL_SAFE_NO_PAD.decode(payload).map_err(|e| e.to_string())?,
                    )
                    .map_err(|e| e.to_string())?;
                    let text = |k: &str| claims[k].as_str().unwrap_or_default().to_string();
                    Ok(Expected::Issued {
                        sub: text("sub"),
                        aud: text("aud"),
                        iss: text("iss"),
                    })
                }
                400 if String::from_utf8_lossy(&r.body).contains("invalid_client") => {
                    Ok(Expected::InvalidClient)
                }
                _ => Err(format!("reply {} {:?}", r.status, r.reason)),
            }
        }
        Decision::NeedBody { .. } => Err("asked for a body".into()),
        Decision::RefreshKeys { url } => Err(format!("asked to fetch {url}")),
        Decision::Fetch(f) => Err(format!("asked to call {}", f.url)),
    }
}

/// Whether `token`'s HS256 signature is by `key` (checked with `hmac`).
fn signed_by(token: &str, key: &str) -> bool {
    let Some((input, sig)) = token.rsplit_once('.') else {
        return false;
    };
    let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(input.as_bytes());
    mac.verify_slice(&sig).is_ok()
}

/// An HS256 access token with these claims, signed with `key`, made here
/// with the `hmac` crate (none of the engine's token code).
fn mint(t: &Minted) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"application/at+jwt"}"#);
    let claims = serde_json::json!({
        "aud": t.aud, "client_id": t.client_id, "exp": t.exp, "iat": t.iat,
        "iss": t.iss, "jti": "00000000-0000-4000-8000-000000000000", "sub": t.sub,
    });
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut mac = Hmac::<Sha256>::new_from_slice(t.key.as_bytes()).expect("any key length");
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

// ---- random policies and requests --------------------------------------------

const ROUTE_NAMES: &[&str] = &["r0", "r1", "r2", "int-a", "int-b"];
const PREFIXES: &[&str] = &["/", "/a", "/a/b", "/b", "/ab", "/c/d/"];
/// The last one, written unlike the route upstream it names, matches it in
/// canonical form.
const SERVICES: &[&str] = &[
    "svc1",
    "svc2",
    "http://127.0.0.1:9000",
    "HTTP://127.0.0.1:9000/",
];
const DOMAINS: &[&str] = &[
    "a.com", "*.a.com", "*.com", "api*", "b.a.com", "*a.com", "[::1]", "x.org",
];
/// Audiences tokens are minted for: every scope key a request can have.
const AUDIENCES: &[&str] = &[
    "default",
    "r0",
    "r1",
    "int-a",
    "a.com",
    "x.a.com",
    "api.a.com",
    "b.com",
    "x.org",
    "::1",
];

#[derive(Debug, Clone)]
enum GenMatcher {
    Route(Vec<usize>),
    RouteAndService(Vec<usize>, Vec<usize>),
    RoutePrefix(Vec<&'static str>),
    Service(Vec<usize>),
    Domain(Vec<usize>),
}

/// A rule scope's own settings.
#[derive(Debug, Clone)]
struct GenScope {
    consumers: usize,
    global_credentials: bool,
    keep_token: bool,
    issuer: Option<&'static str>,
}

#[derive(Debug, Clone)]
enum GenAction {
    Allow(Vec<usize>),
    Own(GenScope),
    Disable,
}

#[derive(Debug, Clone)]
struct GenPolicy {
    global_auth: Option<bool>,
    global_credentials: bool,
    consumers: usize,
    /// (name index, prefix index or none, upstream index or none)
    routes: Vec<(usize, Option<usize>, Option<usize>)>,
    rules: Vec<(GenMatcher, GenAction)>,
}

impl GenPolicy {
    /// Every credential the policy declares: (client_id, secret, consumer name).
    fn credentials(&self) -> Vec<(String, String, String)> {
        let mut all: Vec<_> = (0..self.consumers)
            .map(|c| (format!("id{c}"), format!("s{c}"), format!("c{c}")))
            .collect();
        for (i, (_, action)) in self.rules.iter().enumerate() {
            if let GenAction::Own(scope) = action {
                all.extend(
                    (0..scope.consumers)
                        .map(|k| (format!("r{i}id{k}"), format!("r{i}s{k}"), format!("c{k}"))),
                );
            }
        }
        all
    }
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
    let own = (
        1..3usize,
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(Just("other-issuer")),
    )
        .prop_map(
            |(consumers, global_credentials, keep_token, issuer)| GenScope {
                consumers,
                global_credentials,
                keep_token,
                issuer,
            },
        );
    let action = prop_oneof![
        4 => proptest::collection::vec(0..4usize, 0..4).prop_map(GenAction::Allow),
        2 => own.prop_map(GenAction::Own),
        1 => Just(GenAction::Disable),
    ];
    let rules = proptest::collection::vec((gen_matcher(), action), 0..6);
    (
        proptest::option::of(any::<bool>()),
        prop_oneof![3 => Just(true), 1 => Just(false)],
        1..5usize,
        routes,
        rules,
    )
        .prop_map(
            |(global_auth, global_credentials, consumers, routes, rules)| GenPolicy {
                global_auth,
                global_credentials,
                consumers,
                routes,
                rules,
            },
        )
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
    if !p.global_credentials {
        s.push_str("global_credentials false\n");
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
        if let Some(u) = upstream.filter(|&u| SERVICES[u].starts_with("http:")) {
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
            GenAction::Own(scope) => {
                s.push_str(&format!(
                    "  global_credentials {}\n  keep_token {}\n",
                    scope.global_credentials, scope.keep_token
                ));
                if let Some(issuer) = scope.issuer {
                    s.push_str(&format!("  issuer {issuer}\n"));
                }
                for k in 0..scope.consumers {
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

/// How a generated token is made.
#[derive(Debug, Clone, Copy)]
enum TokenKind {
    Valid,
    Expired,
    FromTheFuture,
    ForeignKey,
    OtherIssuer,
    OtherSubject,
}

#[derive(Debug, Clone)]
enum GenCredential {
    None,
    Junk(&'static str),
    /// (which credential of the policy, how the token is made, audience)
    Token(usize, TokenKind, usize),
}

#[derive(Debug, Clone)]
struct GenRequest {
    path: &'static str,
    authority: &'static str,
    route: Option<&'static str>,
    service: Option<&'static str>,
    consumer: Option<usize>,
    credential: GenCredential,
}

fn gen_credential() -> impl Strategy<Value = GenCredential> {
    let kind = prop_oneof![
        6 => Just(TokenKind::Valid),
        1 => Just(TokenKind::Expired),
        1 => Just(TokenKind::FromTheFuture),
        1 => Just(TokenKind::ForeignKey),
        1 => Just(TokenKind::OtherIssuer),
        1 => Just(TokenKind::OtherSubject),
    ];
    prop_oneof![
        1 => Just(GenCredential::None),
        1 => prop_oneof![Just("Bearer not.a.jwt"), Just("Basic aWQ6cw=="), Just("Bearer")]
            .prop_map(GenCredential::Junk),
        // Audience: `default` (the shared kind), the scope key this very
        // request has (the route-scoped kind, issued here), or another.
        8 => (0..16usize, kind, prop_oneof![
                2 => Just(0usize),
                2 => Just(AUDIENCES.len()),
                1 => 0..AUDIENCES.len(),
            ])
            .prop_map(|(c, k, a)| GenCredential::Token(c, k, a)),
    ]
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
        Just("/c/d/e"),
        Just("/oauth2/token"),
        Just("/a/oauth2/token"),
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
        gen_credential(),
    )
        .prop_map(
            |(path, authority, route, service, consumer, credential)| GenRequest {
                path,
                authority,
                route,
                service,
                consumer,
                credential,
            },
        )
}

/// The credential `g` stands for, in `policy`, on a request whose scope
/// key (route, else hostname) is `scope_key`.
fn credential(policy: &GenPolicy, g: &GenCredential, scope_key: &str) -> Credential {
    let (c, kind, aud) = match g {
        GenCredential::None => return Credential::None,
        GenCredential::Junk(v) => return Credential::Junk(v),
        GenCredential::Token(c, kind, aud) => (c, kind, aud),
    };
    let all = policy.credentials();
    let (client_id, secret, name) = all[c % all.len()].clone();
    // Rule scopes with their own issuer are the ones whose client ids start with `r`.
    let issuer = policy
        .rules
        .iter()
        .enumerate()
        .find_map(|(i, (_, a))| match a {
            GenAction::Own(s) if client_id.starts_with(&format!("r{i}id")) => s.issuer,
            _ => None,
        })
        .unwrap_or("Higress-Gateway");
    let mut t = Minted {
        client_id,
        key: secret,
        sub: name,
        iss: issuer.to_string(),
        aud: AUDIENCES.get(*aud).map_or(scope_key, |a| a).to_string(),
        iat: NOW - 100,
        exp: NOW + 7100,
    };
    match kind {
        TokenKind::Valid => {}
        TokenKind::Expired => (t.iat, t.exp) = (NOW - 10_000, NOW - 2_800),
        TokenKind::FromTheFuture => (t.iat, t.exp) = (NOW + 3_000, NOW + 10_200),
        TokenKind::ForeignKey => t.key = "not-the-secret".into(),
        TokenKind::OtherIssuer => t.iss = "someone-else".into(),
        TokenKind::OtherSubject => t.sub = "c9".into(),
    }
    Credential::Token(t)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_serving_walk_agrees_with_the_reference(policy in gen_policy(), requests in proptest::collection::vec(gen_request(), 1..12)) {
        let text = render(&policy);
        let outline = syntax::outline(&text).map_err(|d| TestCaseError::fail(format!("{d:?}\n{text}")))?;
        let (m, _warnings) = model::check(&text, &outline, &FixedServices::at(0))
            .map_err(|e| TestCaseError::fail(format!("{e:?}\n{text}")))?;
        // The production path: the policy as `Policy::compile` makes it.
        let compiled = Policy::compile(&text, &FixedServices::at(0))
            .map_err(|e| TestCaseError::fail(format!("{e:?}\n{text}")))?;
        let graph = compiled.graph();
        let host = FixedServices::at(NOW);
        // One memo for the whole case, as a guest instance keeps one: later
        // requests meet tokens that earlier ones verified.
        let mut memo = VerifiedTokens::new(8);
        let secrets = policy.credentials();
        for r in &requests {
            let head = Request {
                method: "GET", scheme: "http", authority: r.authority, path: r.path,
                route: r.route, service: r.service, ..Default::default()
            };
            let resolved = resolve(&m, &head);
            let scope_key = resolved.route.clone().unwrap_or(resolved.host.clone());
            let credential = credential(&policy, &r.credential, &scope_key);
            // On a token path the credential is the client's id and secret
            // (a made-up client when there is no token to take them from).
            let (header, query) = match (&credential, r.path.ends_with("/oauth2/token")) {
                (Credential::Token(t), true) => (None, format!(
                    "grant_type=client_credentials&client_id={}&client_secret={}", t.client_id, t.key
                )),
                (_, true) => (None, "grant_type=client_credentials&client_id=nobody&client_secret=x".into()),
                (Credential::Token(t), false) => (Some(format!("Bearer {}", mint(t))), String::new()),
                (Credential::Junk(v), false) => (Some(v.to_string()), String::new()),
                (Credential::None, false) => (None, String::new()),
            };
            let headers: Vec<(&str, &str)> = header.iter().map(|h| ("authorization", h.as_str())).collect();
            let req = Request {
                method: "GET", scheme: "http", authority: r.authority, path: r.path, query: &query,
                headers: &headers, route: r.route, service: r.service, ..Default::default()
            };
            let want = reference_decision(&m, &secrets, &req, &credential);
            let decision = compiled.decide_with(&req, &host, &mut memo);
            let got = observed(&decision);
            prop_assert_eq!(got.as_ref(), Ok(&want), "{:?}\n{:?}\n{}", r, credential, text);
            if let (Expected::Issued { .. }, Credential::Token(t)) = (&want, &credential) {
                // Signed with the client's secret (this policy has no
                // signing_key), for this client, issued now for 7200 s.
                let reply = decision.reply().map(|r| r.body.clone()).unwrap_or_default();
                let body: serde_json::Value = serde_json::from_slice(&reply).unwrap_or_default();
                let token = body["access_token"].as_str().unwrap_or_default();
                prop_assert!(signed_by(token, &t.key), "{token}");
                let claims: serde_json::Value = serde_json::from_slice(
                    &URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap_or_default()).unwrap_or_default(),
                )
                .unwrap_or_default();
                prop_assert_eq!(&claims["client_id"], t.client_id.as_str());
                prop_assert_eq!((claims["iat"].as_u64(), claims["exp"].as_u64()), (Some(NOW), Some(NOW + 7200)));
                prop_assert_eq!(body["expires_in"].as_u64(), Some(7200));
            }
            if !r.path.ends_with("/oauth2/token") {
                // Without the memo, the same decision.
                let unmemoised = observed(&compiled.decide(&req, &host));
                prop_assert_eq!(unmemoised.as_ref(), Ok(&want));
            }

            // The rule layer alone, for a consumer already identified.
            let consumer = r.consumer.filter(|&c| c < m.consumers.len()).map(|c| c as ConsumerId);
            prop_assert_eq!(graph.rule_verdict(&req, consumer), reference_verdict(&m, &req, consumer), "{:?} consumer {:?}\n{}", r, consumer, text);
        }
    }
}
