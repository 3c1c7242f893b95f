//! Where the Admin API's consumers and credentials live: in the store,
//! beside the codes and refresh tokens, so that with Redis every node sees
//! the same ones and they survive a restart.
//!
//! Keys (under the store's own prefix):
//! - `admin:consumer:{id}`, `admin:oauth2:{id}`: the entities, JSON;
//! - `admin:username:{u}`, `admin:custom_id:{c}`, `admin:client_id:{c}`:
//!   unique indexes, taken with a set-if-absent before the entity is
//!   written, so two nodes cannot both create one client_id.
//!
//! Calls block on the store (a Redis round trip each): callers run them on
//! the blocking pool.

use warden_engine::IssuedToken;

use super::entities::{AdminError, Consumer, Credential};
use crate::bindings::warden::policy::store::StoreError;
use crate::services::{Clock, StateStore};

const CONSUMER: &str = "admin:consumer:";
const CREDENTIAL: &str = "admin:oauth2:";

fn unavailable(e: StoreError) -> AdminError {
    let StoreError::Unavailable(why) = e;
    AdminError::Unavailable(format!("the store is unavailable: {why}"))
}

fn index(field: &str, value: &str) -> String {
    format!("admin:{field}:{value}")
}

/// The Admin API's view of the store.
#[derive(Clone, Debug)]
pub struct Registry {
    store: StateStore,
    clock: Clock,
}

impl Registry {
    pub fn new(store: StateStore, clock: Clock) -> Self {
        Registry { store, clock }
    }

    pub(super) fn now(&self) -> u64 {
        self.clock.now()
    }

    fn all<T: for<'de> serde::Deserialize<'de>>(&self, prefix: &str) -> Result<Vec<T>, AdminError> {
        let found = self.store.scan(prefix, self.now()).map_err(unavailable)?;
        Ok(found
            .iter()
            .filter_map(|(_, v)| serde_json::from_slice(v).ok())
            .collect())
    }

    /// Every consumer and credential, oldest first.
    pub fn snapshot(&self) -> Result<(Vec<Consumer>, Vec<Credential>), AdminError> {
        let mut consumers: Vec<Consumer> = self.all(CONSUMER)?;
        let mut credentials: Vec<Credential> = self.all(CREDENTIAL)?;
        consumers.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        credentials.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        // A credential whose consumer is gone (a delete cut short) is dropped.
        credentials.retain(|k| consumers.iter().any(|c| c.id == k.consumer.id));
        Ok((consumers, credentials))
    }

    fn get<T: for<'de> serde::Deserialize<'de>>(&self, key: &str) -> Result<Option<T>, AdminError> {
        let v = self.store.get(key, self.now()).map_err(unavailable)?;
        Ok(v.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    fn index_target(&self, field: &str, value: &str) -> Result<Option<String>, AdminError> {
        let v = self
            .store
            .get(&index(field, value), self.now())
            .map_err(unavailable)?;
        Ok(v.and_then(|v| String::from_utf8(v).ok()))
    }

    /// `/consumers/{username or id}`.
    pub fn consumer(&self, key: &str) -> Result<Consumer, AdminError> {
        let by_id = self.get::<Consumer>(&format!("{CONSUMER}{}", key.to_ascii_lowercase()))?;
        if let Some(c) = by_id {
            return Ok(c);
        }
        match self.index_target("username", key)? {
            Some(id) => self
                .get(&format!("{CONSUMER}{id}"))?
                .ok_or(AdminError::NotFound),
            None => Err(AdminError::NotFound),
        }
    }

    pub fn consumers(&self) -> Result<Vec<Consumer>, AdminError> {
        Ok(self.snapshot()?.0)
    }

    /// Take the unique indexes of `pairs` for `owner`, all or none.
    fn claim(&self, owner: &str, pairs: &[(&'static str, &str)]) -> Result<(), AdminError> {
        let now = self.now();
        let mut taken: Vec<String> = Vec::new();
        for (field, value) in pairs {
            let key = index(field, value);
            match self.store.put_new(&key, owner.as_bytes(), now) {
                Ok(true) => taken.push(key),
                Ok(false) => {
                    self.release(&taken);
                    return Err(AdminError::Unique(field, value.to_string()));
                }
                Err(e) => {
                    self.release(&taken);
                    return Err(unavailable(e));
                }
            }
        }
        Ok(())
    }

    fn release(&self, keys: &[String]) {
        for k in keys {
            let _ = self.store.delete(k);
        }
    }

    fn write<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), AdminError> {
        let bytes = serde_json::to_vec(value).map_err(|e| AdminError::BadRequest(e.to_string()))?;
        self.store
            .put(key, &bytes, 0, self.now())
            .map_err(unavailable)
    }

    pub fn create_consumer(&self, c: &Consumer) -> Result<(), AdminError> {
        if self
            .get::<Consumer>(&format!("{CONSUMER}{}", c.id))?
            .is_some()
        {
            return Err(AdminError::Unique("id", c.id.clone()));
        }
        let mut pairs = Vec::new();
        if let Some(u) = &c.username {
            pairs.push(("username", u.as_str()));
        }
        if let Some(u) = &c.custom_id {
            pairs.push(("custom_id", u.as_str()));
        }
        self.claim(&c.id, &pairs)?;
        self.write(&format!("{CONSUMER}{}", c.id), c)
    }

    /// Replace `old` with `new` (same id): the username and custom_id
    /// indexes move along.
    pub fn update_consumer(&self, old: &Consumer, new: &Consumer) -> Result<(), AdminError> {
        let mut claim = Vec::new();
        let mut free = Vec::new();
        for (field, was, now) in [
            ("username", &old.username, &new.username),
            ("custom_id", &old.custom_id, &new.custom_id),
        ] {
            if was != now {
                if let Some(v) = now {
                    claim.push((field, v.as_str()));
                }
                if let Some(v) = was {
                    free.push(index(field, v));
                }
            }
        }
        self.claim(&new.id, &claim)?;
        self.release(&free);
        self.write(&format!("{CONSUMER}{}", new.id), new)
    }

    /// Delete a consumer, its credentials (and their tokens).
    pub fn delete_consumer(&self, c: &Consumer) -> Result<(), AdminError> {
        for k in self.credentials_of(&c.id)? {
            self.delete_credential(&k)?;
        }
        self.store
            .delete(&format!("{CONSUMER}{}", c.id))
            .map_err(unavailable)?;
        let mut keys = Vec::new();
        if let Some(u) = &c.username {
            keys.push(index("username", u));
        }
        if let Some(u) = &c.custom_id {
            keys.push(index("custom_id", u));
        }
        self.release(&keys);
        Ok(())
    }

    pub fn credentials_of(&self, consumer_id: &str) -> Result<Vec<Credential>, AdminError> {
        let (_, all) = self.snapshot()?;
        Ok(all
            .into_iter()
            .filter(|k| k.consumer.id == consumer_id)
            .collect())
    }

    pub fn credentials(&self) -> Result<Vec<Credential>, AdminError> {
        Ok(self.snapshot()?.1)
    }

    /// A credential by id or client_id.
    pub fn credential(&self, key: &str) -> Result<Credential, AdminError> {
        if let Some(k) =
            self.get::<Credential>(&format!("{CREDENTIAL}{}", key.to_ascii_lowercase()))?
        {
            return Ok(k);
        }
        match self.index_target("client_id", key)? {
            Some(id) => self
                .get(&format!("{CREDENTIAL}{id}"))?
                .ok_or(AdminError::NotFound),
            None => Err(AdminError::NotFound),
        }
    }

    pub fn create_credential(&self, k: &Credential) -> Result<(), AdminError> {
        if self
            .get::<Credential>(&format!("{CREDENTIAL}{}", k.id))?
            .is_some()
        {
            return Err(AdminError::Unique("id", k.id.clone()));
        }
        self.claim(&k.id, &[("client_id", k.client_id.as_str())])?;
        self.write(&format!("{CREDENTIAL}{}", k.id), k)
    }

    /// Replace `old` with `new` (same id): the client_id index moves along.
    pub fn update_credential(&self, old: &Credential, new: &Credential) -> Result<(), AdminError> {
        if old.client_id != new.client_id {
            self.claim(&new.id, &[("client_id", new.client_id.as_str())])?;
            self.release(&[index("client_id", &old.client_id)]);
            self.revoke_tokens_of(&old.client_id)?;
        }
        self.write(&format!("{CREDENTIAL}{}", new.id), new)
    }

    /// Delete a credential and revoke every access token issued to it (its
    /// codes and refresh tokens die with the client: nothing redeems them).
    pub fn delete_credential(&self, k: &Credential) -> Result<(), AdminError> {
        self.store
            .delete(&format!("{CREDENTIAL}{}", k.id))
            .map_err(unavailable)?;
        self.release(&[index("client_id", &k.client_id)]);
        self.revoke_tokens_of(&k.client_id)
    }

    fn revoke_tokens_of(&self, client_id: &str) -> Result<(), AdminError> {
        for t in self
            .tokens()?
            .into_iter()
            .filter(|t| t.client_id == client_id)
        {
            self.revoke_token(&t)?;
        }
        Ok(())
    }

    /// The live issued access tokens.
    pub fn tokens(&self) -> Result<Vec<IssuedToken>, AdminError> {
        let mut all: Vec<IssuedToken> = self.all(&format!("{}:", warden_engine::TOKEN_SPACE))?;
        all.sort_by(|a, b| (a.issued_at, &a.id).cmp(&(b.issued_at, &b.id)));
        Ok(all)
    }

    pub fn token(&self, id: &str) -> Result<IssuedToken, AdminError> {
        self.get(&IssuedToken::key(id))?.ok_or(AdminError::NotFound)
    }

    /// Revoke `t` on every node and forget its record.
    pub fn revoke_token(&self, t: &IssuedToken) -> Result<(), AdminError> {
        self.store
            .revoke(&t.id, t.expires_at, self.now())
            .map_err(unavailable)?;
        self.store
            .delete(&IssuedToken::key(&t.id))
            .map_err(unavailable)
    }

    /// Tell the other nodes.
    pub fn announce(&self) -> Result<(), AdminError> {
        self.store.announce().map_err(unavailable)
    }
}
