//! What every transport shares: how a send fails, which frames of a call were not taken, how
//! many frames one call may carry, and [`Transport`], the interface the shipper delivers
//! through. The transports (`http.rs`, `sigv4.rs`, `kinesis.rs`) and the shipper import this
//! file; [`Sender`](super::Sender) picks the configured transport.

use super::classify::Class;
use bytes::Bytes;
use std::ops::Range;

/// How a send failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// Worth retrying with backoff: connection errors, timeouts, 408, 429, 5xx, throttling,
    /// expired credentials, a clock skew that the correction did not cure.
    #[error("retryable: {0}")]
    Retryable(String),
    /// 401 from an `outpost-sink`: the token may have been rotated; re-read it and retry.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The sink refuses the agent, not the data (403, a missing stream, no credentials): retry
    /// with backoff until an operator fixes it; never dead-letter.
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    /// The sink refused the frame for good (400, 413, a `ValidationException`): retrying
    /// cannot help.
    #[error("rejected with {status}: {reason}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The sink's reason.
        reason: String,
    },
}

impl SendError {
    /// The error for an answer of class `class` (a [`Class::ClockSkew`] that is returned, not
    /// corrected, is retried).
    pub fn from_class(class: Class, status: u16, reason: String) -> Self {
        match class {
            Class::Retry | Class::ClockSkew => Self::Retryable(reason),
            Class::ReloadToken => Self::Unauthorized(reason),
            Class::Misconfigured => Self::Misconfigured(reason),
            Class::DeadLetter => Self::Rejected { status, reason },
        }
    }
}

/// One frame of a call that the sink did not take (the others were).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// Its index among the frames sent.
    pub index: usize,
    /// Why.
    pub error: SendError,
}

/// How many spool entries one call may carry: one for the HTTP transports, up to 500 records
/// and 5 MiB (data and partition keys) for Kinesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    /// Most entries.
    pub max_entries: usize,
    /// Most bytes, counted by [`GroupLimits::cost`].
    pub max_bytes: usize,
    /// Bytes each frame costs beyond its length (the partition key).
    pub entry_overhead: usize,
}

impl GroupLimits {
    /// One frame a call.
    pub const ONE: Self = Self {
        max_entries: 1,
        max_bytes: usize::MAX,
        entry_overhead: 0,
    };

    /// What a frame of `len` bytes costs (an entry without a frame is not sent: nothing).
    pub fn cost(&self, len: usize) -> usize {
        if len == 0 {
            0
        } else {
            len.saturating_add(self.entry_overhead)
        }
    }

    /// Whether a group of `entries` entries costing `bytes` takes one more costing `next`.
    /// An empty group takes anything (a frame is never too large to be tried alone).
    pub fn admits(&self, entries: usize, bytes: usize, next: usize) -> bool {
        entries == 0 || (entries < self.max_entries && bytes.saturating_add(next) <= self.max_bytes)
    }

    /// Split frames of the given lengths, in order, into groups within the limits.
    pub fn plan(&self, lens: &[usize]) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let (mut start, mut bytes) = (0, 0);
        for (i, &len) in lens.iter().enumerate() {
            let cost = self.cost(len);
            if !self.admits(i - start, bytes, cost) {
                out.push(start..i);
                (start, bytes) = (i, 0);
            }
            bytes += cost;
        }
        if start < lens.len() {
            out.push(start..lens.len());
        }
        out
    }
}

/// The sink transport could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("sink.{key}: {message}")]
pub struct SetupError {
    /// The config key it is about.
    pub key: &'static str,
    /// What went wrong.
    pub message: String,
}

/// A transport as the shipper sees it: [`Sender`](super::Sender) in the agent, a scripted one
/// in the shipper's tests.
pub trait Transport {
    /// How many frames one call may carry.
    fn limits(&self) -> GroupLimits;

    /// Why this transport can never carry `frame`, checked before it is sent (a Kinesis
    /// record holds at most 1 MiB); `None` when it can.
    fn refuse(&self, frame: &[u8]) -> Option<String>;

    /// Send frames (non-empty, at most [`Transport::limits`] of them). `Ok` with the frames
    /// that were not taken (none: all were); `Err` when none was.
    fn send(
        &mut self,
        frames: &[Bytes],
    ) -> impl Future<Output = Result<Vec<Failed>, SendError>> + Send;

    /// After a 401: re-read the token file, or fetch fresh AWS credentials.
    fn reload_credentials(&mut self);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_hold_at_most_500_records_and_5_mib() {
        let kinesis = GroupLimits {
            max_entries: 500,
            max_bytes: 5 << 20,
            entry_overhead: 10,
        };
        // 1200 small frames: 500, 500, 200.
        let small = vec![100; 1200];
        assert_eq!(kinesis.plan(&small), [0..500, 500..1000, 1000..1200]);
        // Frames of 1 MiB less the key: five to a call, the sixth starts the next.
        let big = vec![(1 << 20) - 10; 12];
        assert_eq!(kinesis.plan(&big), [0..5, 5..10, 10..12]);
        // One byte more and only four fit.
        let bigger = vec![(1 << 20) - 9; 5];
        assert_eq!(kinesis.plan(&bigger), [0..4, 4..5]);
        // Entries without a frame cost nothing but still count.
        let mut mixed = vec![0; 499];
        mixed.extend([(1 << 20) - 10; 6]);
        assert_eq!(kinesis.plan(&mixed), [0..500, 500..505]);
        for lens in [small, big, bigger, mixed] {
            for g in kinesis.plan(&lens) {
                let bytes: usize = lens[g.clone()].iter().map(|&l| kinesis.cost(l)).sum();
                assert!(g.len() <= 500 && bytes <= 5 << 20, "{g:?}");
            }
        }
        assert_eq!(GroupLimits::ONE.plan(&[5, 0, 7]), [0..1, 1..2, 2..3]);
        assert!(GroupLimits::ONE.plan(&[]).is_empty());
    }
}
