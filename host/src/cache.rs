//! The on-disk cache of compiled guest components.
//!
//! Compiling the guest with Cranelift takes about half a second; loading a
//! precompiled artifact takes well under a millisecond. The artifact is keyed
//! by a SHA-256 of the wasm bytes and of the engine's compatibility hash
//! (wasmtime version, target, compiler flags, tunables), written once
//! atomically (temp file + rename) and memory-mapped afterwards. An unreadable
//! or incompatible artifact is recompiled and overwritten; a cache that cannot
//! be written only costs the compile time.
//!
//! Directory: `WARDEN_CACHE_DIR`, else `$XDG_CACHE_HOME/warden`, else
//! `$HOME/.cache/warden`, else `<temp dir>/warden-cache`.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::error::HostError;

/// How many compiled artifacts (one per guest build and engine config) to keep.
const KEEP_ARTIFACTS: usize = 8;

/// The wasmtime release this host is built against (pinned in Cargo.toml).
const WASMTIME_VERSION: &str = "48.0.8";

/// The cache directory from the environment (see the module docs).
pub fn default_dir() -> PathBuf {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("WARDEN_CACHE_DIR") {
        return dir;
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return dir.join("warden");
    }
    if let Some(home) = var("HOME") {
        return home.join(".cache").join("warden");
    }
    std::env::temp_dir().join("warden-cache")
}

/// The cache file for `wasm` compiled by `engine`, inside `dir`.
pub fn artifact_path(engine: &wasmtime::Engine, wasm: &[u8], dir: &Path) -> PathBuf {
    let mut hasher = ShaHasher(Sha256::new());
    hasher.0.update(b"warden-guest\0wasmtime ");
    hasher.0.update(WASMTIME_VERSION.as_bytes());
    hasher.0.update(b"\0");
    hasher.0.update(wasm);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let digest = hasher.0.finalize();
    let hex = hex::encode(digest);
    dir.join(format!("guest-{hex}.cwasm"))
}

/// Load the compiled component from the cache in `dir`, or compile `wasm`,
/// store the result there, and load that.
pub fn load_or_compile(
    engine: &wasmtime::Engine,
    wasm: &[u8],
    dir: &Path,
) -> Result<Component, HostError> {
    let path = artifact_path(engine, wasm, dir);
    if path.is_file() {
        match trusted_location(dir, &path)
            .and_then(|()| Ok(deserialize(engine, Artifact::File(&path))?))
        {
            Ok(component) => {
                tracing::debug!(path = %path.display(), "loaded compiled guest from cache");
                return Ok(component);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring cached guest, recompiling: {e:#}")
            }
        }
    }
    let started = std::time::Instant::now();
    let bytes = engine
        .precompile_component(wasm)
        .map_err(|e| HostError::Component(e.into()))?;
    tracing::debug!(elapsed = ?started.elapsed(), "compiled guest component");
    match write_atomically(dir, &path, &bytes) {
        Ok(()) => prune(dir, KEEP_ARTIFACTS),
        Err(e) => tracing::warn!(dir = %dir.display(), "could not cache the compiled guest: {e}"),
    }
    deserialize(engine, Artifact::Bytes(&bytes)).map_err(|e| HostError::Component(e.into()))
}

enum Artifact<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

/// The one place that turns precompiled machine code into a component (the
/// host's only `unsafe`, allowed here alone).
#[allow(unsafe_code)]
fn deserialize(engine: &wasmtime::Engine, artifact: Artifact<'_>) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires that precompiled bytes come from
    // `Engine::precompile_component` of a compatible engine and are not
    // tampered with, because it maps them as executable code. `Bytes` were
    // produced just now by `precompile_component` on this very engine. A
    // `File` was written by `write_atomically` below (temp file + rename, so
    // never observed half-written), under a name keyed by the wasm bytes and
    // this engine's compatibility hash, and `trusted_location` checked that
    // neither it nor its directory can be written by another user.
    // Wasmtime itself still verifies the header, version and engine
    // configuration, and refuses a mismatching artifact (we then recompile).
    unsafe {
        match artifact {
            Artifact::File(path) => Component::deserialize_file(engine, path),
            Artifact::Bytes(bytes) => Component::deserialize(engine, bytes),
        }
    }
}

/// Delete all but the `keep` most recently written artifacts in `dir`, so
/// that rebuilding the guest does not grow the cache without bound. Another
/// process still using a deleted artifact is unaffected (it is mapped), and
/// one about to load it recompiles.
fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut artifacts: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("guest-") && name.ends_with(".cwasm")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    artifacts.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, stale) in artifacts.into_iter().skip(keep) {
        let _ = std::fs::remove_file(stale);
    }
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    create_private_dir(dir)?;
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{:016x}",
        std::process::id(),
        u64::from_le_bytes(nonce)
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Refuse an artifact that another user could have planted or rewritten: the
/// directory and the file must not be group/world-writable and (on Linux)
/// must belong to the user running Warden.
#[cfg(unix)]
fn trusted_location(dir: &Path, file: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").ok().map(|m| m.uid());
    for path in [dir, file] {
        let meta = std::fs::metadata(path)?;
        if meta.mode() & 0o022 != 0 {
            anyhow::bail!("`{}` is writable by other users", path.display());
        }
        if let Some(uid) = me
            && meta.uid() != uid
        {
            anyhow::bail!("`{}` belongs to another user", path.display());
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn trusted_location(_dir: &Path, _file: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Feeds `Hash` implementations into SHA-256.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        // Only `write` is used: the digest is taken from the inner state.
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_newest_artifacts_only() {
        let dir = crate::scratch_dir("cache-test");
        for i in 0..5 {
            let file = dir.join(format!("guest-{i}.cwasm"));
            std::fs::write(&file, b"x").unwrap();
            let when =
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000 + i);
            std::fs::File::options()
                .write(true)
                .open(&file)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        std::fs::write(dir.join("other.txt"), b"x").unwrap();
        prune(&dir, 2);
        let mut left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["guest-3.cwasm", "guest-4.cwasm", "other.txt"]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn default_dir_is_never_empty() {
        assert!(!default_dir().as_os_str().is_empty());
    }
}
