//! The adapters that implement the core's storage ports (`outpost_sink_core::ports`):
//!
//! - [`local`]: `outpost-sink serve`'s default: log objects as files under `DIR/logs`, metrics
//!   in SQLite (`DIR/metrics.db`).
//! - [`aws`]: log objects in S3, metric points and host items in DynamoDB, selected series to
//!   CloudWatch; the CloudWatch alarm definitions of the rules file and their `PutMetricAlarm`.

pub mod aws;
pub mod local;
