//! The checked policy model: every name resolved, every value typed and
//! validated. The graph compiler consumes this and never re-checks it.

use std::fmt;

use subtle::ConstantTimeEq;

use super::Few;
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
    /// Whose answers, headers and defaults the policy speaks.
    pub dialect: Dialect,
    /// `true`/`false`, or `None` when unset (legacy Higress behaviour).
    pub global_auth: Option<bool>,
    /// Header naming the authenticated consumer upstream (`None` in the
    /// Kong dialect, whose `X-Consumer-*` headers say it).
    pub consumer_header: Option<String>,
    /// Every consumer of every scope.
    pub consumers: Vec<Consumer>,
    /// Authentication scopes: the instance (0), then one per authentication rule.
    pub scopes: Vec<Scope>,
    /// Rules, in declaration order (which is their precedence).
    pub rules: Vec<Rule>,
    /// Routes of the standalone gateway.
    pub routes: Vec<Route>,
    /// External JWT issuers (`jwt_issuer NAME { … }`), by [`IssuerId`].
    pub issuers: Vec<ExternalIssuer>,
    /// Token introspection servers (`introspection NAME { … }`).
    pub introspections: Vec<Introspection>,
}

/// `introspection NAME { … }`: an RFC 7662 endpoint that vouches for opaque
/// tokens, with every option of Gravitee's generic OAuth2 resource and its
/// `oauth2` policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    pub name: String,
    /// The endpoint, `http(s)://…` (Gravitee: `authorizationServerUrl` +
    /// `introspectionEndpoint`).
    pub endpoint: String,
    /// `GET` (Gravitee's default) or `POST`.
    pub method: String,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// Client authentication header (`None`: `client_auth none`), and its
    /// scheme (`Basic`).
    pub client_auth: Option<(String, String)>,
    /// How the token is sent: query parameter, header, form field (POST).
    pub token_query: Option<String>,
    pub token_header: Option<String>,
    pub token_form: Option<String>,
    /// The claim naming the user (`sub`).
    pub user_claim: String,
    pub scope_separator: String,
    pub required_scopes: Vec<String>,
    /// All required scopes (strict, Gravitee's default) or any one.
    pub strict: bool,
    /// (claim, lower-case header): claims forwarded upstream.
    pub payload_headers: Vec<(String, String)>,
    /// Longest a positive answer is kept (seconds; 0: not cached).
    pub cache_ttl: u64,
    pub span: Span,
}

/// Index of an external issuer in [`Model::issuers`].
pub type IssuerId = u32;

/// `jwt_issuer NAME { … }`: an identity provider whose JWTs a scope listing
/// it in `issuers` accepts, verified with its published keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIssuer {
    pub name: String,
    /// The `iss` its tokens carry (compared exactly).
    pub iss: String,
    /// Accepted `aud` values: a token must name one of them.
    pub audiences: Vec<String>,
    /// The algorithms its tokens may use (each key is also bound to its own).
    pub algorithms: Vec<crate::keys::Alg>,
    pub keys: IssuerKeys,
    /// The claim whose string value names the consumer (`sub` by default).
    pub consumer_claim: String,
    /// Consumers of the policy its tokens may name (for `allow` lists).
    pub consumers: Vec<(String, ConsumerId)>,
    /// Scopes every token must grant (`scope`, space-separated, or `scp`).
    pub required_scopes: Vec<String>,
    /// (claim, lower-case header): string claims forwarded upstream.
    pub claims_to_headers: Vec<(String, String)>,
    pub span: Span,
}

/// Where an external issuer's public keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerKeys {
    /// A JWK Set in the policy (or a file or variable it names).
    Inline(Vec<PublicJwk>),
    /// A JWK Set the host fetches from `url` and refreshes every
    /// `refresh` seconds.
    Url { url: String, refresh: u64 },
}

/// One public key of a JWK Set, as the policy checked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    pub kid: Option<String>,
    /// `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// The curve of an `EC`/`OKP` key.
    pub crv: Option<String>,
    /// The key's own `alg`, when it says one.
    pub alg: Option<crate::keys::Alg>,
    /// The key's JSON, as the host parses it to verify.
    pub json: String,
}

impl PublicJwk {
    /// Whether this key can verify `alg`: its type (and curve) fits, and its
    /// own `alg`, when it names one, is `alg` (RFC 8725 §3.1).
    pub fn fits(&self, alg: crate::keys::Alg) -> bool {
        use crate::keys::Alg;
        let family = match alg {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 => self.kty == "RSA",
            Alg::ES256 => self.kty == "EC" && self.crv.as_deref() == Some("P-256"),
            Alg::ES384 => self.kty == "EC" && self.crv.as_deref() == Some("P-384"),
            Alg::EdDSA => self.kty == "OKP" && self.crv.as_deref() == Some("Ed25519"),
            Alg::HS256 => false,
        };
        family && self.alg.is_none_or(|a| a == alg)
    }

    /// The key of `keys` for a token's `kid` and `alg`: by `kid` when it
    /// has one, else the only key that fits.
    pub fn select<'k>(
        keys: &'k [PublicJwk],
        kid: Option<&str>,
        alg: crate::keys::Alg,
    ) -> Option<&'k PublicJwk> {
        match kid {
            Some(kid) => keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .filter(|k| k.fits(alg)),
            None => {
                let mut fitting = keys.iter().filter(|k| k.fits(alg));
                let only = fitting.next()?;
                fitting.next().is_none().then_some(only)
            }
        }
    }
}

/// Which product's OAuth2 plugin a policy answers like (`dialect kong`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// Higress / Alibaba MSE: client_credentials, `X-Mse-Consumer`,
    /// plain-text 401/403.
    #[default]
    Higress,
    /// Kong's `oauth2` plugin: every grant, `X-Consumer-*` headers, JSON
    /// errors with Kong's wording.
    Kong,
}

/// How PKCE (RFC 7636) is required on the authorization code grant (Kong's `pkce`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pkce {
    /// Only when the client sent a challenge.
    None,
    /// Required of public clients.
    #[default]
    Lax,
    /// Required of every client.
    Strict,
}

/// Kong's plugin settings beyond Higress's, defaults applied (meaningful
/// in the Kong dialect only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KongSettings {
    pub enable_authorization_code: bool,
    pub enable_client_credentials: bool,
    pub enable_implicit_grant: bool,
    pub enable_password_grant: bool,
    /// `None`: scopes are not configured (a requested scope is ignored).
    pub scopes: Option<Vec<String>>,
    pub mandatory_scope: bool,
    pub provision_key: Option<Secret>,
    /// Seconds; 0: refresh tokens never expire.
    pub refresh_token_ttl: u64,
    pub reuse_refresh_token: bool,
    pub pkce: Pkce,
    pub accept_http_if_already_terminated: bool,
    /// The consumer a failed authentication proceeds as.
    pub anonymous: Option<ConsumerId>,
    pub realm: Option<String>,
    /// Warden's own consent page on `…/oauth2/authorize` (`authorization_page`).
    pub authorization_page: Option<AuthorizationPage>,
}

/// `authorization_page true` or `authorization_page { user NAME {
/// password_hash "…" } … }`: a `GET` of the authorization endpoint serves a
/// consent page (Kong leaves that page to every application), whose Approve
/// completes the same flow as Kong's `provision_key` POST. The end user is
/// the one a trusted SSO proxy names (the request's `trusted_user`), else
/// one of `users`, signed in with a password on the same page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationPage {
    /// Who may sign in on the page (none: only a trusted proxy's users).
    pub users: Vec<PageUser>,
    /// The `authorization_page` key, for diagnostics.
    pub span: Span,
}

/// A user of the authorization page: the name becomes the code's
/// `authenticated_userid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageUser {
    pub name: String,
    /// A PHC string (argon2id from `warden hash-secret`, or PBKDF2), checked
    /// by the host ([`crate::Services::verify_secret_hash`]).
    pub password: crate::secret_hash::SecretHash,
}

impl Default for KongSettings {
    fn default() -> Self {
        KongSettings {
            enable_authorization_code: false,
            enable_client_credentials: false,
            enable_implicit_grant: false,
            enable_password_grant: false,
            scopes: None,
            mandatory_scope: false,
            provision_key: None,
            refresh_token_ttl: 1_209_600,
            reuse_refresh_token: false,
            pkce: Pkce::Lax,
            accept_http_if_already_terminated: false,
            anonymous: None,
            realm: None,
            authorization_page: None,
        }
    }
}

/// Settings of one authentication scope (instance or rule), defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub issuer: String,
    pub auth_path: String,
    pub global_credentials: bool,
    /// Lower-case header name.
    pub auth_header_name: String,
    /// Seconds; 0 (Kong's `token_expiration 0`): tokens never expire.
    pub token_ttl: u64,
    pub clock_skew_seconds: u64,
    /// Forward the credential (Kong: `hide_credentials false`).
    pub keep_token: bool,
    /// A query parameter that may carry the token when the header is
    /// absent (`token_query_param`; off by default, as in Higress). Kong's
    /// dialect reads `access_token` there always.
    pub token_query_param: Option<String>,
    /// Signs (and verifies) this scope's tokens instead of each client's
    /// secret. Required where a secret is stored hashed.
    pub signing_key: Option<Secret>,
    /// HS256 (the default: the client secret or `signing_key`), or an
    /// asymmetric algorithm whose keys the host holds (`signing_alg`).
    pub signing_alg: crate::keys::Alg,
    /// External issuers whose tokens this scope accepts too (`issuers`).
    pub issuers: Vec<IssuerId>,
    /// The introspection server opaque tokens are checked with (`introspect`).
    pub introspect: Option<u32>,
    /// RFC 7009 revocation and RFC 7662 introspection endpoints for the
    /// scope's own tokens, and revocation checked on every use (`revocation`).
    pub revocation: bool,
    pub dialect: Dialect,
    pub kong: KongSettings,
}

impl Settings {
    /// The defaults of a dialect's plugin.
    pub fn defaults(dialect: Dialect) -> Settings {
        match dialect {
            Dialect::Higress => Settings::default(),
            Dialect::Kong => Settings {
                issuer: "Warden".into(),
                global_credentials: false,
                // Kong checks its own tokens with no leeway (an access
                // token expires `token_expiration` seconds after issue).
                clock_skew_seconds: 0,
                dialect,
                ..Settings::default()
            },
        }
    }
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
            token_query_param: None,
            signing_key: None,
            signing_alg: crate::keys::Alg::HS256,
            issuers: Vec::new(),
            introspect: None,
            revocation: false,
            dialect: Dialect::Higress,
            kong: KongSettings::default(),
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
    pub name: Box<str>,
    /// (Most consumers have one: kept inline.)
    pub credentials: Few<Credential>,
    pub span: Span,
    /// Kong's identity of the consumer (`X-Consumer-*` headers): only the
    /// Kong dialect's consumers have one.
    pub kong: Option<Box<KongConsumer>>,
}

/// What Kong knows of a consumer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KongConsumer {
    /// A UUID: given, or derived from the consumer's name (stable across reloads).
    pub id: String,
    /// Given, else (when no `custom_id` is) the consumer's name.
    pub username: Option<String>,
    pub custom_id: Option<String>,
}

/// One client_id/secret pair of a consumer.
#[derive(Debug, Clone)]
pub struct Credential {
    pub client_id: Box<str>,
    pub secret: ClientSecret,
    /// The `client_secret` line, for diagnostics.
    pub secret_span: Span,
    /// Kong: the application, when it has a name or redirect URIs of its
    /// own (`None`: it is named by its client_id and has no redirect URIs).
    pub app: Option<Box<Application>>,
}

/// Kong's application of a credential.
#[derive(Debug, Clone, Default)]
pub struct Application {
    /// The application's name.
    pub name: Option<Box<str>>,
    /// Where the authorization endpoint may redirect; the first is the default.
    pub redirect_uris: Vec<String>,
}

impl Credential {
    /// Kong: the application's name (its client_id unless it has one).
    pub fn name(&self) -> &str {
        self.app
            .as_ref()
            .and_then(|a| a.name.as_deref())
            .unwrap_or(&self.client_id)
    }

    /// Kong: where the authorization endpoint may redirect; the first is the default.
    pub fn redirect_uris(&self) -> &[String] {
        self.app.as_ref().map_or(&[], |a| &a.redirect_uris)
    }
}

/// How a client secret is stored in the policy.
#[derive(Debug, Clone)]
pub enum ClientSecret {
    /// The secret itself (literal, `env`, `file`): compared in constant time,
    /// and it signs the client's tokens unless the scope has a `signing_key`.
    Plain(Secret),
    /// A PHC hash (`client_secret hash "…"`): checked by the host; tokens
    /// need the scope's `signing_key`. (Boxed: most secrets are plain.)
    Hashed(Box<crate::secret_hash::SecretHash>),
    /// A Kong `client_type public` client: it has no secret (and must
    /// present none).
    Public,
}

/// A client secret: redacted in `Debug`, compared in constant time.
/// Shared, not copied, by its clones: a client's secret is also the key
/// its tokens are signed with ([`crate::token::Signing`]).
#[derive(Clone)]
pub struct Secret(std::sync::Arc<[u8]>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into().into())
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
    pub name: Option<Box<str>>,
    /// Where the `rule` keyword is: its byte offset, 1-based line and
    /// column (what a later warning about the rule needs, without the text).
    pub start: usize,
    pub line: u32,
    pub column: u32,
    pub matcher: Matcher,
    pub action: Action,
}

impl Rule {
    /// `rule \`name\`` or `rule at line N` for messages.
    pub fn label(&self) -> String {
        RuleName::label_of(self.name.as_deref(), self.line)
    }

    /// How a compiled graph keeps the rule's name.
    pub fn naming(&self) -> RuleName {
        RuleName {
            name: self.name.clone(),
            line: self.line,
        }
    }
}

/// A rule's name, or the line of its `rule` keyword: what messages, logs
/// and metrics call it (formatted when asked, not kept as text per rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleName {
    pub name: Option<Box<str>>,
    pub line: u32,
}

impl RuleName {
    /// `rule \`name\`` or `rule at line N`.
    pub fn label(&self) -> String {
        Self::label_of(self.name.as_deref(), self.line)
    }

    fn label_of(name: Option<&str>, line: u32) -> String {
        match name {
            Some(n) => format!("rule `{n}`"),
            None => format!("rule at line {line}"),
        }
    }

    /// `name`, or `line N`: what logs and metrics call the rule.
    pub fn short(&self) -> String {
        match &self.name {
            Some(n) => n.to_string(),
            None => format!("line {}", self.line),
        }
    }
}

/// A matcher's names (most rules name one).
pub type MatchNames = Few<Box<str>>;

/// What a rule matches: names or patterns (their spans served the
/// checker's diagnostics and are not kept).
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Host-supplied or path-resolved route name, exactly.
    Route(MatchNames),
    /// Route name and upstream service both (Higress `RouteAndService`;
    /// boxed: rare).
    RouteAndService(Box<(MatchNames, MatchNames)>),
    /// Route name starting with one of these.
    RoutePrefix(MatchNames),
    /// Upstream service name.
    Service(MatchNames),
    /// Request host (port stripped, lower case).
    Domain(Few<DomainPattern>),
}

/// A host pattern, lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainPattern {
    /// `test.com`
    Exact(Box<str>),
    /// `*.example.com` → host ends with `.example.com`
    Suffix(Box<str>),
    /// `example*` → host starts with `example`
    Prefix(Box<str>),
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Authenticate with the instance scope, then only these consumers
    /// pass (sorted, distinct).
    Allow(Few<ConsumerId>),
    /// Authenticate with this rule's own scope.
    Authenticate(ScopeId),
    /// Neither authenticate nor serve tokens (Higress `_disable_`).
    Disable,
}

/// A route of the standalone gateway.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: Box<str>,
    /// Matches the path itself and everything below it (segment boundary).
    pub path_prefix: Option<Box<str>>,
    /// What a route has besides its name and path prefix, if anything
    /// (`None`: the defaults; most routes of a large policy).
    pub options: Option<Box<RouteOptions>>,
    pub span: Span,
}

/// A route's Kong matchers and flags, its service and its upstream.
#[derive(Debug, Clone, Default)]
pub struct RouteOptions {
    /// Kong: the hosts the route serves (empty: any).
    pub hosts: Vec<DomainPattern>,
    /// Kong: plain string prefixes of the path (empty: any).
    pub paths: Vec<Box<str>>,
    /// Kong: `protocols [https]`: plain HTTP gets 426.
    pub https_only: bool,
    /// Kong: the matched path prefix is not forwarded.
    pub strip_path: bool,
    /// The service it belongs to (Kong's service name): what `match
    /// service` rules see, and what binds a Kong plugin's tokens.
    pub service: Option<Box<str>>,
    /// Where the route sends traffic; `None` = the host's default.
    pub upstream: Option<crate::Upstream>,
}

impl Route {
    /// The route's options, defaults when it has none.
    pub fn options(&self) -> &RouteOptions {
        static DEFAULT: RouteOptions = RouteOptions {
            hosts: Vec::new(),
            paths: Vec::new(),
            https_only: false,
            strip_path: false,
            service: None,
            upstream: None,
        };
        self.options.as_deref().unwrap_or(&DEFAULT)
    }
}
