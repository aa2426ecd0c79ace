//! Exponential backoff with jitter, as a pure function of the attempt and a random unit value.

use std::time::Duration;

/// Retry delays: doubling from `base` up to `cap`, each drawn from the upper half of the
/// current window ("equal jitter"), so a fleet does not retry in lock step yet never spins.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// Start at `base`, never exceed `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The next delay. `unit` is a random value in `[0, 1)`.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let window = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = window / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Attempts so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Start over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(b.next_delay(0.0), Duration::from_millis(50));
        assert_eq!(b.next_delay(0.999_999).as_millis(), 199);
        assert_eq!(b.next_delay(0.5), Duration::from_millis(300));
        for _ in 0..40 {
            let d = b.next_delay(0.999);
            assert!(d <= Duration::from_secs(1));
            assert!(d >= Duration::from_millis(500));
        }
        b.reset();
        assert_eq!(b.next_delay(0.0), Duration::from_millis(50));
    }
}
