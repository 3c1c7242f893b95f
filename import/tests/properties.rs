//! Properties of `kong_to_policy`: it never panics, errors point inside the
//! file, and names always come out in a form the policy grammar reads back
//! as the same text (bare when safe, quoted otherwise).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod grammar;

use proptest::prelude::*;
use serde_norway::{Mapping, Value};
use warden_import::kong_to_policy;

const SPEC: &str = include_str!("kong-spec.yml");

/// Field names the importer looks at, so that random trees reach deep.
const KEYS: &[&str] = &[
    "_format_version",
    "consumers",
    "services",
    "routes",
    "plugins",
    "oauth2_credentials",
    "username",
    "custom_id",
    "id",
    "name",
    "client_id",
    "client_secret",
    "hash_secret",
    "redirect_uris",
    "client_type",
    "consumer",
    "url",
    "protocol",
    "host",
    "port",
    "path",
    "hosts",
    "paths",
    "protocols",
    "strip_path",
    "service",
    "route",
    "config",
    "enabled",
    "scopes",
    "anonymous",
    "pkce",
    "token_expiration",
    "enable_client_credentials",
    "methods",
    "keyauth_credentials",
    "instance_name",
    "realm",
    "x",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z0-9./:~*-]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "3.0",
            "http",
            "https",
            "oauth2",
            "public",
            "/",
            "~/re",
            "http://h:1/p",
            "grpc"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        any::<String>().prop_map(Value::String),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Sequence),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|entries| {
                let mut m = Mapping::new();
                for (k, v) in entries {
                    m.insert(Value::String(k.to_owned()), v);
                }
                Value::Mapping(m)
            }),
        ]
    })
}

/// A tree under a valid version, so that the entity readers run.
fn document() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(KEYS), tree()), 0..5).prop_map(|entries| {
        let mut m = Mapping::new();
        m.insert("_format_version".into(), "3.0".into());
        for (k, v) in entries {
            m.insert(Value::String(k.to_owned()), v);
        }
        serde_norway::to_string(&Value::Mapping(m)).unwrap()
    })
}

/// An error's line is inside the file (or 1 for an empty one).
fn check(yaml: &str) {
    if let Err(e) = kong_to_policy(yaml, "fuzz.yml") {
        let lines = yaml.lines().count().max(1);
        assert!(
            e.line >= 1 && e.line <= lines + 1,
            "line {} of {lines}: {e}",
            e.line
        );
        assert!(!e.message.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_text(s in any::<String>()) {
        check(&s);
    }

    #[test]
    fn never_panics_on_yaml_ish_text(s in "[-:a-z0-9_ \n\"'\\[\\]{},&*!|>#~.]{0,200}") {
        check(&s);
        check(&format!("_format_version: \"3.0\"\n{s}"));
    }

    #[test]
    fn never_panics_on_random_structures(doc in document()) {
        check(&doc);
    }

    #[test]
    fn never_panics_on_mangled_spec_fixtures(
        cut in 0..SPEC.lines().count(),
        len in 0usize..4,
        junk in "[ -~\n]{0,8}",
    ) {
        let lines: Vec<&str> = SPEC.lines().collect();
        let mut out: Vec<String> = lines[..cut].iter().map(|s| s.to_string()).collect();
        out.push(junk);
        out.extend(lines[(cut + len).min(lines.len())..].iter().map(|s| s.to_string()));
        let mangled = out.join("\n");
        check(&mangled);
        if let Ok(p) = kong_to_policy(&mangled, "m.yml") {
            grammar::parse(&p).unwrap();
        }
    }

    /// Any name Kong could hold (no control characters) is written so that
    /// the grammar reads back exactly that name, for consumers, routes and
    /// the rules named after them.
    #[test]
    fn names_read_back_as_themselves(name in prop_oneof![
        "\\PC{1,16}",
        "[a-z0-9 _.:/#;,{}\\[\\]\"\\\\-]{1,12}",
        prop::sample::select(vec!["true", "false", "env", "file", "hash", "none", "route", "{", "#x", "a b", "\"", "\\"]).prop_map(str::to_owned),
    ]) {
        let mut consumer = Mapping::new();
        consumer.insert("username".into(), name.clone().into());
        let mut config = Mapping::new();
        config.insert("enable_client_credentials".into(), true.into());
        config.insert("anonymous".into(), name.clone().into());
        let mut plugin = Mapping::new();
        plugin.insert("name".into(), "oauth2".into());
        plugin.insert("config".into(), Value::Mapping(config));
        let mut route = Mapping::new();
        route.insert("name".into(), name.clone().into());
        route.insert("hosts".into(), Value::Sequence(vec![name.clone().into()]));
        route.insert("plugins".into(), Value::Sequence(vec![Value::Mapping(plugin)]));
        let mut service = Mapping::new();
        service.insert("name".into(), name.clone().into());
        service.insert("url".into(), "http://h".into());
        service.insert("routes".into(), Value::Sequence(vec![Value::Mapping(route)]));
        let mut doc = Mapping::new();
        doc.insert("_format_version".into(), "3.0".into());
        doc.insert("consumers".into(), Value::Sequence(vec![Value::Mapping(consumer)]));
        doc.insert("services".into(), Value::Sequence(vec![Value::Mapping(service)]));
        let yaml = serde_norway::to_string(&Value::Mapping(doc)).unwrap();
        let policy = kong_to_policy(&yaml, "names.yml").unwrap();
        let items = grammar::parse(&policy).unwrap();
        let find = |key: &str| items.iter().find(|i| i.key == key).unwrap();
        prop_assert_eq!(find("consumer").args[0].text(), Some(name.as_str()));
        let route = find("route");
        prop_assert_eq!(route.args[0].text(), Some(name.as_str()));
        prop_assert_eq!(route.all("hosts").next().unwrap().args[0].texts(), vec![name.clone()]);
        let rule = find("rule");
        let rule_name = format!("oauth2-{name}");
        prop_assert_eq!(rule.args[0].text(), Some(rule_name.as_str()));
        let matched = &rule.all("match").next().unwrap().args;
        prop_assert_eq!(matched[1].texts(), vec![name.clone()]);
        prop_assert_eq!(rule.all("anonymous").next().unwrap().args[0].text(), Some(name.as_str()));
        // Comments mentioning the name stay on one line each.
        for line in policy.lines().filter(|l| l.trim_start().starts_with('#')) {
            prop_assert!(!line.contains('\r'));
        }
    }

    /// A reserved or unsafe word is never written bare.
    #[test]
    fn bare_words_are_plain(name in "[a-zA-Z0-9_.:/*@+=~%-]{1,10}") {
        let yaml = format!("_format_version: \"3.0\"\nconsumers:\n- username: {}\n", serde_norway::to_string(&Value::String(name.clone())).unwrap().trim_end());
        let policy = kong_to_policy(&yaml, "w.yml").unwrap();
        let items = grammar::parse(&policy).unwrap();
        let c = items.iter().find(|i| i.key == "consumer").unwrap();
        let bare = matches!(c.args[0], grammar::Val::Word(_));
        let reserved = ["true", "false", "env", "file", "hash"].contains(&name.as_str());
        prop_assert_eq!(bare, !reserved);
    }
}
