//! `outpost-sink cloudwatch-alarms` (the built binary) against moto (the local AWS API server):
//! the rules of `sink/rules.example.toml` plus a fleet and another per-host rule become
//! CloudWatch alarms, read back with DescribeAlarms field by field (the error-rate rule, which
//! has a denominator, as a metric-math alarm with its `Metrics`); a second run leaves the
//! same alarms; `--dry-run` creates none; `--hosts-from-table` reads the sink's DynamoDB table;
//! a bad period fails before any call. Skipped when `moto_server` is missing, except under
//! `CI=true`.

// clippy.toml's allow-unwrap-in-tests covers #[test] functions, not these helpers.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{MetricAlarm, MetricDataQuery};
use outpost_sink::backend::aws::dynamo::DynamoMetrics;
use outpost_sink_core::ports::{MetricWrite, PointRow};
use outpost_testkit::Moto;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_outpost-sink");
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:outpost-alarms";
const TABLE: &str = "outpost-metrics";

/// Two more rules after the shipped example's four per-host ones: a fleet rule and a per-host
/// rule with other statistic, comparison, period and missing-data values.
const EXTRA_RULES: &str = r#"
[[rule]]
name = "fleet-errors"
metric = "log.error_lines"
statistic = "sum"
period = "5m"
comparison = ">="
threshold = 100.0
datapoints_to_alarm = 1
evaluation_periods = 2
missing_data = "not_breaching"
scope = "fleet"

[[rule]]
name = "disk-full"
metric = "disk.utilization"
dimensions = { mount = "/" }
statistic = "max"
period = "10s"
comparison = "<="
threshold = 0.5
datapoints_to_alarm = 2
evaluation_periods = 3
missing_data = "ignore"
scope = "per_host"
"#;

/// The rules file of these tests, in `dir`.
fn rules_file(dir: &Path) -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules.example.toml");
    let text = std::fs::read_to_string(example).unwrap() + EXTRA_RULES;
    let path = dir.join("rules.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(moto: Option<&Moto>, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .arg("cloudwatch-alarms")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    if let Some(moto) = moto {
        command.envs(moto.env());
    }
    command.envs(env.iter().copied()).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Every alarm in the account, through all pages, by name.
async fn describe_alarms(client: &Client) -> Vec<MetricAlarm> {
    let pages = client
        .describe_alarms()
        .into_paginator()
        .send()
        .try_collect()
        .await
        .expect("DescribeAlarms");
    let mut alarms: Vec<MetricAlarm> = pages
        .iter()
        .flat_map(|page| page.metric_alarms().iter().cloned())
        .collect();
    alarms.sort_by(|a, b| a.alarm_name().cmp(&b.alarm_name()));
    alarms
}

/// What an alarm should be, written out by hand (not computed by the code under test).
struct Expected {
    name: &'static str,
    metric: &'static str,
    dimensions: &'static [(&'static str, &'static str)],
    statistic: &'static str,
    period: i32,
    evaluation_periods: i32,
    datapoints_to_alarm: i32,
    threshold: f64,
    comparison: &'static str,
    missing: &'static str,
}

const fn expected(
    name: &'static str,
    metric: &'static str,
    dimensions: &'static [(&'static str, &'static str)],
    (statistic, period, evaluation_periods, datapoints_to_alarm): (&'static str, i32, i32, i32),
    (comparison, threshold, missing): (&'static str, f64, &'static str),
) -> Expected {
    Expected {
        name,
        metric,
        dimensions,
        statistic,
        period,
        evaluation_periods,
        datapoints_to_alarm,
        threshold,
        comparison,
        missing,
    }
}

const CPU: (&str, i32, i32, i32) = ("Average", 60, 5, 3);
const CPU_CMP: (&str, f64, &str) = ("GreaterThanThreshold", 80.0, "missing");
const MEMORY_CMP: (&str, f64, &str) = ("GreaterThanThreshold", 85.0, "missing");
const SILENT: (&str, i32, i32, i32) = ("SampleCount", 60, 5, 5);
const SILENT_CMP: (&str, f64, &str) = ("LessThanThreshold", 1.0, "breaching");
const DISK: (&str, i32, i32, i32) = ("Maximum", 10, 3, 2);
const DISK_CMP: (&str, f64, &str) = ("LessThanOrEqualToThreshold", 0.5, "ignore");

/// By alarm name.
const EXPECTED: [Expected; 9] = [
    expected(
        "outpost-cpu-high-web-1",
        "cpu.utilization",
        &[("Host", "web-1"), ("cpu", "total")],
        CPU,
        CPU_CMP,
    ),
    expected(
        "outpost-cpu-high-web-2",
        "cpu.utilization",
        &[("Host", "web-2"), ("cpu", "total")],
        CPU,
        CPU_CMP,
    ),
    expected(
        "outpost-disk-full-web-1",
        "disk.utilization",
        &[("Host", "web-1"), ("mount", "/")],
        DISK,
        DISK_CMP,
    ),
    expected(
        "outpost-disk-full-web-2",
        "disk.utilization",
        &[("Host", "web-2"), ("mount", "/")],
        DISK,
        DISK_CMP,
    ),
    expected(
        "outpost-fleet-errors",
        "log.error_lines",
        &[],
        ("Sum", 300, 2, 1),
        ("GreaterThanOrEqualToThreshold", 100.0, "notBreaching"),
    ),
    expected(
        "outpost-host-silent-web-1",
        "cpu.utilization",
        &[("Host", "web-1"), ("cpu", "total")],
        SILENT,
        SILENT_CMP,
    ),
    expected(
        "outpost-host-silent-web-2",
        "cpu.utilization",
        &[("Host", "web-2"), ("cpu", "total")],
        SILENT,
        SILENT_CMP,
    ),
    expected(
        "outpost-memory-high-web-1",
        "memory.utilization",
        &[("Host", "web-1")],
        ("Average", 60, 5, 3),
        MEMORY_CMP,
    ),
    expected(
        "outpost-memory-high-web-2",
        "memory.utilization",
        &[("Host", "web-2")],
        ("Average", 60, 5, 3),
        MEMORY_CMP,
    ),
];

/// The metric-math alarms of the example's `error-rate-high` rule, by name, with their host.
const RATE_ALARMS: [(&str, &str); 2] = [
    ("outpost-error-rate-high-web-1", "web-1"),
    ("outpost-error-rate-high-web-2", "web-2"),
];

/// A `Metrics` element: id, metric name, dimensions (sorted), period, stat, expression, label,
/// return data.
type Query<'a> = (
    &'a str,
    Option<&'a str>,
    Vec<(&'a str, &'a str)>,
    Option<i32>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<bool>,
);

fn query(q: &MetricDataQuery) -> Query<'_> {
    let stat = q.metric_stat();
    let metric = stat.and_then(|s| s.metric());
    if let Some(metric) = metric {
        assert_eq!(metric.namespace(), Some("Outpost"), "{q:?}");
    }
    let mut dims: Vec<(&str, &str)> = metric
        .map(|m| m.dimensions())
        .unwrap_or_default()
        .iter()
        .map(|d| (d.name().unwrap(), d.value().unwrap()))
        .collect();
    dims.sort_unstable();
    (
        q.id().unwrap(),
        metric.and_then(|m| m.metric_name()),
        dims,
        stat.and_then(|s| s.period()),
        stat.and_then(|s| s.stat()),
        q.expression(),
        q.label(),
        q.return_data(),
    )
}

/// A metric-math alarm of `error-rate-high` for `host`, as DescribeAlarms returns it: moto
/// keeps and returns the `Metrics` of PutMetricAlarm (ids, metric stats, expression, label,
/// return data), and no MetricName, Statistic or Period.
fn check_rate(alarm: &MetricAlarm, host: &str) {
    let name = alarm.alarm_name().unwrap();
    assert_eq!(alarm.metric_name(), None, "{name}");
    assert_eq!(alarm.namespace(), None, "{name}");
    assert_eq!(alarm.statistic(), None, "{name}");
    assert_eq!(alarm.period(), None, "{name}");
    assert!(alarm.dimensions().is_empty(), "{name}");
    let dims = vec![("Host", host), ("service", "app")];
    let got: Vec<Query<'_>> = alarm.metrics().iter().map(query).collect();
    let stat = |id, metric| {
        (
            id,
            Some(metric),
            dims.clone(),
            Some(60),
            Some("Sum"),
            None,
            None,
            Some(false),
        )
    };
    assert_eq!(
        got,
        [
            stat("n", "log.error_lines"),
            stat("d", "log.lines"),
            (
                "e1",
                None,
                vec![],
                None,
                None,
                Some("IF(d > 0, 100 * n / d, 0)"),
                Some("log.error_lines per 100 log.lines"),
                Some(true)
            ),
        ],
        "{name}"
    );
    assert_eq!(alarm.evaluation_periods(), Some(5), "{name}");
    assert_eq!(alarm.datapoints_to_alarm(), Some(3), "{name}");
    assert_eq!(alarm.threshold(), Some(5.0), "{name}");
    assert_eq!(
        alarm.comparison_operator().map(|c| c.as_str()),
        Some("GreaterThanThreshold"),
        "{name}"
    );
    assert_eq!(alarm.treat_missing_data(), Some("notBreaching"), "{name}");
    assert_eq!(alarm.alarm_actions(), [TOPIC], "{name}");
    assert_eq!(alarm.ok_actions(), [TOPIC], "{name}");
}

fn check(alarms: &[MetricAlarm]) {
    let (rate, alarms): (Vec<&MetricAlarm>, Vec<&MetricAlarm>) = alarms.iter().partition(|a| {
        a.alarm_name()
            .unwrap()
            .starts_with("outpost-error-rate-high")
    });
    let rate_names: Vec<_> = rate.iter().map(|a| a.alarm_name().unwrap()).collect();
    let want: Vec<_> = RATE_ALARMS.iter().map(|(name, _)| *name).collect();
    assert_eq!(rate_names, want);
    for (alarm, (_, host)) in rate.iter().zip(RATE_ALARMS) {
        check_rate(alarm, host);
    }
    let names: Vec<_> = alarms.iter().map(|a| a.alarm_name().unwrap()).collect();
    let want: Vec<_> = EXPECTED.iter().map(|e| e.name).collect();
    assert_eq!(names, want);
    for (alarm, e) in alarms.iter().zip(&EXPECTED) {
        let name = e.name;
        assert_eq!(alarm.namespace(), Some("Outpost"), "{name}");
        assert_eq!(alarm.metric_name(), Some(e.metric), "{name}");
        let mut dims: Vec<(&str, &str)> = alarm
            .dimensions()
            .iter()
            .map(|d| (d.name().unwrap(), d.value().unwrap()))
            .collect();
        dims.sort_unstable();
        let mut want_dims = e.dimensions.to_vec();
        want_dims.sort_unstable();
        assert_eq!(dims, want_dims, "{name}");
        assert_eq!(
            alarm.statistic().map(|s| s.as_str()),
            Some(e.statistic),
            "{name}"
        );
        assert_eq!(alarm.period(), Some(e.period), "{name}");
        assert_eq!(
            alarm.evaluation_periods(),
            Some(e.evaluation_periods),
            "{name}"
        );
        assert_eq!(
            alarm.datapoints_to_alarm(),
            Some(e.datapoints_to_alarm),
            "{name}"
        );
        assert_eq!(alarm.threshold(), Some(e.threshold), "{name}");
        assert_eq!(
            alarm.comparison_operator().map(|c| c.as_str()),
            Some(e.comparison),
            "{name}"
        );
        assert_eq!(alarm.treat_missing_data(), Some(e.missing), "{name}");
        assert_eq!(alarm.alarm_actions(), [TOPIC], "{name}");
        assert_eq!(alarm.ok_actions(), [TOPIC], "{name}");
        let description = alarm.alarm_description().unwrap();
        let rule = name
            .trim_start_matches("outpost-")
            .trim_end_matches("-web-1")
            .trim_end_matches("-web-2");
        assert!(
            description.contains(&format!("rule \"{rule}\"")) && description.contains("rules.toml"),
            "{name}: {description}"
        );
    }
}

#[tokio::test]
async fn rules_become_alarms_that_describe_alarms_reads_back_and_a_rerun_overwrites() {
    let Some(moto) = Moto::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules_file(tmp.path());
    let rules = rules.to_str().unwrap();
    let args = [
        "--rules",
        rules,
        "--topic-arn",
        TOPIC,
        "--host",
        "web-1",
        "--host",
        "web-2",
    ];
    let client = Client::new(&moto.sdk_config().await);

    // --dry-run prints the definitions and creates nothing.
    let output = run(Some(&moto), &[], &[&args[..], &["--dry-run"]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let dry_names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["AlarmName"].as_str().unwrap())
        .collect();
    assert_eq!(dry_names.len(), EXPECTED.len() + RATE_ALARMS.len());
    assert_eq!(json[0]["AlarmName"], "outpost-cpu-high-web-1");
    assert_eq!(json[0]["OKActions"][0], TOPIC);
    // The error-rate rule (the example's fourth) is metric math: Metrics, no MetricName.
    let rate = &json[6];
    assert_eq!(rate["AlarmName"], "outpost-error-rate-high-web-1");
    assert!(rate.get("MetricName").is_none(), "{rate}");
    assert_eq!(
        rate["Metrics"][0]["MetricStat"]["Metric"]["MetricName"],
        "log.error_lines"
    );
    assert_eq!(
        rate["Metrics"][1]["MetricStat"]["Metric"]["Dimensions"][0]["Name"],
        "Host"
    );
    assert_eq!(
        rate["Metrics"][2]["Expression"],
        "IF(d > 0, 100 * n / d, 0)"
    );
    assert!(describe_alarms(&client).await.is_empty());

    let output = run(Some(&moto), &[], &args);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), EXPECTED.len() + RATE_ALARMS.len(), "{lines:?}");
    for name in dry_names {
        assert!(
            lines.contains(&format!("put alarm {name}")),
            "{name}: {lines:?}"
        );
    }
    let first = describe_alarms(&client).await;
    check(&first);

    // Idempotent: the same names are overwritten, nothing is added.
    let output = run(Some(&moto), &[], &args);
    assert!(output.status.success(), "{}", stderr(&output));
    let second = describe_alarms(&client).await;
    check(&second);
    assert_eq!(second.len(), first.len());
}

#[tokio::test]
async fn hosts_from_table_makes_alarms_for_every_host_of_the_table() {
    let Some(moto) = Moto::start() else { return };
    let sdk = moto.sdk_config().await;
    outpost_testkit::create_sink_resources(&sdk, "outpost-logs", TABLE).await;
    let store = DynamoMetrics::new(aws_sdk_dynamodb::Client::new(&sdk), TABLE.into(), 30);
    let now_ms = outpost_sink_core::timestamp::now_ms();
    for host in ["db-1", "app-1"] {
        let write = MetricWrite {
            host: host.into(),
            agent_id: format!("agent-{host}"),
            agent_version: "0.1.0".into(),
            seq: 1,
            received_ms: now_ms,
            points: vec![PointRow {
                name: "memory.utilization".into(),
                dimensions: "{}".into(),
                ts_ms: now_ms,
                value: Some(50.0),
                unit: "Percent",
            }],
        };
        store.put(&write).await.unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules_file(tmp.path());
    let args = [
        "--rules",
        rules.to_str().unwrap(),
        "--hosts-from-table",
        "--host",
        "extra",
        "--prefix",
        "t-",
    ];

    let output = run(Some(&moto), &[("OUTPOST_TABLE", TABLE)], &args);
    assert!(output.status.success(), "{}", stderr(&output));
    let alarms = describe_alarms(&Client::new(&sdk)).await;
    let memory: Vec<_> = alarms
        .iter()
        .filter(|a| a.metric_name() == Some("memory.utilization"))
        .map(|a| a.alarm_name().unwrap())
        .collect();
    assert_eq!(
        memory,
        [
            "t-memory-high-app-1",
            "t-memory-high-db-1",
            "t-memory-high-extra"
        ]
    );
    // Five per-host rules for three hosts, and the fleet rule.
    assert_eq!(alarms.len(), 5 * 3 + 1);
    assert!(alarms.iter().all(|a| a.alarm_actions().is_empty()));

    let output = run(Some(&moto), &[], &args);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("OUTPOST_TABLE"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_rules_file_with_a_period_cloudwatch_refuses_fails_naming_the_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules_file(tmp.path());
    let text = std::fs::read_to_string(&rules)
        .unwrap()
        .replace("period = \"5m\"", "period = \"45s\"");
    std::fs::write(&rules, text).unwrap();
    // No server: the conversion fails before any call.
    let output = run(
        None,
        &[],
        &["--rules", rules.to_str().unwrap(), "--host", "web-1"],
    );
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("rule \"fleet-errors\": period 45s: CloudWatch alarms take a period of 10s, 30s or a multiple of 60s"),
        "{message}"
    );
    assert!(stdout(&output).is_empty());
}

#[test]
fn per_host_rules_without_hosts_fail_naming_the_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules_file(tmp.path());
    let output = run(
        None,
        &[],
        &["--rules", rules.to_str().unwrap(), "--dry-run"],
    );
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    for rule in [
        "cpu-high",
        "memory-high",
        "host-silent",
        "error-rate-high",
        "disk-full",
    ] {
        assert!(
            message.contains(&format!("rule \"{rule}\": scope is per_host but no host")),
            "{rule}: {message}"
        );
    }
    assert!(!message.contains("fleet-errors"), "{message}");
}

#[test]
fn a_failed_call_exits_1_naming_the_alarm_and_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules_file(tmp.path());
    // A loopback port nothing listens on: every call fails to connect.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_MAX_ATTEMPTS", "1"),
    ];
    let output = run(
        None,
        &env,
        &["--rules", rules.to_str().unwrap(), "--host", "web-1"],
    );
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("6 of 6 alarms failed"), "{message}");
    assert!(
        message
            .contains("alarm outpost-fleet-errors: CloudWatch PutMetricAlarm outpost-fleet-errors"),
        "{message}"
    );
    assert!(stdout(&output).is_empty());
}
