//! Typed readings of AST values: text, booleans, durations, lists, header
//! names, domain patterns. Each returns a [`Diagnostic`] pointing at the value
//! when it does not fit.

use crate::Diagnostic;
use crate::model::types::DomainPattern;
use crate::syntax::{Item, Span, Value, ValueKind};

/// Reads values of one source file.
pub(crate) struct Reader<'s> {
    pub src: &'s str,
    pub lines: crate::diagnostic::LineIndex,
}

impl<'s> Reader<'s> {
    pub(crate) fn err(&self, span: Span, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::indexed(
            crate::Severity::Error,
            self.src,
            &self.lines,
            span.range(),
            msg,
        )
    }

    /// `text` as a slice of the source when it is one (a value without
    /// escapes: almost every name), else a copy. (For the checker's own
    /// lookup tables, whose keys then need no allocation of their own.)
    pub(crate) fn in_source(&self, text: &str) -> std::borrow::Cow<'s, str> {
        let at = (text.as_ptr() as usize).wrapping_sub(self.src.as_ptr() as usize);
        match at
            .checked_add(text.len())
            .and_then(|end| self.src.get(at..end))
        {
            Some(s) if s.as_ptr() == text.as_ptr() => std::borrow::Cow::Borrowed(s),
            _ => std::borrow::Cow::Owned(text.to_owned()),
        }
    }

    /// The single value of `item` (and no block).
    pub(crate) fn one<'i, 'a>(&self, item: &'i Item<'a>) -> Result<&'i Value<'a>, Diagnostic> {
        if let Some(b) = &item.block {
            return Err(self.err(b.span, format!("`{}` takes a value, not a block", item.key)));
        }
        match item.args.as_slice() {
            [v] => Ok(v),
            [] => Err(self.err(item.key_span, format!("`{}` needs a value", item.key))),
            [_, extra, ..] => Err(self.err(
                extra
                    .span
                    .to(item.args.last().map_or(extra.span, |v| v.span)),
                format!("`{}` takes one value", item.key),
            )),
        }
    }

    /// A string or bare word.
    pub(crate) fn text<'v>(&self, key: &str, v: &'v Value) -> Result<&'v str, Diagnostic> {
        v.text().ok_or_else(|| {
            self.err(
                v.span,
                format!("`{key}` takes a single value, found {}", v.describe()),
            )
        })
    }

    /// A non-empty string or bare word.
    pub(crate) fn nonempty<'v>(&self, key: &str, v: &'v Value) -> Result<&'v str, Diagnostic> {
        let t = self.text(key, v)?;
        if t.is_empty() {
            return Err(self.err(v.span, format!("`{key}` must not be empty")));
        }
        Ok(t)
    }

    pub(crate) fn boolean(&self, key: &str, v: &Value) -> Result<bool, Diagnostic> {
        match &v.kind {
            ValueKind::Word("true") => Ok(true),
            ValueKind::Word("false") => Ok(false),
            _ => Err(self
                .err(
                    v.span,
                    format!("`{key}` must be `true` or `false`, found {}", shown(v)),
                )
                .with_help("write `true` or `false` without quotes")),
        }
    }

    /// Seconds: `7200`, `90s`, `30m`, `2h`, `1d`, or combinations like `1h30m`.
    pub(crate) fn duration(&self, key: &str, v: &Value) -> Result<u64, Diagnostic> {
        let bad = || {
            self.err(
                v.span,
                format!("`{key}` must be a duration, found {}", shown(v)),
            )
            .with_help(
                "write seconds (`7200`) or a duration like `90s`, `30m`, `2h`, `1d`, `1h30m`",
            )
        };
        let ValueKind::Word(w) = &v.kind else {
            return Err(bad());
        };
        parse_duration(w).map_err(|e| match e {
            DurationError::TooLong => {
                self.err(v.span, format!("`{key}` is too long: at most 100 years"))
            }
            DurationError::Malformed => bad(),
        })
    }

    /// A list of texts (a single text counts as a list of one).
    pub(crate) fn texts<'v>(
        &self,
        key: &str,
        v: &'v Value,
    ) -> Result<smallvec::SmallVec<[(&'v str, Span); 2]>, Diagnostic> {
        let items: &[Value] = match &v.kind {
            ValueKind::List(items) => items,
            _ => std::slice::from_ref(v),
        };
        items
            .iter()
            .map(|i| match i.text() {
                Some(t) if !t.is_empty() => Ok((t, i.span)),
                Some(_) => Err(self.err(i.span, format!("empty name in `{key}`"))),
                None => Err(self.err(i.span, format!("`{key}` lists names, found a nested list"))),
            })
            .collect()
    }

    /// An HTTP header name (RFC 9110 token), returned in lower case. Not a
    /// hop-by-hop or framing header: a gateway removes or rewrites those, so
    /// a credential or consumer header of that name would never arrive.
    pub(crate) fn header_name(&self, key: &str, v: &Value) -> Result<String, Diagnostic> {
        const RESERVED: &[&str] = &[
            "connection",
            "keep-alive",
            "proxy-authenticate",
            "proxy-authorization",
            "proxy-connection",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "host",
            "content-length",
        ];
        let t = self.nonempty(key, v)?;
        if !t.bytes().all(is_tchar) {
            return Err(self.err(
                v.span,
                format!("`{key}` must be a valid header name, found `{t}`"),
            ));
        }
        let name = t.to_ascii_lowercase();
        if RESERVED.contains(&name.as_str()) {
            return Err(self
                .err(v.span, format!("`{key}` cannot be `{t}`"))
                .with_help("hop-by-hop and framing headers are removed or rewritten on the way; pick another name"));
        }
        Ok(name)
    }

    /// `test.com`, `*.example.com`, `example*`.
    pub(crate) fn domain(&self, text: &str, span: Span) -> Result<DomainPattern, Diagnostic> {
        let mut lower = text.to_ascii_lowercase();
        // `[::1]`: hosts are compared without brackets (and without port).
        if let Some(inner) = lower.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            lower = inner.to_string();
        }
        let stars = lower.matches('*').count();
        let bad = |why: &str| {
            self.err(span, format!("bad domain pattern `{text}`: {why}"))
                .with_help("write an exact host (`test.com`), a suffix (`*.example.com`) or a prefix (`api*`)")
        };
        if lower.contains(':') && !text.starts_with('[') {
            return Err(bad("domains match the host without its port"));
        }
        if lower.bytes().any(|b| b.is_ascii_whitespace() || b == b'/') {
            return Err(bad("a host has no spaces or slashes"));
        }
        match (stars, lower.strip_prefix('*'), lower.strip_suffix('*')) {
            (0, _, _) => Ok(DomainPattern::Exact(lower.into())),
            (1, Some(rest), _) => Ok(DomainPattern::Suffix(rest.into())),
            (1, _, Some(rest)) => Ok(DomainPattern::Prefix(rest.into())),
            _ => Err(bad("`*` may only stand at the start or the end, once")),
        }
    }
}

fn shown(v: &Value) -> String {
    match &v.kind {
        ValueKind::Str(s) => format!("\"{s}\""),
        ValueKind::Word(w) => format!("`{w}`"),
        ValueKind::List(_) => "a list".into(),
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

const MAX_SECONDS: u64 = 100 * 365 * 86_400;

/// Why a duration did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationError {
    Malformed,
    /// Well-formed but over 100 years.
    TooLong,
}

/// `7200`, `2h`, `1h30m`, `45s`, `1d` → seconds.
pub fn parse_duration(w: &str) -> Result<u64, DurationError> {
    use DurationError::*;
    if w.is_empty() {
        return Err(Malformed);
    }
    let mut total: u64 = 0;
    let mut rest = w;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(Malformed);
        }
        let (mult, unit_len) = match rest[digits..].chars().next() {
            None if rest.len() == w.len() => (1, 0),
            Some('s') => (1, 1),
            Some('m') => (60, 1),
            Some('h') => (3600, 1),
            Some('d') => (86_400, 1),
            _ => return Err(Malformed),
        };
        let n: u64 = rest[..digits].parse().map_err(|_| TooLong)?;
        total = n
            .checked_mul(mult)
            .and_then(|s| total.checked_add(s))
            .ok_or(TooLong)?;
        rest = &rest[digits + unit_len..];
    }
    if total > MAX_SECONDS {
        Err(TooLong)
    } else {
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7200"), Ok(7200));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("45s"), Ok(45));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        assert_eq!(parse_duration("0"), Ok(0));
        for bad in ["", "h", "2x", "-5", "1.5h", "2h ", "1h30", "s5"] {
            assert_eq!(parse_duration(bad), Err(DurationError::Malformed), "{bad}");
        }
        for long in ["99999999999999999999", "1000000000000d", "36501d"] {
            assert_eq!(parse_duration(long), Err(DurationError::TooLong), "{long}");
        }
    }
}
