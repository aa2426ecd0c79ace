//! The scheduled health check: reads what the sink knows of every host (the `#hosts` items in
//! DynamoDB, or any [`MetricStore`]), finds the silent hosts and the hosts over CPU or memory
//! (`outpost_sink_core::health::evaluate`, pure), logs them by name at WARN, and publishes the `pipeline.*` metrics
//! through the CloudWatch publisher ([`run`]).
//!
//! The Lambda function runs it on an EventBridge schedule (see `front::lambda::health`); CloudWatch
//! alarms on `pipeline.silent_hosts` and on a missing `pipeline.health_checks` close the loop.

use outpost_sink_core::error::StorageError;
use outpost_sink_core::health::{HealthReport, Thresholds, evaluate};
use outpost_sink_core::ports::MetricStore;
use tracing::{info, warn};

use crate::backend::aws::{AwsBackend, CloudWatch};

/// Run the check over an AWS backend at `now_ms` with its configured thresholds: the `#hosts`
/// items of DynamoDB in, `pipeline.*` metrics out through its CloudWatch publisher ([`run`]).
pub async fn check(backend: &AwsBackend, now_ms: i64) -> Result<HealthReport, StorageError> {
    run(
        backend,
        backend.cloudwatch(),
        backend.health_thresholds(),
        now_ms,
    )
    .await
}

/// Run the check at `now_ms`: read the hosts from `store`, evaluate them, log the silent and
/// hot hosts (WARN, one line each, naming the host), and publish the report's metrics through
/// `cloudwatch` (which never fails; see [`CloudWatch::publish`]). Fails only when the hosts
/// cannot be read; then nothing is published, and an alarm on a missing
/// `pipeline.health_checks` notices.
pub async fn run(
    store: &impl MetricStore,
    cloudwatch: &CloudWatch,
    thresholds: &Thresholds,
    now_ms: i64,
) -> Result<HealthReport, StorageError> {
    let hosts = store.hosts().await?;
    let report = evaluate(&hosts, now_ms, thresholds);
    log(&report, thresholds);
    cloudwatch.publish_values(&report.metrics(), now_ms).await;
    Ok(report)
}

fn log(report: &HealthReport, thresholds: &Thresholds) {
    for silent in &report.silent_hosts {
        warn!(
            host = %silent.host,
            age_s = silent.age_ms / 1000,
            silent_after_minutes = thresholds.silent_after_minutes,
            "host is silent: no batch within the window"
        );
    }
    for hot in &report.hosts_over_cpu {
        warn!(
            host = %hot.host,
            cpu_percent = hot.value,
            threshold = thresholds.cpu_percent,
            "host over the CPU threshold"
        );
    }
    for hot in &report.hosts_over_memory {
        warn!(
            host = %hot.host,
            memory_percent = hot.value,
            threshold = thresholds.memory_percent,
            "host over the memory threshold"
        );
    }
    info!(
        hosts = report.hosts,
        hosts_reporting = report.hosts_reporting,
        silent_hosts = report.silent_hosts.len(),
        hosts_over_cpu = report.hosts_over_cpu.len(),
        hosts_over_memory = report.hosts_over_memory.len(),
        "health check"
    );
}
