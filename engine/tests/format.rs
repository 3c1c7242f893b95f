//! The policy formatter (`warden_engine::format`): its layout rules on small
//! inputs, idempotence and an unchanged AST on random sources, and, on every
//! policy under `policies/`, the same decisions before and after formatting
//! for random requests (with tokens the policy issued).
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use warden_engine::fixtures::{HIGRESS_SAMPLE_TOKEN, access_token, key_ring};
use warden_engine::internal::syntax;
use warden_engine::{Decision, FixedServices, Policy, Request, format};

/// `src` formatted, checked to be a fixed point of the formatter and to
/// parse to the same AST with the same comments.
fn fmt(src: &str) -> String {
    let out = format(src).unwrap_or_else(|d| panic!("{}", d.render("input", src)));
    assert_eq!(format(&out).unwrap(), out, "not idempotent on:\n{src}");
    assert_eq!(ast(&out), ast(src), "the AST changed:\n{src}\n---\n{out}");
    assert_eq!(comments(&out), comments(src), "comments changed:\n{out}");
    out
}

/// The AST's debug form without its spans.
fn ast(src: &str) -> String {
    let mut s = format!("{:?}", syntax::parse(src).unwrap());
    while let Some(at) = s.find("Span { start: ") {
        let end = at + s[at..].find('}').unwrap() + 1;
        s.replace_range(at..end, "Span");
    }
    s
}

/// The comments of `src` in order, less trailing blanks (a scan that skips
/// strings).
fn comments(src: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_str, mut escaped) = (false, false);
    let mut i = 0;
    while let Some(c) = src[i..].chars().next() {
        if in_str {
            (in_str, escaped) = match c {
                _ if escaped => (true, false),
                '\\' => (true, true),
                '"' => (false, false),
                _ => (true, false),
            };
        } else if c == '"' {
            in_str = true;
        } else if c == '#' {
            let end = src[i..].find('\n').map_or(src.len(), |n| i + n);
            out.push(src[i..end].trim_end());
            i = end;
            continue;
        }
        i += c.len_utf8();
    }
    out
}

// ----- layout ------------------------------------------------------------

#[test]
fn comments_stay_with_their_items() {
    let src = "\n\n# header of the file\n\n# leads a\na 1   # trails a, padding kept\n\
               b {   # on the brace line\n\n# leads c, reindented\n      c 2 # trails c\n\
               d [x]\n  # ends the block\n} # trails b\n# ends the file\n\n\n";
    let want = "# header of the file\n\n# leads a\na 1   # trails a, padding kept\n\
                b {   # on the brace line\n  # leads c, reindented\n  c 2 # trails c\n  d [x]\n\
                \x20 # ends the block\n} # trails b\n# ends the file\n";
    assert_eq!(fmt(src), want);
}

#[test]
fn comments_only_and_empty_files() {
    assert_eq!(fmt(""), "");
    assert_eq!(fmt("\n \n\t\n"), "");
    assert_eq!(fmt("  # only\n\n\n# comments"), "# only\n\n# comments\n");
    assert_eq!(
        fmt("a {\n  # nothing else\n}"),
        "a {\n  # nothing else\n}\n"
    );
    assert_eq!(fmt("a { # on the brace\n}"), "a { # on the brace\n}\n");
}

#[test]
fn comments_after_semicolons_and_blocks() {
    assert_eq!(
        fmt("a 1; # after a\nb 2;c 3 # after c\n"),
        "a 1 # after a\nb 2\nc 3 # after c\n"
    );
    assert_eq!(
        fmt("r { x 1 }  # after a one-line block\ns {\n  y 2\n}# no space\n"),
        "r { x 1 }  # after a one-line block\ns {\n  y 2\n} # no space\n"
    );
}

#[test]
fn blank_lines_collapse_and_vanish_at_block_edges() {
    let src = "\n\n\na 1\n\n\n\nb 2\nc {\n\n  d 3\n\n\n  e 4\n\n}\n\n\n# end\n\n";
    assert_eq!(fmt(src), "a 1\n\nb 2\nc {\n  d 3\n\n  e 4\n}\n\n# end\n");
    // Between comments, and between a comment and its item.
    let src = "x {\n  # one\n\n\n  # two\n\n  y 1\n  # three\n\n}\n";
    assert_eq!(fmt(src), "x {\n  # one\n\n  # two\n\n  y 1\n  # three\n}\n");
    // CRLF line ends become LF.
    assert_eq!(
        fmt("a 1\r\n\r\n\r\nb { c 2 }  # x\r\n"),
        "a 1\n\nb { c 2 }  # x\n"
    );
}

#[test]
fn semicolons_split_items_onto_lines() {
    assert_eq!(fmt("a 1; b 2;c 3;;\n; d 4"), "a 1\nb 2\nc 3\nd 4\n");
    assert_eq!(fmt("x {\n d 3; e 4 }"), "x {\n  d 3\n  e 4\n}\n");
    assert_eq!(fmt("x {d 3;e 4;}"), "x { d 3; e 4 }\n");
}

#[test]
fn one_line_blocks_stay_when_they_fit() {
    assert_eq!(
        fmt("route a {path_prefix /a;  upstream echo}\nrule { match route [a] ; disable }\n"),
        "route a { path_prefix /a; upstream echo }\nrule { match route [a]; disable }\n"
    );
    // Nested one-line blocks, and empty blocks.
    assert_eq!(
        fmt("a { b { c 1 } }\nd {}\ne {\n\n}\nf { ; }"),
        "a { b { c 1 } }\nd {}\ne {}\nf {}\n"
    );
    // Written over several lines: never joined.
    assert_eq!(fmt("a {\n  b 1 }\n"), "a {\n  b 1\n}\n");
    // Too wide: expanded; the alignment padding before `{` goes with it.
    let long = "x".repeat(80);
    let src = format!("user bob   {{ password_hash \"{long}\" }}\nuser al {{ p 1 }}\n");
    assert_eq!(
        fmt(&src),
        format!("user bob {{\n  password_hash \"{long}\"\n}}\nuser al {{ p 1 }}\n")
    );
    // The width counts the indentation: fits at the top, not nested.
    let inner = format!("k {{ v {} }}", "y".repeat(92));
    assert_eq!(inner.len(), 100);
    assert_eq!(fmt(&inner), format!("{inner}\n"));
    let nested = fmt(&format!("o {{\n{inner}\n}}"));
    assert_eq!(
        nested,
        format!("o {{\n  k {{\n    v {}\n  }}\n}}\n", "y".repeat(92))
    );
}

#[test]
fn alignment_padding_is_kept_single_blanks_normalised() {
    let src = "consumer c {\n    client_id     \"id\"\n    client_secret\t\"s\"\n}\n\
               global_auth        true\ntoken_ttl\t\t2h\nissuer  \"x\"  # why\n";
    assert_eq!(
        fmt(src),
        "consumer c {\n  client_id     \"id\"\n  client_secret \"s\"\n}\n\
         global_auth        true\ntoken_ttl  2h\nissuer  \"x\"  # why\n"
    );
}

#[test]
fn lists_join_when_they_fit_and_break_when_they_do_not() {
    assert_eq!(
        fmt("allow [a,b  c,\n   d,]\nm [ ]\n"),
        "allow [a, b, c, d]\nm []\n"
    );
    assert_eq!(fmt("m [[a b] [], [[c]]]"), "m [[a, b], [], [[c]]]\n");
    let hosts: Vec<String> = (0..8).map(|i| format!("\"host{i}.example.com\"")).collect();
    let src = format!(
        "rule {{\n  match domain [{}] {{ x 1 }}\n}}\n",
        hosts.join(", ")
    );
    let mut want = String::from("rule {\n  match domain [\n");
    for h in &hosts {
        want += &format!("    {h},\n");
    }
    want += "  ] {\n    x 1\n  }\n}\n";
    assert_eq!(fmt(&src), want);
    // A list inside a broken list breaks only when it does not fit.
    let long: Vec<String> = (0..12).map(|i| format!("element-{i:02}")).collect();
    let src = format!("k [short, [a, b], [{}]] after", long.join(" "));
    let out = fmt(&src);
    assert!(
        out.starts_with("k [\n  short,\n  [a, b],\n  [\n    element-00,\n"),
        "{out}"
    );
    assert!(out.ends_with("    element-11,\n  ],\n] after\n"), "{out}");
    assert!(out.lines().all(|l| l.len() <= 100), "{out}");
}

#[test]
fn comments_in_lists_break_them_and_stay() {
    let src = "allow [ # who may pass\n  alice,   # the first\n\n\n  # then\n  bob carol # last\n  # end of list\n] extra\n";
    let want = "allow [ # who may pass\n  alice,   # the first\n\n  # then\n  bob,\n  carol, # last\n  \
                # end of list\n] extra\n";
    assert_eq!(fmt(src), want);
    assert_eq!(
        fmt("a [x, [y, # in\n z]]"),
        "a [\n  x,\n  [\n    y, # in\n    z,\n  ],\n]\n"
    );
    assert_eq!(fmt("a [\n # nothing\n]"), "a [\n  # nothing\n]\n");
}

#[test]
fn strings_round_trip_with_canonical_escapes() {
    for s in [
        "with space",
        "quo\"te",
        "back\\slash\\",
        "#hash",
        "semi;colon",
        "{brace}",
        "[list],",
        "ünïcødé → 😀",
        "tab\there",
        "new\nline",
        "",
        "true",
        "\r",
    ] {
        let lit = format!("{s:?}").replace("\\r", "\r").replace("\\'", "'");
        let lit = lit.replace("\\u{1f600}", "😀");
        let out = fmt(&format!("k {lit}\n"));
        assert!(ast(&out).contains(&format!("Str({s:?})")), "{s:?} → {out}");
    }
    // Raw tabs in strings become `\t`; words and strings keep their kind.
    assert_eq!(fmt("k \"a\tb\"\n"), "k \"a\\tb\"\n");
    let src = "k true \"true\" 2h \"2h\" a\\b é \"plain\" '*.x' [\"q\", w]\n";
    assert_eq!(fmt(src), src);
}

#[test]
fn quoting_is_kept_because_it_matters() {
    // `keep_token` reads only bare words: unquoting would make this compile.
    let src = "keep_token \"false\"\n";
    let services = FixedServices::at(0);
    let before = Policy::compile(src, &services).unwrap_err();
    let after = Policy::compile(&fmt(src), &services).unwrap_err();
    assert_eq!(before[0].message, after[0].message);
}

#[test]
fn syntax_errors_are_the_parsers() {
    for (src, line, column) in [
        ("a 1\nb \"unterminated\nc 2\n", 2, 3),
        ("a {\n  b 1\n}\n}\n", 4, 1),
        ("a [x,\n  y\n", 1, 3),
        ("r { x 1 } extra\n", 1, 11),
    ] {
        let d = format(src).unwrap_err();
        assert_eq!((d.line, d.column), (line, column), "{src}");
        let compiled = Policy::compile(src, &FixedServices::at(0)).unwrap_err();
        assert_eq!(compiled, vec![d]);
    }
}

// ----- random sources: idempotent, same AST, same comments ----------------

fn key() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_-]{0,8}"
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_./:*@$%+=!?'-]{1,10}",
        "[a-zé→\\\\]{1,4}",
        Just("true".to_string()),
    ]
}

/// A string literal: quotes, backslashes, `#`, separators, unicode, tabs
/// (escaped or raw) and newlines (escaped).
fn string() -> impl Strategy<Value = String> {
    ("[a-z \"\\\\#;{}\\[\\],é😀\t\n]{0,12}", any::<bool>()).prop_map(|(s, raw_tab)| {
        let mut lit = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => lit += "\\\"",
                '\\' => lit += "\\\\",
                '\n' => lit += "\\n",
                '\t' if !raw_tab => lit += "\\t",
                c => lit.push(c),
            }
        }
        lit + "\""
    })
}

fn one_of(choices: &'static [&'static str]) -> impl Strategy<Value = &'static str> + Clone {
    prop::sample::select(choices)
}

fn value() -> BoxedStrategy<String> {
    let open = one_of(&["", " ", "\n", "  # list opens\n"]);
    let sep = one_of(&[
        ", ",
        ",",
        " ",
        ",\n",
        "\n",
        ",  # element\n",
        "\n# own line\n",
        ",\n\n",
    ]);
    let close = one_of(&["", ",", "\n", " # list ends\n", ",\n"]);
    prop_oneof![word(), string()]
        .prop_recursive(3, 16, 4, move |inner| {
            let elems = prop::collection::vec((inner, sep.clone()), 0..4);
            (open.clone(), elems, close.clone()).prop_map(|(open, elems, close)| {
                let mut s = format!("[{open}");
                let n = elems.len();
                for (i, (e, sep)) in elems.into_iter().enumerate() {
                    s += &e;
                    s += if i + 1 < n { sep } else { close };
                }
                s + "]"
            })
        })
        .boxed()
}

fn item_sep() -> impl Strategy<Value = &'static str> + Clone {
    one_of(&[
        "\n",
        "; ",
        ";",
        "\n\n",
        "\n\n\n",
        " # trailing\n",
        "\n# own line\n",
        "\n\n  # after a blank\n\n",
        ";  # after a semicolon\n",
        "\r\n",
    ])
}

/// `items` joined by their separators, the last one's replaced by `last`.
fn joined(items: Vec<(String, &str)>, last: &str) -> String {
    let n = items.len();
    let mut s = String::new();
    for (i, (item, sep)) in items.into_iter().enumerate() {
        s += &item;
        s += if i + 1 < n { sep } else { last };
    }
    s
}

fn item() -> BoxedStrategy<String> {
    let inline = one_of(&[" ", "  ", "\t", "      "]);
    let args = prop::collection::vec((inline.clone(), value()), 0..4).prop_map(|args| {
        args.into_iter()
            .map(|(sp, v)| sp.to_string() + &v)
            .collect::<String>()
    });
    let open = one_of(&[" ", "", "\n", "  # on the brace line\n", "\n\n# first\n"]);
    let close = one_of(&[" ", "", "\n", " # last\n", "\n  # block ends\n\n"]);
    (key(), args.clone())
        .prop_map(|(k, a)| k + &a)
        .prop_recursive(3, 24, 4, move |inner| {
            let items = prop::collection::vec((inner, item_sep()), 0..4);
            (
                key(),
                args.clone(),
                inline.clone(),
                open.clone(),
                items,
                close.clone(),
            )
                .prop_map(|(k, a, sp, open, items, close)| {
                    let body = joined(items, close);
                    format!(
                        "{k}{a}{sp}{{{open}{body}{}}}",
                        if body.is_empty() { close } else { "" }
                    )
                })
        })
        .boxed()
}

fn source() -> impl Strategy<Value = String> {
    let head = one_of(&["", "# head\n", "\n\n", "# a\n\n# b\n\n"]);
    let tail = one_of(&["", "\n", "\n\n", "  # tail", "\n# end\n\n"]);
    let items = prop::collection::vec((item(), item_sep()), 0..6);
    (head, items, tail).prop_map(|(head, items, tail)| format!("{head}{}", joined(items, tail)))
}

proptest! {
    #![proptest_config(Config { cases: 512, ..Config::default() })]

    #[test]
    fn random_sources_format_idempotently_to_the_same_ast(src in source()) {
        prop_assume!(syntax::parse(&src).is_ok());
        let out = fmt(&src);
        prop_assert!(!out.starts_with('\n') && !out.contains("\n\n\n"), "{out}");
        prop_assert!(out.is_empty() || out.ends_with('\n') && !out.ends_with("\n\n"), "{out}");
        prop_assert!(out.lines().all(|l| l.trim_end() == l), "trailing blanks:\n{out}");
    }
}

#[test]
fn the_generator_makes_valid_sources() {
    let mut runner = TestRunner::deterministic();
    let mut bad = 0;
    for _ in 0..500 {
        let src = source().new_tree(&mut runner).unwrap().current();
        if let Err(d) = syntax::parse(&src) {
            bad += 1;
            eprintln!("{}", d.render("generated", &src));
        }
    }
    assert_eq!(bad, 0);
}

// ----- the policies: canonical, and deciding as before -------------------

const NOW: u64 = 1_700_000_000;

fn policy_files() -> Vec<(String, String)> {
    let dir = format!("{}/../policies", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "policy"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    assert!(files.len() >= 9, "{files:?}");
    files
}

/// What random requests are made of, read from a policy's text: hosts
/// (domain patterns with `*` filled in), paths, (client_id, secret) pairs
/// and the names of `env` secrets.
#[derive(Debug, Default)]
struct Vocab {
    hosts: Vec<String>,
    paths: Vec<String>,
    clients: Vec<(String, String)>,
    envs: Vec<String>,
}

/// The words and string texts of `src`, comments skipped (escapes kept:
/// the policies' ids and secrets have none).
fn tokens(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in src.lines() {
        let mut rest = line;
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || "[]{},;".contains(c));
            if rest.is_empty() || rest.starts_with('#') {
                break;
            }
            let (tok, after) = if let Some(s) = rest.strip_prefix('"') {
                let end = s.find('"').unwrap_or(s.len());
                (&s[..end], &s[(end + 1).min(s.len())..])
            } else {
                let end = rest
                    .find(|c: char| c.is_whitespace() || "\"[]{},;#".contains(c))
                    .unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            };
            out.push(tok.to_string());
            rest = after;
        }
    }
    out
}

fn vocab(src: &str) -> Vocab {
    let t = tokens(src);
    let mut v = Vocab::default();
    for (i, w) in t.iter().enumerate() {
        let next = t.get(i + 1).cloned().unwrap_or_default();
        match w.as_str() {
            "client_id" => v.clients.push((next, String::new())),
            "client_secret" if !matches!(next.as_str(), "hash" | "env" | "file") => {
                if let Some(c) = v.clients.last_mut() {
                    c.1 = next;
                }
            }
            "env" => v.envs.push(next),
            _ if w.starts_with('/') => v.paths.push(w.clone()),
            _ if w.contains('.') && !w.contains(['/', '$', ' ']) => {
                v.hosts.push(w.replace('*', "api"))
            }
            _ => {}
        }
    }
    v
}

fn env_value(name: &str) -> String {
    format!("{name}-0123456789abcdef0123456789abcdef")
}

/// A fresh host: the fixed clock, the `env` secrets, keys for every
/// `signing_alg`.
fn services(v: &Vocab) -> FixedServices {
    let mut s = FixedServices::at(NOW);
    s.secrets = v
        .envs
        .iter()
        .map(|n| (format!("env:{n}"), env_value(n).into_bytes()))
        .collect();
    s.keys = key_ring(&["es256-a", "eddsa-a", "rs256-a"]);
    s
}

/// One request of a random sequence; indexes pick from the policy's vocabulary.
#[derive(Debug, Clone)]
enum Step {
    /// At the token endpoint (under a path of the policy or at the root).
    Token {
        method: Index,
        https: bool,
        host: Index,
        prefix: Index,
        client: Index,
        right: bool,
        grant: Index,
        body: bool,
    },
    /// Anywhere (mostly under the policy's paths), with no token, a bad
    /// one, or one issued earlier (mostly the latest).
    Call {
        method: Index,
        https: bool,
        host: Index,
        path: Index,
        suffix: Index,
        token: Index,
        latest: bool,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let i = any::<Index>;
    prop_oneof![
        (
            i(),
            any::<bool>(),
            i(),
            i(),
            i(),
            prop::bool::weighted(0.8),
            i(),
            any::<bool>()
        )
            .prop_map(
                |(method, https, host, prefix, client, right, grant, body)| Step::Token {
                    method,
                    https,
                    host,
                    prefix,
                    client,
                    right,
                    grant,
                    body
                }
            ),
        (i(), any::<bool>(), i(), i(), i(), i(), any::<bool>()).prop_map(
            |(method, https, host, path, suffix, token, latest)| Step::Call {
                method,
                https,
                host,
                path,
                suffix,
                token,
                latest
            }
        ),
    ]
}

fn pick<'a>(choices: &'a [String], i: &Index) -> &'a str {
    i.get(choices).as_str()
}

/// The same request, decided by the original and by the formatted policy,
/// each on its own fresh host; the decisions must be equal.
fn run_steps(
    v: &Vocab,
    original: &Policy,
    formatted: &Policy,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let (svc_a, svc_b) = (services(v), services(v));
    let methods: Vec<String> = ["GET", "GET", "POST", "PUT", "DELETE", "OPTIONS"]
        .map(String::from)
        .into();
    let mut hosts = v.hosts.clone();
    hosts.extend(
        [
            "localhost",
            "localhost:8080",
            "gw.example.org",
            "API.Example.com:443",
        ]
        .map(String::from),
    );
    let mut paths = [v.paths.clone(), v.paths.clone()].concat();
    paths.extend(["/", "/x/y", "/oauth2/token"].map(String::from));
    let prefixes: Vec<String> = std::iter::once(String::new())
        .chain(v.paths.iter().cloned())
        .collect();
    let suffixes: Vec<String> = ["", "/", "/items", "x", "/oauth2/token", "/oauth2/authorize"]
        .map(String::from)
        .into();
    let mut clients = v.clients.clone();
    clients.push(("unknown-client".into(), "whatever".into()));
    let mut issued: Vec<String> = vec![
        String::new(),
        "not.a.token".into(),
        HIGRESS_SAMPLE_TOKEN.into(),
    ];
    for s in steps {
        let (method, scheme, authority, target, body, token) = match s {
            Step::Token {
                method,
                https,
                host,
                prefix,
                client,
                right,
                grant,
                body,
            } => {
                let (id, secret) = client.get(&clients);
                let secret = if *right {
                    secret.clone()
                } else {
                    format!("{secret}-wrong")
                };
                let grant = grant.get(&["client_credentials", "password"]);
                let mut params =
                    format!("grant_type={grant}&client_id={id}&client_secret={secret}");
                if *grant == "password" {
                    let key = env_value("PROVISION_KEY");
                    params +=
                        &format!("&provision_key={key}&authenticated_userid=user-1&scope=email");
                }
                let path = format!("{}/oauth2/token", pick(&prefixes, prefix));
                let (method, target, body) = if *body {
                    ("POST", path, params)
                } else {
                    (
                        pick(&methods, method),
                        format!("{path}?{params}"),
                        String::new(),
                    )
                };
                (
                    method,
                    *https,
                    pick(&hosts, host),
                    target,
                    body,
                    String::new(),
                )
            }
            Step::Call {
                method,
                https,
                host,
                path,
                suffix,
                token,
                latest,
            } => {
                let target = format!("{}{}", pick(&paths, path), pick(&suffixes, suffix));
                let token = match issued.last() {
                    Some(t) if *latest && issued.len() > 3 => t.clone(),
                    _ => pick(&issued, token).to_string(),
                };
                (
                    pick(&methods, method),
                    *https,
                    pick(&hosts, host),
                    target,
                    String::new(),
                    token,
                )
            }
        };
        let auth = format!("Bearer {token}");
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if !token.is_empty() {
            headers.push(("authorization", auth.as_str()));
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let req = Request {
            method,
            scheme: if scheme { "https" } else { "http" },
            authority,
            path,
            query,
            headers: &headers,
            body: Some(body.as_bytes()),
            ..Default::default()
        };
        let a = original.decide(&req, &svc_a);
        let b = formatted.decide(&req, &svc_b);
        prop_assert_eq!(&a, &b, "{:?}", s);
        if let Ok(t) = access_token(&a) {
            issued.push(t);
        }
    }
    Ok(())
}

#[test]
fn policies_format_idempotently_and_decide_as_before() {
    let mut issued = 0;
    for (name, src) in policy_files() {
        let out = fmt(&src);
        let v = vocab(&src);
        assert!(
            !v.clients.is_empty() && !v.paths.is_empty(),
            "{name}: {v:?}"
        );
        let original =
            Policy::compile(&src, &services(&v)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let formatted =
            Policy::compile(&out, &services(&v)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let messages = |p: &Policy| {
            p.warnings()
                .iter()
                .map(|d| d.message.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(messages(&original), messages(&formatted), "{name}");
        assert_eq!(original.routes(), formatted.routes(), "{name}");
        assert_eq!(original.token_paths(), formatted.token_paths(), "{name}");
        let mut runner = TestRunner::new(Config {
            cases: 128,
            ..Config::default()
        });
        let steps = prop::collection::vec(step(), 1..10);
        runner
            .run(&steps, |steps| run_steps(&v, &original, &formatted, &steps))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The sequences do reach the token endpoint and use what it issues.
        let (svc, mut ok) = (services(&v), false);
        for (id, secret) in &v.clients {
            let target = format!("{}/oauth2/token", v.paths[0]);
            let body =
                format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
            let headers = [("content-type", "application/x-www-form-urlencoded")];
            let req = Request {
                method: "POST",
                scheme: "https",
                authority: "localhost",
                path: &target,
                headers: &headers,
                body: Some(body.as_bytes()),
                ..Default::default()
            };
            let d: Decision = formatted.decide(&req, &svc);
            ok |= access_token(&d).is_ok();
        }
        issued += usize::from(ok);
    }
    assert!(issued >= 6, "only {issued} policies issued a token");
}

#[test]
fn the_policies_are_canonical() {
    for (name, src) in policy_files() {
        assert_eq!(
            format(&src).unwrap(),
            src,
            "policies/{name} is not formatted"
        );
    }
}
