//! Policy tests as their authors write them (`warden test`): the test file's
//! language, read into [`TestFile`]; what a decision is expected to be
//! ([`Expect`]) and how it differs ([`Expect::mismatches`]); and the
//! consumers' credentials a test may mint tokens with ([`credentials`]).
//!
//! A test file is written in the policy language itself (same lexer, same
//! `line:col` errors):
//!
//! ```text
//! policy demo.policy          # beside this file; default: <this file's stem>.policy
//! now 1700000000              # the clock of every test (default: the system clock)
//!
//! test "consumer1 reaches route-a" {
//!   request GET "http://gw.test/a/x" {
//!     token consumer1         # a token minted at the policy's own token endpoint
//!     header X-Trace abc      # repeatable
//!   }
//!   expect forward { consumer consumer1; header X-Mse-Consumer consumer1; no_header Authorization }
//! }
//! test "consumer2 is refused" {
//!   request GET "http://gw.test/a/x" { token consumer2 }
//!   expect 403 { reason "not allowed"; header WWW-Authenticate "Bearer realm=\"http://gw.test/a/x\", error=\"insufficient_scope\"" }
//! }
//! ```
//!
//! `token NAME` takes a block too: `url` (the token endpoint to ask; default
//! the request's own URL with the token path appended, so that a route's
//! token is its own), `scope`, and `at` (the clock when it is minted: an
//! expired token is one minted long ago). The token goes in
//! `Authorization: Bearer …`, or wherever a `header` value says `{token}`
//! (any header name); an expected header's value may say `{token}` too.
//! `{env:NAME}` in a request's URL, header values and body is that
//! environment variable (a provision key the policy reads from there).
//! The request's block also takes
//! `body` and `now`. An expectation is `forward` or a status; its block
//! checks `consumer`, `route`, `upstream`, `reason` (contained), `body`
//! (contained), `header NAME VALUE` (forward: what the upstream sees;
//! reply: the response's) and `no_header NAME`.
//!
//! Running them (minting, deciding) is the host's: it asks the guest, so a
//! test exercises the policy exactly as `warden serve` runs it.

use crate::syntax::{self, Block, Item, Span};
use crate::{Decision, Diagnostic};

/// A parsed test file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFile {
    /// `policy FILE`, as written (relative to the test file).
    pub policy: Option<String>,
    /// `now N`: the default clock.
    pub now: Option<u64>,
    pub tests: Vec<TestCase>,
}

/// One `test "name" { request …; expect … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    pub name: String,
    /// 1-based line of the `test` item.
    pub line: usize,
    pub request: TestRequest,
    pub expect: Expect,
}

/// The request a test sends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TestRequest {
    pub method: String,
    /// `scheme://authority/path?query` or `/path?query`.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub now: Option<u64>,
    pub token: Option<TokenSpec>,
}

/// `token CONSUMER { url …; scope …; at … }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenSpec {
    pub consumer: String,
    pub url: Option<String>,
    pub scope: Option<String>,
    pub at: Option<u64>,
}

/// What the decision must be.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expect {
    /// `None`: forwarded; else the reply's status.
    pub status: Option<u16>,
    pub consumer: Option<String>,
    pub route: Option<String>,
    pub upstream: Option<String>,
    pub reason: Option<String>,
    pub body: Option<String>,
    pub headers: Vec<(String, String)>,
    pub no_headers: Vec<String>,
}

/// A consumer's credential as the policy text gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub consumer: String,
    pub client_id: String,
    pub secret: SecretText,
}

/// A client secret as written: the value, where the host reads it, or a
/// hash (which cannot be presented).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretText {
    Plain(String),
    Env(String),
    File(String),
    Hashed,
    None,
}

fn fail(source: &str, span: Span, message: impl Into<String>) -> Diagnostic {
    Diagnostic::error(source, span.range(), message)
}

/// Read a test file.
pub fn parse(source: &str) -> Result<TestFile, Diagnostic> {
    let file = syntax::parse(source)?;
    let mut out = TestFile {
        policy: None,
        now: None,
        tests: Vec::new(),
    };
    for item in &file.items {
        match item.key {
            "policy" => out.policy = Some(text(source, item)?),
            "now" => out.now = Some(number(source, item)?),
            "test" => out.tests.push(test_case(source, item)?),
            other => {
                return Err(fail(source, item.key_span, format!("unknown item `{other}` in a test file"))
                    .with_help("a test file holds `policy FILE`, `now SECONDS` and `test \"name\" { request …; expect … }` items"));
            }
        }
    }
    Ok(out)
}

/// The one value of `item`, as text (a word or a string).
fn text(source: &str, item: &Item) -> Result<String, Diagnostic> {
    match item.args.as_slice() {
        [v] => match v.text() {
            Some(s) => Ok(s.to_string()),
            None => Err(fail(
                source,
                v.span,
                format!("`{}` takes one value, not a list", item.key),
            )),
        },
        _ => Err(fail(
            source,
            item.span,
            format!("`{}` takes one value", item.key),
        )),
    }
}

fn number(source: &str, item: &Item) -> Result<u64, Diagnostic> {
    let t = text(source, item)?;
    t.parse().map_err(|_| {
        fail(
            source,
            item.span,
            format!("`{}` takes a number of seconds, found `{t}`", item.key),
        )
    })
}

/// `NAME VALUE` of a `header` item.
fn pair(source: &str, item: &Item) -> Result<(String, String), Diagnostic> {
    match item.args.as_slice() {
        [n, v] => match (n.text(), v.text()) {
            (Some(n), Some(v)) => Ok((n.to_string(), v.to_string())),
            _ => Err(fail(source, item.span, "a header is `header NAME VALUE`")),
        },
        _ => Err(fail(source, item.span, "a header is `header NAME VALUE`")),
    }
}

fn block_items<'a, 's>(item: &'a Item<'s>) -> &'a [Item<'s>] {
    item.block
        .as_ref()
        .map_or(&[], |b: &Block| b.items.as_slice())
}

fn test_case(source: &str, item: &Item) -> Result<TestCase, Diagnostic> {
    let name = text(source, item)?;
    let line = crate::diagnostic::line_col(source, item.span.start).0 as usize;
    let (mut request, mut expect) = (None, None);
    for inner in block_items(item) {
        match inner.key {
            "request" => request = Some(test_request(source, inner)?),
            "expect" => expect = Some(expectation(source, inner)?),
            other => {
                return Err(fail(source, inner.key_span, format!("unknown item `{other}` in a test"))
                    .with_help("a test holds one `request METHOD URL { … }` and one `expect forward|STATUS { … }`"));
            }
        }
    }
    let missing = |what: &str| {
        fail(
            source,
            item.key_span,
            format!("test \"{name}\" has no `{what}`"),
        )
    };
    Ok(TestCase {
        request: request.ok_or_else(|| missing("request"))?,
        expect: expect.ok_or_else(|| missing("expect"))?,
        name,
        line,
    })
}

fn test_request(source: &str, item: &Item) -> Result<TestRequest, Diagnostic> {
    let words: Vec<&str> = item.args.iter().filter_map(syntax::Value::text).collect();
    let [method, url] = words.as_slice() else {
        return Err(fail(
            source,
            item.span,
            "a request is `request METHOD URL { … }`",
        ));
    };
    let mut req = TestRequest {
        method: method.to_ascii_uppercase(),
        url: (*url).to_string(),
        ..TestRequest::default()
    };
    for inner in block_items(item) {
        match inner.key {
            "header" => req.headers.push(pair(source, inner)?),
            "body" => req.body = Some(text(source, inner)?),
            "now" => req.now = Some(number(source, inner)?),
            "token" => {
                let mut spec = TokenSpec {
                    consumer: text(source, inner)?,
                    ..TokenSpec::default()
                };
                for t in block_items(inner) {
                    match t.key {
                        "url" => spec.url = Some(text(source, t)?),
                        "scope" => spec.scope = Some(text(source, t)?),
                        "at" => spec.at = Some(number(source, t)?),
                        other => {
                            return Err(fail(
                                source,
                                t.key_span,
                                format!("unknown item `{other}` in a token"),
                            )
                            .with_help("a token takes `url`, `scope` and `at`"));
                        }
                    }
                }
                req.token = Some(spec);
            }
            other => {
                return Err(fail(source, inner.key_span, format!("unknown item `{other}` in a request"))
                    .with_help("a request takes `header NAME VALUE`, `token CONSUMER`, `body TEXT` and `now SECONDS`"));
            }
        }
    }
    Ok(req)
}

fn expectation(source: &str, item: &Item) -> Result<Expect, Diagnostic> {
    let outcome = text(source, item)?;
    let status = match outcome.as_str() {
        "forward" => None,
        s => match s.parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Some(code),
            _ => {
                return Err(fail(
                    source,
                    item.span,
                    format!("expected `forward` or a status (100–599), found `{s}`"),
                ));
            }
        },
    };
    let mut e = Expect {
        status,
        ..Expect::default()
    };
    for inner in block_items(item) {
        match inner.key {
            "consumer" => e.consumer = Some(text(source, inner)?),
            "route" => e.route = Some(text(source, inner)?),
            "upstream" => e.upstream = Some(text(source, inner)?),
            "reason" => e.reason = Some(text(source, inner)?),
            "body" => e.body = Some(text(source, inner)?),
            "header" => e.headers.push(pair(source, inner)?),
            "no_header" => e.no_headers.push(text(source, inner)?),
            other => {
                return Err(fail(source, inner.key_span, format!("unknown item `{other}` in an expectation"))
                    .with_help("an expectation takes `consumer`, `route`, `upstream`, `reason`, `body`, `header NAME VALUE` and `no_header NAME`"));
            }
        }
    }
    Ok(e)
}

impl Expect {
    /// How `decision` (for a request with `request_headers`) differs from
    /// this expectation: one line per difference, `expected …, got …`.
    pub fn mismatches(
        &self,
        decision: &Decision,
        request_headers: &[(String, String)],
    ) -> Vec<String> {
        let mut out = Vec::new();
        let mut want = |what: &str, expected: &str, got: &str| {
            out.push(format!("{what}: expected {expected}, got {got}"));
        };
        match (self.status, decision) {
            (None, Decision::Forward(f)) => {
                let seen = upstream_headers(request_headers, f);
                let got_consumer = f.consumer.as_deref().unwrap_or("none");
                if let Some(c) = &self.consumer
                    && c != got_consumer
                {
                    want("consumer", c, got_consumer);
                }
                let got_route = f.route.as_deref().unwrap_or("none");
                if let Some(r) = &self.route
                    && r != got_route
                {
                    want("route", r, got_route);
                }
                let got_upstream = f
                    .upstream
                    .as_ref()
                    .map_or_else(|| "default".to_string(), ToString::to_string);
                if let Some(u) = &self.upstream
                    && *u != got_upstream
                {
                    want("upstream", u, &got_upstream);
                }
                headers_match(
                    &self.headers,
                    &self.no_headers,
                    &seen,
                    "upstream header",
                    &mut want,
                );
                for (what, field) in [("reason", &self.reason), ("body", &self.body)] {
                    if field.is_some() {
                        want(what, "a reply", "a forward");
                    }
                }
            }
            (Some(status), Decision::Reply(r)) => {
                if status != r.status {
                    want(
                        "status",
                        &status.to_string(),
                        &format!("{} ({})", r.status, r.reason),
                    );
                }
                if let Some(reason) = &self.reason
                    && !r.reason.contains(reason.as_str())
                {
                    want(
                        "reason",
                        &format!("one containing {reason:?}"),
                        &format!("{:?}", r.reason),
                    );
                }
                let body = String::from_utf8_lossy(&r.body);
                if let Some(b) = &self.body
                    && !body.contains(b.as_str())
                {
                    want(
                        "body",
                        &format!("one containing {b:?}"),
                        &format!("{body:?}"),
                    );
                }
                headers_match(
                    &self.headers,
                    &self.no_headers,
                    &r.headers,
                    "response header",
                    &mut want,
                );
                for (what, field) in [
                    ("consumer", &self.consumer),
                    ("route", &self.route),
                    ("upstream", &self.upstream),
                ] {
                    if field.is_some() {
                        want(what, "a forward", &format!("reply {}", r.status));
                    }
                }
            }
            (None, Decision::Reply(r)) => want(
                "outcome",
                "forward",
                &format!("reply {} ({})", r.status, r.reason),
            ),
            (Some(s), Decision::Forward(f)) => want(
                "outcome",
                &format!("reply {s}"),
                &format!(
                    "forward (consumer {})",
                    f.consumer.as_deref().unwrap_or("none")
                ),
            ),
            (_, other) => want("outcome", "a final decision", &format!("{other:?}")),
        }
        out
    }
}

/// The headers an upstream sees: the request's, the decision's removals
/// applied, then its sets.
fn upstream_headers(request: &[(String, String)], f: &crate::Forward) -> Vec<(String, String)> {
    let mut seen: Vec<(String, String)> = request
        .iter()
        .filter(|(n, _)| !f.remove_headers.iter().any(|r| r.eq_ignore_ascii_case(n)))
        .filter(|(n, _)| !f.set_headers.iter().any(|(s, _)| s.eq_ignore_ascii_case(n)))
        .cloned()
        .collect();
    seen.extend(f.set_headers.iter().cloned());
    seen
}

fn headers_match(
    want_headers: &[(String, String)],
    absent: &[String],
    got: &[(String, String)],
    what: &str,
    want: &mut impl FnMut(&str, &str, &str),
) {
    for (name, value) in want_headers {
        let values: Vec<&str> = got
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        if !values.contains(&value.as_str()) {
            let got = if values.is_empty() {
                "none".to_string()
            } else {
                format!("{values:?}")
            };
            want(&format!("{what} {name}"), &format!("{value:?}"), &got);
        }
    }
    for name in absent {
        if let Some((_, v)) = got.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            want(&format!("{what} {name}"), "none", &format!("{v:?}"));
        }
    }
}

/// Every consumer's credentials in a policy's text (top level and inside
/// rules), as written: what `token NAME` presents at the token endpoint.
pub fn credentials(policy: &str) -> Result<Vec<Credential>, Diagnostic> {
    let file = syntax::parse(policy)?;
    let mut out = Vec::new();
    collect(&file.items, &mut out);
    Ok(out)
}

/// The `signing_alg`s a policy's scopes use (for which a test run needs
/// host keys), each once.
pub fn signing_algs(policy: &str) -> Result<Vec<String>, Diagnostic> {
    fn walk(items: &[Item], out: &mut Vec<String>) {
        for item in items {
            if item.key == "signing_alg"
                && let Some(a) = item.args.first().and_then(syntax::Value::text)
                && !out.iter().any(|o| o == a)
            {
                out.push(a.to_string());
            }
            walk(block_items(item), out);
        }
    }
    let file = syntax::parse(policy)?;
    let mut out = Vec::new();
    walk(&file.items, &mut out);
    Ok(out)
}

fn collect(items: &[Item], out: &mut Vec<Credential>) {
    for item in items {
        match item.key {
            "consumer" => {
                let Some(name) = item.args.first().and_then(syntax::Value::text) else {
                    continue;
                };
                let inner = block_items(item);
                let direct = credential_of(name, inner);
                out.extend(direct);
                for c in inner.iter().filter(|i| i.key == "credential") {
                    out.extend(credential_of(name, block_items(c)));
                }
            }
            "rule" => collect(block_items(item), out),
            _ => {}
        }
    }
}

fn credential_of(consumer: &str, items: &[Item]) -> Option<Credential> {
    let word = |v: &syntax::Value| v.text().map(str::to_string);
    let id = items
        .iter()
        .find(|i| i.key == "client_id")?
        .args
        .first()
        .and_then(word)?;
    let secret = match items.iter().find(|i| i.key == "client_secret") {
        None => SecretText::None,
        Some(s) => match (
            s.args.first().and_then(word).as_deref(),
            s.args.get(1).and_then(word),
        ) {
            (Some("env"), Some(n)) => SecretText::Env(n),
            (Some("file"), Some(p)) => SecretText::File(p),
            (Some("hash"), Some(_)) => SecretText::Hashed,
            (Some(v), None) => SecretText::Plain(v.to_string()),
            _ => SecretText::None,
        },
    };
    Some(Credential {
        consumer: consumer.to_string(),
        client_id: id,
        secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_file_reads_into_cases() {
        let src = r#"
policy demo.policy
now 1700000000
test "one" {
  request get "http://gw.test/a/x" { token consumer1 { scope email; at 5 }; header X-A "1 2" }
  expect forward { consumer consumer1; header X-Mse-Consumer consumer1; no_header Authorization }
}
test "two" { request POST /t { body "a=b"; now 9 }; expect 401 { reason "no bearer" } }
"#;
        let f = parse(src).unwrap();
        assert_eq!(f.policy.as_deref(), Some("demo.policy"));
        assert_eq!(f.now, Some(1_700_000_000));
        assert_eq!(f.tests.len(), 2);
        let one = &f.tests[0];
        assert_eq!((one.name.as_str(), one.line), ("one", 4));
        assert_eq!(one.request.method, "GET");
        let token = one.request.token.as_ref().unwrap();
        assert_eq!(
            (token.consumer.as_str(), token.scope.as_deref(), token.at),
            ("consumer1", Some("email"), Some(5))
        );
        assert_eq!(
            one.request.headers,
            [("X-A".to_string(), "1 2".to_string())]
        );
        assert_eq!(one.expect.no_headers, ["Authorization"]);
        assert_eq!(f.tests[1].expect.status, Some(401));
        assert_eq!(f.tests[1].request.body.as_deref(), Some("a=b"));
    }

    #[test]
    fn mistakes_are_reported_where_they_are() {
        for (src, message) in [
            ("test x { request GET / }\n", "test \"x\" has no `expect`"),
            (
                "test x { request GET / ; expect 999 }\n",
                "expected `forward` or a status",
            ),
            (
                "test x { request GET / { tokn a }; expect 200 }\n",
                "unknown item `tokn` in a request",
            ),
            ("tset x\n", "unknown item `tset`"),
            ("now soon\n", "takes a number of seconds"),
        ] {
            let e = parse(src).unwrap_err();
            assert!(e.message.contains(message), "{src:?}: {}", e.message);
        }
    }

    #[test]
    fn credentials_are_found_at_every_level() {
        let policy = r#"
consumer a { client_id ia; client_secret sa }
consumer b { client_id ib; client_secret env B_SECRET }
consumer m { credential { client_id m1; client_secret "s 1" }; credential { client_id m2; client_secret hash "$argon2id$x" } }
rule r { match route [x]; consumer c { client_id ic; client_secret file /run/c } ; allow [c] }
"#;
        let c = credentials(policy).unwrap();
        let got: Vec<(&str, &str, &SecretText)> = c
            .iter()
            .map(|c| (c.consumer.as_str(), c.client_id.as_str(), &c.secret))
            .collect();
        assert_eq!(
            got,
            [
                ("a", "ia", &SecretText::Plain("sa".into())),
                ("b", "ib", &SecretText::Env("B_SECRET".into())),
                ("m", "m1", &SecretText::Plain("s 1".into())),
                ("m", "m2", &SecretText::Hashed),
                ("c", "ic", &SecretText::File("/run/c".into())),
            ]
        );
    }
}
