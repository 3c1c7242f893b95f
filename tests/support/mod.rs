//! The harness the end-to-end suites share: the real `warden` binary started
//! on a free loopback port, its logs captured to a file, and a real HTTP
//! client (reqwest) to talk to it.
#![allow(dead_code)] // each suite uses part of it
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use reqwest::blocking::{Client, Response};

pub fn warden() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    // Share one compiled-component cache between all tests of this run.
    cmd.env(
        "WARDEN_CACHE_DIR",
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("warden-cache"),
    );
    cmd.env_remove("WARDEN_NOW");
    cmd
}

/// The path of `policies/<name>`.
pub fn policy(name: &str) -> String {
    format!("{}/../policies/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The decoded value of `name` in `uri`'s query (or fragment, where the
/// implicit grant puts its token): as a client reads a redirect. Warden, as
/// Kong, percent-encodes even `-` in what it puts there.
pub fn redirect_param(uri: &str, name: &str) -> Option<String> {
    let params = uri.split_once(['?', '#'])?.1;
    form_urlencoded::parse(params.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A running `warden serve`, killed on drop.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// `https://127.0.0.1:PORT`, when started with `--tls-listen`.
    pub https: Option<String>,
    /// `http://127.0.0.1:PORT` of the Admin API, when started with `--admin`.
    pub admin: Option<String>,
    /// `http://127.0.0.1:PORT/metrics`, when started with `--metrics`.
    pub metrics: Option<String>,
    pub client: Client,
    /// The server's stderr (its logs).
    pub log: PathBuf,
}

impl Server {
    /// `warden serve` on a free loopback port; `policy` None = the embedded demo.
    pub fn start(policy_file: Option<&str>, now: Option<u64>) -> Server {
        let mut args = Vec::new();
        if let Some(p) = policy_file {
            args.extend(["--policy".to_string(), policy(p)]);
        }
        let now = now.map(|n| n.to_string());
        let env: Vec<(&str, &str)> = now.iter().map(|n| ("WARDEN_NOW", n.as_str())).collect();
        Server::launch(&args, &env)
    }

    /// `warden serve --listen 127.0.0.1:0 ARGS…` with `env` added.
    pub fn launch<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Server {
        let mut cmd = warden();
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("serve-{}-{n}.log", std::process::id()));
        let mut child = cmd
            .env("RUST_LOG", "info,warden=debug,warden_host=debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("warden starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut address = || {
            let mut line = String::new();
            stdout
                .read_line(&mut line)
                .expect("warden prints its address");
            line.trim()
                .strip_prefix("warden listening on ")
                .unwrap_or_else(|| panic!("unexpected line {line:?}"))
                .to_string()
        };
        let base = address();
        let tls = args.iter().any(|a| a.as_ref() == "--tls-listen");
        let https = tls.then(&mut address);
        let mut line_after = |flag: &str, prefix: &str| {
            args.iter().any(|a| a.as_ref() == flag).then(|| {
                let mut line = String::new();
                stdout
                    .read_line(&mut line)
                    .unwrap_or_else(|e| panic!("warden prints {prefix}…: {e}"));
                line.trim()
                    .strip_prefix(prefix)
                    .unwrap_or_else(|| panic!("unexpected line {line:?}, not {prefix}…"))
                    .to_string()
            })
        };
        let metrics = line_after("--metrics", "warden metrics on ");
        let admin = line_after("--admin", "warden admin listening on ");
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Server {
            child,
            base,
            https,
            admin,
            metrics,
            client,
            log,
        }
    }

    pub fn get(&self, host: &str, path: &str, token: Option<&str>) -> Response {
        let mut req = self
            .client
            .get(format!("{}{path}", self.base))
            .header("host", host);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().expect("request completes")
    }

    /// A token from the token endpoint by GET.
    pub fn token(&self, host: &str, path: &str, (id, secret): (&str, &str)) -> String {
        let url =
            format!("{path}?grant_type=client_credentials&client_id={id}&client_secret={secret}");
        let resp = self.get(host, &url, None);
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }
}

impl Server {
    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// Assert the logs hold none of `secrets` (client secrets, whole tokens).
    pub fn assert_logs_keep(&self, secrets: &[&str]) {
        let logs = self.logs();
        assert!(
            logs.contains("reply") || logs.contains("forward"),
            "the server logs its decisions:\n{logs}"
        );
        for secret in secrets {
            assert!(
                !logs.contains(secret),
                "a secret or token reached the logs:\n{logs}"
            );
        }
    }
}

impl Server {
    /// `https://localhost:PORT` of the `--tls-listen` listener (the name
    /// the test certificates are made for).
    pub fn https_localhost(&self) -> String {
        let https = self.https.as_deref().expect("started with --tls-listen");
        let port = https.rsplit(':').next().unwrap();
        format!("https://localhost:{port}")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sets its flag when dropped — also while a failing test unwinds, so that
/// load threads in a `std::thread::scope` stop and the scope can end.
pub struct StopOnDrop<'a>(pub &'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM
/// files: (certificate, key, the certificate's PEM for clients).
pub fn certificate(name: &str) -> (PathBuf, PathBuf, String) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    // One pair per call: tests of one binary run in parallel.
    static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (cert, key) = (
        dir.join(format!("{name}-{}-{n}.crt", std::process::id())),
        dir.join(format!("{name}-{}-{n}.key", std::process::id())),
    );
    let pem = made.cert.pem();
    std::fs::write(&cert, &pem).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key, pem)
}

/// `warden serve` with an HTTPS listener too (a certificate made here),
/// `extra` arguments and `env`; the certificate's PEM for clients.
pub fn tls_server(extra: &[&str], env: &[(&str, &str)]) -> (Server, String) {
    let (cert, key, pem) = certificate("tls");
    let mut args: Vec<std::ffi::OsString> = vec![
        "--tls-listen".into(),
        "127.0.0.1:0".into(),
        "--tls-cert".into(),
        cert.into(),
        "--tls-key".into(),
        key.into(),
    ];
    args.extend(extra.iter().map(Into::into));
    (Server::launch(&args, env), pem)
}

/// A TLS client trusting only `pem`; `h1`: HTTP/1.1 only (else h2 by ALPN).
pub fn tls_client(pem: &str, h1: bool) -> Client {
    let builder = Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    let builder = if h1 { builder.http1_only() } else { builder };
    builder.build().unwrap()
}
