//! The authorization page's defence against cross-site request forgery: a
//! double-submit token bound to the request it approves.
//!
//! The page sets a random nonce in a cookie ([`COOKIE`]: `__Host-`, `Secure`,
//! `HttpOnly`, `SameSite=Strict`, `Path=/`) and puts into its form a token
//! `EXP.MAC`: an HMAC-SHA256, keyed from the scope's `signing_key` (a key
//! derived for this use alone), over the nonce, the plugin, the expiry and
//! every field the form carries (response type, client, redirect URI, scope,
//! state, PKCE challenge). The POST must bring the same cookie and a token
//! that verifies — in constant time — for the fields it carries, before
//! [`TTL`] runs out: another site can neither read the token nor make one,
//! and a token cannot approve any request but the one the page showed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::Params;
use crate::model::Secret;
use crate::{Request, Services};

/// The cookie holding the nonce.
pub(super) const COOKIE: &str = "__Host-warden-csrf";
/// How long a page's form may be submitted: 10 minutes.
pub(super) const TTL: u64 = 600;
/// The form field holding the token.
pub(super) const FIELD: &str = "csrf_token";
/// The request's fields a form carries (and its token binds), in order.
pub(super) const FIELDS: [&str; 7] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// The values of [`FIELDS`] (absent, or a string).
pub(super) type Fields<'a> = [Option<&'a str>; 7];

/// The fields a POST carries.
pub(super) fn fields(params: &Params) -> Fields<'_> {
    FIELDS.map(|f| params.str(f))
}

/// A new nonce: 16 random bytes, base64url.
pub(super) fn new_nonce(services: &dyn Services) -> String {
    let mut b = [0u8; 16];
    services.random_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// The `Set-Cookie` value for `nonce`.
pub(super) fn set_cookie(nonce: &str) -> String {
    format!("{COOKIE}={nonce}; Path=/; Max-Age={TTL}; Secure; HttpOnly; SameSite=Strict")
}

/// The nonce of the request's [`COOKIE`], if it has one of the right shape.
pub(super) fn cookie_nonce<'r>(req: &Request<'r>) -> Option<&'r str> {
    req.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .find(|n| {
            n.len() == 22
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        })
}

/// The MAC of one form.
fn mac(key: &Secret, plugin: &str, nonce: &str, exp: u64, fields: &Fields<'_>) -> [u8; 32] {
    // Domain separation: a key derived from the signing key for this use
    // alone, so that no MAC here is ever a token signature, or one there.
    let derived = keyed(key.expose(), &[b"warden authorization page csrf v1"]);
    let mut parts: Vec<&[u8]> = Vec::with_capacity(2 * FIELDS.len() + 6);
    let lens: Vec<[u8; 8]> = [plugin, nonce]
        .iter()
        .map(|s| s.len())
        .chain(fields.iter().map(|f| f.map_or(0, str::len)))
        .map(|n| (n as u64).to_be_bytes())
        .collect();
    let exp = exp.to_be_bytes();
    parts.extend([
        &lens[0][..],
        plugin.as_bytes(),
        &lens[1][..],
        nonce.as_bytes(),
        &exp[..],
    ]);
    for (i, f) in fields.iter().enumerate() {
        // Absent and empty differ: a presence byte, then length and bytes.
        parts.push(if f.is_some() { b"\x01" } else { b"\x00" });
        parts.push(&lens[i + 2]);
        parts.push(f.unwrap_or("").as_bytes());
    }
    keyed(&derived, &parts)
}

fn keyed(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// The token for a form of `plugin` carrying `fields`, with the cookie's
/// `nonce`, valid until `exp`.
pub(super) fn token(
    key: &Secret,
    plugin: &str,
    nonce: &str,
    exp: u64,
    fields: &Fields<'_>,
) -> String {
    format!(
        "{exp}.{}",
        URL_SAFE_NO_PAD.encode(mac(key, plugin, nonce, exp, fields))
    )
}

/// Whether `presented` is a token, not expired at `now`, made for `nonce`
/// (the cookie's) and these fields. The MAC is compared in constant time.
pub(super) fn verify(
    key: &Secret,
    plugin: &str,
    nonce: Option<&str>,
    fields: &Fields<'_>,
    presented: Option<&str>,
    now: u64,
) -> bool {
    let (Some(nonce), Some(presented)) = (nonce, presented) else {
        return false;
    };
    let Some((exp, tag)) = presented.split_once('.') else {
        return false;
    };
    let Ok(exp) = exp.parse::<u64>() else {
        return false;
    };
    if exp <= now || exp > now.saturating_add(TTL) {
        return false;
    }
    let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
        return false;
    };
    mac(key, plugin, nonce, exp, fields).ct_eq(&tag[..]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn a_token_verifies_only_for_its_nonce_fields_plugin_and_time() {
        let key = Secret::new("0123456789abcdef0123456789abcdef");
        let fields: Fields<'_> = [
            Some("code"),
            Some("app"),
            Some("http://x/cb"),
            Some("email"),
            None,
            Some("ch"),
            Some("S256"),
        ];
        let t = token(
            &key,
            "rule `api`",
            "nonce-aaaaaaaaaaaaaaaa",
            NOW + TTL,
            &fields,
        );
        let ok = |key: &Secret, plugin, nonce, fields: &Fields<'_>, t: &str, now| {
            verify(key, plugin, Some(nonce), fields, Some(t), now)
        };
        assert!(ok(
            &key,
            "rule `api`",
            "nonce-aaaaaaaaaaaaaaaa",
            &fields,
            &t,
            NOW
        ));
        assert!(ok(
            &key,
            "rule `api`",
            "nonce-aaaaaaaaaaaaaaaa",
            &fields,
            &t,
            NOW + TTL - 1
        ));
        // Expired, or an expiry further than a page gives.
        assert!(!ok(
            &key,
            "rule `api`",
            "nonce-aaaaaaaaaaaaaaaa",
            &fields,
            &t,
            NOW + TTL
        ));
        let far = token(
            &key,
            "rule `api`",
            "nonce-aaaaaaaaaaaaaaaa",
            NOW + TTL + 1,
            &fields,
        );
        assert!(!ok(
            &key,
            "rule `api`",
            "nonce-aaaaaaaaaaaaaaaa",
            &fields,
            &far,
            NOW
        ));
        // Another nonce, plugin, key or any field.
        assert!(!ok(
            &key,
            "rule `api`",
            "nonce-bbbbbbbbbbbbbbbb",
            &fields,
            &t,
            NOW
        ));
        assert!(!ok(
            &key,
            "instance",
            "nonce-aaaaaaaaaaaaaaaa",
            &fields,
            &t,
            NOW
        ));
        let other = Secret::new("0123456789abcdef0123456789abcdeX");
        assert!(!ok(
            &other,
            "rule `api`",
            "nonce-aaaaaaaaaaaaaaaa",
            &fields,
            &t,
            NOW
        ));
        for i in 0..FIELDS.len() {
            let mut changed = fields;
            changed[i] = match fields[i] {
                Some(_) => None,
                None => Some(""),
            };
            assert!(
                !ok(
                    &key,
                    "rule `api`",
                    "nonce-aaaaaaaaaaaaaaaa",
                    &changed,
                    &t,
                    NOW
                ),
                "{}",
                FIELDS[i]
            );
            changed[i] = Some("x");
            assert!(
                !ok(
                    &key,
                    "rule `api`",
                    "nonce-aaaaaaaaaaaaaaaa",
                    &changed,
                    &t,
                    NOW
                ),
                "{}",
                FIELDS[i]
            );
        }
        // Values cannot slide from one field into the next.
        let a: Fields<'_> = [Some("ab"), Some("c"), None, None, None, None, None];
        let b: Fields<'_> = [Some("a"), Some("bc"), None, None, None, None, None];
        let ta = token(&key, "p", "n", NOW + 1, &a);
        assert!(!ok(&key, "p", "n", &b, &ta, NOW));
        // Tampered, truncated, missing.
        let (exp, tag) = t.split_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(tag).unwrap();
        bytes[0] ^= 1;
        let flipped = format!("{exp}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        let later = format!("{}.{tag}", NOW + TTL - 5);
        for bad in [
            flipped.as_str(),
            &t[..t.len() - 1],
            tag,
            "",
            ".",
            later.as_str(),
        ] {
            assert!(
                !ok(
                    &key,
                    "rule `api`",
                    "nonce-aaaaaaaaaaaaaaaa",
                    &fields,
                    bad,
                    NOW
                ),
                "{bad}"
            );
        }
        assert!(!verify(&key, "rule `api`", None, &fields, Some(&t), NOW));
        assert!(!verify(
            &key,
            "rule `api`",
            Some("nonce-aaaaaaaaaaaaaaaa"),
            &fields,
            None,
            NOW
        ));
    }

    #[test]
    fn the_nonce_comes_from_its_cookie_only() {
        let headers = [
            ("Cookie", "a=1; __Host-warden-csrfX=zzzzzzzzzzzzzzzzzzzzzz"),
            (
                "cookie",
                "b=2;  __Host-warden-csrf=AAAAAAAAAAAAAAAAAAAAAA ; c=3",
            ),
        ];
        let req = Request {
            headers: &headers,
            ..Default::default()
        };
        assert_eq!(cookie_nonce(&req), Some("AAAAAAAAAAAAAAAAAAAAAA"));
        let headers = [(
            "cookie",
            "__Host-warden-csrf=short; __Host-warden-csrf=<script>xxxxxxxxxxxxxx",
        )];
        let req = Request {
            headers: &headers,
            ..Default::default()
        };
        assert_eq!(cookie_nonce(&req), None);
        let services = crate::FixedServices::at(NOW);
        let n = new_nonce(&services);
        let cookie = set_cookie(&n);
        assert!(cookie.starts_with("__Host-warden-csrf="), "{cookie}");
        for attr in [
            "; Path=/",
            "; Secure",
            "; HttpOnly",
            "; SameSite=Strict",
            "; Max-Age=600",
        ] {
            assert!(cookie.contains(attr), "{cookie}");
        }
        let header = [(
            "cookie",
            format!("x=1; {}", cookie.split(';').next().unwrap()),
        )];
        let pairs: Vec<(&str, &str)> = header.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let req = Request {
            headers: &pairs,
            ..Default::default()
        };
        assert_eq!(cookie_nonce(&req), Some(n.as_str()));
    }
}
