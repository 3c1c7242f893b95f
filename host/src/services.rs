//! The services the host gives the guest: the WIT `host` imports (clock,
//! randomness, secrets) and a WASI context that grants nothing.
//!
//! Each guest instance owns one [`GuestState`] inside its wasmtime `Store`.
//! The guest sees no filesystem, no environment, no arguments and no network:
//! WASI p2 is linked only because a Rust std guest imports `wasi:cli` & co.
//! The one way in is the `host` interface below, and what it reveals is
//! decided here: the [`Clock`], OS randomness, and secrets referenced as
//! `env:NAME` or `file:PATH` by the policy the operator wrote.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::warden::policy::{host, types};
use crate::error::HostError;

/// The most random bytes one `random-bytes` call may ask for.
const MAX_RANDOM_BYTES: u32 = 64 * 1024;

/// Where the guest's wall clock comes from.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// Always this many seconds since the Unix epoch (reproducible decisions).
    Fixed(u64),
    /// A clock the caller sets and advances (tests of expiry).
    Manual(ManualClock),
}

impl Clock {
    /// `Fixed` when `WARDEN_NOW=<unix seconds>` is set, else `System`.
    ///
    /// Read once at startup; an invalid value is an error, not ignored.
    pub fn from_env() -> Result<Clock, HostError> {
        match std::env::var_os("WARDEN_NOW") {
            None => Ok(Clock::System),
            Some(value) => {
                let text = value.to_string_lossy();
                text.trim()
                    .parse::<u64>()
                    .map(Clock::Fixed)
                    .map_err(|_| HostError::InvalidNow(text.into_owned()))
            }
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            Clock::Fixed(secs) => *secs,
            Clock::Manual(clock) => clock.get(),
        }
    }
}

/// A settable clock shared between a test and the runtime it drives.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `secs`.
    pub fn at(secs: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(secs)))
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    pub fn set(&self, secs: u64) {
        self.0.store(secs, Ordering::SeqCst);
    }

    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

/// The guest's WASI wall clock follows the same [`Clock`], so that nothing in
/// the guest (e.g. a JWT library reading `SystemTime`) sees another time.
struct WasiWallClock(Clock);

impl HostWallClock for WasiWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        match &self.0 {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            other => Duration::from_secs(other.now()),
        }
    }
}

/// The last bytes a guest wrote to stderr or reported through
/// `guest-panicked` (a panic message, before the trap), kept so that a trap
/// can be reported with its cause. Writes never
/// fail and never grow it past its capacity: older bytes are dropped.
#[derive(Clone, Default)]
pub struct GuestOutput(Arc<Mutex<Vec<u8>>>);

/// How much of a guest's stderr is kept.
const GUEST_OUTPUT_TAIL: usize = 2048;

impl GuestOutput {
    fn push(&self, bytes: &[u8]) {
        let mut buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = &bytes[bytes.len().saturating_sub(GUEST_OUTPUT_TAIL)..];
        let overflow = (buf.len() + bytes.len()).saturating_sub(GUEST_OUTPUT_TAIL);
        buf.drain(..overflow);
        buf.extend_from_slice(bytes);
    }

    /// What was written, as one line: the panic message without Rust's
    /// backtrace hint, truncated.
    pub fn summary(&self) -> Option<String> {
        let buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&buf);
        let line = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect::<Vec<_>>()
            .join(" ");
        (!line.is_empty()).then(|| line.chars().take(300).collect())
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(GUEST_OUTPUT_TAIL)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The time budget of the guest call in progress.
///
/// A budget is CPU time spent by the guest call, checked at every epoch
/// tick: the engine's ticker advances the epoch (every millisecond by
/// default), each store's deadline is always the next tick, and the epoch
/// callback — which runs on the calling thread — reads the thread's CPU
/// clock. CPU time rather than wall-clock time, so that a call descheduled
/// on an overloaded machine is not failed for the scheduler's delay; a
/// wall-clock backstop of [`WALL_CLOCK_BACKSTOP`] × the budget still bounds
/// every call. Host work done for the call (hashing a presented secret) is
/// not charged to it; it moves the backstop by at most [`MAX_HOST_WORK`].
///
/// Starting a call reads no clock but the (vDSO) monotonic one: reading the
/// thread's CPU clock is a system call, and most calls end before the first
/// tick. At the first tick the call is charged the wall-clock time it has
/// run so far, but at most half its budget (it cannot have run much longer
/// on the CPU: wasm checks the epoch continually, and the ticker advances it
/// every millisecond), and from then on exactly the CPU time it uses. A call
/// therefore uses at most about 1.5× its budget of CPU time while the ticker
/// thread runs on time (more if the ticker itself is starved), and never
/// more than the wall-clock backstop in any case.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallBudget {
    started: Instant,
    /// The thread's CPU clock at the first tick (None before it, or when the
    /// OS has no such clock) and what was charged for the time before it.
    cpu_base: Option<Duration>,
    charged_before: Duration,
    /// Whether the first tick has been seen.
    ticked: bool,
    budget: Duration,
    /// CPU and wall-clock time of host work the call is not charged for.
    excluded: Duration,
    excluded_wall: Duration,
}

/// A call past this many times its budget in wall-clock time is interrupted
/// whatever CPU time it used: with the default 10 ms budget every call ends
/// within 40 ms (plus one tick) however loaded the machine is. A decision
/// takes microseconds of CPU, so only a call starved of the CPU for tens of
/// milliseconds meets it — and then fails closed.
pub const WALL_CLOCK_BACKSTOP: u32 = 4;

/// The most host work (wall-clock) one call may be excused for.
pub const MAX_HOST_WORK: Duration = Duration::from_secs(2);

impl CallBudget {
    fn new(budget: Duration) -> Self {
        CallBudget {
            started: Instant::now(),
            cpu_base: None,
            charged_before: Duration::ZERO,
            ticked: false,
            budget,
            excluded: Duration::ZERO,
            excluded_wall: Duration::ZERO,
        }
    }

    /// Do not charge the call for host work done on its behalf: `cpu` of CPU
    /// time over `wall` of wall-clock time.
    pub(crate) fn exclude(&mut self, cpu: Duration, wall: Duration) {
        self.excluded = self.excluded.saturating_add(cpu);
        self.excluded_wall = self.excluded_wall.saturating_add(wall).min(MAX_HOST_WORK);
    }

    /// Called by the epoch callback: go on for another tick, or interrupt.
    pub(crate) fn check(&mut self) -> UpdateDeadline {
        let wall = self.started.elapsed();
        let cpu = thread_cpu_time();
        if !self.ticked {
            self.ticked = true;
            // Charge the time run so far (host work excepted), at most half
            // the budget; CPU time is measured exactly from here on.
            self.charged_before = wall.saturating_sub(self.excluded_wall).min(self.budget / 2);
            self.cpu_base = cpu;
            self.excluded = Duration::ZERO;
        }
        let used = match (self.cpu_base, cpu) {
            (Some(base), Some(now)) => self
                .charged_before
                .saturating_add(now.saturating_sub(base))
                .saturating_sub(self.excluded),
            _ => wall.saturating_sub(self.excluded),
        };
        let backstop = self
            .budget
            .saturating_mul(WALL_CLOCK_BACKSTOP)
            .saturating_add(self.excluded_wall);
        if used >= self.budget || wall >= backstop {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Continue(1)
        }
    }
}

/// CPU time used by the calling thread, where the OS tells it.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd"
))]
fn thread_cpu_time() -> Option<Duration> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Some(Duration::new(
        u64::try_from(t.tv_sec).ok()?,
        u32::try_from(t.tv_nsec).ok()?,
    ))
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd"
)))]
fn thread_cpu_time() -> Option<Duration> {
    None
}

/// The secrets one policy's instances have resolved (`env:`/`file:`
/// references), shared by all of them: the first instance reads a secret,
/// every later one — built after a trap or when the pool runs dry — gets the
/// same bytes. A changed key file therefore never splits a running policy
/// into instances that sign with different keys; a reload (new policy
/// runtime, new snapshot) reads them afresh.
#[derive(Clone, Default)]
pub struct SecretSnapshot(Arc<Mutex<std::collections::HashMap<String, Option<Vec<u8>>>>>);

impl SecretSnapshot {
    fn resolve(&self, reference: &str) -> Option<Vec<u8>> {
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

/// Everything one guest instance's `Store` holds.
pub struct GuestState {
    clock: Clock,
    secrets: SecretSnapshot,
    pub(crate) call: CallBudget,
    pub(crate) stderr: GuestOutput,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: TrackedLimits,
}

impl GuestState {
    /// A state whose memory may grow to `memory_limit` bytes, resolving
    /// secrets through `secrets`.
    pub fn new(clock: Clock, memory_limit: usize, secrets: SecretSnapshot) -> Self {
        let stderr = GuestOutput::default();
        let mut wasi = WasiCtx::builder();
        // Grant nothing: no preopens, env or args are added, and sockets are
        // switched off explicitly. stdout is a sink; stderr's tail is kept
        // for error reports.
        wasi.stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(WasiWallClock(clock.clone()));
        let limits = TrackedLimits {
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_limit)
                .trap_on_grow_failure(true)
                .build(),
            peak_memory: 0,
        };
        GuestState {
            clock,
            secrets,
            call: CallBudget::new(Duration::ZERO),
            stderr,
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits,
        }
    }
}

/// The store's limits, remembering the largest linear memory the guest
/// grew to (for [`crate::RuntimeStats::peak_memory`]).
pub(crate) struct TrackedLimits {
    limits: StoreLimits,
    pub(crate) peak_memory: usize,
}

impl wasmtime::ResourceLimiter for TrackedLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.peak_memory = self.peak_memory.max(desired);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// Give the next guest call on `store` `budget` of CPU time (checked at every
/// epoch tick, see [`CallBudget`]; zero interrupts the call at its first check).
pub(crate) fn begin_call(store: &mut wasmtime::Store<GuestState>, budget: Duration) {
    store.data_mut().call = CallBudget::new(budget);
    store.set_epoch_deadline(if budget.is_zero() { 0 } else { 1 });
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for GuestState {}

impl host::Host for GuestState {
    fn now(&mut self) -> u64 {
        self.clock.now()
    }

    fn random_bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_BYTES {
            wasmtime::bail!("guest asked for {len} random bytes (at most {MAX_RANDOM_BYTES})");
        }
        let mut buf = vec![0; len as usize];
        // No randomness means no unguessable token ids: trap, fail closed.
        getrandom::fill(&mut buf)
            .map_err(|e| wasmtime::format_err!("the OS random source failed: {e}"))?;
        Ok(buf)
    }

    fn verify_secret_hash(&mut self, phc: String, presented: Vec<u8>) -> bool {
        // Natively, and off the guest's budget: the hash is slow on purpose.
        let before = thread_cpu_time();
        let started = Instant::now();
        let genuine = warden_engine::secret_hash::verify(&phc, &presented);
        let wall = started.elapsed();
        let cpu = match (before, thread_cpu_time()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => wall,
        };
        self.call.exclude(cpu, wall);
        genuine
    }

    fn guest_panicked(&mut self, message: String) {
        // Kept with the stderr tail: the trap that follows is reported with it.
        self.stderr.push(message.as_bytes());
        self.stderr.push(b"\n");
    }

    fn secret(&mut self, reference: String) -> Option<Vec<u8>> {
        let value = self.secrets.resolve(&reference);
        if value.is_none() {
            // The reference names where a secret lives, never the secret itself.
            tracing::warn!(reference = %reference, "secret not available");
        }
        value
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
        let dir = std::env::temp_dir().join(format!("warden-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
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

    #[test]
    fn guest_output_keeps_a_bounded_tail() {
        let out = GuestOutput::default();
        assert_eq!(out.summary(), None);
        out.push(b"\nthread '<unnamed>' panicked at src/x.rs:1:2:\nboom\nnote: run with `RUST_BACKTRACE=1` to see\n");
        assert_eq!(
            out.summary().unwrap(),
            "thread '<unnamed>' panicked at src/x.rs:1:2: boom"
        );
        out.push(&vec![b'a'; 5000]);
        assert_eq!(out.0.lock().unwrap().len(), GUEST_OUTPUT_TAIL);
        assert_eq!(out.summary().unwrap().len(), 300);
    }

    /// Burn `cpu` of this thread's CPU time.
    fn spin(cpu: Duration) {
        let start = thread_cpu_time().unwrap();
        while thread_cpu_time().unwrap().saturating_sub(start) < cpu {
            std::hint::black_box(0u64);
        }
    }

    #[test]
    fn budgets_charge_cpu_time_not_waiting() {
        let ms = Duration::from_millis;
        // Waiting before the first tick is charged at most half the budget.
        let mut b = CallBudget::new(ms(10));
        std::thread::sleep(ms(30));
        assert!(matches!(b.check(), UpdateDeadline::Continue(_)));
        // Then CPU time counts exactly: 6 ms more is past the budget.
        spin(ms(6));
        assert!(matches!(b.check(), UpdateDeadline::Interrupt));

        // A call that runs on the CPU is interrupted once it used its budget.
        let mut b = CallBudget::new(ms(10));
        spin(ms(2));
        assert!(matches!(b.check(), UpdateDeadline::Continue(_)));
        spin(ms(4));
        assert!(matches!(b.check(), UpdateDeadline::Continue(_)));
        spin(ms(5));
        assert!(matches!(b.check(), UpdateDeadline::Interrupt));

        // Host work is excused; the wall-clock backstop is not.
        let mut b = CallBudget::new(ms(10));
        b.exclude(ms(50), ms(50));
        assert!(matches!(b.check(), UpdateDeadline::Continue(_)));
        let mut b = CallBudget::new(ms(5));
        std::thread::sleep(ms(5 * u64::from(WALL_CLOCK_BACKSTOP)));
        assert!(matches!(b.check(), UpdateDeadline::Interrupt));
    }

    #[test]
    fn clocks() {
        assert_eq!(Clock::Fixed(42).now(), 42);
        let m = ManualClock::at(10);
        let c = Clock::Manual(m.clone());
        m.advance(5);
        assert_eq!(c.now(), 15);
        assert!(Clock::System.now() > 1_700_000_000);
    }
}
