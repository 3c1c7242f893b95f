//! Client secrets stored as password hashes (PHC strings): argon2 and PBKDF2.
//!
//! A policy may hold `client_secret hash "$argon2id$v=19$m=19456,t=2,p=1$…"`
//! instead of the secret itself. Compiling the policy checks the string here
//! ([`SecretHash::parse`]): a known algorithm, well-formed salt and hash, and
//! cost parameters inside bounds — high enough to be worth hashing, low
//! enough that one token request cannot tie up a gateway core for seconds.
//! Checking a presented secret is the host's job ([`crate::Services::verify_secret_hash`]):
//! the hash is slow on purpose, so the wasmtime host runs it natively, off the
//! guest's memory and time budget. [`verify`] (feature `hash-verify`) is that
//! native check, shared by the wasmtime host and [`crate::FixedServices`].

use std::fmt;

use password_hash::{Ident, PasswordHash};

/// The algorithms a stored secret may be hashed with.
const ALGORITHMS: &[&str] = &[
    "argon2id",
    "argon2i",
    "argon2d",
    "pbkdf2-sha256",
    "pbkdf2-sha512",
];

/// Cost bounds. Argon2 memory in KiB (OWASP's weakest recommended setting is
/// 7 MiB with t=5; its default 19 MiB with t=2; RFC 9106's 64 MiB is the
/// ceiling here), iterations and lanes; PBKDF2 iterations (OWASP: 600,000
/// for SHA-256). At the ceilings one check costs ≈ 0.1–0.3 s of a core.
const ARGON2_MIN_MEMORY_KIB: u32 = 7 * 1024;
const ARGON2_MAX_MEMORY_KIB: u32 = 64 * 1024;
const ARGON2_MAX_TIME: u32 = 5;
const ARGON2_MAX_LANES: u32 = 4;
const PBKDF2_MIN_ROUNDS: u32 = 10_000;
const PBKDF2_MAX_ROUNDS: u32 = 1_000_000;

/// A stored client secret: a validated PHC string. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash {
    phc: String,
    algorithm: &'static str,
}

impl SecretHash {
    /// Check a PHC string; the error says what is wrong with it (it never
    /// repeats the hash).
    pub fn parse(phc: &str) -> Result<SecretHash, String> {
        let hash = PasswordHash::new(phc).map_err(|e| {
            format!("not a PHC hash string ({e}); expected `$argon2id$v=19$m=…,t=…,p=…$salt$hash` or `$pbkdf2-sha256$i=…,l=…$salt$hash`")
        })?;
        let algorithm = ALGORITHMS
            .iter()
            .copied()
            .find(|a| hash.algorithm == Ident::new_unwrap(a))
            .ok_or_else(|| {
                format!(
                    "unsupported hash algorithm `{}`; use one of {}",
                    hash.algorithm,
                    ALGORITHMS.join(", ")
                )
            })?;
        if hash.salt.is_none() || hash.hash.is_none() {
            return Err("the PHC string has no salt or no hash".into());
        }
        let param = |name: &str| hash.params.get_decimal(name);
        if algorithm.starts_with("argon2") {
            let (m, t, p) = (param("m"), param("t"), param("p"));
            let (Some(m), Some(t), Some(p)) = (m, t, p) else {
                return Err("an argon2 hash needs its `m`, `t` and `p` parameters".into());
            };
            if m > ARGON2_MAX_MEMORY_KIB || t > ARGON2_MAX_TIME || p > ARGON2_MAX_LANES {
                return Err(format!(
                    "argon2 cost m={m},t={t},p={p} is above the limits m≤{ARGON2_MAX_MEMORY_KIB},t≤{ARGON2_MAX_TIME},p≤{ARGON2_MAX_LANES}: one token request would hold a core too long"
                ));
            }
            if m < ARGON2_MIN_MEMORY_KIB || t == 0 || p == 0 || m < 8 * p {
                return Err(format!(
                    "argon2 cost m={m},t={t},p={p} is too weak or invalid: use m≥{ARGON2_MIN_MEMORY_KIB} (KiB), t≥1, p≥1 and m≥8p"
                ));
            }
        } else {
            let Some(i) = param("i") else {
                return Err("a PBKDF2 hash needs its `i` (iterations) parameter".into());
            };
            if !(PBKDF2_MIN_ROUNDS..=PBKDF2_MAX_ROUNDS).contains(&i) {
                return Err(format!(
                    "PBKDF2 with {i} iterations is outside {PBKDF2_MIN_ROUNDS}..={PBKDF2_MAX_ROUNDS}"
                ));
            }
        }
        Ok(SecretHash {
            phc: phc.to_owned(),
            algorithm,
        })
    }

    /// The PHC string, for the host's check.
    pub fn phc(&self) -> &str {
        &self.phc
    }

    /// `argon2id`, `pbkdf2-sha256`, …
    pub fn algorithm(&self) -> &'static str {
        self.algorithm
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({}, <redacted>)", self.algorithm)
    }
}

/// Whether `presented` hashes to `phc` (argon2 or PBKDF2). Anything that
/// is not a valid, supported PHC string — including one that [`SecretHash::parse`]
/// would refuse for its cost — is `false`.
#[cfg(feature = "hash-verify")]
pub fn verify(phc: &str, presented: &[u8]) -> bool {
    use password_hash::PasswordVerifier;
    if SecretHash::parse(phc).is_err() {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let verifiers: [&dyn PasswordVerifier; 2] = [&argon2::Argon2::default(), &pbkdf2::Pbkdf2];
    verifiers
        .iter()
        .any(|v| v.verify_password(presented, &hash).is_ok())
}

/// Without the `hash-verify` feature nothing verifies: fail closed.
#[cfg(not(feature = "hash-verify"))]
pub fn verify(_phc: &str, _presented: &[u8]) -> bool {
    false
}

/// A PHC string for `secret`: argon2id with OWASP's parameters (19 MiB,
/// t=2, p=1) and a salt from `salt` (16 random bytes from the caller).
#[cfg(feature = "hash-verify")]
pub fn hash_argon2id(secret: &[u8], salt: &[u8; 16]) -> Result<String, String> {
    use password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(secret, &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(all(test, feature = "hash-verify"))]
mod tests {
    use super::*;

    #[test]
    fn argon2_and_pbkdf2_round_trip() {
        let phc = hash_argon2id(b"s3cret", &[7; 16]).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(SecretHash::parse(&phc).is_ok());
        assert!(verify(&phc, b"s3cret"));
        assert!(!verify(&phc, b"s3cres"));
        assert!(!verify(&phc, b""));

        use password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(&[9; 16]).unwrap();
        let params = pbkdf2::Params {
            rounds: 20_000,
            output_length: 32,
        };
        let pbkdf2 = pbkdf2::Pbkdf2
            .hash_password_customized(b"s3cret", None, None, params, &salt)
            .unwrap()
            .to_string();
        assert!(
            pbkdf2.starts_with("$pbkdf2-sha256$i=20000,l=32$"),
            "{pbkdf2}"
        );
        assert_eq!(
            SecretHash::parse(&pbkdf2).unwrap().algorithm(),
            "pbkdf2-sha256"
        );
        assert!(verify(&pbkdf2, b"s3cret"));
        assert!(!verify(&pbkdf2, b"S3cret"));
    }

    #[test]
    fn bad_phc_strings_are_refused_with_a_reason() {
        for (phc, reason) in [
            ("s3cret", "not a PHC hash string"),
            ("$bcrypt$x$y", "not a PHC hash string"),
            (
                "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
                "unsupported hash algorithm",
            ),
            (
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
                "no salt or no hash",
            ),
            (
                "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "above the limits",
            ),
            (
                "$pbkdf2-sha256$i=1000,l=32$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "outside",
            ),
        ] {
            let err = SecretHash::parse(phc).unwrap_err();
            assert!(err.contains(reason), "{phc}: {err}");
        }
        // A hash the compiler refuses never verifies either.
        assert!(!verify(
            "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
            b"x"
        ));
    }

    #[test]
    fn debug_hides_the_hash() {
        let phc = hash_argon2id(b"s3cret", &[1; 16]).unwrap();
        let h = SecretHash::parse(&phc).unwrap();
        let shown = format!("{h:?}");
        assert_eq!(shown, "SecretHash(argon2id, <redacted>)");
    }
}
