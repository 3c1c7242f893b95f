//! How many allocations the engine makes for one request on the hot path:
//! a repeated token (answered from the verified-token memo) on the demo
//! policy, decided and packed as the guest packs it. The guest runs this same
//! code on every such request, so each allocation here is one of the guest's
//! allocator calls per request (BENCHMARKS.md, round two, target 2).
//!
//! A counting global allocator, counting only on the thread and only while
//! a test asks it to. The count is pinned: a change that adds an
//! allocation to the hot path fails here and says how many it made. Two are
//! left: the slice of (name, value) pairs the head is read into, and the
//! buffer the forward is packed into (the one the guest returns). Before
//! the evaluator's borrowing forward there were ten.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code may unwrap

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use warden_engine::fixtures::{
    CONSUMER1, access_token, get, pairs, realistic_headers, token_target,
};
use warden_engine::packed::{RequestHead, pack_forward_ref};
use warden_engine::{Decision, FixedServices, Policy, VerifiedTokens};

struct Counting;

thread_local! {
    /// `Some(n)`: counting, `n` so far.
    static COUNT: Cell<Option<usize>> = const { Cell::new(None) };
}

// `GlobalAlloc` is an unsafe trait; this one only counts and hands every
// call to the system allocator as it came.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = COUNT.try_with(|c| c.set(c.get().map(|n| n + 1)));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = COUNT.try_with(|c| c.set(c.get().map(|n| n + 1)));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The allocations (and reallocations) `f` makes on this thread.
fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    COUNT.with(|c| c.set(Some(0)));
    let out = f();
    let n = COUNT.with(|c| c.replace(None)).unwrap_or_default();
    (n, out)
}

const NOW: u64 = 1_700_000_000;

fn demo() -> (Policy, FixedServices) {
    let host = FixedServices::at(NOW);
    let policy = Policy::compile(include_str!("../../policies/demo.policy"), &host).unwrap();
    (policy, host)
}

fn token(policy: &Policy, host: &FixedServices) -> String {
    let target = token_target("/a/oauth2/token", CONSUMER1);
    access_token(&policy.decide(&get("test.com", &target, &[]), host)).unwrap()
}

#[test]
fn a_repeated_token_is_decided_and_packed_in_few_allocations() {
    let (policy, host) = demo();
    let t = token(&policy, &host);
    let owned = realistic_headers(Some(&t));
    let head = RequestHead {
        method: "GET",
        scheme: "http",
        authority: "gw.example.org",
        path: "/a/items",
        headers: pairs(&owned),
        ..RequestHead::default()
    }
    .pack();
    let mut memo = VerifiedTokens::new(VerifiedTokens::DEFAULT_CAPACITY);
    let decide = |memo: &mut VerifiedTokens| {
        // What the guest does with the head it was handed: read it, decide,
        // pack the forward (which it then returns).
        let head = RequestHead::unpack(&head).unwrap();
        let req = head.request(Default::default());
        let (decision, _) = policy.decide_borrowing(&req, &host, memo);
        match decision {
            Decision::Forward(f) => pack_forward_ref(&f),
            other => panic!("not a forward: {other:?}"),
        }
    };
    // The first time verifies the token and remembers it.
    let first = decide(&mut memo);
    let (n, again) = allocations(|| decide(&mut memo));
    assert_eq!(again, first);
    println!("a repeated token: {n} allocations");
    // Reading the head (its headers' slice) and the buffer returned.
    assert_eq!(n, 2, "allocations per repeated-token decision");
}
