//! `warden import kong` and `warden import higress`: Kong declarative
//! configuration, or a Higress/MSE oauth plugin configuration → Warden policy.
//!
//! (The Higress importer is [`higress_to_policy`]; its module, `higress`,
//! documents its mapping. What follows is the Kong importer.)
//!
//! [`kong_to_policy`] reads a decK file (`_format_version: "3.0"`) and writes
//! a policy in Warden's Kong dialect (`dialect kong`): Kong consumers with
//! their oauth2 credentials, routes with their service's upstream, and one
//! rule per route- or service-scoped oauth2 plugin; a global oauth2 plugin
//! becomes the instance settings with `global_auth true`. Whatever has no
//! Warden equivalent — another plugin, a route matching on methods or
//! headers, a regex path, an https upstream, … — is an error naming the YAML
//! line and column of the offending entity, never dropped silently.
//!
//! YAML is parsed with `serde_norway` (a maintained serde_yaml fork) into a
//! `Value`, which has no positions. Every check carries the path of the node
//! it looked at; only when a check fails is the file parsed again by
//! [`locate`], which stops on purpose at that node and reads libyaml's mark
//! off the resulting error (see that module). That gives the real line of
//! the entity, anchors and flow style included, without a second YAML
//! library.
//!
//! Modules: [`document`] (top level), [`consumers`], [`services`] (and
//! routes), [`plugins`] and [`oauth2`] read and check; [`model`] is what they
//! produce; [`emit`] and [`quote`] write the policy. `higress` reuses
//! `yaml`, `locate`, `quote` and `emit`'s writer.

mod consumers;
mod document;
mod emit;
mod higress;
mod locate;
mod model;
mod oauth2;
mod plugins;
pub mod quote;
mod services;
mod upstream;
mod yaml;

use thiserror::Error;

/// Why a Kong or Higress file could not be converted, and where.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{source_name}:{line}{}: {message}", column.map(|c| format!(":{c}")).unwrap_or_default())]
pub struct ImportError {
    /// The name the caller gave the file.
    pub source_name: String,
    /// 1-based line of the offending entity (for a file without any, such
    /// as an empty one, where libyaml places its empty document).
    pub line: usize,
    /// 1-based column, when known.
    pub column: Option<usize>,
    pub message: String,
}

/// Converts a Kong declarative file (decK YAML, format 3.x) into Warden
/// policy text in the Kong dialect. `source_name` appears in the header
/// comment and in errors.
pub fn kong_to_policy(yaml: &str, source_name: &str) -> Result<String, ImportError> {
    convert(yaml, source_name, |root| {
        document::read(root).and_then(|config| emit::policy(&config, source_name))
    })
}

/// Converts a Higress `WasmPlugin` resource (`extensions.higress.io/v1alpha1`,
/// `spec.defaultConfig` and `spec.matchRules`) or a bare oauth plugin
/// configuration (as MSE's console takes it, `_rules_` included) into Warden
/// policy text in the default (Higress) dialect. `source_name` appears in the
/// header comment and in errors. The module `higress` documents the mapping.
pub fn higress_to_policy(yaml: &str, source_name: &str) -> Result<String, ImportError> {
    convert(yaml, source_name, |root| higress::policy(root, source_name))
}

/// Parses `yaml` and runs `to_policy` on it; a YAML error keeps libyaml's
/// position, a [`yaml::Fault`] is placed by [`locate`].
fn convert(
    yaml: &str,
    source_name: &str,
    to_policy: impl FnOnce(&serde_norway::Value) -> Result<String, yaml::Fault>,
) -> Result<String, ImportError> {
    let root: serde_norway::Value = serde_norway::from_str(yaml).map_err(|e| {
        let (line, column) = match e.location() {
            Some(l) => (l.line(), Some(l.column())),
            None => (1, None),
        };
        let text = e.to_string();
        let position = format!(" at line {line} column {}", column.unwrap_or(0));
        ImportError {
            source_name: source_name.to_owned(),
            line,
            column,
            message: format!("invalid YAML: {}", text.replace(&position, "")),
        }
    })?;
    to_policy(&root).map_err(|fault| {
        let at = locate::locate(yaml, &fault.path);
        ImportError {
            source_name: source_name.to_owned(),
            line: at.map_or(1, |(l, _)| l),
            column: at.map(|(_, c)| c),
            message: fault.message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_scalar_files_are_refused_where_libyaml_puts_them() {
        // A file of only a comment has its (empty) document at the end.
        for (src, line) in [("", 1), ("just text", 1), ("# only a comment\n", 2)] {
            let e = kong_to_policy(src, "e.yml").unwrap_err();
            assert_eq!(e.line, line, "{src:?}: {e}");
            assert!(e.message.contains("must be a mapping"), "{e}");
        }
    }

    #[test]
    fn yaml_syntax_errors_keep_libyaml_position_without_repeating_it() {
        let e = kong_to_policy("_format_version: \"3.0\"\nservices: [\n", "s.yml").unwrap_err();
        assert_eq!((e.line, e.column), (3, Some(1)));
        assert!(e.message.starts_with("invalid YAML: "), "{e}");
        assert!(!e.message.contains("at line 3 column 1"), "{e}");
        let e = kong_to_policy("a: 1\na: 2\n", "d.yml").unwrap_err();
        assert!(e.message.contains("duplicate"), "{e}");
    }

    #[test]
    fn display_leaves_out_an_unknown_column() {
        let e = ImportError {
            source_name: "k.yml".into(),
            line: 4,
            column: None,
            message: "m".into(),
        };
        assert_eq!(e.to_string(), "k.yml:4: m");
        let e = ImportError {
            column: Some(2),
            ..e
        };
        assert_eq!(e.to_string(), "k.yml:4:2: m");
    }
}
