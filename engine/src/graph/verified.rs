//! [`VerifiedTokens`]: a bounded memo of the tokens a policy has verified, so
//! that a client presenting the same token again is not charged a second
//! base64 decode, JSON parse and HMAC.
//!
//! What is remembered is exactly what the signature, issuer and subject checks
//! proved: *this token, presented to this scope, belongs to this consumer*.
//! An entry is found by a hash of the scope and the token text, and confirmed
//! by comparing the whole token (without an early exit, so the comparison's
//! time says nothing about how much of a remembered token a guess shares).
//! Audience and times are not proved once and for all — they depend on the
//! route and the clock — so every hit re-checks them exactly as a fresh
//! verification does ([`Validity::check`]): an expired token is refused the
//! moment it expires, remembered or not.
//!
//! Only tokens that verified are ever inserted, so no request can fill the
//! memo with forgeries; a client minting many valid tokens only evicts others.
//! Bounded and allocation-free on a hit: a set-associative table (two ways
//! per set; a new entry replaces the less recently used one). A memo belongs
//! to one compiled policy: used with another, it empties itself first
//! (consumer and scope ids mean nothing across policies), so a reloaded
//! policy — a rotated key, a removed consumer — starts from empty.
//!
//! Revocation: the memo holds no revocation state of its own. A Kong-dialect
//! entry keeps its token's [`Granted`] (the `jti` among it), and every hit
//! is checked against the host's revocations before it is trusted, exactly
//! as a fresh verification is.

use std::hash::Hasher as _;
use subtle::ConstantTimeEq;

use rustc_hash::FxHasher;

use crate::model::{ConsumerId, ScopeId};
use crate::token::Validity;

/// Ways per set.
const WAYS: usize = 2;

/// A remembered verification.
#[derive(Debug)]
struct Entry {
    scope: ScopeId,
    token: Box<str>,
    consumer: ConsumerId,
    aud: Box<str>,
    validity: Validity,
    granted: Option<Box<Granted>>,
}

/// What a Kong-dialect token says beyond its consumer: its id (for
/// revocation), its client, and the scope and user it was granted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub jti: Box<str>,
    pub client_id: Box<str>,
    pub scope: Option<Box<str>>,
    pub user: Option<Box<str>>,
}

impl Granted {
    pub fn of(claims: &crate::token::Claims) -> Granted {
        Granted {
            jti: claims.jti.as_str().into(),
            client_id: claims.client_id.as_str().into(),
            scope: claims.scope.as_deref().map(Into::into),
            user: claims.authenticated_userid.as_deref().map(Into::into),
        }
    }
}

/// A remembered verification: the consumer, what must be re-checked
/// (audience claim, times), and a Kong-dialect token's grant.
pub(crate) type Hit<'m> = (ConsumerId, &'m str, Validity, Option<&'m Granted>);

#[derive(Debug, Default)]
struct Set {
    ways: [Option<Entry>; WAYS],
    /// The way used last (the other one is replaced first).
    recent: usize,
}

/// Hits, misses and size, for logs, tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
    pub capacity: usize,
}

/// A bounded memo of verified tokens for one [`super::DecisionGraph`]; see
/// the module documentation. Pass it to `decide_with`.
#[derive(Debug)]
pub struct VerifiedTokens {
    /// The graph whose ids the entries use (0: none yet).
    graph: u64,
    sets: Box<[Set]>,
    hits: u64,
    misses: u64,
}

impl VerifiedTokens {
    /// The capacity the WASI guest gives each instance: 1,024 tokens, at most
    /// ≈ 0.5 MiB of linear memory with tokens of Warden's size.
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// A memo of at least `capacity` entries (rounded up to a power of two,
    /// at least two).
    pub fn new(capacity: usize) -> Self {
        let sets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        VerifiedTokens {
            graph: 0,
            sets: (0..sets).map(|_| Set::default()).collect(),
            hits: 0,
            misses: 0,
        }
    }

    /// Lookups that found their token (cheap; [`Self::stats`] counts entries).
    pub(crate) fn hits(&self) -> u64 {
        self.hits
    }

    /// Counters and size.
    pub fn stats(&self) -> MemoStats {
        MemoStats {
            hits: self.hits,
            misses: self.misses,
            entries: self
                .sets
                .iter()
                .map(|s| s.ways.iter().flatten().count())
                .sum(),
            capacity: self.sets.len() * WAYS,
        }
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.sets.iter_mut().for_each(|s| *s = Set::default());
    }

    /// Use the memo for the graph `id`, emptying it if it held another's.
    pub(crate) fn bind(&mut self, id: u64) {
        if self.graph != id {
            self.clear();
            self.graph = id;
        }
    }

    fn set_of(&self, scope: ScopeId, token: &str) -> usize {
        let mut h = FxHasher::default();
        h.write_u32(scope);
        h.write(token.as_bytes());
        // Fx mixes into the high bits; fold them down before masking.
        let hash = h.finish();
        ((hash ^ (hash >> 32)) as usize) & (self.sets.len() - 1)
    }

    /// The consumer `token` was verified for in `scope`, with what must be
    /// re-checked (audience claim, times).
    pub(crate) fn lookup(&mut self, scope: ScopeId, token: &str) -> Option<Hit<'_>> {
        let i = self.set_of(scope, token);
        let set = &mut self.sets[i];
        let way = set.ways.iter().position(|w| {
            w.as_ref()
                .is_some_and(|e| e.scope == scope && same_text(&e.token, token))
        });
        let Some(way) = way else {
            self.misses += 1;
            return None;
        };
        self.hits += 1;
        set.recent = way;
        let e = set.ways[way].as_ref()?;
        Some((e.consumer, &e.aud, e.validity, e.granted.as_deref()))
    }

    /// Remember that `token` verified in `scope` for `consumer`.
    pub(crate) fn insert(
        &mut self,
        scope: ScopeId,
        token: &str,
        consumer: ConsumerId,
        aud: &str,
        validity: Validity,
        granted: Option<Granted>,
    ) {
        let i = self.set_of(scope, token);
        let set = &mut self.sets[i];
        let way = set
            .ways
            .iter()
            .position(Option::is_none)
            .unwrap_or((set.recent + 1) % WAYS);
        set.ways[way] = Some(Entry {
            scope,
            token: token.into(),
            consumer,
            aud: aud.into(),
            validity,
            granted: granted.map(Box::new),
        });
        set.recent = way;
    }
}

/// Whether `a` and `b` are the same text, in time that depends only on their
/// lengths (which are not secret: every token of a policy has about the same).
/// The differences of every 64-bit word are OR-ed together with no branch,
/// and `subtle` compares the result once (its byte-slice comparison costs a
/// barrier per byte, a third of a microsecond per token; one per word was
/// still a call per 8 bytes in the guest).
fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (a_words, a_tail) = a.as_chunks::<8>();
    let (b_words, b_tail) = b.as_chunks::<8>();
    let mut diff = 0u64;
    for (x, y) in a_words.iter().zip(b_words) {
        diff |= u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y);
    }
    for (x, y) in a_tail.iter().zip(b_tail) {
        diff |= u64::from(x ^ y);
    }
    diff.ct_eq(&0).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: Validity = Validity {
        exp: 100,
        iat: 10,
        nbf: None,
    };

    #[test]
    fn remembers_by_scope_and_whole_token() {
        let mut m = VerifiedTokens::new(8);
        m.bind(1);
        m.insert(0, "aaa.bbb.ccc", 7, "default", V, None);
        assert_eq!(m.lookup(0, "aaa.bbb.ccc").map(|h| h.0), Some(7));
        assert!(m.lookup(1, "aaa.bbb.ccc").is_none(), "another scope");
        assert!(m.lookup(0, "aaa.bbb.ccd").is_none(), "one byte differs");
        assert!(m.lookup(0, "aaa.bbb.cc").is_none(), "a prefix");
        assert_eq!(
            m.stats(),
            MemoStats {
                hits: 1,
                misses: 3,
                entries: 1,
                capacity: 8
            }
        );
        m.bind(2);
        assert!(m.lookup(0, "aaa.bbb.ccc").is_none(), "another graph");
    }

    #[test]
    fn stays_within_capacity_and_keeps_the_recently_used() {
        let mut m = VerifiedTokens::new(2); // one set, two ways
        m.bind(1);
        m.insert(0, "t1", 1, "a", V, None);
        m.insert(0, "t2", 2, "a", V, None);
        assert!(m.lookup(0, "t1").is_some()); // t1 now the recent one
        m.insert(0, "t3", 3, "a", V, None); // replaces t2
        assert!(m.lookup(0, "t1").is_some());
        assert!(m.lookup(0, "t2").is_none());
        assert!(m.lookup(0, "t3").is_some());
        assert_eq!(m.stats().entries, 2);

        let mut big = VerifiedTokens::new(64);
        big.bind(1);
        for k in 0..10_000u32 {
            big.insert(0, &format!("token-{k}"), k, "a", V, None);
        }
        assert_eq!(big.stats().capacity, 64);
        assert!(big.stats().entries <= 64);
    }

    #[test]
    fn same_text_compares_every_byte() {
        assert!(same_text("", ""));
        assert!(same_text("0123456789abcdefX", "0123456789abcdefX"));
        assert!(!same_text("0123456789abcdefX", "0123456789abcdefY"));
        assert!(!same_text("X123456789abcdef", "Y123456789abcdef"));
        assert!(!same_text("abc", "abcd"));
    }
}
