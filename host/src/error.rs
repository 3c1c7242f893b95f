//! The host layer's errors: what can go wrong outside the policy text.
//!
//! Problems *in* a policy are not errors of this layer: they are
//! [`warden_engine::Diagnostic`]s, returned by [`crate::PolicyRuntime::load`]
//! inside [`LoadError::Invalid`]. Everything else — the component failing to
//! load, a guest call trapping or running out of time, a bad `WARDEN_NOW`, a
//! file that cannot be read, a socket that cannot be bound — is a
//! [`HostError`]. On the request path every `HostError` fails closed (503).

use std::path::PathBuf;

use warden_engine::Diagnostic;

/// An error of the wasmtime host, the CLI or the gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The wasmtime engine, the component or its linker could not be set up.
    #[error("could not load the guest component: {0:#}")]
    Component(anyhow::Error),

    /// A guest instance could not be created (e.g. the instance pool is full).
    #[error("could not instantiate the guest: {0:#}")]
    Instantiate(anyhow::Error),

    /// A guest call ran past its deadline and was interrupted.
    #[error("guest call `{call}` timed out after {deadline_ms} ms")]
    Timeout {
        call: &'static str,
        deadline_ms: u128,
    },

    /// A guest call trapped (a panic in the engine, a memory limit, …).
    #[error("guest call `{call}` trapped: {reason}")]
    Trap {
        call: &'static str,
        /// One line: the guest's panic message, or the trap's root cause.
        reason: String,
        /// The full error, with the wasm backtrace.
        #[source]
        source: anyhow::Error,
    },

    /// The policy compiled when the runtime was loaded but not in a new
    /// instance (e.g. a secret file it references has since disappeared).
    #[error(
        "the policy no longer compiles in a new guest instance ({errors} error(s)); a secret it references may have changed"
    )]
    Recompile { errors: usize },

    /// The guest answered with a packed forward or reply that does not read
    /// (`warden_engine::packed`): a guest bug, failed closed.
    #[error("the guest's decision does not read: {0}")]
    BadDecision(warden_engine::packed::PackError),

    /// The policy could not be asked at all (host-side failure).
    #[error("policy evaluation unavailable: {0}")]
    Unavailable(&'static str),

    /// `WARDEN_NOW` is set but is not a whole number of seconds.
    #[error("invalid `WARDEN_NOW` value `{0}`: expected whole seconds since the Unix epoch")]
    InvalidNow(String),

    /// A file the host was asked to read could not be read.
    #[error("could not read `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A configuration value (listen address, upstream URL, header, …) is invalid.
    #[error("{0}")]
    Config(String),

    /// The gateway could not bind or serve.
    #[error("gateway I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a policy could not be loaded: it is invalid, or the host failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The policy text has errors; every one found, with spans (warnings too).
    #[error("policy `{name}` does not compile ({} error(s))", count_errors(.diagnostics))]
    Invalid {
        name: String,
        diagnostics: Vec<Diagnostic>,
    },

    /// The host could not compile it at all.
    #[error(transparent)]
    Host(#[from] HostError),
}

fn count_errors(diagnostics: &[Diagnostic]) -> usize {
    diagnostics.iter().filter(|d| d.is_error()).count()
}
