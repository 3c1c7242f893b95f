//! gRPC and HTTP/2 through the real binary: a grpcio server behind Warden
//! (`upstream h2c://…`), grpcio clients in front of it over h2c (prior
//! knowledge, on the plain listener) and over TLS (h2 by ALPN), unary and
//! bidirectional-streaming calls, trailers passed through; a call without a
//! token is `UNAUTHENTICATED`, one of a consumer the rule does not allow
//! `PERMISSION_DENIED`, both as gRPC's Trailers-Only answers. And curl's
//! `--http2` / `--http2-prior-knowledge`: the policy decides on
//! `:authority` as the host.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

#[path = "support/peers.rs"]
mod peers;
mod support;

use std::path::PathBuf;
use std::process::Command;

use peers::{PeerServer, peer_json};
use serde_json::Value;
use support::{Server, certificate};

const ALICE: (&str, &str) = ("alice-id", "alice-secret-0123456789");
const BOB: (&str, &str) = ("bob-id", "bob-secret-0123456789");

fn policy(grpc_port: u16) -> PathBuf {
    let text = format!(
        r#"
global_auth false
keep_token false
consumer alice {{ client_id {}; client_secret "{}" }}
consumer bob {{ client_id {}; client_secret "{}" }}
route grpc {{ path_prefix /echo.Echo; upstream h2c://127.0.0.1:{grpc_port} }}
route web {{ path_prefix /web; upstream echo }}
rule calls {{ match route [grpc]; allow [alice] }}
rule site {{ match domain [h2.test]; allow [alice] }}
"#,
        ALICE.0, ALICE.1, BOB.0, BOB.1
    );
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("grpc-{}-{grpc_port}.policy", std::process::id()));
    std::fs::write(&file, text).unwrap();
    file
}

/// Warden with a TLS listener too, in front of a grpcio server; the CA file.
fn start() -> (PeerServer, Server, PathBuf) {
    let grpc = PeerServer::start("grpc_peer.py");
    let file = policy(grpc.port);
    let (cert, key, _) = certificate("grpc");
    let args: Vec<std::ffi::OsString> = vec![
        "--policy".into(),
        file.into(),
        "--tls-listen".into(),
        "127.0.0.1:0".into(),
        "--tls-cert".into(),
        cert.clone().into(),
        "--tls-key".into(),
        key.into(),
    ];
    (grpc, Server::launch(&args, &[]), cert)
}

fn call(mode: &[&str], target: &str, token: Option<&str>, ca: Option<&PathBuf>) -> Value {
    let mut args: Vec<&str> = mode.to_vec();
    args.insert(1, target);
    if let Some(t) = token {
        args.extend(["--token", t]);
    }
    let ca = ca.map(|c| c.to_str().unwrap().to_string());
    if let Some(c) = &ca {
        args.extend(["--ca", c]);
    }
    peer_json("grpc_peer.py", &args)
}

#[test]
fn grpc_calls_reach_the_upstream_over_h2c_and_tls_with_a_token_and_no_further() {
    let (_grpc, warden, ca) = start();
    let plain = warden.base.trim_start_matches("http://").to_string();
    let tls = warden
        .https_localhost()
        .trim_start_matches("https://")
        .to_string();
    let alice = warden.token("gw", "/oauth2/token", ALICE);
    let bob = warden.token("gw", "/oauth2/token", BOB);
    for (target, ca) in [(plain.as_str(), None), (tls.as_str(), Some(&ca))] {
        let ok = call(&["unary"], target, Some(&alice), ca);
        assert_eq!(ok["code"], "OK", "{target}: {ok}");
        assert_eq!(ok["reply"]["echo"], "hello");
        assert_eq!(ok["reply"]["consumer"], "alice", "the upstream is told who");
        assert_eq!(ok["reply"]["authorization"], false, "keep_token false");
        assert_eq!(ok["trailers"]["served-by"], "grpc-peer", "trailers pass");
        // Both ways streaming: each answer is read before the next message
        // is sent, so nothing buffers a whole body.
        let chat = call(&["chat", "5"], target, Some(&alice), ca);
        assert_eq!(chat["code"], "OK", "{target}: {chat}");
        assert_eq!(
            chat["replies"],
            serde_json::json!(["re:m0", "re:m1", "re:m2", "re:m3", "re:m4"])
        );
        let missing = call(&["unary"], target, None, ca);
        assert_eq!(missing["code"], "UNAUTHENTICATED", "{target}: {missing}");
        assert_eq!(missing["details"], "Invalid Jwt token");
        let forged = call(&["chat", "2"], target, Some("e30.e30.e30"), ca);
        assert_eq!(forged["code"], "UNAUTHENTICATED", "{target}: {forged}");
        let denied = call(&["unary"], target, Some(&bob), ca);
        assert_eq!(denied["code"], "PERMISSION_DENIED", "{target}: {denied}");
        assert_eq!(denied["details"], "Access Denied");
    }
    warden.assert_logs_keep(&[&alice, &bob, ALICE.1, BOB.1]);
}

/// `curl` over HTTP/2: the status line, and the echo upstream's JSON.
fn curl(args: &[&str]) -> (String, Value) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed (Debian: apt-get install -y curl)");
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let status = text.lines().next().unwrap_or_default().trim().to_string();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn curl_http2_and_prior_knowledge_h2c_are_decided_on_the_authority() {
    let (_grpc, warden, ca) = start();
    let alice = warden.token("gw", "/oauth2/token", ALICE);
    let bearer = format!("authorization: Bearer {alice}");
    let port = warden.base.rsplit(':').next().unwrap().to_string();
    let tls_port = warden
        .https
        .as_deref()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let h2c = |host: &str, auth: Option<&str>| {
        let url = format!("http://{host}:{port}/web/x?q=1");
        let resolve = format!("{host}:{port}:127.0.0.1");
        let mut args = vec!["--http2-prior-knowledge", "--resolve", &resolve, &url];
        if let Some(a) = auth {
            args.extend(["-H", a]);
        }
        curl(&args)
    };
    // The rule is on the domain h2.test: decided on :authority.
    let (status, _) = h2c("h2.test", None);
    assert_eq!(status, "HTTP/2 401");
    let (status, seen) = h2c("h2.test", Some(&bearer));
    assert_eq!(status, "HTTP/2 200");
    assert_eq!(seen["headers"]["host"], format!("h2.test:{port}"));
    assert_eq!(seen["headers"]["x-mse-consumer"], "alice");
    assert_eq!(seen["query"], "q=1");
    assert!(
        seen["headers"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with(':')),
        "no pseudo-header reaches a policy or an upstream: {seen}"
    );
    let (status, _) = h2c("other.test", None);
    assert_eq!(status, "HTTP/2 200", "another authority: no rule");
    // h2 over TLS, by ALPN (curl sends `Host` as `:authority`).
    let cacert = ca.to_str().unwrap();
    let localhost = format!("https://localhost:{tls_port}/web/x");
    let (status, _) = curl(&[
        "--http2",
        "--cacert",
        cacert,
        "-H",
        "host: h2.test",
        &localhost,
    ]);
    assert_eq!(status, "HTTP/2 401", "h2 over TLS: :authority is h2.test");
    let (status, seen) = curl(&[
        "--http2",
        "--cacert",
        cacert,
        "-H",
        "host: h2.test",
        "-H",
        &bearer,
        &localhost,
    ]);
    assert_eq!(status, "HTTP/2 200");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https");
    // HTTP/1.1 on the same plain listener still works beside h2c.
    let (status, _) = curl(&["--http1.1", &format!("http://127.0.0.1:{port}/web/x")]);
    assert_eq!(status, "HTTP/1.1 200 OK");
}
