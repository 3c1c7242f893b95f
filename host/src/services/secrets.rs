//! Secrets a policy refers to instead of spelling them out (`env:NAME`,
//! `file:PATH`): resolved by the host, once per loaded policy, and shared by
//! all of its instances.

use std::sync::{Arc, Mutex};

/// The secrets one policy's instances have resolved (`env:`/`file:`
/// references), shared by all of them: the first instance reads a secret,
/// every later one — built after a trap or when the pool runs dry — gets the
/// same bytes. A changed key file therefore never splits a running policy
/// into instances that sign with different keys; a reload (new policy
/// runtime, new snapshot) reads them afresh.
#[derive(Clone, Default)]
pub struct SecretSnapshot(Arc<Mutex<std::collections::HashMap<String, Option<Vec<u8>>>>>);

impl SecretSnapshot {
    pub(super) fn resolve(&self, reference: &str) -> Option<Vec<u8>> {
        let mut known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        known
            .entry(reference.to_owned())
            .or_insert_with(|| resolve_secret(reference))
            .clone()
    }
}

impl std::fmt::Debug for SecretSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretSnapshot(<redacted>)")
    }
}

/// Resolve `env:NAME` (an environment variable) or `file:PATH` (a file, with
/// one trailing newline trimmed). Anything else, or a missing source, is `None`.
pub fn resolve_secret(reference: &str) -> Option<Vec<u8>> {
    if let Some(name) = reference.strip_prefix("env:") {
        if name.is_empty() || name.contains(['=', '\0']) {
            return None;
        }
        let value = std::env::var_os(name)?;
        Some(os_bytes(value))
    } else if let Some(path) = reference.strip_prefix("file:") {
        if path.is_empty() {
            return None;
        }
        let mut bytes = std::fs::read(path).ok()?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        Some(bytes)
    } else {
        None
    }
}

#[cfg(unix)]
fn os_bytes(value: std::ffi::OsString) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt;
    value.into_vec()
}

#[cfg(not(unix))]
fn os_bytes(value: std::ffi::OsString) -> Vec<u8> {
    value.to_string_lossy().into_owned().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_from_env_and_file() {
        let dir = crate::scratch_dir("secret");
        let file = dir.join("s");
        std::fs::write(&file, "hunter2\r\n").unwrap();
        assert_eq!(
            resolve_secret(&format!("file:{}", file.display())),
            Some(b"hunter2".to_vec())
        );
        std::fs::write(&file, "a\n\n").unwrap();
        assert_eq!(
            resolve_secret(&format!("file:{}", file.display())),
            Some(b"a\n".to_vec())
        );
        assert_eq!(resolve_secret("file:/nonexistent/warden"), None);
        assert_eq!(
            resolve_secret("env:WARDEN_TEST_SURELY_UNSET_VARIABLE"),
            None
        );
        assert_eq!(
            resolve_secret("env:PATH").is_some(),
            std::env::var_os("PATH").is_some()
        );
        assert_eq!(resolve_secret("vault:x"), None);
        assert_eq!(resolve_secret("env:"), None);
        std::fs::remove_dir_all(&dir).ok();
    }
}
