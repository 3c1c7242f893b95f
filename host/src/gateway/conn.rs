//! The connection phase: which HTTP a connection speaks, and letting open
//! connections finish at shutdown.
//!
//! On the plain listener a client speaks HTTP/1.1, or HTTP/2 with prior
//! knowledge (h2c, RFC 9113 §3.3: gRPC clients do): the first bytes are
//! peeked, never consumed, and a client that sends nothing within the header
//! timeout is dropped. On the TLS listener ALPN has decided. HTTP/1.1
//! connections are served with upgrades, so that a WebSocket the policy let
//! through can be bridged ([`super::tunnel`]).
//!
//! [`Drain`] is the shutdown: every connection holds a watcher; at shutdown
//! each is asked to finish (HTTP/1.1 after its response, h2 with GOAWAY)
//! and the drain waits until the last has.

use std::pin::{Pin, pin};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{Body, BoxError};

/// How long a client may take to send its headers (or finish a TLS handshake).
pub(super) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// h2: how often an idle connection is pinged, and how long a ping may go
/// unanswered before the connection is closed.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(30);
/// h2: streams one connection may have open at once.
const H2_MAX_STREAMS: u32 = 100;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The HTTP a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Http1,
    Http2,
}

/// Which HTTP a plain connection speaks, from its first bytes (peeked, left
/// in the socket): `None` if it closed, or sent nothing within the header
/// timeout.
pub(super) async fn sniff(stream: &TcpStream) -> Option<Protocol> {
    let sniffing = async {
        let mut buf = [0u8; PREFACE.len()];
        loop {
            let n = stream.peek(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            if buf[..n] != PREFACE[..n] {
                return Some(Protocol::Http1);
            }
            if n == PREFACE.len() {
                return Some(Protocol::Http2);
            }
            // A preface split across segments: rare; look again shortly
            // (peek returns at once while the bytes already there wait).
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(HEADER_READ_TIMEOUT, sniffing)
        .await
        .ok()
        .flatten()
}

/// Serve one connection in `protocol` until it ends or `stop` says to
/// finish (then it finishes what it has in flight).
pub(super) async fn serve<I, S>(
    io: I,
    protocol: Protocol,
    service: S,
    stop: watch::Receiver<bool>,
) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    S: HttpService<Incoming, ResBody = Body, Error = std::convert::Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let io = TokioIo::new(io);
    match protocol {
        Protocol::Http1 => {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(io, service)
                .with_upgrades();
            until_drained(conn, stop).await
        }
        Protocol::Http2 => {
            let conn = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(H2_KEEP_ALIVE)
                .keep_alive_timeout(H2_KEEP_ALIVE)
                .max_concurrent_streams(H2_MAX_STREAMS)
                .serve_connection(io, service);
            until_drained(conn, stop).await
        }
    }
}

/// A connection that can be asked to finish.
trait Graceful: Future<Output = Result<(), hyper::Error>> {
    fn finish(self: Pin<&mut Self>);
}

impl<I, S> Graceful for http1::UpgradeableConnection<I, S>
where
    S: HttpService<Incoming, ResBody = Body>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    fn finish(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S> Graceful for http2::Connection<I, S, TokioExecutor>
where
    S: HttpService<Incoming, ResBody = Body>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
{
    fn finish(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Drive `conn`; when `stop` turns true, ask it to finish and drive it to
/// the end. `stop` is held until then: the drain waits for it.
async fn until_drained<C: Graceful>(
    conn: C,
    mut stop: watch::Receiver<bool>,
) -> Result<(), hyper::Error> {
    let mut conn = pin!(conn);
    tokio::select! {
        served = conn.as_mut() => return served,
        _ = stop.wait_for(|&s| s) => conn.as_mut().finish(),
    }
    conn.await
}

/// The open connections of a listener (and their tunnels).
#[derive(Debug)]
pub(super) struct Drain(watch::Sender<bool>);

impl Drain {
    pub(super) fn new() -> Drain {
        Drain(watch::Sender::new(false))
    }

    /// A watcher for one more connection.
    pub(super) fn watcher(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }

    /// Ask every connection to finish; done when the last watcher is gone.
    pub(super) async fn shutdown(self) {
        let _ = self.0.send(true);
        self.0.closed().await;
    }
}
