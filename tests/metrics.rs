//! Operating `warden serve`: Prometheus `/metrics` (parsed with the
//! `prometheus-parse` crate, as a scraper reads it) whose counters move with
//! traffic; one JSON log line per decision with `--log-format json`, never
//! a token or secret; and a graceful shutdown on SIGTERM: a request in
//! flight finishes, the process exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use support::Server;

const C1: (&str, &str) = (
    "12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    "abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
);
const C2: (&str, &str) = (
    "87654321-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    "hgfedcba-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
);

fn scrape(url: &str) -> prometheus_parse::Scrape {
    let text = reqwest::blocking::get(url)
        .and_then(|r| r.text())
        .unwrap_or_else(|e| panic!("scraping {url}: {e:?}"));
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of `name` whose labels include all of `labels`.
fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

#[test]
fn metrics_parse_as_prometheus_text_and_move_with_traffic() {
    let gw = Server::launch(&["--metrics", "127.0.0.1:0", "--log-format", "json"], &[]);
    let metrics = gw.metrics.clone().unwrap();
    let before = scrape(&metrics);
    assert_eq!(value(&before, "warden_requests_total", &[]), 0.0);
    assert!(
        value(&before, "warden_guest_instances_created", &[]) >= 1.0,
        "prewarmed"
    );
    let t1 = gw.token("gw", "/oauth2/token", C1);
    let t2 = gw.token("test.com", "/oauth2/token", C2);
    assert_eq!(gw.get("gw", "/a/x", Some(&t1)).status(), 200);
    assert_eq!(gw.get("gw", "/a/x", Some(&t1)).status(), 200);
    assert_eq!(gw.get("gw", "/a/x", None).status(), 401);
    assert_eq!(gw.get("gw", "/a/x", Some(&t2)).status(), 403);
    let after = scrape(&metrics);
    assert_eq!(
        value(
            &after,
            "warden_requests_total",
            &[
                ("outcome", "forward"),
                ("route", "route-a"),
                ("rule", "routes")
            ]
        ),
        2.0
    );
    assert_eq!(
        value(
            &after,
            "warden_requests_total",
            &[("outcome", "401"), ("rule", "routes")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "warden_requests_total",
            &[("outcome", "403"), ("rule", "routes")]
        ),
        1.0
    );
    // consumer2's token request on test.com entered rule `domains`.
    assert_eq!(
        value(
            &after,
            "warden_requests_total",
            &[("outcome", "200"), ("rule", "domains")]
        ),
        1.0
    );
    // t1 verified once, then remembered by the guest's memo (one request
    // at a time: the same pooled instance); t2 verified, then refused by
    // `allow`; the token requests and the tokenless one checked none.
    let check = |c| value(&after, "warden_token_checks_total", &[("check", c)]);
    assert_eq!(
        (check("verified"), check("remembered"), check("none")),
        (2.0, 1.0, 3.0)
    );
    assert_eq!(
        value(&after, "warden_requests_total", &[("outcome", "200")]),
        2.0,
        "the token replies"
    );
    assert_eq!(
        value(
            &after,
            "warden_tokens_issued_total",
            &[("grant", "client_credentials")]
        ),
        2.0
    );
    assert_eq!(value(&after, "warden_decision_seconds_count", &[]), 6.0);
    assert!(value(&after, "warden_guest_call_seconds_count", &[]) >= 6.0);
    assert_eq!(
        reqwest::blocking::get(metrics.replace("/metrics", "/other"))
            .unwrap()
            .status(),
        404
    );
    // One JSON object per decision, with who, what and how long; no token.
    let logs = gw.logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["message"] == "forward" || v["message"] == "reply")
        .collect();
    assert_eq!(lines.len(), 6, "{logs}");
    let forward = lines.iter().find(|v| v["message"] == "forward").unwrap();
    assert_eq!(forward["consumer"], "consumer1");
    assert_eq!(forward["route"], "route-a");
    assert_eq!(forward["rule"], "routes");
    assert_eq!(forward["token"], "verified", "the first forward: {forward}");
    let denied = lines.iter().find(|v| v["status"] == 403).unwrap();
    assert_eq!(
        (&denied["rule"], &denied["token"]),
        (&"routes".into(), &"verified".into()),
        "{denied}"
    );
    assert!(forward["latency_us"].as_u64().is_some(), "{forward}");
    gw.assert_logs_keep(&[&t1, &t2, C1.1, C2.1]);
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_and_exits_zero() {
    // An upstream that answers after 1.5 s.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up = upstream.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = upstream.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            std::thread::sleep(Duration::from_millis(1500));
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nslow\n",
            );
        }
    });
    let mut gw = Server::launch(&["--upstream", &format!("http://{up}")], &[]);
    let url = format!("{}/elsewhere", gw.base);
    let request = std::thread::spawn(move || {
        reqwest::blocking::get(url).map(|r| (r.status().as_u16(), r.text().unwrap_or_default()))
    });
    std::thread::sleep(Duration::from_millis(400));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (status, body) = request
        .join()
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!((status, body.as_str()), (200, "slow\n"));
    let exit = gw.child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{}", gw.logs());
    // Stopped accepting: nothing listens any more.
    assert!(std::net::TcpStream::connect(gw.base.trim_start_matches("http://")).is_err());
}
