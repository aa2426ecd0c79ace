//! The sink's one retry schedule: exponential backoff with jitter, used by every loop that
//! retries a remote call (DynamoDB's unprocessed items, alarm webhooks).

use std::time::Duration;

/// Exponential backoff: `first`, doubled for each further retry, capped at `max`, each delay
/// scaled by a random factor in [0.5, 1.5) so that callers that failed together do not retry
/// together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
}

impl Backoff {
    /// A schedule starting at `first` and capped at `max`.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self { first, max }
    }

    /// The delay before retry `retry` (1 for the first) before jitter: `first × 2^(retry-1)`,
    /// at most `max`.
    pub fn base(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(16);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }

    /// The jittered delay before retry `retry`: [`Backoff::base`] scaled into [0.5, 1.5).
    pub fn delay(&self, retry: u32) -> Duration {
        jitter(self.base(retry), rand::random::<f64>())
    }
}

/// `base` scaled by `0.5 + unit` (`unit` in [0, 1)).
fn jitter(base: Duration, unit: f64) -> Duration {
    base.mul_f64(0.5 + unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));

    #[test]
    fn doubles_up_to_the_cap() {
        assert_eq!(B.base(1), Duration::from_millis(50));
        assert_eq!(B.base(2), Duration::from_millis(100));
        assert_eq!(B.base(6), Duration::from_millis(1600));
        assert_eq!(B.base(7), Duration::from_secs(2));
        assert_eq!(B.base(u32::MAX), Duration::from_secs(2));
        assert_eq!(B.base(0), Duration::from_millis(50));
    }

    #[test]
    fn jitter_stays_within_half_to_one_and_a_half_times_the_base() {
        let base = Duration::from_millis(1000);
        assert_eq!(jitter(base, 0.0), Duration::from_millis(500));
        assert_eq!(jitter(base, 0.5), Duration::from_millis(1000));
        assert!(jitter(base, 0.999_999) < Duration::from_millis(1500));
        for retry in 1..10 {
            let delay = B.delay(retry);
            assert!(
                delay >= B.base(retry) / 2 && delay < B.base(retry) * 3 / 2,
                "{delay:?}"
            );
        }
    }
}
