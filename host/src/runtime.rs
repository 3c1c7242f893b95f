//! [`PolicyRuntime`]: one compiled policy, evaluated inside the guest, safely
//! shareable across threads and tokio tasks.
//!
//! The runtime keeps a pool of ready guest instances. Each instance has its
//! own wasmtime `Store` (so calls never contend on one store), the bindings,
//! and the `policy` resource compiled from this runtime's source in that
//! store. A call checks an instance out of the pool (creating and compiling a
//! new one when the pool is empty), sets the call's deadline, calls the guest
//! once, and returns the instance afterwards. Every call is bounded: an epoch
//! deadline (time) and `StoreLimits` (memory). A call that traps or times out
//! returns an error — the gateway answers 503 — and its instance, whose state
//! can no longer be trusted, is dropped; the next call builds a fresh one.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use wasmtime::component::ResourceAny;
use wasmtime::{Store, Trap};

use warden_engine::{Decision, Diagnostic, Notes, RouteInfo};

use crate::bindings::warden::policy::types as wit;
use crate::bindings::{self, Guest, GuestDecision, PackedForward};
use crate::component::GuestComponent;
use crate::error::{HostError, LoadError};
use crate::request::OwnedRequest;
use crate::services::{Clock, GuestState, SecretSnapshot, SharedKeys, StateStore, begin_call};

/// Instantiation only runs the guest's initialisers: microseconds. The bound
/// is there for safety, apart from the configurable call deadlines.
const INSTANTIATE_DEADLINE: Duration = Duration::from_secs(1);

/// The compile deadline applies once more per this much policy text (see
/// [`RuntimeOptions::compile_deadline`]).
pub const COMPILE_TEXT_PER_DEADLINE: usize = 10 << 20;

/// Bounds and services for a runtime's guest calls.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The most CPU time one `decide`/`explain` call may use (see
    /// `services::CallBudget`: checked every epoch tick, with a wall-clock
    /// backstop of 4× this).
    pub deadline: Duration,
    /// The longest compiling the policy (once per new instance) may run,
    /// once more per whole [`COMPILE_TEXT_PER_DEADLINE`] of policy text, as
    /// compiling takes time in proportion to its size.
    pub compile_deadline: Duration,
    /// The most linear memory one guest instance may use.
    pub memory_limit: usize,
    /// The clock the guest sees through `host.now` and `wasi:clocks`.
    pub clock: Clock,
    /// How many idle instances the pool keeps; more are dropped on return.
    pub max_idle: usize,
    /// Codes, refresh tokens and revocations (shared by the runtimes a
    /// reload makes from these options).
    pub store: StateStore,
    /// The host's signing keys (shared likewise; swapped when re-read).
    pub keys: SharedKeys,
    /// The client for the policy's outbound calls (introspection).
    pub outbound: crate::services::Outbound,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            deadline: Duration::from_millis(10),
            compile_deadline: Duration::from_secs(2),
            memory_limit: 64 << 20,
            clock: Clock::System,
            max_idle: 64,
            store: StateStore::default(),
            keys: SharedKeys::default(),
            outbound: crate::services::Outbound::default(),
        }
    }
}

impl RuntimeOptions {
    /// The defaults, with the clock from `WARDEN_NOW` (see [`Clock::from_env`]).
    pub fn from_env() -> Result<Self, HostError> {
        Ok(RuntimeOptions {
            clock: Clock::from_env()?,
            ..Default::default()
        })
    }
}

/// Counters, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Guest instances created (each compiled the policy once).
    pub instances_created: u64,
    /// Instances dropped because a call trapped or timed out.
    pub instances_failed: u64,
    /// Instances idle in the pool right now.
    pub idle: usize,
    /// The largest linear memory any instance of this runtime grew to, in
    /// bytes (the guest's heap: the compiled policy plus per-call scratch).
    pub peak_memory: usize,
}

/// One guest instance with the policy compiled in it.
struct Instance {
    store: Store<GuestState>,
    bindings: Guest,
    policy: ResourceAny,
}

/// A compiled policy served by a pool of guest instances. `Send + Sync`:
/// share it with `Arc`.
///
/// Calls run on the calling thread, bounded by the deadline (10 ms of CPU
/// time by default; a decision takes microseconds). They may run on an async
/// executor's thread: the guest does no WASI stream I/O (it reports panics
/// through the `host` interface), so nothing in a call waits on tokio.
pub struct PolicyRuntime {
    component: Arc<GuestComponent>,
    name: String,
    source: String,
    options: RuntimeOptions,
    warnings: Vec<Diagnostic>,
    routes: Vec<RouteInfo>,
    /// The rules' names ([`Notes::rule`] indexes them).
    rules: Vec<String>,
    token_paths: Vec<String>,
    /// External issuers' JWK Sets the host is to keep (URL, refresh s).
    jwks_urls: Vec<(String, u32)>,
    /// The introspection endpoints a `Fetch` may name (without a query).
    fetch_endpoints: Vec<String>,
    idle: Mutex<Vec<Instance>>,
    created: AtomicU64,
    failed: AtomicU64,
    peak_memory: AtomicUsize,
    /// The secrets this policy's instances resolved, shared by all of them.
    secrets: SecretSnapshot,
}

impl std::fmt::Debug for PolicyRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyRuntime")
            .field("name", &self.name)
            .field("options", &self.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl PolicyRuntime {
    /// Compile `source` (called `name` in diagnostics) in the shared embedded
    /// guest with default options (system clock; see [`RuntimeOptions::from_env`]
    /// for `WARDEN_NOW`).
    pub fn load(name: &str, source: &str) -> Result<Self, LoadError> {
        Self::load_with(
            GuestComponent::shared()?,
            name,
            source,
            RuntimeOptions::default(),
        )
    }

    /// Compile `source` in `component` with `options`.
    pub fn load_with(
        component: Arc<GuestComponent>,
        name: &str,
        source: &str,
        options: RuntimeOptions,
    ) -> Result<Self, LoadError> {
        let mut runtime = PolicyRuntime {
            component,
            name: name.to_owned(),
            source: source.to_owned(),
            options,
            warnings: Vec::new(),
            routes: Vec::new(),
            rules: Vec::new(),
            token_paths: Vec::new(),
            jwks_urls: Vec::new(),
            fetch_endpoints: Vec::new(),
            idle: Mutex::new(Vec::new()),
            created: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            peak_memory: AtomicUsize::new(0),
            secrets: SecretSnapshot::default(),
        };
        let mut first = match runtime.new_instance()? {
            Ok(instance) => instance,
            Err(diagnostics) => {
                return Err(LoadError::Invalid {
                    name: runtime.name,
                    diagnostics,
                });
            }
        };
        // Warnings and routes do not change: ask once, keep them host-side.
        // These calls are part of loading, so they get the compile deadline.
        let budget = runtime.compile_budget();
        let ms = deadline_ms(&budget);
        let decisions = first.bindings.warden_policy_decisions().policy();
        begin_call(&mut first.store, budget);
        let warnings = decisions
            .call_warnings(&mut first.store, first.policy)
            .map_err(|e| classify("warnings", ms, e, None).explained(&runtime.options))?;
        begin_call(&mut first.store, budget);
        let routes = decisions
            .call_routes(&mut first.store, first.policy)
            .map_err(|e| classify("routes", ms, e, None).explained(&runtime.options))?;
        runtime.warnings = warnings
            .into_iter()
            .map(|d| bindings::diagnostic_from_wit(d, source))
            .collect();
        begin_call(&mut first.store, budget);
        runtime.rules = decisions
            .call_rules(&mut first.store, first.policy)
            .map_err(|e| classify("rules", ms, e, None).explained(&runtime.options))?;
        begin_call(&mut first.store, budget);
        runtime.token_paths = decisions
            .call_token_paths(&mut first.store, first.policy)
            .map_err(|e| classify("token-paths", ms, e, None).explained(&runtime.options))?;
        begin_call(&mut first.store, budget);
        runtime.jwks_urls = decisions
            .call_jwks_urls(&mut first.store, first.policy)
            .map_err(|e| classify("jwks-urls", ms, e, None).explained(&runtime.options))?;
        begin_call(&mut first.store, budget);
        runtime.fetch_endpoints = decisions
            .call_fetch_endpoints(&mut first.store, first.policy)
            .map_err(|e| classify("fetch-endpoints", ms, e, None).explained(&runtime.options))?;
        runtime.routes = routes.into_iter().map(bindings::route_from_wit).collect();
        runtime
            .idle
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .push(first);
        Ok(runtime)
    }

    /// The policy's name (as given to `load`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The options this runtime runs with.
    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// Warnings found while compiling.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The routes the policy declares, in declaration order.
    pub fn routes(&self) -> &[RouteInfo] {
        &self.routes
    }

    /// The rules' names, in declaration order.
    pub fn rules(&self) -> &[String] {
        &self.rules
    }

    /// The name of the rule `notes` say the request entered (`None`: no
    /// rule matched, or the guest named one the policy lacks).
    pub fn rule_name(&self, notes: &Notes) -> Option<&str> {
        notes
            .rule
            .and_then(|i| self.rules.get(i as usize))
            .map(String::as_str)
    }

    /// Whether `path` may be a token request (it ends with a token path):
    /// its client-secret check may be a slow password hash.
    /// The JWK Sets the policy's external issuers publish (URL, refresh
    /// interval in seconds): what the host fetches, and nothing else.
    pub fn jwks_urls(&self) -> &[(String, u32)] {
        &self.jwks_urls
    }

    /// Whether a `Fetch` may go to `url`: one of the policy's endpoints,
    /// with or without a query string.
    pub fn may_fetch(&self, url: &str) -> bool {
        let base = url.split('?').next().unwrap_or_default();
        self.fetch_endpoints.iter().any(|e| e == base)
    }

    /// The paths the policy answers as its token endpoint (a request whose
    /// path ends with one).
    pub fn token_paths(&self) -> &[String] {
        &self.token_paths
    }

    pub fn may_issue_tokens(&self, path: &str) -> bool {
        self.token_paths.iter().any(|p| path.ends_with(p.as_str()))
    }

    /// Decide one request. An error means the guest failed (trap, timeout,
    /// no instance available): fail closed.
    pub fn decide(&self, req: &OwnedRequest) -> Result<Decision, HostError> {
        self.decide_noted(req).map(|(decision, _)| decision)
    }

    /// [`Self::decide`], and how the decision was reached (the rule the
    /// request entered, how its token was checked), for logs and metrics.
    pub fn decide_noted(&self, req: &OwnedRequest) -> Result<(Decision, Notes), HostError> {
        let (decision, notes) = self.decide_in_place(req)?;
        let decision = decision
            .try_map_forward(PackedForward::into_forward)
            .map_err(HostError::BadDecision)?;
        Ok((decision, notes))
    }

    /// [`Self::decide_noted`], with a forward left in the buffer the guest
    /// returned (the gateway reads it in place: no owned copy per request).
    pub fn decide_in_place(&self, req: &OwnedRequest) -> Result<(GuestDecision, Notes), HostError> {
        self.call("decide", |inst| {
            let decisions = inst.bindings.warden_policy_decisions().policy();
            decisions.call_decide(&mut inst.store, inst.policy, wit_request(req))
        })
        .and_then(|decided| bindings::decided_from_wit(decided).map_err(HostError::BadDecision))
    }

    /// Describe, step by step, how the policy decides `req`.
    pub fn explain(&self, req: &OwnedRequest) -> Result<String, HostError> {
        self.call("explain", |inst| {
            let decisions = inst.bindings.warden_policy_decisions().policy();
            decisions.call_explain(&mut inst.store, inst.policy, wit_request(req))
        })
    }

    /// The decision graph in Graphviz DOT; with `req`, its path highlighted.
    pub fn graph(&self, req: Option<&OwnedRequest>) -> Result<String, HostError> {
        self.call("graph", |inst| {
            let decisions = inst.bindings.warden_policy_decisions().policy();
            decisions.call_graph(&mut inst.store, inst.policy, req.map(wit_request))
        })
    }

    /// Make sure at least `n` instances (at most `max_idle`) are ready, so
    /// that the first concurrent requests do not each compile the policy.
    pub fn prewarm(&self, n: usize) -> Result<(), HostError> {
        let want = n.min(self.options.max_idle);
        let mut fresh = Vec::new();
        while self.pool().len() + fresh.len() < want {
            fresh.push(self.new_instance()?.map_err(recompile_error)?);
        }
        self.pool().extend(fresh);
        Ok(())
    }

    /// Instance counters.
    pub fn stats(&self) -> RuntimeStats {
        RuntimeStats {
            instances_created: self.created.load(Ordering::Relaxed),
            instances_failed: self.failed.load(Ordering::Relaxed),
            idle: self.pool().len(),
            peak_memory: self.peak_memory.load(Ordering::Relaxed),
        }
    }

    /// Run `f` on a pooled instance under the call deadline.
    fn call<R>(
        &self,
        call: &'static str,
        f: impl FnOnce(&mut Instance) -> wasmtime::Result<R>,
    ) -> Result<R, HostError> {
        let checked_out = self.pool().pop();
        let mut instance = match checked_out {
            Some(instance) => instance,
            None => self.new_instance()?.map_err(recompile_error)?,
        };
        begin_call(&mut instance.store, self.options.deadline);
        // A panic on the host side of the call (a host function that should
        // not have panicked) fails this call, not the thread serving it.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut instance)));
        match outcome {
            Ok(Ok(value)) => {
                self.peak_memory
                    .fetch_max(instance.store.data().limits.peak_memory, Ordering::Relaxed);
                let mut idle = self.pool();
                if idle.len() < self.options.max_idle {
                    idle.push(instance);
                }
                Ok(value)
            }
            Ok(Err(e)) => {
                // The instance may be mid-way through anything: never reuse it.
                let panic = instance.store.data().stderr.summary();
                drop(instance);
                self.failed.fetch_add(1, Ordering::Relaxed);
                let error = classify(call, deadline_ms(&self.options.deadline), e, panic)
                    .explained(&self.options);
                tracing::debug!(policy = %self.name, "{error}");
                Err(error)
            }
            Err(_) => {
                drop(instance);
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(policy = %self.name, call, "the host panicked during a guest call");
                Err(HostError::Unavailable(
                    "the host panicked during the guest call",
                ))
            }
        }
    }

    /// How long compiling this runtime's policy may take: the configured
    /// deadline, once more per whole [`COMPILE_TEXT_PER_DEADLINE`] of text.
    /// A 21 MB policy of 100,000 consumers compiles in the guest in 1.4 s on
    /// a quiet core, and in over 2 s of CPU time beside busy workers; with
    /// the default 2 s its budget is 6 s.
    fn compile_budget(&self) -> Duration {
        let times =
            u32::try_from(self.source.len() / COMPILE_TEXT_PER_DEADLINE).unwrap_or(u32::MAX);
        self.options
            .compile_deadline
            .saturating_mul(times.saturating_add(1))
    }

    /// A new instance with the policy compiled in it; the inner `Err` holds
    /// the diagnostics when the policy does not compile.
    fn new_instance(&self) -> Result<Result<Instance, Vec<Diagnostic>>, HostError> {
        let compile_deadline = self.compile_budget();
        let (mut store, bindings) = self.component.instantiate(
            self.options.clock.clone(),
            self.options.memory_limit,
            self.secrets.clone(),
            (self.options.store.clone(), self.options.keys.clone()),
            INSTANTIATE_DEADLINE,
        )?;
        self.created.fetch_add(1, Ordering::Relaxed);
        begin_call(&mut store, compile_deadline);
        let compiled = bindings
            .warden_policy_decisions()
            .policy()
            .call_compile(&mut store, &self.name, &self.source)
            .map_err(|e| {
                self.failed.fetch_add(1, Ordering::Relaxed);
                classify(
                    "compile",
                    deadline_ms(&compile_deadline),
                    e,
                    store.data().stderr.summary(),
                )
                .explained(&self.options)
            })?;
        self.peak_memory
            .fetch_max(store.data().limits.peak_memory, Ordering::Relaxed);
        Ok(match compiled {
            Ok(policy) => Ok(Instance {
                store,
                bindings,
                policy,
            }),
            Err(diagnostics) => Err(diagnostics
                .into_iter()
                .map(|d| bindings::diagnostic_from_wit(d, &self.source))
                .collect()),
        })
    }

    fn pool(&self) -> MutexGuard<'_, Vec<Instance>> {
        // Nothing panics while holding the lock; if something ever did, the
        // Vec is still a valid list of instances.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn recompile_error(diagnostics: Vec<Diagnostic>) -> HostError {
    HostError::Recompile {
        errors: diagnostics.iter().filter(|d| d.is_error()).count(),
    }
}

fn deadline_ms(deadline: &Duration) -> u128 {
    deadline.as_millis()
}

/// Tell an interrupt (deadline) from any other trap, and summarise the
/// trap in one line: the guest's panic message when it printed one, else the
/// root cause (e.g. `wasm trap: wasm \`unreachable\` instruction executed`).
fn classify(
    call: &'static str,
    deadline_ms: u128,
    error: wasmtime::Error,
    panic: Option<String>,
) -> HostError {
    if let Some(Trap::Interrupt) = error.downcast_ref::<Trap>() {
        return HostError::Timeout { call, deadline_ms };
    }
    let source = anyhow::Error::from(error);
    let reason = panic.unwrap_or_else(|| source.root_cause().to_string());
    HostError::Trap {
        call,
        reason,
        source,
    }
}

impl HostError {
    /// A guest trap on the memory limit says which limit and how to raise it.
    fn explained(self, options: &RuntimeOptions) -> HostError {
        match self {
            HostError::Trap {
                call,
                reason,
                source,
            } if reason.contains("growing memory") => HostError::Trap {
                call,
                reason: format!(
                    "out of guest memory: an instance may use {} MiB (`--memory-mib`, at most 256)",
                    options.memory_limit >> 20
                ),
                source,
            },
            other => other,
        }
    }
}

/// The WIT record borrowing `req` (the packed head as it is: one copy, into
/// guest memory, happens in the call).
fn wit_request(req: &OwnedRequest) -> wit::Request<'_> {
    wit::Request {
        head: req.head(),
        proxy_terminated: req.proxy_terminated,
        body: req.body.as_deref(),
        keys_refreshed: req.keys_refreshed,
        fetched: req.fetched.as_ref().map(|f| match f {
            crate::request::FetchOutcome::Response { status, body } => {
                wit::Fetched::Response(wit::FetchedResponse {
                    status: *status,
                    body,
                })
            }
            crate::request::FetchOutcome::Failed(why) => wit::Fetched::Failed(why),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn runtime_is_send_and_sync() {
        assert_send_sync::<PolicyRuntime>();
        assert_send_sync::<Arc<PolicyRuntime>>();
    }
}
