//! Typed access to the parsed YAML, remembering where each node came from.
//!
//! The document is parsed once into a `serde_norway::Value`. A [`Node`] is a
//! value plus its path from the root (entry and item indexes); every check
//! that fails returns a [`Fault`] with that path, which `lib.rs` turns into a
//! line and column with [`crate::locate`]. Null counts as absent for the
//! optional fields (decK writes `null` for unset fields).

use serde_norway::{Mapping, Value};

use crate::locate::Step;

/// Where a problem is, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) path: Vec<Step>,
    pub(crate) message: String,
}

pub(crate) type Res<T> = Result<T, Fault>;

/// A YAML value and its path from the document root.
#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    pub(crate) value: &'a Value,
    pub(crate) path: Vec<Step>,
}

/// What a value is, for messages.
fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// `Err` when `s` holds a control character other than newline and tab,
/// which a policy string has no escape for.
pub(crate) fn check_text(s: &str) -> Result<(), String> {
    match s
        .chars()
        .find(|&c| c.is_control() && c != '\n' && c != '\t')
    {
        Some(c) => Err(format!(
            "contains the control character U+{:04X}, which a policy cannot hold",
            c as u32
        )),
        None => Ok(()),
    }
}

impl<'a> Node<'a> {
    pub(crate) fn root(value: &'a Value) -> Self {
        Node {
            value,
            path: Vec::new(),
        }
    }

    fn child(&self, step: Step, value: &'a Value) -> Node<'a> {
        let mut path = self.path.clone();
        path.push(step);
        Node { value, path }
    }

    pub(crate) fn fault(&self, message: impl Into<String>) -> Fault {
        Fault {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn wrong(&self, what: &str, expected: &str) -> Fault {
        self.fault(format!(
            "{what} must be {expected}, found {}",
            describe(self.value)
        ))
    }

    /// A non-empty string that a policy can hold.
    pub(crate) fn text(&self, what: &str) -> Res<&'a str> {
        match self.value {
            Value::String(s) if s.is_empty() => {
                Err(self.fault(format!("{what} must not be empty")))
            }
            Value::String(s) => {
                check_text(s).map_err(|why| self.fault(format!("{what} {why}")))?;
                Ok(s)
            }
            _ => Err(self.wrong(what, "a string")),
        }
    }

    pub(crate) fn boolean(&self, what: &str) -> Res<bool> {
        match self.value {
            Value::Bool(b) => Ok(*b),
            _ => Err(self.wrong(what, "`true` or `false`")),
        }
    }

    /// A whole number ≥ 0 (Kong's numbers may be written `5` or `5.0`).
    pub(crate) fn whole(&self, what: &str) -> Res<u64> {
        let n = match self.value {
            Value::Number(n) => n,
            _ => return Err(self.wrong(what, "a number")),
        };
        if let Some(u) = n.as_u64() {
            return Ok(u);
        }
        match n.as_f64() {
            Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1e15 => Ok(f as u64),
            _ => Err(self.fault(format!("{what} must be a whole number ≥ 0, found {n}"))),
        }
    }

    pub(crate) fn items(&self, what: &str) -> Res<Vec<Node<'a>>> {
        match self.value {
            Value::Sequence(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| self.child(Step::Item(i), v))
                .collect()),
            _ => Err(self.wrong(what, "a list")),
        }
    }

    /// A list of non-empty strings.
    pub(crate) fn texts(&self, what: &str) -> Res<Vec<String>> {
        self.items(what)?
            .iter()
            .map(|n| n.text(&format!("each of {what}")).map(str::to_owned))
            .collect()
    }

    pub(crate) fn map(&self, what: &str) -> Res<Map<'a>> {
        match self.value {
            Value::Mapping(m) => Ok(Map {
                node: self.clone(),
                mapping: m,
            }),
            _ => Err(self.wrong(what, "a mapping")),
        }
    }
}

/// A key [`Map::first_unknown`] found: where it is, its text, and how to
/// show it in a message (`` `name` `` or "key of a number").
#[derive(Debug, Clone)]
pub(crate) struct Unknown<'a> {
    pub(crate) path: Vec<Step>,
    pub(crate) name: Option<&'a str>,
    pub(crate) shown: String,
}

/// A YAML mapping with its node.
#[derive(Debug, Clone)]
pub(crate) struct Map<'a> {
    pub(crate) node: Node<'a>,
    mapping: &'a Mapping,
}

impl<'a> Map<'a> {
    /// The entry `key`, with its index; absent when missing or null.
    fn entry(&self, key: &str) -> Option<(usize, &'a Value)> {
        self.mapping
            .iter()
            .enumerate()
            .find(|(_, (k, _))| k.as_str() == Some(key))
            .and_then(|(i, (_, v))| (!v.is_null()).then_some((i, v)))
    }

    /// The value of `key`; `None` when it is missing or null.
    pub(crate) fn get(&self, key: &str) -> Option<Node<'a>> {
        self.entry(key)
            .map(|(i, v)| self.node.child(Step::Entry(i), v))
    }

    /// A fault pointing at the key `key` (the field's own line).
    pub(crate) fn key_fault(&self, key: &str, message: impl Into<String>) -> Fault {
        let index = self
            .mapping
            .iter()
            .position(|(k, _)| k.as_str() == Some(key));
        match index {
            Some(i) => {
                let mut path = self.node.path.clone();
                path.push(Step::Key(i));
                Fault {
                    path,
                    message: message.into(),
                }
            }
            None => self.node.fault(message),
        }
    }

    /// Every key must be a string in `known`; the first other one is an
    /// error at that key. `entity` names the mapping (`route r1`).
    pub(crate) fn only(&self, entity: &str, known: &[&str]) -> Res<()> {
        match self.first_unknown(known) {
            Some(u) => Err(Fault {
                path: u.path,
                message: format!("{entity}: field {} has no Warden equivalent", u.shown),
            }),
            None => Ok(()),
        }
    }

    /// The first key that is not a string in `known`, if any.
    pub(crate) fn first_unknown(&self, known: &[&str]) -> Option<Unknown<'a>> {
        for (i, (k, _)) in self.mapping.iter().enumerate() {
            let name = k.as_str();
            if name.is_some_and(|n| known.contains(&n)) {
                continue;
            }
            let mut path = self.node.path.clone();
            path.push(Step::Key(i));
            let shown = match name {
                Some(n) => format!("`{}`", n.escape_debug()),
                None => format!("key of {}", describe(k)),
            };
            return Some(Unknown { path, name, shown });
        }
        None
    }

    /// The keys whose values are not null, in file order.
    pub(crate) fn keys(&self) -> Vec<&'a str> {
        self.mapping
            .iter()
            .filter(|(_, v)| !v.is_null())
            .filter_map(|(k, _)| k.as_str())
            .collect()
    }

    /// A string field, when present.
    pub(crate) fn text(&self, key: &str, what: &str) -> Res<Option<String>> {
        self.get(key)
            .map(|n| n.text(&format!("{what} `{key}`")).map(str::to_owned))
            .transpose()
    }

    pub(crate) fn boolean(&self, key: &str, what: &str) -> Res<Option<bool>> {
        self.get(key)
            .map(|n| n.boolean(&format!("{what} `{key}`")))
            .transpose()
    }

    /// A list-of-strings field, when present.
    pub(crate) fn texts(&self, key: &str, what: &str) -> Res<Option<Vec<String>>> {
        self.get(key)
            .map(|n| n.texts(&format!("{what} `{key}`")))
            .transpose()
    }

    /// The field, when present, must equal Kong's default `default`
    /// (anything else changes behaviour Warden cannot reproduce).
    pub(crate) fn only_default(&self, key: &str, default: Value, what: &str, why: &str) -> Res<()> {
        match self.get(key) {
            Some(n) if *n.value != default => Err(self.key_fault(
                key,
                format!(
                    "{what}: `{key}: {}` has no Warden equivalent ({why})",
                    render_scalar(n.value)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The field, when present, must be an empty list.
    pub(crate) fn only_empty(&self, key: &str, what: &str, why: &str) -> Res<()> {
        match self.get(key) {
            Some(n)
                if !matches!(n.value, Value::Sequence(s) if s.is_empty())
                    && !matches!(n.value, Value::Mapping(m) if m.is_empty()) =>
            {
                Err(self.key_fault(
                    key,
                    format!("{what}: `{key}` has no Warden equivalent ({why})"),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// A short rendering of a scalar for messages.
fn render_scalar(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{:?}", s),
        other => describe(other).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> Value {
        serde_norway::from_str(s).unwrap()
    }

    #[test]
    fn null_is_absent_and_paths_follow_entries() {
        let v = doc("a: ~\nb: [x, y]\n");
        let m = Node::root(&v).map("doc").unwrap();
        assert!(m.get("a").is_none());
        let b = m.get("b").unwrap();
        assert_eq!(b.path, vec![Step::Entry(1)]);
        assert_eq!(
            b.items("b").unwrap()[1].path,
            vec![Step::Entry(1), Step::Item(1)]
        );
        assert_eq!(m.texts("b", "t").unwrap().unwrap(), vec!["x", "y"]);
    }

    #[test]
    fn type_errors_say_what_was_found() {
        let v = doc("n: 5.5\ns: \"a\\rb\"\nm: 7.0\nk: 3\n");
        let m = Node::root(&v).map("doc").unwrap();
        let e = m.get("n").unwrap().whole("`n`").unwrap_err();
        assert_eq!(e.message, "`n` must be a whole number ≥ 0, found 5.5");
        let e = m.get("s").unwrap().text("`s`").unwrap_err();
        assert!(e.message.contains("U+000D"), "{}", e.message);
        assert_eq!(m.get("m").unwrap().whole("m").unwrap(), 7);
        let e = m.get("k").unwrap().text("`k`").unwrap_err();
        assert_eq!(e.message, "`k` must be a string, found a number");
        let e = m.only("thing", &["n", "s"]).unwrap_err();
        assert_eq!(e.path, vec![Step::Key(2)]);
        assert_eq!(e.message, "thing: field `m` has no Warden equivalent");
    }
}
