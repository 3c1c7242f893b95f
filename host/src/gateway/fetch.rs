//! The policy's outbound calls (`Decision::Fetch`: token introspection),
//! made while the request waits asynchronously — never on a worker
//! thread, so a slow authorization server slows only the requests that
//! need it — and shared: identical concurrent calls (one token, many
//! requests) make one.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::future::{BoxFuture, FutureExt, Shared};
use sha2::{Digest, Sha256};
use warden_engine::Outbound as Call;

use crate::request::FetchOutcome;
use crate::services::Outbound;

type InFlight = Shared<BoxFuture<'static, FetchOutcome>>;

/// Calls in flight, by a SHA-256 of the whole request (never the request
/// itself: it holds the token and the client secret).
#[derive(Default)]
pub(crate) struct Fetches {
    in_flight: Mutex<HashMap<[u8; 32], InFlight>>,
}

impl std::fmt::Debug for Fetches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.in_flight.lock().map_or(0, |m| m.len());
        f.debug_struct("Fetches").field("in_flight", &n).finish()
    }
}

fn digest(call: &Call) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [call.method.as_bytes(), call.url.as_bytes()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    for (k, v) in &call.headers {
        for part in [k.as_bytes(), v.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
    }
    if let Some(b) = &call.body {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    }
    h.finalize().into()
}

impl Fetches {
    /// Make `call` with `client`, or wait for the identical one in flight.
    pub(crate) async fn fetch(&self, client: &Outbound, call: Call) -> FetchOutcome {
        let key = digest(&call);
        let shared = {
            let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(&key) {
                Some(f) => f.clone(),
                None => {
                    let client = client.clone();
                    let f = async move {
                        match client
                            .send(&call.method, &call.url, &call.headers, call.body.as_deref())
                            .await
                        {
                            Ok(r) => FetchOutcome::Response {
                                status: r.status,
                                body: r.body,
                            },
                            Err(e) => FetchOutcome::Failed(e.to_string()),
                        }
                    }
                    .boxed()
                    .shared();
                    map.insert(key, f.clone());
                    f
                }
            }
        };
        let out = shared.clone().await;
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&key).is_some_and(|f| f.ptr_eq(&shared)) {
            map.remove(&key);
        }
        out
    }
}
