//! The time budget of a guest call: CPU time, checked at every epoch tick,
//! with a wall-clock backstop.

use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

/// The time budget of the guest call in progress.
///
/// A budget is CPU time spent by the guest call, checked at every epoch
/// tick: the engine's ticker advances the epoch (every millisecond by
/// default), each store's deadline is always the next tick, and the epoch
/// callback — which runs on the calling thread — reads the thread's CPU
/// clock. CPU time rather than wall-clock time, so that a call descheduled
/// on an overloaded machine is not failed for the scheduler's delay; a
/// wall-clock backstop of [`WALL_CLOCK_BACKSTOP`] × the budget still bounds
/// every call. Host work done for the call (hashing a presented secret) is
/// not charged to it; it moves the backstop by at most [`MAX_HOST_WORK`].
///
/// Starting a call reads no clock but the (vDSO) monotonic one: reading the
/// thread's CPU clock is a system call, and most calls end before the first
/// tick. At the first tick the call is charged the wall-clock time it has
/// run so far, but at most half its budget (it cannot have run much longer
/// on the CPU: wasm checks the epoch continually, and the ticker advances it
/// every millisecond), and from then on exactly the CPU time it uses. A call
/// therefore uses at most about 1.5× its budget of CPU time while the ticker
/// thread runs on time (more if the ticker itself is starved), and never
/// more than the wall-clock backstop in any case.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallBudget {
    started: Instant,
    /// The thread's CPU clock at the first tick (None before it, or when the
    /// OS has no such clock) and what was charged for the time before it.
    cpu_base: Option<Duration>,
    charged_before: Duration,
    /// Whether the first tick has been seen.
    ticked: bool,
    budget: Duration,
    /// CPU and wall-clock time of host work the call is not charged for.
    excluded: Duration,
    excluded_wall: Duration,
}

/// A call past this many times its budget in wall-clock time is interrupted
/// whatever CPU time it used: with the default 10 ms budget every call ends
/// within 40 ms (plus one tick) however loaded the machine is. A decision
/// takes microseconds of CPU, so only a call starved of the CPU for tens of
/// milliseconds meets it — and then fails closed.
pub const WALL_CLOCK_BACKSTOP: u32 = 4;

/// The most host work (wall-clock) one call may be excused for.
pub const MAX_HOST_WORK: Duration = Duration::from_secs(2);

impl CallBudget {
    pub(super) fn new(budget: Duration) -> Self {
        CallBudget {
            started: Instant::now(),
            cpu_base: None,
            charged_before: Duration::ZERO,
            ticked: false,
            budget,
            excluded: Duration::ZERO,
            excluded_wall: Duration::ZERO,
        }
    }

    /// Do not charge the call for host work done on its behalf: `cpu` of CPU
    /// time over `wall` of wall-clock time.
    pub(crate) fn exclude(&mut self, cpu: Duration, wall: Duration) {
        self.excluded = self.excluded.saturating_add(cpu);
        self.excluded_wall = self.excluded_wall.saturating_add(wall).min(MAX_HOST_WORK);
    }

    /// Called by the epoch callback: go on for another tick, or interrupt.
    pub(crate) fn check(&mut self) -> UpdateDeadline {
        let wall = self.started.elapsed();
        let cpu = thread_cpu_time();
        if !self.ticked {
            self.ticked = true;
            // Charge the time run so far (host work excepted), at most half
            // the budget; CPU time is measured exactly from here on.
            self.charged_before = wall.saturating_sub(self.excluded_wall).min(self.budget / 2);
            self.cpu_base = cpu;
            self.excluded = Duration::ZERO;
        }
        let used = match (self.cpu_base, cpu) {
            (Some(base), Some(now)) => self
                .charged_before
                .saturating_add(now.saturating_sub(base))
                .saturating_sub(self.excluded),
            _ => wall.saturating_sub(self.excluded),
        };
        let backstop = self
            .budget
            .saturating_mul(WALL_CLOCK_BACKSTOP)
            .saturating_add(self.excluded_wall);
        if used >= self.budget || wall >= backstop {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Continue(1)
        }
    }
}

/// CPU time used by the calling thread, where the OS tells it.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd"
))]
pub(super) fn thread_cpu_time() -> Option<Duration> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Some(Duration::new(
        u64::try_from(t.tv_sec).ok()?,
        u32::try_from(t.tv_nsec).ok()?,
    ))
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd"
)))]
pub(super) fn thread_cpu_time() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burn `cpu` of this thread's CPU time.
    fn spin(cpu: Duration) {
        let start = thread_cpu_time().unwrap();
        while thread_cpu_time().unwrap().saturating_sub(start) < cpu {
            std::hint::black_box(0u64);
        }
    }

    #[test]
    fn budgets_charge_cpu_time_not_waiting() {
        // Budgets are large next to the waits, so that a loaded machine
        // (a descheduled spin takes far longer than its CPU time) cannot
        // reach the wall-clock backstop where the test expects Continue.
        let ms = Duration::from_millis;
        // Waiting before the first tick is charged at most half the budget.
        let mut b = CallBudget::new(ms(200));
        std::thread::sleep(ms(300));
        assert!(matches!(b.check(), UpdateDeadline::Continue(_)));
        // Then CPU time counts exactly: 110 ms more is past the budget.
        spin(ms(110));
        assert!(matches!(b.check(), UpdateDeadline::Interrupt));

        // A call that runs on the CPU is interrupted once it used its
        // budget. (The backstop is moved out of the way as host work moves
        // it: this part is about CPU time alone.)
        let mut b = CallBudget::new(ms(10));
        b.exclude(Duration::ZERO, MAX_HOST_WORK);
        assert!(matches!(b.check(), UpdateDeadline::Continue(_)));
        spin(ms(4));
        assert!(matches!(b.check(), UpdateDeadline::Continue(_)));
        spin(ms(4));
        assert!(matches!(b.check(), UpdateDeadline::Continue(_)));
        spin(ms(3));
        assert!(matches!(b.check(), UpdateDeadline::Interrupt));

        // Host work is excused; the wall-clock backstop is not.
        let mut b = CallBudget::new(ms(10));
        b.exclude(ms(50), ms(50));
        assert!(matches!(b.check(), UpdateDeadline::Continue(_)));
        let mut b = CallBudget::new(ms(5));
        std::thread::sleep(ms(5 * u64::from(WALL_CLOCK_BACKSTOP)));
        assert!(matches!(b.check(), UpdateDeadline::Interrupt));
    }
}
