//! Arbitrary request records (what the guest's WIT decoding hands the engine)
//! → `Policy::decide` and `Policy::explain` of the demo and gateway-wide
//! policies. The headers cross as the WIT carries them: packed into one block
//! and unpacked again (which must give them back exactly); the body bytes are
//! also read as a header block, which must fail cleanly or unpack.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use warden_engine::{FixedServices, Policy, Request, pack_headers, unpack_headers};

const DEMO: &str = include_str!("../../policies/demo.policy");
const GATEWAY_WIDE: &str = include_str!("../../policies/gateway-wide.policy");
const NOW: u64 = 1_700_000_000;

#[derive(Debug, Arbitrary)]
struct Input {
    method: String,
    https: bool,
    /// TLS ended at a trusted proxy (Kong's `accept_http_if_already_terminated`).
    proxy_terminated: bool,
    authority: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    route: Option<String>,
    service: Option<String>,
    peer: Option<String>,
    now_offset: i32,
    /// Last, so it takes the rest of the input.
    body: Vec<u8>,
}

fn policies() -> &'static [Policy; 2] {
    static P: OnceLock<[Policy; 2]> = OnceLock::new();
    P.get_or_init(|| {
        let host = FixedServices::at(NOW);
        [
            Policy::compile(DEMO, &host).expect("demo.policy compiles"),
            Policy::compile(GATEWAY_WIDE, &host).expect("gateway-wide.policy compiles"),
        ]
    })
}

fuzz_target!(|input: Input| {
    let mut owned = input.headers;
    owned.truncate(16);
    let block = pack_headers(owned.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let headers = unpack_headers(&block).expect("a packed block unpacks");
    assert!(headers.iter().copied().eq(owned.iter().map(|(n, v)| (n.as_str(), v.as_str()))));
    if let Ok(odd) = unpack_headers(&input.body) {
        assert_eq!(pack_headers(odd.iter().copied()), input.body, "unpack is exact");
    }
    let req = Request {
        method: &input.method,
        scheme: if input.https { "https" } else { "http" },
        proxy_terminated: input.proxy_terminated,
        authority: &input.authority,
        path: &input.path,
        query: &input.query,
        headers: &headers,
        body: Some(&input.body),
        route: input.route.as_deref(),
        service: input.service.as_deref(),
        peer: input.peer.as_deref(),
        trusted_user: None,
        keys_refreshed: false,
        fetched: None,
    };
    let host = FixedServices::at(NOW.saturating_add_signed(input.now_offset as i64));
    // Decided on the head alone too, as the gateway first does.
    let head = Request { body: None, ..req };
    for policy in policies() {
        let _ = policy.decide(&req, &host);
        let _ = policy.decide(&head, &host);
        let _ = policy.explain(&req, &host);
    }
});
