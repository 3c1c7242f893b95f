//! An HMAC-only `CryptoProvider` for `jsonwebtoken`, for builds without its
//! `rust_crypto` feature (the WASI guest).
//!
//! Warden signs and verifies HS256 only, yet `jsonwebtoken`'s `rust_crypto`
//! provider links every algorithm it knows — RSA, ECDSA, EdDSA and their
//! big-number and curve arithmetic — because it dispatches on the algorithm
//! at run time. Without the feature (`warden-engine`'s `rust-crypto`), the
//! engine installs this provider instead: HS256/384/512 with RustCrypto's
//! `hmac` and `sha2`, the same code `rust_crypto` uses for them, and an
//! error for anything else (which Warden never asks for: the token parser
//! refuses every `alg` but HS256 first). Native builds keep `rust_crypto`
//! (there only this module's tests use the provider).
#![cfg_attr(feature = "rust-crypto", allow(dead_code))]

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};

/// HMAC-SHA256 of a message (second) under a key (first).
type HmacSha256 = fn(&[u8], &[u8]) -> [u8; 32];

/// A native HMAC-SHA256 the embedder supplies (see [`use_hmac_sha256`]).
static NATIVE_SHA256: std::sync::OnceLock<HmacSha256> = std::sync::OnceLock::new();

/// Compute HS256 MACs with `f` instead of the `hmac` crate: the guest hands
/// the host's native HMAC-SHA256 here (a host import), since SHA-256 in wasm
/// is several times slower than the CPU's SHA instructions. Only for
/// builds with this provider (without `rust-crypto`); the first call wins.
pub fn use_hmac_sha256(f: HmacSha256) {
    let _ = NATIVE_SHA256.set(f);
}

/// HMAC-SHA256 of `msg` under `key` with RustCrypto's `hmac` and `sha2`
/// (what hosts answer the guest's `hmac-sha256` import with).
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// Install the HMAC-only provider as `jsonwebtoken`'s default, once. Does
/// nothing when the `rust-crypto` feature is on (jsonwebtoken then uses its
/// own) or when a provider is already installed.
pub(crate) fn ensure_installed() {
    #[cfg(not(feature = "rust-crypto"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let _ = PROVIDER.install_default();
        });
    }
}

/// The provider.
pub(crate) static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// One HMAC algorithm, keyed.
enum Keyed {
    /// HS256 by the embedder's native function, with this key.
    Hs256Native(HmacSha256, Vec<u8>),
    Hs256(Hmac<Sha256>),
    Hs384(Hmac<Sha384>),
    Hs512(Hmac<Sha512>),
}

impl Keyed {
    fn new(alg: Algorithm, family: AlgorithmFamily, key: &[u8]) -> Result<Self> {
        if family != AlgorithmFamily::Hmac {
            return Err(ErrorKind::InvalidKeyFormat.into());
        }
        let bad_key = |_| ErrorKind::InvalidKeyFormat;
        Ok(match alg {
            Algorithm::HS256 => match NATIVE_SHA256.get() {
                Some(f) => Keyed::Hs256Native(*f, key.to_vec()),
                None => Keyed::Hs256(Hmac::new_from_slice(key).map_err(bad_key)?),
            },
            Algorithm::HS384 => Keyed::Hs384(Hmac::new_from_slice(key).map_err(bad_key)?),
            Algorithm::HS512 => Keyed::Hs512(Hmac::new_from_slice(key).map_err(bad_key)?),
            _ => return Err(ErrorKind::InvalidAlgorithm.into()),
        })
    }

    fn algorithm(&self) -> Algorithm {
        match self {
            Keyed::Hs256Native(..) | Keyed::Hs256(_) => Algorithm::HS256,
            Keyed::Hs384(_) => Algorithm::HS384,
            Keyed::Hs512(_) => Algorithm::HS512,
        }
    }

    fn tag(&self, msg: &[u8]) -> Vec<u8> {
        fn run<M: Mac + Clone>(mac: &M, msg: &[u8]) -> Vec<u8> {
            let mut mac = mac.clone();
            mac.update(msg);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Keyed::Hs256Native(f, key) => f(key, msg).to_vec(),
            Keyed::Hs256(m) => run(m, msg),
            Keyed::Hs384(m) => run(m, msg),
            Keyed::Hs512(m) => run(m, msg),
        }
    }

    fn check(&self, msg: &[u8], tag: &[u8]) -> bool {
        fn run<M: Mac + Clone>(mac: &M, msg: &[u8], tag: &[u8]) -> bool {
            let mut mac = mac.clone();
            mac.update(msg);
            mac.verify_slice(tag).is_ok() // constant-time comparison
        }
        match self {
            Keyed::Hs256Native(f, key) => {
                use subtle::ConstantTimeEq as _;
                f(key, msg)[..].ct_eq(tag).into()
            }
            Keyed::Hs256(m) => run(m, msg, tag),
            Keyed::Hs384(m) => run(m, msg, tag),
            Keyed::Hs512(m) => run(m, msg, tag),
        }
    }
}

struct HmacSigner(Keyed);
struct HmacVerifier(Keyed);

fn signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Ok(Box::new(HmacSigner(Keyed::new(
        *alg,
        key.family(),
        key.as_bytes(),
    )?)))
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    Ok(Box::new(HmacVerifier(Keyed::new(
        *alg,
        key.family(),
        key.try_get_as_bytes()?,
    )?)))
}

impl Signer<Vec<u8>> for HmacSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        Ok(self.0.tag(msg))
    }
}

impl JwtSigner for HmacSigner {
    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}

impl Verifier<Vec<u8>> for HmacVerifier {
    fn verify(&self, msg: &[u8], tag: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        if self.0.check(msg, tag) {
            Ok(())
        } else {
            Err(signature::Error::new())
        }
    }
}

impl JwtVerifier for HmacVerifier {
    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedder's native HMAC (the guest's host import) gives the same
    /// tags and checks as the `hmac` crate: RFC 4231 test case 2.
    #[test]
    fn a_native_hmac_signs_and_checks_alike() {
        let hex = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let want: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(mac[..], want[..]);
        let native = Keyed::Hs256Native(hmac_sha256, b"Jefe".to_vec());
        let crate_hmac = Keyed::new(Algorithm::HS256, AlgorithmFamily::Hmac, b"Jefe").unwrap();
        let msg = b"what do ya want for nothing?";
        assert_eq!(native.tag(msg), crate_hmac.tag(msg));
        assert!(native.check(msg, &crate_hmac.tag(msg)));
        let mut wrong = native.tag(msg);
        wrong[31] ^= 1;
        assert!(!native.check(msg, &wrong));
        assert!(!native.check(msg, &wrong[..31]), "a short tag");
    }

    /// The provider agrees with jsonwebtoken's own (when the build has it)
    /// and with RFC 4231 test case 2 for HMAC-SHA256.
    #[test]
    fn hmac_tags_are_standard_and_other_algorithms_are_refused() {
        let key = EncodingKey::from_secret(b"Jefe");
        let s = signer(&Algorithm::HS256, &key).unwrap();
        let tag = s.try_sign(b"what do ya want for nothing?").unwrap();
        let hex = hex::encode(&tag);
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let v = verifier(&Algorithm::HS256, &DecodingKey::from_secret(b"Jefe")).unwrap();
        assert!(v.verify(b"what do ya want for nothing?", &tag).is_ok());
        assert!(v.verify(b"what do ya want for nothing!", &tag).is_err());
        assert!(
            v.verify(b"what do ya want for nothing?", &tag[..31].to_vec())
                .is_err()
        );
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            assert_eq!(signer(&alg, &key).unwrap().algorithm(), alg);
        }
        for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            assert!(signer(&alg, &key).is_err(), "{alg:?}");
        }
    }
}
