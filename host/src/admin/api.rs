//! The Admin API's endpoints, on Kong's paths with Kong's JSON: one
//! function from (method, path, query, fields) to (status, body), run on
//! the blocking pool (every call reaches the store).
//!
//! A change is checked by compiling the policy with it before it is
//! written (a consumer the policy could not take is refused, with the
//! compiler's words); once written, every node is told and recompiles — this
//! one before it answers, so the next request here sees the change.

use serde_json::{Value, json};
use warden_engine::IssuedToken;

use super::entities::{
    self, AdminError, Consumer, Credential, CredentialFields, Fields, ForeignKey, policy_text,
};
use super::registry::Registry;
use super::{Composer, random_id, random_secret};
use warden_engine::internal::model::is_uuid;

/// What an endpoint answers: the status and the JSON body (`None`: 204).
pub(super) type Answer = Result<(u16, Option<Value>), AdminError>;

/// Everything an endpoint needs.
pub(super) struct Admin<'a> {
    pub(super) registry: &'a Registry,
    pub(super) composer: &'a Composer,
}

/// Kong's page of a list: rows in id order, `size` of them (default 100,
/// at most 1000) after the `offset` (unpadded base64 of `["<last id>"]`);
/// `offset` and `next` name the next page, when there is one.
fn page(mut items: Vec<Value>, query: &str, path: &str) -> Answer {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    let size = match query_param(query, "size") {
        None => 100,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            Ok(_) => {
                return Err(AdminError::Invalid(
                    9,
                    "invalid size",
                    "size must be an integer between 1 and 1000".into(),
                ));
            }
            Err(_) => {
                return Err(AdminError::Invalid(
                    9,
                    "invalid size",
                    "size must be a number".into(),
                ));
            }
        },
    };
    let id = |v: &Value| v["id"].as_str().unwrap_or_default().to_string();
    items.sort_by_key(id);
    if let Some(offset) = query_param(query, "offset") {
        let after = STANDARD_NO_PAD
            .decode(offset.trim_end_matches('='))
            .map_err(|_| "bad base64 encoding")
            .and_then(|b| {
                serde_json::from_slice::<Vec<String>>(&b).map_err(|_| "bad json encoding")
            })
            .map_err(|why| {
                AdminError::Invalid(
                    7,
                    "invalid offset",
                    format!("'{offset}' is not a valid offset: {why}"),
                )
            })?;
        let after = after.into_iter().next().unwrap_or_default();
        items.retain(|v| id(v) > after);
    }
    let more = items.len() > size;
    items.truncate(size);
    let mut body = json!({"data": items, "next": null});
    if more && let Some(last) = items.last() {
        let offset = STANDARD_NO_PAD.encode(json!([id(last)]).to_string());
        let sized = query_param(query, "size").map_or_else(String::new, |s| format!("&size={s}"));
        body["next"] = format!(
            "{path}?offset={}{sized}",
            form_urlencoded::byte_serialize(offset.as_bytes()).collect::<String>()
        )
        .into();
        body["offset"] = offset.into();
    }
    Ok((200, Some(body)))
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl Admin<'_> {
    /// Route one call.
    pub(super) fn call(&self, method: &str, path: &str, query: &str, fields: &Fields) -> Answer {
        let segments: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (method, s.as_slice()) {
            ("GET", ["consumers"]) => {
                let custom_id = query_param(query, "custom_id");
                if custom_id.as_deref() == Some("")
                    || (custom_id.is_none() && query.split('&').any(|p| p == "custom_id"))
                {
                    return Err(AdminError::BadRequest(
                        "custom_id must be an unempty string".into(),
                    ));
                }
                page(
                    self.registry
                        .consumers()?
                        .iter()
                        .filter(|c| {
                            custom_id.is_none() || c.custom_id.as_deref() == custom_id.as_deref()
                        })
                        .map(to_value)
                        .collect(),
                    query,
                    path,
                )
            }
            ("POST", ["consumers"]) => self.create_consumer(fields),
            ("GET", ["consumers", c]) => Ok((200, Some(to_value(&self.registry.consumer(c)?)))),
            ("DELETE", ["consumers", c]) => self.delete_consumer(c),
            ("PUT", ["consumers", c]) => self.put_consumer(c, fields),
            ("PATCH", ["consumers", c]) => self.patch_consumer(c, fields),
            ("PUT", ["consumers", c, "oauth2", k]) => self.put_credential(c, k, fields),
            ("GET", ["consumers", c, "oauth2"]) => {
                let c = self.registry.consumer(c)?;
                page(
                    self.registry
                        .credentials_of(&c.id)?
                        .iter()
                        .map(to_value)
                        .collect(),
                    query,
                    path,
                )
            }
            ("POST", ["consumers", c, "oauth2"]) => self.create_credential(c, fields),
            ("GET", ["consumers", c, "oauth2", k]) => {
                Ok((200, Some(to_value(&self.credential_of(c, k)?))))
            }
            ("PATCH", ["consumers", c, "oauth2", k]) => self.patch_credential(c, k, fields),
            ("DELETE", ["consumers", c, "oauth2", k]) => {
                let k = self.credential_of(c, k)?;
                self.change(|| self.registry.delete_credential(&k))?;
                Ok((204, None))
            }
            ("GET", ["oauth2"]) => {
                let wanted = query_param(query, "client_id");
                page(
                    self.registry
                        .credentials()?
                        .iter()
                        .filter(|k| wanted.as_deref().is_none_or(|w| w == k.client_id))
                        .map(to_value)
                        .collect(),
                    query,
                    path,
                )
            }
            ("GET", ["oauth2", k]) => Ok((200, Some(to_value(&self.registry.credential(k)?)))),
            ("GET", ["oauth2_tokens"]) => {
                let credentials = self.registry.credentials()?;
                let now = self.registry.now();
                page(
                    self.registry
                        .tokens()?
                        .iter()
                        .map(|t| token_view(t, &credentials, now))
                        .collect(),
                    query,
                    path,
                )
            }
            ("GET", ["oauth2_tokens", id]) => {
                let t = self.registry.token(id)?;
                let credentials = self.registry.credentials()?;
                Ok((200, Some(token_view(&t, &credentials, self.registry.now()))))
            }
            ("DELETE", ["oauth2_tokens", id]) => {
                // Kong answers 204 for a token it does not have, too.
                match self.registry.token(id) {
                    Ok(t) => self.registry.revoke_token(&t)?,
                    Err(AdminError::NotFound) => {}
                    Err(e) => return Err(e),
                }
                Ok((204, None))
            }
            (
                _,
                ["consumers"]
                | ["consumers", _]
                | ["consumers", _, "oauth2"]
                | ["consumers", _, "oauth2", _]
                | ["oauth2"]
                | ["oauth2", _]
                | ["oauth2_tokens"]
                | ["oauth2_tokens", _],
            ) => Err(AdminError::MethodNotAllowed),
            _ => Err(AdminError::NotFound),
        }
    }

    fn credential_of(&self, consumer: &str, key: &str) -> Result<Credential, AdminError> {
        let c = self.registry.consumer(consumer)?;
        let k = self.registry.credential(key)?;
        if k.consumer.id == c.id {
            Ok(k)
        } else {
            Err(AdminError::NotFound)
        }
    }

    /// Compile the policy with the entities as they would be, or say why not.
    fn check(&self, consumers: &[Consumer], credentials: &[Credential]) -> Result<(), AdminError> {
        self.composer
            .compose(policy_text(consumers, credentials), false)
            .map_err(|diagnostics| rejected(&diagnostics))
    }

    /// Make a change, then tell every node and recompile here.
    fn change(&self, write: impl FnOnce() -> Result<(), AdminError>) -> Result<(), AdminError> {
        write()?;
        if let Err(e) = self.registry.announce() {
            tracing::warn!(error = ?e, "could not tell the other nodes; they catch up on their next resync");
        }
        let (consumers, credentials) = self.registry.snapshot()?;
        if let Err(e) = self
            .composer
            .compose(policy_text(&consumers, &credentials), true)
        {
            tracing::error!(error = %e, "the Admin API's consumers no longer compile with the policy");
        }
        Ok(())
    }

    fn create_consumer(&self, fields: &Fields) -> Answer {
        let now = self.registry.now();
        let c = entities::new_consumer(fields, random_id(), now)?;
        let (mut consumers, credentials) = self.registry.snapshot()?;
        consumers.push(c.clone());
        self.check(&consumers, &credentials)?;
        self.change(|| self.registry.create_consumer(&c))?;
        Ok((201, Some(to_value(&c))))
    }

    /// Kong's upsert: `{c}` is the id (a UUID) or the username; the body
    /// replaces the whole consumer (what it leaves out is reset).
    fn put_consumer(&self, key: &str, fields: &Fields) -> Answer {
        let mut fields = fields.clone();
        let existing = match self.registry.consumer(key) {
            Ok(c) => Some(c),
            Err(AdminError::NotFound) => None,
            Err(e) => return Err(e),
        };
        if is_uuid(key) {
            fields.insert("id".into(), key.into());
        } else {
            fields.insert("username".into(), key.into());
            if let Some(old) = &existing {
                fields.insert("id".into(), old.id.clone().into());
            }
        }
        let now = self.registry.now();
        let new = entities::new_consumer(&fields, random_id(), now)?;
        self.replace_consumer(existing.as_ref(), new)
    }

    /// Kong's PATCH: the body's fields over the stored consumer.
    fn patch_consumer(&self, key: &str, fields: &Fields) -> Answer {
        let old = self.registry.consumer(key)?;
        let mut merged = serde_json::to_value(&old)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        merged.remove("created_at");
        merged.remove("updated_at");
        for (k, v) in fields {
            merged.insert(k.clone(), v.clone());
        }
        if merged.get("id") != Some(&Value::from(old.id.clone())) {
            return Err(AdminError::Schema(vec![(
                "id".into(),
                "cannot be changed".into(),
            )]));
        }
        let mut new = entities::new_consumer(&merged, old.id.clone(), self.registry.now())?;
        new.created_at = old.created_at;
        self.replace_consumer(Some(&old), new)
    }

    fn replace_consumer(&self, old: Option<&Consumer>, new: Consumer) -> Answer {
        let (mut consumers, credentials) = self.registry.snapshot()?;
        consumers.retain(|c| c.id != new.id);
        consumers.push(new.clone());
        self.check(&consumers, &credentials)?;
        match old {
            Some(old) => self.change(|| self.registry.update_consumer(old, &new))?,
            None => self.change(|| self.registry.create_consumer(&new))?,
        }
        Ok((200, Some(to_value(&new))))
    }

    fn delete_consumer(&self, key: &str) -> Answer {
        // Kong answers 204 for a consumer it does not have, too.
        match self.registry.consumer(key) {
            Ok(c) => self.change(|| self.registry.delete_consumer(&c))?,
            Err(AdminError::NotFound) => {}
            Err(e) => return Err(e),
        }
        Ok((204, None))
    }

    fn create_credential(&self, consumer: &str, fields: &Fields) -> Answer {
        let c = self.registry.consumer(consumer)?;
        let f = entities::credential_fields(fields)?;
        let k = new_credential(f, &c, self.registry.now());
        entities::check_credential(&k)?;
        let mut shown = k.clone();
        let mut stored = k;
        if stored.hash_secret
            && let Some(secret) = &stored.client_secret
        {
            stored.client_secret =
                Some(hash_secret(secret).map_err(|e| {
                    AdminError::BadRequest(format!("could not hash the secret: {e}"))
                })?);
        }
        if !stored.hash_secret {
            shown = stored.clone();
        }
        let (consumers, mut credentials) = self.registry.snapshot()?;
        if credentials.iter().any(|o| o.client_id == stored.client_id) {
            return Err(AdminError::Unique("client_id", stored.client_id));
        }
        credentials.push(stored.clone());
        self.check(&consumers, &credentials)?;
        self.change(|| self.registry.create_credential(&stored))?;
        // The secret is shown once, as given (or generated); a hashed one
        // is never shown again.
        Ok((201, Some(to_value(&shown))))
    }

    /// Kong's upsert (what decK sends): `{k}` is the id (a UUID) or the
    /// client_id; the body replaces the whole credential, and a secret (or,
    /// by id, a client_id) it leaves out is generated anew.
    fn put_credential(&self, consumer: &str, key: &str, fields: &Fields) -> Answer {
        let c = self.registry.consumer(consumer)?;
        let mut f = entities::credential_fields(fields)?;
        if is_uuid(key) {
            f.id = Some(key.to_ascii_lowercase());
        } else {
            f.client_id = Some(key.to_string());
        }
        let existing = match self.registry.credential(key) {
            Ok(k) if k.consumer.id == c.id => Some(k),
            Ok(k) => return Err(AdminError::Unique("client_id", k.client_id)),
            Err(AdminError::NotFound) => None,
            Err(e) => return Err(e),
        };
        if let Some(old) = &existing {
            f.id = Some(old.id.clone());
        }
        let mut new = new_credential(f, &c, self.registry.now());
        entities::check_credential(&new)?;
        let shown = new.clone();
        if new.hash_secret
            && let Some(secret) = &new.client_secret
        {
            new.client_secret = Some(hash_secret(secret).map_err(hash_failed)?);
        }
        let (consumers, mut credentials) = self.registry.snapshot()?;
        if credentials
            .iter()
            .any(|o| o.client_id == new.client_id && o.id != new.id)
        {
            return Err(AdminError::Unique("client_id", new.client_id));
        }
        credentials.retain(|o| o.id != new.id);
        credentials.push(new.clone());
        self.check(&consumers, &credentials)?;
        match &existing {
            Some(old) => self.change(|| self.registry.update_credential(old, &new))?,
            None => self.change(|| self.registry.create_credential(&new))?,
        }
        Ok((
            200,
            Some(to_value(if new.hash_secret { &shown } else { &new })),
        ))
    }

    fn patch_credential(&self, consumer: &str, key: &str, fields: &Fields) -> Answer {
        let old = self.credential_of(consumer, key)?;
        let f = entities::credential_fields(fields)?;
        // Kong's transformation needs both or neither.
        if f.hash_secret.is_some() != f.client_secret.is_some() {
            return Err(AdminError::Schema(vec![(
                "@entity".into(),
                json!(["all or none of these fields must be set: 'hash_secret', 'client_secret'"]),
            )]));
        }
        if f.id.as_deref().is_some_and(|id| id != old.id) {
            return Err(AdminError::Schema(vec![(
                "id".into(),
                "cannot be changed".into(),
            )]));
        }
        let mut new = old.clone();
        if let Some(v) = f.name {
            new.name = v;
        }
        if let Some(v) = f.client_id {
            new.client_id = v;
        }
        if let Some(v) = f.redirect_uris {
            new.redirect_uris = Some(v);
        }
        if let Some(v) = f.tags {
            new.tags = Some(v);
        }
        if let Some(v) = f.client_type {
            new.client_type = v;
        }
        if let Some(v) = f.hash_secret {
            new.hash_secret = v;
        }
        if let Some(secret) = f.client_secret {
            new.client_secret = Some(if new.hash_secret {
                hash_secret(&secret).map_err(|e| {
                    AdminError::BadRequest(format!("could not hash the secret: {e}"))
                })?
            } else {
                secret
            });
        }
        entities::check_credential(&new)?;
        let (consumers, mut credentials) = self.registry.snapshot()?;
        if credentials
            .iter()
            .any(|o| o.client_id == new.client_id && o.id != new.id)
        {
            return Err(AdminError::Unique("client_id", new.client_id));
        }
        for o in credentials.iter_mut().filter(|o| o.id == new.id) {
            *o = new.clone();
        }
        self.check(&consumers, &credentials)?;
        self.change(|| self.registry.update_credential(&old, &new))?;
        Ok((200, Some(to_value(&new))))
    }
}

fn hash_failed(e: String) -> AdminError {
    AdminError::BadRequest(format!("could not hash the secret: {e}"))
}

/// argon2id (OWASP's parameters) with a fresh salt.
fn hash_secret(secret: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    super::fill(&mut salt);
    warden_engine::hash_argon2id(secret.as_bytes(), &salt)
}

/// A new credential from checked fields: Kong's defaults, a generated
/// client_id and (for a confidential client) client_secret when omitted.
fn new_credential(f: CredentialFields, c: &Consumer, now: u64) -> Credential {
    let client_type = f.client_type.unwrap_or_else(|| "confidential".into());
    let client_secret = match (f.client_secret, client_type.as_str()) {
        (Some(s), _) => Some(s),
        (None, "public") => None,
        (None, _) => Some(random_secret()),
    };
    Credential {
        id: f.id.map_or_else(random_id, |i| i.to_ascii_lowercase()),
        created_at: now,
        consumer: ForeignKey { id: c.id.clone() },
        name: f.name.unwrap_or_default(),
        client_id: f.client_id.unwrap_or_else(random_secret),
        client_secret,
        redirect_uris: f.redirect_uris,
        tags: f.tags,
        client_type,
        hash_secret: f.hash_secret.unwrap_or(false),
    }
}

/// Kong's `oauth2_tokens` entity for a token's record: the token itself is
/// never kept, so `access_token`/`refresh_token` are null.
fn token_view(t: &IssuedToken, credentials: &[Credential], now: u64) -> Value {
    let credential = credentials
        .iter()
        .find(|k| k.client_id == t.client_id)
        .map(|k| json!({"id": k.id}));
    json!({
        "id": t.id,
        "created_at": t.issued_at,
        "credential": credential,
        "client_id": t.client_id,
        "service": if t.aud == "default" { Value::Null } else { json!({"name": t.aud}) },
        "token_type": "bearer",
        "expires_in": t.expires_at.saturating_sub(t.issued_at),
        "access_token": null,
        "refresh_token": null,
        "authenticated_userid": t.authenticated_userid,
        "scope": t.scope,
        "ttl": t.expires_at.saturating_sub(now),
    })
}

/// The compiler's refusal of a change, as Kong would word a duplicate.
fn rejected(diagnostics: &str) -> AdminError {
    for field in ["client_id", "username", "custom_id", "id"] {
        let marker = format!("duplicate {field} `");
        if let Some(rest) = diagnostics.split_once(&marker).map(|(_, r)| r)
            && let Some((value, _)) = rest.split_once('`')
        {
            return AdminError::Unique(field, value.to_string());
        }
    }
    AdminError::BadRequest(format!(
        "the policy does not compile with this change: {}",
        diagnostics.trim()
    ))
}

fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(|| s.to_string(), |(_, v)| v.into_owned())
}
