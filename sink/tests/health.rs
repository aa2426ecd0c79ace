//! The scheduled health check against moto (the local AWS API server): three hosts ingested
//! through the AWS backend (one whose last batch is old, one hot), the check run in
//! `PutMetricData` mode, and its `pipeline.*` metrics read back with `GetMetricStatistics`.
//! Skipped when `moto_server` is missing, except under `CI=true`.

// clippy.toml's allow-unwrap-in-tests covers #[test] functions, not these helpers.
#![allow(clippy::unwrap_used)]

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::Statistic;
use outpost_sink::backend::aws::AwsBackend;
use outpost_sink::backend::aws::settings::{AwsSettings, Encryption};
use outpost_sink::backend::aws::{CloudWatchMode, CloudWatchScope};
use outpost_sink::health;
use outpost_sink_core::health::{self as report, HotHost, Thresholds};
use outpost_sink_core::ports::{MetricStore, MetricWrite, PointRow};
use outpost_testkit::Moto;

const BUCKET: &str = "outpost-logs";
const TABLE: &str = "outpost-metrics";
const NAMESPACE: &str = "OutpostHealthTest";
const MINUTE_MS: i64 = 60_000;

fn settings() -> AwsSettings {
    AwsSettings {
        bucket: BUCKET.into(),
        table: TABLE.into(),
        namespace: NAMESPACE.into(),
        cloudwatch: CloudWatchMode::PutMetricData,
        scope: CloudWatchScope::PerHost,
        selection: Default::default(),
        retention_days: 30,
        encryption: Encryption::S3Managed,
        health: Thresholds::default(),
    }
}

fn percent(name: &str, dims: &str, ts_ms: i64, value: f64) -> PointRow {
    PointRow {
        name: name.into(),
        dimensions: dims.into(),
        ts_ms,
        value: Some(value),
        unit: "Percent",
    }
}

/// One batch of `host` received at `received_ms` with its CPU (total) and memory.
fn batch(host: &str, received_ms: i64, cpu: f64, memory: f64) -> MetricWrite {
    MetricWrite {
        host: host.into(),
        agent_id: format!("agent-{host}"),
        agent_version: "0.1.0".into(),
        seq: 1,
        received_ms,
        points: vec![
            percent(
                "cpu.utilization",
                r#"{"cpu":"total"}"#,
                received_ms - 1_000,
                cpu,
            ),
            percent(
                "cpu.utilization",
                r#"{"cpu":"0"}"#,
                received_ms - 1_000,
                100.0,
            ),
            percent("memory.utilization", "{}", received_ms - 1_000, memory),
        ],
    }
}

/// The Sum of dimensionless `name` in `now_ms`'s minute (one-minute period).
async fn minute_sum(client: &Client, name: &str, now_ms: i64) -> Option<f64> {
    let minute = now_ms / MINUTE_MS * MINUTE_MS;
    let out = client
        .get_metric_statistics()
        .namespace(NAMESPACE)
        .metric_name(name)
        .start_time(DateTime::from_millis(minute))
        .end_time(DateTime::from_millis(minute + MINUTE_MS))
        .period(60)
        .statistics(Statistic::Sum)
        .statistics(Statistic::SampleCount)
        .send()
        .await
        .expect("GetMetricStatistics");
    let points = out.datapoints();
    assert!(points.len() <= 1, "{points:?}");
    points.first().map(|p| {
        assert_eq!(p.sample_count(), Some(1.0), "{name}: one run, one value");
        p.sum().unwrap()
    })
}

#[tokio::test]
async fn silent_and_hot_hosts_are_published_as_pipeline_metrics() {
    let Some(moto) = Moto::start() else { return };
    let sdk = moto.sdk_config().await;
    outpost_testkit::create_sink_resources(&sdk, BUCKET, TABLE).await;
    let backend = AwsBackend::new(&sdk, &settings());
    let now = outpost_sink_core::timestamp::now_ms();

    // web-1 is fine; web-2 is hot (CPU and memory); db-1 sent its last batch 10 minutes ago,
    // with a CPU that was hot then: it is silent, not hot.
    for write in [
        batch("web-1", now - 20_000, 42.0, 50.0),
        batch("web-2", now - 10_000, 95.5, 91.0),
        batch("db-1", now - 10 * MINUTE_MS, 99.0, 99.0),
    ] {
        backend.put_metrics(write).await.unwrap();
    }
    assert_eq!(backend.cloudwatch().failures(), 0);

    let report = health::check(&backend, now).await.unwrap();
    assert_eq!(report.hosts, 3);
    assert_eq!(report.hosts_reporting, 2);
    let silent: Vec<(&str, i64)> = report
        .silent_hosts
        .iter()
        .map(|s| (s.host.as_str(), s.age_ms))
        .collect();
    assert_eq!(silent, [("db-1", 10 * MINUTE_MS)]);
    assert_eq!(
        report.hosts_over_cpu,
        [HotHost {
            host: "web-2".into(),
            value: 95.5
        }]
    );
    assert_eq!(
        report.hosts_over_memory,
        [HotHost {
            host: "web-2".into(),
            value: 91.0
        }]
    );
    assert_eq!(backend.cloudwatch().failures(), 0);

    let client = Client::new(&sdk);
    for (name, expected) in [
        (report::METRIC_HOSTS_REPORTING, 2.0),
        (report::METRIC_SILENT_HOSTS, 1.0),
        (report::METRIC_HOSTS_OVER_CPU, 1.0),
        (report::METRIC_HOSTS_OVER_MEMORY, 1.0),
        (report::METRIC_HEALTH_CHECKS, 1.0),
    ] {
        assert_eq!(
            minute_sum(&client, name, now).await,
            Some(expected),
            "{name}"
        );
    }

    // Other thresholds through the environment's parser: with an 11-minute window db-1
    // reports again (and its 10-minute-old values are fresh), and memory is over 49.5 %.
    let mut other = settings();
    other.health = AwsSettings::from_lookup(|name| match name {
        "OUTPOST_BUCKET" => Some(BUCKET.into()),
        "OUTPOST_TABLE" => Some(TABLE.into()),
        "OUTPOST_MEMORY_THRESHOLD" => Some("49.5".into()),
        "OUTPOST_SILENT_AFTER_MINUTES" => Some("11".into()),
        _ => None,
    })
    .unwrap()
    .health;
    let other = AwsBackend::new(&sdk, &other);
    let report = health::check(&other, now).await.unwrap();
    assert_eq!(report.hosts_reporting, 3);
    assert!(report.silent_hosts.is_empty());
    let names = |hot: &[HotHost]| -> Vec<String> { hot.iter().map(|h| h.host.clone()).collect() };
    assert_eq!(names(&report.hosts_over_cpu), ["db-1", "web-2"]);
    assert_eq!(names(&report.hosts_over_memory), ["db-1", "web-1", "web-2"]);
}
