//! Warden's policy engine: policy text → AST → checked model → decision graph → decision.
//!
//! The engine is pure: it does no I/O and has no wasm-specific code. Everything
//! with a side effect comes through the [`Host`] trait, which the WASI guest
//! implements over WIT imports and native callers implement directly.
//!
//! The stages are separate modules with separate types; nothing downstream
//! re-parses or re-checks:
//! - [`syntax`]: nom parser from text to an AST whose nodes carry byte spans;
//! - [`model`]: name resolution and every semantic check, producing a checked
//!   [`model::Model`] or [`Diagnostic`]s with spans;
//! - [`graph`]: compiles the model into a [`graph::DecisionGraph`] (indexes built,
//!   names resolved) and evaluates requests against it;
//! - [`oauth`]: the token endpoint (RFC 6749 client_credentials);
//! - [`token`]: JWT access tokens (RFC 9068, Higress-compatible HS256).
#![forbid(unsafe_code)]

pub mod diagnostic;
pub mod fixtures;
pub mod graph;
pub mod hmac_crypto;
pub mod host;
pub mod model;
pub mod oauth;
pub mod request;
pub mod secret_hash;
pub mod syntax;
pub mod synth;
pub mod token;
pub mod upstream;

pub use diagnostic::{Diagnostic, Severity};
pub use graph::{DecisionGraph, VerifiedTokens};
pub use host::{FixedHost, Host};
pub use upstream::{HttpUpstream, Upstream, UpstreamError};
pub use request::{
    Decision, Forward, HeaderBlockError, Reply, Request, pack_headers, push_header, unpack_headers,
};

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
    pub fn compile(source: &str, host: &dyn Host) -> Result<Policy, Vec<Diagnostic>> {
        let ast = syntax::parse(source).map_err(|d| vec![d])?;
        let (model, mut warnings) = model::check(source, &ast, host)?;
        let graph = DecisionGraph::compile(&model);
        warnings.extend(graph.shadow_warnings(source, &model));
        warnings.sort_by_key(|d| d.span.start);
        let warnings = diagnostic::cap(warnings, source);
        Ok(Policy { graph, warnings })
    }

    /// Decide one request.
    pub fn decide(&self, req: &Request<'_>, host: &dyn Host) -> Decision {
        self.graph.decide(req, host)
    }

    /// Decide one request, remembering verified tokens in `memo` (see
    /// [`graph::VerifiedTokens`]); the decision is the one [`Self::decide`] makes.
    pub fn decide_with(
        &self,
        req: &Request<'_>,
        host: &dyn Host,
        memo: &mut graph::VerifiedTokens,
    ) -> Decision {
        self.graph.decide_with(req, host, memo)
    }

    /// Decide one request and describe each step taken, for humans.
    pub fn explain(&self, req: &Request<'_>, host: &dyn Host) -> String {
        self.graph.explain(req, host)
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

    /// The compiled graph (for inspection: DOT output, statistics).
    pub fn graph(&self) -> &DecisionGraph {
        &self.graph
    }
}
