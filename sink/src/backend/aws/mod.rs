//! The AWS backends: log objects in S3 ([`s3`]), metric points and host summaries in DynamoDB
//! ([`dynamo`]), and CloudWatch custom metrics ([`cloudwatch`]) for alarms.
//!
//! [`AwsBackend`] implements the storage traits over the three. Its clients are built once per
//! process (a Lambda container reuses them across invocations). Settings come from the
//! environment ([`settings`]); credentials, region and endpoint from the standard AWS chain.
//! The scheduled health check (`crate::health::check`) runs over them with the configured
//! thresholds ([`AwsBackend::health_thresholds`]).

pub mod cloudwatch;
pub mod dynamo;
pub mod s3;
pub mod settings;

use outpost_sink_core::error::{BoxError, StorageError};
use outpost_sink_core::health::Thresholds;
use outpost_sink_core::key::LogObjectKey;
use outpost_sink_core::ports::{
    HostSummary, LogStore, MetricStore, MetricWrite, PointQuery, StoredPoint,
};

pub use cloudwatch::CloudWatch;
pub use cloudwatch::{CloudWatchMode, CloudWatchScope};
pub use dynamo::DynamoMetrics;
pub use s3::S3Logs;
pub use settings::{AwsSettings, Encryption};

/// Service names in errors.
pub mod service {
    /// Amazon S3.
    pub const S3: &str = "S3";
    /// Amazon DynamoDB.
    pub const DYNAMODB: &str = "DynamoDB";
    /// Amazon CloudWatch.
    pub const CLOUDWATCH: &str = "CloudWatch";
}

/// A failed call as a [`StorageError`], with the SDK error's whole chain kept as its source.
pub(crate) fn remote(
    service: &'static str,
    op: String,
    error: impl Into<BoxError>,
) -> StorageError {
    StorageError::Remote {
        service,
        op,
        source: error.into(),
    }
}

/// Load the SDK configuration from the standard chain: environment (`AWS_REGION`,
/// `AWS_ENDPOINT_URL`, credentials), profile files, then container or instance credentials.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Whether S3 must be addressed path-style: when its endpoint is overridden (a local server
/// such as moto serves no virtual-hosted bucket names).
pub fn endpoint_overridden(sdk: &aws_config::SdkConfig) -> bool {
    sdk.endpoint_url().is_some()
        || std::env::var("AWS_ENDPOINT_URL_S3").is_ok_and(|v| !v.trim().is_empty())
}

/// S3, DynamoDB and CloudWatch behind the storage traits.
#[derive(Debug)]
pub struct AwsBackend {
    logs: S3Logs,
    metrics: DynamoMetrics,
    cloudwatch: CloudWatch,
    health: Thresholds,
}

impl AwsBackend {
    /// Build the clients once from `sdk` and `settings`.
    pub fn new(sdk: &aws_config::SdkConfig, settings: &AwsSettings) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(endpoint_overridden(sdk))
            .build();
        let logs = S3Logs::new(
            aws_sdk_s3::Client::from_conf(s3_config),
            settings.bucket.clone(),
            settings.encryption.clone(),
        );
        let metrics = DynamoMetrics::new(
            aws_sdk_dynamodb::Client::new(sdk),
            settings.table.clone(),
            settings.retention_days,
        );
        let client = (settings.cloudwatch == CloudWatchMode::PutMetricData)
            .then(|| aws_sdk_cloudwatch::Client::new(sdk));
        let cloudwatch = CloudWatch::new(settings.cloudwatch, settings.namespace.clone(), client)
            .with_scope(settings.scope)
            .with_selection(settings.selection.clone());
        Self {
            logs,
            metrics,
            cloudwatch,
            health: settings.health,
        }
    }

    /// The S3 store (also for dead letters).
    pub fn logs(&self) -> &S3Logs {
        &self.logs
    }

    /// The DynamoDB store.
    pub fn metrics(&self) -> &DynamoMetrics {
        &self.metrics
    }

    /// The CloudWatch publisher.
    pub fn cloudwatch(&self) -> &CloudWatch {
        &self.cloudwatch
    }

    /// The health check's thresholds (`OUTPOST_SILENT_AFTER_MINUTES`, `OUTPOST_CPU_THRESHOLD`,
    /// `OUTPOST_MEMORY_THRESHOLD`).
    pub fn health_thresholds(&self) -> &Thresholds {
        &self.health
    }
}

impl LogStore for AwsBackend {
    async fn put_log_object(&self, key: &LogObjectKey, body: Vec<u8>) -> Result<(), StorageError> {
        self.logs.put_log_object(key, body).await
    }
}

impl MetricStore for AwsBackend {
    /// DynamoDB first (the record of every point; a failure fails the batch, which is retried
    /// and overwrites itself), then CloudWatch (derived, for alarms; see
    /// [`CloudWatch::publish`] for why its failures do not fail the batch).
    async fn put_metrics(&self, write: MetricWrite) -> Result<(), StorageError> {
        self.metrics.put(&write).await?;
        self.cloudwatch.publish(&write).await;
        Ok(())
    }

    async fn query_points(&self, query: PointQuery) -> Result<Vec<StoredPoint>, StorageError> {
        self.metrics.query_points(&query).await
    }

    async fn hosts(&self) -> Result<Vec<HostSummary>, StorageError> {
        self.metrics.hosts().await
    }
}
