//! Reloading the policy of a running `warden serve`, under load: with
//! `--watch` the file is rewritten every 100 ms while clients keep sending
//! authenticated requests; not one of them may fail, the new policy must take
//! effect, and a broken file must leave the running policy in place. SIGHUP
//! reloads without `--watch`. (The 60 s soak with RSS tracking is
//! `scripts/soak`; this is its short, always-run sibling.)
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{Server, StopOnDrop};
use warden_engine::fixtures::{CONSUMER1 as C1, CONSUMER2 as C2};

/// The demo policy, and the same with consumer2 also allowed on route-a/b.
fn versions() -> (String, String) {
    let a = std::fs::read_to_string(support::policy("demo.policy")).unwrap();
    let b = a.replace("allow [consumer1]", "allow [consumer1, consumer2]");
    assert_ne!(a, b, "the demo policy still has `allow [consumer1]`");
    (a, b)
}

fn temp_policy(test: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("reload-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("live.policy");
    std::fs::write(&path, text).unwrap();
    path
}

/// Poll `f` until it is true or `within` has passed.
fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

fn status(server: &Server, token: &str) -> u16 {
    server.get("gw", "/a/x", Some(token)).status().as_u16()
}

/// Send requests until `stop`, counting answers in `fine` as `ok`, others
/// as `bad` (each said on stderr with `who`).
fn keep_sending(
    (stop, ok, bad): (&AtomicBool, &AtomicUsize, &AtomicUsize),
    who: &str,
    fine: &[u16],
    mut send: impl FnMut() -> u16,
) {
    while !stop.load(Ordering::Relaxed) {
        let got = send();
        if fine.contains(&got) {
            ok.fetch_add(1, Ordering::Relaxed);
        } else {
            eprintln!("{who}: unexpected {got}");
            bad.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn watched_policy_reloads_under_load_without_a_failed_request() {
    let (a, b) = versions();
    let file = temp_policy("watch", &a);
    let server = Server::launch(
        &[
            "--policy".as_ref(),
            file.as_os_str(),
            "--watch".as_ref(),
            "--watch-ms".as_ref(),
            "50".as_ref(),
        ],
        &[],
    );
    let t1 = server.token("gw", "/a/oauth2/token", C1);
    let t2 = server.token("gw", "/a/oauth2/token", C2);
    assert_eq!(
        status(&server, &t2),
        403,
        "version A: consumer2 is not allowed on /a"
    );

    // Three clients the whole time: consumer1 is allowed by both versions
    // (always 200); consumer2 by one of them (200 or 403, nothing else).
    let stop = AtomicBool::new(false);
    let (ok, bad) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        for (i, token, fine) in [
            (0, &t2, &[200u16, 403][..]),
            (1, &t1, &[200]),
            (2, &t1, &[200]),
        ] {
            let (server, counts) = (&server, (&stop, &ok, &bad));
            scope.spawn(move || {
                keep_sending(counts, &format!("client {i}"), fine, || {
                    status(server, token)
                })
            });
        }
        // Rewrite the file every 100 ms for 3 s, alternating the versions
        // (plain writes: the watcher may well see a half-written file).
        for n in 0..30 {
            write(&file, if n % 2 == 0 { &b } else { &a });
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (ok, bad) = (ok.into_inner(), bad.into_inner());
    assert_eq!(
        bad,
        0,
        "{bad} of {} requests failed during reloads",
        ok + bad
    );
    assert!(ok > 30, "requests flowed during the reloads ({ok})");
    let reloads = server.logs().matches("policy reloaded").count();
    assert!(
        reloads >= 5,
        "the policy was reloaded ({reloads} times):\n{}",
        server.logs()
    );

    // Each version written takes effect.
    write(&file, &a);
    assert!(
        eventually(Duration::from_secs(5), || status(&server, &t2) == 403),
        "version A (consumer2 not allowed) is served"
    );
    write(&file, &b);
    assert!(
        eventually(Duration::from_secs(5), || status(&server, &t2) == 200),
        "version B (consumer2 allowed) is served"
    );

    // A broken file is reported with line and column and changes nothing.
    write(
        &file,
        &b.replace("allow [consumer1, consumer2]", "allow [consumer1, nobody]"),
    );
    assert!(
        eventually(Duration::from_secs(5), || server
            .logs()
            .contains("still serving the previous policy")),
        "the failed reload is logged:\n{}",
        server.logs()
    );
    let logs = server.logs();
    assert!(
        logs.contains("live.policy:"),
        "the error names the file:\n{logs}"
    );
    assert!(logs.contains("nobody"), "the error shows the line:\n{logs}");
    assert_eq!(status(&server, &t2), 200, "version B is still served");
    assert_eq!(status(&server, &t1), 200);
    server.assert_logs_keep(&[&t1, &t2, C1.1, C2.1]);
}

#[test]
fn sighup_reloads_the_policy_file() {
    let (a, b) = versions();
    let file = temp_policy("hup", &a);
    let server = Server::launch(&["--policy".as_ref(), file.as_os_str()], &[]);
    let t2 = server.token("gw", "/a/oauth2/token", C2);
    assert_eq!(status(&server, &t2), 403);

    write(&file, &b);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        status(&server, &t2),
        403,
        "without --watch, no reload until SIGHUP"
    );

    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(
        eventually(Duration::from_secs(5), || status(&server, &t2) == 200),
        "SIGHUP reloaded the policy:\n{}",
        server.logs()
    );
    assert!(server.logs().contains("policy reloaded"));
}

/// A policy at scale (issue 16): 100,000 consumers and routes and 200,000
/// rules (`synth::policy`, 21 MB of text) serve, and reload on SIGHUP while
/// clients keep sending authenticated requests, without one failing, in
/// instances of the default size (64 MiB: it compiles in 62).
#[test]
fn a_100k_consumer_policy_reloads_under_load_without_a_failed_request() {
    const N: usize = 100_000;
    let a = warden_engine::synth::policy(N);
    // Version B also lets c8 reach route r7.
    let b = a.replace(
        "rule { match route [r7]; allow [c7] }",
        "rule { match route [r7]; allow [c7, c8] }",
    );
    assert_ne!(a, b, "synth::policy still writes r7's rule this way");
    let file = temp_policy("large", &a);
    let started = Instant::now();
    let server = Server::launch(&["--policy".as_ref(), file.as_os_str()], &[]);
    eprintln!("serving {N} consumers after {:?}", started.elapsed());
    let last = (format!("id-{}", N - 1), format!("secret-{}", N - 1));
    let t_last = server.token("gw", "/oauth2/token", (&last.0, &last.1));
    let t8 = server.token("gw", "/oauth2/token", ("id-8", "secret-8"));
    let last_path = format!("/r{}/x", N - 1);
    let get = |path: &str, token: &str| server.get("gw", path, Some(token)).status().as_u16();
    assert_eq!(
        get(&last_path, &t_last),
        200,
        "the last consumer on the last route"
    );
    assert_eq!(get("/r7/x", &t8), 403, "version A: c8 is not allowed on r7");
    assert_eq!(get("/r7/x", &t_last), 403, "nor is the last consumer");

    let stop = AtomicBool::new(false);
    let (ok, bad) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let reloads = |server: &Server| server.logs().matches("policy reloaded").count();
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        for (path, token, fine) in [
            (last_path.as_str(), &t_last, &[200u16][..]),
            ("/r7/x", &t8, &[200, 403]),
        ] {
            let (get, counts) = (&get, (&stop, &ok, &bad));
            scope.spawn(move || keep_sending(counts, path, fine, || get(path, token)));
        }
        // Four reloads, alternating the versions; each is waited for.
        for n in 0..4 {
            write(&file, if n % 2 == 0 { &b } else { &a });
            let before = reloads(&server);
            let at = Instant::now();
            let hup = std::process::Command::new("kill")
                .args(["-HUP", &server.pid().to_string()])
                .status()
                .unwrap();
            assert!(hup.success());
            assert!(
                eventually(Duration::from_secs(60), || reloads(&server) > before),
                "reload {n} finished:\n{}",
                server.logs()
            );
            eprintln!("reload {n} took {:?}", at.elapsed());
        }
    });
    let (ok, bad) = (ok.into_inner(), bad.into_inner());
    assert_eq!(
        bad,
        0,
        "{bad} of {} requests failed during reloads",
        ok + bad
    );
    assert!(ok > 20, "requests flowed during the reloads ({ok})");
    // The last version written (A) is served; B takes effect when written.
    assert_eq!(get("/r7/x", &t8), 403, "version A is served");
    write(&file, &b);
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(
        eventually(Duration::from_secs(60), || get("/r7/x", &t8) == 200),
        "version B (c8 allowed on r7) is served:\n{}",
        server.logs()
    );
}
