//! Clients and servers made by others, installed from their registries once
//! per test binary into the target directory: Python packages in a venv
//! (PyPI), Node packages in a folder (npm). A missing `python3`/`npm` or a
//! failed install fails the test that needs it, loudly, with the reason.
#![allow(dead_code)] // each suite uses part of it
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Python packages the suites use, pinned.
pub const PYTHON_PACKAGES: &[&str] = &[
    "PyJWT[crypto]==2.15.1",
    "Authlib==1.9.10",
    "grpcio==1.85.3",
    "websockets==17.4",
    "requests-oauthlib==2.0.0",
    "oauthlib==4.0.1",
    "requests==2.34.2",
];
/// Node packages the suites use, pinned.
pub const NODE_PACKAGES: &[&str] = &["jose@6.2.17"];

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// The scripts beside this file.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/support/peers")
        .join(name)
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The venv's `python`, with [`PYTHON_PACKAGES`] installed (once: a marker
/// file names what was installed).
pub fn python() -> PathBuf {
    static ONCE: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut done = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = &*done {
        return p.clone();
    }
    let venv = tmp().join("peers-venv");
    let python = venv.join("bin/python");
    let marker = venv.join("installed.txt");
    let want = PYTHON_PACKAGES.join("\n");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(want.as_str()) {
        let _ = std::fs::remove_dir_all(&venv);
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        );
        run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(PYTHON_PACKAGES),
            "pip install",
        );
        std::fs::write(&marker, &want).unwrap();
    }
    *done = Some(python.clone());
    python
}

/// A folder whose `node_modules` holds [`NODE_PACKAGES`] (installed once).
pub fn node_modules() -> PathBuf {
    static ONCE: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut done = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = &*done {
        return p.clone();
    }
    let dir = tmp().join("peers-node");
    let marker = dir.join("installed.txt");
    let want = NODE_PACKAGES.join("\n");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(want.as_str()) {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("package.json"),
            r#"{"private":true,"type":"module"}"#,
        )
        .unwrap();
        run(
            Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund"])
                .args(NODE_PACKAGES)
                .current_dir(&dir),
            "npm install",
        );
        std::fs::write(&marker, &want).unwrap();
    }
    *done = Some(dir.clone());
    dir
}

/// What a verifier printed: the claims (JSON) it accepted, or its error.
pub fn verify_with_pyjwt(
    jwks_url: &str,
    token: &str,
    alg: &str,
    issuer: &str,
) -> Result<serde_json::Value, String> {
    let out = Command::new(python())
        .arg(script("verify_jwt.py"))
        .args([jwks_url, token, alg, issuer])
        .output()
        .unwrap();
    verdict(out)
}

/// As [`verify_with_pyjwt`], with npm's `jose`.
pub fn verify_with_jose(
    jwks_url: &str,
    token: &str,
    alg: &str,
    issuer: &str,
) -> Result<serde_json::Value, String> {
    let dir = node_modules();
    let script_copy = dir.join("verify_jwt.mjs");
    std::fs::copy(script("verify_jwt.mjs"), &script_copy).unwrap();
    let out = Command::new("node")
        .arg(&script_copy)
        .args([jwks_url, token, alg, issuer])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("node: {e}"));
    verdict(out)
}

fn verdict(out: std::process::Output) -> Result<serde_json::Value, String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        serde_json::from_str(stdout.trim()).map_err(|e| format!("{e}: {stdout}"))
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// A server made by others (a script beside this file, run in the venv)
/// that prints its port on its first line; killed on drop.
pub struct PeerServer {
    child: std::process::Child,
    pub port: u16,
}

impl PeerServer {
    /// `python SCRIPT server`, once it has printed its port.
    pub fn start(script_name: &str) -> PeerServer {
        use std::io::BufRead;
        let mut child = Command::new(python())
            .arg(script(script_name))
            .arg("server")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{script_name}: {e}"));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{script_name} server printed {line:?}, not its port"));
        PeerServer { child, port }
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `python SCRIPT ARGS…`: the one JSON line it printed.
pub fn peer_json(script_name: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(script(script_name))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script_name} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}
