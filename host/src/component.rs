//! Loading the guest component: the wasmtime `Engine`, the compiled
//! component (cached on disk) and the pre-linked `InstancePre`.
//!
//! This sits below [`crate::PolicyRuntime`]: a [`GuestComponent`] is built
//! once per process (see [`GuestComponent::shared`]) and every runtime creates
//! its instances from it. The engine runs with epoch interruption, driven by a
//! ticker thread, so that every guest call can be given a deadline; it uses
//! the pooling instance allocator when the machine lets it reserve the pool,
//! and the on-demand allocator otherwise. Compiling the component with
//! Cranelift takes ~0.5 s; the artifact is therefore cached on disk (see
//! [`crate::cache`]) and loaded in well under a millisecond afterwards.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

use crate::bindings::{Guest, GuestPre};
use crate::cache;
use crate::error::HostError;
use crate::services::{Clock, GuestState, SecretSnapshot, SharedKeys, StateStore};

/// The guest component, built by `build.rs` and embedded in the binary.
pub const GUEST_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/warden_guest.wasm"));

/// How to set up the wasmtime engine and where to cache compiled code.
#[derive(Debug, Clone)]
pub struct ComponentConfig {
    /// Where compiled components are cached; `None` = [`cache::default_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Cache compiled components on disk at all.
    pub disk_cache: bool,
    /// How often the epoch advances; deadlines are counted in these ticks.
    pub epoch_tick: Duration,
    /// Try the pooling instance allocator (falls back to on-demand).
    pub pooling: bool,
    /// With pooling: how many guest instances may exist at once.
    pub max_instances: u32,
    /// The most linear memory any instance may ever have (a ceiling for
    /// [`crate::RuntimeOptions::memory_limit`]).
    pub max_memory: usize,
}

impl Default for ComponentConfig {
    fn default() -> Self {
        ComponentConfig {
            cache_dir: None,
            disk_cache: true,
            epoch_tick: Duration::from_millis(1),
            pooling: true,
            max_instances: 256,
            max_memory: 256 << 20,
        }
    }
}

/// A loaded, pre-linked guest component, shared by every runtime using it.
pub struct GuestComponent {
    engine: wasmtime::Engine,
    pre: GuestPre<GuestState>,
    epoch_tick: Duration,
    pooling: bool,
    ticker_stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for GuestComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestComponent")
            .field("epoch_tick", &self.epoch_tick)
            .field("pooling", &self.pooling)
            .finish_non_exhaustive()
    }
}

impl GuestComponent {
    /// The embedded component with the default configuration, loaded once per
    /// process and shared (a failure is not cached: the next call retries).
    pub fn shared() -> Result<Arc<GuestComponent>, HostError> {
        static SHARED: Mutex<Option<Arc<GuestComponent>>> = Mutex::new(None);
        let mut slot = SHARED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(component) = slot.as_ref() {
            return Ok(Arc::clone(component));
        }
        let component = Arc::new(GuestComponent::load(
            GUEST_WASM,
            &ComponentConfig::default(),
        )?);
        *slot = Some(Arc::clone(&component));
        Ok(component)
    }

    /// Load `wasm` (a Warden guest component) with `config`.
    pub fn load(wasm: &[u8], config: &ComponentConfig) -> Result<GuestComponent, HostError> {
        let (engine, pooling) = new_engine(config)?;
        let component = match config.disk_cache {
            true => {
                let dir = config.cache_dir.clone().unwrap_or_else(cache::default_dir);
                cache::load_or_compile(&engine, wasm, &dir)?
            }
            false => wasmtime::component::Component::new(&engine, wasm)
                .map_err(|e| HostError::Component(e.into()))?,
        };

        let mut linker = Linker::<GuestState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| HostError::Component(e.into()))?;
        Guest::add_to_linker::<GuestState, HasSelf<GuestState>>(&mut linker, |s| s)
            .map_err(|e| HostError::Component(e.into()))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(GuestPre::new)
            .map_err(|e| HostError::Component(e.into()))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(&engine, config.epoch_tick, Arc::clone(&ticker_stop))?;
        Ok(GuestComponent {
            engine,
            pre,
            epoch_tick: config.epoch_tick,
            pooling,
            ticker_stop,
        })
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// The epoch tick: how often running guest calls check their deadline.
    pub fn epoch_tick(&self) -> Duration {
        self.epoch_tick
    }

    /// Instantiate the guest once, run nothing, drop it: proves that the
    /// component links and instantiates under `memory_limit` (benchmarks time
    /// it: it is what replacing a failed instance costs before the policy is
    /// compiled in it).
    pub fn probe(&self, memory_limit: usize) -> Result<(), HostError> {
        self.instantiate(
            Clock::System,
            memory_limit,
            SecretSnapshot::default(),
            (StateStore::default(), SharedKeys::default()),
            Duration::from_secs(1),
        )
        .map(drop)
    }

    /// A fresh store and instance of the guest.
    pub(crate) fn instantiate(
        &self,
        clock: Clock,
        memory_limit: usize,
        secrets: SecretSnapshot,
        (state, keys): (StateStore, SharedKeys),
        deadline: Duration,
    ) -> Result<(Store<GuestState>, Guest), HostError> {
        let mut store = Store::new(
            &self.engine,
            GuestState::new(clock, memory_limit, secrets, state, keys),
        );
        store.limiter(|state| &mut state.limits);
        // Every call's budget is checked at each epoch tick (see
        // `CallBudget`). Instantiation runs no guest code of ours,
        // but it gets a budget too: nothing runs unbounded.
        store.epoch_deadline_callback(|mut cx| Ok(cx.data_mut().call.check()));
        crate::services::begin_call(&mut store, deadline);
        let bindings = self.pre.instantiate(&mut store).map_err(|e| {
            match e.downcast_ref::<wasmtime::Trap>() {
                Some(wasmtime::Trap::Interrupt) => HostError::Timeout {
                    call: "instantiate",
                    deadline_ms: deadline.as_millis(),
                },
                _ => HostError::Instantiate(e.into()),
            }
        })?;
        Ok((store, bindings))
    }
}

impl Drop for GuestComponent {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn new_engine(config: &ComponentConfig) -> Result<(wasmtime::Engine, bool), HostError> {
    let mut base = Config::new();
    base.epoch_interruption(true);
    // `WARDEN_PERF_MAP=1` names the guest's compiled functions in
    // /tmp/perf-PID.map, so that `perf` profiles show them (scripts/profile).
    if std::env::var_os("WARDEN_PERF_MAP").is_some_and(|v| v == "1") {
        base.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if config.pooling {
        let mut pool = PoolingAllocationConfig::new();
        let n = config.max_instances.max(1);
        pool.total_component_instances(n)
            // A Rust wasip2 component is a handful of core instances (the
            // program plus wit-component's shims), one memory and a few tables.
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .max_tables_per_module(2)
            .max_memory_size(config.max_memory);
        let mut pooled = base.clone();
        pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        match wasmtime::Engine::new(&pooled) {
            Ok(engine) => return Ok((engine, true)),
            Err(e) => {
                tracing::warn!("pooling allocator unavailable, using on-demand allocation: {e:#}")
            }
        }
    }
    wasmtime::Engine::new(&base)
        .map(|e| (e, false))
        .map_err(|e| HostError::Component(e.into()))
}

/// Advance the engine's epoch every `tick` until `stop` is set or the engine
/// is gone. The thread holds only a weak reference to the engine.
fn spawn_ticker(
    engine: &wasmtime::Engine,
    tick: Duration,
    stop: Arc<AtomicBool>,
) -> Result<(), HostError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("warden-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
        .map_err(HostError::Io)
}
