//! Policy text → AST.
//!
//! The grammar is deliberately generic: a file is a list of *items*, each a
//! setting name followed by values and, optionally, a `{ … }` block of nested
//! items. An item ends at a newline, a `;` or the block's `}`. Lists `[a, b]`
//! and blocks may span lines. `#` starts a comment.
//!
//! ```text
//! file   := item*
//! item   := key value* block? (newline | ";" | before "}" | end)
//! block  := "{" item* "}"
//! value  := string | word | list
//! list   := "[" (value ","?)* "]"
//! string := '"' (char | '\"' | '\\' | '\n' | '\t')* '"'
//! word   := run of anything but whitespace and  " [ ] { } , ; #
//! ```
//!
//! This module knows only that shape; what the keys and values mean is the
//! [`crate::model`]'s business. Every node carries its byte [`Span`], so later
//! stages point errors at exactly the offending text. Parsing never panics and
//! stops at the first syntax error (the model collects all semantic errors).

use nom::{
    IResult, Parser,
    bytes::complete::{take_till, take_while, take_while1},
    character::complete::char,
    error::{ErrorKind, ParseError},
};

use std::borrow::Cow;

use smallvec::SmallVec;

use crate::Diagnostic;

/// Byte range into the policy source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start..self.end
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// A parsed policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct File<'s> {
    pub items: Vec<Item<'s>>,
}

/// `key value* { block }?`
#[derive(Debug, Clone, PartialEq)]
pub struct Item<'s> {
    pub(crate) key: &'s str,
    pub(crate) key_span: Span,
    /// Most items have one or two values: inline, no allocation.
    pub(crate) args: SmallVec<[Value<'s>; 2]>,
    pub(crate) block: Option<Block<'s>>,
    /// From the key to the end of the last value or block.
    pub(crate) span: Span,
}

/// `{ item* }`
#[derive(Debug, Clone, PartialEq)]
pub struct Block<'s> {
    pub items: Vec<Item<'s>>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Value<'s> {
    pub kind: ValueKind<'s>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind<'s> {
    /// `"…"`, escapes resolved (borrowed from the source when it has none).
    Str(Cow<'s, str>),
    /// A bare word: an identifier, number, duration, boolean, path, pattern.
    Word(&'s str),
    /// `[ … ]`
    List(Vec<Value<'s>>),
}

impl<'s> Value<'s> {
    /// The text of a string or word; `None` for a list.
    pub fn text(&self) -> Option<&str> {
        match &self.kind {
            ValueKind::Str(s) => Some(s),
            ValueKind::Word(w) => Some(w),
            ValueKind::List(_) => None,
        }
    }

    /// What kind of value this is, for error messages.
    pub fn describe(&self) -> &'static str {
        match self.kind {
            ValueKind::Str(_) => "a string",
            ValueKind::Word(_) => "a word",
            ValueKind::List(_) => "a list",
        }
    }
}

/// Parse a whole policy file.
pub fn parse(source: &str) -> Result<File<'_>, Diagnostic> {
    let p = P::new(source, true);
    let mut items = Vec::new();
    p.result(p.items(source, true, &mut |item| items.push(item)))?;
    Ok(File { items })
}

/// A top-level item, as [`outline`] lists them: where it starts in the
/// source (one word: a 100,000-consumer policy has 400,000 of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub start: usize,
}

impl Entry {
    /// The item's key, in `source` (the source [`outline`] read: an item
    /// starts with its key). Empty for any other offset.
    pub fn key<'s>(&self, source: &'s str) -> &'s str {
        let rest = source.get(self.start..).unwrap_or_default();
        &rest[..rest.find(|c| !is_key_char(c)).unwrap_or(rest.len())]
    }
}

/// Check the whole file's syntax, as [`parse`] does, but keep only each
/// top-level item's key and start: a few words per item where its tree is
/// hundreds of bytes. A large policy is then checked one item at a time
/// ([`item_at`]), and its tree never exists whole.
pub fn outline(source: &str) -> Result<Vec<Entry>, Diagnostic> {
    let p = P::new(source, false);
    let mut entries = Vec::new();
    p.result(p.items(source, true, &mut |item| {
        entries.push(Entry {
            start: item.span.start,
        })
    }))?;
    // Kept while the file is checked: no spare room.
    entries.shrink_to_fit();
    Ok(entries)
}

/// The top-level item that starts at `start` of a source that [`outline`]
/// accepted. (Given any other offset it reports a syntax error there; it
/// never panics.)
pub fn item_at(source: &str, start: usize) -> Result<Item<'_>, Diagnostic> {
    let p = P::new(source, true);
    match source.get(start..) {
        Some(rest) => p.result(p.item(rest)),
        None => Err(Diagnostic::error(source, start..start, "no item here")),
    }
}

/// A syntax error: where (the unparsed rest), how long, and what was wrong.
#[derive(Debug)]
struct SyntaxError<'a> {
    at: &'a str,
    len: usize,
    message: String,
    help: Option<&'static str>,
}

impl<'a> ParseError<&'a str> for SyntaxError<'a> {
    fn from_error_kind(input: &'a str, _kind: ErrorKind) -> Self {
        SyntaxError {
            at: input,
            len: 1,
            message: unexpected(input),
            help: None,
        }
    }

    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

type Res<'a, T> = IResult<&'a str, T, SyntaxError<'a>>;

fn fail<T>(at: &str, len: usize, message: impl Into<String>) -> Res<'_, T> {
    Err(nom::Err::Failure(SyntaxError {
        at,
        len,
        message: message.into(),
        help: None,
    }))
}

fn unexpected(input: &str) -> String {
    match input.chars().next() {
        None => "unexpected end of file".into(),
        Some(c) if c.is_control() => format!("unexpected control character U+{:04X}", c as u32),
        Some(c) => format!("unexpected `{c}`"),
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '"' | '[' | ']' | '{' | '}' | ',' | ';' | '#')
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !c.is_control() && !is_special(c)
}

/// Byte length of the word at the start of `s`.
fn word_len(s: &str) -> usize {
    s.find(|c: char| !is_word_char(c)).unwrap_or(s.len())
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The parser; carries the whole source to turn remaining input into offsets.
struct P<'s> {
    src: &'s str,
    /// Build values and blocks (`false`: only check them, for [`outline`]).
    build: bool,
    /// Current nesting of blocks and lists, bounded so that hostile input
    /// cannot exhaust the stack.
    depth: std::cell::Cell<usize>,
}

/// Deepest nesting of blocks and lists accepted.
const MAX_DEPTH: usize = 32;

impl<'s> P<'s> {
    fn new(src: &'s str, build: bool) -> Self {
        P {
            src,
            build,
            depth: Default::default(),
        }
    }

    /// A parse's result, its error as a diagnostic.
    fn result<T>(&self, r: Res<'s, T>) -> Result<T, Diagnostic> {
        match r {
            Ok((_, t)) => Ok(t),
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(self.diagnostic(e)),
            // Only streaming parsers return Incomplete; ours are all `complete`.
            Err(nom::Err::Incomplete(_)) => Err(Diagnostic::error(
                self.src,
                self.src.len()..self.src.len(),
                "unexpected end of file",
            )),
        }
    }

    fn off(&self, rest: &str) -> usize {
        self.src.len() - rest.len()
    }

    fn span(&self, from: &str, to: &str) -> Span {
        Span::new(self.off(from), self.off(to))
    }

    fn diagnostic(&self, e: SyntaxError<'_>) -> Diagnostic {
        let start = self.off(e.at);
        let end = (start + e.len).min(self.src.len());
        let d = Diagnostic::error(self.src, start..end, e.message);
        match e.help {
            Some(h) => d.with_help(h),
            None => d,
        }
    }

    /// Spaces, tabs and comments, not newlines.
    fn inline_ws<'a>(&self, i: &'a str) -> Res<'a, ()> {
        let (mut i, _) = take_while(|c| c == ' ' || c == '\t' || c == '\r')(i)?;
        if i.starts_with('#') {
            (i, _) = take_till(|c| c == '\n')(i)?;
        }
        Ok((i, ()))
    }

    /// Any whitespace, newlines and comments.
    fn ws<'a>(&self, mut i: &'a str) -> Res<'a, ()> {
        loop {
            let (rest, _) = take_while(char::is_whitespace)(i)?;
            i = rest;
            if i.starts_with('#') {
                (i, _) = take_till(|c| c == '\n')(i)?;
            } else {
                return Ok((i, ()));
            }
        }
    }

    /// Items until `}` (in a block) or end of input (at top level), each
    /// handed to `each`.
    fn items(&self, mut i: &'s str, top: bool, each: &mut dyn FnMut(Item<'s>)) -> Res<'s, ()> {
        loop {
            (i, _) = self.ws(i)?;
            if i.is_empty() {
                return Ok((i, ()));
            }
            if let Some(rest) = i.strip_prefix(';') {
                i = rest;
                continue;
            }
            if i.starts_with('}') {
                if top {
                    return fail(i, 1, "unexpected `}` with no `{` open");
                }
                return Ok((i, ()));
            }
            let (rest, item) = self.item(i)?;
            each(item);
            i = rest;
        }
    }

    fn item(&self, start: &'s str) -> Res<'s, Item<'s>> {
        let (i, key) = match take_while1::<_, _, SyntaxError>(is_key_char).parse(start) {
            Ok(ok) => ok,
            Err(_) => {
                let mut e = SyntaxError {
                    at: start,
                    len: word_len(start).max(1),
                    message: format!("expected a setting name, found {}", found(start)),
                    help: None,
                };
                if let Ok((rest, _)) = self.string(start) {
                    e.len = start.len() - rest.len();
                    e.message = "expected a setting name, found a string".into();
                    e.help = Some("setting names are bare words, e.g. `issuer \"my-gateway\"`");
                }
                return Err(nom::Err::Failure(e));
            }
        };
        if i.chars().next().is_some_and(is_word_char) {
            let len = word_len(start);
            return fail(
                start,
                len,
                format!("expected a setting name, found `{}`", &start[..len]),
            );
        }
        let key_span = self.span(start, i);
        let mut args = SmallVec::new();
        let mut block = None;
        let mut i = i;
        let mut end = i;
        loop {
            (i, _) = self.inline_ws(i)?;
            match i.chars().next() {
                None | Some('\n' | ';' | '}') => break,
                Some('{') => {
                    let (rest, b) = self.block(i)?;
                    block = Some(b);
                    end = rest;
                    (i, _) = self.inline_ws(rest)?;
                    match i.chars().next() {
                        None | Some('\n' | ';' | '}') => break,
                        _ => {
                            return fail(
                                i,
                                1,
                                format!("expected a new line after `}}`, found {}", found(i)),
                            );
                        }
                    }
                }
                Some(_) => {
                    let (rest, v) = self.value(i)?;
                    if self.build {
                        args.push(v);
                    }
                    end = rest;
                    i = rest;
                }
            }
        }
        let span = self.span(start, end);
        Ok((
            i,
            Item {
                key,
                key_span,
                args,
                block,
                span,
            },
        ))
    }

    /// Enter a block or list at `open`, or fail if nested too deeply.
    fn enter<'a>(&self, open: &'a str) -> Res<'a, ()> {
        if self.depth.get() >= MAX_DEPTH {
            return fail(open, 1, format!("nested more than {MAX_DEPTH} levels deep"));
        }
        self.depth.set(self.depth.get() + 1);
        Ok((open, ()))
    }

    fn leave(&self) {
        self.depth.set(self.depth.get() - 1);
    }

    fn block(&self, open: &'s str) -> Res<'s, Block<'s>> {
        let (i, _) = char('{').parse(open)?;
        self.enter(open)?;
        let mut items = Vec::new();
        let (i, ()) = self.items(i, false, &mut |item| {
            if self.build {
                items.push(item)
            }
        })?;
        items.shrink_to_fit();
        self.leave();
        match i.strip_prefix('}') {
            Some(rest) => Ok((
                rest,
                Block {
                    items,
                    span: self.span(open, rest),
                },
            )),
            None => fail(
                open,
                1,
                "unclosed `{`: no matching `}` before the end of the file",
            ),
        }
    }

    fn value(&self, i: &'s str) -> Res<'s, Value<'s>> {
        match i.chars().next() {
            Some('"') => self.string(i),
            Some('[') => self.list(i),
            Some(c) if is_word_char(c) => {
                let (rest, w) = take_while1(is_word_char)(i)?;
                Ok((
                    rest,
                    Value {
                        kind: ValueKind::Word(w),
                        span: self.span(i, rest),
                    },
                ))
            }
            _ => fail(i, 1, format!("expected a value, found {}", found(i))),
        }
    }

    fn list(&self, open: &'s str) -> Res<'s, Value<'s>> {
        let (mut i, _) = char('[').parse(open)?;
        self.enter(open)?;
        let mut values = Vec::new();
        loop {
            (i, _) = self.ws(i)?;
            match i.chars().next() {
                None => {
                    return fail(
                        open,
                        1,
                        "unclosed `[`: no matching `]` before the end of the file",
                    );
                }
                Some(']') => {
                    self.leave();
                    let rest = &i[1..];
                    values.shrink_to_fit();
                    let kind = ValueKind::List(values);
                    return Ok((
                        rest,
                        Value {
                            kind,
                            span: self.span(open, rest),
                        },
                    ));
                }
                Some('{' | '}' | ';') => {
                    return fail(
                        i,
                        1,
                        format!("expected a list item or `]`, found {}", found(i)),
                    );
                }
                Some(_) => {
                    let (rest, v) = self.value(i)?;
                    if self.build {
                        values.push(v);
                    }
                    (i, _) = self.ws(rest)?;
                    // (Not `opt(char(','))`: its miss builds an error message.)
                    i = i.strip_prefix(',').unwrap_or(i);
                }
            }
        }
    }

    fn string(&self, open: &'s str) -> Res<'s, Value<'s>> {
        // No escape before the closing quote: the text is the source's own.
        let Some(body) = open.strip_prefix('"') else {
            return fail(open, 1, "expected a string");
        };
        if let Some(at) = body.find(['"', '\\', '\n'])
            && body.as_bytes()[at] == b'"'
        {
            let rest = &body[at + 1..];
            return Ok((
                rest,
                Value {
                    kind: ValueKind::Str(Cow::Borrowed(&body[..at])),
                    span: self.span(open, rest),
                },
            ));
        }
        let mut out = String::new();
        let mut chars = open.char_indices().skip(1);
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => {
                    let rest = &open[at + 1..];
                    return Ok((
                        rest,
                        Value {
                            kind: ValueKind::Str(Cow::Owned(out)),
                            span: self.span(open, rest),
                        },
                    ));
                }
                '\n' => break,
                '\\' => match chars.next() {
                    Some((_, '"')) => out.push('"'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, other)) if other != '\n' => {
                        let e = SyntaxError {
                            at: &open[at..],
                            len: 1 + other.len_utf8(),
                            message: format!("unknown escape `\\{other}` in string"),
                            help: Some("the escapes are `\\\"`, `\\\\`, `\\n` and `\\t`"),
                        };
                        return Err(nom::Err::Failure(e));
                    }
                    _ => break,
                },
                c => out.push(c),
            }
        }
        fail(open, 1, "unterminated string: no closing `\"` on this line")
    }
}

/// "`x`" for the next token of `i`, or "end of file".
fn found(i: &str) -> String {
    match i.chars().next() {
        None => "end of file".into(),
        Some('\n') => "end of line".into(),
        Some(c) if c.is_control() => format!("control character U+{:04X}", c as u32),
        Some(c) if is_word_char(c) => {
            let w: String = i
                .chars()
                .take_while(|&c| is_word_char(c))
                .take(40)
                .collect();
            format!("`{w}`")
        }
        Some(c) => format!("`{c}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words<'a>(v: &'a [Value<'_>]) -> Vec<&'a str> {
        v.iter().filter_map(Value::text).collect()
    }

    #[test]
    fn parses_items_blocks_lists_and_comments() {
        let src = "# demo\nissuer \"Higress-Gateway\" # trailing\ntoken_ttl 2h; keep_token false\n\
                   consumer c1 {\n  client_id \"id\\\"1\"\n}\nrule {\n match route [route-a,\n route-b]\n}\n";
        let f = parse(src).unwrap();
        let keys: Vec<_> = f.items.iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            ["issuer", "token_ttl", "keep_token", "consumer", "rule"]
        );
        assert_eq!(
            f.items[0].args[0].kind,
            ValueKind::Str("Higress-Gateway".into())
        );
        assert_eq!(&src[f.items[0].args[0].span.range()], "\"Higress-Gateway\"");
        let consumer = &f.items[3];
        assert_eq!(words(&consumer.args), ["c1"]);
        let inner = &consumer.block.as_ref().unwrap().items[0];
        assert_eq!(inner.args[0].kind, ValueKind::Str("id\"1".into()));
        let m = &f.items[4].block.as_ref().unwrap().items[0];
        assert_eq!(words(&m.args), ["route"]);
        match &m.args[1].kind {
            ValueKind::List(v) => assert_eq!(words(v), ["route-a", "route-b"]),
            other => panic!("expected a list, got {other:?}"),
        }
    }

    /// The outline's entries are the parse's top-level items, and
    /// `item_at` builds each one as `parse` does.
    #[test]
    fn an_outline_lists_the_items_parse_builds() {
        let src = "# demo\nissuer \"a\\\"b\" # trailing\ntoken_ttl 2h; keep_token false\n\
                   consumer c1 {\n  client_id \"id\"\n}\n;;rule {\n match route [a,\n b]\n}";
        let file = parse(src).unwrap();
        let outline = outline(src).unwrap();
        assert_eq!(outline.len(), file.items.len());
        for (entry, item) in outline.iter().zip(&file.items) {
            assert_eq!((entry.key(src), entry.start), (item.key, item.span.start));
            assert_eq!(&item_at(src, entry.start).unwrap(), item);
        }
        assert_eq!(file.items[0].args[0].kind, ValueKind::Str("a\"b".into()));
    }

    #[test]
    fn an_outline_reports_the_syntax_errors_parse_does() {
        for src in [
            "issuer \"abc\ntoken_ttl 5",
            "consumer a {\n client_id x\n",
            "}\n",
            "allow [a, b\n",
            "x \"a\\q\"",
            "rule { } extra",
            "a [{]",
        ] {
            assert_eq!(outline(src).unwrap_err(), parse(src).unwrap_err(), "{src}");
        }
    }

    #[test]
    fn item_at_an_offset_that_starts_no_item_is_an_error() {
        let src = "consumer é { client_id x }";
        for at in [8, 10, 12, 13, src.len() + 1] {
            assert!(item_at(src, at).is_err(), "{at}");
        }
    }

    #[test]
    fn one_line_blocks() {
        let f = parse("consumer a { client_id x; client_secret y }").unwrap();
        assert_eq!(f.items[0].block.as_ref().unwrap().items.len(), 2);
    }

    fn err(src: &str) -> (String, u32, u32, String) {
        let d = parse(src).unwrap_err();
        (
            d.message.clone(),
            d.line,
            d.column,
            src[d.span.clone()].to_string(),
        )
    }

    #[test]
    fn syntax_errors_point_at_the_problem() {
        assert_eq!(
            err("issuer \"abc\ntoken_ttl 5"),
            (
                "unterminated string: no closing `\"` on this line".into(),
                1,
                8,
                "\"".into()
            )
        );
        assert_eq!(
            err("consumer a {\n client_id x\n"),
            (
                "unclosed `{`: no matching `}` before the end of the file".into(),
                1,
                12,
                "{".into()
            )
        );
        assert_eq!(
            err("}\n"),
            ("unexpected `}` with no `{` open".into(), 1, 1, "}".into())
        );
        assert_eq!(
            err("allow [a, b\n"),
            (
                "unclosed `[`: no matching `]` before the end of the file".into(),
                1,
                7,
                "[".into()
            )
        );
        assert_eq!(
            err("x \"a\\q\""),
            ("unknown escape `\\q` in string".into(), 1, 5, "\\q".into())
        );
        assert_eq!(
            err("\n  \"issuer\" x"),
            (
                "expected a setting name, found a string".into(),
                2,
                3,
                "\"issuer\"".into()
            )
        );
        assert_eq!(
            err("rule { } extra"),
            (
                "expected a new line after `}`, found `extra`".into(),
                1,
                10,
                "e".into()
            )
        );
        assert_eq!(
            err("a.b 1"),
            (
                "expected a setting name, found `a.b`".into(),
                1,
                1,
                "a.b".into()
            )
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let src = format!("a {}", "[".repeat(100_000));
        assert_eq!(err(&src).0, "nested more than 32 levels deep");
        let src = format!("a {}", "a {".repeat(100_000));
        assert_eq!(err(&src).0, "nested more than 32 levels deep");
    }

    #[test]
    fn never_panics_on_odd_input() {
        for src in [
            "", "\"", "[", "{", "a [", "a {", "a \\", "a \u{0}", "é", "a \"é", "a [{]", "#", "a ]",
        ] {
            let _ = parse(src);
        }
    }
}
