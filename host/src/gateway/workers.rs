//! The gateway's workers: one OS thread each, each with a single-threaded
//! tokio runtime of its own, all accepting on the same listening sockets.
//!
//! Why (BENCHMARKS.md, round two's fourth increment): a multi-threaded
//! runtime's work stealing and cross-thread wake-ups cost more than they
//! balance when a request is served in microseconds. A connection stays on
//! the worker that accepted it, with its upstream connections
//! ([`super::pool`]) and its guest calls. Of the two ways to accept with
//! per-worker runtimes, one shared listener and `SO_REUSEPORT` per worker,
//! the shared listener was the steadier in an earlier measurement
//! (`SO_REUSEPORT` balances by hash, so a few connections can leave one
//! worker with most of the load); it has not been re-measured since.
//!
//! The control work (signals, reloads, the Admin API, metrics) stays on the
//! caller's runtime.

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::watch;

use super::Gateway;

/// The worker threads serving a gateway; [`Workers::join`] waits for them.
#[derive(Debug)]
pub struct Workers {
    threads: Vec<JoinHandle<std::io::Result<()>>>,
}

/// What the workers accept on: the plain listener and, with TLS, the TLS
/// one and its configuration.
#[derive(Debug)]
pub struct Listeners {
    pub plain: StdListener,
    pub tls: Option<(StdListener, Arc<rustls::ServerConfig>)>,
}

impl Gateway {
    /// Serve on `count` worker threads until `stop` turns true; each then
    /// stops accepting and lets its open connections finish (as
    /// [`Gateway::serve`]).
    pub fn spawn_workers(
        self: &Arc<Self>,
        count: usize,
        listeners: &Listeners,
        stop: &watch::Receiver<bool>,
    ) -> std::io::Result<Workers> {
        listeners.plain.set_nonblocking(true)?;
        if let Some((tls, _)) = &listeners.tls {
            tls.set_nonblocking(true)?;
        }
        let mut threads = Vec::with_capacity(count);
        for n in 0..count.max(1) {
            let plain = listeners.plain.try_clone()?;
            let tls = match &listeners.tls {
                Some((l, config)) => Some((l.try_clone()?, Arc::clone(config))),
                None => None,
            };
            let (gateway, stop) = (Arc::clone(self), stop.clone());
            let thread = std::thread::Builder::new()
                .name(format!("warden-worker-{n}"))
                .spawn(move || worker(&gateway, plain, tls, stop))?;
            threads.push(thread);
        }
        Ok(Workers { threads })
    }
}

/// One worker: its runtime, accepting until `stop`.
fn worker(
    gateway: &Arc<Gateway>,
    plain: StdListener,
    tls: Option<(StdListener, Arc<rustls::ServerConfig>)>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Ends with the runtime.
        tokio::spawn(super::pool::sweep());
        let until_stopped = |mut stop: watch::Receiver<bool>| async move {
            let _ = stop.wait_for(|&s| s).await;
        };
        let plain = tokio::net::TcpListener::from_std(plain)?;
        let serving = Arc::clone(gateway).serve(plain, until_stopped(stop.clone()));
        match tls {
            Some((listener, config)) => {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let secure = Arc::clone(gateway).serve_tls(listener, config, until_stopped(stop));
                let (a, b) = tokio::join!(serving, secure);
                a.and(b)
            }
            None => serving.await,
        }
    })
}

impl Workers {
    /// Wait until every worker has stopped; the first error, if any.
    pub fn join(self) -> std::io::Result<()> {
        let mut result = Ok(());
        for thread in self.threads {
            let ended = thread
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("a worker thread panicked")));
            if result.is_ok() {
                result = ended;
            }
        }
        result
    }
}
