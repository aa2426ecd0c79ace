//! [`Sender`], the configured transport: the enum over the real transports that picks the one
//! the config names and implements [`Transport`] for the shipper. AWS clients and credentials
//! are only set up for the kinds that need them.

use super::clock::SkewClock;
use super::http::HttpSender;
use super::kinesis::KinesisSender;
use super::sigv4::SigV4Sender;
use super::transport::{Failed, GroupLimits, SendError, SetupError, Transport};
use crate::config::{SinkConfig, SinkTransport};
use bytes::Bytes;
use std::sync::Arc;

/// The configured transport.
pub enum Sender {
    /// `kind = "http"`: an `outpost-sink`, bearer token.
    Http(HttpSender),
    /// `kind = "lambda_url"`: a Lambda Function URL, SigV4.
    LambdaUrl(SigV4Sender),
    /// `kind = "kinesis"`: `PutRecords`.
    Kinesis(KinesisSender),
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
}

impl Transport for Sender {
    /// How many frames one call may carry.
    fn limits(&self) -> GroupLimits {
        match self {
            Self::Http(_) | Self::LambdaUrl(_) => GroupLimits::ONE,
            Self::Kinesis(k) => k.limits(),
        }
    }

    /// Why this transport can never carry `frame`, checked before it is sent (a Kinesis
    /// record holds at most 1 MiB); `None` when it can.
    fn refuse(&self, frame: &[u8]) -> Option<String> {
        match self {
            Self::Http(_) | Self::LambdaUrl(_) => None,
            Self::Kinesis(k) => k.refuse(frame),
        }
    }

    /// Send frames (non-empty, at most [`Transport::limits`] of them). `Ok` with the frames that
    /// were not taken (none: all were); `Err` when none was.
    async fn send(&mut self, frames: &[Bytes]) -> Result<Vec<Failed>, SendError> {
        // The HTTP transports carry one frame a request: send them in order, stop at the
        // first failure.
        for (i, frame) in frames.iter().enumerate() {
            let result = match self {
                Self::Http(s) => s.send(frame).await,
                Self::LambdaUrl(s) => s.send(frame).await,
                Self::Kinesis(k) => return k.send(frames).await,
            };
            if let Err(error) = result {
                return failed_from(i, error, frames.len());
            }
        }
        Ok(Vec::new())
    }

    /// After a 401: re-read the token file, or fetch fresh AWS credentials.
    fn reload_credentials(&mut self) {
        match self {
            Self::Http(s) => s.reload_token(),
            Self::LambdaUrl(s) => s.forget_credentials(),
            Self::Kinesis(_) => {}
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
