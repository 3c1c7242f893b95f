//! The Kong oauth2 plugin's `config`, its defaults, and its policy settings.
//!
//! Field names, types and defaults are Kong's (kong/plugins/oauth2/schema.lua,
//! Kong 3.x). Kong's own checks are repeated so that a configuration Kong
//! would refuse is not turned into a policy: at least one grant enabled, and
//! `scopes` when `mandatory_scope` is on. Absent `scopes` and `scopes: []`
//! both mean "no scope may be requested" and are treated alike.
//!
//! [`OAuth2::settings_over`] writes only the fields that differ from a base:
//! Kong's defaults for the instance, or the instance's global plugin for a
//! rule (a Warden rule inherits the instance's settings).

use crate::model::Consumer;
use crate::quote;
use crate::yaml::{Map, Node, Res};

/// PKCE handling (`pkce`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pkce {
    None,
    Lax,
    Strict,
}

/// An oauth2 plugin's configuration, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OAuth2 {
    pub(crate) scopes: Vec<String>,
    pub(crate) mandatory_scope: bool,
    pub(crate) provision_key: Option<String>,
    pub(crate) token_expiration: u64,
    pub(crate) enable_authorization_code: bool,
    pub(crate) enable_implicit_grant: bool,
    pub(crate) enable_client_credentials: bool,
    pub(crate) enable_password_grant: bool,
    pub(crate) hide_credentials: bool,
    pub(crate) accept_http_if_already_terminated: bool,
    /// The Warden consumer name.
    pub(crate) anonymous: Option<String>,
    pub(crate) global_credentials: bool,
    pub(crate) auth_header_name: String,
    pub(crate) refresh_token_ttl: u64,
    pub(crate) reuse_refresh_token: bool,
    pub(crate) pkce: Pkce,
    pub(crate) realm: Option<String>,
}

impl Default for OAuth2 {
    /// Kong's defaults.
    fn default() -> Self {
        OAuth2 {
            scopes: Vec::new(),
            mandatory_scope: false,
            provision_key: None,
            token_expiration: 7200,
            enable_authorization_code: false,
            enable_implicit_grant: false,
            enable_client_credentials: false,
            enable_password_grant: false,
            hide_credentials: false,
            accept_http_if_already_terminated: false,
            anonymous: None,
            global_credentials: false,
            auth_header_name: "authorization".to_owned(),
            refresh_token_ttl: 1_209_600,
            reuse_refresh_token: false,
            pkce: Pkce::Lax,
            realm: None,
        }
    }
}

const BOOLS: &[&str] = &[
    "mandatory_scope",
    "enable_authorization_code",
    "enable_implicit_grant",
    "enable_client_credentials",
    "enable_password_grant",
    "hide_credentials",
    "accept_http_if_already_terminated",
    "global_credentials",
    "reuse_refresh_token",
];

const FIELDS: &[&str] = &[
    "scopes",
    "mandatory_scope",
    "provision_key",
    "token_expiration",
    "enable_authorization_code",
    "enable_implicit_grant",
    "enable_client_credentials",
    "enable_password_grant",
    "hide_credentials",
    "accept_http_if_already_terminated",
    "anonymous",
    "global_credentials",
    "auth_header_name",
    "refresh_token_ttl",
    "reuse_refresh_token",
    "pkce",
    "realm",
];

/// Kong's upper bound for `refresh_token_ttl` (typedefs.ttl).
const MAX_TTL: u64 = 100_000_000;

impl OAuth2 {
    /// Reads a plugin's `config` (absent = all defaults). `anonymous` is
    /// resolved against `consumers` as Kong does: by id, then by username.
    pub(crate) fn read(
        config: Option<&Node<'_>>,
        at: &Node<'_>,
        consumers: &[Consumer],
    ) -> Res<OAuth2> {
        let mut c = OAuth2::default();
        let Some(node) = config else {
            return Err(at.fault(
                "oauth2 plugin has no `config`: Kong requires at least one grant (enable_authorization_code, enable_implicit_grant, enable_client_credentials or enable_password_grant)",
            ));
        };
        let map = node.map("`config`")?;
        map.only("oauth2 config", FIELDS)?;
        let what = "oauth2 config";
        if let Some(s) = map.texts("scopes", what)? {
            c.scopes = s;
        }
        for key in BOOLS {
            if let Some(b) = map.boolean(key, what)? {
                *c.flag(key) = b;
            }
        }
        c.provision_key = map.text("provision_key", what)?;
        if let Some(n) = map.get("token_expiration") {
            c.token_expiration = n.whole("`token_expiration`")?;
        }
        if let Some(n) = map.get("refresh_token_ttl") {
            c.refresh_token_ttl = n.whole("`refresh_token_ttl`")?;
            if c.refresh_token_ttl > MAX_TTL {
                return Err(n.fault(format!(
                    "`refresh_token_ttl` may be at most {MAX_TTL} (Kong refuses more)"
                )));
            }
        }
        if let Some(h) = map.text("auth_header_name", what)? {
            c.auth_header_name = h;
        }
        c.realm = map.text("realm", what)?;
        if let Some(p) = map.get("pkce") {
            c.pkce = match p.text("`pkce`")? {
                "none" => Pkce::None,
                "lax" => Pkce::Lax,
                "strict" => Pkce::Strict,
                other => {
                    return Err(p.fault(format!(
                        "`pkce` must be none, lax or strict, found `{other}`"
                    )));
                }
            };
        }
        if let Some(a) = map.get("anonymous") {
            let wanted = a.text("`anonymous`")?;
            let consumer = consumers
                .iter()
                .find(|k| k.id.as_deref() == Some(wanted))
                .or_else(|| {
                    consumers
                        .iter()
                        .find(|k| k.username.as_deref() == Some(wanted))
                })
                .ok_or_else(|| {
                    a.fault(format!(
                        "`anonymous`: no consumer has the id or username `{wanted}`"
                    ))
                })?;
            c.anonymous = Some(consumer.name.clone());
        }
        c.check(&map)?;
        Ok(c)
    }

    fn flag(&mut self, key: &str) -> &mut bool {
        match key {
            "mandatory_scope" => &mut self.mandatory_scope,
            "enable_authorization_code" => &mut self.enable_authorization_code,
            "enable_implicit_grant" => &mut self.enable_implicit_grant,
            "enable_client_credentials" => &mut self.enable_client_credentials,
            "enable_password_grant" => &mut self.enable_password_grant,
            "hide_credentials" => &mut self.hide_credentials,
            "accept_http_if_already_terminated" => &mut self.accept_http_if_already_terminated,
            "global_credentials" => &mut self.global_credentials,
            _ => &mut self.reuse_refresh_token,
        }
    }

    /// Kong's own entity checks.
    fn check(&self, map: &Map<'_>) -> Res<()> {
        if !(self.enable_authorization_code
            || self.enable_implicit_grant
            || self.enable_client_credentials
            || self.enable_password_grant)
        {
            return Err(map.node.fault(
                "oauth2 config enables no grant: Kong requires at least one of enable_authorization_code, enable_implicit_grant, enable_client_credentials, enable_password_grant",
            ));
        }
        if self.mandatory_scope && map.get("scopes").is_none() {
            return Err(map.key_fault(
                "mandatory_scope",
                "`mandatory_scope: true` needs `scopes` (Kong requires them)",
            ));
        }
        Ok(())
    }

    /// Every setting as (policy key, rendered value); `None` = unset.
    fn rendered(&self) -> Vec<(&'static str, Option<String>)> {
        let b = |v: bool| Some(v.to_string());
        vec![
            ("scopes", Some(quote::list(&self.scopes))),
            ("mandatory_scope", b(self.mandatory_scope)),
            (
                "provision_key",
                self.provision_key.as_deref().map(quote::quoted),
            ),
            ("token_expiration", Some(self.token_expiration.to_string())),
            (
                "enable_authorization_code",
                b(self.enable_authorization_code),
            ),
            ("enable_implicit_grant", b(self.enable_implicit_grant)),
            (
                "enable_client_credentials",
                b(self.enable_client_credentials),
            ),
            ("enable_password_grant", b(self.enable_password_grant)),
            ("hide_credentials", b(self.hide_credentials)),
            (
                "accept_http_if_already_terminated",
                b(self.accept_http_if_already_terminated),
            ),
            ("anonymous", self.anonymous.as_deref().map(quote::value)),
            ("global_credentials", b(self.global_credentials)),
            (
                "auth_header_name",
                Some(quote::value(&self.auth_header_name)),
            ),
            (
                "refresh_token_ttl",
                Some(self.refresh_token_ttl.to_string()),
            ),
            ("reuse_refresh_token", b(self.reuse_refresh_token)),
            (
                "pkce",
                Some(
                    match self.pkce {
                        Pkce::None => "none",
                        Pkce::Lax => "lax",
                        Pkce::Strict => "strict",
                    }
                    .to_owned(),
                ),
            ),
            ("realm", self.realm.as_deref().map(quote::quoted)),
        ]
    }

    /// The `key value` lines for the fields that differ from `base`, in
    /// Kong's schema order. `Err(key)`: `base` sets `key` and `self` leaves it
    /// unset, which a rule cannot express.
    pub(crate) fn settings_over(&self, base: &OAuth2) -> Result<Vec<String>, &'static str> {
        let mut lines = Vec::new();
        for ((key, mine), (_, theirs)) in self.rendered().into_iter().zip(base.rendered()) {
            match (mine, theirs) {
                (a, b) if a == b => {}
                (Some(v), _) => lines.push(format!("{key} {v}")),
                (None, Some(_)) => return Err(key),
                (None, None) => {}
            }
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_write_nothing_and_differences_are_spelled_out() {
        let d = OAuth2::default();
        assert_eq!(d.settings_over(&d), Ok(vec![]));
        let mut c = d.clone();
        c.enable_client_credentials = true;
        c.scopes = vec!["email".into(), "user.email".into()];
        c.realm = Some("my realm".into());
        c.pkce = Pkce::Strict;
        assert_eq!(
            c.settings_over(&d).unwrap(),
            vec![
                "scopes [email, user.email]",
                "enable_client_credentials true",
                "pkce strict",
                "realm \"my realm\"",
            ]
        );
        // Over a base that has scopes, no scopes must be written as `[]`.
        let mut scoped = d.clone();
        scoped.scopes = vec!["x".into()];
        assert_eq!(d.settings_over(&scoped), Ok(vec!["scopes []".to_owned()]));
        // …but an unset realm cannot be written.
        assert_eq!(d.settings_over(&c), Err("realm"));
    }
}
