//! The header names and values a decision sets on forwarded requests, made
//! once per worker thread and then shared.
//!
//! A policy sets the same few headers on most requests (`x-mse-consumer`,
//! Kong's `X-Consumer-ID` and `X-Credential-Identifier`), mostly with values
//! that repeat (a consumer's name for every one of its requests). Making a
//! `HeaderName` that is not a standard one, and any `HeaderValue`, copies its
//! bytes into a new allocation; a clone of one already made shares them.
//! So each worker keeps the names it has made (at most [`MAX_NAMES`]) and a
//! small direct-mapped table of values ([`VALUE_SLOTS`] slots, values of at
//! most [`MAX_VALUE_LEN`] bytes: at most 32 KiB a thread). A value that is
//! not in its slot replaces what is there. Both are checked exactly as
//! `HeaderName::from_bytes` and `HeaderValue::from_str` check them: what is
//! kept was made by them, and is handed out only for the same bytes (a name
//! in any case, since names are lower-cased when made).

use std::cell::RefCell;

use hyper::header::{HeaderName, HeaderValue};

/// Header names kept per thread.
const MAX_NAMES: usize = 64;
/// Slots of the value table, a power of two.
const VALUE_SLOTS: usize = 256;
/// Longer values (a whole token) are made each time, never kept.
const MAX_VALUE_LEN: usize = 128;

thread_local! {
    static NAMES: RefCell<Vec<HeaderName>> = const { RefCell::new(Vec::new()) };
    static VALUES: RefCell<Vec<Option<HeaderValue>>> = const { RefCell::new(Vec::new()) };
}

/// `name` as a header name, or `None` if it is not one.
pub(super) fn name(name: &str) -> Option<HeaderName> {
    NAMES.with_borrow_mut(|names| {
        if let Some(made) = names.iter().find(|n| n.as_str().eq_ignore_ascii_case(name)) {
            return Some(made.clone());
        }
        let made = HeaderName::from_bytes(name.as_bytes()).ok()?;
        if names.len() < MAX_NAMES {
            names.push(made.clone());
        }
        Some(made)
    })
}

/// `value` as a header value, or `None` if it is not one.
pub(super) fn value(value: &str) -> Option<HeaderValue> {
    if value.len() > MAX_VALUE_LEN {
        return HeaderValue::from_str(value).ok();
    }
    VALUES.with_borrow_mut(|slots| {
        if slots.is_empty() {
            slots.resize(VALUE_SLOTS, None);
        }
        let slot = &mut slots[slot_of(value.as_bytes())];
        if let Some(made) = slot
            && made.as_bytes() == value.as_bytes()
        {
            return Some(made.clone());
        }
        let made = HeaderValue::from_str(value).ok()?;
        *slot = Some(made.clone());
        Some(made)
    })
}

/// FNV-1a of `bytes`, folded onto the table.
fn slot_of(bytes: &[u8]) -> usize {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash ^ (hash >> 32)) as usize & (VALUE_SLOTS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_hyper_checks_them_and_shared_in_any_case() {
        for bad in ["", "x y", "x:", "é", "a\r\nb"] {
            assert_eq!(name(bad), None, "{bad:?}");
            assert!(HeaderName::from_bytes(bad.as_bytes()).is_err());
        }
        let made = name("X-Consumer-ID").unwrap();
        assert_eq!(made.as_str(), "x-consumer-id");
        assert_eq!(name("x-consumer-id").unwrap(), made);
        assert_eq!(
            name("x-consumer-username").unwrap().as_str(),
            "x-consumer-username"
        );
        assert_eq!(name("authorization").unwrap(), hyper::header::AUTHORIZATION);
    }

    #[test]
    fn values_are_checked_as_hyper_checks_them_and_never_mixed_up() {
        for bad in ["a\nb", "a\rb", "\u{7f}", "\0"] {
            assert_eq!(value(bad), None, "{bad:?}");
            assert!(HeaderValue::from_str(bad).is_err());
        }
        // More values than slots, twice over: each comes back as itself,
        // whether its slot still held it or another value took it meanwhile.
        let values: Vec<String> = (0..2 * VALUE_SLOTS)
            .map(|i| format!("consumer{i}"))
            .collect();
        for _ in 0..2 {
            for v in &values {
                assert_eq!(value(v).unwrap().to_str().unwrap(), v);
            }
        }
        let long = "t".repeat(MAX_VALUE_LEN + 1);
        assert_eq!(value(&long).unwrap().as_bytes(), long.as_bytes());
        assert_eq!(value("").unwrap().as_bytes(), b"");
    }
}
