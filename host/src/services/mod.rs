//! The services the host gives the guest: the WIT `services` imports (clock,
//! randomness, secrets, secret hashes, panic reports), the `store` and
//! `keys` imports, and a WASI context that grants nothing. One module per
//! concern: [`clock`], [`budget`] (the call's CPU-time budget), [`secrets`],
//! [`output`] (what a failing guest said), [`store`], [`keys`] (the host's
//! signing keys).
//!
//! Each guest instance owns one [`GuestState`] inside its wasmtime `Store`.
//! The guest sees no filesystem, no environment, no arguments and no network:
//! WASI p2 is linked only because a Rust std guest imports `wasi:cli` & co.
//! The one way in is the `host` interface below, and what it reveals is
//! decided here: the [`Clock`], randomness seeded by the OS, and secrets referenced as
//! `env:NAME` or `file:PATH` by the policy the operator wrote.

mod budget;
mod clock;
mod jwks;
mod keys;
mod outbound;
mod output;
mod secrets;
mod store;

use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::warden::policy::{services, types};
pub(crate) use budget::CallBudget;
use budget::thread_cpu_time;
pub use budget::{MAX_HOST_WORK, WALL_CLOCK_BACKSTOP};
use clock::WasiWallClock;
pub use clock::{Clock, ManualClock};
pub use jwks::{JwksCache, MIN_REFETCH};
pub use keys::{SharedKeys, generate as generate_key, load_dir as load_keys};
pub use outbound::{Fetched, Outbound, OutboundError};
pub use output::GuestOutput;
pub use secrets::{SecretSnapshot, resolve_secret};
pub use store::{RedisStore, StateStore, StoreUrl};

/// The most random bytes one `random-bytes` call may ask for.
const MAX_RANDOM_BYTES: u32 = 64 * 1024;

/// Everything one guest instance's `Store` holds.
pub struct GuestState {
    clock: Clock,
    secrets: SecretSnapshot,
    store: StateStore,
    keys: SharedKeys,
    pub(crate) call: CallBudget,
    pub(crate) stderr: GuestOutput,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: TrackedLimits,
}

impl GuestState {
    /// A state whose memory may grow to `memory_limit` bytes, resolving
    /// secrets through `secrets`.
    pub fn new(
        clock: Clock,
        memory_limit: usize,
        secrets: SecretSnapshot,
        store: StateStore,
        keys: SharedKeys,
    ) -> Self {
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
            store,
            keys,
            call: CallBudget::new(Duration::ZERO),
            stderr,
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits,
        }
    }
}

impl GuestState {
    /// Run host work the guest call is not charged for (a password hash, a
    /// signature, a store round trip): its CPU and wall time move the call's
    /// budget and backstop, up to the budget's limit.
    pub(crate) fn native<T>(&mut self, work: impl FnOnce() -> T) -> T {
        let before = thread_cpu_time();
        let started = Instant::now();
        let out = work();
        let wall = started.elapsed();
        let cpu = match (before, thread_cpu_time()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => wall,
        };
        self.call.exclude(cpu, wall);
        out
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

impl services::Host for GuestState {
    fn now(&mut self) -> u64 {
        self.clock.now()
    }

    fn random_bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_BYTES {
            wasmtime::bail!("guest asked for {len} random bytes (at most {MAX_RANDOM_BYTES})");
        }
        let mut buf = vec![0; len as usize];
        // The thread's ChaCha12 generator, seeded from the OS and reseeded
        // every 64 KiB of output (rand's `ThreadRng`): no system call per
        // token id, which was 5 % of an issuance through the guest. If the OS
        // source fails on a reseed it panics, and `PolicyRuntime::call`
        // turns the panic into a failed call: no predictable bytes, fail closed.
        rand::fill(&mut buf[..]);
        Ok(buf)
    }

    fn verify_secret_hash(&mut self, phc: String, presented: Vec<u8>) -> bool {
        // Natively, and off the guest's budget: the hash is slow on purpose.
        self.native(|| warden_engine::verify_secret_hash(&phc, &presented))
    }

    fn hmac_sha256(&mut self, key: Vec<u8>, message: Vec<u8>) -> (u64, u64, u64, u64) {
        let mac = warden_engine::hmac_sha256(&key, &message);
        let word = |i: usize| {
            let mut w = [0; 8];
            w.copy_from_slice(&mac[i * 8..i * 8 + 8]);
            u64::from_be_bytes(w)
        };
        (word(0), word(1), word(2), word(3))
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
