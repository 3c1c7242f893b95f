//! A host's own signing keys, natively (`rust-crypto` builds only: never in
//! the guest). The host reads them from files; this module turns PEM text
//! into keys, signs, verifies, and publishes the public halves as a JWKS
//! (RFC 7517) for `/.well-known/jwks.json`.
//!
//! Each key is bound to the one algorithm its type implies (RFC 8725 §3.1):
//! an RSA key signs RS256, a P-256 key ES256, a P-384 key ES384, an Ed25519
//! key EdDSA. Several keys may share an algorithm: the last one in the
//! ring's order signs (the host orders them by file name, and `warden keys
//! generate` names keys by creation time), the others still verify until
//! they are removed: that is rotation.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use super::{Alg, SigCheck};

/// Why a key was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "not a private key this host can use: expected a PEM `PRIVATE KEY` (PKCS#8; RSA of 2048 bits or more, EC P-256/P-384, or Ed25519) or `RSA PRIVATE KEY`"
    )]
    Unreadable,
    #[error("an RSA key of {0} bits is too short: 2048 bits or more (RFC 7518 §3.3)")]
    RsaTooShort(usize),
    #[error("key id `{0}` is used twice")]
    DuplicateKid(String),
    #[error("key id `{0}` is not a plain name (letters, digits, `.`, `_`, `-`; 1–64 bytes)")]
    BadKid(String),
}

/// One private key, with its public half.
pub struct HostKey {
    kid: String,
    alg: Alg,
    private: EncodingKey,
    public: DecodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("HostKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// One of `EncodingKey`'s PEM readers.
type ReadPem = fn(&[u8]) -> jsonwebtoken::errors::Result<EncodingKey>;

fn jose(alg: Alg) -> Algorithm {
    match alg {
        Alg::HS256 => Algorithm::HS256,
        Alg::RS256 => Algorithm::RS256,
        Alg::RS384 => Algorithm::RS384,
        Alg::RS512 => Algorithm::RS512,
        Alg::PS256 => Algorithm::PS256,
        Alg::ES256 => Algorithm::ES256,
        Alg::ES384 => Algorithm::ES384,
        Alg::EdDSA => Algorithm::EdDSA,
    }
}

/// Whether `kid` is safe to put in headers, file names and logs.
pub(crate) fn plain_kid(kid: &str) -> bool {
    (1..=64).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl HostKey {
    /// The private key in `pem`, named `kid`.
    pub fn from_pem(kid: &str, pem: &[u8]) -> Result<HostKey, KeyError> {
        if !plain_kid(kid) {
            return Err(KeyError::BadKid(kid.chars().take(64).collect()));
        }
        crate::hmac_crypto::ensure_installed();
        let candidates: [(ReadPem, &[Alg]); 3] = [
            (EncodingKey::from_ed_pem, &[Alg::EdDSA]),
            (EncodingKey::from_ec_pem, &[Alg::ES256, Alg::ES384]),
            (EncodingKey::from_rsa_pem, &[Alg::RS256]),
        ];
        for (read, algs) in candidates {
            let Ok(private) = read(pem) else { continue };
            for &alg in algs {
                let Ok(mut jwk) = Jwk::from_encoding_key(&private, jose(alg)) else {
                    continue;
                };
                if let AlgorithmParameters::RSA(rsa) = &jwk.algorithm {
                    let bits = rsa_bits(&rsa.n);
                    if bits < 2048 {
                        return Err(KeyError::RsaTooShort(bits));
                    }
                }
                jwk.common.key_id = Some(kid.to_string());
                jwk.common.public_key_use = Some(PublicKeyUse::Signature);
                let Ok(public) = DecodingKey::from_jwk(&jwk) else {
                    continue;
                };
                let key = HostKey {
                    kid: kid.to_string(),
                    alg,
                    private: private.clone(),
                    public,
                    jwk,
                };
                // A key that cannot verify its own signature (a P-384 key
                // read as P-256, say) is not this algorithm's.
                if key.self_test() {
                    return Ok(key);
                }
            }
        }
        Err(KeyError::Unreadable)
    }

    fn self_test(&self) -> bool {
        let probe = b"warden key self-test";
        jsonwebtoken::crypto::sign(probe, &self.private, jose(self.alg))
            .ok()
            .and_then(|sig| {
                jsonwebtoken::crypto::verify(&sig, probe, &self.public, jose(self.alg)).ok()
            })
            .unwrap_or(false)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The public key as a JWK (`kid`, `alg`, `use: sig`).
    pub fn public_jwk(&self) -> serde_json::Value {
        serde_json::to_value(&self.jwk).unwrap_or_default()
    }
}

/// Whether `signature` over `message` verifies with the public JWK `jwk`
/// (JSON) under `alg`: a key of another type is [`SigCheck::UnknownKey`].
pub fn verify_jwk(jwk: &str, alg: Alg, message: &[u8], signature: &str) -> SigCheck {
    crate::hmac_crypto::ensure_installed();
    let Ok(value) = serde_json::from_str::<serde_json::Value>(jwk) else {
        return SigCheck::UnknownKey;
    };
    if value
        .get("alg")
        .is_some_and(|a| a.as_str() != Some(alg.name()))
    {
        return SigCheck::UnknownKey;
    }
    let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
        return SigCheck::UnknownKey;
    };
    let fits = matches!(
        (&jwk.algorithm, alg),
        (
            AlgorithmParameters::RSA(_),
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256
        ) | (
            AlgorithmParameters::EllipticCurve(_),
            Alg::ES256 | Alg::ES384
        ) | (AlgorithmParameters::OctetKeyPair(_), Alg::EdDSA)
    );
    let Some(key) = fits.then(|| DecodingKey::from_jwk(&jwk).ok()).flatten() else {
        return SigCheck::UnknownKey;
    };
    match jsonwebtoken::crypto::verify(signature, message, &key, jose(alg)) {
        Ok(true) => SigCheck::Valid,
        Ok(false) | Err(_) => SigCheck::Invalid,
    }
}

/// The bit length of an RSA modulus given base64url-encoded.
fn rsa_bits(n: &str) -> usize {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(n)
        .unwrap_or_default();
    let lead = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    match bytes.get(lead) {
        Some(&first) => (bytes.len() - lead - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

/// A host's signing keys, in order (the last of each algorithm signs).
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<HostKey>,
}

impl KeyRing {
    /// A ring of `keys`, in the order given; `kid`s must be unique.
    pub fn new(keys: Vec<HostKey>) -> Result<KeyRing, KeyError> {
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].iter().any(|o| o.kid == k.kid) {
                return Err(KeyError::DuplicateKid(k.kid.clone()));
            }
        }
        Ok(KeyRing { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &[HostKey] {
        &self.keys
    }

    /// The `kid` of the key that signs with `alg` now.
    pub fn signing_key(&self, alg: Alg) -> Option<&str> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.alg == alg)
            .map(|k| k.kid.as_str())
    }

    /// `message` signed with key `kid`: the JWS signature, base64url.
    pub fn sign(&self, kid: &str, message: &[u8]) -> Option<String> {
        let key = self.keys.iter().find(|k| k.kid == kid)?;
        jsonwebtoken::crypto::sign(message, &key.private, jose(key.alg)).ok()
    }

    /// Whether `signature` (base64url) over `message` is key `kid`'s under
    /// `alg` — never with another algorithm than the key's.
    pub fn verify(&self, kid: &str, alg: Alg, message: &[u8], signature: &str) -> SigCheck {
        let Some(key) = self.keys.iter().find(|k| k.kid == kid && k.alg == alg) else {
            return SigCheck::UnknownKey;
        };
        match jsonwebtoken::crypto::verify(signature, message, &key.public, jose(alg)) {
            Ok(true) => SigCheck::Valid,
            Ok(false) | Err(_) => SigCheck::Invalid,
        }
    }

    /// The public keys as a JWK Set (RFC 7517 §5).
    pub fn public_jwks(&self) -> String {
        let keys: Vec<serde_json::Value> = self.keys.iter().map(HostKey::public_jwk).collect();
        serde_json::json!({ "keys": keys }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test keys (never used outside tests): `openssl genpkey`.
    const ED25519: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIHbPw0r2mzMOV7NjN8Ck0tWnFUkRSDjAfb4/3uGsbI4S\n-----END PRIVATE KEY-----\n";

    #[test]
    fn an_ed25519_key_signs_verifies_and_publishes_its_public_half() {
        let key = HostKey::from_pem("ed-1", ED25519.as_bytes()).unwrap();
        assert_eq!(key.alg(), Alg::EdDSA);
        let ring = KeyRing::new(vec![key]).unwrap();
        assert_eq!(ring.signing_key(Alg::EdDSA), Some("ed-1"));
        assert_eq!(ring.signing_key(Alg::ES256), None);
        let sig = ring.sign("ed-1", b"m").unwrap();
        assert_eq!(ring.verify("ed-1", Alg::EdDSA, b"m", &sig), SigCheck::Valid);
        assert_eq!(
            ring.verify("ed-1", Alg::EdDSA, b"n", &sig),
            SigCheck::Invalid
        );
        // Bound to its algorithm: the same kid under another is unknown.
        assert_eq!(
            ring.verify("ed-1", Alg::HS256, b"m", &sig),
            SigCheck::UnknownKey
        );
        let jwks: serde_json::Value = serde_json::from_str(&ring.public_jwks()).unwrap();
        let jwk = &jwks["keys"][0];
        assert_eq!(jwk["kid"], "ed-1");
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["use"], "sig");
        assert!(jwk.get("d").is_none(), "{jwk}");
    }

    #[test]
    fn bad_keys_and_kids_are_refused() {
        assert_eq!(
            HostKey::from_pem("k", b"not a key").unwrap_err(),
            KeyError::Unreadable
        );
        assert!(matches!(
            HostKey::from_pem("a/b", ED25519.as_bytes()),
            Err(KeyError::BadKid(_))
        ));
        let twice = vec![
            HostKey::from_pem("k", ED25519.as_bytes()).unwrap(),
            HostKey::from_pem("k", ED25519.as_bytes()).unwrap(),
        ];
        assert_eq!(
            KeyRing::new(twice).unwrap_err(),
            KeyError::DuplicateKid("k".into())
        );
    }

    #[test]
    fn rsa_bits_counts_the_modulus() {
        use base64::Engine as _;
        let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        assert_eq!(rsa_bits(&enc(&[0x80; 256])), 2048);
        assert_eq!(rsa_bits(&enc(&[0x01, 0, 0])), 17);
        assert_eq!(rsa_bits(&enc(&[0, 0x7f])), 7);
        assert_eq!(rsa_bits(""), 0);
    }
}
