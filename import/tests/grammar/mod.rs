//! A small reader of the policy grammar, for structural checks in tests.
//!
//! It follows engine/src/syntax.rs: items `key value* {block}?` ending at a
//! newline, `;` or `}`; values are words (anything but whitespace, control
//! characters and `" [ ] { } , ; #`), strings `"…"` with the escapes `\"`,
//! `\\`, `\n`, `\t`, and lists `[a, b]`; `#` starts a comment. The engine
//! cannot read the Kong dialect yet, so the tests check the importer's
//! output with this instead of compiling it.
#![allow(dead_code)]

/// A value: word or string (both as their text), or a list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Word(String),
    Str(String),
    List(Vec<Val>),
}

impl Val {
    /// The text of a word or string.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Val::Word(s) | Val::Str(s) => Some(s),
            Val::List(_) => None,
        }
    }

    /// The texts of a list.
    pub(crate) fn texts(&self) -> Vec<String> {
        match self {
            Val::List(items) => items
                .iter()
                .filter_map(|v| v.text().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    pub(crate) key: String,
    pub(crate) args: Vec<Val>,
    pub(crate) block: Option<Vec<Item>>,
}

impl Item {
    /// The items of the block named `key`.
    pub(crate) fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Item> + 'a {
        self.block.iter().flatten().filter(move |i| i.key == key)
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '"' | '[' | ']' | '{' | '}' | ',' | ';' | '#')
}

pub(crate) fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !c.is_control() && !is_special(c)
}

struct P<'s> {
    rest: &'s str,
}

impl P<'_> {
    fn skip_blanks(&mut self, newlines: bool) {
        loop {
            let t = self
                .rest
                .trim_start_matches(|c: char| c.is_whitespace() && (newlines || c != '\n'));
            if t.starts_with('#') {
                self.rest = t.find('\n').map_or("", |i| &t[i..]);
            } else {
                self.rest = t;
                return;
            }
        }
    }

    fn value(&mut self) -> Result<Val, String> {
        if let Some(r) = self.rest.strip_prefix('"') {
            let (s, rest) = string(r)?;
            self.rest = rest;
            return Ok(Val::Str(s));
        }
        if let Some(r) = self.rest.strip_prefix('[') {
            self.rest = r;
            let mut items = Vec::new();
            loop {
                self.skip_blanks(true);
                if let Some(r) = self.rest.strip_prefix(']') {
                    self.rest = r;
                    return Ok(Val::List(items));
                }
                items.push(self.value()?);
                self.skip_blanks(true);
                if let Some(r) = self.rest.strip_prefix(',') {
                    self.rest = r;
                }
            }
        }
        let end = self
            .rest
            .find(|c: char| !is_word_char(c))
            .unwrap_or(self.rest.len());
        if end == 0 {
            return Err(format!(
                "expected a value at {:?}",
                self.rest.chars().take(20).collect::<String>()
            ));
        }
        let w = self.rest[..end].to_owned();
        self.rest = &self.rest[end..];
        Ok(Val::Word(w))
    }

    fn items(&mut self, in_block: bool) -> Result<Vec<Item>, String> {
        let mut out = Vec::new();
        loop {
            self.skip_blanks(true);
            while let Some(r) = self.rest.strip_prefix(';') {
                self.rest = r;
                self.skip_blanks(true);
            }
            if self.rest.is_empty() {
                return if in_block {
                    Err("unclosed block".into())
                } else {
                    Ok(out)
                };
            }
            if let Some(r) = self.rest.strip_prefix('}') {
                if !in_block {
                    return Err("`}` without `{`".into());
                }
                self.rest = r;
                return Ok(out);
            }
            let key_end = self
                .rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(self.rest.len());
            if key_end == 0 {
                return Err(format!(
                    "expected a key at {:?}",
                    self.rest.chars().take(20).collect::<String>()
                ));
            }
            let key = self.rest[..key_end].to_owned();
            self.rest = &self.rest[key_end..];
            let mut args = Vec::new();
            let mut block = None;
            loop {
                self.skip_blanks(false);
                match self.rest.chars().next() {
                    None | Some('\n' | ';' | '}') => break,
                    Some('{') => {
                        self.rest = &self.rest[1..];
                        block = Some(self.items(true)?);
                        break;
                    }
                    Some(_) => args.push(self.value()?),
                }
            }
            out.push(Item { key, args, block });
        }
    }
}

/// After the opening quote: the string's text and the rest.
fn string(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\n' => break,
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                other => return Err(format!("unknown escape {other:?}")),
            },
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

/// Parses a whole policy.
pub(crate) fn parse(src: &str) -> Result<Vec<Item>, String> {
    P { rest: src }.items(false)
}

/// Reads exactly one value from `s` (nothing else around it).
pub(crate) fn one_value(s: &str) -> Result<Val, String> {
    let mut p = P { rest: s };
    let v = p.value()?;
    if p.rest.is_empty() {
        Ok(v)
    } else {
        Err(format!("left over: {:?}", p.rest))
    }
}
