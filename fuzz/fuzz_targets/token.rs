//! Bearer token bytes → `token::parse` (+ `verify` with consumer1's secret),
//! and a full `Policy::decide` of the demo policy with the input as
//! `Authorization: Bearer <input>` on `/a`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use warden_engine::fixtures::{CONSUMER1, HIGRESS_SAMPLE_IAT};
use warden_engine::internal::model::Secret;
use warden_engine::internal::token::{self, Expect};
use warden_engine::{Alg, FixedServices, Policy, Request};

const DEMO: &str = include_str!("../../policies/demo.policy");
/// Inside the Higress sample token's validity: `verify` accepts it fully.
const SAMPLE_NOW: u64 = HIGRESS_SAMPLE_IAT + 60;
/// When the `engine-issued` seed was issued (+60 s): `decide` accepts it fully.
const NOW: u64 = 1_700_000_060;

fn demo() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| Policy::compile(DEMO, &FixedServices::at(NOW)).expect("demo.policy compiles"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(unverified) = token::parse(input, Alg::HS256) {
        let expect = Expect {
            issuer: "Higress-Gateway",
            consumer: "consumer1",
            audience: Some("default"),
            now: SAMPLE_NOW,
            skew: 60,
        };
        let signing = token::Signing::Hmac(Secret::new(CONSUMER1.1));
        let _ = unverified.verify(&signing, &expect, &FixedServices::at(NOW));
    }
    let credential = format!("Bearer {input}");
    let headers = [("authorization", credential.as_str())];
    let req = Request {
        method: "GET",
        scheme: "http",
        authority: "gw.example.org",
        path: "/a",
        headers: &headers,
        ..Default::default()
    };
    let host = FixedServices::at(NOW);
    let _ = demo().decide(&req, &host);
});
