//! HTTPS for `warden serve`, and whose word on the scheme counts.
//!
//! [`server_config`] reads a certificate chain and its private key from PEM
//! files into a rustls server configuration (TLS 1.2 and 1.3, the `ring`
//! provider, ALPN `h2` then `http/1.1`), refusing anything it cannot use
//! with the file and the reason. [`TrustedProxies`] are the peers (CIDRs)
//! whose `X-Forwarded-Proto` tells the scheme the client used; from anyone
//! else that header is ignored and overwritten, so that a client cannot
//! claim HTTPS on a plain connection.

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::HostError;

/// A rustls server configuration for the certificate chain in `cert` and
/// the private key in `key` (PEM; PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, HostError> {
    let bad = |path: &Path, why: String| {
        HostError::Config(format!("TLS: cannot use `{}`: {why}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad(cert, "no PEM certificate in it".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HostError::Config(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            HostError::Config(format!(
                "TLS: the key `{}` does not fit the certificate `{}`: {e}",
                key.display(),
                cert.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Peers whose `X-Forwarded-Proto` counts (`--trusted-proxy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Whether `peer` is one of them.
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&peer))
    }

    /// Add one network.
    pub fn push(&mut self, net: IpNet) {
        self.0.push(net);
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One `--trusted-proxy` value: a CIDR (`10.0.0.0/8`, `::1/128`) or an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedNet(pub IpNet);

impl FromStr for TrustedNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
            .map(TrustedNet)
            .map_err(|_| format!("`{s}` is not a CIDR (`10.0.0.0/8`) or an IP address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_networks() {
        let mut t = TrustedProxies::default();
        for net in ["10.0.0.0/8", "::1", "192.168.1.7"] {
            t.push(net.parse::<TrustedNet>().unwrap().0);
        }
        for yes in ["10.1.2.3", "::1", "192.168.1.7", "::ffff:10.0.0.1"] {
            assert!(t.contains(yes.parse().unwrap()), "{yes}");
        }
        for no in ["11.0.0.1", "127.0.0.1", "192.168.1.8", "::2"] {
            assert!(!t.contains(no.parse().unwrap()), "{no}");
        }
        assert!("10.0.0.0/33".parse::<TrustedNet>().is_err());
        assert!("proxy.local".parse::<TrustedNet>().is_err());
    }

    #[test]
    fn unusable_files_say_which_and_why() {
        let dir = crate::scratch_dir("tls");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let err = server_config(&empty, &empty).unwrap_err().to_string();
        assert!(
            err.contains("empty.pem") && err.contains("no PEM certificate"),
            "{err}"
        );
        let err = server_config(&dir.join("missing.pem"), &empty)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
