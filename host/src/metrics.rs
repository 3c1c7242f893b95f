//! What `warden serve` counts, for Prometheus: one process-wide registry
//! ([`metrics`]), updated on the request path (a few atomic adds per
//! request), and served as Prometheus's text format by `--metrics ADDR`
//! ([`serve`]) — on its own listener, beside the traffic, never on it.
//!
//! - `warden_requests_total{outcome, route, rule}`: every decision:
//!   `forward`, or the reply's status (`401`, `403`, `503`, …); the route
//!   the policy resolved (forwards only), or `-`; the rule the request
//!   entered (its name, else `line N`), or `-` when none matched.
//! - `warden_token_checks_total{check}`: how each decided request's token
//!   was checked: `none`, `remembered` (the guest's memo of verified tokens
//!   had it), `verified` (signature checked now), `introspection_cached`,
//!   `introspected`, `rejected`. The memo's hit ratio is
//!   `remembered / (remembered + verified)`; the introspection cache's,
//!   `introspection_cached / (introspection_cached + introspected)`.
//! - `warden_decision_seconds`: from the request's head to its final
//!   decision (body reads and outbound calls it needed included).
//! - `warden_guest_call_seconds`: each call into the guest.
//! - `warden_tokens_issued_total{grant}`: successful token endpoint replies
//!   by `grant_type`.
//! - `warden_websockets_total` / `warden_websockets_open`.
//! - `warden_policy_reloads_total{result}`: `ok` or `failed`.
//! - `warden_guest_instances_created`, `warden_guest_instances_failed`
//!   (trapped or timed out, then replaced) and `warden_guest_instances_idle`
//!   of the policy in force, read when scraped.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::runtime::RuntimeStats;

/// The counters and histograms.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub token_checks: IntCounterVec,
    pub decision_seconds: Histogram,
    pub guest_call_seconds: Histogram,
    pub tokens_issued: IntCounterVec,
    pub websockets: IntCounter,
    pub websockets_open: IntGauge,
    pub reloads: IntCounterVec,
    instances_created: IntGauge,
    instances_failed: IntGauge,
    instances_idle: IntGauge,
}

/// Latency buckets from 5 µs to 1 s (a decision takes microseconds; a
/// hashed secret's check tens of milliseconds).
const BUCKETS: &[f64] = &[
    5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 5e-2, 0.25, 1.0,
];

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let histogram = |name: &str, help: &str| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()))
                .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
            let _ = registry.register(Box::new(h.clone()));
            h
        };
        let gauge = |name: &str, help: &str| {
            let g =
                IntGauge::new(name, help).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
            let _ = registry.register(Box::new(g.clone()));
            g
        };
        let websockets = IntCounter::new("warden_websockets_total", "WebSockets bridged")
            .unwrap_or_else(|e| unreachable!("metric: {e}"));
        let _ = registry.register(Box::new(websockets.clone()));
        Metrics {
            requests: counter_vec(
                "warden_requests_total",
                "Decisions by outcome (forward or the reply's status), route and rule",
                &["outcome", "route", "rule"],
            ),
            token_checks: counter_vec(
                "warden_token_checks_total",
                "Decided requests by how their token was checked",
                &["check"],
            ),
            decision_seconds: histogram(
                "warden_decision_seconds",
                "From a request's head to its final decision",
            ),
            guest_call_seconds: histogram("warden_guest_call_seconds", "Each call into the guest"),
            tokens_issued: counter_vec(
                "warden_tokens_issued_total",
                "Tokens issued by the token endpoint, by grant_type",
                &["grant"],
            ),
            websockets,
            websockets_open: gauge("warden_websockets_open", "WebSockets open now"),
            reloads: counter_vec(
                "warden_policy_reloads_total",
                "Policy reloads (file or Admin API) by result",
                &["result"],
            ),
            instances_created: gauge(
                "warden_guest_instances_created",
                "Guest instances the policy in force has created",
            ),
            instances_failed: gauge(
                "warden_guest_instances_failed",
                "Guest instances of the policy in force that trapped or timed out (each replaced)",
            ),
            instances_idle: gauge(
                "warden_guest_instances_idle",
                "Guest instances of the policy in force idle in the pool",
            ),
            registry,
        }
    }

    /// Everything, in Prometheus's text format, with `stats` of the policy
    /// in force.
    pub fn render(&self, stats: RuntimeStats) -> String {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.instances_created.set(clamp(stats.instances_created));
        self.instances_failed.set(clamp(stats.instances_failed));
        self.instances_idle.set(clamp(stats.idle as u64));
        let mut out = Vec::new();
        // Encoding a gathered registry into memory cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Serve `GET /metrics` on `listener` until `shutdown`; `stats` reads the
/// policy in force.
pub async fn serve(
    listener: tokio::net::TcpListener,
    stats: Arc<dyn Fn() -> RuntimeStats + Send + Sync>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let stats = Arc::clone(&stats);
        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let stats = Arc::clone(&stats);
            async move {
                let mut response =
                    if req.uri().path() == "/metrics" && req.method() == hyper::Method::GET {
                        let mut r =
                            hyper::Response::new(Full::new(Bytes::from(metrics().render(stats()))));
                        r.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static(
                                "text/plain; version=0.0.4; charset=utf-8",
                            ),
                        );
                        r
                    } else {
                        hyper::Response::new(Full::new(Bytes::from_static(
                            b"not found: GET /metrics\n",
                        )))
                    };
                if req.uri().path() != "/metrics" || req.method() != hyper::Method::GET {
                    *response.status_mut() = hyper::StatusCode::NOT_FOUND;
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A reply's status as a label, without allocating for the common ones.
pub fn status_label(status: u16) -> std::borrow::Cow<'static, str> {
    match status {
        200 => "200".into(),
        400 => "400".into(),
        401 => "401".into(),
        403 => "403".into(),
        404 => "404".into(),
        413 => "413".into(),
        426 => "426".into(),
        429 => "429".into(),
        500 => "500".into(),
        502 => "502".into(),
        503 => "503".into(),
        other => other.to_string().into(),
    }
}

/// The `grant_type` of a token request (form body, else query), for
/// `warden_tokens_issued_total`: one of the known grants, else `other`.
pub fn grant_of(query: &str, body: Option<&[u8]>) -> &'static str {
    let find = |bytes: &[u8]| {
        form_urlencoded::parse(bytes)
            .find(|(k, _)| k == "grant_type")
            .map(|(_, v)| v.into_owned())
    };
    let grant = body.and_then(find).or_else(|| find(query.as_bytes()));
    match grant.as_deref() {
        Some("client_credentials") => "client_credentials",
        Some("authorization_code") => "authorization_code",
        Some("password") => "password",
        Some("refresh_token") => "refresh_token",
        _ => "other",
    }
}
