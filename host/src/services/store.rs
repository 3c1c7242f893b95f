//! The WIT `store` import: where Kong-dialect authorization codes, refresh
//! tokens and revoked token ids live. [`StateStore`] is the gateway's
//! in-process store (the engine's [`MemoryStore`] read with the host's
//! clock), shared by every guest instance and kept across policy reloads:
//! one `warden serve` process is one node. A Redis backend, for several
//! nodes, comes with the next issue behind the same interface.

use std::sync::Arc;

use warden_engine::MemoryStore;

use super::GuestState;
use crate::bindings::warden::policy::store::{self, StoreError};

/// The store every guest instance of a runtime (and of its reloads) uses.
#[derive(Clone, Default)]
pub struct StateStore(Arc<MemoryStore>);

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateStore(in-process)")
    }
}

/// Keys and values stay bounded: the guest chooses them from hashes and
/// small records, so anything larger is a misbehaving guest.
const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 16 * 1024;

fn refused(what: &str) -> StoreError {
    StoreError::Unavailable(format!("refused: {what}"))
}

impl store::Host for GuestState {
    fn put(&mut self, key: String, value: Vec<u8>, ttl_seconds: u64) -> Result<(), StoreError> {
        if key.len() > MAX_KEY || value.len() > MAX_VALUE {
            return Err(refused("key or value too large"));
        }
        let now = self.clock.now();
        self.store
            .0
            .put(&key, &value, ttl_seconds, now)
            .map_err(|e| {
                tracing::error!(error = %e, "store put failed");
                StoreError::Unavailable(e.0)
            })
    }

    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.store.0.get(&key, self.clock.now()))
    }

    fn take(&mut self, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.store.0.take(&key, self.clock.now()))
    }

    fn delete(&mut self, key: String) -> Result<(), StoreError> {
        self.store.0.delete(&key);
        Ok(())
    }

    fn revoke(&mut self, token_id: String, until: u64) -> Result<(), StoreError> {
        if token_id.len() > MAX_KEY {
            return Err(refused("token id too long"));
        }
        let now = self.clock.now();
        self.store.0.revoke(&token_id, until, now).map_err(|e| {
            tracing::error!(error = %e, "revocation failed");
            StoreError::Unavailable(e.0)
        })
    }

    fn is_revoked(&mut self, token_id: String) -> bool {
        self.store.0.is_revoked(&token_id, self.clock.now())
    }
}
