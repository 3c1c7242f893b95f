//! AST → checked [`Model`].
//!
//! All name resolution and every semantic check happens here, at compile
//! time, with spans: unknown keys (with a did-you-mean), wrong value types,
//! settings given twice, duplicate consumer names and client_ids, unknown
//! consumers in `allow`, a rule that both authenticates and authorizes, bad
//! durations, header names and domain patterns. The checker keeps going after
//! an error so that one run reports every problem in the file.

mod consumers;
mod few;
mod introspection;
mod issuers;
mod kong;
mod types;
mod values;

pub use few::Few;
pub use issuers::parse_jwks;
pub use kong::{check_redirect_uri, is_uuid};
pub use types::*;
pub use values::{DurationError, parse_duration};

use rustc_hash::FxHashMap as HashMap;

use crate::syntax::{Entry, Item, Span, Value};
use crate::{Diagnostic, Services};
use values::Reader;

/// Settings every authentication scope (instance or rule) may set.
const SCOPE_SETTINGS: &[&str] = &[
    "issuer",
    "auth_path",
    "global_credentials",
    "auth_header_name",
    "token_ttl",
    "clock_skew_seconds",
    "keep_token",
    "token_query_param",
    "signing_key",
    "signing_alg",
    "issuers",
    "introspect",
    "revocation",
];
const INSTANCE_ONLY: &[&str] = &[
    "global_auth",
    "consumer_header",
    "route",
    "rule",
    "dialect",
    "jwt_issuer",
    "introspection",
];
const RULE_ONLY: &[&str] = &["match", "allow", "disable"];
const CONSUMER_KEYS: &[&str] = &["client_id", "client_secret", "credential"];
const CREDENTIAL_KEYS: &[&str] = &["client_id", "client_secret"];
const ROUTE_KEYS: &[&str] = &[
    "path_prefix",
    "hosts",
    "paths",
    "protocols",
    "service",
    "strip_path",
    "upstream",
];
const MATCH_KINDS: &[&str] = &["route", "route_prefix", "service", "domain"];

/// Check a file whose syntax [`crate::syntax::outline`] accepted, one
/// top-level item at a time (each parsed when its turn comes, then dropped).
/// Returns the model and its warnings, or every error found (warnings
/// included, after the errors).
pub fn check(
    source: &str,
    outline: &[Entry],
    services: &dyn Services,
) -> Result<(Model, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut c = Checker {
        r: Reader {
            src: source,
            lines: crate::diagnostic::LineIndex::new(source),
        },
        services,
        errors: Vec::new(),
        warnings: Vec::new(),
        consumers: Vec::new(),
        kong_identities: Default::default(),
        dialect: Dialect::Higress,
        issuer_names: Vec::new(),
        introspection_names: Vec::new(),
    };
    let model = c.file(outline);
    if c.errors.is_empty() {
        c.warnings.sort_by_key(|d| d.span.start);
        Ok((model, c.warnings))
    } else {
        c.errors.sort_by_key(|d| d.span.start);
        c.errors.extend(c.warnings);
        Err(crate::diagnostic::cap(c.errors))
    }
}

struct Checker<'s> {
    r: Reader<'s>,
    services: &'s dyn Services,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    consumers: Vec<Consumer>,
    /// Kong's unique consumer identities (the Kong dialect's consumers).
    kong_identities: kong::KongIdentities,
    dialect: Dialect,
    /// The `jwt_issuer` names, by [`IssuerId`] (for `issuers`).
    issuer_names: Vec<String>,
    /// The `introspection` names (for `introspect`).
    introspection_names: Vec<String>,
}

/// Tracks which keys a block has set, to report the second of a pair (a
/// block has a handful of keys: a list beats hashing).
#[derive(Default)]
struct Seen<'i>(smallvec::SmallVec<[(&'i str, Span); 4]>);

/// The top-level items with this key, in order.
fn with_key<'o>(
    source: &'o str,
    outline: &'o [Entry],
    key: &'o str,
) -> impl Iterator<Item = Entry> + 'o {
    outline
        .iter()
        .filter(move |e| e.key(source) == key)
        .copied()
}

impl<'s> Checker<'s> {
    fn report(&mut self, r: Result<(), Diagnostic>) {
        if let Err(d) = r {
            self.errors.push(d);
        }
    }

    /// Error unless this is the first `key` in its block.
    /// The one value of an instance-only setting, read by `read` (set once,
    /// else an error is reported and `None` returned).
    fn instance_value<'i, T>(
        &mut self,
        seen: &mut Seen<'i>,
        item: &Item<'i>,
        read: impl FnOnce(&Reader<'s>, &str, &Value) -> Result<T, Diagnostic>,
    ) -> Option<T> {
        if !self.once(seen, item) {
            return None;
        }
        let value = self.r.one(item).and_then(|v| read(&self.r, item.key, v));
        value.map_err(|d| self.errors.push(d)).ok()
    }

    fn once<'i>(&mut self, seen: &mut Seen<'i>, item: &Item<'i>) -> bool {
        if let Some((_, first)) = seen.0.iter().find(|(k, _)| *k == item.key) {
            let line = self.r.lines.line(first.start);
            let d = self
                .r
                .err(item.key_span, format!("`{}` is set twice", item.key))
                .with_help(format!("the first is on line {line}; remove one"));
            self.errors.push(d);
            return false;
        }
        seen.0.push((item.key, item.key_span));
        true
    }

    /// The scope settings of the policy's dialect.
    fn scope_settings(&self) -> &'static [&'static str] {
        match self.dialect {
            Dialect::Higress => SCOPE_SETTINGS,
            Dialect::Kong => kong::KONG_SETTINGS,
        }
    }

    fn unknown_key(&mut self, item: &Item, context: &str, valid: &[&[&str]]) {
        let mut d = self.r.err(
            item.key_span,
            format!("unknown setting `{}` {context}", item.key),
        );
        let candidates = valid.iter().flat_map(|v| v.iter().copied());
        if let Some(help) = kong::other_dialect(item.key, self.dialect) {
            d = d.with_help(help);
        } else if let Some(best) = closest(item.key, candidates) {
            d = d.with_help(format!("did you mean `{best}`?"));
        } else if RULE_ONLY.contains(&item.key) {
            d = d.with_help(format!(
                "`{}` can only be set inside a `rule {{ … }}`",
                item.key
            ));
        } else if INSTANCE_ONLY.contains(&item.key) {
            d = d.with_help(format!(
                "`{}` can only be set at the top level of the file",
                item.key
            ));
        }
        self.errors.push(d);
    }

    fn no_block(&mut self, item: &Item) -> bool {
        match &item.block {
            Some(b) => {
                let d = self
                    .r
                    .err(b.span, format!("`{}` takes a value, not a block", item.key));
                self.errors.push(d);
                false
            }
            None => true,
        }
    }

    /// `dialect kong|higress`, wherever it is in the file (it decides how
    /// everything else reads).
    fn dialect(&mut self, outline: &[Entry]) -> Option<Span> {
        let src = self.r.src;
        let mut found: Option<Span> = None;
        for entry in with_key(src, outline, "dialect") {
            let Some(item) = self.item(entry) else {
                continue;
            };
            if let Some(first) = found {
                let line = self.r.lines.line(first.start);
                let d = self
                    .r
                    .err(item.key_span, "`dialect` is set twice")
                    .with_help(format!("the first is on line {line}; remove one"));
                self.errors.push(d);
                continue;
            }
            found = Some(item.span);
            match self
                .r
                .one(&item)
                .and_then(|v| Ok((self.r.text("dialect", v)?, v.span)))
            {
                Ok(("kong", _)) => self.dialect = Dialect::Kong,
                Ok(("higress", _)) => self.dialect = Dialect::Higress,
                Ok((other, span)) => {
                    let d = self
                        .r
                        .err(span, format!("unknown dialect `{other}`"))
                        .with_help("`dialect kong` (Kong's oauth2 plugin) or `dialect higress` (the default: Higress and MSE)");
                    self.errors.push(d);
                }
                Err(d) => self.errors.push(d),
            }
        }
        found
    }

    /// The top-level item an outline entry names (the outline checked its
    /// syntax: parsing it again cannot fail, but if it did the error is
    /// reported, not lost).
    fn item(&mut self, entry: Entry) -> Option<Item<'s>> {
        crate::syntax::item_at(self.r.src, entry.start)
            .map_err(|d| self.errors.push(d))
            .ok()
    }

    fn file(&mut self, outline: &[Entry]) -> Model {
        let src = self.r.src;
        let dialect_at = self.dialect(outline);
        let mut settings = Settings::defaults(self.dialect);
        let mut seen = Seen::default();
        let mut global_auth = None;
        let mut consumer_header =
            (self.dialect == Dialect::Higress).then(|| "x-mse-consumer".to_string());
        // Sized from the outline: a large policy's tables are built without
        // doubling (each doubling holds the old table and the new at once).
        let count = |key: &str| with_key(src, outline, key).count();
        let (n_consumers, n_routes, n_rules) = (count("consumer"), count("route"), count("rule"));
        self.consumers.reserve_exact(n_consumers);
        let mut instance = ScopeRoster::default();
        instance.ids.reserve_exact(n_consumers);
        instance.names.reserve(n_consumers);
        instance.client_ids.reserve(n_consumers);
        let mut routes = RouteTable::with_capacity(n_routes);

        // Consumers first: settings may name one (Kong's `anonymous`).
        for entry in with_key(src, outline, "consumer") {
            let Some(item) = self.item(entry) else {
                continue;
            };
            if let Some(id) = self.consumer(&item, &mut instance) {
                instance.ids.push(id);
            }
        }
        // Only the instance's own `consumer` blocks declare its client_ids
        // (a rule's consumers have a roster of their own).
        instance.client_ids = Names::default();
        // Then external issuers: they may name consumers, and scopes name them.
        let mut issuers: Vec<ExternalIssuer> = Vec::new();
        for entry in with_key(src, outline, "jwt_issuer") {
            let Some(item) = self.item(entry) else {
                continue;
            };
            if self.dialect == Dialect::Kong {
                let d = self
                    .r
                    .err(item.key_span, "`jwt_issuer` is not available in the Kong dialect yet")
                    .with_help("Kong's oauth2 plugin verifies only its own tokens; external issuers work in Warden's default dialect");
                self.errors.push(d);
                continue;
            }
            if let Some(i) = self.jwt_issuer(&item, &mut instance, &issuers) {
                issuers.push(i);
            }
        }
        self.issuer_names = issuers.iter().map(|i| i.name.clone()).collect();
        let mut introspections: Vec<Introspection> = Vec::new();
        for entry in with_key(src, outline, "introspection") {
            let Some(item) = self.item(entry) else {
                continue;
            };
            if self.dialect == Dialect::Kong {
                let d = self
                    .r
                    .err(
                        item.key_span,
                        "`introspection` is not available in the Kong dialect",
                    )
                    .with_help(
                        "it is Gravitee's `oauth2` policy: use it in Warden's default dialect",
                    );
                self.errors.push(d);
                continue;
            }
            if let Some(i) = self.introspection(&item, &introspections) {
                introspections.push(i);
            }
        }
        self.introspection_names = introspections.iter().map(|i| i.name.clone()).collect();
        for &entry in outline {
            match entry.key(src) {
                // Rules after the routes: they name them.
                "consumer" | "dialect" | "jwt_issuer" | "introspection" | "rule" => continue,
                _ => {}
            }
            let Some(item) = self.item(entry) else {
                continue;
            };
            let item = &item;
            match item.key {
                "route" => {
                    if let Some((route, keys)) = self.route(item, &routes) {
                        routes.add(route, keys);
                    }
                }
                "global_auth" => {
                    if let Some(b) = self.instance_value(&mut seen, item, Reader::boolean) {
                        global_auth = Some(b);
                    }
                }
                "consumer_header" if self.dialect == Dialect::Higress => {
                    if let Some(h) = self.instance_value(&mut seen, item, Reader::header_name) {
                        consumer_header = Some(h);
                    }
                }
                key if self.scope_settings().contains(&key) => {
                    if self.once(&mut seen, item) {
                        let r = self.setting(&mut settings, item);
                        self.report(r);
                    }
                }
                _ => {
                    let valid = self.scope_settings();
                    self.unknown_key(
                        item,
                        "at the top level",
                        &[valid, INSTANCE_ONLY, &["consumer"]],
                    )
                }
            }
        }

        let mut scopes = vec![Scope {
            settings: settings.clone(),
            consumers: instance.ids.clone(),
            span: Span::default(),
        }];
        routes.routes_declared();
        let mut rules: Vec<Rule> = Vec::with_capacity(n_rules);
        rules.extend(with_key(src, outline, "rule").filter_map(|entry| {
            let item = self.item(entry)?;
            self.rule(&item, &settings, &instance, &routes, &mut scopes)
        }));
        self.check_signing_keys(&scopes);
        if self.dialect == Dialect::Kong {
            // The instance is a plugin when it serves: everywhere
            // (`global_auth true`), or for `allow` rules.
            let instance_serves = global_auth == Some(true)
                || rules.iter().any(|r| matches!(r.action, Action::Allow(_)))
                || (global_auth.is_none() && rules.is_empty());
            let at = dialect_at.unwrap_or_default();
            if instance_serves {
                self.check_kong_scope(&settings, at);
            }
            for scope in scopes.iter().skip(1) {
                self.check_kong_scope(&scope.settings, scope.span);
            }
        }

        // The model lives until the graph is built: no spare capacity.
        let mut consumers = std::mem::take(&mut self.consumers);
        consumers.shrink_to_fit();
        rules.shrink_to_fit();
        let mut routes = routes.list;
        routes.shrink_to_fit();
        Model {
            dialect: self.dialect,
            global_auth,
            consumer_header,
            consumers,
            scopes,
            rules,
            routes,
            issuers,
            introspections,
        }
    }

    /// A token of a client whose secret is stored hashed cannot be signed
    /// with that secret: its scope must have a `signing_key`. And a
    /// `signing_key` equal to a client secret would let that client mint
    /// tokens for every consumer of the scope.
    fn check_signing_keys(&mut self, scopes: &[Scope]) {
        for scope in scopes {
            let key = scope.settings.signing_key.as_ref();
            let host_signs = scope.settings.signing_alg.is_asymmetric();
            if key.is_some() && host_signs {
                let d = self
                    .r
                    .err(
                        scope.span,
                        format!(
                            "this scope has both a `signing_key` and `signing_alg {}`",
                            scope.settings.signing_alg
                        ),
                    )
                    .with_help("`signing_key` is an HS256 key; with an asymmetric `signing_alg` the host's keys sign and verify: remove one of them");
                self.errors.push(d);
            }
            for &id in &scope.consumers {
                let consumer = &self.consumers[id as usize];
                for c in &consumer.credentials {
                    if let (Some(key), ClientSecret::Plain(secret)) = (key, &c.secret)
                        && key == secret
                    {
                        let d = self
                            .r
                            .err(
                                c.secret_span,
                                format!(
                                    "consumer `{}`'s client_secret is the scope's signing_key",
                                    consumer.name
                                ),
                            )
                            .with_help("a client knowing the signing key could sign tokens for any consumer: use a separate random key");
                        self.errors.push(d);
                    }
                    if let (None, false, ClientSecret::Hashed(h)) = (key, host_signs, &c.secret) {
                        let d = self
                            .r
                            .err(
                                c.secret_span,
                                format!(
                                    "consumer `{}` stores its client_secret as a {} hash, so it cannot sign its tokens",
                                    consumer.name,
                                    h.algorithm()
                                ),
                            )
                            .with_help(
                                "add `signing_key env NAME` (32 or more random bytes) next to the consumers: tokens are then signed with it (or `signing_alg ES256`: the host's keys sign)",
                            );
                        self.errors.push(d);
                    }
                }
            }
        }
    }

    /// Apply one scope setting.
    fn setting(&self, s: &mut Settings, item: &Item) -> Result<(), Diagnostic> {
        let key = item.key;
        if self.dialect == Dialect::Kong
            && !matches!(
                key,
                "signing_key"
                    | "signing_alg"
                    | "issuer"
                    | "global_credentials"
                    | "auth_header_name"
                    | "clock_skew_seconds"
            )
        {
            return self.kong_setting(s, item);
        }
        if key == "signing_key" {
            let key = match self.secret(item)? {
                ClientSecret::Plain(key) => key,
                ClientSecret::Hashed(_) | ClientSecret::Public => {
                    return Err(self.r.err(
                        item.span,
                        "`signing_key` must be the key itself (a string, `env NAME` or `file PATH`), not a hash",
                    ));
                }
            };
            if key.expose().len() < 32 {
                return Err(self
                    .r
                    .err(item.span, "`signing_key` is shorter than 32 bytes")
                    .with_help("HS256 keys need at least 256 bits (RFC 7518 §3.2); e.g. `openssl rand -base64 48`"));
            }
            s.signing_key = Some(key);
            return Ok(());
        }
        let v = self.r.one(item)?;
        match key {
            "issuer" => s.issuer = self.r.nonempty(key, v)?.to_string(),
            "auth_path" => {
                let p = self.r.nonempty(key, v)?;
                if !p.starts_with('/') {
                    return Err(self
                        .r
                        .err(
                            v.span,
                            format!("`auth_path` must start with `/`, found `{p}`"),
                        )
                        .with_help(format!("write `/{p}`")));
                }
                if p.contains(['?', '#']) || p.bytes().any(|b| b.is_ascii_whitespace()) {
                    return Err(self.r.err(
                        v.span,
                        format!("`auth_path` must be a plain path, found `{p}`"),
                    ));
                }
                s.auth_path = p.to_string();
            }
            "global_credentials" => s.global_credentials = self.r.boolean(key, v)?,
            "auth_header_name" => s.auth_header_name = self.r.header_name(key, v)?,
            "token_ttl" => {
                let ttl = self.r.duration(key, v)?;
                if ttl == 0 {
                    return Err(self
                        .r
                        .err(v.span, "`token_ttl` must be at least one second"));
                }
                s.token_ttl = ttl;
            }
            "clock_skew_seconds" => s.clock_skew_seconds = self.r.duration(key, v)?,
            "keep_token" => s.keep_token = self.r.boolean(key, v)?,
            "token_query_param" => {
                let name = self.r.nonempty(key, v)?;
                if !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
                {
                    return Err(self.r.err(
                        v.span,
                        format!(
                            "`token_query_param` must be a plain parameter name, found `{name}`"
                        ),
                    ));
                }
                s.token_query_param = Some(name.to_string());
            }
            "revocation" => s.revocation = self.r.boolean(key, v)?,
            "introspect" => {
                let name = self.r.nonempty(key, v)?;
                let Some(id) = self.introspection_names.iter().position(|n| n == name) else {
                    let mut d = self
                        .r
                        .err(v.span, format!("unknown introspection `{name}`"));
                    d = match closest(name, self.introspection_names.iter().map(String::as_str)) {
                        Some(c) => d.with_help(format!("did you mean `{c}`?")),
                        None => d.with_help("declare it first: `introspection NAME { endpoint …; client_id …; client_secret … }`"),
                    };
                    return Err(d);
                };
                s.introspect = Some(id as u32);
            }
            "issuers" => {
                let mut ids = Vec::new();
                for (name, span) in self.r.texts(key, v)? {
                    let Some(id) = self.issuer_names.iter().position(|n| n == name) else {
                        let mut d = self.r.err(span, format!("unknown jwt_issuer `{name}`"));
                        d = match closest(name, self.issuer_names.iter().map(String::as_str)) {
                            Some(c) => d.with_help(format!("did you mean `{c}`?")),
                            None => d.with_help("declare it first: `jwt_issuer NAME { iss …; audiences […]; algorithms […]; jwks_url … }`"),
                        };
                        return Err(d);
                    };
                    if !ids.contains(&(id as IssuerId)) {
                        ids.push(id as IssuerId);
                    }
                }
                s.issuers = ids;
            }
            "signing_alg" => {
                use crate::keys::Alg;
                let name = self.r.nonempty(key, v)?;
                s.signing_alg = match Alg::parse(name) {
                    Some(alg) if alg == Alg::HS256 || Alg::HOST_SIGNING.contains(&alg) => alg,
                    _ => {
                        let mut d = self.r.err(
                            v.span,
                            format!(
                                "`signing_alg` must be HS256, RS256, ES256 or EdDSA, found `{name}`"
                            ),
                        );
                        let names = ["HS256", "RS256", "ES256", "EdDSA"];
                        if let Some(c) = names
                            .iter()
                            .copied()
                            .find(|n| n.eq_ignore_ascii_case(name))
                            .or_else(|| closest(name, names))
                        {
                            d = d.with_help(format!("did you mean `{c}`?"));
                        }
                        return Err(d);
                    }
                };
            }
            "signing_key" => unreachable!("handled above"),
            _ => unreachable!("SCOPE_SETTINGS and this match list the same keys"),
        }
        Ok(())
    }

    fn fail<T>(&mut self, d: Diagnostic) -> Option<T> {
        self.errors.push(d);
        None
    }
}

/// Names and client_ids of one scope, with where they were declared.
#[derive(Default)]
struct ScopeRoster<'s> {
    ids: Vec<ConsumerId>,
    // INVARIANT: a consumer's name is on the line its `Consumer::span`
    // starts (the name follows the `consumer` key on its line, or is the
    // span itself for a `jwt_issuer`'s consumers): that line is where it
    // was declared.
    names: Names<'s, ConsumerId>,
    client_ids: Names<'s, Span>,
}

/// The checker's name → value tables: keys borrowed from the source (no
/// allocation per name), or owned when a name is not a slice of it (a
/// string with escapes). A key is inserted only once (the checker looks
/// it up first to report a duplicate).
struct Names<'s, V> {
    borrowed: HashMap<&'s str, V>,
    owned: HashMap<Box<str>, V>,
}

impl<V> Default for Names<'_, V> {
    fn default() -> Self {
        Names {
            borrowed: HashMap::default(),
            owned: HashMap::default(),
        }
    }
}

impl<'s, V> Names<'s, V> {
    fn reserve(&mut self, n: usize) {
        self.borrowed.reserve(n);
    }

    fn get(&self, name: &str) -> Option<&V> {
        self.borrowed.get(name).or_else(|| self.owned.get(name))
    }

    fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn insert(&mut self, name: std::borrow::Cow<'s, str>, value: V) {
        match name {
            std::borrow::Cow::Borrowed(n) => self.borrowed.insert(n, value),
            std::borrow::Cow::Owned(n) => self.owned.insert(n.into(), value),
        };
    }
}

mod routes;
mod rules;

use routes::RouteTable;

/// The closest of `candidates` to `word`, if any is close enough to suggest.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let len = word.chars().count();
    let limit = (len / 3).clamp(1, 3);
    // Bounded, so that a policy with many undeclared names stays linear to
    // check; and a candidate whose length differs by more than the limit
    // cannot be close, so a huge word costs nothing.
    candidates
        .into_iter()
        .take(1000)
        .filter(|c| c.chars().count().abs_diff(len) <= limit)
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}
