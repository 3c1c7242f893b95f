//! Kong's authorization-code exchange through the guest, as `warden serve`
//! runs it, on each store backend in one run: the in-process store, and a
//! real `redis-server` on loopback (started here; Debian's `redis-server`
//! must be installed). One iteration: `POST …/oauth2/authorize` (a code
//! stored) + `POST …/oauth2/token` (the code taken with `GETDEL`, a refresh
//! token and the token's record stored): three store writes and one take.
//!
//! Run: `cargo bench -p warden-host --bench store`
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // bench code may unwrap

use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use warden_host::services::{RedisStore, StateStore, StoreUrl};
use warden_host::{Clock, GuestComponent, OwnedRequest, PolicyRuntime, RuntimeOptions};

const POLICY: &str = include_str!("../../policies/kong-code-pkce.policy");
const AUTHORIZE: &str = "provision_key=provision-bench&authenticated_userid=user-1\
     &client_id=webapp-client&response_type=code&scope=email";

fn post(path: &str, body: &str) -> OwnedRequest {
    OwnedRequest::post(path, body.to_string())
        .with_scheme("https")
        .with_header("content-type", "application/x-www-form-urlencoded")
}

fn runtime(store: StateStore) -> PolicyRuntime {
    // The policy reads its keys from the environment: write them in.
    let source = POLICY
        .replace(
            "signing_key env WARDEN_SIGNING_KEY",
            "signing_key \"bench-signing-key-0123456789abcdef0123\"",
        )
        .replace(
            "provision_key             env PROVISION_KEY",
            "provision_key \"provision-bench\"",
        );
    let options = RuntimeOptions {
        store,
        // The first call on a cold machine can take longer than a request's
        // 10 ms; what is measured is the steady state.
        deadline: Duration::from_secs(1),
        ..Default::default()
    };
    let runtime = PolicyRuntime::load_with(
        GuestComponent::shared().unwrap(),
        "kong-code-pkce.policy",
        &source,
        options,
    )
    .unwrap();
    runtime.prewarm(1).unwrap();
    runtime
}

fn exchange(runtime: &PolicyRuntime) -> usize {
    let d = runtime
        .decide(&post("/api/oauth2/authorize", AUTHORIZE))
        .unwrap();
    let reply = d.reply().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.reason);
    let body = std::str::from_utf8(&reply.body).unwrap();
    let code = &body[body.find("code=").unwrap() + 5..];
    let code = &code[..code.find(['&', '"']).unwrap()];
    let d = runtime
        .decide(&post(
            "/api/oauth2/token",
            &format!(
                "grant_type=authorization_code&code={code}\
                 &client_id=webapp-client&client_secret=webapp-secret"
            ),
        ))
        .unwrap();
    let reply = d.reply().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.reason);
    reply.body.len()
}

struct RedisServer(Child);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis() -> (RedisServer, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (apt-get install -y redis-server)");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (RedisServer(child), port)
}

fn store(c: &mut Criterion) {
    let mut group = c.benchmark_group("store/code_exchange");
    let memory = runtime(StateStore::default());
    exchange(&memory);
    group.bench_function("in_process", |b| b.iter(|| black_box(exchange(&memory))));

    let (_server, port) = redis();
    let url = StoreUrl::parse(&format!("redis://127.0.0.1:{port}/0")).unwrap();
    let shared = RedisStore::connect(url, None, Duration::from_millis(500), Clock::System).unwrap();
    let on_redis = runtime(StateStore::Redis(Arc::new(shared)));
    exchange(&on_redis);
    group.bench_function("redis", |b| b.iter(|| black_box(exchange(&on_redis))));
    group.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
