//! The lookup structures that make dispatch cost independent of policy size.
//!
//! - [`RuleIndex`]: which rule a request matches. Rules apply in declaration
//!   order and the first that matches wins (Higress's matcher); instead of
//!   scanning rules, each index maps a key to the *lowest* rule position that
//!   names it, and a request takes the minimum over a fixed number of lookups.
//! - [`Affix`]: prefix or suffix patterns (`*.example.com`, `example*`, route
//!   name prefixes), looked up by slicing the input at each distinct pattern
//!   length — a handful of hash lookups however many patterns there are.
//! - [`PathRouter`]: the standalone gateway's longest path-prefix routing, at
//!   segment boundaries (`/a` matches `/a` and `/a/x`, not `/ab`).
//!
//! Keys come from the policy, lookups from requests: the maps are never
//! written after compilation, so a fast non-keyed hash (FxHash) is safe here.

use rustc_hash::FxHashMap;

use crate::model::{DomainPattern, Matcher};

/// Rule position in declaration order.
pub type RulePos = u32;

/// Insert `pos` under `key` unless an earlier rule holds it; true if it was new.
fn claim(map: &mut FxHashMap<Box<str>, RulePos>, key: Box<str>, pos: RulePos) -> bool {
    match map.entry(key) {
        std::collections::hash_map::Entry::Occupied(_) => false,
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(pos);
            true
        }
    }
}

/// Prefix or suffix patterns → lowest rule position.
#[derive(Debug, Default)]
pub struct Affix {
    map: FxHashMap<Box<str>, RulePos>,
    /// Distinct pattern lengths, ascending, each with the set of bytes its
    /// patterns have at their inner edge (a suffix's first byte, a prefix's
    /// last): a slice of the input whose edge byte no pattern of that length
    /// has is not looked up. For `*.example.com`-style patterns (all begin
    /// with `.`) that leaves one hash probe per label boundary instead of
    /// one per distinct length.
    lens: Vec<(usize, ByteSet)>,
    suffix: bool,
}

/// A set of bytes.
#[derive(Debug, Default, Clone, Copy)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }
}

impl Affix {
    pub fn prefixes() -> Self {
        Affix::default()
    }

    pub fn suffixes() -> Self {
        Affix {
            suffix: true,
            ..Affix::default()
        }
    }

    /// The byte of `part` that faces the rest of the input.
    fn edge(&self, part: &str) -> Option<u8> {
        let b = part.as_bytes();
        if self.suffix { b.first() } else { b.last() }.copied()
    }

    pub fn insert(&mut self, pattern: Box<str>, pos: RulePos) -> bool {
        let at = match self
            .lens
            .binary_search_by_key(&pattern.len(), |(len, _)| *len)
        {
            Ok(at) => at,
            Err(at) => {
                self.lens.insert(at, (pattern.len(), ByteSet::default()));
                at
            }
        };
        if let Some(b) = self.edge(&pattern) {
            self.lens[at].1.insert(b);
        }
        claim(&mut self.map, pattern, pos)
    }

    /// The lowest rule position among all patterns matching `s`.
    pub fn first(&self, s: &str) -> Option<RulePos> {
        let mut best: Option<RulePos> = None;
        for &(len, edges) in &self.lens {
            if len > s.len() {
                break;
            }
            let part = if self.suffix {
                s.get(s.len() - len..)
            } else {
                s.get(..len)
            };
            let Some(part) = part else { continue };
            if self.edge(part).is_some_and(|b| !edges.contains(b)) {
                continue;
            }
            if let Some(&pos) = self.map.get(part) {
                best = Some(best.map_or(pos, |b| b.min(pos)));
            }
        }
        best
    }

    /// Whether `pattern` itself is in the set.
    pub fn has(&self, pattern: &str) -> bool {
        self.map.contains_key(pattern)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn reserve(&mut self, n: usize) {
        self.map.reserve(n);
    }
}

/// Everything a request is matched by.
#[derive(Debug, Clone, Copy, Default)]
pub struct MatchKeys<'a> {
    pub route: Option<&'a str>,
    pub service: Option<&'a str>,
    /// Lower case, port stripped.
    pub hostname: &'a str,
}

/// All rule indexes of a policy.
#[derive(Debug)]
pub struct RuleIndex {
    pub route: FxHashMap<Box<str>, RulePos>,
    pub route_service: FxHashMap<Box<str>, FxHashMap<Box<str>, RulePos>>,
    pub route_prefix: Affix,
    pub service: FxHashMap<Box<str>, RulePos>,
    pub domain_exact: FxHashMap<Box<str>, RulePos>,
    pub domain_suffix: Affix,
    pub domain_prefix: Affix,
}

impl Default for RuleIndex {
    fn default() -> Self {
        RuleIndex {
            route: FxHashMap::default(),
            route_service: FxHashMap::default(),
            route_prefix: Affix::prefixes(),
            service: FxHashMap::default(),
            domain_exact: FxHashMap::default(),
            domain_suffix: Affix::suffixes(),
            domain_prefix: Affix::prefixes(),
        }
    }
}

impl RuleIndex {
    /// An empty index with room for every key of `matchers`: a large
    /// policy's tables are allocated once, at their final size, instead of
    /// doubling (each doubling leaves its old table as a hole that a
    /// guest's linear memory keeps).
    pub fn sized_for<'m>(matchers: impl Iterator<Item = &'m Matcher>) -> Self {
        let mut n = [0usize; 6];
        for m in matchers {
            match m {
                Matcher::Route(names) => n[0] += names.len(),
                Matcher::RouteAndService(..) => {}
                Matcher::RoutePrefix(p) => n[1] += p.len(),
                Matcher::Service(names) => n[2] += names.len(),
                Matcher::Domain(patterns) => {
                    for p in patterns.iter() {
                        n[3 + match p {
                            DomainPattern::Exact(_) => 0,
                            DomainPattern::Suffix(_) => 1,
                            DomainPattern::Prefix(_) => 2,
                        }] += 1;
                    }
                }
            }
        }
        let mut index = RuleIndex::default();
        index.route.reserve(n[0]);
        index.route_prefix.reserve(n[1]);
        index.service.reserve(n[2]);
        index.domain_exact.reserve(n[3]);
        index.domain_suffix.reserve(n[4]);
        index.domain_prefix.reserve(n[5]);
        index
    }

    pub fn add_route(&mut self, name: Box<str>, pos: RulePos) -> bool {
        claim(&mut self.route, name, pos)
    }

    pub fn add_route_service(&mut self, route: &str, service: Box<str>, pos: RulePos) -> bool {
        let inner = match self.route_service.get_mut(route) {
            Some(inner) => inner,
            None => self.route_service.entry(route.into()).or_default(),
        };
        claim(inner, service, pos)
    }

    pub fn add_service(&mut self, name: Box<str>, pos: RulePos) -> bool {
        claim(&mut self.service, name, pos)
    }

    pub fn add_domain_exact(&mut self, host: Box<str>, pos: RulePos) -> bool {
        claim(&mut self.domain_exact, host, pos)
    }

    /// The first rule (lowest position) that matches, if any.
    pub fn first_match(&self, keys: &MatchKeys<'_>) -> Option<RulePos> {
        let mut best: Option<RulePos> = None;
        let mut take = |p: Option<RulePos>| {
            if let Some(p) = p {
                best = Some(best.map_or(p, |b| b.min(p)));
            }
        };
        if let Some(route) = keys.route {
            take(self.route.get(route).copied());
            if let Some(service) = keys.service {
                take(
                    self.route_service
                        .get(route)
                        .and_then(|m| m.get(service))
                        .copied(),
                );
            }
            if !self.route_prefix.is_empty() {
                take(self.route_prefix.first(route));
            }
        }
        if let Some(service) = keys.service {
            take(self.service.get(service).copied());
        }
        take(self.domain_exact.get(keys.hostname).copied());
        if !self.domain_suffix.is_empty() {
            take(self.domain_suffix.first(keys.hostname));
        }
        if !self.domain_prefix.is_empty() {
            take(self.domain_prefix.first(keys.hostname));
        }
        best
    }
}

/// Names → their index in a list the graph keeps anyway (route names,
/// path prefixes): open addressing over `u32` indexes, so that a name is
/// stored once, in its list, and not again as a key. Of equal names, the
/// first is found.
#[derive(Debug, Default)]
pub struct NameTable {
    /// A power of two, at most half full; `EMPTY` or an index.
    slots: Box<[u32]>,
}

impl NameTable {
    const EMPTY: u32 = u32::MAX;

    /// The table of `names` (index, name), whose names `name_of` gives back.
    pub fn new<'a>(
        count: usize,
        names: impl Iterator<Item = (u32, &'a str)>,
        name_of: impl Fn(u32) -> &'a str,
    ) -> NameTable {
        if count == 0 {
            return NameTable::default();
        }
        let mut slots = vec![Self::EMPTY; (count * 2).next_power_of_two()].into_boxed_slice();
        let mask = slots.len() - 1;
        for (index, name) in names {
            let mut at = Self::hash(name) & mask;
            loop {
                match slots[at] {
                    Self::EMPTY => {
                        slots[at] = index;
                        break;
                    }
                    other if name_of(other) == name => break,
                    _ => at = (at + 1) & mask,
                }
            }
        }
        NameTable { slots }
    }

    fn hash(name: &str) -> usize {
        use std::hash::BuildHasher;
        rustc_hash::FxBuildHasher.hash_one(name) as usize
    }

    /// The index of `name`, given each index's name.
    pub fn get<'a>(&self, name: &str, name_of: impl Fn(u32) -> &'a str) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut at = Self::hash(name) & mask;
        loop {
            match self.slots[at] {
                Self::EMPTY => return None,
                index if name_of(index) == name => return Some(index),
                _ => at = (at + 1) & mask,
            }
        }
    }
}

/// Longest path prefix → route index, at `/` boundaries. The prefixes are
/// the routes' own (`prefix_of` gives a route's).
#[derive(Debug, Default)]
pub struct PathRouter {
    table: NameTable,
    /// Distinct prefix lengths, descending (longest match first).
    lens: Vec<usize>,
}

impl PathRouter {
    /// The router of `prefixes` (route index, prefix); of equal prefixes,
    /// the first route's.
    pub fn new<'a>(
        prefixes: impl Iterator<Item = (u32, &'a str)> + Clone,
        prefix_of: impl Fn(u32) -> &'a str,
    ) -> PathRouter {
        let mut lens: Vec<usize> = prefixes.clone().map(|(_, p)| p.len()).collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        lens.dedup();
        let count = prefixes.clone().count();
        PathRouter {
            table: NameTable::new(count, prefixes, prefix_of),
            lens,
        }
    }

    pub fn lookup<'a>(&self, path: &str, prefix_of: impl Fn(u32) -> &'a str) -> Option<u32> {
        for &len in &self.lens {
            let Some(prefix) = path.get(..len) else {
                continue;
            };
            let boundary =
                len == path.len() || prefix.ends_with('/') || path.as_bytes()[len] == b'/';
            if boundary && let Some(r) = self.table.get(prefix, &prefix_of) {
                return Some(r);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affixes_take_the_earliest_rule() {
        let mut s = Affix::suffixes();
        assert!(s.insert(".example.com".into(), 3));
        assert!(s.insert(".com".into(), 5));
        assert!(!s.insert(".com".into(), 9));
        assert_eq!(s.first("a.b.example.com"), Some(3));
        assert_eq!(s.first("x.com"), Some(5));
        assert_eq!(s.first("example.com"), Some(5));
        assert_eq!(s.first("com"), None);
        let mut p = Affix::prefixes();
        p.insert("api".into(), 1);
        assert_eq!(p.first("api.internal"), Some(1));
        assert_eq!(p.first("ap"), None);
        assert_eq!(p.first("é-api"), None);
    }

    #[test]
    fn path_router_is_longest_prefix_at_segment_boundaries() {
        let router = |prefixes: &'static [&'static str]| {
            let of = |i: u32| prefixes[i as usize];
            let r = PathRouter::new((0..prefixes.len() as u32).map(|i| (i, of(i))), of);
            move |path: &str| r.lookup(path, of)
        };
        let r = router(&["/a", "/a/b", "/", "/a"]);
        assert_eq!(r("/a"), Some(0), "the first of equal prefixes");
        assert_eq!(r("/a/x"), Some(0));
        assert_eq!(r("/a/b/c"), Some(1));
        assert_eq!(r("/ab"), Some(2));
        assert_eq!(r("/"), Some(2));
        let only = router(&["/a"]);
        assert_eq!(only("/ab"), None);
        assert_eq!(only(""), None);
        let none = router(&[]);
        assert_eq!(none("/a"), None);
    }

    #[test]
    fn first_match_is_the_lowest_position_across_indexes() {
        let mut i = RuleIndex::default();
        i.add_domain_exact("test.com".into(), 4);
        i.domain_suffix.insert(".example.com".into(), 2);
        i.add_route("route-a".into(), 3);
        i.add_route_service("route-a", "svc".into(), 1);
        let keys = |route, service, host| MatchKeys {
            route,
            service,
            hostname: host,
        };
        assert_eq!(
            i.first_match(&keys(Some("route-a"), None, "test.com")),
            Some(3)
        );
        assert_eq!(
            i.first_match(&keys(Some("route-a"), Some("svc"), "test.com")),
            Some(1)
        );
        assert_eq!(
            i.first_match(&keys(Some("route-a"), None, "x.example.com")),
            Some(2)
        );
        assert_eq!(i.first_match(&keys(None, None, "other")), None);
    }
}
