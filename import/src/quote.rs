//! Writing values in the policy grammar: bare words when safe, else strings.
//!
//! The policy grammar (engine/src/syntax.rs) reads a *word* as a run of
//! anything but whitespace, control characters and `" [ ] { } , ; #`, and a
//! *string* as `"…"` with the escapes `\"`, `\\`, `\n` and `\t`. This module
//! writes a word only for a conservative ASCII set, and never for the words
//! the grammar gives a meaning of their own (`true`, `false`, and the secret
//! kinds `env`, `file`, `hash`), so that a Kong name always reads back as the
//! same text. Everything else is quoted. Other control characters have no
//! escape: the importer refuses them before it gets here
//! ([`crate::yaml::check_text`]); should one arrive anyway it is written as
//! `\u{…}` inside comments only ([`comment`]).

/// Words that would mean something else when bare.
const RESERVED: &[&str] = &["true", "false", "env", "file", "hash"];

/// Punctuation allowed in a bare word besides ASCII letters and digits.
const BARE_PUNCT: &str = "-_./:@*+=~%";

/// `s` can be written without quotes and reads back as itself.
pub fn is_bare(s: &str) -> bool {
    !s.is_empty()
        && !RESERVED.contains(&s)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || BARE_PUNCT.contains(c))
}

/// `"…"` with the policy's escapes (the engine's own quoting).
pub fn quoted(s: &str) -> String {
    warden_engine::quote(s)
}

/// A bare word when safe, else a string.
pub fn value(s: &str) -> String {
    if is_bare(s) { s.to_owned() } else { quoted(s) }
}

/// `[a, "b c"]`.
pub fn list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| value(s)).collect();
    format!("[{}]", inner.join(", "))
}

/// Text for a `#` comment: one line, control characters shown as escapes.
pub(crate) fn comment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            ("bob", "bob"),
            ("oauth2_3.test", "oauth2_3.test"),
            ("*.example.com", "*.example.com"),
            ("http://h:80/p", "http://h:80/p"),
            (
                "4d924084-1adb-40a5-c042-63b19db421d1",
                "4d924084-1adb-40a5-c042-63b19db421d1",
            ),
            ("", "\"\""),
            ("two words", "\"two words\""),
            ("true", "\"true\""),
            ("env", "\"env\""),
            ("hash", "\"hash\""),
            ("a#b", "\"a#b\""),
            ("a;b", "\"a;b\""),
            ("[x]", "\"[x]\""),
            ("{x}", "\"{x}\""),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
            ("back\\slash", "\"back\\\\slash\""),
            ("line\nbreak\ttab", "\"line\\nbreak\\ttab\""),
            ("ünïcode", "\"ünïcode\""),
            ("$pbkdf2-sha512$i=1", "\"$pbkdf2-sha512$i=1\""),
        ];
        for (input, want) in cases {
            assert_eq!(value(input), want, "for {input:?}");
        }
    }

    #[test]
    fn lists_and_comments() {
        assert_eq!(list(&["http".into(), "a b".into()]), "[http, \"a b\"]");
        assert_eq!(list(&[]), "[]");
        assert_eq!(comment("a\nb\u{7}"), "a\\u{a}b\\u{7}");
    }
}
