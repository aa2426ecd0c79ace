//! Ingest timing of a large frame: builds one frame of about `--compressed-mib` MiB (compressed;
//! the Function URL limit makes 4 MiB the largest an agent sends), times the ingest core's
//! `prepare` on it in-process, then POSTs it `--requests` times (new sequence numbers) to
//! `--url` (a sink's base URL, e.g. a `cargo lambda watch` Function URL) and prints JSON.
//! Run by bench/lambda.sh; figures in docs/performance.md.

// A measurement tool: panics on a bad argument or a failed request are its error reporting.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use outpost_proto::{AgentIdentity, Batch, Level, LogRecord, Record};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

/// Access-log lines with enough entropy (ids, addresses, trace ids) to compress about 2:1:
/// a 4 MiB frame then holds about 30,000 of them, within the 100,000-record limit.
fn records(count: usize, t0: i64) -> Vec<Record> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..count)
        .map(|i| {
            let (a, b, c) = (next(), next(), next());
            let (trace, span) = (next(), next());
            let line = format!(
                "10.{}.{}.{} - - [24/Nov/2026:09:{:02}:{:02} +0000] \"GET /api/v1/items/{:x}?session={:016x} HTTP/1.1\" {} {} \"-\" \"client/{}\" trace_id={trace:016x}{span:016x} span_id={span:016x}",
                a % 256,
                (a >> 8) % 256,
                (a >> 16) % 256,
                (i / 60) % 60,
                i % 60,
                b % 100_000,
                c,
                [200, 200, 200, 404, 500][(b % 5) as usize],
                c % 50_000,
                a % 10,
            );
            Record::Log(LogRecord {
                ts_ms: t0 + i as i64,
                source: "/var/log/nginx/access.log".into(),
                service: "nginx".into(),
                line: line.into_bytes(),
                level: Some(Level::Info),
            })
        })
        .collect()
}

fn frame(seq: u64, records: Vec<Record>, t0: i64) -> Vec<u8> {
    let batch = Batch {
        agent: AgentIdentity {
            agent_id: "bench-agent".into(),
            hostname: "bench-host".into(),
            agent_version: "0.1.0".into(),
        },
        seq,
        created_ms: t0,
        records,
    };
    outpost_proto::encode(&batch).unwrap()
}

#[tokio::main]
async fn main() {
    let url = arg("--url", "");
    let requests: usize = arg("--requests", "5").parse().unwrap();
    let target = (arg("--compressed-mib", "4").parse::<f64>().unwrap() * 1024.0 * 1024.0) as usize;
    let t0 = outpost_sink_core::timestamp::now_ms() - 3_600_000;

    // Grow the record count until the frame is just under the target.
    let mut count = 10_000;
    let probe = frame(1, records(count, t0), t0).len();
    count = (count as f64 * target as f64 / probe as f64 * 0.98) as usize;
    let mut all = records(count, t0);
    while frame(1, all.clone(), t0).len() > target {
        all.truncate(all.len() * 99 / 100);
    }
    let one = frame(1, all.clone(), t0);
    let plain: usize = all
        .iter()
        .map(|r| match r {
            Record::Log(l) => l.line.len(),
            Record::Metric(_) => 0,
        })
        .sum();

    let started = Instant::now();
    let prepared = outpost_sink_core::ingest::prepare(&one, t0).unwrap();
    let prepare_ms = started.elapsed().as_secs_f64() * 1000.0;
    let objects = prepared.log_objects.len();

    let mut latencies = Vec::new();
    if !url.is_empty() {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(900))
            .build()
            .unwrap();
        for i in 0..requests {
            let body = frame(100 + i as u64, all.clone(), t0);
            let started = Instant::now();
            let response = client
                .post(format!("{url}/v1/batches"))
                .header("content-type", "application/vnd.outpost.frame")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(status.is_success(), "{status}: {text}");
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let json = serde_json::json!({
        "frame_bytes": one.len(),
        "records": all.len(),
        "line_bytes": plain,
        "log_objects": objects,
        "prepare_ms_in_process": (prepare_ms * 10.0).round() / 10.0,
        "request_ms": latencies.iter().map(|l| (l * 10.0).round() / 10.0).collect::<Vec<_>>(),
    });
    println!("{json}");
}
