//! Checked model → [`DecisionGraph`].
//!
//! The graph is an arena of [`Node`]s (edges are indices) plus the indexes
//! that pick an entry node for a request: the rule indexes (first matching
//! rule by route, route+service, route prefix, service, domain) and the
//! standalone gateway's path router. Every name, set and pattern is resolved
//! here, once: evaluation ([`eval`]) only looks things up.
//!
//! Each rule compiles to a short chain, shared between rules that behave
//! alike:
//! - authentication rule: `TokenEndpoint(scope) → Authenticate(scope) → Forward`
//! - `allow` rule: `TokenEndpoint(instance) → Authenticate(instance) → Authorize(set) → Forward`
//! - disabled rule: `TokenEndpoint(instance) → Forward`
//! - no rule matched: by `global_auth` (see [`DecisionGraph::compile`]).

mod allow_set;
mod clients;
mod dot;
mod eval;
mod http;
pub mod index;
mod published;
pub mod routes;
mod verified;

use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap;

pub use allow_set::AllowSet;
pub use clients::{Client, ClientKeys, Clients};
pub(crate) use eval::Ctx;
pub use eval::Verdict;
pub(crate) use http::normal_path;
use index::{NameTable, PathRouter, RuleIndex, RulePos};
pub use verified::{Granted, MemoStats, VerifiedTokens};

use crate::model::{
    Action, ConsumerId, Dialect, DomainPattern, INSTANCE, KongConsumer, Matcher, Model, ScopeId,
    Settings,
};
use crate::{Diagnostic, RouteInfo, Upstream};

/// Index of a node in the arena.
pub type NodeId = u32;

/// One step of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    /// If the path ends with the scope's `auth_path`, answer as the token
    /// endpoint; otherwise continue.
    TokenEndpoint { scope: ScopeId, next: NodeId },
    /// Require a valid token of one of the scope's consumers (else 401).
    Authenticate { scope: ScopeId, next: NodeId },
    /// Require the authenticated consumer to be in `sets[set]` (else 403).
    Authorize { set: u32, next: NodeId },
    /// Let the request through.
    Forward,
}

/// An authentication scope, compiled: settings and client_id → credential.
#[derive(Debug)]
pub struct CompiledScope {
    pub settings: Settings,
    pub clients: Clients,
    /// `instance` or the rule's label: which plugin issued a Kong code.
    pub label: Box<str>,
}

/// A declared route, compiled.
#[derive(Debug)]
pub struct CompiledRoute {
    pub name: Box<str>,
    pub path_prefix: Option<Box<str>>,
    /// Kong's matchers and flags, the route's service and upstream (`None`:
    /// the defaults).
    options: Option<Box<crate::model::RouteOptions>>,
    /// The upstream's canonical text: the `service` that rules match when
    /// the host names no service of its own.
    pub upstream_text: Option<Box<str>>,
}

impl CompiledRoute {
    fn options(&self) -> Option<&crate::model::RouteOptions> {
        self.options.as_deref()
    }

    /// Kong-style matchers (`hosts`, `paths`), with `path_prefix`.
    pub fn matcher(&self) -> routes::RouteMatch<'_> {
        let (hosts, paths) = match self.options() {
            Some(o) => (&o.hosts[..], &o.paths[..]),
            None => (&[][..], &[][..]),
        };
        routes::RouteMatch {
            hosts,
            paths,
            path_prefix: self.path_prefix.as_deref(),
        }
    }

    /// Kong's `protocols [https]`.
    pub fn https_only(&self) -> bool {
        self.options().is_some_and(|o| o.https_only)
    }

    /// Kong's `strip_path`: the matched path prefix is not forwarded.
    pub fn strip_path(&self) -> bool {
        self.options().is_some_and(|o| o.strip_path)
    }

    pub fn upstream(&self) -> Option<&Upstream> {
        self.options().and_then(|o| o.upstream.as_ref())
    }

    /// The route's `service` (Kong's service name).
    pub fn service(&self) -> Option<&str> {
        self.options().and_then(|o| o.service.as_deref())
    }
}

/// A compiled policy.
#[derive(Debug)]
pub struct DecisionGraph {
    /// Unique per compiled graph in this process (for [`VerifiedTokens`]).
    id: u64,
    nodes: Vec<Node>,
    /// Entry node of each rule, by rule position.
    rule_entry: Vec<NodeId>,
    /// Each rule's name or line, for `explain`, logs and metrics.
    rule_names: RuleNames,
    /// Entry for requests no rule matches.
    unmatched_entry: NodeId,
    index: RuleIndex,
    scopes: Vec<CompiledScope>,
    consumer_names: Vec<Box<str>>,
    /// The scope each consumer belongs to.
    consumer_scope: Vec<ScopeId>,
    sets: Vec<AllowSet>,
    router: PathRouter,
    routes: Vec<CompiledRoute>,
    /// Route name → index into `routes` (the names are the routes' own).
    route_by_name: NameTable,
    /// Some route has Kong's `hosts` or `paths`: routes are picked by
    /// [`routes::pick`] instead of the path router.
    kong_routing: bool,
    consumer_header: Option<Box<str>>,
    /// Whose answers the policy gives.
    dialect: Dialect,
    /// Kong's identity of each consumer.
    kong_consumers: Vec<KongConsumer>,
    /// Rules every key of which an earlier rule took.
    shadowed: Vec<Shadowed>,
    /// The JWKS and metadata documents the policy serves.
    published: published::Published,
    /// External JWT issuers, by [`crate::model::IssuerId`].
    issuers: Vec<crate::model::ExternalIssuer>,
    /// Introspection servers, by the number scopes' `introspect` give.
    introspections: Vec<crate::model::Introspection>,
    /// Headers external issuers' claims are forwarded in: always removed
    /// from what a client sent.
    claim_headers: Vec<Box<str>>,
}

/// Each rule's line, and the names of the rules that have one (few do).
#[derive(Debug, Default)]
struct RuleNames {
    lines: Vec<u32>,
    names: FxHashMap<RulePos, Box<str>>,
}

impl RuleNames {
    fn push(&mut self, name: Option<Box<str>>, line: u32) {
        if let Some(name) = name {
            self.names.insert(self.lines.len() as RulePos, name);
        }
        self.lines.push(line);
    }

    /// The name or line of the rule at `pos`.
    fn get(&self, pos: usize) -> crate::model::RuleName {
        crate::model::RuleName {
            name: self.names.get(&(pos as RulePos)).cloned(),
            line: self.lines[pos],
        }
    }
}

/// A rule that never applies: every key of it was taken by an earlier one.
#[derive(Debug)]
struct Shadowed {
    rule: RulePos,
    /// The earliest rule holding one of its keys.
    by: RulePos,
    /// Where the rule starts in the source: byte offset, line, column.
    at: usize,
    line: u32,
    column: u32,
}

/// Arena builder that shares identical nodes.
#[derive(Default)]
struct Arena {
    nodes: Vec<Node>,
    seen: FxHashMap<Node, NodeId>,
}

impl Arena {
    /// A node no other is equal to (not looked up, not remembered).
    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        (self.nodes.len() - 1) as NodeId
    }

    fn add(&mut self, node: Node) -> NodeId {
        *self.seen.entry(node).or_insert_with(|| {
            self.nodes.push(node);
            (self.nodes.len() - 1) as NodeId
        })
    }

    /// TokenEndpoint → Authenticate → `next`, for `scope`.
    fn authn(&mut self, scope: ScopeId, next: NodeId) -> NodeId {
        let auth = self.add(Node::Authenticate { scope, next });
        self.add(Node::TokenEndpoint { scope, next: auth })
    }
}

impl DecisionGraph {
    /// Compile a checked model. `global_auth` decides requests no rule matches:
    /// `true` authenticates them with the instance scope; `false` forwards them;
    /// unset authenticates them only when the policy has no rules. The token
    /// path is answered everywhere (by the instance scope where no rule's
    /// applies), never forwarded.
    ///
    /// It takes the model and drops each part once compiled (rules, then
    /// consumers, then routes), so that a large policy's model and graph
    /// are not both whole at once.
    pub fn compile(model: Model) -> DecisionGraph {
        let Model {
            dialect,
            global_auth,
            consumer_header,
            consumers,
            scopes,
            rules,
            routes,
            issuers,
            introspections,
        } = model;
        // Every large table is sized before it is filled (see
        // `RuleIndex::sized_for`).
        let universe = scopes[INSTANCE as usize].consumers.len();
        let (sets, rule_set) = allow_set::distinct(&rules, universe);
        // Each set's chain (three nodes no other set shares, so not looked
        // up in the arena's map), made when its first rule is compiled.
        let mut set_entry: Vec<NodeId> = vec![NodeId::MAX; sets.len()];
        let mut arena = Arena::default();
        arena.nodes.reserve(3 * sets.len() + 2 * scopes.len() + 4);
        let forward = arena.add(Node::Forward);
        let mut index = RuleIndex::sized_for(rules.iter().map(|r| &r.matcher));
        let mut rule_entry = Vec::with_capacity(rules.len());
        let mut shadowed = Vec::new();

        // SPEC §3: the token path is answered by Warden wherever it is, never
        // forwarded; where no rule's scope applies, the instance scope answers.
        // A Kong-dialect instance without a grant is no plugin: nothing to answer.
        let kong_instance = &scopes[INSTANCE as usize].settings.kong;
        let instance_is_plugin = dialect == Dialect::Higress
            || kong_instance.enable_authorization_code
            || kong_instance.enable_client_credentials
            || kong_instance.enable_implicit_grant
            || kong_instance.enable_password_grant;
        let instance_tokens = if instance_is_plugin {
            arena.add(Node::TokenEndpoint {
                scope: INSTANCE,
                next: forward,
            })
        } else {
            forward
        };
        // Each scope's first rule's label.
        let mut owner_label: Vec<Option<Box<str>>> = vec![None; scopes.len()];
        let mut rule_names = RuleNames {
            lines: Vec::with_capacity(rules.len()),
            names: FxHashMap::default(),
        };
        let no_rules = rules.is_empty();
        {
            // Each rule is taken apart as it is compiled: its names move
            // into the indexes, the rest is dropped, and the list gives
            // back its room as it empties (popped from the end of the
            // reversed list, so in declaration order).
            let mut rules = rules;
            rules.reverse();
            let mut pos: RulePos = 0;
            while let Some(rule) = rules.pop() {
                if rules.capacity() >= 2 * rules.len() + 1024 {
                    rules.shrink_to_fit();
                }
                let entry = match rule.action {
                    Action::Disable => instance_tokens,
                    Action::Authenticate(scope) => {
                        if let Some(o) = owner_label.get_mut(scope as usize) {
                            o.get_or_insert_with(|| rule.label().into());
                        }
                        arena.authn(scope, forward)
                    }
                    Action::Allow(_) => {
                        let set = rule_set[pos as usize];
                        let entry = &mut set_entry[set as usize];
                        if *entry == NodeId::MAX {
                            let authz = arena.push(Node::Authorize { set, next: forward });
                            let auth = arena.push(Node::Authenticate {
                                scope: INSTANCE,
                                next: authz,
                            });
                            *entry = arena.push(Node::TokenEndpoint {
                                scope: INSTANCE,
                                next: auth,
                            });
                        }
                        *entry
                    }
                };
                rule_entry.push(entry);
                // A rule every key of which an earlier rule took never applies.
                if all_taken(&index, &rule.matcher) {
                    shadowed.push(Shadowed {
                        rule: pos,
                        by: earliest_claim(&index, &rule.matcher),
                        at: rule.start,
                        line: rule.line,
                        column: rule.column,
                    });
                } else {
                    index_rule(&mut index, rule.matcher, pos);
                }
                rule_names.push(rule.name, rule.line);
                pos += 1;
            }
        }

        let unmatched_entry = match global_auth {
            Some(true) => arena.authn(INSTANCE, forward),
            None if no_rules => arena.authn(INSTANCE, forward),
            _ => instance_tokens,
        };
        // (The arena's sharing map is as large as its nodes: gone now.)
        let mut nodes = arena.nodes;
        nodes.shrink_to_fit();

        let scope_labels: Vec<Box<str>> = owner_label
            .into_iter()
            .enumerate()
            .map(|(i, label)| match (i, label) {
                (0, _) => "instance".into(),
                (_, Some(label)) => label,
                (_, None) => format!("scope {i}").into(),
            })
            .collect();

        // A consumer's credentials are moved into the last scope that has
        // it (most consumers are in one), copied into any before.
        let mut consumers = consumers;
        let mut uses = vec![0u32; consumers.len()];
        for s in &scopes {
            for &id in &s.consumers {
                uses[id as usize] += 1;
            }
        }
        let compiled_scopes: Vec<CompiledScope> = scopes
            .iter()
            .zip(scope_labels)
            .map(|(s, label)| CompiledScope {
                label,
                settings: s.settings.clone(),
                clients: Clients::new(
                    &s.consumers,
                    &mut consumers,
                    &mut uses,
                    &s.settings,
                    dialect,
                ),
            })
            .collect();
        let consumer_scope = {
            let mut of = vec![INSTANCE; consumers.len()];
            // In reverse, so that a consumer several scopes share (Kong's
            // global consumers) belongs to the first: the instance.
            for (i, s) in scopes.iter().enumerate().rev() {
                s.consumers
                    .iter()
                    .for_each(|&c| of[c as usize] = i as ScopeId);
            }
            of
        };
        let published = published::Published::of(&scopes);
        drop(scopes);
        let mut consumer_names = Vec::with_capacity(consumers.len());
        let mut kong_consumers = Vec::new();
        for c in consumers {
            consumer_names.push(c.name);
            // (Only the Kong dialect's consumers have a Kong identity.)
            if dialect == Dialect::Kong {
                kong_consumers.push(c.kong.map(|k| *k).unwrap_or_default());
            }
        }

        let kong_routing = routes.iter().any(|r| {
            let o = r.options();
            !o.hosts.is_empty() || !o.paths.is_empty()
        });
        let routes: Vec<CompiledRoute> = routes
            .into_iter()
            .map(|r| CompiledRoute {
                upstream_text: r.options().upstream.as_ref().map(|u| u.to_string().into()),
                name: r.name,
                path_prefix: r.path_prefix,
                options: r.options,
            })
            .collect();
        let route_by_name = NameTable::new(
            routes.len(),
            (0..).zip(routes.iter().map(|r| &*r.name)),
            |i| &routes[i as usize].name,
        );
        let prefixes = (0..)
            .zip(&routes)
            .filter_map(|(i, r)| Some((i, r.path_prefix.as_deref()?)));
        let router = PathRouter::new(prefixes, |i| route_prefix(&routes, i));

        let claim_headers = {
            let mut h: Vec<Box<str>> = Vec::new();
            let issued = issuers.iter().flat_map(|i| &i.claims_to_headers);
            let introspected = introspections.iter().flat_map(|i| &i.payload_headers);
            for (_, name) in issued.chain(introspected) {
                if !h.iter().any(|k| **k == **name) {
                    h.push(name.as_str().into());
                }
            }
            h
        };
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        DecisionGraph {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            nodes,
            rule_entry,
            rule_names,
            unmatched_entry,
            published,
            issuers,
            introspections,
            claim_headers,
            shadowed,
            index,
            scopes: compiled_scopes,
            consumer_names,
            consumer_scope,
            sets,
            router,
            kong_routing,
            routes,
            route_by_name,
            consumer_header: consumer_header.map(String::into_boxed_str),
            dialect,
            kong_consumers,
        }
    }

    /// The introspection endpoints (the only URLs a `Fetch` may name, with
    /// a query string of its own).
    pub fn fetch_endpoints(&self) -> Vec<String> {
        let mut urls: Vec<String> = Vec::new();
        for i in &self.introspections {
            let base = i.endpoint.split('?').next().unwrap_or_default().to_string();
            if !urls.contains(&base) {
                urls.push(base);
            }
        }
        urls
    }

    /// External issuers' `jwks_url`s with their refresh intervals.
    pub fn jwks_urls(&self) -> Vec<(String, u32)> {
        let mut urls: Vec<(String, u32)> = Vec::new();
        for i in &self.issuers {
            if let crate::model::IssuerKeys::Url { url, refresh } = &i.keys {
                let refresh = u32::try_from(*refresh).unwrap_or(u32::MAX);
                match urls.iter_mut().find(|(u, _)| u == url) {
                    Some((_, r)) => *r = (*r).min(refresh),
                    None => urls.push((url.clone(), refresh)),
                }
            }
        }
        urls
    }

    /// The token endpoint's paths (each scope's `auth_path`, distinct; Kong's
    /// token and authorization endpoints in the Kong dialect).
    pub fn token_paths(&self) -> Vec<String> {
        if self.dialect == Dialect::Kong {
            return crate::kong::PATHS.iter().map(|p| p.to_string()).collect();
        }
        let mut paths: Vec<String> = Vec::new();
        for s in &self.scopes {
            let mut own = vec![s.settings.auth_path.clone()];
            if s.settings.revocation {
                own.extend([
                    "/oauth2/revoke".to_string(),
                    "/oauth2/introspect".to_string(),
                ]);
            }
            for p in own {
                if !paths.contains(&p) {
                    paths.push(p);
                }
            }
        }
        paths
    }

    /// Kong's identity of consumer `id`.
    pub(crate) fn kong_consumer(&self, id: ConsumerId) -> &KongConsumer {
        static NONE: KongConsumer = KongConsumer {
            id: String::new(),
            username: None,
            custom_id: None,
        };
        self.kong_consumers.get(id as usize).unwrap_or(&NONE)
    }

    /// The rules' names, in declaration order.
    pub fn rule_names(&self) -> Vec<String> {
        (0..self.rule_names.lines.len())
            .map(|pos| self.rule_names.get(pos).short())
            .collect()
    }

    /// The routes the policy declares, in order.
    pub fn routes(&self) -> Vec<RouteInfo> {
        self.routes
            .iter()
            .map(|r| RouteInfo {
                name: r.name.to_string(),
                path_prefix: r.path_prefix.as_deref().map(str::to_string),
                upstream: r.upstream().cloned(),
            })
            .collect()
    }

    /// Authentication scope `scope`, compiled (for the token endpoint).
    pub(crate) fn scope(&self, scope: ScopeId) -> &CompiledScope {
        &self.scopes[scope as usize]
    }

    /// The name of consumer `id`.
    pub(crate) fn consumer_name(&self, id: ConsumerId) -> &str {
        &self.consumer_names[id as usize]
    }

    /// Warnings for rules that can never match because earlier rules take
    /// every one of their keys.
    pub fn shadow_warnings(&self) -> Vec<Diagnostic> {
        self.shadowed
            .iter()
            .map(|s| {
                Diagnostic::placed(
                    crate::Severity::Warning,
                    s.at..s.at + 4,
                    s.line,
                    s.column,
                    format!(
                        "this {} never applies",
                        self.rule_names.get(s.rule as usize).label()
                    ),
                )
                .with_help(format!(
                    "{} matches everything it matches, and the first matching rule wins",
                    self.rule_names.get(s.by as usize).label()
                ))
            })
            .collect()
    }

    /// The id of consumer `name` (first declared), for tools and benchmarks.
    pub fn consumer_id(&self, name: &str) -> Option<ConsumerId> {
        self.consumer_names
            .iter()
            .position(|n| &**n == name)
            .map(|i| i as ConsumerId)
    }

    /// Number of nodes, rules and consumer sets (for tests and `graph`).
    pub fn stats(&self) -> (usize, usize, usize) {
        (self.nodes.len(), self.rule_entry.len(), self.sets.len())
    }
}

/// The path prefix of route `i` (empty if it has none).
fn route_prefix(routes: &[CompiledRoute], i: u32) -> &str {
    routes[i as usize]
        .path_prefix
        .as_deref()
        .unwrap_or_default()
}

/// Add a rule's keys to the index (moving them in): each that no earlier
/// rule took.
fn index_rule(index: &mut RuleIndex, matcher: Matcher, pos: RulePos) {
    match matcher {
        Matcher::Route(names) => {
            for n in names {
                index.add_route(n, pos);
            }
        }
        Matcher::RouteAndService(both) => {
            let (routes, services) = *both;
            for r in &routes {
                for s in &services {
                    index.add_route_service(r, s.clone(), pos);
                }
            }
        }
        Matcher::RoutePrefix(prefixes) => {
            for p in prefixes {
                index.route_prefix.insert(p, pos);
            }
        }
        Matcher::Service(names) => {
            for n in names {
                index.add_service(n, pos);
            }
        }
        Matcher::Domain(patterns) => {
            for p in patterns {
                match p {
                    DomainPattern::Exact(h) => index.add_domain_exact(h, pos),
                    DomainPattern::Suffix(s) => index.domain_suffix.insert(s, pos),
                    DomainPattern::Prefix(s) => index.domain_prefix.insert(s, pos),
                };
            }
        }
    }
}

/// Whether earlier rules took every key of `matcher`.
fn all_taken(index: &RuleIndex, matcher: &Matcher) -> bool {
    let all = |m: &FxHashMap<Box<str>, RulePos>, keys: &[Box<str>]| {
        keys.iter().all(|k| m.contains_key(k))
    };
    match matcher {
        Matcher::Route(names) => all(&index.route, names),
        Matcher::RouteAndService(both) => both
            .0
            .iter()
            .all(|r| index.route_service.get(r).is_some_and(|m| all(m, &both.1))),
        Matcher::RoutePrefix(prefixes) => prefixes.iter().all(|p| index.route_prefix.has(p)),
        Matcher::Service(names) => all(&index.service, names),
        Matcher::Domain(patterns) => patterns.iter().all(|p| match p {
            DomainPattern::Exact(h) => index.domain_exact.contains_key(h),
            DomainPattern::Suffix(s) => index.domain_suffix.has(s),
            DomainPattern::Prefix(s) => index.domain_prefix.has(s),
        }),
    }
}

/// For a fully shadowed rule: the earliest rule holding one of its keys.
fn earliest_claim(index: &RuleIndex, matcher: &Matcher) -> RulePos {
    let first = |m: &FxHashMap<Box<str>, RulePos>, k: &str| m.get(k).copied();
    let found = match matcher {
        Matcher::Route(n) => n.first().and_then(|k| first(&index.route, k)),
        Matcher::RouteAndService(both) => both
            .0
            .first()
            .zip(both.1.first())
            .and_then(|(r, s)| index.route_service.get(r).and_then(|m| first(m, s))),
        Matcher::RoutePrefix(p) => p.first().and_then(|k| index.route_prefix.first(k)),
        Matcher::Service(n) => n.first().and_then(|k| first(&index.service, k)),
        Matcher::Domain(p) => p.first().and_then(|d| match d {
            DomainPattern::Exact(h) => first(&index.domain_exact, h),
            DomainPattern::Suffix(s) => index.domain_suffix.first(s),
            DomainPattern::Prefix(s) => index.domain_prefix.first(s),
        }),
    };
    found.unwrap_or(0)
}
