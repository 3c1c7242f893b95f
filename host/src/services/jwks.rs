//! External issuers' JWK Sets (`jwks_url`), fetched and kept by the host.
//!
//! The policy lists the URLs (`decisions.policy.jwks-urls`): the host
//! fetches those and no others. Each is fetched when first tracked and
//! then every refresh interval; a failed fetch keeps the keys it had
//! (stale-while-error) and says why in the log. A token naming a key the
//! copy lacks gets one more fetch (the `refresh-keys` decision), at most
//! once every [`MIN_REFETCH`] per URL however many tokens ask, concurrent
//! askers waiting for the same fetch; the request then waits on the fetch
//! asynchronously, never a worker thread. Verifying reads the copy under a
//! short lock and checks the signature natively.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use warden_engine::internal::model::{PublicJwk, parse_jwks};
use warden_engine::{Alg, SigCheck};

use super::outbound::Outbound;

/// The least time between two fetches of one URL asked for by tokens.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);

struct Entry {
    keys: Mutex<Arc<Vec<PublicJwk>>>,
    /// When a token last made the host fetch (periodic fetches aside).
    demanded: Mutex<Option<Instant>>,
    /// One fetch at a time; a waiter sees the fresh copy.
    fetching: tokio::sync::Mutex<()>,
}

/// The JWK Sets of every tracked URL.
#[derive(Default)]
pub struct JwksCache {
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    outbound: Outbound,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl JwksCache {
    pub fn new(outbound: Outbound) -> Self {
        JwksCache {
            entries: Mutex::default(),
            outbound,
        }
    }

    fn entry(&self, url: &str) -> Option<Arc<Entry>> {
        lock(&self.entries).get(url).cloned()
    }

    /// Whether the host keeps `url` (a policy listed it).
    pub fn is_tracked(&self, url: &str) -> bool {
        lock(&self.entries).contains_key(url)
    }

    /// Whether `signature` over `message` verifies under `alg` with the key
    /// of `url`'s set named `kid` (or the only one fitting).
    pub fn verify(
        &self,
        url: &str,
        kid: Option<&str>,
        alg: Alg,
        message: &[u8],
        signature: &str,
    ) -> SigCheck {
        let Some(entry) = self.entry(url) else {
            return SigCheck::UnknownKey;
        };
        let keys = Arc::clone(&lock(&entry.keys));
        match PublicJwk::select(&keys, kid, alg) {
            Some(jwk) => warden_engine::verify_jwk(&jwk.json, alg, message, signature),
            None => SigCheck::UnknownKey,
        }
    }

    /// Keep `urls` (URL, refresh seconds): each new one is fetched now, the
    /// first fetches awaited (bounded by the client's timeouts), then
    /// refreshed in the background for as long as the process runs.
    pub async fn track(self: &Arc<Self>, urls: &[(String, u32)]) {
        let mut first = Vec::new();
        for (url, refresh) in urls {
            let new = {
                let mut entries = lock(&self.entries);
                if entries.contains_key(url) {
                    false
                } else {
                    entries.insert(
                        url.clone(),
                        Arc::new(Entry {
                            keys: Mutex::new(Arc::new(Vec::new())),
                            demanded: Mutex::new(None),
                            fetching: tokio::sync::Mutex::new(()),
                        }),
                    );
                    true
                }
            };
            if !new {
                continue;
            }
            let (cache, url, every) = (
                Arc::clone(self),
                url.clone(),
                Duration::from_secs(u64::from((*refresh).max(10))),
            );
            first.push(url.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await; // the first fetch is `track`'s own
                loop {
                    tick.tick().await;
                    cache.fetch(&url, None).await;
                }
            });
        }
        for url in first {
            self.fetch(&url, None).await;
        }
    }

    /// Fetch `url` again for a token naming an unknown key: at most once
    /// every [`MIN_REFETCH`]. `false` for a URL no policy listed.
    pub async fn refetch(&self, url: &str) -> bool {
        if !self.is_tracked(url) {
            return false;
        }
        self.fetch(url, Some(MIN_REFETCH)).await;
        true
    }

    /// Fetch `url`; for a token (`demand`: the least time between two such
    /// fetches), unless one was made that recently — a request that waited
    /// for that fetch uses its keys.
    async fn fetch(&self, url: &str, demand: Option<Duration>) {
        let Some(entry) = self.entry(url) else { return };
        let _one = entry.fetching.lock().await;
        if let Some(min) = demand {
            let mut demanded = lock(&entry.demanded);
            if demanded.is_some_and(|t| t.elapsed() < min) {
                return;
            }
            *demanded = Some(Instant::now());
        }
        let result = match self.outbound.get(url).await {
            Ok(f) if f.status == 200 => std::str::from_utf8(&f.body)
                .map_err(|_| "the body is not UTF-8".to_string())
                .and_then(parse_jwks),
            Ok(f) => Err(format!("answered {}", f.status)),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(keys) => {
                let kids: Vec<&str> = keys
                    .iter()
                    .map(|k| k.kid.as_deref().unwrap_or("-"))
                    .collect();
                tracing::info!(%url, ?kids, "jwks fetched");
                *lock(&entry.keys) = Arc::new(keys);
            }
            Err(why) => {
                let kept = lock(&entry.keys).len();
                tracing::warn!(%url, error = %why, kept, "jwks fetch failed; keeping the keys fetched before");
            }
        }
    }
}
