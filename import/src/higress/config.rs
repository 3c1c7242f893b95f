//! The oauth plugin's own fields: settings, `consumers`, `allow`,
//! `global_auth` and `_disable_`, at the instance or in a rule.
//!
//! Types are checked strictly: Higress's JSON reader also takes `"true"` for
//! `true` and `"7200"` for `7200`; here those are errors that say what type
//! was expected, so that the YAML says what it means.

use serde_norway::Value;
use warden_engine::internal::model::{DurationError, parse_duration};

use super::model::{Action, Consumer, DEFAULTS, Scope, Settings};
use crate::quote;
use crate::yaml::{Fault, Map, Node, Res};

/// Setting fields, as the YAML spells them. `auth_header` is what the
/// shipped C++ plugin reads; the pages document `auth_header_name`.
pub(crate) const SETTING_FIELDS: &[&str] = &[
    "issuer",
    "auth_path",
    "global_credentials",
    "auth_header_name",
    "auth_header",
    "token_ttl",
    "clock_skew_seconds",
    "keep_token",
];

/// The fields of one `consumers` entry.
const CONSUMER_FIELDS: &[&str] = &["name", "client_id", "client_secret"];

/// The rule-matching fields of a `_rules_` entry.
pub(crate) const RULE_MATCH_FIELDS: &[&str] = &[
    "_match_route_",
    "_match_route_prefix_",
    "_match_domain_",
    "_match_service_",
];

/// Headers Warden's compiler refuses as `auth_header_name` (hop-by-hop and
/// framing headers, which the gateway removes or rewrites).
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Fields known elsewhere, with why they cannot be here: (field, where it
/// belongs). Used for messages about a misplaced field.
pub(crate) type Misplaced<'m> = &'m [(&'m str, &'m str)];

/// Every key of `map` must be in `known`; an unknown one is an error at the
/// key, naming `what`, with a hint when the key belongs elsewhere
/// (`misplaced`) or looks like a typo of a known one.
pub(crate) fn check_fields(
    map: &Map<'_>,
    what: &str,
    known: &[&str],
    misplaced: Misplaced<'_>,
) -> Res<()> {
    let Some(u) = map.first_unknown(known) else {
        return Ok(());
    };
    let message = match u.name {
        Some(name) => match misplaced.iter().find(|(f, _)| *f == name) {
            Some((_, why)) => format!("{what}: `{name}` {why}"),
            None => match closest(name, known.iter().copied()) {
                Some(best) => format!("{what}: unknown field {} (did you mean `{best}`?)", u.shown),
                None => format!(
                    "{what}: unknown field {}, which has no Warden equivalent",
                    u.shown
                ),
            },
        },
        None => format!("{what}: a {} has no meaning here", u.shown),
    };
    Err(Fault {
        path: u.path,
        message,
    })
}

/// The closest of `candidates` to `word`, when close enough to suggest.
pub(crate) fn closest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Edit distance with adjacent transpositions (optimal string alignment):
/// `nmae` is one edit from `name`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Reads the setting fields of `map` (the instance's or a rule's).
pub(crate) fn settings(map: &Map<'_>, what: &str) -> Res<(Settings, Vec<String>)> {
    let mut s = Settings::default();
    let mut notes = Vec::new();
    let field = |key: &str| format!("{what}: `{key}`");
    if let Some(t) = map.text("issuer", what)? {
        s.0[0] = Some(quote::value(&t));
    }
    if let Some(n) = map.get("auth_path") {
        if matches!(n.value, Value::String(p) if p.is_empty()) {
            return Err(n.fault(format!(
                "{}: an empty `auth_path` becomes `/` in Higress (every path ending in `/` would issue tokens); write the path meant, e.g. `/oauth2/token`",
                field("auth_path")
            )));
        }
        let p = n.text(&field("auth_path"))?;
        if p.contains(['?', '#']) || p.chars().any(char::is_whitespace) {
            return Err(n.fault(format!(
                "{} must be a plain path suffix, found `{}`",
                field("auth_path"),
                p.escape_debug()
            )));
        }
        let path = if p.starts_with('/') {
            p.to_owned()
        } else {
            notes.push(format!(
                "auth_path `{p}` as Higress reads it: `/{p}` (it adds the leading `/`)"
            ));
            format!("/{p}")
        };
        s.0[1] = Some(quote::value(&path));
    }
    if let Some(b) = map.boolean("global_credentials", what)? {
        s.0[2] = Some(b.to_string());
    }
    let header = match (map.get("auth_header_name"), map.get("auth_header")) {
        (Some(_), Some(_)) => {
            return Err(map.key_fault(
                "auth_header",
                format!(
                    "{what}: `auth_header_name` and `auth_header` are the same setting (the C++ plugin reads `auth_header`); keep one"
                ),
            ));
        }
        (Some(n), None) => Some((n, "auth_header_name")),
        (None, Some(n)) => Some((n, "auth_header")),
        (None, None) => None,
    };
    if let Some((n, key)) = header {
        let h = n.text(&field(key))?;
        if !h.bytes().all(is_tchar) {
            return Err(n.fault(format!(
                "{} must be a header name, found `{}`",
                field(key),
                h.escape_debug()
            )));
        }
        if RESERVED_HEADERS.contains(&h.to_ascii_lowercase().as_str()) {
            return Err(n.fault(format!(
                "{} cannot be `{h}`: the gateway removes or rewrites that header before the policy sees it",
                field(key)
            )));
        }
        s.0[3] = Some(quote::value(h));
    }
    if let Some(n) = map.get("token_ttl") {
        let ttl = seconds(&n, &field("token_ttl"))?;
        if ttl == 0 {
            return Err(n.fault(format!(
                "{} must be at least 1: a token that expires when issued has no Warden equivalent",
                field("token_ttl")
            )));
        }
        s.0[4] = Some(ttl.to_string());
    }
    if let Some(n) = map.get("clock_skew_seconds") {
        s.0[5] = Some(seconds(&n, &field("clock_skew_seconds"))?.to_string());
    }
    if let Some(b) = map.boolean("keep_token", what)? {
        s.0[6] = Some(b.to_string());
    }
    debug_assert_eq!(DEFAULTS.len(), s.0.len());
    Ok((s, notes))
}

/// A whole number of seconds that a policy can hold (at most 100 years).
fn seconds(n: &Node<'_>, what: &str) -> Res<u64> {
    let v = n.whole(what)?;
    match parse_duration(&v.to_string()) {
        Err(DurationError::TooLong) => Err(n.fault(format!(
            "{what} is {v} seconds: more than a policy holds (100 years)"
        ))),
        _ => Ok(v),
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `consumers`: a list of `{name, client_id, client_secret}`, names and
/// client_ids unique (the C++ plugin refuses a repeated one, which makes the
/// whole configuration invalid).
pub(crate) fn consumers(node: &Node<'_>, what: &str) -> Res<Vec<Consumer>> {
    let mut out: Vec<Consumer> = Vec::new();
    for (i, item) in node
        .items(&format!("{what}: `consumers`"))?
        .iter()
        .enumerate()
    {
        let at = format!("{what}: consumers[{i}]");
        let map = item.map(&at)?;
        check_fields(&map, &at, CONSUMER_FIELDS, &[])?;
        let required = |key: &str| -> Res<String> {
            map.text(key, &at)?.ok_or_else(|| {
                map.node.fault(format!(
                    "{at} has no `{key}` (Higress requires `name`, `client_id` and `client_secret`)"
                ))
            })
        };
        let c = Consumer {
            name: required("name")?,
            client_id: required("client_id")?,
            client_secret: required("client_secret")?,
        };
        if let Some(first) = out.iter().position(|o| o.name == c.name) {
            return Err(map.key_fault(
                "name",
                format!(
                    "{at}: the name `{}` is also consumers[{first}]'s (Higress refuses the configuration)",
                    c.name
                ),
            ));
        }
        if let Some(first) = out.iter().position(|o| o.client_id == c.client_id) {
            return Err(map.key_fault(
                "client_id",
                format!(
                    "{at}: the client_id `{}` is also consumers[{first}]'s (Higress refuses the configuration)",
                    c.client_id
                ),
            ));
        }
        out.push(c);
    }
    Ok(out)
}

/// A scope from the settings and `consumers` of `map`.
pub(crate) fn scope(map: &Map<'_>, what: &str) -> Res<Scope> {
    let (settings, notes) = settings(map, what)?;
    let consumers = match map.get("consumers") {
        Some(n) => consumers(&n, what)?,
        None => Vec::new(),
    };
    Ok(Scope {
        settings,
        consumers,
        notes,
    })
}

/// The fields of `map` that configure a scope (settings or `consumers`).
fn scope_fields<'m>(map: &Map<'m>) -> Vec<&'m str> {
    map.keys()
        .into_iter()
        .filter(|k| *k == "consumers" || SETTING_FIELDS.contains(k))
        .collect()
}

/// What a rule does, from its configuration `map` (`None`: the rule has
/// none). `instance` is the instance's scope, which `allow` names
/// consumers of; `instance_source` says where it comes from.
///
/// As the C++ plugin reads a rule: `_disable_: true` turns authentication
/// off; `allow` alone authorizes instance consumers; settings or
/// `consumers` make a configuration of the rule's own, which does not
/// inherit the instance's; neither admits nobody (an empty allow set).
pub(crate) fn action(
    map: Option<&Map<'_>>,
    what: &str,
    instance: Option<&Scope>,
    instance_source: &str,
    notes: &mut Vec<String>,
) -> Res<Action> {
    let Some(map) = map else {
        return Ok(nothing(instance, instance_source, notes));
    };
    let own = scope_fields(map);
    if map.boolean("_disable_", what)? == Some(true) {
        if let Some(other) = own.first().copied().or(map.get("allow").map(|_| "allow")) {
            return Err(map.key_fault(
                other,
                format!(
                    "{what}: `_disable_: true` turns the plugin off for this rule, so Higress ignores `{other}`; remove one"
                ),
            ));
        }
        return Ok(Action::Disable);
    }
    if let Some(allow) = map.get("allow") {
        if let Some(first) = own.first() {
            return Err(map.key_fault(
                "allow",
                format!(
                    "{what}: `allow` and `{first}` cannot be in one rule (the Higress page: authentication and authorization configurations cannot coexist; Higress would ignore `allow`)"
                ),
            ));
        }
        return allowed(&allow, what, instance, instance_source).map(Action::Allow);
    }
    if own.is_empty() {
        return Ok(nothing(instance, instance_source, notes));
    }
    let scope = scope(map, what)?;
    if scope.consumers.is_empty() {
        let message = format!(
            "{what} has its own settings but no consumers: Higress authenticates such a rule with nobody (every request 401), which Warden does not express; add `consumers`, or use `allow` to admit {instance_source}'s"
        );
        return Err(match map.get("consumers") {
            Some(_) => map.key_fault("consumers", message),
            None => map.node.fault(message),
        });
    }
    Ok(Action::Own(scope))
}

/// A rule with neither `allow` nor a configuration of its own. Higress
/// authenticates it with the instance configuration and an empty allow
/// set, so nobody passes; without an instance configuration it checks
/// nothing at all.
fn nothing(instance: Option<&Scope>, instance_source: &str, notes: &mut Vec<String>) -> Action {
    match instance {
        Some(_) => {
            notes.push("no `allow` and no `consumers`: Higress admits no consumer here (401 without a valid token, 403 with one)".to_owned());
            Action::Allow(Vec::new())
        }
        None => {
            notes.push(format!("no `allow`, no `consumers`, and no instance configuration ({instance_source}): Higress checks nothing here"));
            Action::Disable
        }
    }
}

/// `allow`: names of the instance's consumers (repeats dropped, as in
/// Higress's set).
fn allowed(
    node: &Node<'_>,
    what: &str,
    instance: Option<&Scope>,
    instance_source: &str,
) -> Res<Vec<String>> {
    let field = format!("{what}: `allow`");
    let items = node.items(&field)?;
    let mut names: Vec<String> = Vec::new();
    for item in &items {
        let name = item.text(&format!("each of {field}"))?;
        let Some(scope) = instance else {
            return Err(item.fault(format!(
                "{field} names `{name}`, but there is no instance configuration ({instance_source}) whose consumers it could admit; declare `consumers` there"
            )));
        };
        if !scope.consumers.iter().any(|c| c.name == name) {
            let known = scope.consumers.iter().map(|c| c.name.as_str());
            let hint = match closest(name, known) {
                Some(best) => format!(" (did you mean `{best}`?)"),
                None => String::new(),
            };
            return Err(item.fault(format!(
                "{field}: no consumer `{name}` in {instance_source}'s `consumers`{hint}"
            )));
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_names_only() {
        assert_eq!(
            closest("consumer", ["consumers", "issuer"]),
            Some("consumers")
        );
        assert_eq!(
            closest("token_tl", SETTING_FIELDS.iter().copied()),
            Some("token_ttl")
        );
        assert_eq!(closest("zzz", ["consumers"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("nmae", "name"), 1);
        assert_eq!(closest("nmae", ["name", "namespace"]), Some("name"));
    }
}
