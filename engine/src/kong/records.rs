//! What Kong keeps in its database, as Warden keeps it in the store: an
//! authorization code's grant, and a refresh token's. Values are JSON;
//! keys are hashes of the code or token ([`crate::store::key`]).

use serde::{Deserialize, Serialize};

/// A code's key space and lifetime (Kong: 300 s).
pub(super) const CODE: &str = "code";
pub(super) const CODE_TTL: u64 = 300;
/// A refresh token's key space.
pub(super) const REFRESH: &str = "refresh";

/// What an authorization code grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct CodeGrant {
    pub client_id: String,
    pub authenticated_userid: Option<String>,
    pub scope: Option<String>,
    /// PKCE (RFC 7636): the S256 challenge, base64url without padding.
    pub challenge: Option<String>,
    /// The plugin (scope) that issued the code.
    pub plugin: String,
    /// The audience its tokens get (`default`, or the route of a
    /// non-global plugin): a code is redeemed where it was issued.
    pub aud: String,
}

/// What a refresh token grants, and the access token it was issued with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct RefreshGrant {
    pub client_id: String,
    pub authenticated_userid: Option<String>,
    pub scope: Option<String>,
    pub aud: String,
    /// The current access token's `jti` and expiry: revoked when it is refreshed.
    pub jti: String,
    pub exp: u64,
}

pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// A stored value that does not decode is treated as absent (closed).
pub(super) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}
