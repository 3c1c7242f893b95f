//! Token-endpoint requests: the input is split on 0xFF bytes into
//! (method selector byte, query, content-type, body, authorization header);
//! then `oauth::parse_request` and a `Policy::decide` of the demo policy on
//! `/oauth2/token`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use warden_engine::internal::oauth;
use warden_engine::{FixedServices, Policy, Request};

const DEMO: &str = include_str!("../../policies/demo.policy");
const NOW: u64 = 1_700_000_000;
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "HEAD", "post", "OPTIONS"];

fn demo() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| Policy::compile(DEMO, &FixedServices::at(NOW)).expect("demo.policy compiles"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let method = METHODS[selector as usize % METHODS.len()];
    let mut parts = rest.splitn(4, |&b| b == 0xFF);
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let content_type = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let body = parts.next().unwrap_or_default();
    let authorization = parts.next().map(String::from_utf8_lossy);

    let mut headers = vec![("content-type".to_string(), content_type.into_owned())];
    if let Some(a) = authorization {
        headers.push(("authorization".to_string(), a.into_owned()));
    }
    let req = Request {
        method,
        scheme: "https",
        authority: "gw.example.org",
        path: "/oauth2/token",
        query: &query,
        headers: &warden_engine::fixtures::pairs(&headers),
        body: Some(body),
        ..Default::default()
    };
    let _ = oauth::parse_request(&req);
    let host = FixedServices::at(NOW);
    let _ = demo().decide(&req, &host);
});
