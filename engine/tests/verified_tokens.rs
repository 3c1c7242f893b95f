//! The verified-token memo (`VerifiedTokens`) never changes a decision: a
//! repeat token is answered from the memo, yet expiry, audience (route-scoped
//! tokens), scopes and reloaded policies are judged exactly as without it. A
//! property test runs random sequences of requests — good, tampered, expired,
//! foreign and route-bound tokens, the clock moving — through a tiny memo
//! (constant eviction) and through none, and requires the same decisions.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use proptest::prelude::*;
use warden_engine::fixtures::{
    CONSUMER1 as C1, HIGRESS_SAMPLE_TOKEN, access_token, pairs, token_target,
};
use warden_engine::{Decision, FixedServices, Notes, Policy, TokenCheck, VerifiedTokens, fixtures};

const NOW: u64 = 1_700_000_000;
/// Demo and route-scoped policies: token lifetime 7,200 s, clock skew 60 s.
const TTL: u64 = 7_200;

fn source(name: &str) -> String {
    let path = format!("{}/../policies/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

fn compile(src: &str) -> Policy {
    Policy::compile(src, &FixedServices::at(NOW)).unwrap()
}

/// GET `target` with an optional bearer token, at `now`, through `memo` when given.
fn get(
    policy: &Policy,
    now: u64,
    target: &str,
    token: Option<&str>,
    memo: Option<&mut VerifiedTokens>,
) -> Decision {
    let headers: Vec<(String, String)> = token
        .map(|t| vec![("authorization".into(), format!("Bearer {t}"))])
        .unwrap_or_default();
    let headers = pairs(&headers);
    let req = fixtures::get("localhost", target, &headers);
    let host = FixedServices::at(now);
    match memo {
        Some(memo) => policy.decide_with(&req, &host, memo),
        None => policy.decide(&req, &host),
    }
}

fn token(policy: &Policy, path: &str) -> String {
    access_token(&get(policy, NOW, &token_target(path, C1), None, None)).unwrap()
}

fn outcome(d: &Decision) -> String {
    match d {
        Decision::Forward(f) => format!("forward {:?}", f.consumer),
        Decision::Reply(r) => format!("{} {}", r.status, r.reason),
        Decision::NeedBody { max_bytes } => format!("need body {max_bytes}"),
        Decision::RefreshKeys { url } => format!("refresh keys {url}"),
        Decision::Fetch(f) => format!("fetch {}", f.url),
    }
}

#[test]
fn a_repeat_token_is_answered_from_the_memo() {
    let policy = compile(&source("demo.policy"));
    let t = token(&policy, "/a/oauth2/token");
    let mut memo = VerifiedTokens::new(16);
    for _ in 0..3 {
        let d = get(&policy, NOW, "/a/items", Some(&t), Some(&mut memo));
        assert_eq!(outcome(&d), "forward Some(\"consumer1\")");
    }
    let stats = memo.stats();
    assert_eq!((stats.misses, stats.hits, stats.entries), (1, 2, 1));
}

/// The notes of a decision say which rule the request entered and whether
/// its token was verified now, remembered, refused or absent.
#[test]
fn the_notes_name_the_rule_and_how_the_token_was_checked() {
    let policy = compile(&source("demo.policy"));
    assert_eq!(policy.rules(), ["routes", "domains"]);
    let t = token(&policy, "/a/oauth2/token");
    let mut memo = VerifiedTokens::new(16);
    let mut noted = |host: &str, target: &str, token: Option<&str>, now: u64| {
        let headers: Vec<(String, String)> = token
            .map(|t| vec![("authorization".into(), format!("Bearer {t}"))])
            .unwrap_or_default();
        let headers = pairs(&headers);
        let req = fixtures::get(host, target, &headers);
        let (d, notes) = policy.decide_noted(&req, &FixedServices::at(now), &mut memo);
        (outcome(&d), notes)
    };
    let at = |rule: Option<u32>, token| Notes { rule, token };
    let forward = "forward Some(\"consumer1\")".to_string();
    assert_eq!(
        noted("gw", "/a/x", Some(&t), NOW),
        (forward.clone(), at(Some(0), TokenCheck::Verified))
    );
    assert_eq!(
        noted("gw", "/b/x", Some(&t), NOW),
        (forward, at(Some(0), TokenCheck::Remembered))
    );
    // Remembered, but expired now: refused.
    assert_eq!(
        noted("gw", "/a/x", Some(&t), NOW + TTL + 3_600).1,
        at(Some(0), TokenCheck::Rejected)
    );
    assert_eq!(
        noted("gw", "/a/x", Some("not.a.jwt"), NOW).1,
        at(Some(0), TokenCheck::Rejected)
    );
    assert_eq!(
        noted("api.example.com", "/x", None, NOW).1,
        at(Some(1), TokenCheck::None)
    );
    // No rule matches `/open` on another host: passes, nothing checked.
    assert_eq!(
        noted("gw", "/open", Some(&t), NOW),
        ("forward None".to_string(), at(None, TokenCheck::None))
    );
}

#[test]
fn a_remembered_token_still_expires() {
    let policy = compile(&source("demo.policy"));
    let t = token(&policy, "/a/oauth2/token");
    let mut memo = VerifiedTokens::new(16);
    let ok = get(&policy, NOW, "/a/x", Some(&t), Some(&mut memo));
    assert!(ok.forward().is_some());
    // Within the skew after `exp`: still good; one second later: expired.
    let edge = NOW + TTL + 60;
    assert!(
        get(&policy, edge, "/a/x", Some(&t), Some(&mut memo))
            .forward()
            .is_some()
    );
    let late = get(&policy, edge + 1, "/a/x", Some(&t), Some(&mut memo));
    assert_eq!(outcome(&late), "401 token expired");
    assert_eq!(memo.stats().hits, 2, "both answered from the memo");
}

#[test]
fn a_remembered_route_token_stays_on_its_route() {
    let policy = compile(&source("route-scoped.policy"));
    let ta = token(&policy, "/a/oauth2/token");
    let mut memo = VerifiedTokens::new(16);
    assert!(
        get(&policy, NOW, "/a/x", Some(&ta), Some(&mut memo))
            .forward()
            .is_some()
    );
    let elsewhere = get(&policy, NOW, "/b/x", Some(&ta), Some(&mut memo));
    assert_eq!(
        outcome(&elsewhere),
        "401 token audience does not match this route"
    );
    assert_eq!(memo.stats().hits, 1, "refused on a hit, by its audience");
}

#[test]
fn a_memo_never_carries_over_to_another_policy() {
    let demo = source("demo.policy");
    let before = compile(&demo);
    let t = token(&before, "/a/oauth2/token");
    let mut memo = VerifiedTokens::new(16);
    assert!(
        get(&before, NOW, "/a/x", Some(&t), Some(&mut memo))
            .forward()
            .is_some()
    );
    // The same policy with consumer1's secret rotated: its old tokens die.
    let rotated = compile(&demo.replace(C1.1, "rotated-secret-xxxx-xxxx-xxxxxxxxxxxx"));
    let d = get(&rotated, NOW, "/a/x", Some(&t), Some(&mut memo));
    assert_eq!(outcome(&d), "401 token signature does not verify");
    assert_eq!(memo.stats().hits, 0);
}

/// A token, by index: fresh for route-a / route-b (route-scoped policy) or
/// for any route (demo), the Higress sample, tampered, truncated, garbage.
fn pick(tokens: &[String], i: usize) -> Option<&str> {
    tokens.get(i).map(String::as_str)
}

fn tokens_for(policy: &Policy) -> Vec<String> {
    let a = token(policy, "/a/oauth2/token");
    let b = token(policy, "/b/oauth2/token");
    let mut tampered = a.clone();
    tampered.pop();
    tampered.push(if a.ends_with('A') { 'B' } else { 'A' });
    vec![
        a.clone(),
        b,
        HIGRESS_SAMPLE_TOKEN.to_string(),
        tampered,
        a[..a.len() - 10].to_string(),
        "x.y.z".to_string(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_memo_never_changes_a_decision(
        policy_name in prop::sample::select(vec!["demo.policy", "route-scoped.policy", "shared-tokens.policy"]),
        capacity in 1usize..6,
        steps in prop::collection::vec((0usize..8, 0usize..4, -100i64..8_000), 1..30),
    ) {
        let policy = compile(&source(policy_name));
        let tokens = tokens_for(&policy);
        let mut memo = VerifiedTokens::new(capacity);
        for (t, p, dt) in steps {
            let path = ["/a/x", "/b/x", "/c", "/a"][p];
            let now = NOW.saturating_add_signed(dt);
            let with = get(&policy, now, path, pick(&tokens, t), Some(&mut memo));
            let without = get(&policy, now, path, pick(&tokens, t), None);
            prop_assert_eq!(&with, &without, "token {} on {} at +{}", t, path, dt);
        }
    }
}
