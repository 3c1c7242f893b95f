//! The upstream pool against a real socket: an HTTP/1.1 server on loopback
//! that counts its connections and answers each request with what it saw.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::Request;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::pool::{self, Failure};

/// What the test upstream does after each response.
#[derive(Clone, Copy)]
enum After {
    KeepOpen,
    Close,
}

/// A keep-alive HTTP/1.1 upstream: its address and its connection count.
/// Each response's body is the request line and `Host`, padded to `len`.
async fn upstream(after: After, len: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                loop {
                    let Ok(Some(request_line)) = lines.next_line().await else {
                        return;
                    };
                    let mut host = String::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line.is_empty() {
                            break;
                        }
                        if let Some(h) = line.strip_prefix("host: ") {
                            host = h.to_owned();
                        }
                    }
                    let mut body = format!("{request_line} {host}");
                    while body.len() < len {
                        body.push('.');
                    }
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                    if write.write_all(head.as_bytes()).await.is_err()
                        || write.write_all(body.as_bytes()).await.is_err()
                    {
                        return;
                    }
                    if let After::Close = after {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

fn request(path: &str, host: Option<&str>, authority: &str) -> Request<super::Body> {
    let mut builder = Request::get(path);
    if let Some(host) = host {
        builder = builder.header("host", host);
    }
    let mut req = builder.body(super::Body::full("")).unwrap();
    pool::ensure_host(&mut req, authority);
    req
}

async fn body_of(authority: &str, req: Request<super::Body>) -> String {
    let Ok(response) = pool::send(authority, req).await else {
        panic!("no response from {authority}");
    };
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn a_connection_is_reused_once_its_response_is_read() {
    let (addr, accepted) = upstream(After::KeepOpen, 0).await;
    let first = body_of(&addr, request("/a?x=1", Some("client.example"), &addr)).await;
    assert_eq!(first, "GET /a?x=1 HTTP/1.1 client.example");
    // No Host from the client: the upstream's.
    let second = body_of(&addr, request("/b", None, &addr)).await;
    assert_eq!(second, format!("GET /b HTTP/1.1 {addr}"));
    for _ in 0..8 {
        body_of(&addr, request("/c", None, &addr)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_replaced() {
    let (addr, accepted) = upstream(After::Close, 0).await;
    for n in 0..4 {
        let got = body_of(&addr, request(&format!("/{n}"), None, &addr)).await;
        assert_eq!(got, format!("GET /{n} HTTP/1.1 {addr}"));
        // Give the close a moment to reach hyper, or not: both paths
        // (dropped when seen closed, or resent when found closed) must work.
        if n % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_response_dropped_unread_takes_its_connection_with_it() {
    let (addr, accepted) = upstream(After::KeepOpen, 256 * 1024).await;
    let Ok(response) = pool::send(&addr, request("/big", None, &addr)).await else {
        panic!("no response");
    };
    drop(response);
    let got = body_of(&addr, request("/next", None, &addr)).await;
    assert!(got.starts_with("GET /next HTTP/1.1"), "{got}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_authority_that_is_not_one_gets_no_connection() {
    for bad in ["x@127.0.0.1:1", "127.0.0.1:1/path", "", "a b"] {
        let sent = pool::send(bad, request("/", Some("h"), bad)).await;
        assert!(matches!(sent, Err(Failure::NotAuthority)), "{bad}");
    }
}

#[tokio::test]
async fn a_refused_connection_is_a_failure() {
    // A port just released: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let sent = pool::send(&addr, request("/", None, &addr)).await;
    assert!(matches!(sent, Err(Failure::Failed(_))));
}

#[tokio::test]
async fn the_sweep_drops_closed_and_expired_connections() {
    let (open, _) = upstream(After::KeepOpen, 0).await;
    let (closing, _) = upstream(After::Close, 0).await;
    body_of(&open, request("/", None, &open)).await;
    body_of(&closing, request("/", None, &closing)).await;
    // Both went back to this thread's pool; the closing upstream's close
    // reaches hyper within moments.
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = pool::sweep_at(Instant::now());
        if left == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        left, 1,
        "the closed connection is swept out, the open one kept"
    );
    assert_eq!(pool::sweep_at(Instant::now() + pool::IDLE_TIMEOUT), 0);
}
