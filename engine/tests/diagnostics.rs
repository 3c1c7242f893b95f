//! Compile errors and warnings: the message, the help, and the exact text
//! under the caret, so a drifting span fails a test.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use std::fmt::Write as _;
use warden_engine::{Diagnostic, FixedServices, Policy, Severity};

const CONSUMERS: &str = "consumer alice { client_id a; client_secret sa }\nconsumer bob { client_id b; client_secret sb }\n";

fn diagnostics(src: &str) -> Vec<Diagnostic> {
    match Policy::compile(src, &FixedServices::at(0)) {
        Ok(p) => p.warnings().to_vec(),
        Err(e) => e,
    }
}

/// (message, help, text under the caret, line, column) of the only error.
fn error(src: &str) -> (String, Option<String>, String, u32, u32) {
    let ds = diagnostics(src);
    let errors: Vec<_> = ds.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{ds:#?}");
    let d = errors[0];
    (
        d.message.clone(),
        d.help.clone(),
        src[d.span.clone()].to_string(),
        d.line,
        d.column,
    )
}

#[test]
fn unknown_consumer_in_allow_names_line_and_column_with_a_suggestion() {
    let src = format!("{CONSUMERS}rule {{\n  match route [r]\n  allow [alice, alcie]\n}}\n");
    assert_eq!(
        error(&src),
        (
            "unknown consumer `alcie` in `allow`".into(),
            Some("did you mean `alice`?".into()),
            "alcie".into(),
            5,
            17
        )
    );
    let rendered = diagnostics(&src)[0].render("p.policy", &src);
    assert_eq!(
        rendered,
        "error: unknown consumer `alcie` in `allow`\n --> p.policy:5:17\n  |\n5 |   allow [alice, alcie]\n  |                 ^^^^^\n  = help: did you mean `alice`?\n"
    );
}

#[test]
fn duplicates() {
    let src = "consumer a { client_id x; client_secret s }\nconsumer a { client_id y; client_secret s }\n";
    let (msg, help, caret, line, _) = error(src);
    assert_eq!(
        (msg.as_str(), caret.as_str(), line),
        ("duplicate consumer name `a`", "a", 2)
    );
    assert_eq!(
        help.unwrap(),
        "the first `a` is on line 1; consumer names must be unique"
    );

    let src = "consumer a { client_id x; client_secret s }\nconsumer b { client_id x; client_secret s }\n";
    let (msg, _, caret, line, col) = error(src);
    assert_eq!(
        (msg.as_str(), caret.as_str(), line, col),
        ("duplicate client_id `x`", "x", 2, 24)
    );

    let (msg, _, caret, line, _) = error("issuer a\nissuer b\n");
    assert_eq!(
        (msg.as_str(), caret.as_str(), line),
        ("`issuer` is set twice", "issuer", 2)
    );

    let (msg, _, caret, _, _) = error("route r { path_prefix /a }\nroute r { path_prefix /b }\n");
    assert_eq!(
        (msg.as_str(), caret.as_str()),
        ("duplicate route name `r`", "r")
    );
}

#[test]
fn authentication_and_authorization_in_one_rule() {
    let src = format!(
        "{CONSUMERS}rule {{\n  match route [r]\n  consumer c {{ client_id c; client_secret s }}\n  allow [alice]\n}}\n"
    );
    let (msg, help, caret, line, col) = error(&src);
    assert_eq!(
        (msg.as_str(), caret.as_str(), line, col),
        (
            "a rule cannot both authenticate and authorize",
            "allow",
            6,
            3
        )
    );
    assert!(help.unwrap().contains("Split it into two rules"));
}

#[test]
fn bad_values() {
    let (msg, help, caret, ..) = error("token_ttl 2x\n");
    assert_eq!(
        (msg.as_str(), caret.as_str()),
        ("`token_ttl` must be a duration, found `2x`", "2x")
    );
    assert!(help.unwrap().contains("`1h30m`"));
    let (msg, _, caret, ..) = error("clock_skew_seconds 999999999999999999999\n");
    assert_eq!(
        (msg.as_str(), caret.as_str()),
        (
            "`clock_skew_seconds` is too long: at most 100 years",
            "999999999999999999999"
        )
    );
    let (msg, _, caret, ..) = error("token_ttl 0\n");
    assert_eq!(
        (msg.as_str(), caret.as_str()),
        ("`token_ttl` must be at least one second", "0")
    );
    let (msg, _, caret, ..) = error("keep_token yes\n");
    assert_eq!(
        (msg.as_str(), caret.as_str()),
        ("`keep_token` must be `true` or `false`, found `yes`", "yes")
    );
    let (msg, help, caret, ..) = error("auth_path oauth2/token\n");
    assert_eq!(
        (msg.as_str(), caret.as_str()),
        (
            "`auth_path` must start with `/`, found `oauth2/token`",
            "oauth2/token"
        )
    );
    assert_eq!(help.unwrap(), "write `/oauth2/token`");
    let (msg, _, caret, ..) = error("auth_header_name \"Bad Header\"\n");
    assert_eq!(
        (msg.as_str(), caret.as_str()),
        (
            "`auth_header_name` must be a valid header name, found `Bad Header`",
            "\"Bad Header\""
        )
    );
    let (msg, _, caret, ..) = error(&format!(
        "{CONSUMERS}rule {{ match domain [\"a.*.com\"]; allow [bob] }}\n"
    ));
    assert_eq!(
        (msg.as_str(), caret.as_str()),
        (
            "bad domain pattern `a.*.com`: `*` may only stand at the start or the end, once",
            "\"a.*.com\""
        )
    );
    let (msg, _, caret, ..) = error("consumer_header Transfer-Encoding\n");
    assert_eq!(
        (msg.as_str(), caret.as_str()),
        (
            "`consumer_header` cannot be `Transfer-Encoding`",
            "Transfer-Encoding"
        )
    );
    let (msg, ..) = error("auth_header_name connection\n");
    assert_eq!(msg, "`auth_header_name` cannot be `connection`");
    let (msg, _, caret, ..) = error("route r { upstream ftp://x }\n");
    assert_eq!(
        (msg.as_str(), caret.as_str()),
        (
            "invalid upstream `ftp://x`: expected `echo`, `http://host[:port][/base]` or `h2c://host[:port][/base]` (`grpc://` is the same)",
            "ftp://x"
        )
    );
    let (msg, _, caret, ..) = error("issuer\n");
    assert_eq!(
        (msg.as_str(), caret.as_str()),
        ("`issuer` needs a value", "issuer")
    );
    let (msg, _, caret, ..) = error("issuer a b\n");
    assert_eq!(
        (msg.as_str(), caret.as_str()),
        ("`issuer` takes one value", "b")
    );
}

#[test]
fn unknown_and_misplaced_keys() {
    let (msg, help, caret, ..) = error("isuer x\n");
    assert_eq!(
        (msg.as_str(), help.as_deref(), caret.as_str()),
        (
            "unknown setting `isuer` at the top level",
            Some("did you mean `issuer`?"),
            "isuer"
        )
    );
    let (msg, help, ..) = error(&format!("{CONSUMERS}allow [alice]\n"));
    assert_eq!(
        (msg.as_str(), help.as_deref()),
        (
            "unknown setting `allow` at the top level",
            Some("`allow` can only be set inside a `rule { … }`")
        )
    );
    let (msg, help, ..) = error(&format!(
        "{CONSUMERS}rule {{ match route [r]; global_auth true; allow [bob] }}\n"
    ));
    assert_eq!(
        (msg.as_str(), help.as_deref()),
        (
            "unknown setting `global_auth` in a rule",
            Some("`global_auth` can only be set at the top level of the file")
        )
    );
    let (msg, help, ..) = error("consumer a { client_id x; client_secret s; secret y }\n");
    assert_eq!(
        (msg.as_str(), help.as_deref()),
        ("unknown setting `secret` in a consumer", None)
    );
    let (msg, help, caret, ..) = error(&format!(
        "{CONSUMERS}rule {{ match rout [r]; allow [bob] }}\n"
    ));
    assert_eq!(
        (msg.as_str(), help.as_deref(), caret.as_str()),
        (
            "unknown match kind `rout`",
            Some("did you mean `route`?"),
            "rout"
        )
    );
}

#[test]
fn rules_that_do_nothing_or_match_nothing() {
    let (msg, ..) = error("rule { match route [r] }\n");
    assert_eq!(msg, "this rule does nothing");
    let (msg, ..) = error(&format!("{CONSUMERS}rule {{ allow [bob] }}\n"));
    assert_eq!(msg, "this rule matches nothing");
    let (msg, ..) = error(&format!(
        "{CONSUMERS}rule {{ match route [r]; match domain [x.com]; allow [bob] }}\n"
    ));
    assert_eq!(msg, "a rule cannot match by both `route` and `domain`");
    let (msg, ..) = error("rule { match route [r]; issuer x }\n");
    assert_eq!(msg, "this rule changes settings but declares no `consumer`");
}

#[test]
fn secrets_from_the_host() {
    let src = "consumer a { client_id x; client_secret env A_SECRET }\n";
    let (msg, help, caret, ..) = error(src);
    assert_eq!(
        (msg.as_str(), caret.as_str()),
        (
            "the host cannot supply secret `env:A_SECRET`",
            "env A_SECRET"
        )
    );
    assert_eq!(
        help.unwrap(),
        "set the environment variable `A_SECRET` for the host"
    );
    let mut host = FixedServices::at(0);
    host.secrets.push(("env:A_SECRET".into(), b"s3".to_vec()));
    assert!(Policy::compile(src, &host).is_ok());
}

#[test]
fn all_errors_of_a_file_are_reported() {
    let src = "isuer x\ntoken_ttl 2x\nconsumer a { client_id x }\n";
    let ds = diagnostics(src);
    let msgs: Vec<_> = ds.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "unknown setting `isuer` at the top level",
            "`token_ttl` must be a duration, found `2x`",
            "credential has no `client_secret`"
        ]
    );
}

#[test]
fn warnings_for_shadowed_rules_and_undeclared_routes() {
    let src = format!(
        "{CONSUMERS}route route-a {{ path_prefix /a }}\nrule first {{ match route [route-a]; allow [alice] }}\nrule {{ match route [route-a]; allow [bob] }}\nrule {{ match route [route-b]; allow [bob] }}\n"
    );
    let ds = diagnostics(&src);
    assert!(
        ds.iter().all(|d| d.severity == Severity::Warning),
        "{ds:#?}"
    );
    let shadow = ds
        .iter()
        .find(|d| d.message.contains("never applies"))
        .unwrap();
    assert_eq!(
        (shadow.message.as_str(), shadow.line),
        ("this rule at line 5 never applies", 5)
    );
    assert!(
        shadow
            .help
            .as_deref()
            .unwrap()
            .starts_with("rule `first` matches everything it matches")
    );
    // Placed where the rule starts, without the text (the guest's
    // `compile_owned` drops it before the graph is built): an indented
    // rule after a comment with a multi-byte character.
    let indented = format!(
        "{CONSUMERS}route route-a {{ path_prefix /a }} # é\nrule {{ match route [route-a]; allow [alice] }}\n\t  rule {{ match route [route-a]; allow [bob] }}\n"
    );
    let owned = match Policy::compile_owned(indented.clone(), &FixedServices::at(0)) {
        Ok(p) => p.warnings().to_vec(),
        Err(e) => e,
    };
    assert_eq!(owned, diagnostics(&indented));
    let at = owned.iter().find(|d| d.message.contains("never applies"));
    assert_eq!(at.map(|d| (d.line, d.column)), Some((5, 4)), "{owned:#?}");
    let undeclared = ds
        .iter()
        .find(|d| d.message.contains("not declared"))
        .unwrap();
    assert_eq!(
        undeclared.message,
        "route `route-b` is not declared in this policy"
    );
    assert_eq!(
        undeclared.help.as_deref(),
        Some("did you mean `route-a`? (only a host that names its own routes can match `route-b`)")
    );
}

#[test]
fn broken_files_never_panic() {
    let base = std::fs::read_to_string(format!(
        "{}/../policies/demo.policy",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    // Every truncation of a real policy, and a few hostile inputs.
    for end in (0..base.len()).filter(|&i| base.is_char_boundary(i)) {
        let _ = diagnostics(&base[..end]);
    }
    for src in [
        "\u{0}\u{1}\u{2}",
        "consumer",
        "rule {",
        "a [[[[",
        &"x ".repeat(100_000),
        "é ü \u{fffd}",
    ] {
        let _ = diagnostics(src);
    }
}

#[test]
fn long_lists_of_diagnostics_are_capped_with_a_count() {
    let mut src = String::from("consumer a { client_id a; client_secret s }\n");
    for _ in 0..1_000 {
        src.push_str("rule { match route [r]; allow [a] }\n");
    }
    let ds = diagnostics(&src);
    assert_eq!(ds.len(), 101, "{:?}", ds.last());
    let note = ds.last().unwrap();
    assert_eq!(note.message, "… and 899 more warnings");
    assert_eq!(
        note.line, 103,
        "the 101st shadowed rule: line 2 shadows lines 3 and on"
    );
    let bad: String = (0..500).fold(String::new(), |mut s, i| {
        let _ = writeln!(s, "bogus{i} x");
        s
    });
    let ds = diagnostics(&bad);
    assert_eq!(ds.len(), 101);
    assert_eq!(ds[100].message, "… and 400 more errors");
}

#[test]
fn hostile_policy_files_get_errors_quickly() {
    // 10 MB of one long line, of many short lines, and of binary noise.
    let long_line = "a".repeat(10 << 20);
    let many_lines = "issuer x\n".repeat((10 << 20) / 9);
    let noise: String = (0..(10u32 << 20))
        .map(|i| char::from_u32((i.wrapping_mul(2_654_435_761) >> 8) % 0x250).unwrap_or('?'))
        .collect();
    for (name, src) in [
        ("long line", &long_line),
        ("many lines", &many_lines),
        ("noise", &noise),
    ] {
        let start = std::time::Instant::now();
        let ds = diagnostics(src);
        assert!(ds.iter().any(|d| d.is_error()), "{name}: {ds:?}");
        assert!(
            ds.len() <= 2 * warden_engine::internal::diagnostic::MAX_PER_SEVERITY + 2,
            "{name}"
        );
        // Rendering every diagnostic stays small: a long line is not
        // repeated under each of them.
        let shown: usize = ds.iter().map(|d| d.render("p.policy", src).len()).sum();
        assert!(shown < 200 * 1024, "{name}: {shown} bytes rendered");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{name}: {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn long_lines_are_shown_as_a_window_around_the_caret() {
    let filler = "# ".to_string() + &"x".repeat(300) + "\n";
    let src = format!(
        "{filler}global_auth false;{} nonsense_key 1\n",
        " issuer x;".repeat(30)
    );
    let ds = diagnostics(&src);
    let d = ds
        .iter()
        .find(|d| d.message.contains("nonsense_key"))
        .expect("unknown key");
    let rendered = d.render("p.policy", &src);
    let lines: Vec<&str> = rendered.lines().collect();
    let (text, carets) = (lines[3], lines[4]);
    assert!(
        text.starts_with("2 | …") && text.ends_with("nonsense_key 1"),
        "{rendered}"
    );
    assert!(text.chars().count() < 200, "{rendered}");
    // The caret is under the key (counting chars: `…` is one).
    let at = carets.chars().position(|c| c == '^').unwrap();
    let under: String = text.chars().skip(at).take("nonsense_key".len()).collect();
    assert_eq!(under, "nonsense_key", "{rendered}");

    let huge = format!(
        "issuer {}\nnonsense_key 1\n{} x\n",
        "y".repeat(20_000),
        "z".repeat(20_000)
    );
    for d in diagnostics(&huge) {
        let rendered = d.render("p.policy", &huge);
        assert!(rendered.len() < 1_000, "{rendered}");
    }
}

#[test]
fn a_slow_input_found_by_the_fuzzer_stays_fast() {
    // One long line of many errors (fuzz/artifacts, 2026-11-24): rendering
    // each diagnostic used to allocate per character of the line.
    let bytes = include_bytes!("regressions/policy-slow-render-one-long-line");
    let src = String::from_utf8_lossy(bytes);
    let start = std::time::Instant::now();
    let ds = diagnostics(&src);
    assert!(ds.iter().any(|d| d.is_error()));
    let shown: usize = ds.iter().map(|d| d.render("fuzz.policy", &src).len()).sum();
    assert!(shown < 200 * 1024, "{shown} bytes rendered");
    let took = start.elapsed();
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
}

/// Kong's unique constraints on consumers: a second consumer with a taken
/// username, custom_id or id is an error at its name that names the first
/// consumer declared with the value (and, for one consumer, the first field).
#[test]
fn kong_consumer_identities_are_unique() {
    let kong = |consumers: &str| {
        format!(
            "dialect kong\nsigning_key \"0123456789abcdef0123456789abcdef\"\nglobal_auth false\n{consumers}"
        )
    };
    let id = "6f1c3a2e-2b1d-4c8a-9f3e-0a1b2c3d4e5f";
    let cases = [
        (
            "consumer a { username u }\nconsumer b { username u }\n",
            "duplicate username `u`",
            "consumer `a` on line 4 has it; Kong's username identifies one consumer",
        ),
        (
            "consumer a { custom_id c }\nconsumer b { custom_id c }\n",
            "duplicate custom_id `c`",
            "consumer `a` on line 4 has it; Kong's custom_id identifies one consumer",
        ),
        (
            &format!("consumer a {{ id {id} }}\nconsumer b {{ id {id} }}\n"),
            &format!("duplicate id `{id}`"),
            "consumer `a` on line 4 has it; Kong's id identifies one consumer",
        ),
        // b clashes with a (custom_id) and with z (username): a came first.
        (
            "consumer a { custom_id c }\nconsumer z { username u }\nconsumer b { username u; custom_id c }\n",
            "duplicate custom_id `c`",
            "consumer `a` on line 4 has it; Kong's custom_id identifies one consumer",
        ),
        // A consumer giving neither is known by its name, as a username.
        (
            "consumer u { custom_id c1 }\nconsumer v { username w }\nconsumer w { custom_id c3 }\nconsumer x {}\nconsumer y { username x }\n",
            "duplicate username `x`",
            "consumer `x` on line 7 has it; Kong's username identifies one consumer",
        ),
    ];
    for (consumers, message, help) in cases {
        let src = kong(consumers);
        let (msg, got_help, caret, ..) = error(&src);
        assert_eq!(
            (msg.as_str(), got_help.as_deref()),
            (message, Some(help)),
            "{src}"
        );
        assert!(
            caret.len() == 1,
            "the caret is on the later consumer's name: {caret}"
        );
    }
    // Distinct identities compile.
    let src = kong("consumer a { username u }\nconsumer b { username v; custom_id u }\n");
    assert!(
        diagnostics(&src).iter().all(|d| !d.is_error()),
        "{:#?}",
        diagnostics(&src)
    );
}
