//! A Kong request's parameters: the query string merged with the body
//! (`application/x-www-form-urlencoded`, `application/json` or
//! `multipart/form-data`), body values winning, as Kong's
//! `retrieve_parameters` merges `kong.request.get_query()` and
//! `kong.request.get_body()`.
//!
//! A parameter is a string, or something else (a repeated query key, a JSON
//! number or array) that Kong's checks treat as "not a string".

use std::collections::HashMap;

/// One parameter's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Str(String),
    /// Present, but not a single string (repeated, a JSON non-string).
    Other,
}

/// The merged parameters of a request.
#[derive(Debug, Default, Clone)]
pub struct Params(HashMap<String, Param>);

impl Params {
    /// The string value of `key`, if it is one.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.0.get(key) {
            Some(Param::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// Whether `key` is present in any form.
    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn get(&self, key: &str) -> Option<&Param> {
        self.0.get(key)
    }

    /// Parameters of a query string (repeated keys are not strings).
    pub fn from_query(query: &str) -> Params {
        let mut p = Params::default();
        p.add_form(query.as_bytes());
        p
    }

    fn add_form(&mut self, raw: &[u8]) {
        let mut seen: HashMap<String, Param> = HashMap::new();
        for (k, v) in form_urlencoded::parse(raw) {
            seen.entry(k.into_owned())
                .and_modify(|p| *p = Param::Other)
                .or_insert_with(|| Param::Str(v.into_owned()));
        }
        self.0.extend(seen);
    }

    /// Merge a body of `content_type` over these parameters. A body that
    /// does not parse adds nothing (Kong: `get_body` returns nil).
    pub fn merge_body(&mut self, content_type: &str, body: &[u8]) {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            self.add_form(body);
        } else if media.eq_ignore_ascii_case("application/json") {
            if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
                for (k, v) in map {
                    let p = match v {
                        serde_json::Value::String(s) => Param::Str(s),
                        _ => Param::Other,
                    };
                    self.0.insert(k, p);
                }
            }
        } else if media.eq_ignore_ascii_case("multipart/form-data")
            && let Some(boundary) = boundary(content_type)
        {
            for (k, v) in multipart(body, boundary) {
                self.0.insert(k, Param::Str(v));
            }
        }
    }
}

/// Whether `content_type` is a body Kong reads parameters from.
pub fn parameter_body(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    [
        "application/x-www-form-urlencoded",
        "application/json",
        "multipart/form-data",
    ]
    .iter()
    .any(|m| media.eq_ignore_ascii_case(m))
}

/// `body` (multipart, of `content_type`) without its parts named `name`;
/// `None` when it is not multipart or has no such part. The other parts are
/// kept byte for byte.
pub fn multipart_without(content_type: &str, body: &[u8], name: &str) -> Option<Vec<u8>> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let delimiter = format!("--{}", boundary(content_type)?);
    let d = delimiter.as_bytes();
    let starts: Vec<usize> = (0..body.len().saturating_sub(d.len() - 1))
        .filter(|&i| body[i..].starts_with(d))
        .collect();
    let mut out = Vec::with_capacity(body.len());
    let mut removed = false;
    out.extend_from_slice(&body[..starts.first().copied().unwrap_or(body.len())]);
    for (k, &at) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(body.len());
        let part = &body[at..end];
        let named = multipart(part_with_close(part, d).as_slice(), boundary(content_type)?)
            .iter()
            .any(|(n, _)| n == name);
        if named {
            removed = true;
        } else {
            out.extend_from_slice(part);
        }
    }
    removed.then_some(out)
}

/// One part and a closing delimiter, so that [`multipart`] reads it alone.
fn part_with_close(part: &[u8], delimiter: &[u8]) -> Vec<u8> {
    let mut v = part.to_vec();
    v.extend_from_slice(delimiter);
    v.extend_from_slice(b"--");
    v
}

/// The `boundary` parameter of a multipart content type.
fn boundary(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"'))
            .filter(|b| !b.is_empty())
    })
}

/// The named fields of a `multipart/form-data` body (RFC 7578), values as
/// UTF-8 (lossy). Malformed parts are skipped.
fn multipart(body: &[u8], boundary: &str) -> Vec<(String, String)> {
    let delimiter = format!("--{boundary}");
    let text = String::from_utf8_lossy(body);
    let mut fields = Vec::new();
    for part in text.split(delimiter.as_str()).skip(1) {
        if part.starts_with("--") {
            break; // the closing delimiter
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let value = value.strip_suffix("\r\n").unwrap_or(value);
        let name = head.split("\r\n").find_map(|line| {
            let (k, v) = line.split_once(':')?;
            if !k.trim().eq_ignore_ascii_case("content-disposition") {
                return None;
            }
            v.split(';').find_map(|p| {
                let (k, v) = p.trim().split_once('=')?;
                (k.trim() == "name").then(|| v.trim().trim_matches('"').to_string())
            })
        });
        if let Some(name) = name {
            fields.push((name, value.to_string()));
        }
    }
    fields
}

/// LuaSocket's `url.escape`, which Kong's `encode_args` uses: every byte
/// but `A-Z a-z 0-9 _` as `%xx` (lower-case hex).
pub fn lua_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_merge_over_the_query() {
        let mut p = Params::from_query("a=1&b=2&b=3&c=q");
        p.merge_body("application/json", br#"{"c":"body","n":5}"#);
        assert_eq!(p.str("a"), Some("1"));
        assert_eq!(p.get("b"), Some(&Param::Other));
        assert_eq!(p.str("c"), Some("body"));
        assert_eq!(p.get("n"), Some(&Param::Other));
        let mut p = Params::default();
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"provision_key\"\r\n\r\nkey 1\r\n--XyZ\r\ncontent-disposition: form-data; name=scope\r\n\r\nemail\r\n--XyZ--\r\n";
        p.merge_body("multipart/form-data; boundary=XyZ", body.as_bytes());
        assert_eq!(p.str("provision_key"), Some("key 1"));
        assert_eq!(p.str("scope"), Some("email"));
        p.merge_body("application/x-www-form-urlencoded", b"scope=x+y");
        assert_eq!(p.str("scope"), Some("x y"));
        p.merge_body("application/json", b"not json");
        assert_eq!(p.str("scope"), Some("x y"));
    }

    #[test]
    fn multipart_parts_are_removed_byte_for_byte() {
        let ct = "multipart/form-data; boundary=XyZ";
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"access_token\"\r\n\r\nsecret\r\n--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n2\r\n--XyZ--\r\n";
        let kept = multipart_without(ct, body, "access_token").unwrap();
        let text = String::from_utf8(kept.clone()).unwrap();
        assert!(
            !text.contains("secret") && text.contains("name=\"a\"") && text.contains("name=\"b\""),
            "{text}"
        );
        let mut p = Params::default();
        p.merge_body(ct, &kept);
        assert_eq!(
            (p.str("a"), p.str("b"), p.str("access_token")),
            (Some("1"), Some("2"), None)
        );
        assert_eq!(multipart_without(ct, &kept, "access_token"), None);
        assert_eq!(
            multipart_without("application/json", body, "access_token"),
            None
        );
    }

    #[test]
    fn escapes_as_luasocket() {
        assert_eq!(
            lua_escape("\"wot\" is an invalid scope"),
            "%22wot%22%20is%20an%20invalid%20scope"
        );
        assert_eq!(lua_escape("a_b.c-d~"), "a_b%2ec%2dd%7e");
    }
}
