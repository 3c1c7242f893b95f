//! Builds the Warden guest component so that the host can embed it.
//!
//! The host embeds `warden_guest.wasm` with `include_bytes!`. So that `cargo
//! build`/`cargo test`/`cargo run` work from a fresh clone with no extra step
//! (beyond `rustup target add wasm32-wasip2`), this script runs a nested
//! `cargo build -p warden-guest --target wasm32-wasip2 --release` with its own
//! target directory (`<workspace>/target/guest`: the outer build holds the lock
//! on its own target directory) and an environment cleaned of everything the
//! outer build set for itself (flags, wrappers, target dir, build target), then
//! copies the component into `OUT_DIR`.
//!
//! It builds a second component too, with the guest's `fault-injection`
//! feature, for the guest-fault tests only: its path reaches the host's tests
//! as `env!("WARDEN_FAULT_GUEST_WASM")`; the binary never embeds it. Both
//! builds share the nested target directory and every dependency's artifacts;
//! switching the feature relinks the guest crate itself (seconds), so each
//! run of this script costs two short guest builds once the deps are built.
//!
//! `WARDEN_GUEST_WASM=/path/to/warden_guest.wasm` skips the nested builds and
//! embeds that file instead (for packagers and cross builds); the fault tests
//! then need `WARDEN_FAULT_GUEST_WASM=/path/to/faulty.wasm` as well, and say so.

// A build script reports a broken environment by failing loudly, with the
// reason: `expect` is its error message.
#![allow(clippy::expect_used)]

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const GUEST_TARGET: &str = "wasm32-wasip2";
const GUEST_FILE: &str = "warden_guest.wasm";
const FAULT_GUEST_FILE: &str = "warden_guest_faults.wasm";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("host/ sits inside the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dest = out_dir.join(GUEST_FILE);
    let fault_dest = out_dir.join(FAULT_GUEST_FILE);
    println!(
        "cargo:rustc-env=WARDEN_FAULT_GUEST_WASM={}",
        fault_dest.display()
    );

    println!("cargo:rerun-if-env-changed=WARDEN_GUEST_WASM");
    println!("cargo:rerun-if-env-changed=WARDEN_FAULT_GUEST_WASM");
    if let Some(prebuilt) = env::var_os("WARDEN_GUEST_WASM") {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        copy(&prebuilt, &dest);
        match env::var_os("WARDEN_FAULT_GUEST_WASM") {
            Some(faulty) => {
                let faulty = PathBuf::from(faulty);
                println!("cargo:rerun-if-changed={}", faulty.display());
                copy(&faulty, &fault_dest);
            }
            // An empty file: the fault tests fail and say what to set.
            None => write_empty(&fault_dest),
        }
        return;
    }

    for input in [
        "engine/src",
        "engine/Cargo.toml",
        "guest/src",
        "guest/Cargo.toml",
        "wit",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }

    let guest_target_dir = workspace.join("target").join("guest");
    let built = guest_target_dir
        .join(GUEST_TARGET)
        .join("release")
        .join(GUEST_FILE);
    build_guest(&workspace, &guest_target_dir, Some("fault-injection"));
    copy(&built, &fault_dest);
    build_guest(&workspace, &guest_target_dir, None);
    copy(&built, &dest);
}

/// `cargo build -p warden-guest --target wasm32-wasip2 --release` with
/// `features`, in `target_dir`, with a cleaned environment.
fn build_guest(workspace: &Path, target_dir: &Path, features: Option<&str>) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "-p",
            "warden-guest",
            "--target",
            GUEST_TARGET,
            "--release",
        ])
        .arg("--target-dir")
        .arg(target_dir);
    if let Some(features) = features {
        cmd.args(["--features", features]);
    }
    // Cargo reads directives from a build script's stdout: keep the nested
    // build's output on stderr only (shown when this script fails).
    cmd.stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .env_clear()
        .envs(env::vars_os().filter(|(k, _)| keep_env(k)))
        // The guest alone is built with whole-program optimisation: it keeps
        // the component under its 1 MiB budget (1,070 KB without, 826 KB
        // with, 2026-12-01) at the cost of a slower guest build, which the
        // host's own release profile does not pay.
        .env("CARGO_PROFILE_RELEASE_LTO", "fat")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1");

    let status = match cmd.status() {
        Ok(status) => status,
        Err(e) => fail(&format!(
            "could not run `{}`: {e}",
            Path::new(&cargo).display()
        )),
    };
    if !status.success() {
        let features = features.map_or(String::new(), |f| format!(" --features {f}"));
        fail(&format!(
            "building the guest component failed ({status}).\n\
             Is the wasm32-wasip2 target installed? Run `rustup target add {GUEST_TARGET}`.\n\
             The nested build was: cargo build -p warden-guest --target {GUEST_TARGET} --release{features} --target-dir {}",
            target_dir.display()
        ));
    }
}

/// Whether an environment variable of the outer build may reach the nested one.
///
/// An allow-list rather than a deny-list: the outer cargo sets dozens of
/// `CARGO_*`, `RUSTC*`, `DEP_*`, `TARGET`, `PROFILE`… variables for this build
/// script (and `CARGO_ENCODED_RUSTFLAGS`, `RUSTC_WRAPPER`, `CARGO_TARGET_DIR`,
/// `CARGO_BUILD_TARGET` could come from the user for the *host* build); none of
/// them describes the guest build. What stays is what locates the toolchain,
/// the registry and the network.
fn keep_env(key: &std::ffi::OsStr) -> bool {
    let Some(key) = key.to_str() else {
        return false;
    };
    const EXACT: &[&str] = &[
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "TMPDIR",
        "TMP",
        "TEMP",
        "LANG",
        "LC_ALL",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "CARGO_HOME",
        "CARGO_BUILD_JOBS",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "all_proxy",
        // Windows needs these to run anything at all.
        "SystemRoot",
        "SYSTEMROOT",
        "USERPROFILE",
        "APPDATA",
        "LOCALAPPDATA",
        "ComSpec",
        "PATHEXT",
    ];
    const PREFIXES: &[&str] = &[
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_TERM_",
    ];
    EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        fail(&format!(
            "could not copy the guest component `{}` to `{}`: {e}",
            from.display(),
            to.display()
        ));
    }
}

fn write_empty(to: &Path) {
    if let Err(e) = std::fs::write(to, b"") {
        fail(&format!("could not write `{}`: {e}", to.display()));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    // `cargo::error` is not stable on every toolchain this might meet; a panic
    // fails the build and cargo shows the stderr above.
    panic!("warden-host build script: {message}");
}
