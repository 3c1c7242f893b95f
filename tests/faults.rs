//! Guest faults, for real: a build of the guest with its `fault-injection`
//! feature (built by host/build.rs beside the shipped one, never embedded)
//! loops forever, allocates without bound or traps when a request carries
//! `x-warden-fault: loop | alloc | trap`. Each such request must fail closed —
//! 503, nothing forwarded — within 50 ms, while the gateway keeps serving
//! everyone else, and the broken instance must be discarded and replaced.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{Server, StopOnDrop};
use warden_engine::fixtures::{CONSUMER1 as C1, access_token, token_target};
use warden_host::{
    ComponentConfig, GuestComponent, HostError, OwnedRequest, PolicyRuntime, RuntimeOptions,
};

const FAULTS: [&str; 3] = ["loop", "alloc", "trap"];
/// How long a faulting request may take to be answered, end to end.
const FAIL_WITHIN: Duration = Duration::from_millis(50);

/// The fault-injection build of the guest.
fn faulty_wasm() -> &'static str {
    let path = env!("WARDEN_FAULT_GUEST_WASM");
    let len = std::fs::metadata(path).map_or(0, |m| m.len());
    assert!(
        len > 0,
        "the fault-injection guest was not built ({path} is empty or missing): with \
         WARDEN_GUEST_WASM set, also set WARDEN_FAULT_GUEST_WASM to a guest built with \
         `--features fault-injection`"
    );
    path
}

fn demo_source() -> String {
    std::fs::read_to_string(support::policy("demo.policy")).unwrap()
}

#[test]
fn faulting_requests_fail_closed_fast_while_others_are_served() {
    let server = Server::launch(&["--guest", faulty_wasm()], &[]);
    let token = server.token("gw", "/a/oauth2/token", C1);
    let ok = |s: &Server| s.get("gw", "/a/x", Some(&token)).status().as_u16();
    assert_eq!(
        ok(&server),
        200,
        "the faulty build behaves without the header"
    );

    // Well-behaved traffic on other threads the whole time.
    let stop = AtomicBool::new(false);
    let (served, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut slowest = Duration::ZERO;
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        for _ in 0..2 {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    match ok(&server) {
                        200 => served.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
        for round in 0..5 {
            for fault in FAULTS {
                let started = Instant::now();
                let resp = server
                    .client
                    .get(format!("{}/a/x", server.base))
                    .header("host", "gw")
                    .bearer_auth(&token)
                    .header("x-warden-fault", fault)
                    .send()
                    .expect("the gateway answers a faulting request");
                let took = started.elapsed();
                slowest = slowest.max(took);
                assert_eq!(resp.status(), 503, "{fault} (round {round}) fails closed");
                assert!(
                    took <= FAIL_WITHIN,
                    "{fault} (round {round}) took {took:?}, more than {FAIL_WITHIN:?}"
                );
                let body = resp.text().unwrap();
                assert!(!body.contains("method"), "nothing was forwarded: {body}");
            }
        }
    });
    let (served, failed) = (served.into_inner(), failed.into_inner());
    assert_eq!(
        failed, 0,
        "other requests failed while faults were injected"
    );
    assert!(served > 0, "other requests were served meanwhile");
    assert_eq!(
        ok(&server),
        200,
        "still serving after {} faults",
        5 * FAULTS.len()
    );
    eprintln!("slowest faulting request: {slowest:?}; {served} others served meanwhile");

    let logs = server.logs();
    for reason in ["timed out", "memory", "fault injected: trap"] {
        assert!(
            logs.to_lowercase().contains(reason),
            "the log says why a call failed ({reason}):\n{logs}"
        );
    }
    assert!(!logs.contains(&token), "no token in the logs");
}

#[test]
fn a_faulting_instance_is_discarded_and_replaced() {
    let component = Arc::new(
        GuestComponent::load(
            &std::fs::read(faulty_wasm()).unwrap(),
            &ComponentConfig::default(),
        )
        .unwrap(),
    );
    let runtime = PolicyRuntime::load_with(
        component,
        "demo.policy",
        &demo_source(),
        RuntimeOptions::default(),
    )
    .unwrap();
    let token = access_token(
        &runtime
            .decide(&OwnedRequest::get(&token_target("/a/oauth2/token", C1)).with_authority("gw"))
            .unwrap(),
    )
    .unwrap();
    let request = |fault: Option<&str>| {
        let req = OwnedRequest::get("/a/x")
            .with_authority("gw")
            .with_header("authorization", &format!("Bearer {token}"));
        match fault {
            Some(f) => req.with_header("x-warden-fault", f),
            None => req,
        }
    };
    for (i, fault) in FAULTS.into_iter().enumerate() {
        let before = runtime.stats();
        let started = Instant::now();
        let error = runtime.decide(&request(Some(fault))).unwrap_err();
        assert!(
            started.elapsed() <= FAIL_WITHIN,
            "{fault}: {:?}",
            started.elapsed()
        );
        match (fault, &error) {
            ("loop", HostError::Timeout { .. }) => {}
            ("alloc", HostError::Trap { reason, .. }) if reason.contains("memory") => {}
            ("trap", HostError::Trap { .. }) => {}
            _ => panic!("{fault}: unexpected error {error:?}"),
        }
        let after = runtime.stats();
        assert_eq!(
            after.instances_failed,
            before.instances_failed + 1,
            "{fault}"
        );
        assert_eq!(
            after.idle,
            before.idle - 1,
            "{fault}: the instance left the pool"
        );
        // The next call gets a fresh instance and a right answer.
        let decision = runtime.decide(&request(None)).unwrap();
        let forward = decision.forward().expect("forwarded");
        assert_eq!(forward.consumer.as_deref(), Some("consumer1"));
        assert_eq!(
            runtime.stats().instances_created,
            after.instances_created + 1,
            "{fault}: a new instance replaced the failed one (round {i})"
        );
    }
}
