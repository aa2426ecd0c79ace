//! The AWS backend against a real AWS API server (moto): S3 objects, DynamoDB items, the HTTP
//! routes over them, and `outpost-sink serve --backend aws`. Skipped when moto is not
//! installed, except under CI=true.

// clippy.toml's allow-unwrap-in-tests covers #[test] functions, not these helpers.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use aws_sdk_dynamodb::types::AttributeValue;
use outpost_proto::{Dimension, LogRecord, MetricPoint, Record, Unit};
use outpost_sink::Server;
use outpost_sink::backend::aws::settings::{AwsSettings, Encryption};
use outpost_sink::backend::aws::{AwsBackend, dynamo};
use outpost_sink::backend::aws::{CloudWatchMode, CloudWatchScope};
use outpost_sink_core::health::Thresholds;
use outpost_testkit::Moto;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_outpost-sink");
const BUCKET: &str = "outpost-logs";
const TABLE: &str = "outpost-metrics";

/// Now, to the second: moto keeps what it is given, but TTLs and "latest" must look real.
fn now_ms() -> i64 {
    outpost_sink_core::timestamp::now_ms() / 1000 * 1000
}

async fn create_resources(sdk: &aws_config::SdkConfig) {
    outpost_testkit::create_sink_resources(sdk, BUCKET, TABLE).await;
}

fn settings(cloudwatch: CloudWatchMode) -> AwsSettings {
    AwsSettings {
        bucket: BUCKET.into(),
        table: TABLE.into(),
        namespace: "OutpostTest".into(),
        cloudwatch,
        scope: CloudWatchScope::PerHost,
        selection: Default::default(),
        retention_days: 30,
        encryption: Encryption::S3Managed,
        health: Thresholds::default(),
    }
}

fn frame(seq: u64, t: i64, metric_names: &[&str]) -> Vec<u8> {
    let mut records = vec![
        Record::Log(LogRecord {
            ts_ms: t,
            source: "/var/log/app.log".into(),
            service: "app".into(),
            line: b"GET / 200".to_vec(),
            level: None,
        }),
        Record::Log(LogRecord {
            ts_ms: t + 1,
            source: "/var/log/app.log".into(),
            service: "app".into(),
            line: b"GET /health 200".to_vec(),
            level: None,
        }),
    ];
    for (i, name) in metric_names.iter().enumerate() {
        for (dim, value) in [("/", 1.0), ("/boot", 2.0)] {
            records.push(Record::Metric(MetricPoint {
                name: (*name).into(),
                ts_ms: t,
                value: value + i as f64,
                unit: Unit::Percent,
                dimensions: vec![Dimension {
                    key: "mount".into(),
                    value: dim.into(),
                }],
            }));
        }
    }
    records.push(Record::Metric(MetricPoint {
        name: "cpu.utilization".into(),
        ts_ms: t + 10_000,
        value: 42.5,
        unit: Unit::Percent,
        dimensions: vec![],
    }));
    outpost_proto::encode(&outpost_testkit::test_batch(seq, t, records)).unwrap()
}

/// The HTTP routes over the AWS backend (CloudWatch off), on a free loopback port.
async fn serve(
    sdk: &aws_config::SdkConfig,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<Result<(), outpost_sink::error::ServeError>>,
) {
    let backend = AwsBackend::new(sdk, &settings(CloudWatchMode::Off));
    let server = Server::bind_with("127.0.0.1:0".parse().unwrap(), None, backend)
        .await
        .unwrap();
    let addr = server.local_addr();
    (addr, tokio::spawn(server.run(std::future::pending())))
}

async fn post(addr: SocketAddr, frame: Vec<u8>) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/v1/batches"))
        .body(frame)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_str(&response.text().await.unwrap()).unwrap(),
    )
}

async fn get(addr: SocketAddr, path: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

async fn object_keys(s3: &aws_sdk_s3::Client) -> Vec<String> {
    outpost_testkit::object_keys(s3, BUCKET).await
}

async fn item_count(ddb: &aws_sdk_dynamodb::Client) -> usize {
    // A Scan is fine in a test; the sink itself never scans.
    let out = ddb.scan().table_name(TABLE).send().await.unwrap();
    out.items().len()
}

#[tokio::test]
async fn batches_land_in_s3_and_dynamodb_and_are_served_back() {
    let Some(moto) = Moto::start() else { return };
    let sdk = moto.sdk_config().await;
    create_resources(&sdk).await;
    let (addr, task) = serve(&sdk).await;

    let t = now_ms();
    // 30 metric names x one time: 30 metric items, more than one BatchWriteItem call.
    let names: Vec<String> = (0..30).map(|i| format!("disk.used.{i:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (status, ack) = post(addr, frame(5, t, &names)).await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["logs"], 2);
    assert_eq!(ack["metrics"], 61);

    // S3: the local layout's key, encrypted, zstd NDJSON with both lines.
    let s3 = outpost_testkit::s3_client(&sdk);
    let keys = object_keys(&s3).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = &keys[0];
    assert!(key.starts_with("logs/host=web-1/dt="), "{key}");
    assert!(
        key.ends_with("/agent-1-00000000000000000005.ndjson.zst"),
        "{key}"
    );
    let object = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        object.server_side_encryption().map(|s| s.as_str()),
        Some("AES256")
    );
    let body = object.body.collect().await.unwrap().into_bytes();
    let plain = zstd::bulk::decompress(&body, 1 << 20).unwrap();
    let lines: Vec<Value> = String::from_utf8(plain)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["GET / 200", "GET /health 200"]);

    // DynamoDB: 30 disk items (two dimension sets each), one cpu item, one host item.
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    assert_eq!(item_count(&ddb).await, 32);
    let item = ddb
        .get_item()
        .table_name(TABLE)
        .key(dynamo::PK, AttributeValue::S("web-1#disk.used.07".into()))
        .key(dynamo::TS, AttributeValue::N(t.to_string()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let expires_at: i64 = item[dynamo::EXPIRES_AT].as_n().unwrap().parse().unwrap();
    let expected = t / 1000 + 30 * 86_400;
    assert!(
        (expected - 60..=expected + 60).contains(&expires_at),
        "{expires_at}"
    );

    // The routes answer from DynamoDB.
    let metrics = get(addr, "/v1/metrics?host=web-1&name=disk.used.07").await;
    let points: Vec<(i64, String, f64)> = metrics["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["ts_ms"].as_i64().unwrap(),
                p["dimensions"]["mount"].as_str().unwrap().to_owned(),
                p["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(points, [(t, "/".into(), 8.0), (t, "/boot".into(), 9.0)]);
    let since = outpost_sink_core::timestamp::format_ms(t + 1);
    let later = get(
        addr,
        &format!("/v1/metrics?host=web-1&name=disk.used.07&since={since}"),
    )
    .await;
    assert_eq!(later["points"].as_array().unwrap().len(), 0);

    let hosts = get(addr, "/v1/hosts").await;
    let hosts = hosts["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0]["host"], "web-1");
    assert_eq!(hosts[0]["last_seq"], 5);
    let latest = hosts[0]["latest"].as_array().unwrap();
    assert_eq!(latest.len(), 61);
    let cpu = latest
        .iter()
        .find(|l| l["name"] == "cpu.utilization")
        .unwrap();
    assert_eq!(
        (cpu["value"].as_f64(), cpu["ts_ms"].as_i64()),
        (Some(42.5), Some(t + 10_000))
    );

    // A re-sent batch overwrites itself: nothing new anywhere.
    let (status, _) = post(addr, frame(5, t, &names)).await;
    assert_eq!(status, 200);
    assert_eq!(object_keys(&s3).await, keys);
    assert_eq!(item_count(&ddb).await, 32);

    // A second host shows up next to the first.
    let mut other = outpost_proto::decode(&frame(1, t, &[])).unwrap();
    other.agent.hostname = "db-1".into();
    let (status, _) = post(addr, outpost_proto::encode(&other).unwrap()).await;
    assert_eq!(status, 200);
    let hosts = get(addr, "/v1/hosts").await;
    let names: BTreeSet<&str> = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["db-1", "web-1"]));
    task.abort();
}

#[tokio::test]
async fn a_missing_table_is_a_503_and_nothing_is_acknowledged() {
    let Some(moto) = Moto::start() else { return };
    let sdk = moto.sdk_config().await;
    let s3 = outpost_testkit::s3_client(&sdk);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let (addr, task) = serve(&sdk).await;
    let (status, body) = post(addr, frame(1, now_ms(), &["m"])).await;
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("DynamoDB") && error.contains(TABLE),
        "{error}"
    );
    task.abort();
}

fn spawn_serve(moto: &Moto, extra: &[(&str, &str)]) -> std::process::Child {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--backend", "aws", "--listen", "127.0.0.1:0"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(moto.env())
        .envs(extra.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.spawn().unwrap()
}

#[tokio::test]
async fn serve_backend_aws_is_configured_by_the_environment() {
    let Some(moto) = Moto::start() else { return };
    let sdk = moto.sdk_config().await;
    create_resources(&sdk).await;

    // Without OUTPOST_BUCKET: a clear error naming the variable, exit 1.
    let out = spawn_serve(&moto, &[("OUTPOST_TABLE", TABLE)])
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("OUTPOST_BUCKET is not set"), "{stderr}");

    let mut child = spawn_serve(
        &moto,
        &[
            ("OUTPOST_BUCKET", BUCKET),
            ("OUTPOST_TABLE", TABLE),
            ("OUTPOST_CLOUDWATCH_MODE", "off"),
        ],
    );
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim_end()
        .strip_prefix("outpost-sink listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    let (status, ack) = post(addr, frame(9, now_ms(), &["load.1m"])).await;
    assert_eq!(status, 200, "{ack}");
    let s3 = outpost_testkit::s3_client(&sdk);
    let keys = object_keys(&s3).await;
    assert_eq!(keys.len(), 1);
    assert!(keys[0].ends_with("agent-1-00000000000000000009.ndjson.zst"));
    let hosts = get(addr, "/v1/hosts").await;
    assert_eq!(hosts["hosts"][0]["last_seq"], 9);
    child.kill().unwrap();
    child.wait().unwrap();
}
