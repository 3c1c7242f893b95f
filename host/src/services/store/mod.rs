//! The WIT `store` import: where Kong-dialect authorization codes, refresh
//! tokens and revoked token ids live. [`StateStore`] is one of two backends,
//! shared by every guest instance of a process and kept across policy
//! reloads:
//! - in process (the default): the engine's [`MemoryStore`] read with the
//!   host's clock; one `warden serve` process is one node;
//! - Redis ([`redis`], `--store redis://…`): several nodes share one truth.
//!   Single use is `GETDEL` in Redis itself; revocations are mirrored into
//!   every node's memory (pub/sub, resynchronised on every reconnect), so
//!   `is-revoked`, on the request path, never leaves the process.
//!
//! Backend calls are host work the guest call is not charged for (like a
//! password hash): a Redis round trip waits on the network, not the CPU.

mod redis;

use std::sync::Arc;

use warden_engine::MemoryStore;

pub use self::redis::{RedisStore, StoreUrl};
use super::GuestState;
use crate::bindings::warden::policy::store::{self, StoreError};

/// The store every guest instance of a runtime (and of its reloads) uses.
#[derive(Clone)]
pub enum StateStore {
    /// This process only.
    Memory(Arc<MemoryStore>),
    /// A Redis server shared by several nodes.
    Redis(Arc<RedisStore>),
}

impl Default for StateStore {
    fn default() -> Self {
        StateStore::Memory(Arc::default())
    }
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateStore::Memory(_) => f.write_str("StateStore(in-process)"),
            // The address without its password.
            StateStore::Redis(r) => write!(f, "StateStore({})", r.url()),
        }
    }
}

impl std::fmt::Display for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateStore::Memory(_) => f.write_str("in-process"),
            StateStore::Redis(r) => r.url().fmt(f),
        }
    }
}

/// Keys and values stay bounded: the guest chooses them from hashes and
/// small records, so anything larger is a misbehaving guest.
const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 16 * 1024;

fn refused(what: &str) -> StoreError {
    StoreError::Unavailable(format!("refused: {what}"))
}

fn failed(op: &'static str, e: warden_engine::StoreError) -> StoreError {
    tracing::error!(op, error = %e.0, "store call failed: stateful grants answer 503 until it is back");
    StoreError::Unavailable(e.0)
}

impl StateStore {
    pub fn put(&self, key: &str, value: &[u8], ttl: u64, now: u64) -> Result<(), StoreError> {
        match self {
            StateStore::Memory(m) => m.put(key, value, ttl, now),
            StateStore::Redis(r) => r.put(key, value, ttl),
        }
        .map_err(|e| failed("put", e))
    }

    pub fn get(&self, key: &str, now: u64) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            StateStore::Memory(m) => Ok(m.get(key, now)),
            StateStore::Redis(r) => r.get(key).map_err(|e| failed("get", e)),
        }
    }

    pub fn take(&self, key: &str, now: u64) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            StateStore::Memory(m) => Ok(m.take(key, now)),
            StateStore::Redis(r) => r.take(key).map_err(|e| failed("take", e)),
        }
    }

    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            StateStore::Memory(m) => {
                m.delete(key);
                Ok(())
            }
            StateStore::Redis(r) => r.delete(key).map_err(|e| failed("delete", e)),
        }
    }

    pub fn revoke(&self, token_id: &str, until: u64, now: u64) -> Result<(), StoreError> {
        match self {
            StateStore::Memory(m) => m.revoke(token_id, until, now),
            StateStore::Redis(r) => r.revoke(token_id, until, now),
        }
        .map_err(|e| failed("revoke", e))
    }

    /// Store `value` under `key` (no expiry) unless it holds a value: whether
    /// it did. For the Admin API's unique indexes.
    pub fn put_new(&self, key: &str, value: &[u8], now: u64) -> Result<bool, StoreError> {
        match self {
            StateStore::Memory(m) => m.put_new(key, value, now),
            StateStore::Redis(r) => r.put_new(key, value),
        }
        .map_err(|e| failed("put_new", e))
    }

    /// Every live entry whose key starts with `prefix`, in key order.
    pub fn scan(&self, prefix: &str, now: u64) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        match self {
            StateStore::Memory(m) => Ok(m.scan(prefix, now)),
            StateStore::Redis(r) => r.scan(prefix).map_err(|e| failed("scan", e)),
        }
    }

    /// Tell the other nodes that the Admin API changed something (nothing
    /// to tell in process).
    pub fn announce(&self) -> Result<(), StoreError> {
        match self {
            StateStore::Memory(_) => Ok(()),
            StateStore::Redis(r) => r.announce().map_err(|e| failed("announce", e)),
        }
    }

    /// Bumped when another node's Admin API changed something (and when the
    /// shared store was reached again); `None` in process.
    pub fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        match self {
            StateStore::Memory(_) => None,
            StateStore::Redis(r) => Some(r.changes()),
        }
    }

    /// From memory in both backends.
    pub fn is_revoked(&self, token_id: &str, now: u64) -> bool {
        match self {
            StateStore::Memory(m) => m.is_revoked(token_id, now),
            StateStore::Redis(r) => r.is_revoked(token_id, now),
        }
    }
}

impl GuestState {
    /// Run a backend call off the guest call's budget (its wall-clock
    /// backstop moves by the time spent, up to the budget's limit).
    fn backend<T>(&mut self, call: impl FnOnce(&StateStore, u64) -> T) -> T {
        let now = self.clock.now();
        if matches!(self.store, StateStore::Memory(_)) {
            return call(&self.store, now);
        }
        let store = self.store.clone();
        self.native(|| call(&store, now))
    }
}

impl store::Host for GuestState {
    fn put(&mut self, key: String, value: Vec<u8>, ttl_seconds: u64) -> Result<(), StoreError> {
        if key.len() > MAX_KEY || value.len() > MAX_VALUE {
            return Err(refused("key or value too large"));
        }
        self.backend(|s, now| s.put(&key, &value, ttl_seconds, now))
    }

    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend(|s, now| s.get(&key, now))
    }

    fn take(&mut self, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend(|s, now| s.take(&key, now))
    }

    fn delete(&mut self, key: String) -> Result<(), StoreError> {
        self.backend(|s, _| s.delete(&key))
    }

    fn revoke(&mut self, token_id: String, until: u64) -> Result<(), StoreError> {
        if token_id.len() > MAX_KEY {
            return Err(refused("token id too long"));
        }
        self.backend(|s, now| s.revoke(&token_id, until, now))
    }

    fn is_revoked(&mut self, token_id: String) -> bool {
        self.store.is_revoked(&token_id, self.clock.now())
    }
}
