//! AST → checked [`Model`].
//!
//! All name resolution and every semantic check happens here, at compile
//! time, with spans: unknown keys (with a did-you-mean), wrong value types,
//! settings given twice, duplicate consumer names and client_ids, unknown
//! consumers in `allow`, a rule that both authenticates and authorizes, bad
//! durations, header names and domain patterns. The checker keeps going after
//! an error so that one run reports every problem in the file.

mod kong;
mod types;
mod values;

pub use types::*;
pub use values::{DurationError, parse_duration};

use rustc_hash::FxHashMap as HashMap;

use crate::syntax::{File, Item, Span, Value};
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
    "signing_key",
];
const INSTANCE_ONLY: &[&str] = &["global_auth", "consumer_header", "route", "rule", "dialect"];
const RULE_ONLY: &[&str] = &["match", "allow", "disable"];
const CONSUMER_KEYS: &[&str] = &["client_id", "client_secret", "credential"];
const CREDENTIAL_KEYS: &[&str] = &["client_id", "client_secret"];
const ROUTE_KEYS: &[&str] = &[
    "path_prefix",
    "hosts",
    "paths",
    "protocols",
    "service",
    "upstream",
];
const MATCH_KINDS: &[&str] = &["route", "route_prefix", "service", "domain"];

/// Check a parsed file. Returns the model and its warnings, or every error
/// found (warnings included, after the errors).
pub fn check(
    source: &str,
    file: &File,
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
        dialect: Dialect::Higress,
    };
    let model = c.file(file);
    if c.errors.is_empty() {
        c.warnings.sort_by_key(|d| d.span.start);
        Ok((model, c.warnings))
    } else {
        c.errors.sort_by_key(|d| d.span.start);
        c.errors.extend(c.warnings);
        Err(crate::diagnostic::cap(c.errors, source))
    }
}

struct Checker<'s> {
    r: Reader<'s>,
    services: &'s dyn Services,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    consumers: Vec<Consumer>,
    dialect: Dialect,
}

/// Tracks which keys a block has set, to report the second of a pair (a
/// block has a handful of keys: a list beats hashing).
#[derive(Default)]
struct Seen<'i>(Vec<(&'i str, Span)>);

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
        item: &'i Item,
        read: impl FnOnce(&Reader<'s>, &str, &Value) -> Result<T, Diagnostic>,
    ) -> Option<T> {
        if !self.once(seen, item) {
            return None;
        }
        let value = self.r.one(item).and_then(|v| read(&self.r, &item.key, v));
        value.map_err(|d| self.errors.push(d)).ok()
    }

    fn once<'i>(&mut self, seen: &mut Seen<'i>, item: &'i Item) -> bool {
        if let Some((_, first)) = seen.0.iter().find(|(k, _)| *k == item.key) {
            let line = self.r.lines.line(first.start);
            let d = self
                .r
                .err(item.key_span, format!("`{}` is set twice", item.key))
                .with_help(format!("the first is on line {line}; remove one"));
            self.errors.push(d);
            return false;
        }
        seen.0.push((&item.key, item.key_span));
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
        if let Some(help) = kong::other_dialect(&item.key, self.dialect) {
            d = d.with_help(help);
        } else if let Some(best) = closest(&item.key, candidates) {
            d = d.with_help(format!("did you mean `{best}`?"));
        } else if RULE_ONLY.contains(&item.key.as_str()) {
            d = d.with_help(format!(
                "`{}` can only be set inside a `rule {{ … }}`",
                item.key
            ));
        } else if INSTANCE_ONLY.contains(&item.key.as_str()) {
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
    fn dialect(&mut self, file: &File) -> Option<Span> {
        let mut found: Option<Span> = None;
        for item in file.items.iter().filter(|i| i.key == "dialect") {
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
                .one(item)
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

    fn file(&mut self, file: &File) -> Model {
        let dialect_at = self.dialect(file);
        let mut settings = Settings::defaults(self.dialect);
        let mut seen = Seen::default();
        let mut global_auth = None;
        let mut consumer_header =
            (self.dialect == Dialect::Higress).then(|| "x-mse-consumer".to_string());
        let mut instance = ScopeRoster::default();
        let mut routes = RouteTable::default();
        let mut rule_items = Vec::new();

        // Consumers first: settings may name one (Kong's `anonymous`).
        for item in file.items.iter().filter(|i| i.key == "consumer") {
            if let Some(id) = self.consumer(item, &mut instance) {
                instance.ids.push(id);
            }
        }
        for item in &file.items {
            match item.key.as_str() {
                "consumer" | "dialect" => {}
                "route" => {
                    if let Some(route) = self.route(item, &routes) {
                        routes.add(route);
                    }
                }
                "rule" => rule_items.push(item),
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
        let rules: Vec<Rule> = rule_items
            .into_iter()
            .filter_map(|item| self.rule(item, &settings, &instance, &routes, &mut scopes))
            .collect();
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

        Model {
            dialect: self.dialect,
            global_auth,
            consumer_header,
            consumers: std::mem::take(&mut self.consumers),
            scopes,
            rules,
            routes: routes.list,
        }
    }

    /// A token of a client whose secret is stored hashed cannot be signed
    /// with that secret: its scope must have a `signing_key`. And a
    /// `signing_key` equal to a client secret would let that client mint
    /// tokens for every consumer of the scope.
    fn check_signing_keys(&mut self, scopes: &[Scope]) {
        for scope in scopes {
            let key = scope.settings.signing_key.as_ref();
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
                    if let (None, ClientSecret::Hashed(h)) = (key, &c.secret) {
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
                                "add `signing_key env NAME` (32 or more random bytes) next to the consumers: tokens are then signed with it",
                            );
                        self.errors.push(d);
                    }
                }
            }
        }
    }

    /// Apply one scope setting.
    fn setting(&self, s: &mut Settings, item: &Item) -> Result<(), Diagnostic> {
        let key = item.key.as_str();
        if self.dialect == Dialect::Kong
            && !matches!(
                key,
                "signing_key"
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
            "signing_key" => unreachable!("handled above"),
            _ => unreachable!("SCOPE_SETTINGS and this match list the same keys"),
        }
        Ok(())
    }

    /// `consumer NAME { client_id …; client_secret … }` (or `credential { … }` blocks).
    fn consumer(&mut self, item: &Item, scope: &mut ScopeRoster) -> Option<ConsumerId> {
        let name = match item.args.as_slice() {
            [v] => match self.r.nonempty("consumer", v) {
                Ok(n) => (n.to_string(), v.span),
                Err(d) => return self.fail(d),
            },
            [] => {
                return self.fail(self.r.err(
                    item.key_span,
                    "`consumer` needs a name: `consumer NAME { … }`",
                ));
            }
            [_, extra, ..] => {
                return self.fail(
                    self.r
                        .err(extra.span, "`consumer` takes one name before its `{`"),
                );
            }
        };
        let Some(block) = &item.block else {
            let d = self.r.err(
                item.span,
                format!(
                    "consumer `{}` needs a `{{ … }}` block with `client_id` and `client_secret`",
                    name.0
                ),
            );
            return self.fail(d);
        };
        let mut credentials = Vec::new();
        let mut direct = Vec::new();
        let mut kong_ids = KongConsumer::default();
        let mut seen = Seen::default();
        let kong = self.dialect == Dialect::Kong;
        for inner in &block.items {
            match inner.key.as_str() {
                "client_id" | "client_secret" => direct.push(inner),
                k if kong && kong::KONG_CREDENTIAL_KEYS.contains(&k) => direct.push(inner),
                k if kong && kong::KONG_CONSUMER_KEYS.contains(&k) => {
                    if self.once(&mut seen, inner) {
                        let r = self.kong_consumer_key(&mut kong_ids, inner);
                        self.report(r);
                    }
                }
                "credential" => {
                    let Some(b) = &inner.block else {
                        let d = self.r.err(
                            inner.key_span,
                            "`credential` needs a `{ client_id …; client_secret … }` block",
                        );
                        self.errors.push(d);
                        continue;
                    };
                    let items: Vec<&Item> = b.items.iter().collect();
                    if let Some(c) = self.credential(&items, inner.span, scope) {
                        credentials.push(c);
                    }
                }
                _ => {
                    let keys: &[&[&str]] = if kong {
                        &[
                            CONSUMER_KEYS,
                            kong::KONG_CONSUMER_KEYS,
                            kong::KONG_CREDENTIAL_KEYS,
                        ]
                    } else {
                        &[CONSUMER_KEYS]
                    };
                    self.unknown_key(inner, "in a consumer", keys)
                }
            }
        }
        if !direct.is_empty() {
            if let Some(c) = self.credential(&direct, item.span, scope) {
                credentials.insert(0, c);
            }
        } else if credentials.is_empty() && !kong {
            // (A Kong consumer may have none: the `anonymous` one.)
            let d = self.r.err(
                name.1,
                format!(
                    "consumer `{}` has no `client_id` and `client_secret`",
                    name.0
                ),
            );
            return self.fail(d);
        }
        if let Some((first, _)) = scope.names.get(&name.0) {
            let line = self.r.lines.line(first.start);
            let d = self
                .r
                .err(name.1, format!("duplicate consumer name `{}`", name.0))
                .with_help(format!(
                    "the first `{}` is on line {line}; consumer names must be unique",
                    name.0
                ));
            return self.fail(d);
        }
        let id = self.consumers.len() as ConsumerId;
        scope.names.insert(name.0.clone(), (name.1, id));
        if kong_ids.id.is_empty() {
            kong_ids.id = kong::derived_id(&name.0);
        }
        if kong_ids.username.is_none() {
            kong_ids.username = Some(name.0.clone());
        }
        self.consumers.push(Consumer {
            name: name.0,
            credentials,
            span: item.span,
            kong: kong_ids,
        });
        Some(id)
    }

    fn credential(
        &mut self,
        items: &[&Item],
        span: Span,
        scope: &mut ScopeRoster,
    ) -> Option<Credential> {
        let mut seen = Seen::default();
        let (mut id, mut secret, mut secret_span) = (None, None, Span::default());
        let kong = self.dialect == Dialect::Kong;
        let keys = if kong {
            kong::KONG_CREDENTIAL_KEYS
        } else {
            CREDENTIAL_KEYS
        };
        let mut extra = kong::KongCredential::default();
        for item in items {
            if !keys.contains(&item.key.as_str()) {
                self.unknown_key(item, "in a credential", &[keys]);
                continue;
            }
            if !self.once(&mut seen, item) || !self.no_block(item) {
                continue;
            }
            match item.key.as_str() {
                "client_id" | "client_secret" => {}
                _ => {
                    let r = self.kong_credential_key(&mut extra, item);
                    self.report(r);
                    continue;
                }
            }
            match item.key.as_str() {
                "client_id" => match self
                    .r
                    .one(item)
                    .and_then(|v| Ok((self.r.nonempty("client_id", v)?, v.span)))
                {
                    Ok((t, s)) => id = Some((t.to_string(), s)),
                    Err(d) => self.errors.push(d),
                },
                _ => match self.secret(item) {
                    Ok(s) => {
                        secret = Some(s);
                        secret_span = item.span;
                    }
                    Err(d) => self.errors.push(d),
                },
            }
        }
        if extra.public {
            if secret.is_some() {
                let d = self
                    .r
                    .err(secret_span, "a public client has no `client_secret`")
                    .with_help("Kong refuses a secret from a public client (`client_secret is disallowed for public clients`): remove the line, or make the client `confidential`");
                return self.fail(d);
            }
            secret = Some(ClientSecret::Public);
        }
        if let Some((on, at)) = extra.hash_secret {
            let hashed = matches!(secret, Some(ClientSecret::Hashed(_)));
            if on != hashed && secret.is_some() && !extra.public {
                let d = self.r.err(at, if on {
                    "`hash_secret true`: the `client_secret` must then be stored as a hash"
                } else {
                    "`hash_secret false` contradicts `client_secret hash …`"
                }).with_help("write `client_secret hash \"$pbkdf2-sha512$…\"` (Kong's stored hash, or `warden hash-secret`'s); `hash_secret` may then be left out");
                return self.fail(d);
            }
        }
        let missing = match (&id, &secret) {
            (None, _) => Some("client_id"),
            (_, None) => Some("client_secret"),
            _ => None,
        };
        if let Some(m) = missing {
            if seen.0.iter().any(|(k, _)| *k == m) {
                return None; // already reported as malformed
            }
            return self.fail(self.r.err(span, format!("credential has no `{m}`")));
        }
        let ((client_id, id_span), secret) = (id?, secret?);
        if let Some(first) = scope.client_ids.get(&client_id) {
            let line = self.r.lines.line(first.start);
            let d = self
                .r
                .err(id_span, format!("duplicate client_id `{client_id}`"))
                .with_help(format!(
                    "it is already used on line {line}; a client_id identifies one consumer"
                ));
            return self.fail(d);
        }
        scope.client_ids.insert(client_id.clone(), id_span);
        Some(Credential {
            name: extra.name.unwrap_or_else(|| client_id.clone()),
            client_id,
            secret,
            secret_span,
            redirect_uris: extra.redirect_uris,
        })
    }

    /// `KEY "literal"`, `KEY env NAME`, `KEY file PATH`, or `KEY hash "PHC"`,
    /// for `client_secret` and `signing_key`.
    fn secret(&self, item: &Item) -> Result<ClientSecret, Diagnostic> {
        let key = item.key.as_str();
        let bytes = match item.args.as_slice() {
            [v] => self.r.nonempty(key, v)?.as_bytes().to_vec(),
            [kind, v] if kind.text() == Some("hash") => {
                let phc = self.r.nonempty(key, v)?;
                return crate::secret_hash::SecretHash::parse(phc)
                    .map(ClientSecret::Hashed)
                    .map_err(|why| self.r.err(v.span, format!("`{key} hash`: {why}")));
            }
            [kind, v] if matches!(kind.text(), Some("env" | "file")) => {
                let source = kind.text().unwrap_or_default();
                let name = self.r.nonempty(key, v)?;
                let reference = format!("{source}:{name}");
                self.services.secret(&reference).ok_or_else(|| {
                    self.r
                        .err(
                            kind.span.to(v.span),
                            format!("the host cannot supply secret `{reference}`"),
                        )
                        .with_help(match source {
                            "env" => format!("set the environment variable `{name}` for the host"),
                            _ => format!("make `{name}` readable by the host"),
                        })
                })?
            }
            [] => return Err(self.r.err(item.key_span, format!("`{key}` needs a value"))),
            [first, ..] => {
                return Err(self
                    .r
                    .err(
                        first.span.to(item.span),
                        format!(
                            "`{key}` takes a string, `env NAME`, `file PATH` or `hash \"PHC\"`"
                        ),
                    )
                    .with_help(format!("e.g. `{key} env CONSUMER1_SECRET`")));
            }
        };
        if bytes.is_empty() {
            return Err(self.r.err(item.span, format!("`{key}` must not be empty")));
        }
        Ok(ClientSecret::Plain(Secret::new(bytes)))
    }

    fn fail<T>(&mut self, d: Diagnostic) -> Option<T> {
        self.errors.push(d);
        None
    }
}

/// Names and client_ids of one scope, with where they were declared.
#[derive(Default)]
struct ScopeRoster {
    ids: Vec<ConsumerId>,
    names: HashMap<String, (Span, ConsumerId)>,
    client_ids: HashMap<String, Span>,
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
