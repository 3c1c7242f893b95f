//! Request bodies through the real binary over loopback: an upload streams
//! through a protected route to a real upstream byte for byte, without the
//! gateway holding it; a body the decision reads (a token POST) is read only
//! up to its bound, and a longer one is a clear 413.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use sha2::{Digest, Sha256};
use support::Server;
use warden_engine::fixtures::CONSUMER1 as C1;

/// A real HTTP upstream (hyper, in its own thread) that answers every
/// request with the length and SHA-256 of the body it received.
fn hashing_upstream() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        |req: hyper::Request<hyper::body::Incoming>| async move {
                            let path = req.uri().path().to_owned();
                            let mut body = req.into_body();
                            let (mut len, mut hash) = (0u64, Sha256::new());
                            while let Some(frame) = body.frame().await {
                                if let Ok(data) = frame?.into_data() {
                                    len += data.len() as u64;
                                    hash.update(&data);
                                }
                            }
                            let answer = serde_json::json!({
                                "path": path,
                                "len": len,
                                "sha256": hex(&hash.finalize()),
                            });
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(
                                answer.to_string(),
                            ))))
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// `len` bytes of a deterministic pseudo-random stream (xorshift), hashed
/// as they are read.
struct Upload {
    left: u64,
    state: u64,
    hash: std::sync::Arc<std::sync::Mutex<Sha256>>,
}

impl Read for Upload {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left as usize);
        for b in &mut buf[..n] {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *b = self.state as u8;
        }
        self.hash.lock().unwrap().update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// Resident and peak resident memory of process `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn policy_to(upstream: SocketAddr) -> PathBuf {
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bodies-{}.policy", std::process::id()));
    std::fs::write(
        &file,
        format!(
            "consumer consumer1 {{ client_id {}; client_secret {} }}\n\
             route uploads {{ path_prefix /up; upstream \"http://{upstream}\" }}\n\
             rule {{ match route [uploads]; allow [consumer1] }}\n",
            C1.0, C1.1
        ),
    )
    .unwrap();
    file
}

const MIB: u64 = 1 << 20;

#[test]
fn a_50_mib_upload_streams_through_a_protected_route_byte_exact() {
    let upstream = hashing_upstream();
    let file = policy_to(upstream);
    let s = Server::launch(&["--policy".as_ref(), file.as_os_str()], &[]);
    let token = s.token("localhost", "/oauth2/token", C1);
    // Warm up (instances, connection pool), then take the baseline.
    for _ in 0..3 {
        let small = s
            .client
            .post(format!("{}/up/warm", s.base))
            .bearer_auth(&token)
            .body(vec![1u8; 1024])
            .send()
            .unwrap();
        assert_eq!(small.status(), 200);
    }
    let (rss_before, _) = memory_kib(s.pid());

    for sized in [true, false] {
        let hash = std::sync::Arc::new(std::sync::Mutex::new(Sha256::new()));
        let upload = Upload {
            left: 50 * MIB,
            state: 0x9e37_79b9_7f4a_7c15,
            hash: hash.clone(),
        };
        // With a Content-Length, and chunked (no length known up front).
        let body = if sized {
            reqwest::blocking::Body::sized(upload, 50 * MIB)
        } else {
            reqwest::blocking::Body::new(upload)
        };
        let resp = s
            .client
            .post(format!("{}/up/file?x=1", s.base))
            .bearer_auth(&token)
            .body(body)
            .send()
            .expect("the upload completes");
        assert_eq!(resp.status(), 200);
        let got: serde_json::Value = resp.json().unwrap();
        let sent = hex(&hash.lock().unwrap().clone().finalize());
        assert_eq!(got["path"], "/up/file");
        assert_eq!(got["len"], 50 * MIB, "sized: {sized}");
        assert_eq!(got["sha256"], sent, "byte-exact (sized: {sized})");
    }

    // Flat memory: the gateway's peak stays far below the 50 MiB it passed on
    // (buffering one upload would add 50 MiB; copying it, 100+).
    let (rss_after, peak) = memory_kib(s.pid());
    assert!(
        peak < rss_before + 16 * 1024,
        "peak RSS {peak} KiB vs {rss_before} KiB before the uploads (now {rss_after} KiB)"
    );

    // Without a token the upload is refused on its head.
    let small = s
        .client
        .post(format!("{}/up/file", s.base))
        .body(vec![0u8; 4096])
        .send()
        .unwrap();
    assert_eq!(small.status(), 401);
}

#[test]
fn a_token_request_with_an_oversized_body_is_a_clear_413() {
    let s = Server::start(None, None);
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        C1.0, C1.1
    );
    let post = |body: reqwest::blocking::Body| {
        s.client
            .post(format!("{}/oauth2/token", s.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .unwrap()
    };
    // The form body is read and decided on.
    let ok = post(form.clone().into());
    assert_eq!(ok.status(), 200);
    assert!(ok.text().unwrap().contains("access_token"));

    let padded = format!("{form}&pad={}", "x".repeat(20_000));
    // Declared too long: refused before reading; sent chunked: refused at the bound.
    for body in [
        reqwest::blocking::Body::from(padded.clone()),
        reqwest::blocking::Body::new(std::io::Cursor::new(padded.clone().into_bytes())),
    ] {
        let resp = post(body);
        assert_eq!(resp.status(), 413);
        let text = resp.text().unwrap();
        assert!(
            text.contains("request body too large") && text.contains("at most 16384 bytes"),
            "{text}"
        );
    }
}
