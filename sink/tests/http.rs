//! The HTTP API end to end: a real server on 127.0.0.1:0 over a temporary data directory.

// clippy.toml's allow-unwrap-in-tests covers #[test] functions, not these helpers.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use outpost_proto::limits::{MAX_COMPRESSED_LEN, MAX_DECOMPRESSED_LEN, MAX_FRAME_LEN, MAX_RECORDS};
use outpost_proto::{
    Batch, Dimension, FLAG_ZSTD, FORMAT_VERSION, HEADER_LEN, Level, LogRecord, MAGIC, MetricPoint,
    Record, Unit,
};
use outpost_sink::error::ServeError;
use outpost_sink::token::Token;
use outpost_sink::{Config, Server};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// 2026-11-23T22:59:59.500Z: half a second before an hour boundary.
const T: i64 = 1_795_474_799_500;
const TOKEN: &str = "test-token-123";

struct TestServer {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl TestServer {
    async fn start(token: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().join("data"));
        config.token = token.map(|t| Token::new(t).unwrap());
        let server = Server::bind(config).await.unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Self {
            addr,
            dir,
            shutdown: Some(tx),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn post(&self, body: Vec<u8>, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = reqwest::Client::new()
            .post(self.url("/v1/batches"))
            .header("content-type", "application/octet-stream")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        reply(request.send().await.unwrap()).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = reqwest::Client::new().get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        reply(request.send().await.unwrap()).await
    }

    /// Everything stored: every file under logs/ (temporary ones too), every row.
    fn snapshot(&self) -> Snapshot {
        let mut files = Vec::new();
        walk(&self.data().join("logs"), &mut files);
        files.sort();
        let conn = rusqlite::Connection::open(self.data().join("metrics.db")).unwrap();
        let rows = |sql: &str| -> Vec<String> {
            let mut stmt = conn.prepare(sql).unwrap();
            stmt.query_map([], |row| row.get::<_, String>(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        Snapshot {
            files,
            points: rows(
                "SELECT json_array(host, name, dimensions, ts_ms, value, unit, agent_id, seq) \
                 FROM points ORDER BY 1",
            ),
            hosts: rows("SELECT json_array(*) FROM (SELECT * FROM hosts) ORDER BY 1"),
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

#[derive(Debug, PartialEq)]
struct Snapshot {
    files: Vec<PathBuf>,
    points: Vec<String>,
    hosts: Vec<String>,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

async fn reply(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "status {status}, body {text:?}"
    );
    (status, serde_json::from_str(&text).unwrap())
}

fn batch(seq: u64, records: Vec<Record>) -> Batch {
    outpost_testkit::test_batch(seq, T, records)
}

fn log(ts_ms: i64, line: &[u8], level: Option<Level>) -> Record {
    Record::Log(LogRecord {
        ts_ms,
        source: "/var/log/app.log".into(),
        service: "app".into(),
        line: line.to_vec(),
        level,
    })
}

fn cpu(ts_ms: i64, value: f64) -> Record {
    Record::Metric(MetricPoint {
        name: "cpu.utilization".into(),
        ts_ms,
        value,
        unit: Unit::Percent,
        dimensions: vec![Dimension {
            key: "cpu".into(),
            value: "total".into(),
        }],
    })
}

fn valid_frame(seq: u64) -> Vec<u8> {
    let records = vec![
        log(T, b"before the hour", Some(Level::Warn)),
        cpu(T, 12.5),
        log(T + 1_000, b"after the hour \xff", None),
        cpu(T + 10_000, 50.0),
    ];
    outpost_proto::encode(&batch(seq, records)).unwrap()
}

/// A frame with a hand-made header around `body`; the CRC is correct unless overridden.
fn raw_frame(
    record_count: u32,
    compressed_len: u32,
    decompressed_len: u32,
    body: &[u8],
) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&MAGIC);
    frame.push(FORMAT_VERSION);
    frame.push(FLAG_ZSTD);
    frame.extend_from_slice(&0u16.to_le_bytes());
    frame.extend_from_slice(&record_count.to_le_bytes());
    frame.extend_from_slice(&compressed_len.to_le_bytes());
    frame.extend_from_slice(&decompressed_len.to_le_bytes());
    frame.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    frame.extend_from_slice(body);
    frame
}

fn ndjson(path: &Path) -> Vec<Value> {
    let compressed = std::fs::read(path).unwrap();
    let plain = zstd::bulk::decompress(&compressed, 1 << 20).unwrap();
    String::from_utf8(plain)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_valid_batch_is_stored_on_disk_and_in_sqlite_and_queryable() {
    let server = TestServer::start(None).await;
    let (status, body) = server.post(valid_frame(7), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"agent_id": "agent-1", "seq": 7, "records": 4, "logs": 2, "metrics": 2})
    );

    let logs = server.data().join("logs/host=web-1/dt=2026-11-23");
    let hour22 = logs.join("hour=22/agent-1-00000000000000000007.ndjson.zst");
    let hour23 = logs.join("hour=23/agent-1-00000000000000000007.ndjson.zst");
    let snapshot = server.snapshot();
    assert_eq!(snapshot.files, [hour22.clone(), hour23.clone()]);
    assert_eq!(
        ndjson(&hour22),
        [json!({
            "ts": "2026-11-23T22:59:59.500Z", "host": "web-1", "agent_id": "agent-1", "seq": 7,
            "service": "app", "source": "/var/log/app.log", "message": "before the hour",
            "level": "warn",
        })]
    );
    assert_eq!(
        ndjson(&hour23),
        [json!({
            "ts": "2026-11-23T23:00:00.500Z", "host": "web-1", "agent_id": "agent-1", "seq": 7,
            "service": "app", "source": "/var/log/app.log",
            "message": "after the hour \u{fffd}", "invalid_utf8": true,
        })]
    );
    assert_eq!(
        snapshot.points,
        [
            format!(
                r#"["web-1","cpu.utilization","{{\"cpu\":\"total\"}}",{T},12.5,"Percent","agent-1",7]"#
            ),
            format!(
                r#"["web-1","cpu.utilization","{{\"cpu\":\"total\"}}",{},50.0,"Percent","agent-1",7]"#,
                T + 10_000
            ),
        ]
    );

    let (status, body) = server
        .get("/v1/metrics?host=web-1&name=cpu.utilization", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "host": "web-1",
            "name": "cpu.utilization",
            "points": [
                {"ts": "2026-11-23T22:59:59.500Z", "ts_ms": T, "value": 12.5, "unit": "Percent",
                 "dimensions": {"cpu": "total"}},
                {"ts": "2026-11-23T23:00:09.500Z", "ts_ms": T + 10_000, "value": 50.0,
                 "unit": "Percent", "dimensions": {"cpu": "total"}},
            ],
        })
    );
    let (status, body) = server
        .get(
            "/v1/metrics?host=web-1&name=cpu.utilization&since=2026-11-23T23:00:00Z",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["points"].as_array().unwrap().len(), 1);
    assert_eq!(body["points"][0]["ts_ms"], T + 10_000);

    let (status, body) = server.get("/v1/hosts", None).await;
    assert_eq!(status, StatusCode::OK);
    let hosts = body["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0]["host"], "web-1");
    assert_eq!(hosts[0]["agent_id"], "agent-1");
    assert_eq!(hosts[0]["agent_version"], "0.1.0");
    assert_eq!(hosts[0]["last_seq"], 7);
    let last_seen_ms = hosts[0]["last_seen_ms"].as_i64().unwrap();
    assert_eq!(
        hosts[0]["last_seen"],
        outpost_sink_core::timestamp::format_ms(last_seen_ms)
    );

    // Re-sending the same batch rewrites, never duplicates.
    let (status, _) = server.post(valid_frame(7), None).await;
    assert_eq!(status, StatusCode::OK);
    let again = server.snapshot();
    assert_eq!(
        (again.files, again.points),
        (snapshot.files, snapshot.points)
    );

    server.stop().await;
}

#[tokio::test]
async fn bad_input_is_rejected_with_its_status_and_stores_nothing() {
    let server = TestServer::start(None).await;
    assert_eq!(server.post(valid_frame(1), None).await.0, StatusCode::OK);
    let before = server.snapshot();

    let good = valid_frame(2);
    let zeros = vec![0u8; 16 << 20];
    let bomb = zstd::bulk::compress(&zeros, 19).unwrap();
    assert!(bomb.len() < 4096, "the bomb is small: {}", bomb.len());
    let sizeless_bomb = {
        let mut compressor = zstd::bulk::Compressor::new(19).unwrap();
        compressor
            .set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(false))
            .unwrap();
        compressor.compress(&zeros).unwrap()
    };
    assert_eq!(
        zstd::zstd_safe::get_frame_content_size(&sizeless_bomb).unwrap(),
        None
    );
    let far_future =
        outpost_proto::encode(&batch(3, vec![cpu(T, 1.0), log(i64::MAX, b"x", None)])).unwrap();
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "empty body",
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "frame truncated",
        ),
        (
            "garbage",
            b"GET / HTTP/1.1 not a frame at all".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad magic",
        ),
        (
            "truncated",
            good[..good.len() - 10].to_vec(),
            StatusCode::BAD_REQUEST,
            "frame truncated",
        ),
        (
            "bad checksum",
            {
                let mut bad = good.clone();
                let last = bad.len() - 1;
                bad[last] ^= 0x55;
                bad
            },
            StatusCode::BAD_REQUEST,
            "checksum mismatch",
        ),
        (
            "trailing bytes",
            [good.as_slice(), b"x"].concat(),
            StatusCode::BAD_REQUEST,
            "trailing bytes",
        ),
        (
            "oversized body",
            vec![0u8; MAX_FRAME_LEN + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "exceeds the frame limit",
        ),
        (
            "zstd bomb under a small declared size",
            raw_frame(1, bomb.len() as u32, 100, &bomb),
            StatusCode::BAD_REQUEST,
            "zstd content size",
        ),
        (
            "zstd bomb without a content size",
            raw_frame(1, sizeless_bomb.len() as u32, 100, &sizeless_bomb),
            StatusCode::BAD_REQUEST,
            "zstd content size",
        ),
        (
            "declared decompressed size over the limit",
            raw_frame(1, bomb.len() as u32, MAX_DECOMPRESSED_LEN + 1, &bomb),
            StatusCode::PAYLOAD_TOO_LARGE,
            "decompressed body",
        ),
        (
            "declared compressed size over the limit",
            raw_frame(1, MAX_COMPRESSED_LEN + 1, 100, &bomb),
            StatusCode::PAYLOAD_TOO_LARGE,
            "compressed body",
        ),
        (
            "declared record count over the limit",
            raw_frame(MAX_RECORDS + 1, bomb.len() as u32, 100, &bomb),
            StatusCode::PAYLOAD_TOO_LARGE,
            "records exceed",
        ),
        (
            "timestamp out of range",
            far_future,
            StatusCode::BAD_REQUEST,
            "outside years",
        ),
    ];
    for (name, body, status, reason) in cases {
        let (got, reply) = server.post(body, None).await;
        assert_eq!(got, status, "{name}: {reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{name}: {error:?} lacks {reason:?}");
        assert_eq!(server.snapshot(), before, "{name} stored something");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_configured_token_is_required_everywhere_but_healthz() {
    let server = TestServer::start(Some(TOKEN)).await;
    let before = server.snapshot();

    let (status, body) = server.post(valid_frame(1), None).await;
    assert_eq!(
        (status, body["error"].is_string()),
        (StatusCode::UNAUTHORIZED, true)
    );
    let (status, _) = server.post(valid_frame(1), Some("wrong-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .post(valid_frame(1), Some(&TOKEN[..TOKEN.len() - 1]))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The token is checked before the body is read: an oversized body is still 401.
    let (status, _) = server.post(vec![0u8; MAX_FRAME_LEN + 1], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.snapshot(), before);

    for path in ["/v1/hosts", "/v1/metrics?host=web-1&name=cpu.utilization"] {
        assert_eq!(
            server.get(path, None).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_eq!(
            server.get(path, Some("nope")).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_eq!(
            server.get(path, Some(TOKEN)).await.0,
            StatusCode::OK,
            "{path}"
        );
    }
    let (status, body) = server.get("/healthz", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));

    let (status, _) = server.post(valid_frame(1), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.snapshot().files.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn metric_queries_validate_their_parameters() {
    let server = TestServer::start(None).await;
    for (query, reason) in [
        ("name=cpu.utilization", "`host` is required"),
        ("host=web-1", "`name` is required"),
        ("host=&name=x", "`host` is required"),
        ("host=web-1&name=x&since=yesterday", "RFC 3339"),
        ("host=web-1&name=x&since=2026-11-23", "RFC 3339"),
    ] {
        let (status, body) = server.get(&format!("/v1/metrics?{query}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(reason), "{query}: {error}");
    }
    let (status, body) = server.get("/v1/metrics?host=nobody&name=x", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"host": "nobody", "name": "x", "points": []}));
    let (status, body) = server.get("/v1/hosts", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"hosts": []})));
    let (status, body) = server.get("/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
    server.stop().await;
}

/// Read an HTTP/1.1 response head (up to the blank line) from `stream`.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.unwrap();
        assert_eq!(
            n,
            1,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413_without_content_length() {
    let server = TestServer::start(None).await;
    let before = server.snapshot();
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let writer = tokio::spawn(async move {
        let head = "POST /v1/batches HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n";
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent <= MAX_FRAME_LEN {
            writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
            sent += chunk.len();
        }
        writer.write_all(b"0\r\n\r\n").await?;
        writer.flush().await
    });
    let mut response = Vec::new();
    // The server may close before reading everything; what it sent first is what counts.
    let _ = reader.read_to_end(&mut response).await;
    let _ = writer.await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 413 "),
        "unexpected response: {response:?}"
    );
    assert!(response.contains("exceeds the frame limit"), "{response}");
    assert_eq!(server.snapshot(), before);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish() {
    let mut server = TestServer::start(None).await;
    let frame = valid_frame(9);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/batches HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\r\n",
        frame.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // hyper answers 100 Continue only once the handler starts reading the body: from here on
    // the request is in flight.
    let interim = read_head(&mut stream).await;
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim:?}");

    server.shutdown.take().unwrap().send(()).unwrap();
    stream.write_all(&frame).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response:?}");
    assert!(response.contains(r#""seq":9"#), "{response:?}");

    // The server stops by itself once the request is done.
    let data = server.data();
    server.task.await.unwrap().unwrap();
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "still accepting after shutdown"
    );
    let mut files = Vec::new();
    walk(&data.join("logs"), &mut files);
    assert_eq!(files.len(), 2);
}
