//! Diagnostics: what is wrong with a policy, and exactly where.
//!
//! Every error or warning about policy text carries the byte span of the
//! offending text. [`Diagnostic::render`] shows it the way compilers do:
//! `file:line:col`, the source line, a caret under the span, and a help line.

use std::fmt;
use std::ops::Range;

/// How bad a diagnostic is: errors fail compilation, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// One line, lowercase, user input in backticks.
    pub message: String,
    /// A suggested fix.
    pub help: Option<String>,
    /// Byte range in the source.
    pub span: Range<usize>,
    /// 1-based line of `span.start`.
    pub line: u32,
    /// 1-based column (in chars) of `span.start`.
    pub column: u32,
}

impl Diagnostic {
    /// An error at `span` in `source` (line and column are computed here).
    pub fn error(source: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, source, span, message.into())
    }

    /// A warning at `span` in `source`.
    pub fn warning(source: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, source, span, message.into())
    }

    fn new(severity: Severity, source: &str, span: Range<usize>, message: String) -> Self {
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let end = floor_char_boundary(source, span.end.clamp(start, source.len()));
        let (line, column) = line_col(source, start);
        Diagnostic {
            severity,
            message: bounded(message),
            help: None,
            span: start..end,
            line,
            column,
        }
    }

    /// A diagnostic located with a prebuilt [`LineIndex`]: cheap when a file
    /// has many (the plain constructors scan the source from its start).
    pub fn indexed(
        severity: Severity,
        source: &str,
        lines: &LineIndex,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let end = floor_char_boundary(source, span.end.clamp(start, source.len()));
        let (line, column) = lines.line_col(source, start);
        Diagnostic {
            severity,
            message: bounded(message.into()),
            help: None,
            span: start..end,
            line,
            column,
        }
    }

    /// A diagnostic whose place in the source is already known: `span`
    /// starts at 1-based `line` and `column` (no source needed).
    pub fn placed(
        severity: Severity,
        span: Range<usize>,
        line: u32,
        column: u32,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity,
            message: bounded(message.into()),
            help: None,
            span,
            line,
            column,
        }
    }

    /// Attach a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(bounded(help.into()));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Render for a terminal: location, the line, a caret under the span, help.
    pub fn render(&self, file: &str, source: &str) -> String {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let line_start = source[..self.span.start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[self.span.start..]
            .find('\n')
            .map_or(source.len(), |i| self.span.start + i);
        let raw = source[line_start..line_end].trim_end_matches('\r');
        // Where the caret starts, in chars of the line.
        let col = source[line_start..self.span.start].chars().count();
        let width = source[self.span.start..self.span.end.min(line_end).max(self.span.start)]
            .chars()
            .count()
            .max(1);
        let (text, lead, carets) = shown_line(raw, col, width);
        let lineno = self.line.to_string();
        let pad = " ".repeat(lineno.len());
        let mut out = format!(
            "{kind}: {msg}\n{pad}--> {file}:{line}:{col}\n{pad} |\n{lineno} | {text}\n{pad} | {lead}{carets}\n",
            msg = self.message,
            line = self.line,
            col = self.column,
        );
        if let Some(help) = &self.help {
            out.push_str(&format!("{pad} = help: {help}\n"));
        }
        out
    }
}

/// Longest message or help (in bytes): they quote user input, which may be
/// a 10 MB word.
const MAX_MESSAGE_BYTES: usize = 240;

/// `text`, cut to [`MAX_MESSAGE_BYTES`] (on a char boundary) with `…`.
fn bounded(mut text: String) -> String {
    if text.len() > MAX_MESSAGE_BYTES {
        text.truncate(floor_char_boundary(&text, MAX_MESSAGE_BYTES));
        text.push('…');
    }
    text
}

/// Longest line shown whole under a diagnostic (in chars); a longer one is
/// shown as a window of this many chars around the caret, marked with `…`.
const MAX_SHOWN_CHARS: usize = 160;
/// Chars of the line shown before the caret when the line is windowed.
const SHOWN_BEFORE: usize = 60;
/// Longest line (in bytes) shown at all: longer ones are described instead.
/// Masking secrets needs the whole line, and every diagnostic on a line
/// shows it: a 10 MB one-line file must not cost gigabytes of output.
const MAX_LINE_BYTES: usize = 16 * 1024;

/// The line text (secrets masked), the lead before the carets and the
/// carets, for a caret at char `col` spanning `width` chars.
fn shown_line(raw: &str, col: usize, width: usize) -> (String, String, String) {
    if raw.len() > MAX_LINE_BYTES {
        let n = raw.chars().count();
        return (
            format!("({n} characters: too long to show)"),
            String::new(),
            String::new(),
        );
    }
    let masked: Vec<char> = mask_secrets(raw).chars().collect();
    let (from, to) = if masked.len() <= MAX_SHOWN_CHARS {
        (0, masked.len())
    } else {
        let from = col.saturating_sub(SHOWN_BEFORE).min(masked.len());
        (from, (from + MAX_SHOWN_CHARS).min(masked.len()))
    };
    let (before, after) = (from > 0, to < masked.len());
    let mut text: String = if before { "…".into() } else { String::new() };
    text.extend(&masked[from..to]);
    if after {
        text.push('…');
    }
    let mut lead: String = if before { " ".into() } else { String::new() };
    lead.extend(
        masked[from..col.clamp(from, to)]
            .iter()
            .map(|&c| if c == '\t' { '\t' } else { ' ' }),
    );
    let carets = "^".repeat(width.min(to.saturating_sub(col)).max(1));
    (text, lead, carets)
}

/// The line as shown under a diagnostic, with the values of secret settings
/// (`client_secret`, `signing_key`: literals and hashes, not `env`/`file`
/// references) replaced by `*`, one per character so the caret still lines up.
pub fn mask_secrets(line: &str) -> String {
    const KEYS: [&str; 2] = ["client_secret", "signing_key"];
    let keys: [Vec<char>; 2] = KEYS.map(|k| k.chars().collect());
    let chars: Vec<char> = line.chars().collect();
    let mut out = chars.clone();
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let mut i = 0;
    while i < chars.len() {
        let at_key = keys.iter().find(|k| {
            chars[i..].starts_with(k)
                && (i == 0 || !word(chars[i - 1]))
                && chars.get(i + k.len()).is_none_or(|c| !word(*c))
        });
        let Some(key) = at_key else {
            i += 1;
            continue;
        };
        i += key.len();
        let mut first = true;
        // The values up to the end of the item.
        while i < chars.len() && !matches!(chars[i], ';' | '}' | '#' | '{') {
            if chars[i].is_whitespace() {
                i += 1;
                continue;
            }
            let start = i;
            if chars[i] == '"' {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i = (i + 1).min(chars.len());
            } else {
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], ';' | '}' | '#')
                {
                    i += 1;
                }
            }
            let token: String = chars[start..i].iter().collect();
            if first && (token == "env" || token == "file") {
                break; // a reference, not a secret
            }
            if !(first && token == "hash") {
                let closed = chars[start] == '"' && i >= start + 2 && chars[i - 1] == '"';
                let (from, to) = match (chars[start] == '"', closed) {
                    (true, true) => (start + 1, i - 1),
                    (true, false) => (start + 1, i),
                    _ => (start, i),
                };
                for c in &mut out[from..to] {
                    *c = '*';
                }
            }
            first = false;
        }
    }
    out.into_iter().collect()
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// Most diagnostics of one severity reported for a file; a longer list ends
/// with a note saying how many were left out (and stays cheap to locate).
pub const MAX_PER_SEVERITY: usize = 100;

/// Keep at most [`MAX_PER_SEVERITY`] of each severity (in order), noting the rest.
pub fn cap(list: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut out = Vec::with_capacity(list.len().min(2 * MAX_PER_SEVERITY + 2));
    for severity in [Severity::Error, Severity::Warning] {
        let mut same = list.iter().filter(|d| d.severity == severity);
        out.extend(same.by_ref().take(MAX_PER_SEVERITY).cloned());
        if let Some(next) = same.next() {
            let more = 1 + same.count();
            let kind = if severity == Severity::Error {
                "errors"
            } else {
                "warnings"
            };
            let mut d = Diagnostic::placed(
                severity,
                next.span.clone(),
                next.line,
                next.column,
                format!("… and {more} more {kind}"),
            );
            d.help = Some(format!("only the first {MAX_PER_SEVERITY} are shown"));
            out.push(d);
        }
    }
    out
}

/// Line starts of a source, to find line numbers in O(log n).
#[derive(Debug, Clone)]
pub struct LineIndex(Vec<usize>);

impl LineIndex {
    pub fn new(source: &str) -> Self {
        LineIndex(source.match_indices('\n').map(|(i, _)| i).collect())
    }

    /// 1-based line of byte offset `at`.
    pub fn line(&self, at: usize) -> u32 {
        self.0.partition_point(|&nl| nl < at) as u32 + 1
    }

    /// 1-based line and char column of byte offset `at` of `source`
    /// (the source this index was made from).
    pub fn line_col(&self, source: &str, at: usize) -> (u32, u32) {
        let at = floor_char_boundary(source, at.min(source.len()));
        let line = self.line(at);
        let column = source[self.line_start(line)..at].chars().count() as u32 + 1;
        (line, column)
    }

    /// Byte offset where 1-based `line` starts.
    pub fn line_start(&self, line: u32) -> usize {
        match line {
            0 | 1 => 0,
            n => self.0.get(n as usize - 2).map_or(0, |nl| nl + 1),
        }
    }
}

/// 1-based line and char column of byte offset `at`.
pub fn line_col(source: &str, at: usize) -> (u32, u32) {
    let before = &source[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line as u32, col as u32)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
