use crate::{ClockError, Timestamp};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The default maximum offset tolerated between two nodes' clocks.
pub const DEFAULT_MAX_OFFSET: Duration = Duration::from_millis(500);

/// A source of physical time in nanoseconds since the Unix epoch. A seam so tests can drive
/// time by hand.
pub trait PhysicalClock: Send + Sync + std::fmt::Debug {
    /// Nanoseconds since the Unix epoch, now.
    fn now_ns(&self) -> u64;
}

/// The operating system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl PhysicalClock for SystemClock {
    fn now_ns(&self) -> u64 {
        // A clock set before 1970 reads as the epoch; the HLC stays monotonic regardless.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A physical clock that moves only when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ns: AtomicU64,
}

impl ManualClock {
    /// A manual clock reading `now_ns`.
    pub fn new(now_ns: u64) -> Self {
        ManualClock {
            now_ns: AtomicU64::new(now_ns),
        }
    }

    /// Sets the reading (it may go backwards, as a real clock can).
    pub fn set(&self, now_ns: u64) {
        self.now_ns.store(now_ns, Ordering::SeqCst);
    }

    /// Moves the reading forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.now_ns.fetch_add(by, Ordering::SeqCst);
    }
}

impl PhysicalClock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.now_ns.load(Ordering::SeqCst)
    }
}

/// A hybrid logical clock: physical time when it moves forward, a logical counter otherwise.
#[derive(Debug)]
pub struct Clock {
    physical: Arc<dyn PhysicalClock>,
    max_offset: Duration,
    /// The largest timestamp issued or accepted so far.
    last: Mutex<Timestamp>,
}

impl Clock {
    /// A clock over `physical` that refuses remote timestamps more than `max_offset` ahead.
    pub fn new(physical: Arc<dyn PhysicalClock>, max_offset: Duration) -> Self {
        Clock {
            physical,
            max_offset,
            last: Mutex::new(Timestamp::ZERO),
        }
    }

    /// A clock over the system's real-time clock with [`DEFAULT_MAX_OFFSET`].
    pub fn system() -> Self {
        Clock::new(Arc::new(SystemClock), DEFAULT_MAX_OFFSET)
    }

    /// The maximum tolerated offset.
    pub fn max_offset(&self) -> Duration {
        self.max_offset
    }

    /// The physical clock's reading, without touching the HLC.
    pub fn physical_now_ns(&self) -> u64 {
        self.physical.now_ns()
    }

    /// A new timestamp, strictly greater than every one returned or accepted before.
    pub fn now(&self) -> Timestamp {
        let physical = self.physical.now_ns();
        let mut last = self.lock();
        let next = if physical > last.wall_time_ns {
            Timestamp::new(physical, 0)
        } else {
            last.next()
        };
        assert!(next > *last, "hlc: clock did not advance past {}", *last);
        *last = next;
        next
    }

    /// The largest timestamp issued or accepted so far, without issuing a new one.
    pub fn last(&self) -> Timestamp {
        *self.lock()
    }

    /// Takes a timestamp seen from another node so that later [`Clock::now`] calls are greater
    /// than it. Never moves the clock backwards. Refuses, changing nothing, a timestamp more
    /// than the maximum offset ahead of the local physical clock.
    pub fn update(&self, remote: Timestamp) -> Result<(), ClockError> {
        let physical = self.physical.now_ns();
        let max_offset_ns = u64::try_from(self.max_offset.as_nanos()).unwrap_or(u64::MAX);
        let ahead_ns = remote.wall_time_ns.saturating_sub(physical);
        if ahead_ns > max_offset_ns {
            return Err(ClockError::RemoteTooFarAhead {
                remote,
                ahead_ns,
                max_offset: self.max_offset,
            });
        }
        let mut last = self.lock();
        if remote > *last {
            *last = remote;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timestamp> {
        // A panic while holding this lock cannot leave the timestamp half-written (it is Copy),
        // so a poisoned lock still holds a valid value.
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manual(now_ns: u64) -> (Arc<ManualClock>, Clock) {
        let physical = Arc::new(ManualClock::new(now_ns));
        let clock = Clock::new(physical.clone(), DEFAULT_MAX_OFFSET);
        (physical, clock)
    }

    // Goal: when physical time stands still or goes back, the logical counter keeps now() rising.
    #[test]
    fn now_is_monotonic_when_physical_time_stalls_or_regresses() {
        let (physical, clock) = manual(1_000);
        let a = clock.now();
        let b = clock.now();
        physical.set(500);
        let c = clock.now();
        assert_eq!(a, Timestamp::new(1_000, 0));
        assert_eq!(b, Timestamp::new(1_000, 1));
        assert_eq!(c, Timestamp::new(1_000, 2));
        physical.set(2_000);
        assert_eq!(clock.now(), Timestamp::new(2_000, 0));
    }

    // Goal: update forwards the clock past a remote timestamp within the offset and never back.
    #[test]
    fn update_forwards_and_never_regresses() {
        let (_physical, clock) = manual(1_000_000_000);
        let remote = Timestamp::new(1_200_000_000, 5);
        clock.update(remote).expect("within max offset");
        assert!(clock.now() > remote);
        let before = clock.last();
        clock
            .update(Timestamp::new(1, 0))
            .expect("old timestamps are fine");
        assert_eq!(clock.last(), before);
    }

    // Goal: a remote timestamp beyond the max offset is refused with a typed error and ignored.
    #[test]
    fn update_rejects_far_future() {
        let (_physical, clock) = manual(1_000_000_000);
        let before = clock.last();
        let remote = Timestamp::new(1_000_000_000 + 500_000_001, 0);
        let err = clock.update(remote).expect_err("beyond max offset");
        assert_eq!(
            err,
            ClockError::RemoteTooFarAhead {
                remote,
                ahead_ns: 500_000_001,
                max_offset: DEFAULT_MAX_OFFSET
            }
        );
        assert_eq!(clock.last(), before);
        // Exactly at the limit is accepted.
        clock
            .update(Timestamp::new(1_500_000_000, 0))
            .expect("at the limit");
    }

    // Goal: the real system clock yields strictly increasing timestamps across threads.
    #[test]
    fn system_clock_is_strictly_monotonic_across_threads() {
        let clock = Arc::new(Clock::system());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let clock = clock.clone();
                std::thread::spawn(move || (0..2_000).map(|_| clock.now()).collect::<Vec<_>>())
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            let seen = h.join().expect("thread");
            assert!(seen.windows(2).all(|w| w[0] < w[1]));
            all.extend(seen);
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "two calls returned the same timestamp");
    }
}
