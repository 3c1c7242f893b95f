//! Policy text → the same policy, laid out canonically (for `warden fmt`).
//!
//! [`format`] parses the source (a syntax error is the parser's own
//! [`Diagnostic`], as compiling would report it) and prints the AST again,
//! with the comments and blank lines found in the source between its tokens.
//! The printed text parses to the same AST (spans aside) and so compiles to
//! the same policy, and formatting it again changes nothing.
//!
//! The rules:
//! - **Lines.** One item per line: `;` between items becomes a line break.
//!   A block opens with `{` on its item's line; its items are indented by two
//!   spaces; `}` closes it on a line of its own. A block written on one line
//!   (so holding no comment) stays on one line, `{ a b; c d }`, when that
//!   line fits in 100 columns. The formatter never joins a block written
//!   over several lines, except an empty one without comments: `{}`.
//! - **Lists** are `[a, b, c]`. A list is broken, one element per line,
//!   each followed by `,`, and `]` on a line of its own, when it holds a
//!   comment, or when its item's line (up to the `{` of its block) would
//!   exceed 100 columns: then every list of that item is broken. A list
//!   inside a broken one is broken when its own line would exceed 100.
//! - **Values keep their kind.** A bare word is printed as written; a string
//!   stays quoted, with `"`, `\`, newline and tab escaped (`\"`, `\\`, `\n`,
//!   `\t`) and every other character literal. Quotes are never removed: the
//!   model reads booleans and durations only from bare words
//!   (`keep_token "false"` is an error, `keep_token false` is not) and
//!   shows strings and words differently in its messages.
//! - **Spaces.** The tokens of an item are separated by one space, except
//!   that two or more blanks written between two of them (before a value,
//!   before `{`, before a trailing comment) are kept, as that many spaces:
//!   that is how policies align values and comments in columns (before the
//!   `{` of a block, only while the block stays on one line). Alignment
//!   is kept, never computed: the hand-aligned files align some runs of
//!   items and deliberately not others (`match route [api]` above a column
//!   of Kong settings), which no simple rule reproduces. Widths count
//!   characters, the kept blanks included, trailing comments not.
//! - **Comments stay where they were.** A comment on a line of its own stays
//!   before the item (or list element) that follows it, at that item's
//!   indentation; a comment after code stays at the end of that line (of the
//!   item, of an element after its `,`, or of the `{` or `[` it follows);
//!   comments after the last item of a block or file, or the last element
//!   of a list, stay at its end. Their text is kept, less trailing blanks.
//! - **Blank lines.** One blank line wherever the source had one or more
//!   between items or comments; none at the start or end of a block, list or
//!   file. The text ends with exactly one newline (an empty file stays empty).

use crate::Diagnostic;
use crate::syntax::{self, Item, Value, ValueKind};

/// Columns a line may take before its lists break or its block expands.
const WIDTH: usize = 100;

/// `source`, canonically formatted (see the module documentation); the
/// parser's diagnostic when it does not parse.
pub fn format(source: &str) -> Result<String, Diagnostic> {
    let file = syntax::parse(source)?;
    let mut p = Printer {
        src: source,
        lines: Vec::new(),
    };
    p.children(&file.items, (0, source.len()), 0, false, Printer::item);
    let mut out = p.lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok(out)
}

/// A comment after code on the same line.
struct Trailing<'s> {
    text: &'s str,
    /// Blanks between the code and the `#`.
    pad: usize,
}

/// The comments and line breaks between two tokens.
struct Gap<'s> {
    /// The comment on the line of the token before the gap.
    trailing: Option<Trailing<'s>>,
    /// Comments on lines of their own, each with whether a blank line
    /// precedes it.
    own_lines: Vec<(bool, &'s str)>,
    /// Whether a blank line follows the last of them (or the token before).
    blank_after: bool,
}

/// Read a gap: `text` holds only blanks, line breaks, comments and the
/// separators `;` and `,` (the parser put every other token in a node).
/// `after_token`: the gap follows a token on its line (not the file start).
fn gap(text: &str, after_token: bool) -> Gap<'_> {
    let mut g = Gap {
        trailing: None,
        own_lines: Vec::new(),
        blank_after: false,
    };
    let mut newlines = usize::from(!after_token);
    let mut pad = 0;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '#' {
            let end = rest.find('\n').unwrap_or(rest.len());
            let comment = rest[..end].trim_end();
            if newlines == 0 {
                g.trailing = Some(Trailing { text: comment, pad });
            } else {
                g.own_lines.push((newlines > 1, comment));
            }
            newlines = 0;
            rest = &rest[end..];
            continue;
        }
        match c {
            '\n' => {
                newlines += 1;
                pad = 0;
            }
            c if c.is_whitespace() => pad += 1,
            _ => pad = 0,
        }
        rest = &rest[c.len_utf8()..];
    }
    g.blank_after = newlines > 1;
    g
}

/// Whether `text`, indented `depth` levels, fits in [`WIDTH`].
fn fits(depth: usize, text: &str) -> bool {
    2 * depth + text.chars().count() <= WIDTH
}

/// `s` as a string literal the parser reads back as `s` (the one quoting
/// of policy text: the importers write theirs with it too).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A value on one line.
fn flat_value(v: &Value) -> String {
    match &v.kind {
        ValueKind::Word(w) => (*w).to_string(),
        ValueKind::Str(s) => quote(s),
        ValueKind::List(values) => {
            let values: Vec<String> = values.iter().map(flat_value).collect();
            format!("[{}]", values.join(", "))
        }
    }
}

/// A node that [`Printer::children`] prints with the comments around it.
trait Node {
    /// Byte offsets of its first and last tokens' start and end.
    fn bounds(&self) -> (usize, usize);
}

impl Node for Item<'_> {
    fn bounds(&self) -> (usize, usize) {
        (self.key_span.start, self.span.end)
    }
}

impl Node for Value<'_> {
    fn bounds(&self) -> (usize, usize) {
        (self.span.start, self.span.end)
    }
}

/// The output, line by line; the last line is the one being written.
struct Printer<'s> {
    src: &'s str,
    lines: Vec<String>,
}

impl<'s> Printer<'s> {
    fn newline(&mut self, depth: usize) {
        self.lines.push("  ".repeat(depth));
    }

    fn push(&mut self, text: &str) {
        match self.lines.last_mut() {
            Some(line) => line.push_str(text),
            None => self.lines.push(text.to_string()),
        }
    }

    /// What separates two tokens of an item written at `from..to`: one
    /// space, or as many as were written when more.
    fn pad(&self, from: usize, to: usize) -> String {
        " ".repeat(self.src[from..to].chars().count().max(1))
    }

    /// `kids` of a file, block or list whose inside is `from..to`, each
    /// printed by `print` after the comments before it; the comment after
    /// the opening `{` or `[` (`after_token`) goes on its line.
    fn children<T: Node>(
        &mut self,
        kids: &[T],
        (from, to): (usize, usize),
        depth: usize,
        after_token: bool,
        mut print: impl FnMut(&mut Self, &T, usize),
    ) {
        let (mut at, mut after, mut emitted) = (from, after_token, false);
        for kid in kids {
            let (start, end) = kid.bounds();
            let g = gap(&self.src[at..start], after);
            self.comments(&g, depth, &mut emitted);
            if g.blank_after && emitted {
                self.lines.push(String::new());
            }
            print(self, kid, depth);
            (at, after, emitted) = (end, true, true);
        }
        let g = gap(&self.src[at..to], after);
        self.comments(&g, depth, &mut emitted);
    }

    /// The comments of `g`: the trailing one at the end of the current line,
    /// the others on lines of their own at `depth`, with their blank lines
    /// (unless nothing was `emitted` before them in this block).
    fn comments(&mut self, g: &Gap<'_>, depth: usize, emitted: &mut bool) {
        if let Some(t) = &g.trailing {
            self.push(&" ".repeat(t.pad.max(1)));
            self.push(t.text);
        }
        for &(blank, text) in &g.own_lines {
            if blank && *emitted {
                self.lines.push(String::new());
            }
            self.newline(depth);
            self.push(text);
            *emitted = true;
        }
    }

    /// Whether a list (or a list inside it) holds a comment.
    fn list_has_comment(&self, v: &Value) -> bool {
        let ValueKind::List(values) = &v.kind else {
            return false;
        };
        let mut at = v.span.start + 1;
        for e in values {
            if self.src[at..e.span.start].contains('#') || self.list_has_comment(e) {
                return true;
            }
            at = e.span.end;
        }
        self.src[at..v.span.end - 1].contains('#')
    }

    /// Whether a block has neither items nor comments.
    fn bare_empty(&self, b: &syntax::Block) -> bool {
        b.items.is_empty() && !self.src[b.span.start + 1..b.span.end - 1].contains('#')
    }

    /// `it` on one line, when it may be: no comment inside, and its block
    /// (if any) written on one line or empty.
    fn flat_item(&self, it: &Item) -> Option<String> {
        let mut line = it.key.to_string();
        let mut at = it.key_span.end;
        for v in &it.args {
            if self.list_has_comment(v) {
                return None;
            }
            line += &self.pad(at, v.span.start);
            line += &flat_value(v);
            at = v.span.end;
        }
        if let Some(b) = &it.block {
            line += &self.pad(at, b.span.start);
            if self.bare_empty(b) {
                line += "{}";
            } else if self.src[b.span.range()].contains('\n') {
                return None;
            } else {
                let items: Option<Vec<String>> =
                    b.items.iter().map(|i| self.flat_item(i)).collect();
                line += &format!("{{ {} }}", items?.join("; "));
            }
        }
        Some(line)
    }

    /// One item, from a new line at `depth`.
    fn item(&mut self, it: &Item, depth: usize) {
        self.newline(depth);
        if let Some(line) = self.flat_item(it)
            && fits(depth, &line)
        {
            self.push(&line);
            return;
        }
        // The line up to the block's `{`, every list on it flat.
        let mut header = it.key.to_string();
        let mut at = it.key_span.end;
        for v in &it.args {
            header += &self.pad(at, v.span.start);
            header += &flat_value(v);
            at = v.span.end;
        }
        if it.block.is_some() {
            header += " {";
        }
        let wide = !fits(depth, &header);
        self.push(it.key);
        let mut at = it.key_span.end;
        for v in &it.args {
            self.push(&self.pad(at, v.span.start));
            self.value(v, depth, wide);
            at = v.span.end;
        }
        let Some(b) = &it.block else { return };
        // Padding before `{` aligns one-line blocks; this one is not.
        if self.bare_empty(b) {
            self.push(" {}");
            return;
        }
        self.push(" {");
        let inside = (b.span.start + 1, b.span.end - 1);
        self.children(&b.items, inside, depth + 1, true, Printer::item);
        self.newline(depth);
        self.push("}");
    }

    /// A value on the current line, whose indentation is `depth`; a list is
    /// broken over lines when `wide` or when it holds a comment.
    fn value(&mut self, v: &Value, depth: usize, wide: bool) {
        let ValueKind::List(values) = &v.kind else {
            self.push(&flat_value(v));
            return;
        };
        if !(wide && !values.is_empty() || self.list_has_comment(v)) {
            self.push(&flat_value(v));
            return;
        }
        self.push("[");
        let inside = (v.span.start + 1, v.span.end - 1);
        self.children(values, inside, depth + 1, true, |p, e, depth| {
            p.newline(depth);
            let wide = !fits(depth, &(flat_value(e) + ","));
            p.value(e, depth, wide);
            p.push(",");
        });
        self.newline(depth);
        self.push("]");
    }
}
