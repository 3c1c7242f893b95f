//! The store: state that outlives one decision — Kong's authorization codes,
//! refresh tokens and revoked access-token ids.
//!
//! The engine reaches it only through [`Services`](crate::Services) (the WIT
//! `store` interface in the guest), so that a host chooses where the state
//! lives: in process ([`MemoryStore`], what `warden serve` uses by default),
//! or in a backend shared by several gateway nodes. Keys are chosen by the
//! engine and never hold a code or token itself, only a hash of it
//! ([`key`]): a dump of the store cannot be replayed.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// The store cannot answer now; the decision answers 503.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct StoreError(pub String);

/// Where each issued access token's record lives: `token:{jti}`, until the
/// token expires. What Kong's `oauth2_tokens` table lists (the Admin API's
/// `/oauth2_tokens`), without the token itself: a record cannot be replayed.
pub const TOKEN_SPACE: &str = "token";

/// An issued access token, as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IssuedToken {
    /// The token's `jti` (a UUID): Kong's token `id`.
    pub id: String,
    pub client_id: String,
    /// The consumer's name in the policy.
    pub consumer: String,
    pub authenticated_userid: Option<String>,
    pub scope: Option<String>,
    /// `default` (a global token), or the service it is bound to.
    pub aud: String,
    /// Unix seconds.
    pub issued_at: u64,
    pub expires_at: u64,
    /// Issued with a refresh token.
    pub refreshable: bool,
}

impl IssuedToken {
    /// The record's key.
    pub fn key(id: &str) -> String {
        format!("{TOKEN_SPACE}:{id}")
    }
}

/// `space:` followed by the SHA-256 of `secret` in hex: where a code or a
/// refresh token is kept.
pub(crate) fn key(space: &str, secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    format!("{space}:{}", hex::encode(digest))
}

/// Entries a [`MemoryStore`] holds at most (expired ones are purged first
/// when it is full; then a put fails, closed).
pub const MEMORY_STORE_CAPACITY: usize = 1 << 20;

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    /// Unix seconds; `None`: never.
    expires: Option<u64>,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.expires.is_none_or(|e| now < e)
    }
}

/// An in-process store: a map under a mutex, entries with an expiry. The
/// caller passes the clock's reading to every call (the engine's hosts own
/// the clock). Bounded: see [`MEMORY_STORE_CAPACITY`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, Entry>>,
    revoked: Mutex<HashMap<String, u64>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave a map half-updated
        // (every operation is one insert or remove): keep using it.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn revoked(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.revoked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Store `value` under `key` for `ttl` seconds (0: no expiry).
    pub fn put(&self, key: &str, value: &[u8], ttl: u64, now: u64) -> Result<(), StoreError> {
        let mut map = self.entries();
        if map.len() >= MEMORY_STORE_CAPACITY && !map.contains_key(key) {
            map.retain(|_, e| e.live(now));
            if map.len() >= MEMORY_STORE_CAPACITY {
                return Err(StoreError(format!(
                    "the in-process store is full ({MEMORY_STORE_CAPACITY} entries)"
                )));
            }
        }
        let expires = (ttl > 0).then(|| now.saturating_add(ttl));
        map.insert(
            key.to_string(),
            Entry {
                value: value.to_vec(),
                expires,
            },
        );
        Ok(())
    }

    /// The live value under `key`.
    pub fn get(&self, key: &str, now: u64) -> Option<Vec<u8>> {
        let map = self.entries();
        map.get(key)
            .filter(|e| e.live(now))
            .map(|e| e.value.clone())
    }

    /// Remove and return the live value under `key` (one caller wins).
    pub fn take(&self, key: &str, now: u64) -> Option<Vec<u8>> {
        let mut map = self.entries();
        map.remove(key).filter(|e| e.live(now)).map(|e| e.value)
    }

    /// Store `value` under `key` unless a live value is there; whether it did.
    pub fn put_new(&self, key: &str, value: &[u8], now: u64) -> Result<bool, StoreError> {
        if self.get(key, now).is_some() {
            return Ok(false);
        }
        // (One writer per process reaches here for a key: the Admin API
        // serialises its writes.)
        self.put(key, value, 0, now).map(|()| true)
    }

    /// Every live entry whose key starts with `prefix`, in key order.
    pub fn scan(&self, prefix: &str, now: u64) -> Vec<(String, Vec<u8>)> {
        let map = self.entries();
        let mut found: Vec<_> = map
            .iter()
            .filter(|(k, e)| k.starts_with(prefix) && e.live(now))
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect();
        found.sort();
        found
    }

    /// Remove `key`.
    pub fn delete(&self, key: &str) {
        self.entries().remove(key);
    }

    /// Revoke `token_id` until `until`.
    pub fn revoke(&self, token_id: &str, until: u64, now: u64) -> Result<(), StoreError> {
        let mut map = self.revoked();
        if map.len() >= MEMORY_STORE_CAPACITY && !map.contains_key(token_id) {
            map.retain(|_, until| now <= *until);
            if map.len() >= MEMORY_STORE_CAPACITY {
                return Err(StoreError("the revocation list is full".into()));
            }
        }
        map.insert(token_id.to_string(), until);
        Ok(())
    }

    /// Whether `token_id` is revoked (and its revocation not yet past).
    pub fn is_revoked(&self, token_id: &str, now: u64) -> bool {
        self.revoked()
            .get(token_id)
            .is_some_and(|&until| now <= until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_take_is_single_use() {
        let s = MemoryStore::new();
        s.put("code:a", b"x", 300, 1000).unwrap();
        assert_eq!(s.get("code:a", 1299), Some(b"x".to_vec()));
        assert_eq!(s.get("code:a", 1300), None);
        s.put("code:b", b"y", 0, 1000).unwrap();
        assert_eq!(s.take("code:b", u64::MAX - 1), Some(b"y".to_vec()));
        assert_eq!(s.take("code:b", 1000), None);
        s.revoke("jti", 2000, 1000).unwrap();
        assert!(s.is_revoked("jti", 2000));
        assert!(!s.is_revoked("jti", 2001));
        assert!(!s.is_revoked("other", 1000));
        assert_ne!(key("code", "abc"), key("refresh", "abc"));
        assert!(!key("code", "secret-code").contains("secret"));
    }
}
