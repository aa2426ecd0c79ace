//! The Lambda front against real protocols: Function URL requests through `cargo lambda watch`
//! (the local Lambda runtime emulator running the real `outpost-sink-lambda` binary), and
//! Kinesis batches built from records read back from moto's Kinesis, with a poison record
//! among good ones, and scheduled events routed to the health check. Skipped when moto or
//! cargo-lambda is missing, except under CI=true.

// clippy.toml's allow-unwrap-in-tests covers #[test] functions, not these helpers.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use outpost_proto::{LogRecord, MetricPoint, Record, Unit};
use outpost_sink::backend::aws::AwsBackend;
use outpost_sink::backend::aws::settings::{AwsSettings, Encryption};
use outpost_sink::backend::aws::{CloudWatchMode, CloudWatchScope};
use outpost_sink::front::lambda::{LambdaError, LambdaFront};
use outpost_sink_core::health::Thresholds;
use outpost_sink_core::ports::{MetricStore, MetricWrite, PointRow};
use outpost_testkit::{LambdaWatch, Moto};
use serde_json::{Value, json};

const BUCKET: &str = "outpost-logs";
const TABLE: &str = "outpost-metrics";
const STREAM: &str = "outpost";
const FUNCTION: &str = "outpost-sink-lambda";

fn frame(seq: u64, t: i64, line: &str) -> Vec<u8> {
    let records = vec![
        Record::Log(LogRecord {
            ts_ms: t,
            source: "/var/log/app.log".into(),
            service: "app".into(),
            line: line.as_bytes().to_vec(),
            level: None,
        }),
        Record::Metric(MetricPoint {
            name: "cpu.utilization".into(),
            ts_ms: t,
            value: 81.5,
            unit: Unit::Percent,
            dimensions: vec![],
        }),
    ];
    outpost_proto::encode(&outpost_testkit::test_batch(seq, t, records)).unwrap()
}

/// Poll `f` until it returns `Some`, at most `limit`.
async fn poll<T, F: AsyncFnMut() -> Option<T>>(what: &str, limit: Duration, mut f: F) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn function_url_requests_are_answered_by_the_lambda_binary() {
    let Some(moto) = Moto::start() else { return };
    let sdk = moto.sdk_config().await;
    outpost_testkit::create_sink_resources(&sdk, BUCKET, TABLE).await;
    let mut env = moto.env();
    env.extend([
        ("OUTPOST_BUCKET", BUCKET.to_owned()),
        ("OUTPOST_TABLE", TABLE.to_owned()),
        ("OUTPOST_METRICS_NAMESPACE", "OutpostTest".to_owned()),
        ("OUTPOST_CLOUDWATCH_MODE", "emf".to_owned()),
    ]);
    let Some(watch) = LambdaWatch::start(Path::new(env!("CARGO_MANIFEST_DIR")), &env) else {
        return;
    };
    let url = watch.function_url(FUNCTION);
    let client = reqwest::Client::builder()
        .timeout(LambdaWatch::first_request_timeout())
        .build()
        .unwrap();
    let t = outpost_sink_core::timestamp::now_ms();

    let response = client
        .post(format!("{url}/v1/batches"))
        .header("content-type", "application/vnd.outpost.frame")
        .body(frame(3, t, "GET / 200"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}\n{}", watch.output());
    let ack: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (ack["seq"].as_u64(), ack["logs"].as_u64()),
        (Some(3), Some(1))
    );

    let keys = outpost_testkit::object_keys(&outpost_testkit::s3_client(&sdk), BUCKET).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].ends_with("/agent-1-00000000000000000003.ndjson.zst"));

    let hosts: Value = serde_json::from_str(
        &client
            .get(format!("{url}/v1/hosts"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(hosts["hosts"][0]["host"], "web-1");
    assert_eq!(hosts["hosts"][0]["latest"][0]["value"], 81.5);

    // A malformed frame: the same 400 and reason as the local server's.
    let response = client
        .post(format!("{url}/v1/batches"))
        .body(b"garbage".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("truncated"),
        "{body}"
    );

    // EMF mode: the minute's CPU value printed on the function's stdout for CloudWatch Logs.
    let emf = poll("the EMF line", Duration::from_secs(30), async || {
        watch
            .output()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v.get("_aws").is_some())
    })
    .await;
    assert_eq!(
        emf["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "OutpostTest"
    );
    assert_eq!(emf["Host"], "web-1");
    assert_eq!(emf["cpu.utilization"], json!([81.5]));
}

#[tokio::test]
async fn kinesis_batches_store_good_records_and_dead_letter_poison_ones() {
    let Some(moto) = Moto::start() else { return };
    let sdk = moto.sdk_config().await;
    outpost_testkit::create_sink_resources(&sdk, BUCKET, TABLE).await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    outpost_testkit::create_stream(&kinesis, STREAM, 1).await;
    let t = outpost_sink_core::timestamp::now_ms();
    for data in [
        frame(1, t, "first"),
        b"not a frame".to_vec(),
        frame(2, t + 1, "second"),
    ] {
        kinesis
            .put_record()
            .stream_name(STREAM)
            .partition_key("agent-1")
            .data(Blob::new(data))
            .send()
            .await
            .unwrap();
    }
    let (event, seqs) = outpost_testkit::kinesis_events(&kinesis, STREAM)
        .await
        .remove(0);
    assert_eq!(seqs.len(), 3);

    let settings = AwsSettings {
        bucket: BUCKET.into(),
        table: TABLE.into(),
        namespace: "OutpostTest".into(),
        cloudwatch: CloudWatchMode::Off,
        scope: CloudWatchScope::PerHost,
        selection: Default::default(),
        retention_days: 30,
        encryption: Encryption::S3Managed,
        health: Thresholds::default(),
    };
    let front = LambdaFront::new(AwsBackend::new(&sdk, &settings));
    let response = front.handle(event.clone()).await.unwrap();
    assert_eq!(response, json!({"batchItemFailures": []}));
    assert_eq!(front.dead_letters(), 1);

    let s3 = outpost_testkit::s3_client(&sdk);
    let keys = outpost_testkit::object_keys(&s3, BUCKET).await;
    let logs: Vec<&String> = keys.iter().filter(|k| k.starts_with("logs/")).collect();
    assert_eq!(logs.len(), 2, "{keys:?}");
    assert!(logs[0].ends_with("agent-1-00000000000000000001.ndjson.zst"));
    assert!(logs[1].ends_with("agent-1-00000000000000000002.ndjson.zst"));
    let dead: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("dead-letter/"))
        .collect();
    assert_eq!(dead.len(), 1, "{keys:?}");
    assert!(
        dead[0].contains("/kinesis/shardId-000000000000_"),
        "{}",
        dead[0]
    );
    assert!(
        dead[0].ends_with(&format!("{}.bin", seqs[1])),
        "{}",
        dead[0]
    );
    let object = s3
        .get_object()
        .bucket(BUCKET)
        .key(dead[0])
        .send()
        .await
        .unwrap();
    let reason = object.metadata().unwrap()["reason"].clone();
    assert!(
        reason.contains("truncated") || reason.contains("magic"),
        "{reason}"
    );
    let body = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(body.as_ref(), b"not a frame");

    // The table is gone: the good records fail for a retryable reason and are named (by
    // sequence number); the poison one is dead-lettered again (same key), not named.
    aws_sdk_dynamodb::Client::new(&sdk)
        .delete_table()
        .table_name(TABLE)
        .send()
        .await
        .unwrap();
    let response = front.handle(event).await.unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [
            {"itemIdentifier": seqs[0]}, {"itemIdentifier": seqs[2]}
        ]})
    );
    assert_eq!(front.dead_letters(), 2);
    let again = outpost_testkit::object_keys(&s3, BUCKET).await;
    assert_eq!(again, keys);
}

/// The Sum of the datapoints of dimensionless `name` in `namespace` over
/// `[start_ms, start_ms + 2 min)`.
async fn sum_over_two_minutes(
    client: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    name: &str,
    start_ms: i64,
) -> f64 {
    use aws_sdk_cloudwatch::primitives::DateTime;
    let out = client
        .get_metric_statistics()
        .namespace(namespace)
        .metric_name(name)
        .start_time(DateTime::from_millis(start_ms))
        .end_time(DateTime::from_millis(start_ms + 120_000))
        .period(60)
        .statistics(aws_sdk_cloudwatch::types::Statistic::Sum)
        .send()
        .await
        .expect("GetMetricStatistics");
    out.datapoints().iter().filter_map(|p| p.sum()).sum()
}

#[tokio::test]
async fn scheduled_events_run_the_health_check() {
    let Some(moto) = Moto::start() else { return };
    let sdk = moto.sdk_config().await;
    outpost_testkit::create_sink_resources(&sdk, BUCKET, TABLE).await;
    let namespace = "OutpostLambdaHealth";
    let settings = AwsSettings {
        bucket: BUCKET.into(),
        table: TABLE.into(),
        namespace: namespace.into(),
        cloudwatch: CloudWatchMode::PutMetricData,
        scope: CloudWatchScope::PerHost,
        selection: Default::default(),
        retention_days: 30,
        encryption: Encryption::S3Managed,
        health: Thresholds::default(),
    };
    let t = outpost_sink_core::timestamp::now_ms();
    AwsBackend::new(&sdk, &settings)
        .put_metrics(MetricWrite {
            host: "web-1".into(),
            agent_id: "agent-1".into(),
            agent_version: "0.1.0".into(),
            seq: 1,
            received_ms: t,
            points: vec![PointRow {
                name: "cpu.utilization".into(),
                dimensions: r#"{"cpu":"total"}"#.into(),
                ts_ms: t,
                value: Some(81.5),
                unit: "Percent",
            }],
        })
        .await
        .unwrap();
    let front = LambdaFront::new(AwsBackend::new(&sdk, &settings));

    let scheduled = json!({
        "version": "0",
        "id": "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-24T09:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/outpost-health-check"],
        "detail": {}
    });
    let response = front.handle(scheduled).await.unwrap();
    let report = &response["health_check"];
    assert_eq!(report["hosts"], 1, "{response}");
    assert_eq!(report["hosts_reporting"], 1, "{response}");
    assert_eq!(report["silent_hosts"], json!([]), "{response}");
    assert_eq!(
        report["hosts_over_cpu"],
        json!([{"host": "web-1", "value": 81.5}]),
        "{response}"
    );

    // The manual event runs it too; each run publishes `pipeline.health_checks` = 1.
    let manual = front
        .handle(json!({"outpost": "health-check"}))
        .await
        .unwrap();
    assert_eq!(manual["health_check"]["hosts_over_cpu"][0]["host"], "web-1");
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);
    let minute = t / 60_000 * 60_000;
    let runs = sum_over_two_minutes(&cloudwatch, namespace, "pipeline.health_checks", minute).await;
    assert_eq!(runs, 2.0);
    let over =
        sum_over_two_minutes(&cloudwatch, namespace, "pipeline.hosts_over_cpu", minute).await;
    assert_eq!(over, 2.0);

    // Without the table the hosts cannot be read: the invocation fails (and publishes nothing).
    aws_sdk_dynamodb::Client::new(&sdk)
        .delete_table()
        .table_name(TABLE)
        .send()
        .await
        .unwrap();
    let error = front
        .handle(json!({"outpost": "health-check"}))
        .await
        .unwrap_err();
    assert!(matches!(error, LambdaError::HealthCheck(_)), "{error}");
    assert!(error.to_string().contains("DynamoDB"), "{error}");
    let runs = sum_over_two_minutes(&cloudwatch, namespace, "pipeline.health_checks", minute).await;
    assert_eq!(runs, 2.0);
}
