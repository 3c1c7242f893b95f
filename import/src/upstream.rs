//! A Kong service's upstream as a Warden `upstream` URL.
//!
//! From `url`, or from `protocol` (default http), `host`, `port` (default
//! 80) and `path`; giving both forms is refused as ambiguous. `http`
//! upstreams become `http://…`, `grpc` ones `h2c://…` (HTTP/2 without TLS,
//! as Kong speaks to them); `https` and `grpcs` are refused as not supported
//! yet, any other protocol (tcp, ws, …) as having no equivalent. The result
//! always spells out the port: `http://host:port/path`.

use crate::yaml::{Map, Res};

/// `http://host:port/path` (or `h2c://…`) from `url` or
/// `protocol`/`host`/`port`/`path`.
pub(crate) fn upstream(map: &Map<'_>, what: &str) -> Res<String> {
    let (protocol, host, port, path, at) = if let Some(url) = map.get("url") {
        for key in ["protocol", "host", "port", "path"] {
            if map.get(key).is_some() {
                return Err(map.key_fault(
                    key,
                    format!("{what}: give either `url` or `{key}` and the other parts, not both"),
                ));
            }
        }
        let text = url.text("`url`")?;
        let parts = split_url(text).map_err(|why| url.fault(format!("{what}: `url` {why}")))?;
        (parts.0, parts.1, parts.2, parts.3, url)
    } else {
        let protocol = map
            .text("protocol", what)?
            .unwrap_or_else(|| "http".to_owned());
        let host = map
            .text("host", what)?
            .ok_or_else(|| map.node.fault(format!("{what} needs a `url` or a `host`")))?;
        let port = match map.get("port") {
            Some(p) => Some(p.whole("`port`")?),
            None => None,
        };
        let path = map.text("path", what)?;
        let at = map.get("protocol").unwrap_or_else(|| map.node.clone());
        (protocol, host, port, path, at)
    };
    let scheme = match protocol.to_ascii_lowercase().as_str() {
        "http" => "http",
        "grpc" => "h2c",
        p @ ("https" | "grpcs") => {
            return Err(at.fault(format!(
                "{what}: {p} upstreams are not supported yet (Warden forwards without TLS only)"
            )));
        }
        other => {
            return Err(at.fault(format!(
                "{what}: protocol `{other}` has no Warden equivalent"
            )));
        }
    };
    let port = port.unwrap_or(80);
    if !(1..=65535).contains(&port) {
        return Err(map.key_fault("port", format!("{what}: port {port} is out of range")));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || "/?#@[]".contains(c))
        && !host.starts_with('[')
    {
        return Err(at.fault(format!("{what}: `{host}` is not a host name")));
    }
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let path = path.unwrap_or_default();
    if !path.is_empty() && !path.starts_with('/') {
        return Err(map.key_fault("path", format!("{what}: `path` must start with `/`")));
    }
    let upstream = format!("{scheme}://{host}:{port}{path}");
    // What the policy compiler will accept, checked here, at the YAML line.
    upstream.parse::<warden_engine::Upstream>().map_err(|why| {
        at.fault(format!(
            "{what}: `{upstream}` is not an upstream Warden can reach: {why}"
        ))
    })?;
    Ok(upstream)
}

/// `scheme://host[:port][/path]` → (scheme, host, port, path).
fn split_url(url: &str) -> Result<(String, String, Option<u64>, Option<String>), String> {
    let (scheme, rest) = url.split_once("://").ok_or("needs a scheme (`http://…`)")?;
    if rest.contains(['?', '#']) {
        return Err("may not have a query or fragment".into());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_owned())),
        None => (rest, None),
    };
    if authority.contains('@') {
        return Err("may not carry user information".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (inner, after) = v6.split_once(']').ok_or("has an unclosed `[`")?;
        (format!("[{inner}]"), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err("has no host".into());
    }
    let port = port
        .map(|p| {
            p.parse::<u64>()
                .map_err(|_| format!("has a bad port `{p}`"))
        })
        .transpose()?;
    Ok((scheme.to_owned(), host, port, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = |u: &str| split_url(u).unwrap();
        assert_eq!(ok("http://h"), ("http".into(), "h".into(), None, None));
        assert_eq!(
            ok("http://127.0.0.1:15555/base/x"),
            (
                "http".into(),
                "127.0.0.1".into(),
                Some(15555),
                Some("/base/x".into())
            )
        );
        assert_eq!(ok("http://[::1]:8/p").1, "[::1]");
        assert_eq!(ok("http://[::1]:8/p").2, Some(8));
        for bad in [
            "h:80",
            "http://",
            "http://u@h",
            "http://h/?q",
            "http://h:x",
            "http://[::1",
        ] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }
}
