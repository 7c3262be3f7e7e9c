//! The monotonic clock the drivers hand to the core: `std::time::Instant` as nanoseconds
//! since the driver's start-up origin. It owns the mapping both ways and nothing else.

use eddy_core::{Duration, Instant};

/// Maps the OS monotonic clock to [`eddy_core::Instant`] (nanoseconds since `origin`).
#[derive(Clone, Copy, Debug)]
pub struct MonoClock {
    origin: std::time::Instant,
}

impl Default for MonoClock {
    fn default() -> Self {
        MonoClock::new()
    }
}

impl MonoClock {
    /// A clock whose origin (eddy's `Instant::ZERO`) is now.
    pub fn new() -> MonoClock {
        MonoClock {
            origin: std::time::Instant::now(),
        }
    }

    /// Wall-clock time at the origin, in Unix nanoseconds (for the core's `Date` headers).
    pub fn unix_origin_nanos(&self) -> u64 {
        let since_origin = self.origin.elapsed();
        let unix_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(unix_now.saturating_sub(since_origin).as_nanos()).unwrap_or(0)
    }

    /// The current time as an eddy instant.
    pub fn now(&self) -> Instant {
        self.from_std(std::time::Instant::now())
    }

    /// Converts an OS instant (saturating at the origin and at `Instant::MAX`).
    pub fn from_std(&self, t: std::time::Instant) -> Instant {
        let nanos = t.saturating_duration_since(self.origin).as_nanos();
        Instant::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// How long from now until `deadline` (zero if it passed).
    pub fn until(&self, deadline: Instant) -> Duration {
        deadline - self.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_monotonic_and_starts_near_zero() {
        let c = MonoClock::new();
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
        assert!(a < Instant::from_nanos(1_000_000_000));
        assert_eq!(c.until(Instant::ZERO), Duration::ZERO);
    }
}
