//! Sets of consumers for `allow`: a bitset over the dense instance consumer
//! ids when that is small or the set is dense, otherwise a sorted id list
//! (so 100,000 rules that each allow a few of 100,000 consumers stay small).

use rustc_hash::FxHashMap;

use crate::model::{Action, ConsumerId, Few, Rule};

/// The distinct `allow` sets of `rules` (rules that list the same
/// consumers share one), and the index of each rule's set (`u32::MAX` for
/// a rule without an `allow` list). The lists are
/// only borrowed, so that the tables sized from the count are allocated
/// before the rules are taken apart.
pub(super) fn distinct(rules: &[Rule], universe: usize) -> (Vec<AllowSet>, Vec<u32>) {
    let mut sets = Vec::new();
    let mut of_rule = Vec::with_capacity(rules.len());
    let mut seen: FxHashMap<&[ConsumerId], u32> = FxHashMap::default();
    for rule in rules {
        of_rule.push(match &rule.action {
            Action::Allow(ids) => *seen.entry(ids).or_insert_with(|| {
                sets.push(AllowSet::new(ids, universe));
                (sets.len() - 1) as u32
            }),
            Action::Authenticate(_) | Action::Disable => u32::MAX,
        });
    }
    sets.shrink_to_fit();
    (sets, of_rule)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowSet {
    Bits(Box<[u64]>),
    /// (One id is kept inline: most `allow` lists name one consumer.)
    Sorted(Few<ConsumerId>),
}

impl AllowSet {
    /// `ids` sorted and deduplicated, each `< universe`.
    pub fn new(ids: &[ConsumerId], universe: usize) -> Self {
        let words = universe.div_ceil(64);
        if words <= 64 || ids.len() * 2 >= words {
            let mut bits = vec![0u64; words.max(1)];
            for &id in ids {
                bits[id as usize / 64] |= 1 << (id % 64);
            }
            AllowSet::Bits(bits.into())
        } else {
            AllowSet::Sorted(Few::from(ids))
        }
    }

    pub fn contains(&self, id: ConsumerId) -> bool {
        match self {
            AllowSet::Bits(bits) => bits
                .get(id as usize / 64)
                .is_some_and(|w| w & (1 << (id % 64)) != 0),
            AllowSet::Sorted(ids) => ids.binary_search(&id).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_agree() {
        for universe in [1, 10, 5000, 100_000] {
            let ids: Vec<u32> = (0..universe as u32)
                .filter(|i| i % 7 == 3)
                .take(20)
                .collect();
            let set = AllowSet::new(&ids, universe);
            for id in 0..universe as u32 {
                assert_eq!(set.contains(id), ids.contains(&id), "{universe} {id}");
            }
            assert!(!set.contains(universe as u32 + 64));
        }
        assert!(matches!(
            AllowSet::new(&[1, 2], 100_000),
            AllowSet::Sorted(_)
        ));
        assert!(matches!(AllowSet::new(&[1, 2], 100), AllowSet::Bits(_)));
    }
}
