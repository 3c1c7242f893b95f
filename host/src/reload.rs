//! Reloading a running gateway's policy from its file.
//!
//! `warden serve --policy FILE` reloads on `SIGHUP`, and with `--watch` also
//! when the file changes. A [`Reloader`] owns that decision: it remembers the
//! file's metadata and a SHA-256 of the text it last compiled, so that a
//! touched-but-identical file is not recompiled. A watched file is read only
//! once its size and modification time have stayed the same for one whole
//! poll interval, and is read again if they change while it is read: a
//! writer that truncates and then writes (`cp`, `>`) is never caught in
//! between, where an empty file would compile into a policy that knows no
//! client. A writer stalled between the two (a loaded machine) can still
//! leave an empty file for a while, so `--watch` never loads an empty file;
//! SIGHUP does, if that is really meant. (Renaming a finished file over the
//! old one is atomic and best.)
//! A changed file is compiled
//! into a fresh [`PolicyRuntime`] on the same guest component (and prewarmed)
//! before anything is swapped: a file that does not compile — including one
//! caught half-written — leaves the running policy in place, and the next
//! change is tried again. Nothing here runs on the request path.
//!
//! The text served is the file's followed by the Admin API's consumers (a
//! generated section, [`Reloader::recompose`]): a file reload keeps them,
//! and a change through the Admin API keeps the file's last good text.
//!
//! Compiling a large policy takes seconds of CPU per instance; it runs on a
//! thread of its own at a lower priority ([`in_background`]), so that the
//! workers deciding requests meanwhile are not starved of the CPU (their
//! calls have a deadline).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::component::GuestComponent;
use crate::error::LoadError;
use crate::runtime::{PolicyRuntime, RuntimeOptions};

/// What one reload attempt did.
#[derive(Debug)]
pub enum Reload {
    /// The file has the text already being served.
    Unchanged,
    /// The file changed and compiled: serve this from now on.
    Reloaded(Arc<PolicyRuntime>),
    /// The file changed but could not be read or compiled; the message (the
    /// rendered diagnostics, or the I/O error) says why. Keep serving.
    Failed(String),
}

/// Watches one policy file and compiles it again when it changes.
#[derive(Debug)]
pub struct Reloader {
    /// `None`: the embedded demo (only the Admin API's part changes).
    path: Option<PathBuf>,
    /// The file's text last compiled, and the generated part after it.
    source: String,
    suffix: String,
    name: String,
    component: Arc<GuestComponent>,
    options: RuntimeOptions,
    prewarm: usize,
    /// The file's stamp when it was last read (outer `None`: not read yet;
    /// inner `None`: the file was missing).
    stamp: Option<Option<Stamp>>,
    /// A change seen on the last poll, waiting to be seen again unchanged.
    pending: Option<Option<Stamp>>,
    digest: [u8; 32],
    generation: u64,
}

/// What changes when a file is written: checked before reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl Reloader {
    /// A reloader for `path`, whose text `served` is being served now.
    /// New runtimes use `component` and `options` and get `prewarm` ready
    /// instances before they are handed out.
    pub fn new(
        path: &Path,
        served: &str,
        component: Arc<GuestComponent>,
        options: RuntimeOptions,
        prewarm: usize,
    ) -> Self {
        Reloader {
            path: Some(path.to_owned()),
            source: served.to_owned(),
            suffix: String::new(),
            name: path.display().to_string(),
            component,
            options,
            prewarm,
            // Unknown: the first poll reads the file and compares its text
            // with what is served (it may have changed during startup).
            stamp: None,
            pending: None,
            digest: Sha256::digest(served.as_bytes()).into(),
            generation: 1,
        }
    }

    /// A reloader for a policy that has no file (`name`, text `served`):
    /// `poll` never finds a change; only [`Self::recompose`] compiles.
    pub fn fixed(
        name: &str,
        served: &str,
        component: Arc<GuestComponent>,
        options: RuntimeOptions,
        prewarm: usize,
    ) -> Self {
        let mut r = Reloader::new(Path::new(name), served, component, options, prewarm);
        r.path = None;
        r
    }

    /// Compile the file's last good text followed by `suffix` (the Admin
    /// API's consumers); with `keep`, serve that from now on (later file
    /// reloads keep `suffix`), else only check that it compiles.
    pub fn recompose(&mut self, suffix: &str, keep: bool) -> Reload {
        if keep && suffix == self.suffix {
            // Being served already (a node hears its own announcements).
            return Reload::Unchanged;
        }
        let text = format!("{}{suffix}", self.source);
        match self.compile(&text, keep) {
            Reload::Reloaded(runtime) if keep => {
                self.suffix = suffix.to_owned();
                Reload::Reloaded(runtime)
            }
            other => other,
        }
    }

    /// Compile `text` (prewarmed when it is to be served).
    fn compile(&mut self, text: &str, serve: bool) -> Reload {
        let loaded = PolicyRuntime::load_with(
            Arc::clone(&self.component),
            &self.name,
            text,
            self.options.clone(),
        );
        match loaded {
            Ok(runtime) => {
                if serve {
                    if let Err(e) = runtime.prewarm(self.prewarm) {
                        return Reload::Failed(format!("{}: {e}", self.name));
                    }
                    self.generation += 1;
                }
                Reload::Reloaded(Arc::new(runtime))
            }
            Err(LoadError::Invalid { diagnostics, .. }) => Reload::Failed(
                diagnostics
                    .iter()
                    .map(|d| d.render(&self.name, text))
                    .collect(),
            ),
            Err(LoadError::Host(e)) => Reload::Failed(format!("{}: {e}", self.name)),
        }
    }

    /// How many policies have been served (1 = only the first).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Reload if the file has changed (size or modification time) and then
    /// stayed unchanged since the previous poll; with `force` (SIGHUP), read
    /// and compile it at once, even unchanged (to pick up rotated secrets).
    /// Blocks while compiling.
    pub fn poll(&mut self, force: bool) -> Reload {
        let Some(path) = self.path.clone() else {
            return Reload::Unchanged;
        };
        let now = stamp(&path);
        if !force {
            if self.stamp.as_ref() == Some(&now) {
                self.pending = None;
                return Reload::Unchanged;
            }
            if self.pending.as_ref() != Some(&now) {
                // Changed since the last poll: maybe still being written.
                self.pending = Some(now);
                return Reload::Unchanged;
            }
        }
        self.pending = None;
        let source = match std::fs::read_to_string(&path) {
            Ok(source) => source,
            Err(e) => {
                // Reported once; tried again when the file changes.
                self.stamp = Some(now);
                return Reload::Failed(format!("cannot read {}: {e}", self.name));
            }
        };
        if stamp(&path) != now {
            // Written to while we read: look again on the next poll.
            return Reload::Unchanged;
        }
        if !force && source.trim().is_empty() {
            // Most likely truncated by a writer that has not written yet.
            return Reload::Unchanged;
        }
        self.stamp = Some(now);
        let digest: [u8; 32] = Sha256::digest(source.as_bytes()).into();
        // SIGHUP recompiles even identical text: the secrets and keys it
        // reads from the environment or files may have changed.
        if digest == self.digest && !force {
            return Reload::Unchanged;
        }
        let text = format!("{source}{}", self.suffix);
        let outcome = self.compile(&text, true);
        if matches!(outcome, Reload::Reloaded(_)) {
            self.digest = digest;
            self.source = source;
        }
        outcome
    }
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// How much lower than the workers' a reload thread's priority is (`nice`).
const BACKGROUND_NICENESS: i32 = 10;

/// Run `work` on a thread of its own whose priority is lowered by
/// [`BACKGROUND_NICENESS`] (where the OS allows it: else at the normal
/// priority, said once in the log), and await its result. `None` if it
/// panicked.
pub async fn in_background<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("warden-reload".into())
        .spawn(move || {
            lower_priority();
            let _ = done.send(work());
        });
    match spawned {
        Ok(_) => result.await.ok(),
        Err(e) => {
            tracing::error!("cannot start a reload thread: {e}");
            None
        }
    }
}

/// Lower the calling thread's priority (on Linux `setpriority` of a thread
/// id affects that thread alone).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let now = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
        if let Err(e) = rustix::process::setpriority_process(Some(tid), now + BACKGROUND_NICENESS) {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| tracing::warn!("reloads compile at the workers' priority: {e}"));
        }
    }
}
