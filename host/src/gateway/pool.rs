//! The HTTP/1.1 upstream connections: one pool per worker thread, of
//! hyper's `client::conn::http1` connections, keyed by the upstream's
//! authority.
//!
//! Why not hyper-util's pooled `Client`: it boxes and locks per request (a
//! pool behind a mutex shared by every worker, a checkout future, a
//! connector service), most of the gateway's own allocations per forward.
//! Here a worker takes an idle connection of its own thread, with no lock
//! and no allocation, and gives it back when the response body has been
//! read to its end ([`PooledBody`]); a response dropped before its end
//! takes its connection with it, whose state hyper no longer knows.
//!
//! - At most [`MAX_IDLE`] idle connections per upstream per thread, each
//!   for at most [`IDLE_TIMEOUT`]; a closed one is dropped when next seen,
//!   and each worker sweeps out closed and expired ones every
//!   [`SWEEP_EVERY`] ([`sweep`]).
//! - A request sent on a reused connection the upstream had closed meanwhile
//!   comes back unsent from hyper and goes once more on a new connection.
//! - A new connection: the authority checked as a URI authority without
//!   user info (the guest named it), resolved, connected within [`CONNECT_TIMEOUT`], `TCP_NODELAY`.
//! - The request goes in origin form with a `Host` (the client's, else the
//!   upstream's), as hyper-util's client sent it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper::header::{self, HeaderValue};
use hyper::http::uri::Authority;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::upstream::CONNECT_TIMEOUT;
use super::{Body, BoxError};

/// Idle connections kept per upstream, per worker thread.
pub(super) const MAX_IDLE: usize = 256;
/// How long a connection may sit idle before it is closed rather than reused.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often a worker closes its idle connections that expired, and drops
/// those the upstream closed ([`sweep`]).
const SWEEP_EVERY: Duration = Duration::from_secs(30);

type Sender = http1::SendRequest<Body>;

struct Idle {
    sender: Sender,
    since: Instant,
}

thread_local! {
    /// This thread's idle connections, by upstream authority. An authority
    /// is a key only once a connection to it was made, so only after it was
    /// checked; a response body holds its key (shared, not copied per
    /// request) to give its connection back.
    static IDLE: RefCell<HashMap<Arc<str>, Vec<Idle>>> = RefCell::new(HashMap::new());
}

/// Why a request got no response.
#[derive(Debug)]
pub(super) enum Failure {
    /// The authority the decision named is not one (logged by the caller).
    NotAuthority,
    /// Connecting failed, or the request did (I/O, a malformed response).
    Failed(BoxError),
}

/// Send `req` (origin form, `Host` set) to `authority` on a connection of
/// this thread's pool, or a new one; the response's body gives the
/// connection back at its end.
pub(super) async fn send(
    authority: &str,
    mut req: Request<Body>,
) -> Result<Response<PooledBody>, Failure> {
    if let Some(mut sender) = take_idle(authority) {
        match sender.try_send_request(req).await {
            Ok(response) => return Ok(pooled(response, sender, authority)),
            Err(mut e) => match e.take_message() {
                // Closed before it was written: a new connection gets it.
                Some(unsent) => req = unsent,
                None => return Err(Failure::Failed(e.into_error().into())),
            },
        }
    }
    let mut sender = connect(authority).await?;
    match sender.send_request(req).await {
        Ok(response) => Ok(pooled(response, sender, authority)),
        Err(e) => Err(Failure::Failed(e.into())),
    }
}

/// An idle connection to `authority` that can take a request now, if this
/// thread has one; closed and expired ones are dropped on the way.
fn take_idle(authority: &str) -> Option<Sender> {
    IDLE.with_borrow_mut(|idle| {
        let list = idle.get_mut(authority)?;
        let now = Instant::now();
        list.retain(|c| c.usable(now));
        // Newest first: the one most likely still open. One whose last
        // response hyper is still finishing stays for a later request.
        let ready = list.iter().rposition(|c| c.sender.is_ready())?;
        Some(list.swap_remove(ready).sender)
    })
}

impl Idle {
    /// Still open, and not idle for too long at `now`.
    fn usable(&self, now: Instant) -> bool {
        !self.sender.is_closed() && now.duration_since(self.since) < IDLE_TIMEOUT
    }
}

/// Every [`SWEEP_EVERY`], close this thread's idle connections that have
/// expired and drop those the upstream closed, so that an upstream no
/// longer asked is not kept connected to (and a connection's memory is not
/// kept) until its next request; for as long as the worker runs.
pub(super) async fn sweep() {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        sweep_at(Instant::now());
    }
}

/// [`sweep`]'s work, once, as of `now`; how many idle connections are left.
pub(super) fn sweep_at(now: Instant) -> usize {
    IDLE.with_borrow_mut(|idle| {
        idle.values_mut()
            .map(|list| {
                list.retain(|c| c.usable(now));
                list.len()
            })
            .sum()
    })
}

/// Keep `sender` for the next request to `authority`, if there is room.
fn give_back(authority: &str, sender: Sender) {
    if sender.is_closed() {
        return;
    }
    IDLE.with_borrow_mut(|idle| {
        if let Some(list) = idle.get_mut(authority)
            && list.len() < MAX_IDLE
        {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    });
}

/// `authority`'s key in this thread's pool, made on its first connection.
fn key_of(authority: &str) -> Arc<str> {
    IDLE.with_borrow_mut(|idle| match idle.get_key_value(authority) {
        Some((key, _)) => Arc::clone(key),
        None => {
            let key: Arc<str> = authority.into();
            idle.insert(Arc::clone(&key), Vec::new());
            key
        }
    })
}

/// A new connection to `authority`, its hyper task spawned.
async fn connect(authority: &str) -> Result<Sender, Failure> {
    let parsed = authority
        .parse::<Authority>()
        .ok()
        // User info (`x@evil`) is no part of an upstream's name.
        .filter(|a| a.as_str() == authority && !authority.contains('@'))
        .ok_or(Failure::NotAuthority)?;
    // `Authority::host` keeps an IPv6 address's brackets; a socket wants it bare.
    let host = parsed.host().trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port_u16().unwrap_or(80);
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(Failure::Failed(e.into())),
        Err(_) => return Err(Failure::Failed("connect timed out".into())),
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Failure::Failed(e.into()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("upstream connection ended: {e}");
        }
    });
    Ok(sender)
}

fn pooled(response: Response<Incoming>, sender: Sender, authority: &str) -> Response<PooledBody> {
    response.map(|body| PooledBody {
        body,
        back: Some((sender, key_of(authority))),
    })
}

/// An upstream's response body; at its end, its connection goes back to
/// this thread's pool.
pub(super) struct PooledBody {
    body: Incoming,
    back: Option<(Sender, Arc<str>)>,
}

impl PooledBody {
    fn finish(&mut self) {
        if let Some((sender, authority)) = self.back.take() {
            give_back(&authority, sender);
        }
    }
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.finish(),
            // The connection is in no state to reuse.
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Read to its end (a server may stop polling once the size hint says
        // so): reusable. Else the connection closes with the body.
        if hyper::body::Body::is_end_stream(&self.body) {
            self.finish();
        }
    }
}

/// `Host` for a request to `authority`: the client's if it sent one.
pub(super) fn ensure_host(req: &mut Request<Body>, authority: &str) {
    if !req.headers().contains_key(header::HOST)
        && let Ok(value) = HeaderValue::from_str(authority)
    {
        req.headers_mut().insert(header::HOST, value);
    }
}
