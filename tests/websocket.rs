//! WebSocket through the real binary: a `websockets` echo server behind
//! Warden and `websockets` clients in front of it. A browser-style upgrade
//! (the token in `?access_token=`, no headers) opens, echoes both ways and
//! closes cleanly, and the upstream never sees the token; one without a
//! token gets 401 and no upgrade, one of a consumer the rule does not
//! allow 403; a header-borne token works too; an idle tunnel is closed at
//! `--websocket-idle-secs`, with a close frame (1001).
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

#[path = "support/peers.rs"]
mod peers;
mod support;

use std::path::PathBuf;

use peers::{PeerServer, peer_json};
use serde_json::Value;
use support::Server;

const ALICE: (&str, &str) = ("alice-id", "alice-secret-0123456789");
const BOB: (&str, &str) = ("bob-id", "bob-secret-0123456789");

fn start(extra: &[&str]) -> (PeerServer, Server) {
    let ws = PeerServer::start("ws_peer.py");
    let text = format!(
        r#"
global_auth false
token_query_param access_token
keep_token false
consumer alice {{ client_id {}; client_secret "{}" }}
consumer bob {{ client_id {}; client_secret "{}" }}
route live {{ path_prefix /live; upstream http://127.0.0.1:{} }}
rule live {{ match route [live]; allow [alice] }}
"#,
        ALICE.0, ALICE.1, BOB.0, BOB.1, ws.port
    );
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "ws-{}-{}.policy",
        std::process::id(),
        ws.port
    ));
    std::fs::write(&file, text).unwrap();
    let mut args = vec!["--policy", file.to_str().unwrap()];
    args.extend(extra);
    let warden = Server::launch(&args, &[]);
    (ws, warden)
}

fn client(url: &str, n: usize, extra: &[&str]) -> Value {
    let n = n.to_string();
    let mut args = vec!["client", url, n.as_str()];
    args.extend(extra);
    peer_json("ws_peer.py", &args)
}

#[test]
fn a_browser_style_websocket_opens_with_its_query_token_and_not_without() {
    let (_ws, warden) = start(&[]);
    let ws_base = warden.base.replace("http://", "ws://");
    let alice = warden.token("gw", "/oauth2/token", ALICE);
    let bob = warden.token("gw", "/oauth2/token", BOB);
    let opened = client(
        &format!("{ws_base}/live/room?room=7&access_token={alice}"),
        3,
        &[],
    );
    assert_eq!(opened["opened"], true, "{opened}");
    assert_eq!(opened["close_code"], 1000, "closed cleanly: {opened}");
    let replies = opened["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 3);
    for (k, r) in replies.iter().enumerate() {
        assert_eq!(r["echo"], format!("m{k}"));
        assert_eq!(r["consumer"], "alice");
        assert_eq!(r["query"], "room=7", "the token never reaches the upstream");
    }
    let refused = client(&format!("{ws_base}/live/room?room=7"), 1, &[]);
    assert_eq!(
        (&refused["opened"], &refused["status"]),
        (&Value::Bool(false), &Value::from(401)),
        "{refused}"
    );
    let forged = client(
        &format!("{ws_base}/live/room?access_token=e30.e30.e30"),
        1,
        &[],
    );
    assert_eq!(forged["status"], 401, "{forged}");
    let denied = client(&format!("{ws_base}/live/room?access_token={bob}"), 1, &[]);
    assert_eq!(denied["status"], 403, "{denied}");
    let header = format!("Authorization: Bearer {alice}");
    let by_header = client(&format!("{ws_base}/live/x"), 2, &["--header", &header]);
    assert_eq!(by_header["opened"], true, "{by_header}");
    assert_eq!(by_header["replies"][1]["echo"], "m1");
    warden.assert_logs_keep(&[&alice, &bob, ALICE.1]);
}

#[test]
fn an_idle_websocket_is_closed_at_the_idle_limit() {
    let (_ws, warden) = start(&["--websocket-idle-secs", "1"]);
    let ws_base = warden.base.replace("http://", "ws://");
    let alice = warden.token("gw", "/oauth2/token", ALICE);
    let url = format!("{ws_base}/live/x?access_token={alice}");
    // Traffic within the limit: all answered.
    let busy = client(&url, 3, &["--pause", "0.3"]);
    assert_eq!(busy["close_code"], 1000, "{busy}");
    // Quiet for longer than the limit: Warden has closed it.
    let idle = client(&url, 2, &["--pause", "2.5"]);
    assert_eq!(idle["opened"], true, "{idle}");
    assert_eq!(idle["ended_early"], true, "{idle}");
    assert_eq!(idle["close_code"], 1001, "told it is going away: {idle}");
    assert_eq!(idle["replies"].as_array().unwrap().len(), 1);
}
