//! The guest's clock: what `host.now` and `wasi:clocks` read.
//!
//! One [`Clock`] per runtime: the system clock, a fixed instant
//! (`WARDEN_NOW`, to reproduce a decision) or a [`ManualClock`] that tests
//! move. The guest's WASI wall clock follows the same clock, so nothing in the
//! guest can see another time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime_wasi::HostWallClock;

use crate::error::HostError;

/// Where the guest's wall clock comes from.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// Always this many seconds since the Unix epoch (reproducible decisions).
    Fixed(u64),
    /// A clock the caller sets and advances (tests of expiry).
    Manual(ManualClock),
}

impl Clock {
    /// `Fixed` when `WARDEN_NOW=<unix seconds>` is set, else `System`.
    ///
    /// Read once at startup; an invalid value is an error, not ignored.
    pub fn from_env() -> Result<Clock, HostError> {
        match std::env::var_os("WARDEN_NOW") {
            None => Ok(Clock::System),
            Some(value) => {
                let text = value.to_string_lossy();
                text.trim()
                    .parse::<u64>()
                    .map(Clock::Fixed)
                    .map_err(|_| HostError::InvalidNow(text.into_owned()))
            }
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            Clock::Fixed(secs) => *secs,
            Clock::Manual(clock) => clock.get(),
        }
    }
}

/// A settable clock shared between a test and the runtime it drives.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `secs`.
    pub fn at(secs: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(secs)))
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    pub fn set(&self, secs: u64) {
        self.0.store(secs, Ordering::SeqCst);
    }

    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

/// The guest's WASI wall clock follows the same [`Clock`], so that nothing in
/// the guest (e.g. a JWT library reading `SystemTime`) sees another time.
pub(super) struct WasiWallClock(pub(super) Clock);

impl HostWallClock for WasiWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        match &self.0 {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            other => Duration::from_secs(other.now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks() {
        assert_eq!(Clock::Fixed(42).now(), 42);
        let m = ManualClock::at(10);
        let c = Clock::Manual(m.clone());
        m.advance(5);
        assert_eq!(c.now(), 15);
        assert!(Clock::System.now() > 1_700_000_000);
    }
}
