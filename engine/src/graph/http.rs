//! What the walk reads from a request and how it answers in Higress's
//! words: the path's normal form, the hostname, the bearer credential, the
//! headers a client may not send, and the plain-text 401/403 with their
//! `WWW-Authenticate` challenges.

use std::borrow::Cow;

use crate::token::TokenError;
use crate::{Reply, Request};

/// Headers a client could send to impersonate a consumer; always removed
/// (besides the policy's own consumer header), whatever their case.
const SPOOFABLE: &[&str] = &[
    "x-mse-consumer",
    "x-credential-identifier",
    "x-anonymous-consumer",
];
/// Header-name prefixes of the same kind (Kong's `X-Consumer-*`, `X-Authenticated-*`).
const SPOOFABLE_PREFIXES: &[&str] = &["x-consumer-", "x-authenticated-"];

pub(super) fn spoofable(name: &str) -> bool {
    SPOOFABLE.iter().any(|h| name.eq_ignore_ascii_case(h))
        || SPOOFABLE_PREFIXES.iter().any(|p| {
            name.get(..p.len())
                .is_some_and(|n| n.eq_ignore_ascii_case(p))
        })
}

/// Whether `path` is in normal form, so that routing here and at the upstream
/// agree: it starts with `/` and has no empty (`//`), `.` or `..` segments,
/// and no percent-encoded unreserved character or slash (`%61`, `%2F`).
pub(crate) fn normal_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    // Only the last segment may be empty (a trailing `/`).
    let mut segments = rest.split('/').peekable();
    let mut bad_segment = false;
    while let Some(s) = segments.next() {
        let last = segments.peek().is_none();
        bad_segment |= s == "." || s == ".." || (s.is_empty() && !last);
    }
    let b = path.as_bytes();
    let bad_escape = b.iter().enumerate().any(|(i, &c)| {
        c == b'%'
            && match (b.get(i + 1), b.get(i + 2)) {
                (Some(h), Some(l)) => match (hex(*h), hex(*l)) {
                    (Some(h), Some(l)) => {
                        let d = h * 16 + l;
                        d.is_ascii_alphanumeric() || b"-._~/".contains(&d)
                    }
                    _ => true,
                },
                _ => true,
            }
    });
    !bad_segment && !bad_escape
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

pub(super) fn unauthorized(req: &Request<'_>, presented: bool, why: TokenError) -> Reply {
    let mut challenge = format!("Bearer realm=\"{}\"", realm(req));
    if presented {
        challenge.push_str(", error=\"invalid_token\"");
    }
    plain(401, "Invalid Jwt token", challenge, why.to_string())
}

pub(super) fn forbidden(req: &Request<'_>) -> Reply {
    let challenge = format!(
        "Bearer realm=\"{}\", error=\"insufficient_scope\"",
        realm(req)
    );
    plain(
        403,
        "Access Denied",
        challenge,
        "consumer not allowed by the matching rule".into(),
    )
}

/// RFC 6750 §3.1: a valid token without a scope the resource requires.
pub(super) fn insufficient_scope(req: &Request<'_>, scope: &str) -> Reply {
    let challenge = format!(
        "Bearer realm=\"{}\", error=\"insufficient_scope\", scope=\"{scope}\"",
        realm(req)
    );
    plain(
        403,
        "Access Denied",
        challenge,
        format!("token lacks the required scope `{scope}`"),
    )
}

/// `Bearer <token>` with the scheme in any case and one or more spaces.
pub(super) fn bearer(value: &str) -> Option<&str> {
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let rest = &value[6..];
    let token = rest.trim_start_matches(' ');
    if token.len() == rest.len() {
        return None; // no space after the scheme
    }
    let token = token.trim_end_matches(|c: char| c.is_ascii_whitespace());
    // Bytes, not chars: a token is ASCII (base64url and dots), and anything
    // else in it — Unicode whitespace included — fails its decoding later.
    (!token.is_empty() && !has_ascii_whitespace(token.as_bytes())).then_some(token)
}

/// Whether any byte of `s` is ASCII whitespace, eight bytes at a time: this
/// scan runs over every presented token, and byte by byte it was the
/// guest's largest frame on a repeated token (a 340-byte token, 2 cycles a
/// byte in wasm). ASCII whitespace is below 0x21, and a word has a byte
/// below 0x21 exactly when `(w - 0x21…21) & !w & 0x80…80` is not zero (the
/// "has less" test of Bit Twiddling Hacks, exact for existence with a bound
/// of at most 0x80); such a word is then checked byte by byte.
fn has_ascii_whitespace(s: &[u8]) -> bool {
    const LOW: u64 = u64::from_ne_bytes([0x21; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let (words, rest) = s.as_chunks::<8>();
    let below_0x21 = |w: u64| (w.wrapping_sub(LOW) & !w & HIGH) != 0;
    words
        .iter()
        .any(|w| below_0x21(u64::from_ne_bytes(*w)) && w.iter().any(u8::is_ascii_whitespace))
        || rest.iter().any(u8::is_ascii_whitespace)
}

/// Host without port, lower case (allocates only when it has upper case).
pub(super) fn normalize_host(authority: &str) -> Cow<'_, str> {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                authority
            }
        })
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// The request URL for the challenge's realm, as Higress does: at most 256
/// characters, printable ASCII, quotes and backslashes escaped.
fn realm(req: &Request<'_>) -> String {
    let scheme = if req.scheme.is_empty() {
        "http"
    } else {
        req.scheme
    };
    let query = if req.query.is_empty() {
        String::new()
    } else {
        format!("?{}", req.query)
    };
    let url = format!("{scheme}://{}{}{query}", req.authority, req.path);
    url.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(256)
        .flat_map(|c| {
            if c == '"' || c == '\\' {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

fn plain(status: u16, body: &str, challenge: String, reason: String) -> Reply {
    Reply {
        status,
        headers: vec![
            ("content-type".into(), "text/plain; charset=utf-8".into()),
            ("www-authenticate".into(), challenge),
        ],
        body: body.as_bytes().to_vec(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_strict() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        // Control bytes that are not whitespace pass here and fail decoding.
        assert_eq!(bearer("Bearer a\x0bb\x01"), Some("a\x0bb\x01"));
        for bad in [
            "Bearerabc",
            "Bearer",
            "Bearer ",
            "Basic abc",
            "Bearer a b",
            "xBearer abc",
            "Bearer\tabc",
            "Bearer abc\x0cdef",
            "Bearer a\rb",
        ] {
            assert_eq!(bearer(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn whitespace_is_found_at_every_position_and_only_whitespace() {
        for len in [0usize, 1, 7, 8, 9, 16, 23, 340] {
            let clean: Vec<u8> = (0..len).map(|i| b"aZ09-_.~\x7f\x80\xff!"[i % 12]).collect();
            assert!(!has_ascii_whitespace(&clean), "{len}");
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut s = clean.clone();
                    s[at] = byte;
                    assert_eq!(
                        has_ascii_whitespace(&s),
                        byte.is_ascii_whitespace(),
                        "{byte:#04x} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn only_normal_paths_pass() {
        for ok in ["/", "/a", "/a/", "/a/b.c", "/a%20b", "/caf%C3%A9", "/a..b"] {
            assert!(normal_path(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "//admin",
            "/%2e%2E/x",
            "/a//b",
            "/./a",
            "/a/..",
            "/a/../b",
            "/%61dmin",
            "/a%2Fb",
            "/a%",
            "/a%zz",
        ] {
            assert!(!normal_path(bad), "{bad}");
        }
    }

    #[test]
    fn spoofable_headers() {
        for h in [
            "X-Mse-Consumer",
            "x-consumer-groups",
            "X-Authenticated-Userid",
            "x-anonymous-consumer",
        ] {
            assert!(spoofable(h), "{h}");
        }
        for h in ["authorization", "x-consumer", "x-request-id", "é"] {
            assert!(!spoofable(h), "{h}");
        }
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(normalize_host("API.Example.com:8080"), "api.example.com");
        assert_eq!(normalize_host("[::1]:8080"), "::1");
        assert_eq!(normalize_host("test.com"), "test.com");
        assert_eq!(normalize_host("test.com."), "test.com");
        assert_eq!(normalize_host(""), "");
    }
}
