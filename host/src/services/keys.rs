//! The WIT `keys` import: the host's own asymmetric signing keys, read from
//! a directory (`warden serve --keys DIR`), and `warden keys generate`,
//! which writes a new one there.
//!
//! Every `*.pem` file of the directory is one private key (PKCS#8, or
//! PKCS#1 for RSA), its `kid` the file name without `.pem`; every `*.jwk`
//! file one private JWK (RFC 7517: `RSA` with `n e d p q`, `EC` P-256 with
//! `d`, `OKP` Ed25519 with `d`), its `kid` the JWK's own or else the file
//! name. A key's type fixes its algorithm (RSA → RS256, P-256 → ES256,
//! P-384 → ES384, Ed25519 → EdDSA; a JWK's `alg`, when it has one, must
//! agree). Of the keys of one algorithm the last in name order signs, the
//! others verify: `warden keys generate` names keys by their creation time,
//! so generating one rotates, and deleting the old file (after its tokens
//! have expired) retires it. The directory is read at start and on every
//! policy reload; a key that cannot be read stops the start (or the
//! reload keeps the keys it had), naming the file.
//!
//! Signing and verifying run natively, off the guest call's budget (an
//! RSA signature costs about a millisecond).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use warden_engine::{Alg, HostKey, KeyRing, SigCheck};

use super::GuestState;
use super::jwks::JwksCache;
use super::outbound::Outbound;
use crate::bindings::warden::policy::keys::{self, Key};
use crate::error::HostError;

/// The keys every guest instance of a process uses: the host's own ring
/// (swapped whole when the directory is read again) and the external
/// issuers' fetched JWK Sets.
#[derive(Clone, Default)]
pub struct SharedKeys(Arc<ArcSwap<KeyRing>>, Arc<JwksCache>);

impl std::fmt::Debug for SharedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ring = self.0.load();
        let kids: Vec<_> = ring.keys().iter().map(|k| (k.kid(), k.alg())).collect();
        f.debug_tuple("SharedKeys").field(&kids).finish()
    }
}

impl SharedKeys {
    pub fn new(ring: KeyRing) -> Self {
        SharedKeys(Arc::new(ArcSwap::from_pointee(ring)), Arc::default())
    }

    /// With the JWK Sets fetched through `outbound`.
    pub fn with_outbound(self, outbound: Outbound) -> Self {
        SharedKeys(self.0, Arc::new(JwksCache::new(outbound)))
    }

    /// External issuers' JWK Sets.
    pub fn remote(&self) -> &Arc<JwksCache> {
        &self.1
    }

    /// The keys now.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.0.load_full()
    }

    /// Serve `ring` from now on.
    pub fn replace(&self, ring: KeyRing) {
        self.0.store(Arc::new(ring));
    }
}

/// The keys in `dir`, in name order.
pub fn load_dir(dir: &Path) -> Result<KeyRing, HostError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| HostError::Config(format!("--keys {}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| HostError::Config(format!("--keys {}: {e}", dir.display())))?
            .path();
        if path.extension().is_some_and(|x| x == "pem" || x == "jwk") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    let mut keys = Vec::with_capacity(files.len());
    for path in &files {
        let kid = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let bytes = std::fs::read(path)
            .map_err(|e| HostError::Config(format!("key {}: {e}", path.display())))?;
        let bad = |e: String| HostError::Config(format!("key {}: {e}", path.display()));
        let key = if path.extension().is_some_and(|x| x == "jwk") {
            let (pem, own_kid, alg) = jwk_to_pem(&bytes).map_err(bad)?;
            let key = HostKey::from_pem(own_kid.as_deref().unwrap_or(kid), pem.as_bytes())
                .map_err(|e| bad(e.to_string()))?;
            if alg.is_some_and(|a| a != key.alg()) {
                return Err(bad(format!(
                    "its `alg` is not {}, the algorithm of its key type",
                    key.alg()
                )));
            }
            key
        } else {
            HostKey::from_pem(kid, &bytes).map_err(|e| bad(e.to_string()))?
        };
        keys.push(key);
    }
    KeyRing::new(keys).map_err(|e| HostError::Config(format!("--keys {}: {e}", dir.display())))
}

/// A new private key for `alg` (RS256: RSA 3072; ES256: P-256; EdDSA:
/// Ed25519) written to `dir` (created if needed) as `<kid>.pem`, readable
/// by its owner only; its path and kid.
pub fn generate(alg: Alg, dir: &Path, now: u64) -> Result<(PathBuf, String), HostError> {
    let der = match alg {
        Alg::ES256 => ec_p256_pkcs8()?,
        Alg::EdDSA => ed25519_pkcs8()?,
        Alg::RS256 => rsa_pkcs8()?,
        other => {
            return Err(HostError::Config(format!(
                "`warden keys generate` makes RS256, ES256 or EdDSA keys, not {other}"
            )));
        }
    };
    let pem = pem_wrap("PRIVATE KEY", &der);
    let mut tag = [0u8; 3];
    getrandom::fill(&mut tag).map_err(|e| HostError::Config(format!("randomness: {e}")))?;
    // Creation time first: name order is age order, so the newest signs.
    let kid = format!(
        "{}-{}-{}",
        utc_stamp(now),
        alg.name().to_ascii_lowercase(),
        hex::encode(tag)
    );
    std::fs::create_dir_all(dir)
        .map_err(|e| HostError::Config(format!("{}: {e}", dir.display())))?;
    let path = dir.join(format!("{kid}.pem"));
    write_private(&path, pem.as_bytes())?;
    // Proves the file reads back as the key it is meant to be.
    let key = HostKey::from_pem(&kid, pem.as_bytes())
        .map_err(|e| HostError::Config(format!("generated key does not read back: {e}")))?;
    if key.alg() != alg {
        return Err(HostError::Config(format!(
            "generated key reads back as {}, not {alg}",
            key.alg()
        )));
    }
    Ok((path, kid))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), HostError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| HostError::Config(format!("{}: {e}", path.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| HostError::Config(format!("{}: {e}", path.display())))
}

fn ec_p256_pkcs8() -> Result<Vec<u8>, HostError> {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let rng = ring::rand::SystemRandom::new();
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map(|doc| doc.as_ref().to_vec())
        .map_err(|_| HostError::Config("could not generate a P-256 key".into()))
}

/// PKCS#8 v1 (RFC 8410 §7): what OpenSSL writes, and what verifiers read.
fn ed25519_pkcs8() -> Result<Vec<u8>, HostError> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| HostError::Config(format!("randomness: {e}")))?;
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(&seed);
    Ok(der)
}

fn rsa_pkcs8() -> Result<Vec<u8>, HostError> {
    use rsa::pkcs8::EncodePrivateKey as _;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 3072)
        .map_err(|e| HostError::Config(format!("could not generate an RSA key: {e}")))?;
    key.to_pkcs8_der()
        .map(|doc| doc.as_bytes().to_vec())
        .map_err(|e| HostError::Config(format!("could not encode the RSA key: {e}")))
}

/// A private JWK as PKCS#8 PEM, with its `kid` and `alg` when it has them.
fn jwk_to_pem(bytes: &[u8]) -> Result<(String, Option<String>, Option<Alg>), String> {
    use base64::Engine as _;
    let jwk: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JWK: {e}"))?;
    let field = |f: &str| jwk.get(f).and_then(|v| v.as_str());
    let bytes_of = |f: &str| -> Result<Vec<u8>, String> {
        let text = field(f).ok_or_else(|| format!("no `{f}`: not a private key"))?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| format!("`{f}` is not base64url"))
    };
    let kid = field("kid").map(str::to_string);
    let alg = match field("alg") {
        None => None,
        Some(a) => Some(Alg::parse(a).ok_or_else(|| format!("unknown `alg` `{a}`"))?),
    };
    let der = match (field("kty"), field("crv")) {
        (Some("OKP"), Some("Ed25519")) => {
            let d = bytes_of("d")?;
            if d.len() != 32 {
                return Err("an Ed25519 `d` is 32 bytes".into());
            }
            let mut der = vec![
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                0x04, 0x20,
            ];
            der.extend_from_slice(&d);
            der
        }
        (Some("EC"), Some("P-256")) => {
            let d = bytes_of("d")?;
            if d.len() != 32 {
                return Err("a P-256 `d` is 32 bytes".into());
            }
            // PKCS#8 (RFC 5208) of a SEC1 ECPrivateKey (RFC 5915) on
            // prime256v1, without the optional public key.
            let mut der = vec![
                0x30, 0x41, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
                0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x27,
                0x30, 0x25, 0x02, 0x01, 0x01, 0x04, 0x20,
            ];
            der.extend_from_slice(&d);
            der
        }
        (Some("RSA"), _) => {
            use rsa::pkcs8::EncodePrivateKey as _;
            let big = |f: &str| bytes_of(f).map(|b| rsa::BigUint::from_bytes_be(&b));
            let key = rsa::RsaPrivateKey::from_components(
                big("n")?,
                big("e")?,
                big("d")?,
                vec![big("p")?, big("q")?],
            )
            .map_err(|e| format!("not a valid RSA key: {e}"))?;
            key.to_pkcs8_der()
                .map(|doc| doc.as_bytes().to_vec())
                .map_err(|e| format!("could not encode the RSA key: {e}"))?
        }
        _ => return Err("not an RSA, EC P-256 or OKP Ed25519 key".into()),
    };
    Ok((pem_wrap("PRIVATE KEY", &der), kid, alg))
}

fn pem_wrap(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// `YYYYMMDDTHHMMSSZ` for Unix seconds `t` (UTC, proleptic Gregorian).
fn utc_stamp(t: u64) -> String {
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

impl keys::Host for GuestState {
    fn signing_key(&mut self, alg: String) -> Option<String> {
        let alg = Alg::parse(&alg)?;
        self.keys.ring().signing_key(alg).map(str::to_string)
    }

    fn sign(&mut self, kid: String, message: String) -> Option<String> {
        let ring = self.keys.ring();
        self.native(|| ring.sign(&kid, message.as_bytes()))
    }

    fn verify(
        &mut self,
        key: Key,
        alg: String,
        message: String,
        signature: String,
    ) -> keys::SigCheck {
        let Some(alg) = Alg::parse(&alg) else {
            return keys::SigCheck::UnknownKey;
        };
        let ring = self.keys.ring();
        let found = match key {
            Key::HostKey(kid) => {
                self.native(|| ring.verify(&kid, alg, message.as_bytes(), &signature))
            }
            Key::Jwk(jwk) => {
                self.native(|| warden_engine::verify_jwk(&jwk, alg, message.as_bytes(), &signature))
            }
            Key::Remote(r) => {
                let remote = Arc::clone(self.keys.remote());
                self.native(|| {
                    remote.verify(
                        &r.url,
                        r.kid.as_deref(),
                        alg,
                        message.as_bytes(),
                        &signature,
                    )
                })
            }
        };
        match found {
            SigCheck::Valid => keys::SigCheck::Valid,
            SigCheck::Invalid => keys::SigCheck::Invalid,
            SigCheck::UnknownKey => keys::SigCheck::UnknownKey,
        }
    }

    fn public_keys(&mut self) -> String {
        self.keys.ring().public_jwks()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_der(pem: &str) -> Vec<u8> {
        use base64::Engine as _;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }

    #[test]
    fn rsa_and_p256_jwks_read_as_their_pem_twins() {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        // P-256: `d` is the 32 bytes after the SEC1 prefix of the PKCS#8 DER.
        let es = warden_engine::fixtures::TEST_KEYS
            .iter()
            .find(|(k, _)| *k == "es256-a")
            .unwrap()
            .1;
        let der = pem_der(es);
        let at = der
            .windows(5)
            .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
            .unwrap()
            + 5;
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "d": b64(&der[at..at + 32])});
        let (pem, kid, alg) = jwk_to_pem(jwk.to_string().as_bytes()).unwrap();
        assert_eq!((kid, alg), (None, None));
        let a = HostKey::from_pem("a", pem.as_bytes()).unwrap();
        let b = HostKey::from_pem("a", es.as_bytes()).unwrap();
        assert_eq!(a.alg(), Alg::ES256);
        assert_eq!(a.public_jwk(), b.public_jwk());
        // RSA from its components.
        use rsa::pkcs8::DecodePrivateKey as _;
        use rsa::traits::{PrivateKeyParts as _, PublicKeyParts as _};
        let pem_text = warden_engine::fixtures::TEST_KEYS
            .iter()
            .find(|(k, _)| *k == "rs256-a")
            .unwrap()
            .1;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem_text).unwrap();
        let jwk = serde_json::json!({"kty": "RSA", "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be()),
            "d": b64(&key.d().to_bytes_be()), "p": b64(&key.primes()[0].to_bytes_be()), "q": b64(&key.primes()[1].to_bytes_be()),
            "kid": "r", "alg": "RS256"});
        let (pem, kid, alg) = jwk_to_pem(jwk.to_string().as_bytes()).unwrap();
        assert_eq!((kid.as_deref(), alg), (Some("r"), Some(Alg::RS256)));
        let a = HostKey::from_pem("r", pem.as_bytes()).unwrap();
        assert_eq!(
            a.public_jwk()["n"],
            HostKey::from_pem("r", pem_text.as_bytes())
                .unwrap()
                .public_jwk()["n"]
        );
    }

    #[test]
    fn stamps_are_utc_and_sort_by_time() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_796_150_825), "20261201T184705Z");
        assert!(utc_stamp(1_796_150_825) < utc_stamp(1_796_150_826));
    }

    #[test]
    fn generated_keys_read_back_and_the_newest_signs() {
        let dir = std::env::temp_dir().join(format!("warden-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (_, old) = generate(Alg::ES256, &dir, 1_700_000_000).unwrap();
        let (_, ed) = generate(Alg::EdDSA, &dir, 1_700_000_001).unwrap();
        let (_, new) = generate(Alg::ES256, &dir, 1_700_000_002).unwrap();
        let ring = load_dir(&dir).unwrap();
        assert_eq!(ring.keys().len(), 3);
        assert_eq!(ring.signing_key(Alg::ES256), Some(new.as_str()));
        assert_eq!(ring.signing_key(Alg::EdDSA), Some(ed.as_str()));
        let sig = ring.sign(&old, b"m").unwrap();
        assert_eq!(ring.verify(&old, Alg::ES256, b"m", &sig), SigCheck::Valid);
        // Private JWKs: the Ed25519 and P-256 keys PyJWT's and jose's
        // docs use the shape of (here made from the engine's test keys).
        let ed = warden_engine::fixtures::TEST_KEYS
            .iter()
            .find(|(k, _)| *k == "eddsa-a")
            .unwrap()
            .1;
        let seed = &pem_der(ed)[16..];
        let b64 = |b: &[u8]| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        };
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "d": b64(seed), "x": "-", "kid": "ed-jwk", "alg": "EdDSA"});
        std::fs::write(dir.join("zz-ed.jwk"), jwk.to_string()).unwrap();
        let ring = load_dir(&dir).unwrap();
        let from_jwk = ring.keys().iter().find(|k| k.kid() == "ed-jwk").unwrap();
        let from_pem = HostKey::from_pem("eddsa-a", ed.as_bytes()).unwrap();
        assert_eq!(from_jwk.public_jwk()["x"], from_pem.public_jwk()["x"]);
        let jwk =
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "d": b64(seed), "alg": "ES256"});
        std::fs::write(dir.join("zz-ed.jwk"), jwk.to_string()).unwrap();
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("zz-ed.jwk") && err.contains("`alg`"), "{err}");
        std::fs::write(
            dir.join("zz-ed.jwk"),
            r#"{"kty":"OKP","crv":"Ed25519","x":"AA"}"#,
        )
        .unwrap();
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("not a private key"), "{err}");
        std::fs::remove_file(dir.join("zz-ed.jwk")).unwrap();
        std::fs::write(dir.join("broken.pem"), b"junk").unwrap();
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("broken.pem"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
