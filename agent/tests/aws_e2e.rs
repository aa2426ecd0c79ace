//! End to end on AWS's protocols: the real agent → SigV4-signed HTTP → the real Lambda function
//! (`outpost-sink-lambda` in `cargo lambda watch`, the local Lambda runtime emulator) → S3
//! objects, DynamoDB items and EMF lines; and the agent → Kinesis (moto) → the function's
//! Kinesis front (invoked with the event Lambda would build from the stream's records, a poison
//! record among them) → the same. Every check goes through the AWS SDK or the function's own
//! routes. Skips without moto or cargo-lambda, except under `CI=true`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use aws_sdk_kinesis::primitives::Blob;
use common::*;
use outpost_testkit::{LambdaWatch, Moto};
use serde_json::{Value, json};
use tokio::runtime::Runtime;

const BUCKET: &str = "outpost-e2e-logs";
const TABLE: &str = "outpost-e2e-metrics";
const STREAM: &str = "outpost-e2e";
const FUNCTION: &str = "outpost-sink-lambda";

fn sink_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sink")
}

/// The function's environment: moto's endpoint and credentials, and the sink's settings.
fn function_env(moto: &Moto) -> Vec<(&'static str, String)> {
    let mut env = moto.env();
    env.extend([
        ("OUTPOST_BUCKET", BUCKET.to_owned()),
        ("OUTPOST_TABLE", TABLE.to_owned()),
        ("OUTPOST_CLOUDWATCH_MODE", "emf".to_owned()),
    ]);
    env
}

/// The agent's config: `sink`, host sampling every second, small fast batches.
fn agent_config(env: &Env, sink: &str) -> PathBuf {
    let cfg = env.config_with_sink(
        sink,
        "*.log",
        "[batch]\nmax_records = 50\nmax_age = \"100ms\"\n",
    );
    // Host metrics on (the harness turns them off): points for DynamoDB and CloudWatch.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[host]\nenabled = false", "[host]\ninterval = \"1s\"");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// Every log line stored in S3, by object key order, and the number of log objects.
async fn stored_lines(sdk: &aws_config::SdkConfig) -> (Vec<String>, usize) {
    let s3 = outpost_testkit::s3_client(sdk);
    let keys = outpost_testkit::object_keys(&s3, BUCKET).await;
    let mut lines = Vec::new();
    let mut objects = 0;
    for key in keys.iter().filter(|k| k.starts_with("logs/")) {
        objects += 1;
        let object = s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        let body = object.body.collect().await.unwrap().into_bytes();
        let plain = zstd::bulk::decompress(&body, 64 << 20).unwrap();
        for line in String::from_utf8(plain).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            lines.push(v["message"].as_str().unwrap().to_owned());
        }
    }
    (lines, objects)
}

/// `GET URL/v1/hosts` through the function.
async fn hosts(url: &str) -> Value {
    let text = reqwest::Client::new()
        .get(format!("{url}/v1/hosts"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The host item has the agent's latest batch and host metric values.
fn assert_host_reported(hosts: &Value) {
    let host = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "test-host")
        .unwrap_or_else(|| panic!("test-host missing: {hosts}"));
    assert_eq!(host["agent_id"], "test-agent");
    let latest = host["latest"].as_array().unwrap();
    assert!(
        latest.iter().any(|l| l["name"] == "cpu.utilization"),
        "{host}"
    );
}

/// The host's CPU points, read from DynamoDB through the SDK: a Query on the documented key.
async fn cpu_items(sdk: &aws_config::SdkConfig) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue;
    let out = aws_sdk_dynamodb::Client::new(sdk)
        .query()
        .table_name(TABLE)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("test-host#cpu.utilization".into()))
        .send()
        .await
        .unwrap();
    for item in out.items() {
        assert!(
            item.contains_key("points") && item.contains_key("expires_at"),
            "{item:?}"
        );
    }
    out.items().len()
}

/// Sort lines by the number in them (batches may land in S3 keys out of line order).
fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

#[test]
fn signed_batches_reach_s3_dynamodb_and_emf_through_the_function_url() {
    let Some(moto) = Moto::start() else { return };
    let rt = Runtime::new().unwrap();
    let sdk = rt.block_on(moto.sdk_config());
    rt.block_on(outpost_testkit::create_sink_resources(&sdk, BUCKET, TABLE));
    let Some(watch) = LambdaWatch::start(&sink_dir(), &function_env(&moto)) else {
        return;
    };
    let url = watch.function_url(FUNCTION);
    // The first request may build the function: wait for it before the agent starts.
    let warm = rt.block_on(async {
        reqwest::Client::builder()
            .timeout(LambdaWatch::first_request_timeout())
            .build()
            .unwrap()
            .get(format!("{url}/healthz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    assert_eq!(warm.ok(), Some(200), "{}", watch.output());

    let env = Env::new();
    let cfg = agent_config(
        &env,
        &format!("kind = \"lambda_url\"\nurl = \"{url}\"\nregion = \"us-east-1\"\n"),
    );
    let app = env.logs().join("app.log");
    let mut expected = lines("url", 0..300);
    append(&app, &expected);
    let mut agent = start_agent_with_env(&cfg, &env.path("agent.log"), &moto.env());
    let more = lines("url-live", 0..300);
    for chunk in more.chunks(60) {
        append(&app, chunk);
    }
    expected.extend(more);

    let mut stored = (Vec::new(), 0);
    poll_until("every line in S3", || {
        stored = rt.block_on(stored_lines(&sdk));
        stored.0.len() >= expected.len()
    });
    poll_until("host metrics in DynamoDB", || {
        let h = rt.block_on(hosts(&url));
        h["hosts"][0]["latest"]
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l["name"] == "cpu.utilization"))
    });
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));

    let (lines_in_s3, objects) = rt.block_on(stored_lines(&sdk));
    assert!(objects > 1, "{objects} objects: many batches");
    assert_eq!(
        sorted(lines_in_s3),
        sorted(expected),
        "every line exactly once"
    );
    assert_host_reported(&rt.block_on(hosts(&url)));
    assert!(rt.block_on(cpu_items(&sdk)) >= 1, "no CPU item in DynamoDB");
    // CloudWatch in EMF mode: the function printed the host's metrics for CloudWatch Logs.
    let output = watch.output();
    let emf: Vec<Value> = output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some() && v["Host"] == "test-host")
        .collect();
    assert!(
        emf.iter().any(|v| v.get("cpu.utilization").is_some()),
        "no EMF line with cpu.utilization:\n{output}"
    );
    assert!(!env.path("state/dead-letter").exists());
}

#[test]
fn kinesis_records_reach_s3_and_dynamodb_through_the_kinesis_front() {
    let Some(moto) = Moto::start() else { return };
    let rt = Runtime::new().unwrap();
    let sdk = rt.block_on(moto.sdk_config());
    rt.block_on(outpost_testkit::create_sink_resources(&sdk, BUCKET, TABLE));
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    rt.block_on(outpost_testkit::create_stream(&kinesis, STREAM, 1));
    let Some(watch) = LambdaWatch::start(&sink_dir(), &function_env(&moto)) else {
        return;
    };

    let env = Env::new();
    let cfg = agent_config(
        &env,
        &format!("kind = \"kinesis\"\nstream = \"{STREAM}\"\n"),
    );
    let expected = lines("kinesis", 0..400);
    append(&env.logs().join("app.log"), &expected);
    let mut agent = start_agent_with_env(&cfg, &env.path("agent.log"), &moto.env());
    poll_until("every line and a host sample in the stream", || {
        let events = rt.block_on(outpost_testkit::kinesis_events(&kinesis, STREAM));
        let records: Vec<outpost_proto::Record> = events[0].0["Records"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                use base64::Engine;
                let data = base64::engine::general_purpose::STANDARD
                    .decode(r["kinesis"]["data"].as_str().unwrap())
                    .unwrap();
                outpost_proto::decode(&data).unwrap().records
            })
            .collect();
        let logs = records
            .iter()
            .filter(|r| matches!(r, outpost_proto::Record::Log(_)))
            .count();
        let cpu = records
            .iter()
            .any(|r| matches!(r, outpost_proto::Record::Metric(m) if m.name == "cpu.utilization"));
        logs >= expected.len() && cpu
    });
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));
    // A poison record from elsewhere in the same shard.
    rt.block_on(async {
        kinesis
            .put_record()
            .stream_name(STREAM)
            .partition_key("intruder")
            .data(Blob::new(b"not a frame".to_vec()))
            .send()
            .await
            .unwrap();
    });

    // Lambda's event source mapping, by hand: the shard's records as one Kinesis event,
    // invoked through the emulator's Invoke API.
    let (event, seqs) = rt
        .block_on(outpost_testkit::kinesis_events(&kinesis, STREAM))
        .remove(0);
    let response: Value = rt.block_on(async {
        let text = reqwest::Client::builder()
            .timeout(LambdaWatch::first_request_timeout())
            .build()
            .unwrap()
            .post(format!(
                "http://{}/2015-03-31/functions/{FUNCTION}/invocations",
                watch.addr()
            ))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&event).unwrap())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    });
    assert_eq!(
        response,
        json!({"batchItemFailures": []}),
        "{}",
        watch.output()
    );

    let (lines_in_s3, _) = rt.block_on(stored_lines(&sdk));
    assert_eq!(
        sorted(lines_in_s3),
        sorted(expected),
        "every line exactly once"
    );
    let keys = rt.block_on(async {
        outpost_testkit::object_keys(&outpost_testkit::s3_client(&sdk), BUCKET).await
    });
    let dead: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("dead-letter/"))
        .collect();
    assert_eq!(dead.len(), 1, "{keys:?}");
    assert!(dead[0].ends_with(&format!("{}.bin", seqs.last().unwrap())));
    assert_host_reported(&rt.block_on(hosts(&watch.function_url(FUNCTION))));
    assert!(rt.block_on(cpu_items(&sdk)) >= 1, "no CPU item in DynamoDB");
}
