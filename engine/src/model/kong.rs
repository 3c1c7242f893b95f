//! The Kong dialect's vocabulary (`dialect kong`): Kong's `oauth2` plugin
//! settings, its consumers' `username`/`custom_id`/`id`, its credentials'
//! `name`/`redirect_uris`/`client_type`/`hash_secret`, and every constraint
//! Kong's schema puts on them, as compile errors at the line.
//!
//! The names are Kong's (`token_expiration`, `hide_credentials`, …), so a
//! Kong configuration reads the same here; where Higress has a name for the
//! same fact (`token_ttl`, `keep_token`), each dialect accepts only its own
//! and the error names the other.

use sha2::{Digest, Sha256};

use super::*;

/// Plugin settings of the Kong dialect (instance or rule).
pub(super) const KONG_SETTINGS: &[&str] = &[
    "issuer",
    "global_credentials",
    "auth_header_name",
    "token_expiration",
    "clock_skew_seconds",
    "hide_credentials",
    "signing_key",
    "enable_authorization_code",
    "enable_client_credentials",
    "enable_implicit_grant",
    "enable_password_grant",
    "scopes",
    "mandatory_scope",
    "provision_key",
    "refresh_token_ttl",
    "reuse_refresh_token",
    "pkce",
    "accept_http_if_already_terminated",
    "anonymous",
    "realm",
    "authorization_page",
];

/// Consumer keys of the Kong dialect besides the credential's.
pub(super) const KONG_CONSUMER_KEYS: &[&str] = &["username", "custom_id", "id"];
/// Credential keys of the Kong dialect.
pub(super) const KONG_CREDENTIAL_KEYS: &[&str] = &[
    "client_id",
    "client_secret",
    "name",
    "redirect_uris",
    "client_type",
    "hash_secret",
];

/// A key of one dialect used in the other: what to write instead.
pub(super) fn other_dialect(key: &str, dialect: Dialect) -> Option<String> {
    let kong = match dialect {
        Dialect::Higress => {
            return (KONG_SETTINGS.contains(&key)
                || KONG_CONSUMER_KEYS.contains(&key)
                || KONG_CREDENTIAL_KEYS.contains(&key))
            .then(|| {
                format!(
                    "`{key}` is a setting of Kong's dialect: start the file with `dialect kong`"
                )
            });
        }
        Dialect::Kong => key,
    };
    Some(match kong {
        "token_ttl" => "Kong's name for it is `token_expiration`".into(),
        "token_query_param" => "Kong reads the token from the `access_token` query (or body) parameter always".into(),
        "keep_token" => "Kong's name for it is `hide_credentials` (inverted: `keep_token false` is `hide_credentials true`)".into(),
        "auth_path" => "Kong's endpoints are any path ending in `/oauth2/token` and `/oauth2/authorize`".into(),
        "consumer_header" => "Kong names the consumer upstream with `X-Consumer-ID`, `X-Consumer-Username` and `X-Consumer-Custom-ID`".into(),
        _ => return None,
    })
}

/// Kong's `typedefs.ttl`: 0 to 100,000,000 seconds.
const MAX_TTL: u64 = 100_000_000;

impl Checker<'_> {
    /// Apply one Kong plugin setting (the shared ones are handled by
    /// [`Checker::setting`]).
    pub(super) fn kong_setting(&self, s: &mut Settings, item: &Item) -> Result<(), Diagnostic> {
        let key = item.key;
        if key == "provision_key" {
            match self.secret(item)? {
                ClientSecret::Plain(k) => s.kong.provision_key = Some(k),
                _ => {
                    return Err(self.r.err(
                        item.span,
                        "`provision_key` is the key itself (a string, `env NAME` or `file PATH`)",
                    ));
                }
            }
            return Ok(());
        }
        if key == "authorization_page" {
            s.kong.authorization_page = self.authorization_page(item)?;
            return Ok(());
        }
        let v = self.r.one(item)?;
        let k = &mut s.kong;
        match key {
            "enable_authorization_code" => k.enable_authorization_code = self.r.boolean(key, v)?,
            "enable_client_credentials" => k.enable_client_credentials = self.r.boolean(key, v)?,
            "enable_implicit_grant" => k.enable_implicit_grant = self.r.boolean(key, v)?,
            "enable_password_grant" => k.enable_password_grant = self.r.boolean(key, v)?,
            "mandatory_scope" => k.mandatory_scope = self.r.boolean(key, v)?,
            "reuse_refresh_token" => k.reuse_refresh_token = self.r.boolean(key, v)?,
            "accept_http_if_already_terminated" => {
                k.accept_http_if_already_terminated = self.r.boolean(key, v)?
            }
            "hide_credentials" => s.keep_token = !self.r.boolean(key, v)?,
            "scopes" => {
                let list = match &v.kind {
                    crate::syntax::ValueKind::List(items) if items.is_empty() => Default::default(),
                    _ => self.r.texts(key, v)?,
                };
                for (scope, span) in &list {
                    if scope.bytes().any(|b| b.is_ascii_whitespace()) {
                        return Err(self.r.err(
                            *span,
                            format!("scope `{scope}` has a space: scopes are separated by spaces in requests"),
                        ));
                    }
                }
                k.scopes = Some(list.into_iter().map(|(t, _)| t.to_string()).collect());
            }
            "token_expiration" => s.token_ttl = self.ttl(key, v)?,
            "refresh_token_ttl" => k.refresh_token_ttl = self.ttl(key, v)?,
            "pkce" => {
                k.pkce = match self.r.text(key, v)? {
                    "none" => Pkce::None,
                    "lax" => Pkce::Lax,
                    "strict" => Pkce::Strict,
                    other => {
                        return Err(self.r.err(
                            v.span,
                            format!("expected one of: none, lax, strict; found `{other}`"),
                        ));
                    }
                }
            }
            "realm" => k.realm = Some(self.r.text(key, v)?.to_string()),
            "anonymous" => {
                let wanted = self.r.nonempty(key, v)?;
                let found = self.consumers.iter().position(|c| {
                    &*c.name == wanted
                        || c.kong.as_ref().is_some_and(|k| {
                            k.id == wanted || k.username.as_deref() == Some(wanted)
                        })
                });
                match found {
                    Some(id) => k.anonymous = Some(id as ConsumerId),
                    None => {
                        let names = self.consumers.iter().map(|c| &*c.name);
                        let mut d = self.r.err(
                            v.span,
                            format!("anonymous consumer `{wanted}` is not declared"),
                        );
                        if let Some(best) = closest(wanted, names) {
                            d = d.with_help(format!("did you mean `{best}`?"));
                        }
                        return Err(d);
                    }
                }
            }
            _ => unreachable!("KONG_SETTINGS and this match list the same keys"),
        }
        Ok(())
    }

    /// `authorization_page true|false`, or `authorization_page { user NAME
    /// { password_hash "PHC" } … }` (on, with users who sign in on it).
    fn authorization_page(&self, item: &Item) -> Result<Option<AuthorizationPage>, Diagnostic> {
        let key = item.key;
        let on = match (item.args.as_slice(), &item.block) {
            ([], Some(_)) => true,
            ([], None) => {
                return Err(self
                    .r
                    .err(item.key_span, "`authorization_page` needs a value")
                    .with_help("`authorization_page true` (users named by a trusted proxy), or `authorization_page { user NAME { password_hash \"…\" } }`"));
            }
            ([v], _) => self.r.boolean(key, v)?,
            ([_, extra, ..], _) => {
                return Err(self
                    .r
                    .err(extra.span, "`authorization_page` takes one value"));
            }
        };
        let items = item.block.as_ref().map_or(&[][..], |b| b.items.as_slice());
        if !on {
            return match &item.block {
                Some(b) => Err(self
                    .r
                    .err(b.span, "`authorization_page false` has no users")
                    .with_help("remove the block, or write `authorization_page { … }`")),
                None => Ok(None),
            };
        }
        let mut users: Vec<(PageUser, Span)> = Vec::new();
        for inner in items {
            if inner.key != "user" {
                let mut d = self.r.err(
                    inner.key_span,
                    format!("unknown setting `{}` in `authorization_page`", inner.key),
                );
                d = d.with_help(match closest(inner.key, ["user"]) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => {
                        "an authorization page lists its users: `user NAME { password_hash \"…\" }`"
                            .into()
                    }
                });
                return Err(d);
            }
            let (user, span) = self.page_user(inner)?;
            if let Some((_, first)) = users.iter().find(|(u, _)| u.name == user.name) {
                let line = self.r.lines.line(first.start);
                return Err(self
                    .r
                    .err(span, format!("duplicate user `{}`", user.name))
                    .with_help(format!("the first `{}` is on line {line}", user.name)));
            }
            users.push((user, span));
        }
        Ok(Some(AuthorizationPage {
            users: users.into_iter().map(|(u, _)| u).collect(),
            span: item.key_span,
        }))
    }

    /// `user NAME { password_hash "PHC" }`, and where its name is.
    fn page_user(&self, item: &Item) -> Result<(PageUser, Span), Diagnostic> {
        let (name, span) = match item.args.as_slice() {
            [v] => (self.r.nonempty("user", v)?, v.span),
            [] => {
                return Err(self.r.err(
                    item.key_span,
                    "`user` needs a name: `user NAME { password_hash \"…\" }`",
                ));
            }
            [_, extra, ..] => {
                return Err(self
                    .r
                    .err(extra.span, "`user` takes one name before its `{`"));
            }
        };
        // The name is the code's `authenticated_userid`, forwarded as a header.
        self.header_safe("user", name, span)?;
        let no_hash = || {
            self.r
                .err(item.span, format!("user `{name}` has no `password_hash`"))
                .with_help("`printf %s \"$PASSWORD\" | warden hash-secret` prints one")
        };
        let block = item.block.as_ref().ok_or_else(no_hash)?;
        let mut password = None;
        for inner in &block.items {
            if inner.key != "password_hash" {
                let mut d = self.r.err(
                    inner.key_span,
                    format!("unknown setting `{}` in a user", inner.key),
                );
                if let Some(best) = closest(inner.key, ["password_hash"]) {
                    d = d.with_help(format!("did you mean `{best}`?"));
                }
                return Err(d);
            }
            if password.is_some() {
                return Err(self.r.err(inner.key_span, "`password_hash` is set twice"));
            }
            let v = self.r.one(inner)?;
            let phc = self.r.nonempty("password_hash", v)?;
            let hash = crate::secret_hash::SecretHash::parse(phc)
                .map_err(|why| self.r.err(v.span, format!("`password_hash`: {why}")))?;
            password = Some(hash);
        }
        let password = password.ok_or_else(no_hash)?;
        Ok((
            PageUser {
                name: name.to_string(),
                password,
            },
            span,
        ))
    }

    /// Seconds within Kong's bounds (0 allowed).
    fn ttl(&self, key: &str, v: &Value) -> Result<u64, Diagnostic> {
        let t = self.r.duration(key, v)?;
        if t > MAX_TTL {
            return Err(self
                .r
                .err(v.span, format!("value should be between 0 and {MAX_TTL}")));
        }
        Ok(t)
    }

    /// What Kong's schema requires of one plugin (scope), reported at `at`.
    pub(super) fn check_kong_scope(&mut self, s: &Settings, at: Span) {
        let k = &s.kong;
        if !(k.enable_authorization_code
            || k.enable_implicit_grant
            || k.enable_client_credentials
            || k.enable_password_grant)
        {
            let d = self.r.err(at, "at least one of these fields must be true: enable_authorization_code, enable_implicit_grant, enable_client_credentials, enable_password_grant");
            self.errors.push(d);
        }
        if k.mandatory_scope && k.scopes.is_none() {
            let d = self
                .r
                .err(at, "`mandatory_scope` is true, so `scopes` is required")
                .with_help("list the scopes a client may ask for: `scopes [email, profile]`");
            self.errors.push(d);
        }
        if let Some(page) = &k.authorization_page
            && !(k.enable_authorization_code || k.enable_implicit_grant)
        {
            let d = self
                .r
                .err(
                    page.span,
                    "`authorization_page` needs `enable_authorization_code` or `enable_implicit_grant`",
                )
                .with_help("the page completes the authorization code or the implicit flow: enable one of them in this plugin");
            self.errors.push(d);
        }
        if k.provision_key.is_none() {
            // With Warden's page, the code and implicit flows need no key
            // (a page of one's own still POSTs one, where it is set).
            let own_page = k.authorization_page.is_none();
            let needs: Vec<&str> = [
                (
                    k.enable_authorization_code && own_page,
                    "enable_authorization_code",
                ),
                (k.enable_implicit_grant && own_page, "enable_implicit_grant"),
                (k.enable_password_grant, "enable_password_grant"),
            ]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
            if !needs.is_empty() {
                let d = self
                    .r
                    .err(at, format!("{} needs a `provision_key`", needs.join(" and ")))
                    .with_help("Kong generates one when absent; a policy must say it (so that it survives a reload): `provision_key env PROVISION_KEY` (or, for the code and implicit flows, Warden's `authorization_page`)");
                self.errors.push(d);
            }
        }
        if s.signing_key.is_none() && !s.signing_alg.is_asymmetric() {
            let d = self
                .r
                .err(at, "the Kong dialect needs a `signing_key`")
                .with_help("Warden issues JWT access tokens signed with it (public clients have no secret to sign with): `signing_key env WARDEN_SIGNING_KEY`, 32 or more random bytes; or `signing_alg ES256` (RS256, EdDSA) to sign with the host's keys");
            self.errors.push(d);
        }
    }

    /// A Kong consumer key (`username`, `custom_id`, `id`).
    pub(super) fn kong_consumer_key(
        &mut self,
        kong: &mut KongConsumer,
        item: &Item,
    ) -> Result<(), Diagnostic> {
        let v = self.r.one(item)?;
        let t = self.r.nonempty(item.key, v)?.to_string();
        self.header_safe(item.key, &t, v.span)?;
        match item.key {
            "username" => kong.username = Some(t),
            "custom_id" => kong.custom_id = Some(t),
            _ => {
                if !is_uuid(&t) {
                    return Err(self.r.err(v.span, "expected a valid UUID"));
                }
                kong.id = t.to_ascii_lowercase();
            }
        }
        Ok(())
    }

    /// Values Kong forwards as headers (`X-Consumer-Username`,
    /// `X-Credential-Identifier`, …) may not hold control characters.
    pub(super) fn header_safe(&self, key: &str, text: &str, span: Span) -> Result<(), Diagnostic> {
        if text.chars().any(char::is_control) {
            return Err(self.r.err(
                span,
                format!("`{key}` is forwarded as a header: it may not contain control characters"),
            ));
        }
        Ok(())
    }

    /// A Kong credential key besides `client_id`/`client_secret`.
    pub(super) fn kong_credential_key(
        &mut self,
        c: &mut KongCredential,
        item: &Item,
    ) -> Result<(), Diagnostic> {
        let key = item.key;
        let v = self.r.one(item)?;
        match key {
            "name" => c.name = Some(self.r.nonempty(key, v)?.to_string()),
            "client_type" => {
                c.public = match self.r.text(key, v)? {
                    "confidential" => false,
                    "public" => true,
                    other => {
                        return Err(self.r.err(
                            v.span,
                            format!("expected one of: confidential, public; found `{other}`"),
                        ));
                    }
                }
            }
            "hash_secret" => c.hash_secret = Some((self.r.boolean(key, v)?, v.span)),
            _ => {
                let list = match &v.kind {
                    crate::syntax::ValueKind::List(items) if items.is_empty() => Default::default(),
                    _ => self.r.texts(key, v)?,
                };
                for (uri, span) in list {
                    check_redirect_uri(uri).map_err(|why| self.r.err(span, why))?;
                    c.redirect_uris.push(uri.to_string());
                }
            }
        }
        Ok(())
    }
}

/// A Kong credential's extra fields while it is read.
#[derive(Debug, Default)]
pub(super) struct KongCredential {
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    pub hash_secret: Option<(bool, Span)>,
}

/// Kong's check of a registered redirect URI (`daos.lua` `validate_uri`):
/// a scheme and a host, no fragment; Kong's messages.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let cannot = || format!("cannot parse '{uri}'");
    let (scheme, rest) = uri.split_once("://").ok_or_else(cannot)?;
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if !scheme_ok || host.is_empty() || uri.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(cannot());
    }
    if uri.contains('#') {
        return Err(format!("fragment not allowed in '{uri}'"));
    }
    Ok(())
}

/// Kong's `typedefs.uuid` shape: 8-4-4-4-12 hex digits.
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The Kong consumers' usernames, custom_ids and ids, each with the
/// consumer that has it: Kong's unique constraints, checked in constant
/// time per consumer.
#[derive(Default)]
pub(super) struct KongIdentities {
    username: HashMap<String, ConsumerId>,
    custom_id: HashMap<String, ConsumerId>,
    id: HashMap<String, ConsumerId>,
}

impl KongIdentities {
    /// Record consumer `id`'s identity `who`; or, if another consumer has
    /// one of its values, that clash: (field, value, the first consumer
    /// declared with it). Nothing is recorded on a clash.
    pub(super) fn claim(
        &mut self,
        who: &KongConsumer,
        id: ConsumerId,
    ) -> Result<(), (&'static str, String, ConsumerId)> {
        let fields = [
            ("username", &mut self.username, who.username.as_deref()),
            ("custom_id", &mut self.custom_id, who.custom_id.as_deref()),
            ("id", &mut self.id, Some(who.id.as_str())),
        ];
        // The earliest consumer wins; for one consumer, the first field.
        let clash = fields
            .iter()
            .filter_map(|(field, taken, value)| {
                let value = (*value)?;
                taken.get(value).map(|&other| (other, *field, value))
            })
            .min_by_key(|&(other, ..)| other);
        if let Some((other, field, value)) = clash {
            return Err((field, value.to_string(), other));
        }
        for (_, taken, value) in fields {
            if let Some(value) = value {
                taken.insert(value.to_string(), id);
            }
        }
        Ok(())
    }
}

/// A consumer's id when the policy gives none: a UUID derived from its
/// name, so that it stays the same across reloads and gateway nodes.
pub(super) fn derived_id(name: &str) -> String {
    let digest = Sha256::digest(format!("warden consumer {name}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    crate::token::uuid_v4(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_as_kong_checks_them() {
        for ok in [
            "http://google.com/kong",
            "https://abc.com:8443/x?y=1",
            "myapp://callback.host",
        ] {
            assert_eq!(check_redirect_uri(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            check_redirect_uri("http://abc.com/#x"),
            Err("fragment not allowed in 'http://abc.com/#x'".into())
        );
        for bad in ["not-a-uri", "http://", "/relative", "://x", "http:// x"] {
            assert_eq!(
                check_redirect_uri(bad),
                Err(format!("cannot parse '{bad}'")),
                "{bad}"
            );
        }
    }

    #[test]
    fn ids() {
        assert!(is_uuid("4d924084-1adb-40a5-c042-63b19db421d1"));
        assert!(!is_uuid("4d924084-1adb-40a5-c042"));
        assert!(is_uuid(&derived_id("bob")));
        assert_eq!(derived_id("bob"), derived_id("bob"));
        assert_ne!(derived_id("bob"), derived_id("alice"));
    }
}
