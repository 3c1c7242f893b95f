//! The Redis backend of the store (`warden serve --store redis://…`): what
//! lets several gateway nodes share codes, refresh tokens and revocations.
//!
//! - Every key the engine chooses is kept under `warden:` with Redis's own
//!   expiry (`SET … EX`); `take` is `GETDEL`, so of concurrent redemptions of
//!   one code on any number of nodes exactly one gets it.
//! - A revocation is a member of the sorted set `warden:revoked` (score: the
//!   Unix second it lapses) and a message on the channel `warden:revoked:DB`
//!   (channels are server-wide; DB is the database's number).
//!   Each node follows the channel and keeps the set in memory: after every
//!   (re)subscription it reads the whole set again, so a message missed while
//!   disconnected is not lost. `is-revoked` reads memory only.
//! - The connection is a [`ConnectionManager`]: it reconnects by itself, with
//!   exponential backoff; every call is bounded by the store timeout, so with
//!   Redis down a stateful grant answers 503 within it and nothing waits
//!   longer.
//! - Calls come from guest calls on plain threads: they are run on a small
//!   runtime of the store's own and waited for with a timeout, so they work
//!   from any thread and never hold a gateway worker's scheduler.

use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, RedisResult};
use warden_engine::{MemoryStore, StoreError};

use crate::error::HostError;
use crate::services::Clock;

/// Where every key lives, and the revocation set (and, with the database's
/// number, the channel: channels are server-wide, databases are not).
const PREFIX: &str = "warden:";
const REVOKED: &str = "warden:revoked";
const ADMIN: &str = "warden:admin";

/// A `redis://` or `rediss://` URL, kept with its password but shown
/// without it: `Display` and `Debug` print `redis://user:***@host:port/db`.
#[derive(Clone)]
pub struct StoreUrl {
    url: String,
    shown: String,
}

impl StoreUrl {
    /// Check the scheme; the rest is the `redis` crate's to parse.
    pub fn parse(url: &str) -> Result<StoreUrl, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "expected redis://HOST:PORT[/DB] or rediss://…".to_string())?;
        if scheme != "redis" && scheme != "rediss" {
            return Err(format!(
                "unsupported store scheme `{scheme}`: expected redis:// or rediss://"
            ));
        }
        let shown = match rest.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or("", |(u, _)| u);
                format!("{scheme}://{user}:***@{host}")
            }
            None => url.to_string(),
        };
        Ok(StoreUrl {
            url: url.to_string(),
            shown,
        })
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreUrl({})", self.shown)
    }
}

/// One node's connection to a shared Redis, and its mirror of revocations.
pub struct RedisStore {
    url: StoreUrl,
    /// `warden:revoked:DB`.
    channel: String,
    /// `warden:admin:DB`: the Admin API's changes.
    admin_channel: String,
    /// Bumped on every Admin API change anywhere (and on every resync).
    changes: tokio::sync::watch::Receiver<u64>,
    conn: ConnectionManager,
    /// Only the revocation half is used: the memory `is-revoked` reads.
    mirror: Arc<MemoryStore>,
    timeout: Duration,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks; a store may be dropped on a gateway
        // worker, where that is not allowed.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn redis_error(e: &redis::RedisError) -> StoreError {
    StoreError(format!("redis: {e}"))
}

impl RedisStore {
    /// Connect (within `timeout`), load the revocations and start following
    /// them. Redis unreachable at startup is an error: a node that could not
    /// read the revocation set would accept revoked tokens.
    ///
    /// `ca`: the CA certificate (PEM) a `rediss://` server's must chain to,
    /// instead of the system's roots.
    pub fn connect(
        url: StoreUrl,
        ca: Option<Vec<u8>>,
        timeout: Duration,
        clock: Clock,
    ) -> Result<RedisStore, HostError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            HostError::Config(format!("store {url}: {what}: {e}"))
        };
        let client = match ca {
            None => Client::open(url.url.as_str()),
            Some(root) => Client::build_with_tls(
                url.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root),
                },
            ),
        }
        .map_err(|e| fail("invalid address", &e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("warden-store")
            .enable_all()
            .build()
            .map_err(|e| fail("could not start its runtime", &e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2))
            .set_number_of_retries(4);
        // One plain connection first, for the real reason when it fails (the
        // manager would retry it into a timeout).
        runtime
            .block_on(async {
                tokio::time::timeout(timeout, async {
                    let mut c = client.get_multiplexed_async_connection().await?;
                    redis::cmd("PING").query_async::<()>(&mut c).await
                })
                .await
            })
            .map_err(|_| fail("no answer", &format_args!("timed out after {timeout:?}")))?
            .map_err(|e| fail("could not connect", &e))?;
        let conn = runtime
            .block_on(async {
                tokio::time::timeout(
                    timeout,
                    ConnectionManager::new_with_config(client.clone(), config),
                )
                .await
            })
            .map_err(|_| fail("no answer", &format_args!("timed out after {timeout:?}")))?
            .map_err(|e| fail("could not connect", &e))?;
        let db = client.get_connection_info().redis_settings().db();
        let channel = format!("{REVOKED}:{db}");
        let admin_channel = format!("{ADMIN}:{db}");
        let (changed, changes) = tokio::sync::watch::channel(0u64);
        let mirror = Arc::new(MemoryStore::new());
        let now = clock.now();
        let loaded = runtime
            .block_on(async {
                tokio::time::timeout(timeout, load(conn.clone(), &mirror, now)).await
            })
            .map_err(|_| fail("no answer", &format_args!("timed out after {timeout:?}")))?
            .map_err(|e| fail("could not read the revocations", &e))?;
        tracing::info!(store = %url, revocations = loaded, "store connected");
        runtime.spawn(follow(
            client,
            conn.clone(),
            Arc::clone(&mirror),
            clock,
            Feed {
                url: url.clone(),
                revoked: channel.clone(),
                admin: admin_channel.clone(),
                changed,
            },
        ));
        Ok(RedisStore {
            url,
            channel,
            admin_channel,
            changes,
            conn,
            mirror,
            timeout,
            runtime: Some(runtime),
        })
    }

    /// The address, without its password.
    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// Run `op` on the store's runtime and wait at most the timeout for it.
    fn call<T, F>(&self, op: impl FnOnce(ConnectionManager) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = RedisResult<T>> + Send + 'static,
    {
        let Some(runtime) = &self.runtime else {
            return Err(StoreError("the store is shutting down".into()));
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = op(self.conn.clone());
        let timeout = self.timeout;
        runtime.spawn(async move {
            let _ = tx.send(tokio::time::timeout(timeout, fut).await);
        });
        // The runtime's own timeout answers first; this one is the backstop
        // should its thread be starved.
        match rx.recv_timeout(timeout + Duration::from_millis(250)) {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(redis_error(&e)),
            Ok(Err(_)) | Err(RecvTimeoutError::Timeout) => Err(StoreError(format!(
                "redis: no answer within {} ms",
                timeout.as_millis()
            ))),
            Err(RecvTimeoutError::Disconnected) => {
                Err(StoreError("redis: the call was dropped".into()))
            }
        }
    }

    pub(super) fn put(&self, key: &str, value: &[u8], ttl: u64) -> Result<(), StoreError> {
        let key = format!("{PREFIX}{key}");
        let value = value.to_vec();
        self.call(move |mut c| async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key).arg(&value);
            if ttl > 0 {
                cmd.arg("EX").arg(ttl);
            }
            cmd.query_async::<()>(&mut c).await
        })
    }

    pub(super) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = format!("{PREFIX}{key}");
        self.call(move |mut c| async move { c.get::<_, Option<Vec<u8>>>(&key).await })
    }

    pub(super) fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = format!("{PREFIX}{key}");
        self.call(move |mut c| async move {
            redis::cmd("GETDEL")
                .arg(&key)
                .query_async::<Option<Vec<u8>>>(&mut c)
                .await
        })
    }

    pub(super) fn delete(&self, key: &str) -> Result<(), StoreError> {
        let key = format!("{PREFIX}{key}");
        self.call(move |mut c| async move { c.del::<_, ()>(&key).await })
    }

    /// Into Redis (the set and the channel, in one transaction, pruning
    /// lapsed members), then into this node's mirror at once.
    pub(super) fn revoke(&self, token_id: &str, until: u64, now: u64) -> Result<(), StoreError> {
        let id = token_id.to_string();
        let message = format!("{until} {token_id}");
        let channel = self.channel.clone();
        self.call(move |mut c| async move {
            redis::pipe()
                .atomic()
                .cmd("ZADD")
                .arg(REVOKED)
                .arg(until)
                .arg(&id)
                .ignore()
                .cmd("ZREMRANGEBYSCORE")
                .arg(REVOKED)
                .arg("-inf")
                .arg(format!("({now}"))
                .ignore()
                .cmd("PUBLISH")
                .arg(&channel)
                .arg(&message)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })?;
        self.mirror.revoke(token_id, until, now)
    }

    pub(super) fn is_revoked(&self, token_id: &str, now: u64) -> bool {
        self.mirror.is_revoked(token_id, now)
    }

    /// `SET key value NX`: whether it was set.
    pub(super) fn put_new(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        let key = format!("{PREFIX}{key}");
        let value = value.to_vec();
        self.call(move |mut c| async move {
            redis::cmd("SET")
                .arg(&key)
                .arg(&value)
                .arg("NX")
                .query_async::<Option<String>>(&mut c)
                .await
                .map(|ok| ok.is_some())
        })
    }

    /// Every entry under `prefix` (no glob characters in it), by `SCAN`.
    pub(super) fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let pattern = format!("{PREFIX}{prefix}*");
        let mut found = self.call(move |mut c| async move {
            let mut keys: Vec<String> = Vec::new();
            let mut cursor = 0u64;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut c)
                    .await?;
                keys.extend(batch);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            keys.sort();
            keys.dedup();
            let mut out = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(500) {
                let values: Vec<Option<Vec<u8>>> =
                    redis::cmd("MGET").arg(chunk).query_async(&mut c).await?;
                for (k, v) in chunk.iter().zip(values) {
                    if let Some(v) = v {
                        out.push((k[PREFIX.len()..].to_string(), v));
                    }
                }
            }
            Ok(out)
        })?;
        found.sort();
        Ok(found)
    }

    /// Tell every node that the Admin API changed something.
    pub(super) fn announce(&self) -> Result<(), StoreError> {
        let channel = self.admin_channel.clone();
        self.call(move |mut c| async move {
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg("changed")
                .query_async::<()>(&mut c)
                .await
        })
    }

    /// Changes announced anywhere (see [`Self::announce`]), and resyncs.
    pub(super) fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.clone()
    }
}

/// Read the live revocations into `mirror`; how many there were.
async fn load(mut conn: ConnectionManager, mirror: &MemoryStore, now: u64) -> RedisResult<usize> {
    let all: Vec<(String, u64)> = redis::cmd("ZRANGEBYSCORE")
        .arg(REVOKED)
        .arg(now)
        .arg("+inf")
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await?;
    let n = all.len();
    for (id, until) in all {
        if let Err(e) = mirror.revoke(&id, until, now) {
            tracing::error!(error = %e, "the revocation mirror is full");
            break;
        }
    }
    Ok(n)
}

/// Follow the revocation channel for as long as the process runs:
/// subscribe, then reload the set (so nothing published before the
/// subscription took effect is missed), then apply each message; on any
/// failure, wait (100 ms doubling to 1 s) and start over.
/// What [`follow`] listens to and tells.
struct Feed {
    url: StoreUrl,
    revoked: String,
    admin: String,
    changed: tokio::sync::watch::Sender<u64>,
}

async fn follow(
    client: Client,
    conn: ConnectionManager,
    mirror: Arc<MemoryStore>,
    clock: Clock,
    feed: Feed,
) {
    let Feed {
        url,
        revoked: channel,
        admin,
        changed,
    } = feed;
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            pubsub.subscribe(&admin).await?;
            let loaded = load(conn.clone(), &mirror, clock.now()).await?;
            // Whatever the Admin API changed meanwhile is read again.
            changed.send_modify(|n| *n += 1);
            if !first {
                tracing::info!(store = %url, revocations = loaded, "store reconnected: revocations reloaded");
            }
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(Duration::from_secs(5), session).await {
            Ok(Ok(mut pubsub)) => {
                first = false;
                backoff = Duration::from_millis(100);
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    if msg.get_channel_name() == admin {
                        changed.send_modify(|n| *n += 1);
                        continue;
                    }
                    let Ok(text) = msg.get_payload::<String>() else {
                        continue;
                    };
                    if let Some((until, id)) = text.split_once(' ')
                        && let Ok(until) = until.parse::<u64>()
                        && let Err(e) = mirror.revoke(id, until, clock.now())
                    {
                        tracing::error!(error = %e, "the revocation mirror is full");
                    }
                }
                tracing::warn!(store = %url, "lost the store's revocation feed; reconnecting");
            }
            Ok(Err(e)) => {
                tracing::warn!(store = %url, error = %e, retry_ms = backoff.as_millis() as u64, "store unreachable; retrying");
            }
            Err(_) => {
                tracing::warn!(store = %url, retry_ms = backoff.as_millis() as u64, "store did not answer; retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}
