//! Warden's WASI component: thin glue between the WIT contract (`wit/warden.wit`)
//! and the pure engine (`warden-engine`).
//!
//! It exports the `decisions` interface's `policy` resource over
//! [`warden_engine::Policy`] and implements [`warden_engine::Services`] over the
//! imported `services`, `store` and `keys` interfaces. Nothing else lives here: requests and
//! forwards/replies cross packed ([`warden_engine::packed`]), so the request the engine sees
//! borrows from the one buffer the host lowered, and the rest is field-for-field copies between
//! WIT records and engine types.
//!
//! The workspace's `unsafe_code` lint is allowed here, and only here, because
//! `wit_bindgen::generate!` and `export!` expand to `unsafe` ABI glue; this
//! file itself writes none.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

wit_bindgen::generate!({
    world: "guest",
    path: "../wit",
});

use std::cell::RefCell;

use exports::warden::policy::decisions::{Guest, GuestPolicy, Policy as PolicyHandle};
use warden::policy::keys;
use warden::policy::services;
use warden::policy::store;
use warden::policy::types as wit;
use warden_engine::packed::{self, Beside, PackError, RequestHead};
use warden_engine::{
    Alg, Decision, ForwardRef, KeyRef, Notes, SigCheck, StoreError, TokenCheck, VerifiedTokens,
};

/// The engine's window on the world, over the host's imports.
struct WitServices;

impl warden_engine::Services for WitServices {
    fn now(&self) -> u64 {
        services::now()
    }

    fn random_bytes(&self, buf: &mut [u8]) {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let bytes = services::random_bytes(len);
        // A well-behaved host returns exactly `len` bytes. If it returns fewer,
        // fail closed rather than leave predictable bytes in a token id.
        assert!(
            bytes.len() >= buf.len(),
            "host returned {} random bytes, {} requested",
            bytes.len(),
            buf.len()
        );
        buf.copy_from_slice(&bytes[..buf.len()]);
    }

    fn secret(&self, reference: &str) -> Option<Vec<u8>> {
        services::secret(reference)
    }

    fn verify_secret_hash(&self, phc: &str, presented: &[u8]) -> bool {
        services::verify_secret_hash(phc, presented)
    }

    fn signing_key(&self, alg: Alg) -> Option<String> {
        keys::signing_key(alg.name())
    }

    fn sign(&self, kid: &str, message: &str) -> Option<String> {
        keys::sign(kid, message)
    }

    fn verify_signature(
        &self,
        key: KeyRef<'_>,
        alg: Alg,
        message: &str,
        signature: &str,
    ) -> SigCheck {
        let key = match key {
            KeyRef::Own(kid) => keys::Key::HostKey(kid.to_string()),
            KeyRef::Jwk(jwk) => keys::Key::Jwk(jwk.to_string()),
            KeyRef::Remote { url, kid } => keys::Key::Remote(keys::RemoteKey {
                url: url.to_string(),
                kid: kid.map(str::to_string),
            }),
        };
        match keys::verify(&key, alg.name(), message, signature) {
            keys::SigCheck::Valid => SigCheck::Valid,
            keys::SigCheck::Invalid => SigCheck::Invalid,
            keys::SigCheck::UnknownKey => SigCheck::UnknownKey,
        }
    }

    fn public_keys(&self) -> String {
        keys::public_keys()
    }

    fn store_put(&self, key: &str, value: &[u8], ttl: u64) -> Result<(), StoreError> {
        store::put(key, value, ttl).map_err(store_error)
    }

    fn store_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        store::get(key).map_err(store_error)
    }

    fn store_take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        store::take(key).map_err(store_error)
    }

    fn store_delete(&self, key: &str) -> Result<(), StoreError> {
        store::delete(key).map_err(store_error)
    }

    fn revoke(&self, token_id: &str, until: u64) -> Result<(), StoreError> {
        store::revoke(token_id, until).map_err(store_error)
    }

    fn is_revoked(&self, token_id: &str) -> bool {
        store::is_revoked(token_id)
    }
}

fn store_error(e: store::StoreError) -> StoreError {
    match e {
        store::StoreError::Unavailable(why) => StoreError(why),
    }
}

/// Report panics through the `services` interface instead of WASI stderr (see
/// `guest-panicked` in the WIT), once per instance, before any code of ours
/// runs in an export.
fn report_panics_to_host() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info.to_string().replace('\n', " ");
            services::guest_panicked(&message);
        }));
    });
}

/// The component: exports the `decisions` interface.
struct Component;

impl Guest for Component {
    type Policy = CompiledPolicy;
}

/// The exported `policy` resource: one compiled policy, and the tokens this
/// instance has verified with it (an instance serves one call at a time, so
/// the memo needs no lock; each instance of a pool has its own).
struct CompiledPolicy {
    policy: warden_engine::Policy,
    verified: RefCell<VerifiedTokens>,
}

impl GuestPolicy for CompiledPolicy {
    fn compile(_name: String, source: String) -> Result<PolicyHandle, Vec<wit::Diagnostic>> {
        report_panics_to_host();
        warden_engine::use_hmac_sha256(host_hmac_sha256);
        match warden_engine::Policy::compile_owned(source, &WitServices) {
            Ok(policy) => Ok(PolicyHandle::new(CompiledPolicy {
                policy,
                verified: RefCell::new(VerifiedTokens::new(VerifiedTokens::DEFAULT_CAPACITY)),
            })),
            Err(diagnostics) => Err(diagnostics.iter().map(diagnostic_to_wit).collect()),
        }
    }

    fn decide(&self, req: wit::Request) -> wit::Decided {
        report_panics_to_host();
        #[cfg(feature = "fault-injection")]
        faults::inject(&req);
        let (decision, notes) = match unpack_request(&req) {
            Ok(head) => {
                let mut verified = self.verified.borrow_mut();
                let req = head.request(beside(&req));
                // Packed while it still borrows from the policy and the
                // request: a forward costs no string of its own.
                let (decision, notes) =
                    self.policy
                        .decide_borrowing(&req, &WitServices, &mut verified);
                (decision_to_wit(decision), notes)
            }
            Err(e) => (
                decision_to_wit(Decision::bad_request(format!(
                    "malformed request head: {e}"
                ))),
                Notes::default(),
            ),
        };
        wit::Decided {
            decision,
            rule: notes.rule,
            token: token_check_to_wit(notes.token),
        }
    }

    fn explain(&self, req: wit::Request) -> String {
        report_panics_to_host();
        match unpack_request(&req) {
            Ok(head) => self
                .policy
                .explain(&head.request(beside(&req)), &WitServices),
            Err(e) => format!("1. the request cannot be read: malformed request head: {e}\n"),
        }
    }

    fn graph(&self, req: Option<wit::Request>) -> String {
        report_panics_to_host();
        let Some(req) = req else {
            return self.policy.graph().to_dot();
        };
        match unpack_request(&req) {
            Ok(head) => self
                .policy
                .graph()
                .path_dot(&head.request(beside(&req)), &WitServices),
            // The graph alone: the request cannot be read.
            Err(_) => self.policy.graph().to_dot(),
        }
    }

    fn warnings(&self) -> Vec<wit::Diagnostic> {
        self.policy
            .warnings()
            .iter()
            .map(diagnostic_to_wit)
            .collect()
    }

    fn token_paths(&self) -> Vec<String> {
        self.policy.token_paths()
    }

    fn jwks_urls(&self) -> Vec<(String, u32)> {
        self.policy.jwks_urls()
    }

    fn fetch_endpoints(&self) -> Vec<String> {
        self.policy.fetch_endpoints()
    }

    fn rules(&self) -> Vec<String> {
        self.policy.rules()
    }

    fn routes(&self) -> Vec<wit::RouteInfo> {
        self.policy
            .routes()
            .into_iter()
            .map(|r| wit::RouteInfo {
                name: r.name,
                path_prefix: r.path_prefix,
                upstream: r.upstream.map(upstream_to_wit),
            })
            .collect()
    }
}

/// The packed head of a WIT request, read: its fields and headers borrow
/// from the one buffer the host lowered.
fn unpack_request(req: &wit::Request) -> Result<RequestHead<'_>, PackError> {
    RequestHead::unpack(&req.head)
}

/// What crosses beside the head.
fn beside(req: &wit::Request) -> Beside<'_> {
    Beside {
        body: req.body.as_deref(),
        proxy_terminated: req.proxy_terminated,
        keys_refreshed: req.keys_refreshed,
        fetched: req.fetched.as_ref().map(|f| match f {
            wit::Fetched::Response(r) => warden_engine::Fetched::Response {
                status: r.status,
                body: &r.body,
            },
            wit::Fetched::Failed(why) => warden_engine::Fetched::Failed(why),
        }),
    }
}

fn decision_to_wit(decision: Decision<ForwardRef<'_>>) -> wit::Decision {
    match decision {
        Decision::Forward(f) => wit::Decision::Forward(packed::pack_forward_ref(&f)),
        Decision::Reply(r) => wit::Decision::Reply(packed::pack_reply(&r)),
        Decision::NeedBody { max_bytes } => wit::Decision::NeedBody(max_bytes),
        Decision::RefreshKeys { url } => wit::Decision::RefreshKeys(url),
        Decision::Fetch(f) => wit::Decision::Fetch(wit::OutboundRequest {
            method: f.method,
            url: f.url,
            headers: f.headers,
            body: f.body,
        }),
    }
}

/// HS256 by the host, natively (`services.hmac-sha256`).
fn host_hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let (a, b, c, d) = services::hmac_sha256(key, message);
    let mut mac = [0; 32];
    for (chunk, word) in mac.chunks_exact_mut(8).zip([a, b, c, d]) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    mac
}

fn token_check_to_wit(check: TokenCheck) -> wit::TokenCheck {
    match check {
        TokenCheck::None => wit::TokenCheck::None,
        TokenCheck::Remembered => wit::TokenCheck::Remembered,
        TokenCheck::Verified => wit::TokenCheck::Verified,
        TokenCheck::IntrospectionCached => wit::TokenCheck::IntrospectionCached,
        TokenCheck::Introspected => wit::TokenCheck::Introspected,
        TokenCheck::Rejected => wit::TokenCheck::Rejected,
    }
}

fn upstream_to_wit(upstream: warden_engine::Upstream) -> wit::Upstream {
    match upstream {
        warden_engine::Upstream::Echo => wit::Upstream::Echo,
        warden_engine::Upstream::Http(h) => wit::Upstream::Http(wit::HttpUpstream {
            authority: h.authority,
            base_path: h.base_path,
        }),
        warden_engine::Upstream::H2c(h) => wit::Upstream::H2c(wit::HttpUpstream {
            authority: h.authority,
            base_path: h.base_path,
        }),
    }
}

fn diagnostic_to_wit(d: &warden_engine::Diagnostic) -> wit::Diagnostic {
    wit::Diagnostic {
        severity: match d.severity {
            warden_engine::Severity::Error => wit::Severity::Error,
            warden_engine::Severity::Warning => wit::Severity::Warning,
        },
        message: d.message.clone(),
        help: d.help.clone(),
        start: saturate(d.span.start),
        end: saturate(d.span.end),
        line: d.line,
        column: d.column,
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Faults on demand, for the host's fault-tolerance tests (feature
/// `fault-injection`; never in the shipped component).
#[cfg(feature = "fault-injection")]
mod faults {
    use super::wit;

    /// Misbehave as the request's `x-warden-fault` header asks.
    pub fn inject(req: &wit::Request) {
        let head = warden_engine::packed::RequestHead::unpack(&req.head).unwrap_or_default();
        let headers = head.headers;
        let fault = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("x-warden-fault"))
            .map(|(_, value)| *value);
        match fault {
            Some("loop") => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("alloc") => {
                // Megabyte after megabyte, kept: only the memory limit stops it.
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut block = Vec::<u8>::with_capacity(1 << 20);
                    block.push(1);
                    hoard.push(std::hint::black_box(block));
                }
            }
            Some("trap") => panic!("fault injected: trap"),
            _ => {}
        }
    }
}

export!(Component);
