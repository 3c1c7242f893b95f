//! `warden serve`: the gateway's startup and its long-running tasks — the
//! store it opens, the policy it serves (reloaded from its file, and
//! recompiled when the Admin API's consumers change), the listeners (plain,
//! HTTPS, admin) and the shutdown signal.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use warden_host::admin::{self, AdminApi, Composer, Registry};
use warden_host::gateway::{Gateway, Listeners, TunnelLimits};
use warden_host::reload::{Reload, Reloader};
use warden_host::services::{Outbound, RedisStore, SharedKeys, StateStore, StoreUrl, load_keys};
use warden_host::tls::{self, TrustedProxies};
use warden_host::{ComponentConfig, GuestComponent, HostError, RuntimeOptions, Upstream};

use crate::{CliResult, DEMO_NAME, DEMO_POLICY, Limits, TlsArgs, load, read_policy};

/// The Admin API's listener.
#[derive(clap::Args)]
pub(crate) struct AdminArgs {
    /// Serve Kong's Admin API (consumers, oauth2 credentials, tokens) here;
    /// off by default. Beyond loopback it needs --admin-token-file.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// A file whose content (trimmed) every Admin API call must present as
    /// `Authorization: Bearer <token>`.
    #[arg(long, value_name = "FILE", requires = "admin")]
    admin_token_file: Option<PathBuf>,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (its own
    /// listener; off by default).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
}

/// The Admin API's address and the token its calls need, if it is on.
type AdminListen = Option<(SocketAddr, Option<Vec<u8>>)>;

impl AdminArgs {
    /// The listener's address and token, checked.
    fn open(&self) -> Result<AdminListen, HostError> {
        let Some(addr) = self.admin else {
            return Ok(None);
        };
        let token = match &self.admin_token_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| HostError::Read {
                    path: path.clone(),
                    source,
                })?;
                let token = text.trim();
                if token.len() < 16 {
                    return Err(HostError::Config(format!(
                        "--admin-token-file {}: the token must be at least 16 characters",
                        path.display()
                    )));
                }
                Some(token.as_bytes().to_vec())
            }
        };
        if token.is_none() && !addr.ip().is_loopback() {
            return Err(HostError::Config(format!(
                "--admin {addr} is not a loopback address: give --admin-token-file, or listen on 127.0.0.1"
            )));
        }
        Ok(Some((addr, token)))
    }
}

/// The host's own signing keys.
#[derive(clap::Args, Clone)]
pub(crate) struct KeyArgs {
    /// A directory of private keys (`*.pem`, made by `warden keys generate`,
    /// or private JWKs, `*.jwk`)
    /// that sign the tokens of scopes with `signing_alg RS256|ES256|EdDSA`;
    /// their public halves are served at `/.well-known/jwks.json`. SIGHUP
    /// reads it again (rotation).
    #[arg(long, value_name = "DIR")]
    keys: Option<PathBuf>,
    /// The CA certificate(s) (PEM) that the policy's `https://` outbound
    /// calls (external issuers' `jwks_url`s, introspection endpoints) must
    /// chain to, instead of the system's roots.
    #[arg(long, value_name = "FILE")]
    outbound_ca: Option<PathBuf>,
}

impl KeyArgs {
    fn open(&self) -> Result<SharedKeys, HostError> {
        let Some(dir) = &self.keys else {
            return Ok(SharedKeys::default());
        };
        let ring = load_keys(dir)?;
        for key in ring.keys() {
            tracing::info!(kid = key.kid(), alg = %key.alg(), "signing key");
        }
        if ring.is_empty() {
            tracing::warn!(dir = %dir.display(), "--keys: the directory holds no *.pem key");
        }
        Ok(SharedKeys::new(ring))
    }

    /// The client for external issuers' JWK Sets.
    fn outbound(&self) -> Result<Outbound, HostError> {
        let ca = match &self.outbound_ca {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|source| HostError::Read {
                path: path.clone(),
                source,
            })?),
        };
        Outbound::new(ca.as_deref()).map_err(|e| HostError::Config(format!("--outbound-ca: {e}")))
    }

    /// Read the directory again (SIGHUP); a key that does not read keeps
    /// the keys in use.
    fn reload(&self, keys: &SharedKeys) {
        let Some(dir) = &self.keys else { return };
        match load_keys(dir) {
            Ok(ring) => {
                let kids: Vec<&str> = ring.keys().iter().map(|k| k.kid()).collect();
                tracing::info!(?kids, "signing keys reloaded");
                keys.replace(ring);
            }
            Err(e) => {
                tracing::error!(error = %e, "signing keys not reloaded; still using the previous ones")
            }
        }
    }
}

/// Where codes, refresh tokens and revocations live.
#[derive(clap::Args)]
pub(crate) struct StoreArgs {
    /// `memory` (this process only), or a Redis server that several nodes
    /// share: `redis://[:PASSWORD@]HOST:PORT[/DB]`, `rediss://…` for TLS.
    /// The password is never logged.
    #[arg(long, value_name = "URL", default_value = "memory")]
    store: String,
    /// The CA certificate (PEM) a `rediss://` server's certificate must chain
    /// to, instead of the system's roots.
    #[arg(long, value_name = "FILE")]
    store_ca: Option<PathBuf>,
    /// Longest wait for one store call, in milliseconds: with the store
    /// down, a stateful grant answers 503 within this.
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=10_000))]
    store_timeout_ms: u64,
}

impl StoreArgs {
    fn open(&self, clock: &warden_host::Clock) -> Result<StateStore, HostError> {
        if self.store == "memory" {
            if self.store_ca.is_some() {
                return Err(HostError::Config(
                    "--store-ca is for a rediss:// store".into(),
                ));
            }
            return Ok(StateStore::default());
        }
        let url =
            StoreUrl::parse(&self.store).map_err(|e| HostError::Config(format!("--store: {e}")))?;
        let ca = match &self.store_ca {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|source| HostError::Read {
                path: path.clone(),
                source,
            })?),
        };
        let store = RedisStore::connect(
            url,
            ca,
            Duration::from_millis(self.store_timeout_ms),
            clock.clone(),
        )?;
        Ok(StateStore::Redis(Arc::new(store)))
    }
}

/// `serve --watch`.
pub(crate) struct Watch {
    pub(crate) enabled: bool,
    pub(crate) every: Duration,
}

pub(crate) fn serve(
    policy: Option<PathBuf>,
    watch: Watch,
    guest: Option<PathBuf>,
    (listen, tls): (SocketAddr, &TlsArgs),
    upstream: Upstream,
    workers: Option<u16>,
    (limits, store, admin_args, key_args): (&Limits, &StoreArgs, &AdminArgs, &KeyArgs),
) -> CliResult {
    let admin_listen = admin_args.open()?;
    // Certificate and key are read before anything else: a bad file is
    // reported at once, not after the policy has compiled.
    let tls_config = match (&tls.tls_listen, &tls.tls_cert, &tls.tls_key) {
        (Some(addr), Some(cert), Some(key)) => Some((*addr, tls::server_config(cert, key)?)),
        _ => None,
    };
    let mut trusted = TrustedProxies::default();
    for net in &tls.trusted_proxies {
        trusted.push(net.0);
    }
    let workers = workers.map_or_else(
        || warden_host::gateway::default_workers().min(120),
        usize::from,
    );
    // The control runtime (signals, reloads, Admin API, metrics): one
    // thread. Requests are served on the workers' own runtimes
    // (`Gateway::spawn_workers`).
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Take over SIGHUP first thing: a SIGHUP while the policy compiles must
    // not end the server (it is handled once serving starts).
    let hangup = {
        let _runtime = tokio.enter();
        hangup_signal()
    };
    let mut options = RuntimeOptions::from_env()?;
    options.deadline = Duration::from_millis(limits.deadline_ms);
    options.memory_limit = usize::from(limits.memory_mib) << 20;
    options.store = store.open(&options.clock)?;
    tracing::info!(store = %options.store, "store");
    options.outbound = key_args.outbound()?;
    options.keys = key_args.open()?.with_outbound(options.outbound.clone());
    let keys = options.keys.clone();
    let component = match &guest {
        None => GuestComponent::shared()?,
        Some(path) => {
            let wasm = std::fs::read(path).map_err(|source| HostError::Read {
                path: path.clone(),
                source,
            })?;
            tracing::warn!(guest = %path.display(), "running a guest component from a file, not the embedded one");
            Arc::new(GuestComponent::load(&wasm, &ComponentConfig::default())?)
        }
    };
    let (name, source) = match &policy {
        Some(path) => (path.display().to_string(), read_policy(path)?),
        None => (DEMO_NAME.to_owned(), DEMO_POLICY.to_owned()),
    };
    let runtime = Arc::new(load(
        Arc::clone(&component),
        &name,
        &source,
        options.clone(),
    )?);
    // Guest calls run on the workers, one at a time each; one spare.
    let prewarm = workers + 1;
    runtime.prewarm(prewarm)?;
    let registry = Registry::new(options.store.clone(), options.clock.clone());
    let changes = options.store.changes();
    let reloader = match policy.as_deref() {
        Some(path) => Reloader::new(path, &source, component, options, prewarm),
        None => Reloader::fixed(&name, &source, component, options, prewarm),
    };
    let reloadable = policy.is_some();
    // Each route at start-up, up to a screenful: for a policy with a
    // hundred thousand routes the rest are counted, not listed.
    let routes = runtime.routes();
    for route in routes.iter().take(LOGGED_ROUTES) {
        let upstream = route
            .upstream
            .as_ref()
            .map_or_else(|| "default".to_owned(), Upstream::to_string);
        tracing::info!(route = %route.name, prefix = route.path_prefix.as_deref().unwrap_or("-"), %upstream, "route");
    }
    if let Some(more) = routes.len().checked_sub(LOGGED_ROUTES).filter(|&n| n > 0) {
        tracing::info!(routes = routes.len(), "and {more} more routes");
    }

    tokio.block_on(async move {
        // External issuers' key sets: fetched before the first request.
        keys.remote().track(runtime.jwks_urls()).await;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| HostError::Config(format!("could not listen on {listen}: {e}")))?;
        let addr = listener.local_addr()?;
        let tls_listener = match &tls_config {
            Some((tls_addr, config)) => {
                let bound = tokio::net::TcpListener::bind(tls_addr).await.map_err(|e| {
                    HostError::Config(format!("could not listen on {tls_addr}: {e}"))
                })?;
                Some((bound, Arc::clone(config)))
            }
            None => None,
        };
        // Bound before the first line is printed: whoever reads it may scrape.
        let metrics_listener = match admin_args.metrics {
            Some(m) => Some(
                tokio::net::TcpListener::bind(m)
                    .await
                    .map_err(|e| HostError::Config(format!("could not listen on {m}: {e}")))?,
            ),
            None => None,
        };
        println!("warden listening on http://{addr}");
        if let Some((bound, _)) = &tls_listener {
            println!("warden listening on https://{}", bound.local_addr()?);
        }
        std::io::stdout().flush()?;
        tracing::info!(policy = %name, %upstream, "serving");
        let gateway = Arc::new(
            Gateway::new(runtime, upstream)
                .with_trusted_proxies(trusted)
                .with_user_header(tls.user_header.clone())
                .with_tunnel_limits(TunnelLimits {
                    idle: Duration::from_secs(tls.websocket_idle_secs),
                    total: Duration::from_secs(tls.websocket_max_secs),
                }),
        );
        // One shutdown signal for every listener.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        });
        let (compose, composing) = tokio::sync::mpsc::channel(16);
        let composer = Composer(compose);
        tokio::spawn(reload_policy(
            (reloader, reloadable),
            (key_args.clone(), keys),
            hangup,
            watch,
            composing,
            Arc::clone(&gateway),
        ));
        // The consumers other nodes' Admin APIs made: in force before the
        // first request, then followed.
        if let Some(changes) = changes {
            let (r, c) = (registry.clone(), composer.clone());
            match tokio::task::spawn_blocking(move || admin::refresh(&r, &c)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "could not apply the Admin API's consumers")
                }
                Err(_) => tracing::error!("applying the Admin API's consumers panicked"),
            }
            tokio::spawn(admin::follow(registry.clone(), composer.clone(), changes));
        }
        if let Some(bound) = metrics_listener {
            println!("warden metrics on http://{}/metrics", bound.local_addr()?);
            std::io::stdout().flush()?;
            let g = Arc::clone(&gateway);
            let stats = Arc::new(move || g.policy().stats());
            let mut stop = stopped.clone();
            tokio::spawn(warden_host::metrics::serve(bound, stats, async move {
                let _ = stop.wait_for(|&s| s).await;
            }));
        }
        if let Some((addr, token)) = admin_listen {
            let bound = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| HostError::Config(format!("could not listen on {addr}: {e}")))?;
            println!("warden admin listening on http://{}", bound.local_addr()?);
            std::io::stdout().flush()?;
            if token.is_none() {
                tracing::warn!(%addr, "the Admin API takes calls without a token (loopback only)");
            }
            let api = Arc::new(AdminApi::new(registry, composer, token));
            let mut stop = stopped.clone();
            tokio::spawn(api.serve(bound, async move {
                let _ = stop.wait_for(|&s| s).await;
            }));
        }
        let listeners = Listeners {
            plain: listener.into_std()?,
            tls: match tls_listener {
                Some((bound, config)) => Some((bound.into_std()?, config)),
                None => None,
            },
        };
        let serving = gateway.spawn_workers(workers, &listeners, &stopped)?;
        drop(listeners);
        tokio::task::spawn_blocking(move || serving.join())
            .await
            .map_err(|_| std::io::Error::other("the workers' thread failed"))??;
        tracing::info!("stopped");
        Ok(())
    })
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

/// Start listening for SIGHUP (inside the tokio runtime).
fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| tracing::warn!("SIGHUP reloads are off: {e}"))
            .ok()
    }
    #[cfg(not(unix))]
    None
}

/// Reload the policy on SIGHUP and, with `--watch`, when its file changes.
/// How many routes `warden serve` logs one by one at start-up.
const LOGGED_ROUTES: usize = 50;

/// Compiling runs on a lower-priority thread of its own; requests keep
/// flowing meanwhile.
/// Without a policy file, SIGHUP only says there is nothing to reload.
#[cfg_attr(not(unix), allow(unused_mut))]
async fn reload_policy(
    (reloader, reloadable): (Reloader, bool),
    (key_args, keys): (KeyArgs, SharedKeys),
    mut hangup: Hangup,
    watch: Watch,
    mut composing: tokio::sync::mpsc::Receiver<admin::Compose>,
    gateway: Arc<Gateway>,
) {
    let mut tick = tokio::time::interval(watch.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reloader = Some(reloader);
    loop {
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<Option<()>>();
        enum Job {
            Poll(bool),
            Compose(admin::Compose),
        }
        let job = tokio::select! {
            _ = hup => Job::Poll(true),
            _ = tick.tick(), if watch.enabled && reloadable => Job::Poll(false),
            Some(c) = composing.recv() => Job::Compose(c),
        };
        if matches!(job, Job::Poll(true)) {
            key_args.reload(&keys);
        }
        if matches!(job, Job::Poll(_)) && !reloadable {
            tracing::info!("SIGHUP: serving the embedded demo policy, nothing to reload");
            continue;
        }
        let Some(mut r) = reloader.take() else { return };
        let (force, keep) = match &job {
            Job::Poll(force) => (*force, true),
            Job::Compose(c) => (false, c.keep),
        };
        let Some((r, outcome, job)) = warden_host::reload::in_background(move || {
            let outcome = match &job {
                Job::Poll(_) => r.poll(force),
                Job::Compose(c) => r.recompose(&c.suffix, c.keep),
            };
            (r, outcome, job)
        })
        .await
        else {
            tracing::error!("policy reload panicked; reloading is off");
            return;
        };
        match (job, outcome) {
            (Job::Compose(c), Reload::Reloaded(runtime)) => {
                reloaded("ok");
                if keep {
                    gateway.replace_policy(runtime);
                    tracing::info!(
                        generation = r.generation(),
                        "policy recompiled with the Admin API's consumers"
                    );
                }
                let _ = c.reply.send(Ok(()));
            }
            (Job::Compose(c), Reload::Failed(why)) => {
                reloaded("failed");
                let _ = c.reply.send(Err(why));
            }
            (Job::Compose(c), Reload::Unchanged) => {
                let _ = c.reply.send(Ok(()));
            }
            (Job::Poll(_), Reload::Unchanged) if force => {
                tracing::info!("policy file unchanged; nothing to reload")
            }
            (Job::Poll(_), Reload::Unchanged) => {}
            (Job::Poll(_), Reload::Reloaded(runtime)) => {
                reloaded("ok");
                keys.remote().track(runtime.jwks_urls()).await;
                for warning in runtime.warnings() {
                    eprint!("{}", warning.render(runtime.name(), runtime.source()));
                }
                gateway.replace_policy(runtime);
                tracing::info!(generation = r.generation(), "policy reloaded");
            }
            (Job::Poll(_), Reload::Failed(why)) => {
                reloaded("failed");
                eprint!("{why}");
                tracing::error!("policy reload failed; still serving the previous policy");
            }
        }
        reloader = Some(r);
    }
}

/// Count a policy reload (`ok` or `failed`).
fn reloaded(result: &str) {
    warden_host::metrics::metrics()
        .reloads
        .with_label_values(&[result])
        .inc();
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
