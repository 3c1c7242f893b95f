//! The rule decision, Warden's native engine beside Cedar, in one run.
//!
//! What is measured: the decision "may this consumer (token already
//! verified) reach this route / this domain?" on the synthetic policy of
//! `warden_engine::synth::policy(n)` — n consumers `cK`, n routes `rK`
//! (path prefix `/rK`), and rules letting `cK` reach route `rK` and the hosts
//! under `*.dK.example.com` — for n = 10, 1,000 and 100,000, asked for the
//! *last* route / domain and its consumer (an Allow).
//!
//! - `warden_route/n`, `warden_domain/n`: exactly the engine suite's
//!   `rule_decision` group: `DecisionGraph::rule_verdict` on a 12-header
//!   request, which routes the path (or matches the wildcard domain), applies
//!   `global_auth` and the rule's `allow` set.
//! - `cedar_route/n`, `cedar_domain/n`: the same decision in Cedar
//!   (`cedar-policy` 4.x, schema-less), best-effort formulation. One policy,
//!   parsed once:
//!
//!   ```cedar
//!   permit(principal, action == Action::"access", resource)
//!   when { principal in resource.allowed };
//!   ```
//!
//!   Entities are built per request, as a host must: the host keeps, per
//!   route (per wildcard domain), its allowed consumers as pre-built
//!   `EntityUid`s in a `HashMap`; inside the timed closure it looks the route
//!   up (by name — the gateway's router already knows it; by the request
//!   host's parent domain for `*.dK.example.com`), builds the resource entity
//!   `Route::"rK"` (`Domain::"*.dK.example.com"`) with the `allowed` set and
//!   the principal `Consumer::"cK"` (no attributes, no parents), makes the
//!   `Entities` and the `Request`,
//!   and calls `Authorizer::is_authorized`. Only the route's own consumers
//!   enter the entity set, so Cedar is flat in n too. The routing itself is
//!   a `HashMap` lookup on the route name here, while Warden routes the path
//!   by prefix: that favours Cedar.
//! - `cedar_route_member/n`: the idiomatic hierarchy instead of a set
//!   attribute: the principal `Consumer::"cK"` has the routes and domains it
//!   may reach as parents (the host's consumer → resources index), the policy
//!   is `… when { principal in resource }`, no attributes at all.
//! - `cedar_route_context/n`: the fastest per-request formulation found:
//!   the route's allowed set goes into the request's `Context` (`… when {
//!   principal in context.allowed }`) and the entity store is empty, so no
//!   `Entities` is built at all.
//! - `cedar_route_prebuilt/n`: the most favourable case for Cedar, not the
//!   target's formulation: the host builds one `Entities` with every
//!   consumer and route once, outside the loop (as Warden compiles its graph
//!   once), and per request only builds the `Request` and authorizes.
//!
//! Before timing, each size asserts that Warden and every Cedar formulation
//! give the same answer for an allowed consumer (`c{n-1}`) and a denied one
//! (`c0`), so the loops measure real decisions.
//!
//! `cedar-policy` is a dev-dependency with `default-features = false`: the
//! `ipaddr`, `decimal` and `datetime` extensions are not used here.
//!
//! Not measured: one Cedar policy per route (`permit(principal ==
//! Consumer::"cK", action, resource == Route::"rK")`): Cedar's authorizer
//! evaluates every policy, so that grows linearly with n (≈ 12 µs at 10
//! routes, ≈ 1.1 ms at 1,000 on the project's machine).
//!
//! Run: `cargo bench -p warden-peers --bench rules_vs_cedar`
//! (on a busy machine: `… -- --warm-up-time 1 --measurement-time 3`).
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request as CedarRequest, RestrictedExpression,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use warden_engine::fixtures::pairs;
use warden_engine::internal::graph::Verdict;
use warden_engine::synth::LastRule;
use warden_engine::{FixedServices, Policy};

const NOW: u64 = 1_700_000_000;

const SET_POLICY: &str = r#"permit(principal, action == Action::"access", resource)
when { principal in resource.allowed };"#;

const CONTEXT_POLICY: &str = r#"permit(principal, action == Action::"access", resource)
when { principal in context.allowed };"#;

const MEMBER_POLICY: &str = r#"permit(principal, action == Action::"access", resource)
when { principal in resource };"#;

/// What a Cedar host keeps between requests: the entity types, the action,
/// the parsed policy sets, and the policy's data indexed for per-request
/// entity building.
struct CedarHost {
    consumer_ty: EntityTypeName,
    route_ty: EntityTypeName,
    action: EntityUid,
    authorizer: Authorizer,
    set_policy: PolicySet,
    member_policy: PolicySet,
    context_policy: PolicySet,
    /// route name → its allowed consumers.
    route_allowed: HashMap<String, Vec<EntityUid>>,
    /// wildcard domain `*.dK.example.com`, keyed `dK.example.com` → (resource
    /// id, its allowed consumers).
    domain_allowed: HashMap<String, (EntityUid, Vec<EntityUid>)>,
    /// consumer name → the routes and domains it may reach (for the hierarchy).
    consumer_parents: HashMap<String, Vec<EntityUid>>,
    /// every consumer and route, built once (`cedar_route_prebuilt`).
    all: Entities,
}

fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

impl CedarHost {
    fn new(n: usize) -> Self {
        let consumer_ty = EntityTypeName::from_str("Consumer").unwrap();
        let route_ty = EntityTypeName::from_str("Route").unwrap();
        let domain_ty = EntityTypeName::from_str("Domain").unwrap();
        let action = EntityUid::from_str(r#"Action::"access""#).unwrap();
        let mut route_allowed = HashMap::with_capacity(n);
        let mut domain_allowed = HashMap::with_capacity(n);
        let mut consumer_parents = HashMap::with_capacity(n);
        let mut all = Vec::with_capacity(2 * n);
        for k in 0..n {
            let c = uid(&consumer_ty, &format!("c{k}"));
            let r = uid(&route_ty, &format!("r{k}"));
            let d = uid(&domain_ty, &format!("*.d{k}.example.com"));
            route_allowed.insert(format!("r{k}"), vec![c.clone()]);
            domain_allowed.insert(format!("d{k}.example.com"), (d.clone(), vec![c.clone()]));
            consumer_parents.insert(format!("c{k}"), vec![r.clone(), d]);
            all.push(Entity::new_no_attrs(c.clone(), HashSet::new()));
            all.push(
                Entity::new(
                    r,
                    HashMap::from([(
                        "allowed".to_string(),
                        RestrictedExpression::new_set([RestrictedExpression::new_entity_uid(c)]),
                    )]),
                    HashSet::new(),
                )
                .unwrap(),
            );
        }
        CedarHost {
            consumer_ty,
            route_ty,
            action,
            authorizer: Authorizer::new(),
            set_policy: PolicySet::from_str(SET_POLICY).unwrap(),
            member_policy: PolicySet::from_str(MEMBER_POLICY).unwrap(),
            context_policy: PolicySet::from_str(CONTEXT_POLICY).unwrap(),
            route_allowed,
            domain_allowed,
            consumer_parents,
            all: Entities::from_entities(all, None).unwrap(),
        }
    }

    fn decide(&self, principal: EntityUid, resource: Entity, policies: &PolicySet) -> bool {
        let resource_uid = resource.uid();
        let entities = Entities::from_entities(
            [
                Entity::new_no_attrs(principal.clone(), HashSet::new()),
                resource,
            ],
            None,
        )
        .unwrap();
        let req = CedarRequest::new(
            principal,
            self.action.clone(),
            resource_uid,
            Context::empty(),
            None,
        )
        .unwrap();
        self.authorizer
            .is_authorized(&req, policies, &entities)
            .decision()
            == Decision::Allow
    }

    fn allowed_entity(uid: EntityUid, allowed: &[EntityUid]) -> Entity {
        let set = RestrictedExpression::new_set(
            allowed
                .iter()
                .map(|c| RestrictedExpression::new_entity_uid(c.clone())),
        );
        Entity::new(
            uid,
            HashMap::from([("allowed".to_string(), set)]),
            HashSet::new(),
        )
        .unwrap()
    }

    /// `principal in resource.allowed`, route entity built per request.
    fn route(&self, consumer: &str, route: &str) -> bool {
        let Some(allowed) = self.route_allowed.get(route) else {
            return true; // no rule covers the route; global_auth false
        };
        let resource = Self::allowed_entity(uid(&self.route_ty, route), allowed);
        self.decide(uid(&self.consumer_ty, consumer), resource, &self.set_policy)
    }

    /// The same for a wildcard domain: the host finds `*.dK.example.com` by
    /// the request host's parent domain.
    fn domain(&self, consumer: &str, authority: &str) -> bool {
        let Some((resource, allowed)) = authority
            .split_once('.')
            .and_then(|(_, parent)| self.domain_allowed.get(parent))
        else {
            return true;
        };
        let resource = Self::allowed_entity(resource.clone(), allowed);
        self.decide(uid(&self.consumer_ty, consumer), resource, &self.set_policy)
    }

    /// `principal in resource`: the consumer's reachable routes are its parents.
    fn route_member(&self, consumer: &str, route: &str) -> bool {
        if !self.route_allowed.contains_key(route) {
            return true;
        }
        let principal_uid = uid(&self.consumer_ty, consumer);
        let parents: HashSet<EntityUid> = self
            .consumer_parents
            .get(consumer)
            .map(|p| p.iter().cloned().collect())
            .unwrap_or_default();
        let resource_uid = uid(&self.route_ty, route);
        let entities = Entities::from_entities(
            [
                Entity::new_no_attrs(principal_uid.clone(), parents),
                Entity::new_no_attrs(resource_uid.clone(), HashSet::new()),
            ],
            None,
        )
        .unwrap();
        let req = CedarRequest::new(
            principal_uid,
            self.action.clone(),
            resource_uid,
            Context::empty(),
            None,
        )
        .unwrap();
        self.authorizer
            .is_authorized(&req, &self.member_policy, &entities)
            .decision()
            == Decision::Allow
    }

    /// `principal in context.allowed`: the route's allowed set travels in the
    /// request's context, with an empty entity store.
    fn route_context(&self, consumer: &str, route: &str) -> bool {
        let Some(allowed) = self.route_allowed.get(route) else {
            return true;
        };
        let set = RestrictedExpression::new_set(
            allowed
                .iter()
                .map(|c| RestrictedExpression::new_entity_uid(c.clone())),
        );
        let ctx = Context::from_pairs([("allowed".to_string(), set)]).unwrap();
        let req = CedarRequest::new(
            uid(&self.consumer_ty, consumer),
            self.action.clone(),
            uid(&self.route_ty, route),
            ctx,
            None,
        )
        .unwrap();
        self.authorizer
            .is_authorized(&req, &self.context_policy, &Entities::empty())
            .decision()
            == Decision::Allow
    }

    /// `principal in resource.allowed` against entities built once.
    fn route_prebuilt(&self, consumer: &str, route: &str) -> bool {
        let req = CedarRequest::new(
            uid(&self.consumer_ty, consumer),
            self.action.clone(),
            uid(&self.route_ty, route),
            Context::empty(),
            None,
        )
        .unwrap();
        self.authorizer
            .is_authorized(&req, &self.set_policy, &self.all)
            .decision()
            == Decision::Allow
    }
}

fn rules_vs_cedar(c: &mut Criterion) {
    let mut group = c.benchmark_group("rules_vs_cedar");
    for n in [10usize, 1_000, 100_000] {
        let host = FixedServices::at(NOW);
        let policy = Policy::compile(&warden_engine::synth::policy(n), &host)
            .expect("synthetic policy compiles");
        let g = policy.graph();
        let rule = LastRule::of(n);
        let consumer = g.consumer_id(&rule.consumer);
        let denied = g.consumer_id("c0");
        let hs = pairs(&rule.headers);
        let (by_route, by_domain) = rule.requests(&hs);
        let (last, route, domain) = (
            rule.consumer.clone(),
            rule.route.clone(),
            rule.domain.clone(),
        );

        let cedar = CedarHost::new(n);
        // Same answers on an allowed and a denied consumer, before any timing.
        for req in [&by_route, &by_domain] {
            assert_eq!(g.rule_verdict(req, consumer), Verdict::Allowed);
            assert_eq!(g.rule_verdict(req, denied), Verdict::Denied);
        }
        for (who, expect) in [(last.as_str(), true), ("c0", false)] {
            assert_eq!(cedar.route(who, &route), expect, "cedar_route {who}");
            assert_eq!(cedar.domain(who, &domain), expect, "cedar_domain {who}");
            assert_eq!(
                cedar.route_member(who, &route),
                expect,
                "cedar_route_member {who}"
            );
            assert_eq!(
                cedar.route_context(who, &route),
                expect,
                "cedar_route_context {who}"
            );
            assert_eq!(
                cedar.route_prebuilt(who, &route),
                expect,
                "cedar_route_prebuilt {who}"
            );
        }

        group.bench_with_input(BenchmarkId::new("warden_route", n), &by_route, |b, req| {
            b.iter(|| black_box(g.rule_verdict(black_box(req), black_box(consumer))))
        });
        group.bench_with_input(BenchmarkId::new("cedar_route", n), &route, |b, route| {
            b.iter(|| black_box(cedar.route(black_box(&last), black_box(route))))
        });
        group.bench_with_input(
            BenchmarkId::new("warden_domain", n),
            &by_domain,
            |b, req| b.iter(|| black_box(g.rule_verdict(black_box(req), black_box(consumer)))),
        );
        group.bench_with_input(BenchmarkId::new("cedar_domain", n), &domain, |b, domain| {
            b.iter(|| black_box(cedar.domain(black_box(&last), black_box(domain))))
        });
        group.bench_with_input(
            BenchmarkId::new("cedar_route_member", n),
            &route,
            |b, route| b.iter(|| black_box(cedar.route_member(black_box(&last), black_box(route)))),
        );
        group.bench_with_input(
            BenchmarkId::new("cedar_route_context", n),
            &route,
            |b, route| {
                b.iter(|| black_box(cedar.route_context(black_box(&last), black_box(route))))
            },
        );
        group.bench_with_input(
            BenchmarkId::new("cedar_route_prebuilt", n),
            &route,
            |b, route| {
                b.iter(|| black_box(cedar.route_prebuilt(black_box(&last), black_box(route))))
            },
        );
    }
    group.finish();
}

criterion_group!(benches, rules_vs_cedar);
criterion_main!(benches);
