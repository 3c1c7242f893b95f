//! Arbitrary request records (what the guest's WIT decoding hands the engine)
//! → `Policy::decide` and `Policy::explain` of the demo and gateway-wide
//! policies. The request crosses as the WIT carries it: its head packed into
//! one buffer and unpacked again (which must give it back exactly); the body
//! bytes are also read as a packed head, header block, forward and reply,
//! each of which must fail cleanly or read back to exactly those bytes.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use warden_engine::packed::{
    Beside, RequestHead, pack_forward, pack_headers, pack_reply, unpack_forward, unpack_headers,
    unpack_reply,
};
use warden_engine::{FixedServices, Policy};

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
    let sent = RequestHead {
        method: &input.method,
        scheme: if input.https { "https" } else { "http" },
        authority: &input.authority,
        path: &input.path,
        query: &input.query,
        route: input.route.as_deref(),
        service: input.service.as_deref(),
        peer: input.peer.as_deref(),
        trusted_user: None,
        headers: owned.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect(),
    };
    let packed = sent.pack();
    let head = RequestHead::unpack(&packed).expect("a packed head unpacks");
    assert_eq!(head, sent);
    let block = pack_headers(head.headers.iter().copied());
    assert_eq!(unpack_headers(&block).expect("a packed block unpacks"), head.headers);
    odd_bytes(&input.body);
    let req = head.request(
        Beside {
            body: Some(&input.body),
            proxy_terminated: input.proxy_terminated,
            keys_refreshed: false,
            fetched: None,
        },
    );
    let host = FixedServices::at(NOW.saturating_add_signed(input.now_offset as i64));
    // Decided on the head alone too, as the gateway first does.
    let head = warden_engine::Request { body: None, ..req };
    for policy in policies() {
        let _ = policy.decide(&req, &host);
        let _ = policy.decide(&head, &host);
        let _ = policy.explain(&req, &host);
    }
});

/// Bytes read as each packed form: an error, or exactly these bytes again.
fn odd_bytes(bytes: &[u8]) {
    if let Ok(odd) = unpack_headers(bytes) {
        assert_eq!(pack_headers(odd.iter().copied()), bytes, "unpack is exact");
    }
    if let Ok(head) = RequestHead::unpack(bytes) {
        assert_eq!(head.pack(), bytes, "a head reads back exactly");
    }
    if let Ok(forward) = unpack_forward(bytes) {
        assert_eq!(pack_forward(&forward), bytes, "a forward reads back exactly");
    }
    if let Ok(reply) = unpack_reply(bytes) {
        assert_eq!(pack_reply(&reply), bytes, "a reply reads back exactly");
    }
}
