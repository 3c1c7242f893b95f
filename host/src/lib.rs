//! Warden's wasmtime host: runs the policy engine inside its WebAssembly
//! component and supplies everything with a side effect.
//!
//! Data flow: [`component`] loads the guest component (embedded by
//! `build.rs`, compiled once and cached on disk by [`cache`]);
//! [`PolicyRuntime`] compiles one policy in a pool of guest instances and
//! answers `decide`/`explain` calls, each bounded in time and memory;
//! [`services`] implements what the guest imports (clock, randomness,
//! secrets) and grants it nothing else; [`gateway`] is the HTTP front end of
//! `warden serve`, turning each request into an [`OwnedRequest`] and each
//! decision into a reply or a forwarded request; [`reload`] compiles a
//! changed policy file into a new runtime for the gateway to swap in.

pub mod admin;
pub mod bindings;
pub mod cache;
pub mod component;
pub mod error;
pub mod gateway;
pub mod metrics;
pub mod reload;
pub mod request;
pub mod runtime;
pub mod services;
pub mod tls;

pub use component::{ComponentConfig, GUEST_WASM, GuestComponent};
pub use error::{HostError, LoadError};
pub use request::{FetchOutcome, OwnedRequest};
pub use runtime::{PolicyRuntime, RuntimeOptions, RuntimeStats};
pub use services::{Clock, ManualClock, SharedKeys, generate_key, load_keys};
pub use warden_engine::{
    Decision, Diagnostic, Forward, Notes, Reply, RouteInfo, Severity, TokenCheck, Upstream,
};

/// A fresh directory under the system temp dir for one unit test, named
/// after it and this process (removed by the test when it is done).
#[cfg(test)]
pub(crate) fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("warden-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
