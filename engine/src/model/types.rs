//! The checked policy model: every name resolved, every value typed and
//! validated. The graph compiler consumes this and never re-checks it.

use std::fmt;

use subtle::ConstantTimeEq;

use crate::syntax::Span;

/// Index of a consumer in [`Model::consumers`].
// INVARIANT: instance consumers are exactly ids 0..Model::scopes[0].consumers.len(),
// in declaration order, so allow sets are bitsets over a dense range.
pub type ConsumerId = u32;

/// Index of an authentication scope in [`Model::scopes`]; 0 is the instance.
pub type ScopeId = u32;

/// The instance-level scope.
pub const INSTANCE: ScopeId = 0;

/// A whole checked policy.
#[derive(Debug, Clone)]
pub struct Model {
    /// `true`/`false`, or `None` when unset (legacy Higress behaviour).
    pub global_auth: Option<bool>,
    /// Header naming the authenticated consumer upstream.
    pub consumer_header: String,
    /// Every consumer of every scope.
    pub consumers: Vec<Consumer>,
    /// Authentication scopes: the instance (0), then one per authentication rule.
    pub scopes: Vec<Scope>,
    /// Rules, in declaration order (which is their precedence).
    pub rules: Vec<Rule>,
    /// Routes of the standalone gateway.
    pub routes: Vec<Route>,
}

/// Settings of one authentication scope (instance or rule), defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub issuer: String,
    pub auth_path: String,
    pub global_credentials: bool,
    /// Lower-case header name.
    pub auth_header_name: String,
    pub token_ttl: u64,
    pub clock_skew_seconds: u64,
    pub keep_token: bool,
    /// Signs (and verifies) this scope's tokens instead of each client's
    /// secret. Required where a secret is stored hashed.
    pub signing_key: Option<Secret>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            issuer: "Higress-Gateway".into(),
            auth_path: "/oauth2/token".into(),
            global_credentials: true,
            auth_header_name: "authorization".into(),
            token_ttl: 7200,
            clock_skew_seconds: 60,
            keep_token: true,
            signing_key: None,
        }
    }
}

/// Who can authenticate, and how tokens look, in one part of the policy.
#[derive(Debug, Clone)]
pub struct Scope {
    pub settings: Settings,
    pub consumers: Vec<ConsumerId>,
    /// Where the scope is declared (the rule, or the file start for the instance).
    pub span: Span,
}

/// A registered client.
#[derive(Debug, Clone)]
pub struct Consumer {
    pub name: String,
    pub credentials: Vec<Credential>,
    pub span: Span,
}

/// One client_id/secret pair of a consumer.
#[derive(Debug, Clone)]
pub struct Credential {
    pub client_id: String,
    pub secret: ClientSecret,
    /// The `client_secret` line, for diagnostics.
    pub secret_span: Span,
}

/// How a client secret is stored in the policy.
#[derive(Debug, Clone)]
pub enum ClientSecret {
    /// The secret itself (literal, `env`, `file`): compared in constant time,
    /// and it signs the client's tokens unless the scope has a `signing_key`.
    Plain(Secret),
    /// A PHC hash (`client_secret hash "…"`): checked by the host; tokens
    /// need the scope's `signing_key`.
    Hashed(crate::secret_hash::SecretHash),
}

/// A client secret: redacted in `Debug`, compared in constant time.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The raw bytes, for signing and verifying only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time comparison with what a client presented.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.ct_eq(presented).into()
    }
}

/// Constant time too (settings are compared to find shadowed rules).
impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.matches(&other.0)
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A rule: what it matches and what it does. First match wins.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Optional name (for diagnostics and `explain`).
    pub name: Option<String>,
    pub span: Span,
    /// 1-based line of the `rule` keyword.
    pub line: u32,
    pub matcher: Matcher,
    pub action: Action,
}

impl Rule {
    /// `rule \`name\`` or `rule at line N` for messages.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("rule `{n}`"),
            None => format!("rule at line {}", self.line),
        }
    }
}

/// What a rule matches. Each list holds the names or patterns with their spans.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Host-supplied or path-resolved route name, exactly.
    Route(Vec<(String, Span)>),
    /// Route name and upstream service both (Higress `RouteAndService`).
    RouteAndService(Vec<(String, Span)>, Vec<(String, Span)>),
    /// Route name starting with one of these.
    RoutePrefix(Vec<(String, Span)>),
    /// Upstream service name.
    Service(Vec<(String, Span)>),
    /// Request host (port stripped, lower case).
    Domain(Vec<(DomainPattern, Span)>),
}

/// A host pattern, lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainPattern {
    /// `test.com`
    Exact(String),
    /// `*.example.com` → host ends with `.example.com`
    Suffix(String),
    /// `example*` → host starts with `example`
    Prefix(String),
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Authenticate with the instance scope, then only these consumers pass.
    Allow(Vec<ConsumerId>),
    /// Authenticate with this rule's own scope.
    Authenticate(ScopeId),
    /// Neither authenticate nor serve tokens (Higress `_disable_`).
    Disable,
}

/// A route of the standalone gateway.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    /// Matches the path itself and everything below it (segment boundary).
    pub path_prefix: Option<String>,
    /// Where the route sends traffic; `None` = the host's default.
    pub upstream: Option<crate::Upstream>,
    pub span: Span,
}
