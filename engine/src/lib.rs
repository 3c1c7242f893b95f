//! Warden's policy engine: policy text → AST → checked model → decision graph → decision.
//!
//! The engine is pure: it does no I/O and has no wasm-specific code. Everything
//! with a side effect comes through the [`Services`] trait, which the WASI guest
//! implements over WIT imports and native callers implement directly.
//!
//! The stages are separate modules with separate types; nothing downstream
//! re-parses or re-checks:
//! - `syntax`: a hand-written recursive-descent parser (nom's token-level
//!   parsers and error type) from text to an AST whose nodes carry byte spans;
//! - `model`: name resolution and every semantic check, producing a checked
//!   model or [`Diagnostic`]s with spans; `upstream` parses route upstreams;
//! - `graph`: compiles the model into a decision graph (indexes built, names
//!   resolved) and walks it for each request;
//! - `oauth`: the token endpoint (RFC 6749 client_credentials);
//! - `kong`: Kong's endpoints and access rules (`dialect kong`), with the
//!   host's store for codes, refresh tokens and revocations;
//! - `token`: JWT access tokens (RFC 9068, Higress-compatible HS256, or
//!   signed by the host's keys);
//! - `keys`: algorithms and the host's signing keys (`KeyRing`, natively);
//! - `external`: tokens of external issuers (`jwt_issuer`);
//! - `introspect`: opaque tokens, by RFC 7662 introspection (Gravitee);
//! - `revocation`: RFC 7009 revocation and RFC 7662 introspection of the
//!   scope's own tokens.
//! - `packed` (public): the one-buffer forms in which requests and
//!   decisions cross the component boundary, for every host.
//!
//! The public surface is [`Policy`] and the types it speaks (listed below);
//! the stages themselves are private, reachable for Warden's own tests and
//! fuzzers through the hidden `internal` module. Test data and benchmark
//! policies (`fixtures`, `synth`) need the `test-util` feature.
#![forbid(unsafe_code)]

mod diagnostic;
mod external;
#[cfg(feature = "test-util")]
pub mod fixtures;
mod format;
mod graph;
mod hmac_crypto;
mod introspect;
mod keys;
mod kong;
mod model;
mod oauth;
pub mod packed;
pub mod policy_tests;
mod request;
mod revocation;
mod secret_hash;
mod services;
mod store;
mod syntax;
#[cfg(feature = "test-util")]
pub mod synth;
mod token;
mod upstream;

// The public surface: what a host embedding the engine needs.
pub use diagnostic::{Diagnostic, Severity, line_col};
pub use format::{format, quote};
pub use graph::VerifiedTokens;
pub use hmac_crypto::{hmac_sha256, use_hmac_sha256};
pub use keys::{Alg, KeyRef, SigCheck};
#[cfg(feature = "rust-crypto")]
pub use keys::{HostKey, KeyError, KeyRing, verify_jwk};
pub use request::{
    Decision, Fetched, Forward, ForwardRef, Notes, Outbound, Reply, Request, SetHeaders, TokenCheck,
};
#[cfg(feature = "hash-verify")]
pub use secret_hash::hash_argon2id;
pub use secret_hash::verify as verify_secret_hash;
pub use services::{FixedServices, Services};
pub use store::{IssuedToken, MEMORY_STORE_CAPACITY, MemoryStore, StoreError, TOKEN_SPACE};
pub use upstream::{HttpUpstream, HttpUpstreamRef, Upstream, UpstreamError, UpstreamRef};

/// The stages' own types, for Warden's fuzz targets, benchmarks and
/// differential tests: no stability promise, not for embedding hosts.
#[doc(hidden)]
#[rustfmt::skip]
pub mod internal {
    pub mod diagnostic { pub use crate::diagnostic::*; } // rendering, masking, capping
    pub mod graph { pub use crate::graph::*; } // the decision graph, its indexes, the memo
    pub mod kong { pub use crate::kong::*; } // Kong's endpoints and access
    pub mod model { pub use crate::model::*; } // the checked model
    pub mod oauth { pub use crate::oauth::*; } // the token endpoint
    pub mod secret_hash { pub use crate::secret_hash::*; } // PHC hashes of client secrets
    pub mod syntax { pub use crate::syntax::*; } // the policy parser
    pub mod token { pub use crate::token::*; } // JWT access tokens
}

use graph::DecisionGraph;

/// A route the policy declares (for a standalone gateway's own routing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub name: String,
    pub path_prefix: Option<String>,
    /// `None`: the host's default upstream.
    pub upstream: Option<Upstream>,
}

/// A compiled policy, ready to decide requests.
#[derive(Debug)]
pub struct Policy {
    graph: DecisionGraph,
    warnings: Vec<Diagnostic>,
}

impl Policy {
    /// Parse, check and compile `source`. Secrets referenced by `env:`/`file:`
    /// are resolved through `host` now, once. On failure, every error found
    /// (and any warnings) is returned.
    pub fn compile(source: &str, services: &dyn Services) -> Result<Policy, Vec<Diagnostic>> {
        let (model, warnings) = Self::check(source, services)?;
        Ok(Self::build(model, warnings))
    }

    /// [`Self::compile`], dropping the text as soon as it is checked: the
    /// graph is built without it, in the memory the text gave back. For a
    /// host that has no other use for the text: the WASI guest, whose
    /// linear memory never shrinks (a 100,000-consumer policy's peak is then
    /// its check's, not the check's plus the graph's).
    pub fn compile_owned(
        source: String,
        services: &dyn Services,
    ) -> Result<Policy, Vec<Diagnostic>> {
        let (model, warnings) = Self::check(&source, services)?;
        drop(source);
        Ok(Self::build(model, warnings))
    }

    fn check(
        source: &str,
        services: &dyn Services,
    ) -> Result<(model::Model, Vec<Diagnostic>), Vec<Diagnostic>> {
        let outline = syntax::outline(source).map_err(|d| vec![d])?;
        model::check(source, &outline, services)
    }

    fn build(model: model::Model, mut warnings: Vec<Diagnostic>) -> Policy {
        let graph = DecisionGraph::compile(model);
        warnings.extend(graph.shadow_warnings());
        warnings.sort_by_key(|d| d.span.start);
        let warnings = diagnostic::cap(warnings);
        Policy { graph, warnings }
    }

    /// Decide one request.
    pub fn decide(&self, req: &Request<'_>, services: &dyn Services) -> Decision {
        owned(self.graph.decision(req, services, None).0)
    }

    /// Decide one request, remembering verified tokens in `memo` (and
    /// trusting what it remembers: see [`VerifiedTokens`]). The decision is
    /// always the one [`Self::decide`] makes.
    pub fn decide_with(
        &self,
        req: &Request<'_>,
        services: &dyn Services,
        memo: &mut VerifiedTokens,
    ) -> Decision {
        owned(self.graph.decision(req, services, Some(memo)).0)
    }

    /// [`Self::decide_with`], and how the decision was reached: the rule
    /// the request entered and how its token was checked (for logs and
    /// metrics; the decision is the same).
    pub fn decide_noted(
        &self,
        req: &Request<'_>,
        services: &dyn Services,
        memo: &mut VerifiedTokens,
    ) -> (Decision, Notes) {
        let (decision, notes) = self.graph.decision(req, services, Some(memo));
        (owned(decision), notes)
    }

    /// [`Self::decide_noted`], with a forward in the evaluator's borrowing
    /// form: what the guest packs into the buffer it returns without a
    /// string of its own.
    pub fn decide_borrowing<'r>(
        &'r self,
        req: &'r Request<'r>,
        services: &dyn Services,
        memo: &mut VerifiedTokens,
    ) -> (Decision<ForwardRef<'r>>, Notes) {
        self.graph.decision(req, services, Some(memo))
    }

    /// The rules' names, in declaration order ([`Notes::rule`] indexes
    /// them): a rule's own name, else `line N` of its `rule` keyword.
    pub fn rules(&self) -> Vec<String> {
        self.graph.rule_names()
    }

    /// Decide one request and describe each step taken, for humans.
    pub fn explain(&self, req: &Request<'_>, services: &dyn Services) -> String {
        self.graph.explanation(req, services)
    }

    /// Warnings found while compiling.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The routes the policy declares, in declaration order.
    pub fn routes(&self) -> Vec<RouteInfo> {
        self.graph.routes()
    }

    /// The token endpoint's paths (each scope's `auth_path`, distinct).
    pub fn token_paths(&self) -> Vec<String> {
        self.graph.token_paths()
    }

    /// The JWK Sets of external issuers the host is to fetch and keep:
    /// (URL, refresh interval in seconds), each URL once.
    pub fn jwks_urls(&self) -> Vec<(String, u32)> {
        self.graph.jwks_urls()
    }

    /// The introspection endpoints (without their query): the only URLs
    /// a [`Decision::Fetch`] of this policy names.
    pub fn fetch_endpoints(&self) -> Vec<String> {
        self.graph.fetch_endpoints()
    }

    /// The compiled graph (for inspection: DOT output, statistics).
    #[doc(hidden)]
    pub fn graph(&self) -> &DecisionGraph {
        &self.graph
    }
}

/// The owned form of an evaluated decision.
fn owned(decision: Decision<ForwardRef<'_>>) -> Decision {
    decision.map_forward(|f| f.to_forward())
}
