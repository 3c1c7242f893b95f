//! WebSocket: an upgrade the policy let through, bridged to the upstream.
//!
//! The upgrade request is decided like any other (a browser's WebSocket
//! cannot set headers, so a scope may take the token from the query:
//! `token_query_param`); a denied one gets its 401/403 and is never
//! upgraded. A forwarded one goes to the upstream on a connection of its
//! own with `Connection: upgrade` and `Upgrade: websocket` put back (the
//! request filter removed them, as every hop-by-hop header); the
//! upstream's `101 Switching Protocols` is passed to the client, and from
//! then on bytes are copied both ways, unread, until either side closes,
//! nothing moves for [`TunnelLimits::idle`], the tunnel has been open for
//! [`TunnelLimits::total`], or the gateway shuts down. At the idle limit —
//! nothing in flight, so no frame is cut — both sides get a WebSocket close
//! frame, 1001 "going away" (RFC 6455 §5.5.1, §7.4.1; masked towards the
//! upstream, as a client's must be); otherwise the connections just close.
//! An upstream that answers anything but 101 has its answer passed on as
//! it is.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::header::{self, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use warden_engine::HttpUpstreamRef;

use super::Body;
use super::filter::strip_hop_by_hop;
use super::reply::{Response, plain};
use super::upstream::{CONNECT_TIMEOUT, UPSTREAM_TIMEOUT, upstream_uri};

/// How long a WebSocket may stay open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelLimits {
    /// Closed when no byte has moved either way for this long.
    pub idle: Duration,
    /// Closed this long after it opened, whatever moves.
    pub total: Duration,
}

impl Default for TunnelLimits {
    fn default() -> Self {
        TunnelLimits {
            idle: Duration::from_secs(300),
            total: Duration::from_secs(24 * 3600),
        }
    }
}

/// Send the upgrade request `req` (already edited by the policy) to
/// `upstream`; on its 101, bridge `client` to it in the background.
pub(super) async fn open(
    client: OnUpgrade,
    upstream: HttpUpstreamRef<'_>,
    req: Request<Body>,
    limits: TunnelLimits,
    stop: watch::Receiver<bool>,
) -> Response {
    let (mut parts, _) = req.into_parts();
    let Some(uri) = upstream_uri(upstream, &parts) else {
        return plain(StatusCode::BAD_GATEWAY, "bad gateway\n");
    };
    let addr = match upstream.authority.contains(':') && !upstream.authority.ends_with(']') {
        true => upstream.authority.to_owned(),
        false => format!("{}:80", upstream.authority),
    };
    parts.uri = uri;
    parts.version = hyper::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    parts
        .headers
        .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    let out = Request::from_parts(parts, Body::full(bytes::Bytes::new()));
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addr));
    let stream = match connected.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::warn!(upstream = %upstream.authority, "WebSocket upstream connection failed: {e}");
            return plain(StatusCode::BAD_GATEWAY, "bad gateway\n");
        }
        Err(_) => {
            tracing::warn!(upstream = %upstream.authority, "WebSocket upstream connection timed out");
            return plain(StatusCode::BAD_GATEWAY, "bad gateway\n");
        }
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return plain(StatusCode::BAD_GATEWAY, "bad gateway\n");
    };
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("WebSocket upstream connection ended: {e}");
        }
    });
    let mut response = match tokio::time::timeout(UPSTREAM_TIMEOUT, sender.send_request(out)).await
    {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            tracing::warn!(upstream = %upstream.authority, "WebSocket upgrade request failed: {e}");
            return plain(StatusCode::BAD_GATEWAY, "bad gateway\n");
        }
        Err(_) => return plain(StatusCode::GATEWAY_TIMEOUT, "gateway timeout\n"),
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // The upstream refused the upgrade: its answer, as it is.
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        return hyper::Response::from_parts(parts, Body::boxed(body));
    }
    let upstream_side = hyper::upgrade::on(&mut response);
    let (mut parts, _) = response.into_parts();
    let protocol = parts.headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(&mut parts.headers);
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    parts.headers.insert(
        header::UPGRADE,
        protocol.unwrap_or(HeaderValue::from_static("websocket")),
    );
    let authority = upstream.authority.to_owned();
    tokio::spawn(async move {
        let (client, upstream) = match tokio::join!(client, upstream_side) {
            (Ok(c), Ok(u)) => (c, u),
            _ => {
                return tracing::debug!(upstream = %authority, "WebSocket upgrade did not complete");
            }
        };
        let m = crate::metrics::metrics();
        m.websockets.inc();
        m.websockets_open.inc();
        let why = bridge(TokioIo::new(client), TokioIo::new(upstream), limits, stop).await;
        m.websockets_open.dec();
        tracing::debug!(upstream = %authority, "WebSocket closed: {why}");
    });
    hyper::Response::from_parts(parts, Body::full(bytes::Bytes::new()))
}

/// Copy both ways until one side closes or a limit is reached; why it ended.
async fn bridge<A, B>(
    client: A,
    upstream: B,
    limits: TunnelLimits,
    mut stop: watch::Receiver<bool>,
) -> &'static str
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let opened = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut client = Active::new(client, opened, &last);
    let mut upstream = Active::new(upstream, opened, &last);
    let idle = async {
        loop {
            let quiet = opened
                .elapsed()
                .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
            if quiet >= limits.idle {
                return;
            }
            tokio::time::sleep(limits.idle - quiet).await;
        }
    };
    let why = tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
            Ok(_) => "closed",
            Err(_) => "connection error",
        },
        () = idle => "idle limit",
        () = tokio::time::sleep(limits.total) => "total limit",
        _ = stop.wait_for(|&s| s) => "shutting down",
    };
    if why == "idle limit" {
        let goodbye = async {
            client.write_all(&close_frame(None)).await?;
            let mut mask = [0u8; 4];
            getrandom::fill(&mut mask).map_err(std::io::Error::other)?;
            upstream.write_all(&close_frame(Some(mask))).await?;
            client.shutdown().await?;
            upstream.shutdown().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), goodbye).await;
    }
    why
}

/// A WebSocket close frame with status 1001 ("going away"); masked with
/// `mask` (a client's frame) or not (a server's).
fn close_frame(mask: Option<[u8; 4]>) -> Vec<u8> {
    let code = 1001u16.to_be_bytes();
    match mask {
        None => vec![0x88, 0x02, code[0], code[1]],
        Some(m) => vec![
            0x88,
            0x82,
            m[0],
            m[1],
            m[2],
            m[3],
            code[0] ^ m[0],
            code[1] ^ m[1],
        ],
    }
}

/// A stream that notes when it last read a byte (milliseconds since the
/// tunnel opened, shared by both sides).
struct Active<T> {
    inner: T,
    opened: Instant,
    last: Arc<AtomicU64>,
}

impl<T> Active<T> {
    fn new(inner: T, opened: Instant, last: &Arc<AtomicU64>) -> Self {
        Active {
            inner,
            opened,
            last: Arc::clone(last),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Active<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last.store(ms, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Active<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn limits(idle_ms: u64, total_ms: u64) -> TunnelLimits {
        TunnelLimits {
            idle: Duration::from_millis(idle_ms),
            total: Duration::from_millis(total_ms),
        }
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_until_a_side_closes() {
        let (client, mut client_far) = tokio::io::duplex(64);
        let (upstream, mut upstream_far) = tokio::io::duplex(64);
        let (_tx, stop) = watch::channel(false);
        let bridged = tokio::spawn(bridge(client, upstream, limits(5_000, 60_000), stop));
        client_far.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        upstream_far.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        upstream_far.write_all(b"pong").await.unwrap();
        client_far.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        drop(client_far);
        drop(upstream_far);
        assert_eq!(bridged.await.unwrap(), "closed");
    }

    #[tokio::test]
    async fn limits_and_shutdown_end_a_tunnel() {
        let (_tx, stop) = watch::channel(false);
        let (a, mut a_far) = tokio::io::duplex(64);
        let (b, mut b_far) = tokio::io::duplex(64);
        assert_eq!(
            bridge(a, b, limits(50, 60_000), stop.clone()).await,
            "idle limit"
        );
        // Both sides were told: a server's close frame to the client, a
        // masked one to the upstream, both 1001.
        let (mut to_client, mut to_upstream) = (Vec::new(), Vec::new());
        a_far.read_to_end(&mut to_client).await.unwrap();
        b_far.read_to_end(&mut to_upstream).await.unwrap();
        assert_eq!(to_client, [0x88, 0x02, 0x03, 0xe9]);
        assert_eq!(&to_upstream[..2], [0x88, 0x82]);
        let m = &to_upstream[2..6];
        assert_eq!([to_upstream[6] ^ m[0], to_upstream[7] ^ m[1]], [0x03, 0xe9]);
        // Traffic keeps an idle limit off, not the total one.
        let (a, mut a_far) = tokio::io::duplex(64);
        let (b, mut b_far) = tokio::io::duplex(1 << 16);
        let talk = tokio::spawn(async move {
            for _ in 0..40 {
                if a_far.write_all(b"x").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let _ = b_far.read(&mut [0u8; 64]).await;
        });
        assert_eq!(bridge(a, b, limits(150, 250), stop).await, "total limit");
        talk.abort();
        let (tx, stop) = watch::channel(false);
        let (a, _a) = tokio::io::duplex(64);
        let (b, _b) = tokio::io::duplex(64);
        let bridged = tokio::spawn(bridge(a, b, limits(60_000, 60_000), stop));
        tx.send(true).unwrap();
        assert_eq!(bridged.await.unwrap(), "shutting down");
    }
}
