//! Real `redis-server` processes for the store's tests (Debian's
//! `redis-server`; `.ci/run` installs it). Missing, it fails the test with
//! what to install: a test that needs Redis never skips.
#![allow(dead_code)] // each suite uses part of it

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BINARY: &str = "redis-server";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn arguments(port: u16, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if extra.contains(&"--tls-cert-file") {
        args.extend([
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
        ]);
    } else {
        args.extend(["--port".into(), port.to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend([
        "--dir".into(),
        std::env::temp_dir().to_string_lossy().into_owned(),
    ]);
    args
}

fn missing(e: std::io::Error) -> ! {
    panic!(
        "cannot start `{BINARY}` ({e}): these tests need a real Redis server; \
         install it with `apt-get install -y redis-server` (the README's test command does)"
    )
}

/// Wait until a plain-text PING on `port` answers, or for TLS until it
/// accepts connections (or panic after 10 s).
fn wait_ready(port: u16, what: &str, tls: bool) {
    use std::io::{Read, Write};
    let started = Instant::now();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 64];
            if tls {
                return;
            }
            if s.write_all(b"PING\r\n").is_ok()
                && let Ok(n) = s.read(&mut buf)
                && n > 0
            {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what} on port {port} did not come up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `redis-server` this test owns: killed on drop, and killable (and
/// restartable on the same port) mid-test.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    extra: Vec<String>,
}

impl Redis {
    /// A new server on a free port (`extra`: more redis-server arguments).
    pub fn start(extra: &[&str]) -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        r.restart();
        r
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill the server at once (SIGKILL: no goodbye to its clients' sockets
    /// beyond what the kernel sends).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port (its data is gone: no persistence).
    pub fn restart(&mut self) {
        self.kill();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let child = Command::new(BINARY)
            .args(arguments(self.port, &extra))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| missing(e));
        self.child = Some(child);
        wait_ready(self.port, BINARY, extra.contains(&"--tls-cert-file"));
    }

    /// `redis-cli`-free: one command over a raw socket, its first reply line.
    pub fn command(&self, args: &[&str]) -> String {
        command(self.port, args)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One command in RESP over a fresh connection; the whole reply (simple
/// replies and bulk strings are enough for the tests).
pub fn command(port: u16, args: &[&str]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `redis-server` shared by every test of this binary that only needs
/// one to exist: started once, stopped when the test process ends (a shell
/// beside it waits for the test process and then kills it, so no server is
/// left behind whatever way the tests end).
pub fn shared() -> &'static SharedRedis {
    static SHARED: OnceLock<SharedRedis> = OnceLock::new();
    SHARED.get_or_init(|| {
        let port = free_port();
        let args = arguments(port, &[]);
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        let script = format!(
            "{BINARY} {} & r=$!; while kill -0 {} 2>/dev/null; do sleep 0.2; done; kill $r",
            quoted.join(" "),
            std::process::id()
        );
        if Command::new(BINARY).arg("--version").output().is_err() {
            missing(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_ready(port, BINARY, false);
        SharedRedis {
            port,
            _watchdog: std::sync::Mutex::new(watchdog),
        }
    })
}

/// See [`shared`].
pub struct SharedRedis {
    pub port: u16,
    /// The shell that ends the server; it ends with the test process.
    _watchdog: std::sync::Mutex<Child>,
}

impl SharedRedis {
    /// `redis://127.0.0.1:PORT/DB`: tests keep apart by database number.
    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    pub fn command(&self, args: &[&str]) -> String {
        command(self.port, args)
    }
}

/// Where a test writes files of its own (TLS material for Redis).
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("redis-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
