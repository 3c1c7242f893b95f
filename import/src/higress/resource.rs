//! The top level: a `WasmPlugin` resource, or a bare plugin configuration;
//! the instance configuration and the rules, in order.

use serde_norway::Value;

use super::config::{self, RULE_MATCH_FIELDS, SETTING_FIELDS, check_fields};
use super::model::{Action, Config, Match, Rule, Scope};
use crate::yaml::{Map, Node, Res};

/// The only API version read (Istio's `extensions.istio.io` WasmPlugin has
/// no `defaultConfig` or `matchRules`).
const API_VERSION: &str = "extensions.higress.io/v1alpha1";

const RESOURCE_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];

/// Kubernetes `ObjectMeta`.
const METADATA_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Fields of `spec` that say how Higress loads and orders the Wasm module,
/// not what the plugin decides: left out, named in a comment.
const LOADING_FIELDS: &[&str] = &[
    "url",
    "sha256",
    "imagePullPolicy",
    "imagePullSecret",
    "verificationKey",
    "pluginName",
    "phase",
    "priority",
    "vmConfig",
];

const SPEC_DECISION_FIELDS: &[&str] = &[
    "pluginConfig",
    "defaultConfig",
    "defaultConfigDisable",
    "matchRules",
    "failStrategy",
];

const MATCH_RULE_FIELDS: &[&str] = &[
    "ingress",
    "domain",
    "service",
    "config",
    "configDisable",
    "routeType",
];

const MISPLACED_AT_INSTANCE: &[(&str, &str)] = &[
    (
        "allow",
        "is rule-level only (the Higress page: not an instance-level field); put it in a rule's config, where it admits this configuration's consumers",
    ),
    (
        "_disable_",
        "is rule-level only; to turn the default configuration off use `spec.defaultConfigDisable: true`",
    ),
    (
        "_match_route_",
        "belongs in a `_rules_` entry (or write a `matchRules` entry with `ingress`)",
    ),
    ("_match_route_prefix_", "belongs in a `_rules_` entry"),
    (
        "_match_domain_",
        "belongs in a `_rules_` entry (or write a `matchRules` entry with `domain`)",
    ),
    (
        "_match_service_",
        "belongs in a `_rules_` entry (or write a `matchRules` entry with `service`)",
    ),
];

const MISPLACED_IN_RULE: &[(&str, &str)] = &[
    (
        "global_auth",
        "is instance-level only (the Higress page); set it in the instance configuration",
    ),
    ("_rules_", "cannot be nested in a rule"),
];

const MISPLACED_IN_MATCH_RULE_CONFIG: &[(&str, &str)] = &[
    (
        "global_auth",
        "is instance-level only (the Higress page); set it in `spec.defaultConfig`",
    ),
    ("_rules_", "cannot be nested in a rule"),
    (
        "_match_route_",
        "is what Higress writes for the matchRule's `ingress`: use `ingress` beside `config`",
    ),
    (
        "_match_route_prefix_",
        "has no matchRule form: use a `_rules_` entry in a bare configuration",
    ),
    (
        "_match_domain_",
        "is what Higress writes for the matchRule's `domain`: use `domain` beside `config`",
    ),
    (
        "_match_service_",
        "is what Higress writes for the matchRule's `service`: use `service` beside `config`",
    ),
];

/// Reads and checks the whole document.
pub(crate) fn read(root: &Value) -> Res<Config> {
    let node = Node::root(root);
    let Value::Mapping(_) = root else {
        return Err(node.fault(
            "a Higress file must be a WasmPlugin resource (`apiVersion: extensions.higress.io/v1alpha1`) or an oauth plugin configuration (a mapping with `consumers`, …)",
        ));
    };
    let map = node.map("the file")?;
    if map.get("apiVersion").is_some() || map.get("kind").is_some() {
        wasm_plugin(&map)
    } else {
        let mut config = bare(&map, "the plugin configuration", "_rules_")?;
        config.header.insert(
            0,
            "a Higress/MSE oauth plugin configuration: its fields are the instance's, each `_rules_` entry a rule (the first that matches wins)".to_owned(),
        );
        Ok(config)
    }
}

fn wasm_plugin(map: &Map<'_>) -> Res<Config> {
    check_fields(map, "the WasmPlugin", RESOURCE_FIELDS, &[])?;
    match map.get("apiVersion") {
        None => {
            return Err(map.node.fault(format!(
                "a WasmPlugin resource needs `apiVersion: {API_VERSION}`"
            )));
        }
        Some(v) if v.text("`apiVersion`")? != API_VERSION => {
            return Err(v.fault(format!(
                "`apiVersion` must be `{API_VERSION}` (Higress's WasmPlugin, with `defaultConfig` and `matchRules`), found `{}`",
                v.text("`apiVersion`")?.escape_debug()
            )));
        }
        Some(_) => {}
    }
    match map.get("kind") {
        Some(k) if k.text("`kind`")? == "WasmPlugin" => {}
        Some(k) => {
            return Err(k.fault(format!(
                "`kind` must be `WasmPlugin`, found `{}`",
                k.text("`kind`")?.escape_debug()
            )));
        }
        None => {
            return Err(map
                .node
                .fault("a WasmPlugin resource needs `kind: WasmPlugin`"));
        }
    }
    let mut header: Vec<String> = Vec::new();
    let mut title = "Higress WasmPlugin".to_owned();
    if let Some(m) = map.get("metadata") {
        let meta = m.map("`metadata`")?;
        check_fields(&meta, "`metadata`", METADATA_FIELDS, &[])?;
        let name = meta.text("name", "`metadata`")?;
        let namespace = meta.text("namespace", "`metadata`")?;
        match (namespace, name) {
            (Some(ns), Some(n)) => title.push_str(&format!(" {ns}/{n}")),
            (None, Some(n)) => title.push_str(&format!(" {n}")),
            _ => {}
        }
    }
    let Some(spec) = map.get("spec") else {
        return Err(map.node.fault("a WasmPlugin resource needs a `spec`"));
    };
    let spec = spec.map("`spec`")?;
    let known: Vec<&str> = SPEC_DECISION_FIELDS
        .iter()
        .chain(LOADING_FIELDS)
        .copied()
        .collect();
    check_fields(&spec, "`spec`", &known, &[])?;
    let left_out: Vec<String> = spec
        .keys()
        .into_iter()
        .filter(|k| LOADING_FIELDS.contains(k))
        .map(|k| match (k, spec.get(k).map(|n| n.value)) {
            ("url", Some(Value::String(u))) => format!("url {u}"),
            _ => k.to_owned(),
        })
        .collect();
    let mut loading = Vec::new();
    if !left_out.is_empty() {
        loading.push(format!(
            "left out (how Higress loads the Wasm module, not what it decides): {}",
            left_out.join(", ")
        ));
    }
    if let Some(f) = spec.get("failStrategy") {
        match f.text("`spec.failStrategy`")? {
            "FAIL_CLOSE" => {}
            "FAIL_OPEN" => {
                return Err(f.fault(
                    "`failStrategy: FAIL_OPEN` lets requests through when the plugin fails; Warden fails closed, always",
                ));
            }
            other => {
                return Err(f.fault(format!(
                    "`failStrategy` must be FAIL_CLOSE or FAIL_OPEN, found `{}`",
                    other.escape_debug()
                )));
            }
        }
    }
    if let Some(pc) = spec.get("pluginConfig") {
        // Higress then passes pluginConfig on as it is, ignoring the rest.
        for other in ["defaultConfig", "matchRules", "defaultConfigDisable"] {
            if spec.get(other).is_some() {
                return Err(spec.key_fault(
                    other,
                    format!(
                        "`spec.{other}` beside `spec.pluginConfig`: Higress then uses pluginConfig alone and ignores `{other}`; keep one"
                    ),
                ));
            }
        }
        let mut config = bare(
            &pc.map("`spec.pluginConfig`")?,
            "spec.pluginConfig",
            "spec.pluginConfig._rules_",
        )?;
        header.push(format!(
            "{title}: spec.pluginConfig is the whole configuration; its fields are the instance's, each `_rules_` entry a rule (the first that matches wins)"
        ));
        header.extend(loading);
        config.header.splice(0..0, header);
        return Ok(config);
    }
    header.push(format!(
        "{title}: spec.defaultConfig is the instance, each spec.matchRules entry a rule (the first that matches wins)"
    ));
    header.extend(loading);
    let disabled = spec
        .boolean("defaultConfigDisable", "`spec`")?
        .unwrap_or(false);
    let default = spec
        .get("defaultConfig")
        .map(|n| n.map("`spec.defaultConfig`"))
        .transpose()?;
    let match_rules = spec
        .get("matchRules")
        .map(|n| n.items("`spec.matchRules`"))
        .transpose()?
        .unwrap_or_default();

    let source = "spec.defaultConfig";
    let mut instance_notes = Vec::new();
    let (instance, global_auth, inner_rules) = match (&default, disabled) {
        (_, true) => {
            instance_notes.push(
                "spec.defaultConfigDisable is true: Higress leaves spec.defaultConfig out"
                    .to_owned(),
            );
            (None, None, Vec::new())
        }
        (None, false) => (None, None, Vec::new()),
        (Some(d), false) => {
            let (scope, global_auth) = instance(d, source)?;
            let rules = d
                .get("_rules_")
                .map(|n| n.items("`spec.defaultConfig._rules_`"))
                .transpose()?
                .unwrap_or_default();
            if !rules.is_empty() && !match_rules.is_empty() {
                return Err(d.key_fault(
                    "_rules_",
                    "`spec.defaultConfig._rules_` beside `spec.matchRules`: Higress replaces these rules by the matchRules; keep one",
                ));
            }
            (scope, global_auth, rules)
        }
    };
    let mut rules = Vec::new();
    for (i, item) in inner_rules.iter().enumerate() {
        rules.push(rules_entry(
            item,
            &format!("spec.defaultConfig._rules_[{i}]"),
            instance.as_ref(),
            source,
        )?);
    }
    for (i, item) in match_rules.iter().enumerate() {
        rules.push(match_rule(
            item,
            &format!("matchRules[{i}]"),
            instance.as_ref(),
            source,
        )?);
    }
    finish(
        header,
        source,
        instance,
        instance_notes,
        global_auth,
        rules,
        map,
    )
}

/// A bare configuration (`the plugin configuration`, or
/// `spec.pluginConfig`), its rules under `_rules_`.
fn bare(map: &Map<'_>, source: &str, rules_label: &str) -> Res<Config> {
    let (instance, global_auth) = instance(map, source)?;
    let mut rules = Vec::new();
    if let Some(list) = map.get("_rules_") {
        for (i, item) in list.items(&format!("`{rules_label}`"))?.iter().enumerate() {
            rules.push(rules_entry(
                item,
                &format!("{rules_label}[{i}]"),
                instance.as_ref(),
                source,
            )?);
        }
    }
    finish(
        Vec::new(),
        source,
        instance,
        Vec::new(),
        global_auth,
        rules,
        map,
    )
}

/// Assembles the configuration; refuses one with nothing in it.
fn finish(
    header: Vec<String>,
    source: &str,
    instance: Option<Scope>,
    instance_notes: Vec<String>,
    global_auth: Option<bool>,
    rules: Vec<Rule>,
    at: &Map<'_>,
) -> Res<Config> {
    if instance.is_none() && rules.is_empty() && instance_notes.is_empty() {
        return Err(at.node.fault(format!(
            "nothing to import: no instance configuration ({source}) and no rules"
        )));
    }
    Ok(Config {
        header,
        instance_source: source.to_owned(),
        instance,
        instance_notes,
        global_auth,
        rules,
    })
}

/// The instance configuration: `map`'s fields other than `_rules_`. `None`
/// when there are none (Higress then has no global configuration).
fn instance(map: &Map<'_>, source: &str) -> Res<(Option<Scope>, Option<bool>)> {
    let mut known: Vec<&str> = SETTING_FIELDS.to_vec();
    known.extend(["consumers", "global_auth", "_rules_"]);
    check_fields(map, source, &known, MISPLACED_AT_INSTANCE)?;
    let global_auth = map.boolean("global_auth", source)?;
    if map.keys().iter().all(|k| *k == "_rules_") {
        return Ok((None, None));
    }
    Ok((Some(config::scope(map, source)?), global_auth))
}

/// A `_rules_` entry: match fields and the rule's configuration together.
fn rules_entry(
    item: &Node<'_>,
    source: &str,
    instance: Option<&Scope>,
    instance_source: &str,
) -> Res<Rule> {
    let map = item.map(source)?;
    let mut known: Vec<&str> = SETTING_FIELDS.to_vec();
    known.extend(["consumers", "allow", "_disable_"]);
    known.extend(RULE_MATCH_FIELDS);
    check_fields(&map, source, &known, MISPLACED_IN_RULE)?;
    let matches = matches(
        &map,
        source,
        [
            ("_match_route_", "route"),
            ("_match_route_prefix_", "route_prefix"),
            ("_match_domain_", "domain"),
            ("_match_service_", "service"),
        ],
    )?;
    let mut notes = Vec::new();
    let action = config::action(Some(&map), source, instance, instance_source, &mut notes)?;
    Ok(Rule {
        source: source.to_owned(),
        matches,
        action,
        notes,
    })
}

/// A `spec.matchRules` entry: `ingress`, `domain`, `service`, and its
/// `config`.
fn match_rule(
    item: &Node<'_>,
    source: &str,
    instance: Option<&Scope>,
    instance_source: &str,
) -> Res<Rule> {
    let map = item.map(source)?;
    check_fields(&map, source, MATCH_RULE_FIELDS, &[])?;
    if map.boolean("configDisable", source)? == Some(true) {
        // Higress skips the entry before looking at anything else in it.
        let mut matches = Vec::new();
        for (field, kind) in [
            ("ingress", "route"),
            ("domain", "domain"),
            ("service", "service"),
        ] {
            if let Some(names) = map.texts(field, source)?.filter(|n| !n.is_empty()) {
                matches.push(Match { kind, field, names });
            }
        }
        return Ok(Rule {
            source: source.to_owned(),
            matches,
            action: Action::LeftOut,
            notes: Vec::new(),
        });
    }
    if let Some(t) = map.get("routeType") {
        match t.text(&format!("{source}: `routeType`"))? {
            "HTTP" => {}
            other => {
                return Err(t.fault(format!(
                    "{source}: `routeType: {}` has no Warden equivalent (Higress renames the routes it matches; only HTTP routes are read)",
                    other.escape_debug()
                )));
            }
        }
    }
    let matches = matches(
        &map,
        source,
        [
            ("ingress", "route"),
            ("", ""),
            ("domain", "domain"),
            ("service", "service"),
        ],
    )?;
    let config = map
        .get("config")
        .map(|n| n.map(&format!("{source}: `config`")))
        .transpose()?;
    let what = format!("{source}.config");
    if let Some(c) = &config {
        let mut known: Vec<&str> = SETTING_FIELDS.to_vec();
        known.extend(["consumers", "allow", "_disable_"]);
        check_fields(c, &what, &known, MISPLACED_IN_MATCH_RULE_CONFIG)?;
    }
    let mut notes = Vec::new();
    let action = config::action(
        config.as_ref(),
        &what,
        instance,
        instance_source,
        &mut notes,
    )?;
    Ok(Rule {
        source: source.to_owned(),
        matches,
        action,
        notes,
    })
}

/// The match fields of a rule, given as (field, Warden kind) for route,
/// route prefix, domain and service (an empty field name: that form has
/// none). Empty lists count as absent, as in Higress. Only route and
/// service combine; Higress silently ignores the other field of any other
/// pair, which is refused here.
fn matches(
    map: &Map<'_>,
    source: &str,
    fields: [(&'static str, &'static str); 4],
) -> Res<Vec<Match>> {
    let mut found: Vec<Match> = Vec::new();
    for (field, kind) in fields {
        if field.is_empty() {
            continue;
        }
        let Some(node) = map.get(field) else { continue };
        let what = format!("{source}: `{field}`");
        let items = node.items(&what)?;
        let mut names: Vec<String> = Vec::new();
        for item in &items {
            let name = item.text(&format!("each of {what}"))?;
            if kind == "domain" {
                check_domain(item, name, &what)?;
            }
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
        if !names.is_empty() {
            found.push(Match { kind, field, names });
        }
    }
    if found.is_empty() {
        let named: Vec<String> = fields
            .iter()
            .filter(|(f, _)| !f.is_empty())
            .map(|(f, _)| format!("`{f}`"))
            .collect();
        return Err(map.node.fault(format!(
            "{source} matches nothing: it needs one of {} (Higress refuses such a rule)",
            named.join(", ")
        )));
    }
    // What Higress's rule matcher uses when several are given: a route
    // (with a service, both must match), else a route prefix, else a
    // service, else the domains.
    let has = |kind: &str| found.iter().any(|m| m.kind == kind);
    let used: &[&str] = if has("route") {
        &["route", "service"]
    } else if has("route_prefix") {
        &["route_prefix"]
    } else if has("service") {
        &["service"]
    } else {
        &["domain"]
    };
    match found.iter().find(|m| !used.contains(&m.kind)) {
        None => Ok(found),
        Some(ignored) => {
            let kept: Vec<String> = found
                .iter()
                .filter(|m| used.contains(&m.kind))
                .map(|m| format!("`{}`", m.field))
                .collect();
            Err(map.key_fault(
                ignored.field,
                format!(
                    "{source} matches by `{}` beside {}: Higress would silently ignore `{}` (only a route and a service combine); split it into two rules",
                    ignored.field,
                    kept.join(" and "),
                    ignored.field
                ),
            ))
        }
    }
}

/// A domain pattern Warden reads as Higress matches it: exact, `*suffix`
/// or `prefix*`, without a port.
fn check_domain(item: &Node<'_>, name: &str, what: &str) -> Res<()> {
    let bracketed = name.starts_with('[') && name.ends_with(']');
    let why = if name.contains(':') && !bracketed {
        Some("a domain matches the host without its port")
    } else if name.chars().any(|c| c.is_whitespace() || c == '/') {
        Some("a host has no spaces or slashes")
    } else {
        let stars = name.matches('*').count();
        let at_end = name.starts_with('*') || name.ends_with('*');
        (stars > 1 || (stars == 1 && !at_end)).then_some(
            "Higress treats `*` as a wildcard only at the start or the end, once (elsewhere it is a literal `*`, which no host has)",
        )
    };
    match why {
        Some(why) => Err(item.fault(format!("{what}: `{}`: {why}", name.escape_debug()))),
        None => Ok(()),
    }
}
