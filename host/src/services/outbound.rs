//! Outbound HTTP for the policy's own needs (external issuers' JWK Sets,
//! token introspection): the host's, never the guest's, and only to URLs
//! the policy names.
//!
//! One request per call over a fresh connection (these are rare: a key set
//! every few minutes), `http://` or `https://` — TLS by rustls with the
//! system's roots, or a CA file (`--outbound-ca`) — with a bound on the
//! connect, on the whole exchange, and on the body's size. Errors say what
//! failed, for the log line; they never hold a secret.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

/// Why an outbound call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("bad URL `{0}`")]
    Url(String),
    #[error("could not connect to {0}: {1}")]
    Connect(String, String),
    #[error("TLS with {0} failed: {1}")]
    Tls(String, String),
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, Duration),
    #[error("HTTP exchange with {0} failed: {1}")]
    Http(String, String),
    #[error("{0} answered with a body over {1} bytes")]
    TooLarge(String, usize),
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    pub body: Bytes,
}

/// The outbound client: TLS settings and limits.
#[derive(Clone)]
pub struct Outbound {
    /// `None`: the system's roots, read on the first TLS connection (not
    /// when a client is made: that reads a few hundred certificates).
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
    timeout: Duration,
    max_body: usize,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            tls: None,
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            max_body: 256 * 1024,
        }
    }
}

/// A client configuration trusting `roots`.
fn config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .unwrap_or_else(|_| {
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        });
    Arc::new(tls)
}

/// The system's roots, read once per process.
fn system_config() -> Arc<rustls::ClientConfig> {
    static SYSTEM: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    Arc::clone(SYSTEM.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = roots.add(cert);
        }
        config(roots)
    }))
}

impl Outbound {
    /// With the system's roots, or only `ca` (PEM) when given.
    pub fn new(ca: Option<&[u8]>) -> Result<Outbound, String> {
        let Some(pem) = ca else {
            return Ok(Outbound::default());
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile_certs(pem)? {
            roots
                .add(cert)
                .map_err(|e| format!("CA certificate: {e}"))?;
        }
        Ok(Outbound {
            tls: Some(config(roots)),
            ..Outbound::default()
        })
    }

    /// `GET url`, bounded.
    pub async fn get(&self, url: &str) -> Result<Fetched, OutboundError> {
        self.send("GET", url, &[], None).await
    }

    /// `method url` with `headers` and `body`, bounded.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Result<Fetched, OutboundError> {
        let target = Target::parse(url).ok_or_else(|| OutboundError::Url(url.into()))?;
        let origin = target.origin();
        let mut req = Request::builder()
            .method(method)
            .uri(&target.path_and_query)
            .header(hyper::header::HOST, target.authority())
            .header(
                hyper::header::USER_AGENT,
                concat!("warden/", env!("CARGO_PKG_VERSION")),
            );
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
        {
            req = req.header(hyper::header::ACCEPT, "application/json");
        }
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
            .map_err(|e| OutboundError::Url(e.to_string()))?;
        match tokio::time::timeout(self.timeout, self.exchange(&target, req)).await {
            Ok(result) => result,
            Err(_) => Err(OutboundError::Timeout(origin, self.timeout)),
        }
    }

    async fn exchange(
        &self,
        t: &Target,
        req: Request<Full<Bytes>>,
    ) -> Result<Fetched, OutboundError> {
        let origin = t.origin();
        let addr = format!("{}:{}", t.host, t.port);
        let tcp = tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(&addr))
            .await
            .map_err(|_| OutboundError::Timeout(origin.clone(), self.connect_timeout))?
            .map_err(|e| OutboundError::Connect(origin.clone(), e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        if t.tls {
            let host = t
                .host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let name = ServerName::try_from(host).map_err(|e| OutboundError::Url(e.to_string()))?;
            let config = self.tls.clone().unwrap_or_else(system_config);
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| OutboundError::Tls(origin.clone(), e.to_string()))?;
            self.roundtrip(TokioIo::new(tls), req, &origin).await
        } else {
            self.roundtrip(TokioIo::new(tcp), req, &origin).await
        }
    }

    async fn roundtrip<IO>(
        &self,
        io: IO,
        req: Request<Full<Bytes>>,
        origin: &str,
    ) -> Result<Fetched, OutboundError>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let http = |e: hyper::Error| OutboundError::Http(origin.to_string(), e.to_string());
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(http)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let resp = sender.send_request(req).await.map_err(http)?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), self.max_body)
            .collect()
            .await
            .map_err(|_| OutboundError::TooLarge(origin.to_string(), self.max_body))?
            .to_bytes();
        Ok(Fetched { status, body })
    }
}

fn rustls_pemfile_certs(
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("CA file: {e}"))
        .and_then(|c| {
            if c.is_empty() {
                Err("CA file: no certificate".into())
            } else {
                Ok(c)
            }
        })
}

/// `http(s)://host[:port]/path?query`, split.
struct Target {
    tls: bool,
    host: String,
    port: u16,
    path_and_query: String,
}

impl Target {
    fn parse(url: &str) -> Option<Target> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            (false, url.strip_prefix("http://")?)
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') || path.contains('#') {
            return None;
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && (h.starts_with('[') || !h.contains(':')) => {
                (h, p.parse().ok()?)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        let path_and_query = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Some(Target {
            tls,
            host: host.to_string(),
            port,
            path_and_query,
        })
    }

    fn authority(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn origin(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.authority()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_their_parts() {
        let t = Target::parse("https://idp.example/.well-known/jwks.json").unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (true, "idp.example", 443));
        assert_eq!(t.path_and_query, "/.well-known/jwks.json");
        let t = Target::parse("http://127.0.0.1:9000?x=1").unwrap();
        assert_eq!((t.port, t.path_and_query.as_str()), (9000, "/?x=1"));
        assert_eq!(t.origin(), "http://127.0.0.1:9000");
        let t = Target::parse("http://[::1]:81/k").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("[::1]", 81));
        for bad in [
            "ftp://x/",
            "http://",
            "http://u:p@x/",
            "http://x/#f",
            "http://x:99999/",
        ] {
            assert!(Target::parse(bad).is_none(), "{bad}");
        }
    }
}
