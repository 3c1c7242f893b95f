//! The Admin API (`warden serve --admin ADDR`): Kong's Admin API paths and
//! JSON for consumers, their oauth2 credentials and the issued tokens, on
//! a listener of its own, off by default.
//!
//! - [`entities`]: the entities, Kong's schema errors, and the policy text
//!   they compile into;
//! - [`registry`]: where they live (the store: in process, or Redis for
//!   every node);
//! - [`api`]: the endpoints;
//! - this module: the listener, the bearer token every call needs, request
//!   bodies as Kong reads them (JSON, form), and [`Composer`] — how a
//!   change reaches the policy being served. [`follow`] applies the
//!   changes other nodes announce.
//!
//! Consumers made here are compiled into the served policy (after the
//! file's text), so they are exactly as fast and as checked as the
//! policy's own; each change recompiles it (the request path never reads
//! the store for them).

mod api;
pub mod entities;
pub mod registry;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

pub use registry::Registry;

/// The largest request body the Admin API reads.
const MAX_BODY: usize = 1 << 20;

/// A request to the task that owns the served policy: compile the file's
/// text followed by `suffix`; with `keep`, serve it.
pub struct Compose {
    pub suffix: String,
    pub keep: bool,
    /// `Err`: the rendered diagnostics.
    pub reply: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Where changes to the Admin API's consumers are sent to be compiled.
#[derive(Clone, Debug)]
pub struct Composer(pub tokio::sync::mpsc::Sender<Compose>);

impl Composer {
    /// Compile (and with `keep`, serve) the policy with `suffix`; blocks:
    /// call it from the blocking pool.
    pub fn compose(&self, suffix: String, keep: bool) -> Result<(), String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.0
            .blocking_send(Compose {
                suffix,
                keep,
                reply,
            })
            .map_err(|_| "the policy is no longer being served".to_string())?;
        answer
            .blocking_recv()
            .map_err(|_| "the policy is no longer being served".to_string())?
    }
}

/// Recompile the served policy with the consumers the store holds now.
/// Blocking.
pub fn refresh(registry: &Registry, composer: &Composer) -> Result<(), String> {
    let (consumers, credentials) = registry.snapshot().map_err(|e| format!("{e:?}"))?;
    composer.compose(entities::policy_text(&consumers, &credentials), true)
}

/// Apply what other nodes change, for as long as the process runs: on each
/// announcement (and each reconnection to the store) read the consumers
/// again and recompile. Announcements that arrive while compiling are
/// coalesced into one more round.
pub async fn follow(
    registry: Registry,
    composer: Composer,
    mut changes: tokio::sync::watch::Receiver<u64>,
) {
    while changes.changed().await.is_ok() {
        changes.mark_unchanged();
        let (r, c) = (registry.clone(), composer.clone());
        match tokio::task::spawn_blocking(move || refresh(&r, &c)).await {
            Ok(Ok(())) => tracing::debug!("consumers from the Admin API read again"),
            Ok(Err(e)) => tracing::error!(error = %e, "could not apply the Admin API's consumers"),
            Err(_) => tracing::error!("applying the Admin API's consumers panicked"),
        }
    }
}

/// A 36-character UUID v4.
pub(crate) fn random_id() -> String {
    let mut b = [0u8; 16];
    fill(&mut b);
    warden_engine::internal::token::uuid_v4(b)
}

/// 32 characters of `[A-Za-z0-9]`, as Kong's `random_string` makes them.
pub(crate) fn random_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(32);
    while out.len() < 32 {
        let mut b = [0u8; 64];
        fill(&mut b);
        // 62 × 4 = 248: bytes below it map without bias.
        for x in b {
            if x < 248 && out.len() < 32 {
                out.push(char::from(ALPHABET[usize::from(x % 62)]));
            }
        }
    }
    out
}

fn fill(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // No randomness: nothing generated may be guessable.
        std::process::abort();
    }
}

/// The Admin API of one node.
pub struct AdminApi {
    registry: Registry,
    composer: Composer,
    /// The bearer token every call needs (`None`: loopback only, no token).
    token: Option<Vec<u8>>,
}

impl AdminApi {
    pub fn new(registry: Registry, composer: Composer, token: Option<Vec<u8>>) -> Self {
        AdminApi {
            registry,
            composer,
            token,
        }
    }

    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let presented = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .unwrap_or("");
        presented.as_bytes().ct_eq(expected).into()
    }

    /// Serve `listener` until `stop` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut stop => return,
            };
            let api = Arc::clone(&self);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let api = Arc::clone(&api);
                    async move { Ok::<_, std::convert::Infallible>(api.handle(req, peer).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "admin connection ended");
                }
            });
        }
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let method = req.method().as_str().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let answer = if !self.authorized(&req) {
            Err(entities::AdminError::Unauthorized)
        } else {
            match read_fields(req).await {
                Err(e) => Err(e),
                Ok(fields) => {
                    let api = Arc::clone(&self);
                    let (m, p, q) = (method.clone(), path.clone(), query.clone());
                    tokio::task::spawn_blocking(move || {
                        api::Admin {
                            registry: &api.registry,
                            composer: &api.composer,
                        }
                        .call(&m, &p, &q, &fields)
                    })
                    .await
                    .unwrap_or_else(|_| {
                        Err(entities::AdminError::Unavailable(
                            "An unexpected error occurred".into(),
                        ))
                    })
                }
            }
        };
        let (status, body) = match answer {
            Ok((status, body)) => (status, body),
            Err(e) => {
                let (status, body) = e.answer();
                (status, Some(body))
            }
        };
        tracing::info!(%peer, %method, %path, status, "admin call");
        let mut resp = Response::new(Full::new(match &body {
            Some(b) => Bytes::from(serde_json::to_vec(b).unwrap_or_default()),
            None => Bytes::new(),
        }));
        *resp.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if body.is_some() {
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
            );
        }
        resp.headers_mut().insert(
            hyper::header::SERVER,
            hyper::header::HeaderValue::from_static(concat!("warden/", env!("CARGO_PKG_VERSION"))),
        );
        resp
    }
}

/// A body's fields as Kong's Admin API reads them: JSON as it is; a form
/// with `""` as null, `true`/`false` as booleans, and `k=a&k=b`, `k[]=…`,
/// `k[1]=…` as arrays; no body as no fields. Anything else is 415.
async fn read_fields(req: Request<Incoming>) -> Result<entities::Fields, entities::AdminError> {
    use entities::AdminError;
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.to_ascii_lowercase());
    let reads = matches!(req.method().as_str(), "POST" | "PUT" | "PATCH");
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| AdminError::BadRequest("the body is too large or was cut short".into()))?
        .to_bytes();
    if !reads {
        return Ok(Map::new());
    }
    match content_type.as_deref() {
        Some(t) if t.starts_with("application/json") => match serde_json::from_slice(&body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(AdminError::BadRequest("Cannot parse JSON body".into())),
        },
        Some(t) if t.starts_with("application/x-www-form-urlencoded") => Ok(form_fields(&body)),
        None if body.is_empty() => Ok(Map::new()),
        _ => Err(AdminError::UnsupportedMediaType),
    }
}

fn form_fields(body: &[u8]) -> entities::Fields {
    const ARRAYS: &[&str] = &["redirect_uris", "tags"];
    let mut out = Map::new();
    for (k, v) in form_urlencoded::parse(body) {
        let key = k.split('[').next().unwrap_or(&k).to_string();
        let value = match v.as_ref() {
            "" => Value::Null,
            "true" if key == "hash_secret" => Value::Bool(true),
            "false" if key == "hash_secret" => Value::Bool(false),
            other => Value::String(other.to_string()),
        };
        let array = ARRAYS.contains(&key.as_str());
        match out.get_mut(&key) {
            Some(Value::Array(items)) if !value.is_null() => items.push(value),
            _ if array && !value.is_null() => {
                out.insert(key, Value::Array(vec![value]));
            }
            _ => {
                out.insert(key, value);
            }
        }
    }
    out
}
