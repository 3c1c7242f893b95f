//! Where a route sends traffic: the typed form of an `upstream` setting.
//!
//! A route's `upstream` (and `warden serve --upstream`) is parsed here, once,
//! into an [`Upstream`]: the built-in echo upstream, or an HTTP server given
//! by its authority and a base path — spoken to in HTTP/1.1 (`http://`) or
//! in HTTP/2 with prior knowledge (`h2c://`, or `grpc://`: gRPC servers). Everything a gateway could not use is
//! refused here, with a reason, so that a policy `warden check` accepts never
//! names an upstream that `warden serve` cannot reach: credentials, a query
//! or fragment, a port that is not a number, characters a URL path cannot
//! hold. The decision carries the parsed value; hosts never parse it again.

use std::fmt;
use std::str::FromStr;

/// A place to forward requests to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// The built-in echo upstream: answers with the request it received.
    Echo,
    /// An HTTP/1.1 server.
    Http(HttpUpstream),
    /// An HTTP/2 server without TLS, spoken to with prior knowledge
    /// (RFC 9113 §3.3): a gRPC server. Requests and responses stream both
    /// ways, trailers included.
    H2c(HttpUpstream),
}

/// An HTTP upstream: `{scheme}://{authority}{base_path}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUpstream {
    /// `host`, `host:port`, `[v6]` or `[v6]:port`; the host in lower case.
    pub authority: String,
    /// Prepended to the request's path: empty, or `/` and segments, never
    /// ending in `/`.
    pub base_path: String,
}

/// Why an `upstream` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    #[error(
        "expected `echo`, `http://host[:port][/base]` or `h2c://host[:port][/base]` (`grpc://` is the same)"
    )]
    Shape,
    #[error("https upstreams are not supported yet; use http")]
    Https,
    #[error("credentials in the URL (`user:pass@`) are not allowed")]
    Credentials,
    #[error("a query string is not allowed")]
    Query,
    #[error("a fragment is not allowed")]
    Fragment,
    #[error("no host")]
    NoHost,
    #[error("the host `{0}` is not a host name or IP address")]
    Host(String),
    #[error("the port `{0}` is not a number from 1 to 65535")]
    Port(String),
    #[error("the base path may hold only URL path characters (found `{0}`)")]
    PathChar(char),
    #[error("the base path may not have empty, `.` or `..` segments")]
    PathSegment,
}

impl FromStr for Upstream {
    type Err = UpstreamError;

    fn from_str(s: &str) -> Result<Upstream, UpstreamError> {
        if s == "echo" {
            return Ok(Upstream::Echo);
        }
        let scheme_end = s.find("://").ok_or(UpstreamError::Shape)?;
        let rest = &s[scheme_end + 3..];
        let h2c = match &s[..scheme_end] {
            scheme if scheme.eq_ignore_ascii_case("http") => false,
            scheme if scheme.eq_ignore_ascii_case("h2c") || scheme.eq_ignore_ascii_case("grpc") => {
                true
            }
            scheme
                if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("grpcs") =>
            {
                return Err(UpstreamError::Https);
            }
            _ => return Err(UpstreamError::Shape),
        };
        if rest.contains('#') {
            return Err(UpstreamError::Fragment);
        }
        if rest.contains('?') {
            return Err(UpstreamError::Query);
        }
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        if authority.contains('@') {
            return Err(UpstreamError::Credentials);
        }
        let http = HttpUpstream {
            authority: parse_authority(authority)?,
            base_path: parse_base_path(path)?,
        };
        Ok(if h2c {
            Upstream::H2c(http)
        } else {
            Upstream::Http(http)
        })
    }
}

/// `host[:port]`, `[v6][:port]`: checked, the host lower-cased.
fn parse_authority(authority: &str) -> Result<String, UpstreamError> {
    if authority.is_empty() {
        return Err(UpstreamError::NoHost);
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| UpstreamError::Host(authority.into()))?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(UpstreamError::Host(format!("[{v6}]")));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| UpstreamError::Host(authority.into()))?,
            ),
        };
        (&authority[..v6.len() + 2], port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(UpstreamError::NoHost);
        }
        let label_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
        if !host.bytes().all(label_char) || host.starts_with('.') || host.contains("..") {
            return Err(UpstreamError::Host(host.into()));
        }
        (host, port)
    };
    let mut out = host.to_ascii_lowercase();
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0);
        if !valid {
            return Err(UpstreamError::Port(port.into()));
        }
        out.push(':');
        out.push_str(port);
    }
    Ok(out)
}

/// A base path: `/`-separated segments of RFC 3986 `pchar`s; a trailing `/`
/// is dropped (`http://x/api/` forwards `/a` as `/api/a`).
fn parse_base_path(path: &str) -> Result<String, UpstreamError> {
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return Ok(String::new());
    }
    let pchar = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@%/".contains(c);
    if let Some(bad) = path.chars().find(|&c| !pchar(c)) {
        return Err(UpstreamError::PathChar(bad));
    }
    if path[1..]
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(UpstreamError::PathSegment);
    }
    Ok(path.to_owned())
}

/// An [`Upstream`] borrowed from where it was read (a packed forward), so
/// that a host forwards to it without copying its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamRef<'a> {
    Echo,
    Http(HttpUpstreamRef<'a>),
    H2c(HttpUpstreamRef<'a>),
}

/// An [`HttpUpstream`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpUpstreamRef<'a> {
    pub authority: &'a str,
    pub base_path: &'a str,
}

impl Upstream {
    /// This upstream, borrowed.
    pub fn borrowed(&self) -> UpstreamRef<'_> {
        match self {
            Upstream::Echo => UpstreamRef::Echo,
            Upstream::Http(h) => UpstreamRef::Http(h.borrowed()),
            Upstream::H2c(h) => UpstreamRef::H2c(h.borrowed()),
        }
    }
}

impl HttpUpstream {
    /// This upstream, borrowed.
    pub fn borrowed(&self) -> HttpUpstreamRef<'_> {
        HttpUpstreamRef {
            authority: &self.authority,
            base_path: &self.base_path,
        }
    }
}

impl UpstreamRef<'_> {
    /// An owned copy.
    pub fn to_upstream(self) -> Upstream {
        match self {
            UpstreamRef::Echo => Upstream::Echo,
            UpstreamRef::Http(h) => Upstream::Http(h.to_upstream()),
            UpstreamRef::H2c(h) => Upstream::H2c(h.to_upstream()),
        }
    }
}

impl HttpUpstreamRef<'_> {
    /// An owned copy.
    pub fn to_upstream(self) -> HttpUpstream {
        HttpUpstream {
            authority: self.authority.to_owned(),
            base_path: self.base_path.to_owned(),
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.borrowed().fmt(f)
    }
}

impl fmt::Display for UpstreamRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamRef::Echo => f.write_str("echo"),
            UpstreamRef::Http(http) => write!(f, "http://{}{}", http.authority, http.base_path),
            UpstreamRef::H2c(http) => write!(f, "h2c://{}{}", http.authority, http.base_path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(authority: &str, base_path: &str) -> Upstream {
        Upstream::Http(HttpUpstream {
            authority: authority.into(),
            base_path: base_path.into(),
        })
    }

    #[test]
    fn accepted_forms() {
        for (text, want) in [
            ("echo", Upstream::Echo),
            ("http://127.0.0.1:9000", http("127.0.0.1:9000", "")),
            ("http://127.0.0.1:9000/api/", http("127.0.0.1:9000", "/api")),
            ("HTTP://Svc.Local/a/b", http("svc.local", "/a/b")),
            ("http://[::1]:8080/x", http("[::1]:8080", "/x")),
            ("http://[::1]", http("[::1]", "")),
            ("http://svc_a:80/%7Ev1", http("svc_a:80", "/%7Ev1")),
            (
                "h2c://127.0.0.1:50051",
                Upstream::H2c(HttpUpstream {
                    authority: "127.0.0.1:50051".into(),
                    base_path: String::new(),
                }),
            ),
            (
                "GRPC://Grpc.Local:9/svc",
                Upstream::H2c(HttpUpstream {
                    authority: "grpc.local:9".into(),
                    base_path: "/svc".into(),
                }),
            ),
        ] {
            assert_eq!(text.parse::<Upstream>(), Ok(want.clone()), "{text}");
            // Display is the canonical text, and parses back to itself.
            assert_eq!(want.to_string().parse::<Upstream>(), Ok(want));
        }
    }

    #[test]
    fn refused_forms_say_why() {
        use UpstreamError as E;
        for (text, want) in [
            ("", E::Shape),
            ("/path", E::Shape),
            ("ftp://x", E::Shape),
            ("x y", E::Shape),
            ("https://x", E::Https),
            ("grpcs://x", E::Https),
            ("h2://x", E::Shape),
            ("http://u:p@x:80", E::Credentials),
            ("http://x:80/?a=1", E::Query),
            ("http://x/#top", E::Fragment),
            ("http://x:notaport", E::Port("notaport".into())),
            ("http://x:0", E::Port("0".into())),
            ("http://x:65536", E::Port("65536".into())),
            ("http://x:", E::Port("".into())),
            ("http://", E::NoHost),
            ("http://:80", E::NoHost),
            ("http://a b", E::Host("a b".into())),
            ("http://x:80:81", E::Port("80:81".into())),
            ("http://[zz]:1", E::Host("[zz]".into())),
            ("http://[::1]x", E::Host("[::1]x".into())),
            ("http://x/a b", E::PathChar(' ')),
            ("http://x/a/../b", E::PathSegment),
            ("http://x//a", E::PathSegment),
        ] {
            assert_eq!(text.parse::<Upstream>(), Err(want), "{text}");
        }
    }
}
