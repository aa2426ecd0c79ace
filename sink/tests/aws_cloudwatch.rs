//! `CloudWatch::publish` in `PutMetricData` mode against moto (the local AWS API server): the
//! statistic sets it sends read back through the CloudWatch API, more than 1000 series split
//! into several calls, the fleet scope (no `Host` dimension, the dimensionless totals), and a
//! selection of series (`OUTPOST_CLOUDWATCH_METRICS`).
//! Skipped when `moto_server` is missing, except under `CI=true`.

// clippy.toml's allow-unwrap-in-tests covers #[test] functions, not these helpers.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Datapoint, Dimension, Statistic};
use outpost_sink::backend::aws::cloudwatch::MetricSelection;
use outpost_sink::backend::aws::{CloudWatch, CloudWatchMode, CloudWatchScope};
use outpost_sink_core::ports::{MetricWrite, PointRow};
use outpost_testkit::Moto;

const NAMESPACE: &str = "OutpostTest";
const MINUTE_MS: i64 = 60_000;

/// The current minute, unix ms: CloudWatch (and moto) refuse data older than two weeks.
fn this_minute_ms() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let now_ms = i64::try_from(now.as_millis()).unwrap();
    now_ms / MINUTE_MS * MINUTE_MS
}

fn point(name: &str, dims: &str, ts_ms: i64, value: Option<f64>, unit: &'static str) -> PointRow {
    PointRow {
        name: name.into(),
        dimensions: dims.into(),
        ts_ms,
        value,
        unit,
    }
}

fn write(received_ms: i64, points: Vec<PointRow>) -> MetricWrite {
    MetricWrite {
        host: "web-1".into(),
        agent_id: "agent-1".into(),
        agent_version: "0.1.0".into(),
        seq: 1,
        received_ms,
        points,
    }
}

async fn publisher(moto: &Moto) -> (CloudWatch, Client) {
    let sdk = moto.sdk_config().await;
    let client = Client::new(&sdk);
    let cloudwatch = CloudWatch::new(
        CloudWatchMode::PutMetricData,
        NAMESPACE.into(),
        Some(client.clone()),
    );
    (cloudwatch, client)
}

/// Every metric of the namespace as (name, sorted `name=value` dimensions), through all pages.
async fn list_metrics(client: &Client) -> Vec<(String, Vec<String>)> {
    let pages = client
        .list_metrics()
        .namespace(NAMESPACE)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .expect("ListMetrics");
    pages
        .iter()
        .flat_map(|page| page.metrics())
        .map(|m| {
            let mut dims: Vec<String> = m
                .dimensions()
                .iter()
                .map(|d| format!("{}={}", d.name().unwrap(), d.value().unwrap()))
                .collect();
            dims.sort();
            (m.metric_name().unwrap().to_owned(), dims)
        })
        .collect()
}

fn dimension(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

/// The datapoints of one series over `[start_ms, start_ms + minutes)`, one-minute periods.
async fn statistics(
    client: &Client,
    name: &str,
    dims: &[(&str, &str)],
    start_ms: i64,
    minutes: i64,
) -> Vec<Datapoint> {
    let out = client
        .get_metric_statistics()
        .namespace(NAMESPACE)
        .metric_name(name)
        .set_dimensions(Some(dims.iter().map(|(k, v)| dimension(k, v)).collect()))
        .start_time(DateTime::from_millis(start_ms))
        .end_time(DateTime::from_millis(start_ms + minutes * MINUTE_MS))
        .period(60)
        .statistics(Statistic::SampleCount)
        .statistics(Statistic::Sum)
        .statistics(Statistic::Minimum)
        .statistics(Statistic::Maximum)
        .send()
        .await
        .expect("GetMetricStatistics");
    let mut points = out.datapoints().to_vec();
    points.sort_by_key(|p| p.timestamp().map(|t| t.to_millis().unwrap()));
    points
}

fn stats(p: &Datapoint) -> (i64, f64, f64, f64, f64) {
    (
        p.timestamp().unwrap().to_millis().unwrap(),
        p.sample_count().unwrap(),
        p.sum().unwrap(),
        p.minimum().unwrap(),
        p.maximum().unwrap(),
    )
}

#[tokio::test]
async fn statistic_sets_read_back() {
    let Some(moto) = Moto::start() else { return };
    let (cloudwatch, client) = publisher(&moto).await;
    let now = this_minute_ms();
    let (m0, m1) = (now - 2 * MINUTE_MS, now - MINUTE_MS);
    let root = r#"{"mount":"/"}"#;
    let var = r#"{"mount":"/var"}"#;
    cloudwatch
        .publish(&write(
            now,
            vec![
                point("disk.used", root, m0 + 1_000, Some(10.0), "Percent"),
                point("disk.used", var, m0 + 2_000, Some(5.0), "Percent"),
                point("disk.used", root, m0 + 30_000, Some(30.0), "Percent"),
                point("disk.used", root, m0 + 59_999, Some(20.0), "Percent"),
                point("disk.used", root, m1, Some(40.0), "Percent"),
                point("disk.used", var, m1 + 10_000, Some(9.0), "Percent"),
                point("disk.used", var, m1 + 20_000, Some(7.0), "Percent"),
                point("disk.used", var, m1 + 30_000, None, "Percent"),
                point("processes", "{}", m1 + 5_000, Some(120.0), "Count"),
            ],
        ))
        .await;
    assert_eq!(cloudwatch.failures(), 0);
    assert_eq!(cloudwatch.skipped_points(), 1, "the NaN point");

    // moto 5.2.1 quirk: ListMetrics lists a series with two or more dimensions once per datum
    // (its `are_dimensions_same` compares every dimension with every other one), so the two
    // minutes of each `disk.used` series come back twice; CloudWatch lists a metric once.
    // Compare distinct metrics.
    let metrics: BTreeSet<_> = list_metrics(&client).await.into_iter().collect();
    let expected: BTreeSet<(String, Vec<String>)> = BTreeSet::from([
        (
            "disk.used".into(),
            vec!["Host=web-1".into(), "mount=/".into()],
        ),
        (
            "disk.used".into(),
            vec!["Host=web-1".into(), "mount=/var".into()],
        ),
        ("processes".into(), vec!["Host=web-1".into()]),
    ]);
    assert_eq!(metrics, expected);

    let root_dims = [("Host", "web-1"), ("mount", "/")];
    let points = statistics(&client, "disk.used", &root_dims, m0, 2).await;
    let got: Vec<_> = points.iter().map(stats).collect();
    assert_eq!(
        got,
        [(m0, 3.0, 60.0, 10.0, 30.0), (m1, 1.0, 40.0, 40.0, 40.0)]
    );

    let var_dims = [("Host", "web-1"), ("mount", "/var")];
    let points = statistics(&client, "disk.used", &var_dims, m1, 1).await;
    let got: Vec<_> = points.iter().map(stats).collect();
    assert_eq!(got, [(m1, 2.0, 16.0, 7.0, 9.0)]);

    let points = statistics(&client, "processes", &[("Host", "web-1")], m0, 2).await;
    let got: Vec<_> = points.iter().map(stats).collect();
    assert_eq!(got, [(m1, 1.0, 120.0, 120.0, 120.0)]);
}

#[tokio::test]
async fn more_than_1000_series_split_into_calls() {
    let Some(moto) = Moto::start() else { return };
    let (cloudwatch, client) = publisher(&moto).await;
    let now = this_minute_ms();
    let points = (0..1100)
        .map(|i| {
            point(
                &format!("series.{i:04}"),
                "{}",
                now - MINUTE_MS,
                Some(f64::from(i)),
                "Count",
            )
        })
        .collect();
    cloudwatch.publish(&write(now, points)).await;
    assert_eq!(cloudwatch.failures(), 0);
    assert_eq!(cloudwatch.skipped_points(), 0);

    // moto pages ListMetrics by 500: three pages.
    let metrics = list_metrics(&client).await;
    assert_eq!(metrics.len(), 1100);
    let names: BTreeSet<_> = metrics.iter().map(|(name, _)| name.clone()).collect();
    assert_eq!(names.len(), 1100);
    assert!(names.contains("series.0000") && names.contains("series.1099"));

    // The last series went in the second call.
    let points = statistics(
        &client,
        "series.1099",
        &[("Host", "web-1")],
        now - MINUTE_MS,
        1,
    )
    .await;
    let got: Vec<_> = points.iter().map(stats).collect();
    assert_eq!(got, [(now - MINUTE_MS, 1.0, 1099.0, 1099.0, 1099.0)]);
}

#[tokio::test]
async fn fleet_scope_publishes_without_host_and_with_totals() {
    let Some(moto) = Moto::start() else { return };
    let (cloudwatch, client) = publisher(&moto).await;
    let cloudwatch = cloudwatch.with_scope(CloudWatchScope::Fleet);
    let now = this_minute_ms();
    let m = now - MINUTE_MS;
    for (host, cpu, lines) in [("web-1", 20.0, 10.0), ("web-2", 90.0, 4.0)] {
        let mut w = write(
            now,
            vec![
                point(
                    "cpu.utilization",
                    r#"{"cpu":"total"}"#,
                    m + 1_000,
                    Some(cpu),
                    "Percent",
                ),
                point(
                    "log.lines",
                    r#"{"service":"api"}"#,
                    m + 1_000,
                    Some(lines),
                    "Count",
                ),
                point(
                    "log.lines",
                    r#"{"service":"db"}"#,
                    m + 1_000,
                    Some(1.0),
                    "Count",
                ),
                point(
                    "log.error_lines",
                    r#"{"service":"api"}"#,
                    m + 1_000,
                    Some(2.0),
                    "Count",
                ),
                point("agent.heartbeat", "{}", m + 1_000, Some(1.0), "Count"),
            ],
        );
        w.host = host.into();
        cloudwatch.publish(&w).await;
    }
    assert_eq!(cloudwatch.failures(), 0);

    // No series carries `Host`; the totals exist without any dimension (moto 5.2 lists a
    // dimensionless series once per datum: compare distinct series).
    let metrics: BTreeSet<_> = list_metrics(&client).await.into_iter().collect();
    let series = |name: &str, dims: &[&str]| -> (String, Vec<String>) {
        (name.into(), dims.iter().map(|d| (*d).to_owned()).collect())
    };
    assert_eq!(
        metrics,
        BTreeSet::from([
            series("cpu.utilization", &["cpu=total"]),
            series("log.lines", &["service=api"]),
            series("log.lines", &["service=db"]),
            series("log.error_lines", &["service=api"]),
            series("log.lines", &[]),
            series("log.error_lines", &[]),
            series("agent.heartbeat", &[]),
        ])
    );

    // Both hosts' values in one series: the minute's statistics are the fleet's.
    let points = statistics(&client, "cpu.utilization", &[("cpu", "total")], m, 1).await;
    let got: Vec<_> = points.iter().map(stats).collect();
    assert_eq!(got, [(m, 2.0, 110.0, 20.0, 90.0)]);
    let points = statistics(&client, "log.lines", &[("service", "api")], m, 1).await;
    let got: Vec<_> = points.iter().map(stats).collect();
    assert_eq!(got, [(m, 2.0, 14.0, 4.0, 10.0)]);
    // moto's GetMetricStatistics does not filter when no dimension is given (CloudWatch
    // matches the dimensionless series exactly), so the heartbeat, which has only its total,
    // is the one read back without dimensions: one value per host.
    let points = statistics(&client, "agent.heartbeat", &[], m, 1).await;
    let got: Vec<_> = points.iter().map(stats).collect();
    assert_eq!(got, [(m, 2.0, 2.0, 1.0, 1.0)]);
}

#[tokio::test]
async fn a_selection_publishes_only_its_series_and_the_totals() {
    let Some(moto) = Moto::start() else { return };
    let (cloudwatch, client) = publisher(&moto).await;
    let selection =
        MetricSelection::parse("cpu.utilization{cpu=total},memory.utilization").unwrap();
    let cloudwatch = cloudwatch.with_selection(selection);
    let now = this_minute_ms();
    let m = now - MINUTE_MS;
    for host in ["web-1", "web-2"] {
        let mut w = write(
            now,
            vec![
                point(
                    "cpu.utilization",
                    r#"{"cpu":"total"}"#,
                    m,
                    Some(20.0),
                    "Percent",
                ),
                point(
                    "cpu.utilization",
                    r#"{"cpu":"0"}"#,
                    m,
                    Some(30.0),
                    "Percent",
                ),
                point("memory.utilization", "{}", m, Some(40.0), "Percent"),
                point("memory.used_bytes", "{}", m, Some(1e9), "Bytes"),
                point(
                    "disk.utilization",
                    r#"{"mount":"/"}"#,
                    m,
                    Some(50.0),
                    "Percent",
                ),
                point("log.lines", r#"{"service":"api"}"#, m, Some(10.0), "Count"),
                point(
                    "log.error_lines",
                    r#"{"service":"api"}"#,
                    m,
                    Some(1.0),
                    "Count",
                ),
                point("agent.heartbeat", "{}", m, Some(1.0), "Count"),
                point("agent.lines_read", "{}", m, Some(10.0), "Count"),
            ],
        );
        w.host = host.into();
        cloudwatch.publish(&w).await;
    }
    cloudwatch
        .publish_values(&[("pipeline.health_checks", 1.0)], now)
        .await;
    assert_eq!(cloudwatch.failures(), 0);
    assert_eq!(cloudwatch.skipped_points(), 0);
    assert_eq!(cloudwatch.unselected_points(), 2 * 7);

    let metrics: BTreeSet<_> = list_metrics(&client).await.into_iter().collect();
    let series = |name: &str, dims: &[&str]| -> (String, Vec<String>) {
        (name.into(), dims.iter().map(|d| (*d).to_owned()).collect())
    };
    assert_eq!(
        metrics,
        BTreeSet::from([
            series("cpu.utilization", &["Host=web-1", "cpu=total"]),
            series("cpu.utilization", &["Host=web-2", "cpu=total"]),
            series("memory.utilization", &["Host=web-1"]),
            series("memory.utilization", &["Host=web-2"]),
            series("log.lines", &[]),
            series("log.error_lines", &[]),
            series("agent.heartbeat", &[]),
            series("pipeline.health_checks", &[]),
        ])
    );
    // The totals still count the unselected series' points: both hosts' lines.
    let points = statistics(&client, "log.lines", &[], m, 1).await;
    let got: Vec<_> = points.iter().map(stats).collect();
    assert_eq!(got, [(m, 2.0, 20.0, 10.0, 10.0)]);
}
