//! Signing keys: which algorithm signs a scope's tokens, and the words the
//! engine and its host use about asymmetric keys.
//!
//! HS256 with the client secret (or the scope's `signing_key`) stays the
//! Higress-compatible default and is computed by the engine itself. RS256,
//! ES256 and EdDSA keys are held by the host: the engine asks it for the
//! `kid` that signs now, for a signature, and whether a signature verifies
//! (the WIT `keys` interface). Private keys never enter the engine's memory
//! in the guest, and the guest carries no RSA or elliptic-curve code.
//!
//! Each key is bound to one algorithm (RFC 8725 §3.1): a token is checked
//! only with the algorithm its scope signs with, and the host refuses a
//! verification whose algorithm is not its key's.

/// A JWS algorithm Warden signs or verifies with (RFC 7518, RFC 8037).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    HS256,
    RS256,
    RS384,
    RS512,
    PS256,
    ES256,
    ES384,
    EdDSA,
}

impl Alg {
    /// Every algorithm, in the order the names are listed in messages.
    pub const ALL: [Alg; 8] = [
        Alg::HS256,
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
    ];

    /// The algorithms the host's own keys sign with (`signing_alg`).
    pub const HOST_SIGNING: [Alg; 3] = [Alg::RS256, Alg::ES256, Alg::EdDSA];

    /// The JOSE name (`alg` header value).
    pub fn name(self) -> &'static str {
        match self {
            Alg::HS256 => "HS256",
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
        }
    }

    /// The algorithm named exactly `name` (JOSE names are case-sensitive).
    pub fn parse(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether the key is asymmetric (held by the host or published in a JWKS).
    pub fn is_asymmetric(self) -> bool {
        self != Alg::HS256
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The key a signature is to be checked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRef<'a> {
    /// One of the host's own signing keys, by `kid`.
    Own(&'a str),
    /// A public key given as a JWK (RFC 7517) in the policy.
    Jwk(&'a str),
    /// A key of the JWK Set the host fetches from `url`: the one named
    /// `kid`, or (without one) the only key that fits the algorithm.
    Remote { url: &'a str, kid: Option<&'a str> },
}

/// What the host found checking a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigCheck {
    Valid,
    /// The key exists, for this algorithm, and the signature is wrong.
    Invalid,
    /// No such key (or not one for this algorithm).
    UnknownKey,
}

#[cfg(feature = "rust-crypto")]
mod keyring;
#[cfg(feature = "rust-crypto")]
pub use keyring::{HostKey, KeyError, KeyRing, verify_jwk};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for a in Alg::ALL {
            assert_eq!(Alg::parse(a.name()), Some(a));
        }
        assert_eq!(Alg::parse("es256"), None);
        assert_eq!(Alg::parse("none"), None);
        assert_eq!(Alg::parse("EDDSA"), None);
    }
}
