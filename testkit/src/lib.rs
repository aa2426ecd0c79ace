//! Test support shared by the tests of the agent and the sink.
//!
//! - [`Moto`] runs the `moto` AWS API server (`pip install 'moto[server]'`) on a free loopback
//!   port for one test, and builds SDK configurations and process environments that point at
//!   it; [`create_sink_resources`], [`object_keys`], [`kinesis_events`], [`create_stream`] work
//!   with it. When `moto_server` is not installed the tests that need it are skipped with a
//!   message, except under `CI=true`, where a missing server is a failure ([`missing_tool`]).
//! - [`LambdaWatch`] runs the sink's function in `cargo lambda watch`.
//! - [`spawn_sink_serve`] starts `outpost-sink serve` and reads the address it prints.
//! - Fixtures: [`test_agent`], [`test_batch`], and the alarm rules [`cpu_high_rule`] and
//!   [`error_rate_rule`].

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Region every test uses.
pub const REGION: &str = "us-east-1";
/// Dummy credentials (moto accepts any).
pub const ACCESS_KEY_ID: &str = "testing";
/// Dummy credentials (moto accepts any).
pub const SECRET_ACCESS_KEY: &str = "testing";

/// How long the server may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether this run is CI's (`CI=true`): missing tools fail instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skip (return `None`, after printing why) or, under CI, panic: for a tool that is missing.
pub fn missing_tool<T>(tool: &str, hint: &str) -> Option<T> {
    assert!(!in_ci(), "{tool} is required under CI=true ({hint})");
    eprintln!("skipping: {tool} is not installed ({hint})");
    None
}

/// Start `BIN serve` (an `outpost-sink`) with `args` (which must include `--listen`), stdout
/// piped and stderr discarded; the child and the base URL its first line names
/// (`outpost-sink listening on http://ADDR`).
pub fn spawn_sink_serve(bin: &std::path::Path, args: &[&std::ffi::OsStr]) -> (Child, String) {
    let mut child = Command::new(bin)
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout is piped");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("reading the sink's first line");
    let url = line
        .trim()
        .strip_prefix("outpost-sink listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from the sink: {line:?}"))
        .to_owned();
    (child, url)
}

/// Whether `program` is found on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// A moto server of one test; killed on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Moto {
    /// Start a server, or `None` (skip) when `moto_server` is not installed outside CI.
    /// Panics when it is installed but does not come up within 30 s.
    pub fn start() -> Option<Self> {
        if !on_path("moto_server") {
            return missing_tool("moto_server", "pip install 'moto[server]'");
        }
        // A free port: bind :0, read it, release it for moto (which cannot report a port 0).
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let moto = Self {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !moto.ready() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on {} within {START_TIMEOUT:?}",
                moto.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(moto)
    }

    /// `GET /moto-api/data.json` answers 200.
    fn ready(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)) else {
            return false;
        };
        let request = format!(
            "GET /moto-api/data.json HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut head = [0u8; 12];
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_exact(&mut head).is_ok()
            && head.starts_with(b"HTTP/1.")
            && &head[9..12] == b"200"
    }

    /// The endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The variables a process needs to use this server through the standard AWS chain.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }

    /// An SDK configuration for this server: endpoint, region and dummy static credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_credential_types::Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "outpost-testkit",
            ))
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long `cargo lambda watch` may take to answer a first request (it may compile).
const LAMBDA_TIMEOUT: Duration = Duration::from_secs(600);

/// `cargo lambda watch`, the local Lambda runtime emulator, serving the functions of one
/// package (Function URL requests at `/lambda-url/<function>/...`); killed on drop. Its output
/// (the function's stdout and stderr included) goes to a file, [`LambdaWatch::output`].
#[derive(Debug)]
pub struct LambdaWatch {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
    _dir: TempDir,
}

/// A temporary directory removed on drop (no extra crate for one directory).
#[derive(Debug)]
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl LambdaWatch {
    /// Start the emulator in `package_dir` with `env` added to the functions' environment, or
    /// `None` (skip) when cargo-lambda is not installed outside CI. The functions are built on
    /// the first request, in the workspace's target directory.
    pub fn start(package_dir: &std::path::Path, env: &[(&str, String)]) -> Option<Self> {
        if !on_path("cargo-lambda") {
            return missing_tool("cargo-lambda", "pip install cargo-lambda");
        }
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let dir = std::env::temp_dir().join(format!(
            "outpost-lambda-watch-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("creating a log directory");
        let log = dir.join("watch.log");
        let out = std::fs::File::create(&log).expect("creating the watch log");
        let err = out.try_clone().expect("cloning the log handle");
        // `cargo-lambda` itself (not `cargo lambda`, whose cargo parent would outlive a kill),
        // in a process group of its own: dropping kills it with the functions it started.
        let child = Command::new("cargo-lambda")
            .args([
                "lambda",
                "watch",
                "--ignore-changes",
                "-A",
                "127.0.0.1",
                "-P",
            ])
            .arg(port.to_string())
            .current_dir(package_dir)
            .process_group(0)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting cargo lambda watch");
        let watch = Self {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            log,
            _dir: TempDir(dir),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&watch.addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch did not listen on {} within {START_TIMEOUT:?}:\n{}",
                watch.addr,
                watch.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(watch)
    }

    /// The Function URL base of `function`: `http://127.0.0.1:PORT/lambda-url/<function>`.
    pub fn function_url(&self, function: &str) -> String {
        format!("http://{}/lambda-url/{function}", self.addr)
    }

    /// The emulator's address (for `cargo lambda invoke -A/-P`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How long a first request may take (the function may be compiled on it).
    pub fn first_request_timeout() -> Duration {
        LAMBDA_TIMEOUT
    }

    /// Everything the emulator and the functions printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LambdaWatch {
    fn drop(&mut self) {
        // The whole group: the emulator and the function processes it spawned. `--` is
        // essential: procps-ng 4's `kill -KILL -PGID` reads the group as an option and signals
        // every process (kill(-1)); `kill -s KILL -- -PGID` signals the group.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sink's resources as the deployment creates them: the bucket, and the table with its
/// key schema (a contract: partition key `pk` string, sort key `ts` number) and TTL on
/// `expires_at`.
pub async fn create_sink_resources(sdk: &aws_config::SdkConfig, bucket: &str, table: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TimeToLiveSpecification,
    };
    let s3 = s3_client(sdk);
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("creating the bucket");
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let attr = |name: &str, t| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
            .expect("an attribute definition")
    };
    let key = |name: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .expect("a key schema element")
    };
    ddb.create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk", ScalarAttributeType::S))
        .attribute_definitions(attr("ts", ScalarAttributeType::N))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("ts", KeyType::Range))
        .send()
        .await
        .expect("creating the table");
    ddb.update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires_at")
                .enabled(true)
                .build()
                .expect("a TTL specification"),
        )
        .send()
        .await
        .expect("enabling TTL");
}

/// An S3 client for a local server: path-style addressing.
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

/// Every key in `bucket` (all pages), sorted.
pub async fn object_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
    let mut keys = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.expect("listing objects");
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    keys.sort();
    keys
}

/// Every record of every shard of `stream`, from the start, as Lambda's Kinesis event source
/// mapping delivers them: a Kinesis event (`{"Records": [...]}`) per shard, in shard order,
/// with the records' sequence numbers.
pub async fn kinesis_events(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Vec<(serde_json::Value, Vec<String>)> {
    use aws_sdk_kinesis::types::ShardIteratorType;
    use base64::Engine;
    let description = kinesis
        .describe_stream()
        .stream_name(stream)
        .send()
        .await
        .expect("describing the stream")
        .stream_description
        .expect("a stream description");
    let mut events = Vec::new();
    for shard in description.shards() {
        let shard_id = shard.shard_id();
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("a shard iterator")
            .shard_iterator;
        let mut records = Vec::new();
        let mut sequence_numbers = Vec::new();
        while let Some(it) = iterator {
            let out = kinesis
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .expect("reading records");
            if out.records().is_empty() {
                break;
            }
            for r in out.records() {
                sequence_numbers.push(r.sequence_number().to_owned());
                records.push(serde_json::json!({
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": r.partition_key(),
                        "sequenceNumber": r.sequence_number(),
                        "data": base64::engine::general_purpose::STANDARD.encode(r.data().as_ref()),
                        "approximateArrivalTimestamp": 1_795_510_800.5,
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": format!("{shard_id}:{}", r.sequence_number()),
                    "eventName": "aws:kinesis:record",
                    "invokeIdentityArn": "arn:aws:iam::123456789012:role/outpost-sink",
                    "awsRegion": REGION,
                    "eventSourceARN": description.stream_arn(),
                }));
            }
            iterator = out.next_shard_iterator;
        }
        events.push((serde_json::json!({ "Records": records }), sequence_numbers));
    }
    events
}

/// Create a Kinesis stream of `shards` shards and wait until it is active (moto: at once; the
/// wait keeps tests right against a server that takes its time). Panics after 30 s.
pub async fn create_stream(kinesis: &aws_sdk_kinesis::Client, stream: &str, shards: i32) {
    use aws_sdk_kinesis::types::StreamStatus;
    kinesis
        .create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await
        .expect("creating the stream");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let summary = kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .expect("describing the stream");
        if summary
            .stream_description_summary()
            .is_some_and(|s| s.stream_status() == &StreamStatus::Active)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stream {stream} never became active"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The agent identity of the sink's tests: agent `agent-1` on host `web-1`, version `0.1.0`.
pub fn test_agent() -> outpost_proto::AgentIdentity {
    outpost_proto::AgentIdentity {
        agent_id: "agent-1".into(),
        hostname: "web-1".into(),
        agent_version: "0.1.0".into(),
    }
}

/// A batch of [`test_agent`] with these records.
pub fn test_batch(
    seq: u64,
    created_ms: i64,
    records: Vec<outpost_proto::Record>,
) -> outpost_proto::Batch {
    outpost_proto::Batch {
        agent: test_agent(),
        seq,
        created_ms,
        records,
    }
}

/// The `cpu-high` alarm rule that the alarm tests share, as rules-file TOML (a `[[rule]]`
/// table): `cpu.utilization{cpu=total}` above 80, with the statistic, period and "M of N"
/// given. Tests append keys (`scope`, `missing_data`, …) or replace values in the text.
pub fn cpu_high_rule(
    statistic: &str,
    period: &str,
    datapoints_to_alarm: u32,
    evaluation_periods: u32,
) -> String {
    format!(
        r#"
[[rule]]
name = "cpu-high"
metric = "cpu.utilization"
dimensions = {{ cpu = "total" }}
statistic = "{statistic}"
period = "{period}"
comparison = ">"
threshold = 80.0
datapoints_to_alarm = {datapoints_to_alarm}
evaluation_periods = {evaluation_periods}
"#
    )
}

/// The error-rate alarm rule that the alarm tests share, as rules-file TOML (a `[[rule]]`
/// table named `name`): 100 × sum(`log.error_lines`) / sum(`log.lines`) of service `app` above
/// 5, with the period and "M of N" given. Tests append keys (`scope`, `missing_data`, …) or
/// replace values in the text.
pub fn error_rate_rule(
    name: &str,
    period: &str,
    datapoints_to_alarm: u32,
    evaluation_periods: u32,
) -> String {
    format!(
        r#"
[[rule]]
name = "{name}"
metric = "log.error_lines"
denominator = "log.lines"
dimensions = {{ service = "app" }}
statistic = "sum"
period = "{period}"
comparison = ">"
threshold = 5.0
datapoints_to_alarm = {datapoints_to_alarm}
evaluation_periods = {evaluation_periods}
"#
    )
}
