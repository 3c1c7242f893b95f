//! The engine's only window on the world: the [`Services`] its host supplies.
//!
//! Everything with a side effect — the clock, randomness, secrets kept outside
//! the policy text, the store of codes, refresh tokens and revocations —
//! comes through [`Services`]. The guest implements it over
//! the WIT `services` imports; native tests and benchmarks implement it
//! directly. That keeps the engine pure and deterministic given its host.

use crate::keys::{Alg, KeyRef, SigCheck};
use crate::store::{MemoryStore, StoreError};

/// Services the engine asks of whoever embeds it.
pub trait Services {
    /// Wall-clock time in whole seconds since the Unix epoch.
    fn now(&self) -> u64;
    /// Fill `buf` with cryptographically secure random bytes.
    fn random_bytes(&self, buf: &mut [u8]);
    /// Resolve a secret reference (`env:NAME`, `file:PATH`); `None` if the
    /// host cannot or will not supply it.
    fn secret(&self, reference: &str) -> Option<Vec<u8>>;
    /// Whether `presented` is the client secret (or the authorization page
    /// user's password) stored as the PHC hash `phc`
    /// (argon2 or PBKDF2, already checked by the compiler). Slow on purpose.
    /// By default the engine's own native check (fails closed without the
    /// `hash-verify` feature); the guest asks its host instead.
    fn verify_secret_hash(&self, phc: &str, presented: &[u8]) -> bool {
        crate::secret_hash::verify(phc, presented)
    }

    /// The `kid` of the host's key that signs with `alg` now; `None` when
    /// the host holds none (a scope's `signing_alg` then cannot issue).
    fn signing_key(&self, alg: Alg) -> Option<String> {
        let _ = alg;
        None
    }
    /// `message` (the JWS signing input) signed with the host's key `kid`:
    /// the signature, base64url. Private keys never leave the host.
    fn sign(&self, kid: &str, message: &str) -> Option<String> {
        let _ = (kid, message);
        None
    }
    /// Whether `signature` (base64url) over `message` verifies with `key`
    /// under `alg`; a key of another algorithm is [`SigCheck::UnknownKey`].
    fn verify_signature(
        &self,
        key: KeyRef<'_>,
        alg: Alg,
        message: &str,
        signature: &str,
    ) -> SigCheck {
        let _ = (key, alg, message, signature);
        SigCheck::UnknownKey
    }
    /// The host's public keys as a JWK Set (RFC 7517), for
    /// `/.well-known/jwks.json`.
    fn public_keys(&self) -> String {
        r#"{"keys":[]}"#.to_string()
    }

    /// Store `value` under `key` for `ttl` seconds (0: no expiry).
    fn store_put(&self, key: &str, value: &[u8], ttl: u64) -> Result<(), StoreError>;
    /// The value under `key`, if any and not expired.
    fn store_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Remove and return the value under `key`, atomically (one caller wins).
    fn store_take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Remove `key`.
    fn store_delete(&self, key: &str) -> Result<(), StoreError>;
    /// Revoke the access token `token_id` (its `jti`) until `until`.
    fn revoke(&self, token_id: &str, until: u64) -> Result<(), StoreError>;
    /// Whether `token_id` is revoked: answered from memory, never blocking
    /// (it is asked on the request path).
    fn is_revoked(&self, token_id: &str) -> bool;
}

/// A deterministic host for tests, benchmarks and tools: a fixed clock,
/// a counter for randomness, a fixed table of secrets, an in-process
/// store and (natively) a key ring.
#[derive(Debug, Default)]
pub struct FixedServices {
    pub now: u64,
    pub secrets: Vec<(String, Vec<u8>)>,
    counter: std::sync::atomic::AtomicU64,
    pub store: MemoryStore,
    #[cfg(feature = "rust-crypto")]
    pub keys: crate::keys::KeyRing,
}

impl FixedServices {
    /// A host whose clock reads `now`.
    pub fn at(now: u64) -> Self {
        FixedServices {
            now,
            ..Default::default()
        }
    }
}

impl Services for FixedServices {
    fn now(&self) -> u64 {
        self.now
    }

    fn random_bytes(&self, buf: &mut [u8]) {
        use std::sync::atomic::Ordering;
        for chunk in buf.chunks_mut(8) {
            let n = self.counter.fetch_add(1, Ordering::Relaxed).to_le_bytes();
            chunk.copy_from_slice(&n[..chunk.len()]);
        }
    }

    fn secret(&self, reference: &str) -> Option<Vec<u8>> {
        self.secrets
            .iter()
            .find(|(r, _)| r == reference)
            .map(|(_, v)| v.clone())
    }

    #[cfg(feature = "rust-crypto")]
    fn signing_key(&self, alg: Alg) -> Option<String> {
        self.keys.signing_key(alg).map(str::to_string)
    }

    #[cfg(feature = "rust-crypto")]
    fn sign(&self, kid: &str, message: &str) -> Option<String> {
        self.keys.sign(kid, message.as_bytes())
    }

    #[cfg(feature = "rust-crypto")]
    fn verify_signature(
        &self,
        key: KeyRef<'_>,
        alg: Alg,
        message: &str,
        signature: &str,
    ) -> SigCheck {
        match key {
            KeyRef::Own(kid) => self.keys.verify(kid, alg, message.as_bytes(), signature),
            KeyRef::Jwk(jwk) => crate::keys::verify_jwk(jwk, alg, message.as_bytes(), signature),
            KeyRef::Remote { .. } => SigCheck::UnknownKey,
        }
    }

    #[cfg(feature = "rust-crypto")]
    fn public_keys(&self) -> String {
        self.keys.public_jwks()
    }

    fn store_put(&self, key: &str, value: &[u8], ttl: u64) -> Result<(), StoreError> {
        self.store.put(key, value, ttl, self.now)
    }

    fn store_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.store.get(key, self.now))
    }

    fn store_take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.store.take(key, self.now))
    }

    fn store_delete(&self, key: &str) -> Result<(), StoreError> {
        self.store.delete(key);
        Ok(())
    }

    fn revoke(&self, token_id: &str, until: u64) -> Result<(), StoreError> {
        self.store.revoke(token_id, until, self.now)
    }

    fn is_revoked(&self, token_id: &str) -> bool {
        self.store.is_revoked(token_id, self.now)
    }
}
