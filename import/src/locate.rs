//! Finding the line and column of a YAML node from its path.
//!
//! `serde_norway::Value` carries no positions, and the crate exposes no
//! spanned type. What it does keep is libyaml's *mark* (line, column) of the
//! event being deserialized: when a `Visitor` returns a custom error, the
//! deserializer stamps that error with the mark of the node the visitor was
//! called for, and [`serde_norway::Error::location`] hands it back.
//!
//! So to place an error, [`locate`] parses the source a second time with a
//! [`Probe`] that walks the same path the importer took through the `Value`
//! (mapping entry *n*, sequence item *i*, …) while skipping everything else,
//! and fails on purpose at the target node (or at the target key). The
//! location of that failure is the node's position, as libyaml saw it: the
//! first character of a scalar, or the first key of a block mapping (so the
//! line of the `- name: …` that opens an entity). Aliases are replayed by the
//! deserializer from their anchor, so a node reached through an alias is
//! placed at the anchored text — the same tree the `Value` was built from.
//!
//! This costs one more parse, only when there is an error to report.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step from a node to one of its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The value of the mapping's `n`th entry (0-based, in source order).
    Entry(usize),
    /// The key of the mapping's `n`th entry; only as the last step.
    Key(usize),
    /// The sequence's `n`th item.
    Item(usize),
}

/// The text of the error the probe raises on purpose.
const HIT: &str = "warden-import: probe reached its target";

/// The 1-based (line, column) of the node at `path` in `src`, or `None` if
/// the path leads nowhere (which a path taken through the parsed `Value`
/// never does).
pub(crate) fn locate(src: &str, path: &[Step]) -> Option<(usize, usize)> {
    let de = serde_norway::Deserializer::from_str(src);
    let probe = Probe { path };
    match probe.deserialize(de) {
        // The message is prefixed with the serde path (`a.b: …`).
        Err(e) if e.to_string().contains(HIT) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

/// Walks `path`, skipping everything beside it; fails at its end.
struct Probe<'p> {
    path: &'p [Step],
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

fn hit<E: de::Error>() -> Result<(), E> {
    Err(E::custom(HIT))
}

/// Fails on whatever node it is handed (a target key).
struct Hit;

impl<'de> DeserializeSeed<'de> for Hit {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Probe { path: &[] })
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (want, rest) = match self.path.split_first() {
            None => return hit(),
            Some((Step::Entry(n), rest)) => (Some((*n, false)), rest),
            Some((Step::Key(n), rest)) => (Some((*n, true)), rest),
            Some((Step::Item(_), _)) => (None, &[][..]),
        };
        let mut index = 0;
        loop {
            match want {
                Some((n, true)) if n == index => {
                    if map.next_key_seed(Hit)?.is_none() {
                        return Ok(());
                    }
                }
                Some((n, false)) if n == index => {
                    if map.next_key::<IgnoredAny>()?.is_none() {
                        return Ok(());
                    }
                    map.next_value_seed(Probe { path: rest })?;
                }
                _ => {
                    if map.next_entry::<IgnoredAny, IgnoredAny>()?.is_none() {
                        return Ok(());
                    }
                }
            }
            index += 1;
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (want, rest) = match self.path.split_first() {
            None => return hit(),
            Some((Step::Item(n), rest)) => (Some(*n), rest),
            Some(_) => (None, &[][..]),
        };
        let mut index = 0;
        loop {
            let more = if want == Some(index) {
                seq.next_element_seed(Probe { path: rest })?.is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged node (`!tag value`): the importer never looks inside one.
        if self.path.is_empty() {
            return hit();
        }
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        de::VariantAccess::newtype_variant::<IgnoredAny>(variant)?;
        Ok(())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<(), E> {
        self.scalar()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
}

impl Probe<'_> {
    /// A scalar is the target when the path ends here; it has no children.
    fn scalar<E: de::Error>(&self) -> Result<(), E> {
        if self.path.is_empty() { hit() } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "a: 1\nlist:\n  - x: 1\n    y: [p, q]\n  - name: second\nz: {k: v}\n";

    #[test]
    fn finds_values_keys_and_items() {
        assert_eq!(locate(DOC, &[Step::Entry(0)]), Some((1, 4)));
        assert_eq!(locate(DOC, &[Step::Key(1)]), Some((2, 1)));
        assert_eq!(locate(DOC, &[Step::Entry(1), Step::Item(0)]), Some((3, 5)));
        assert_eq!(
            locate(
                DOC,
                &[Step::Entry(1), Step::Item(0), Step::Entry(1), Step::Item(1)]
            ),
            Some((4, 12))
        );
        assert_eq!(
            locate(DOC, &[Step::Entry(1), Step::Item(1), Step::Key(0)]),
            Some((5, 5))
        );
        assert_eq!(locate(DOC, &[Step::Entry(2), Step::Entry(0)]), Some((6, 8)));
    }

    #[test]
    fn a_path_to_nowhere_is_none() {
        assert_eq!(locate(DOC, &[Step::Entry(7)]), None);
        assert_eq!(locate(DOC, &[Step::Entry(0), Step::Item(0)]), None);
        assert_eq!(locate("[a, b", &[Step::Entry(0)]), None);
    }

    #[test]
    fn aliases_point_at_the_anchor() {
        let doc = "base: &b\n  k: v\ncopy: *b\n";
        assert_eq!(locate(doc, &[Step::Entry(1), Step::Entry(0)]), Some((2, 6)));
    }
}
