//! `warden`: the Warden gateway and policy tools.
//!
//! `warden serve` runs the HTTP gateway over a policy (the embedded demo
//! policy by default); `warden check` compiles policy files and prints their
//! diagnostics; `warden explain` shows how a policy decides one request;
//! `warden test` runs policy tests (`testing`);
//! `warden import kong` converts a Kong configuration; `warden keys
//! generate` makes a signing key (the one-shot
//! commands are in `tools`).
//! Every policy is compiled and evaluated inside the WebAssembly guest, the
//! same way any other host would run it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod serve;
mod testing;
mod tools;
use serve::{AdminArgs, KeyArgs, StoreArgs, Watch, serve};
use tools::{check, explain, fmt, generate_key, graph, hash_secret, import};
use warden_host::Upstream;
use warden_host::tls::TrustedNet;
use warden_host::{GuestComponent, HostError, LoadError, PolicyRuntime, RuntimeOptions};

/// The policy `warden serve` uses without `--policy`.
const DEMO_POLICY: &str = include_str!("../../policies/demo.policy");
const DEMO_NAME: &str = "policies/demo.policy";

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "OAuth2 policy engine and gateway, running policies in WebAssembly"
)]
#[command(after_help = "Environment:\n  \
    RUST_LOG          log filter (default `info`)\n  \
    WARDEN_NOW        pin the clock to these Unix seconds (reproduce a decision)\n  \
    WARDEN_CACHE_DIR  where compiled guest code is cached")]
struct Cli {
    /// Log lines as `text` (for people) or `json` (one object per line,
    /// for log pipelines).
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of `serve`'s arguments does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the gateway: decide every request with the policy, then reply or forward.
    ///
    /// With `--policy FILE`, SIGHUP reloads the file; `--watch` also reloads it
    /// whenever it changes. A file that does not compile is reported and the
    /// running policy stays.
    Serve {
        /// Policy file (default: the embedded demo policy).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Reload the policy file when it changes (checked every `--watch-ms`).
        #[arg(long, requires = "policy")]
        watch: bool,
        /// How often `--watch` looks at the policy file, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..))]
        watch_ms: u64,
        /// Run this guest component instead of the embedded one (any build
        /// exporting warden:policy@0.8.0; for testing hosts and guests).
        #[arg(long, value_name = "FILE.wasm")]
        guest: Option<PathBuf>,
        /// Address to listen on (plain HTTP/1.1).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[command(flatten)]
        tls: TlsArgs,
        /// Where to forward requests whose route names no upstream: `echo` or `http://host:port[/base]`.
        #[arg(long, value_name = "URL", default_value = "echo")]
        upstream: Upstream,
        /// Worker threads; each decides and proxies requests, guest calls
        /// included (default: one per CPU the process may run on). With 1,
        /// a single-threaded scheduler: the fastest on one core.
        /// At most 120: each busy worker holds a guest instance, and the
        /// instance pool has room for 256 (a reload briefly needs two sets).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=120))]
        workers: Option<u16>,
        #[command(flatten)]
        limits: Limits,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        admin: AdminArgs,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// The host's signing keys (`serve --keys DIR`).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Hash a client secret for `client_secret hash "…"` (argon2id, OWASP
    /// parameters). Reads the secret from stdin (one trailing newline is
    /// dropped) and prints the PHC string; the secret is never echoed.
    HashSecret,
    /// Compile policy files and report their errors and warnings.
    Check {
        /// Policy files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        limits: Limits,
    },
    /// Print the Warden policy equivalent to another product's configuration.
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Show, step by step, how a policy decides one request.
    /// Run policy tests: each `*.test` file (or every one in a directory)
    /// names its policy and the requests to decide, with what each decision
    /// must be; tokens are minted for named consumers. Exit 1 on a failure.
    Test {
        /// Test files or directories of them.
        #[arg(required = true, value_name = "FILE|DIR")]
        paths: Vec<PathBuf>,
    },
    /// Format policy (and `.test`) files canonically, in place; comments
    /// are kept. With `--check`, change nothing: list the files that are
    /// not formatted and exit 1 if any.
    Fmt {
        /// Files to format.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Only check.
        #[arg(long)]
        check: bool,
    },
    /// The compiled decision graph as Graphviz DOT, or SVG (`--svg`, or an
    /// `-o` file ending in `.svg`; needs Graphviz's `dot`).
    Graph {
        /// Policy file.
        file: PathBuf,
        /// Render SVG with Graphviz's `dot`.
        #[arg(long)]
        svg: bool,
        /// Write here instead of standard output.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// How the policy decides one request, step by step (or, with
    /// `--graph`, the decision graph with its path highlighted).
    Explain {
        /// Policy file.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// Print the decision graph (DOT; SVG with `-o FILE.svg`) with the
        /// request's path highlighted, instead of the steps.
        #[arg(long)]
        graph: bool,
        /// With `--graph`: write here instead of standard output.
        #[arg(long, short = 'o', value_name = "FILE", requires = "graph")]
        output: Option<PathBuf>,
        /// Request method.
        #[arg(long, short = 'X', default_value = "GET")]
        method: String,
        /// Request header, `Name: value` (repeatable).
        #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// Request body.
        #[arg(long, short = 'd', value_name = "BODY")]
        data: Option<String>,
        /// Request URL (`http://host/path?query`) or path (`/path?query`).
        url: String,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Write a new private key to DIR as `<kid>.pem` (owner-only), its kid
    /// starting with the UTC time: the newest key of an algorithm signs, the
    /// others still verify. Prints the kid and the path.
    Generate {
        /// RS256 (RSA 3072), ES256 (P-256) or EdDSA (Ed25519).
        #[arg(long, value_name = "ALG", default_value = "ES256")]
        alg: String,
        /// The key directory `warden serve --keys` reads.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ImportFrom {
    /// Kong declarative configuration (decK YAML, `_format_version` 3.x):
    /// consumers with oauth2 credentials, services, routes and oauth2 plugins.
    /// What Warden cannot express is an error naming the YAML line.
    Kong {
        /// The decK file.
        #[arg(value_name = "KONG.yml")]
        file: PathBuf,
        /// Write the policy here instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// A Higress `WasmPlugin` resource (`spec.defaultConfig`, `spec.matchRules`
    /// with ingress, domain and service lists) or a bare oauth plugin config
    /// as MSE's console takes it. What Warden cannot express is an error
    /// naming the YAML line.
    Higress {
        /// The YAML file.
        #[arg(value_name = "PLUGIN.yaml")]
        file: PathBuf,
        /// Write the policy here instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// HTTPS beside the plain listener, what trusted proxies may say
/// (`X-Forwarded-Proto`, the user they signed in), and how long a
/// WebSocket may stay open.
#[derive(clap::Args)]
struct TlsArgs {
    /// Also serve HTTPS here (HTTP/1.1 and h2 by ALPN); needs --tls-cert and --tls-key.
    #[arg(long, value_name = "ADDR", requires_all = ["tls_cert", "tls_key"])]
    tls_listen: Option<SocketAddr>,
    /// The certificate chain for --tls-listen (PEM, leaf first).
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    tls_cert: Option<PathBuf>,
    /// The private key for --tls-listen (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    tls_key: Option<PathBuf>,
    /// A proxy (CIDR or address; repeatable) whose `X-Forwarded-Proto` says
    /// the scheme on the plain listener; from anyone else it is ignored.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    trusted_proxies: Vec<TrustedNet>,
    /// The header in which a --trusted-proxy names the end user it has
    /// signed in (single sign-on), e.g. `X-Forwarded-User`: a Kong-dialect
    /// policy's authorization page takes that user without a password. It
    /// is removed from every request, and ignored from any other peer.
    #[arg(long, value_name = "NAME", requires = "trusted_proxies")]
    user_header: Option<hyper::header::HeaderName>,
    /// A WebSocket the policy let through is closed when no byte has moved
    /// either way for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    websocket_idle_secs: u64,
    /// A WebSocket is closed this many seconds after it opened, whatever moves.
    #[arg(long, value_name = "SECS", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    websocket_max_secs: u64,
}

#[derive(clap::Args)]
struct Limits {
    /// Most CPU time a single policy decision may use in the guest, in milliseconds
    /// (a decision takes microseconds; a call also stops at 4× this in wall-clock time).
    #[arg(long, value_name = "MS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    deadline_ms: u64,
    /// Most memory one guest instance may use, in MiB (at most 256, the
    /// ceiling the instance pool reserves per instance).
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=256))]
    memory_mib: u16,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format == "json");
    let result = match cli.command {
        Command::Serve {
            policy,
            watch,
            watch_ms,
            guest,
            listen,
            tls,
            upstream,
            workers,
            limits,
            store,
            admin,
            keys,
        } => serve(
            policy,
            Watch {
                enabled: watch,
                every: Duration::from_millis(watch_ms),
            },
            guest,
            (listen, &tls),
            upstream,
            workers,
            (&limits, &store, &admin, &keys),
        ),
        Command::Keys {
            action: KeysAction::Generate { alg, dir },
        } => generate_key(&alg, &dir),
        Command::Check { files, limits } => return check(&files, &limits),
        Command::HashSecret => hash_secret(),
        Command::Import {
            from: ImportFrom::Kong { file, output },
        } => import(warden_import::kong_to_policy, &file, output.as_deref()),
        Command::Import {
            from: ImportFrom::Higress { file, output },
        } => import(warden_import::higress_to_policy, &file, output.as_deref()),
        Command::Fmt { files, check } => return fmt(&files, check),
        Command::Test { paths } => return testing::run(&paths),
        Command::Graph { file, svg, output } => graph(&file, None, svg, output.as_deref()),
        Command::Explain {
            policy,
            graph: false,
            method,
            headers,
            data,
            url,
            ..
        } => explain(&policy, &method, &headers, data, &url),
        Command::Explain {
            policy,
            output,
            method,
            headers,
            data,
            url,
            ..
        } => {
            let req = (method.as_str(), headers.as_slice(), data, url.as_str());
            graph(&policy, Some(req), false, output.as_deref())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        fmt.json().flatten_event(true).init();
    } else {
        fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

/// An error already reported to the user (diagnostics printed).
#[derive(Debug)]
struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the policy does not compile")
    }
}

impl std::error::Error for Reported {}

type CliResult = Result<(), Box<dyn std::error::Error>>;

fn read_policy(path: &Path) -> Result<String, HostError> {
    std::fs::read_to_string(path).map_err(|source| HostError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Compile `source`, printing diagnostics (warnings too) to stderr.
fn load(
    component: Arc<GuestComponent>,
    name: &str,
    source: &str,
    options: RuntimeOptions,
) -> Result<PolicyRuntime, Box<dyn std::error::Error>> {
    match PolicyRuntime::load_with(component, name, source, options) {
        Ok(runtime) => {
            for warning in runtime.warnings() {
                eprint!("{}", warning.render(name, source));
            }
            Ok(runtime)
        }
        Err(LoadError::Invalid { diagnostics, .. }) => {
            for d in &diagnostics {
                eprint!("{}", d.render(name, source));
            }
            Err(Reported.into())
        }
        Err(LoadError::Host(e)) => Err(e.into()),
    }
}
