//! The transports behind one interface: what a send returns, how many frames one call may
//! carry, and [`Sender`], which picks the transport the config names. AWS clients and
//! credentials are only set up for the kinds that need them.

use super::classify::Class;
use super::clock::SkewClock;
use super::http::HttpSender;
use super::kinesis::KinesisSender;
use super::sigv4::SigV4Sender;
use crate::config::{SinkConfig, SinkTransport};
use bytes::Bytes;
use std::ops::Range;
use std::sync::Arc;

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

/// The configured transport.
pub enum Sender {
    /// `kind = "http"`: an `outpost-sink`, bearer token.
    Http(HttpSender),
    /// `kind = "lambda_url"`: a Lambda Function URL, SigV4.
    LambdaUrl(SigV4Sender),
    /// `kind = "kinesis"`: `PutRecords`.
    Kinesis(KinesisSender),
    /// Tests: a scripted transport.
    #[cfg(test)]
    Mock(Mock),
}

/// A scripted transport for the shipper's tests: `answer` gets each call's frames.
#[cfg(test)]
pub struct Mock {
    /// Frames a call carries.
    pub limits: GroupLimits,
    /// Largest frame taken (larger ones are refused before sending).
    pub max_frame: usize,
    /// The answer to each call.
    #[allow(clippy::type_complexity)]
    pub answer: Box<dyn FnMut(&[Bytes]) -> Result<Vec<Failed>, SendError> + Send>,
}

impl Sender {
    /// Set up the transport `cfg` names; `agent_id` is the Kinesis partition key. Only the AWS
    /// kinds load the AWS SDK's configuration (region and credentials chain).
    pub async fn new(cfg: &SinkConfig, agent_id: &str) -> Result<Self, SetupError> {
        match &cfg.transport {
            SinkTransport::Http {
                batches_url,
                token,
                token_file,
                ..
            } => Ok(Self::Http(HttpSender::new(
                batches_url,
                token.as_ref().map(|t| t.expose().to_owned()),
                token_file.clone(),
                cfg.timeout,
            )?)),
            SinkTransport::LambdaUrl {
                batches_url,
                region,
                ..
            } => {
                let clock = Arc::new(SkewClock::default());
                let sdk = super::aws::load(region.as_deref(), cfg.timeout, &clock).await?;
                Ok(Self::LambdaUrl(SigV4Sender::from_sdk(
                    batches_url,
                    &sdk,
                    cfg.timeout,
                    clock,
                )?))
            }
            SinkTransport::Kinesis { stream, region } => {
                let clock = Arc::new(SkewClock::default());
                let sdk = super::aws::load(region.as_deref(), cfg.timeout, &clock).await?;
                Ok(Self::Kinesis(KinesisSender::new(
                    &sdk,
                    stream.clone(),
                    agent_id,
                    clock,
                )?))
            }
        }
    }

    /// How many frames one call may carry.
    pub fn limits(&self) -> GroupLimits {
        match self {
            Self::Http(_) | Self::LambdaUrl(_) => GroupLimits::ONE,
            Self::Kinesis(k) => k.limits(),
            #[cfg(test)]
            Self::Mock(m) => m.limits,
        }
    }

    /// Why this transport can never carry `frame`, checked before it is sent (a Kinesis
    /// record holds at most 1 MiB); `None` when it can.
    pub fn refuse(&self, frame: &[u8]) -> Option<String> {
        match self {
            Self::Http(_) | Self::LambdaUrl(_) => None,
            Self::Kinesis(k) => k.refuse(frame),
            #[cfg(test)]
            Self::Mock(m) => (frame.len() > m.max_frame).then(|| "too large".to_owned()),
        }
    }

    /// Send frames (non-empty, at most [`Sender::limits`] of them). `Ok` with the frames that
    /// were not taken (none: all were); `Err` when none was.
    pub async fn send(&mut self, frames: &[Bytes]) -> Result<Vec<Failed>, SendError> {
        // The HTTP transports carry one frame a request: send them in order, stop at the
        // first failure.
        for (i, frame) in frames.iter().enumerate() {
            let result = match self {
                Self::Http(s) => s.send(frame).await,
                Self::LambdaUrl(s) => s.send(frame).await,
                Self::Kinesis(k) => return k.send(frames).await,
                #[cfg(test)]
                Self::Mock(m) => return (m.answer)(frames),
            };
            if let Err(error) = result {
                return failed_from(i, error, frames.len());
            }
        }
        Ok(Vec::new())
    }

    /// After a 401: re-read the token file, or fetch fresh AWS credentials.
    pub fn reload_credentials(&mut self) {
        match self {
            Self::Http(s) => s.reload_token(),
            Self::LambdaUrl(s) => s.forget_credentials(),
            Self::Kinesis(_) => {}
            #[cfg(test)]
            Self::Mock(_) => {}
        }
    }
}

/// Frames sent one a request, in order, that stopped at frame `i` failing with `error`: it and
/// the frames after it (not sent) failed; when it was the first, the whole send did.
fn failed_from(i: usize, error: SendError, n: usize) -> Result<Vec<Failed>, SendError> {
    if i == 0 {
        return Err(error);
    }
    let mut failed = vec![Failed { index: i, error }];
    failed.extend((i + 1..n).map(|index| Failed {
        index,
        error: SendError::Retryable("not sent: an earlier frame failed".to_owned()),
    }));
    Ok(failed)
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

    #[test]
    fn one_by_one_stops_at_the_first_failure() {
        let failed = failed_from(2, SendError::Retryable("down".into()), 4).unwrap();
        assert_eq!(
            failed.iter().map(|f| f.index).collect::<Vec<_>>(),
            [2, 3],
            "{failed:?}"
        );
        assert_eq!(failed[0].error, SendError::Retryable("down".into()));
        let first = failed_from(0, SendError::Misconfigured("403".into()), 4);
        assert_eq!(first, Err(SendError::Misconfigured("403".into())));
    }
}
