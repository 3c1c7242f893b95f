//! A real browser for end-to-end tests: chromedriver, started once per
//! test binary, and headless Chromium sessions driven over WebDriver with
//! `fantoccini` (behind a blocking API, so that tests can use the blocking
//! reqwest client beside it); and a loopback HTTP server standing in for an
//! OAuth client's redirect URI.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver, started once for the whole test binary: its URL.
pub fn chromedriver() -> &'static str {
    static DRIVER: OnceLock<(String, Mutex<Child>)> = OnceLock::new();
    let (url, _) = DRIVER.get_or_init(|| {
        for (path, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: these tests drive a real browser; install Debian's \
                 `{package}` (`apt-get install -y chromium chromium-driver`)"
            );
        }
        let port = free_port();
        let log = tmp(&format!("chromedriver-{}.log", std::process::id()));
        // The shell holds our end of its stdin: when this process exits (the
        // static is never dropped) `cat` sees EOF and chromedriver is ended.
        let child = Command::new("sh")
            .args([
                "-c",
                "\"$0\" --port=\"$1\" >\"$2\" 2>&1 & driver=$!; cat >/dev/null; kill $driver",
                CHROMEDRIVER,
                &port.to_string(),
                log.to_str().unwrap(),
            ])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{CHROMEDRIVER} did not listen on port {port} within 30 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        (url, Mutex::new(child))
    });
    url
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// A headless Chromium session (a fresh profile), ended on drop — also when
/// a test fails — so that no browser outlives its test.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: fantoccini::Client,
}

impl Browser {
    pub fn start() -> Browser {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile = tmp(&format!("chromium-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        let args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--ignore-certificate-errors",
            "--window-size=880,900",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect();
        let caps = json!({
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = rt
            .block_on(
                fantoccini::ClientBuilder::new(connector)
                    .capabilities(caps)
                    .connect(chromedriver()),
            )
            .unwrap_or_else(|e| panic!("chromedriver could not start {CHROMIUM}: {e}"));
        Browser { rt, client }
    }

    pub fn goto(&self, url: &str) {
        self.rt.block_on(self.client.goto(url)).unwrap();
    }

    pub fn url(&self) -> String {
        self.rt
            .block_on(self.client.current_url())
            .unwrap()
            .to_string()
    }

    pub fn source(&self) -> String {
        self.rt.block_on(self.client.source()).unwrap()
    }

    pub fn title(&self) -> String {
        self.rt.block_on(self.client.title()).unwrap()
    }

    pub fn fill(&self, css: &str, text: &str) {
        self.rt.block_on(async {
            let e = self.client.find(Locator::Css(css)).await.unwrap();
            e.clear().await.unwrap();
            e.send_keys(text).await.unwrap();
        });
    }

    pub fn click(&self, css: &str) {
        self.rt.block_on(async {
            let e = self.client.find(Locator::Css(css)).await.unwrap();
            e.click().await.unwrap();
        });
    }

    pub fn screenshot(&self) -> Vec<u8> {
        self.rt.block_on(self.client.screenshot()).unwrap()
    }

    /// Wait until the page's source holds `text` (a click that submits a
    /// form may return before the next page is in): that source.
    pub fn wait_for_text(&self, text: &str) -> String {
        self.wait_until(
            Self::source,
            |page| page.contains(text),
            |page| format!("the page at {} never showed {text:?}:\n{page}", self.url()),
        )
    }

    /// Wait until the browser is at a URL starting with `prefix`.
    pub fn wait_for_url(&self, prefix: &str) -> String {
        self.wait_until(
            Self::url,
            |url| url.starts_with(prefix),
            |url| format!("the browser is at {url}, not {prefix}…:\n{}", self.source()),
        )
    }

    /// Read `read` every 50 ms until `done` holds for it (that reading), for
    /// at most 15 s; then fail with `why` of the last reading.
    fn wait_until(
        &self,
        read: impl Fn(&Self) -> String,
        done: impl Fn(&str) -> bool,
        why: impl Fn(&str) -> String,
    ) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = read(self);
            if done(&now) {
                return now;
            }
            assert!(Instant::now() < deadline, "{}", why(&now));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.rt.block_on(self.client.clone().close());
    }
}

/// The client's redirect URI: a loopback HTTP server that answers every
/// request with a small page and records the request targets.
pub struct Callback {
    pub uri: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Callback {
    pub fn start() -> Callback {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let uri = format!(
            "http://127.0.0.1:{}/callback",
            listener.local_addr().unwrap().port()
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                if let Some(target) = line.split(' ').nth(1) {
                    log.lock().unwrap().push(target.to_string());
                }
                // The rest of the head.
                let mut rest = String::new();
                while reader.read_line(&mut rest).is_ok_and(|n| n > 2) {
                    rest.clear();
                }
                let page = "<!DOCTYPE html><title>callback</title><p>the client got its answer</p>";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                    page.len()
                );
            }
        });
        Callback { uri, seen }
    }

    pub fn targets(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}
