//! Loading the AWS SDK's configuration (region and credentials chain: environment, profile,
//! web identity, container and EC2 instance role) for the AWS transports. Only called when the
//! sink is one of them: an `http` sink never loads it.

use super::clock::{SdkClock, SkewClock};
use super::transport::SetupError;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::sync::Arc;
use std::time::Duration;

/// The SDK configuration: `region` when known (else the chain's), requests signed with `clock`,
/// each attempt bounded by `timeout`, and no retries of the SDK's own (delivery retries, with
/// its own classification and backoff).
pub async fn load(
    region: Option<&str>,
    timeout: Duration,
    clock: &Arc<SkewClock>,
) -> Result<SdkConfig, SetupError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .time_source(SdkClock(clock.clone()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(timeout)
                .operation_timeout(timeout)
                .build(),
        );
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_owned()));
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(SetupError {
            key: "region",
            message: "no AWS region: set sink.region, AWS_REGION or a profile's region".into(),
        });
    }
    tracing::info!(
        region = %sdk.region().map(ToString::to_string).unwrap_or_default(),
        "AWS configuration loaded"
    );
    Ok(sdk)
}
