//! The top level of a decK file: its format version and its collections.
//!
//! Only `_format_version` 3.x is read (Kong 3's declarative format; 1.1 and
//! 2.1 name fields differently). Top-level collections other than consumers,
//! services, routes, plugins and oauth2 credentials (upstreams,
//! certificates, consumer groups, vaults, …) have no Warden equivalent and
//! are refused; other plugins' credentials are left out with a comment.

use serde_norway::Value;

use crate::consumers::{self, OTHER_CREDENTIALS};
use crate::model::Config;
use crate::plugins;
use crate::services;
use crate::yaml::{Node, Res};

const TOP_FIELDS: &[&str] = &[
    "_format_version",
    "_transform",
    "_info",
    "consumers",
    "services",
    "routes",
    "plugins",
    "oauth2_credentials",
];

/// Reads and checks the whole document.
pub(crate) fn read(root: &Value) -> Res<Config> {
    let node = Node::root(root);
    let map = match root {
        Value::Mapping(_) => node.map("the file")?,
        _ => {
            return Err(node.fault(
                "a Kong declarative file must be a mapping starting with `_format_version: \"3.0\"`",
            ));
        }
    };
    let known: Vec<&str> = TOP_FIELDS
        .iter()
        .copied()
        .chain(OTHER_CREDENTIALS.iter().map(|(f, _)| *f))
        .collect();
    version(&map)?;
    map.only("top level", &known)?;
    let transform = map.boolean("_transform", "the file")?.unwrap_or(true);
    if let Some(info) = map.get("_info") {
        let info = info.map("`_info`")?;
        info.only("`_info`", &["select_tags"])?;
    }
    let mut notes = Vec::new();
    for (field, plugin) in OTHER_CREDENTIALS {
        if let Some(n) = map.get(field) {
            let count = n.items(&format!("`{field}`"))?.len();
            if count > 0 {
                notes.push(format!(
                    "{count} top-level {field} left out: Warden has no {plugin} plugin to use them"
                ));
            }
        }
    }
    let consumers = consumers::read(
        map.get("consumers"),
        map.get("oauth2_credentials"),
        transform,
    )?;
    let read = services::read(map.get("services"), map.get("routes"))?;
    let plugins = plugins::read(
        &read.plugins,
        map.get("plugins"),
        &read.services,
        &read.routes,
        &consumers,
    )?;
    Ok(Config {
        consumers,
        services: read.services,
        routes: read.routes,
        plugins: plugins.plugins,
        disabled: plugins.disabled,
        notes,
    })
}

/// `_format_version` must be 3.x.
fn version(map: &crate::yaml::Map<'_>) -> Res<()> {
    let Some(v) = map.get("_format_version") else {
        return Err(map.node.fault(
            "no `_format_version`: this reads Kong's format 3.x (`_format_version: \"3.0\"`)",
        ));
    };
    let ok = match v.value {
        Value::String(s) => {
            let mut parts = s.splitn(2, '.');
            parts.next() == Some("3")
                && parts.next().is_none_or(|minor| {
                    !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit())
                })
        }
        Value::Number(n) => n.as_f64().is_some_and(|f| (3.0..4.0).contains(&f)),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let shown = match v.value {
        Value::String(s) => format!("`{}`", s.escape_debug()),
        Value::Number(n) => format!("`{n}`"),
        _ => "not a version".to_owned(),
    };
    Err(v.fault(format!(
        "`_format_version` {shown} is not supported: only Kong's format 3.x (`\"3.0\"`) is"
    )))
}
