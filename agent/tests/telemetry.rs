//! The agent's derived and self metrics end to end: per-service line and error-line counters
//! checked against generated logs with a known error fraction (the default level-based matcher
//! and a custom `error_pattern`), the heartbeat and self-metrics as stored by a real
//! `outpost-sink serve`, and the local Prometheus endpoint (`/metrics`, `/healthz`).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

/// Sum of a metric's stored values for one host and dimension set.
fn stored_sum(db: &Path, name: &str, dimensions: &str) -> f64 {
    if !db.exists() {
        return 0.0;
    }
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row(
        "SELECT coalesce(sum(value), 0) FROM points WHERE host = 'test-host' AND name = ?1 AND dimensions = ?2",
        [name, dimensions],
        |r| r.get(0),
    )
    .unwrap_or(0.0)
}

fn http_get(address: &str, path: &str) -> String {
    let mut s = TcpStream::connect(address).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Line `i` of the `app` log: three in ten are errors by their level (plain upper-case `ERROR`,
/// a JSON `fatal`, a plain `CRITICAL`); the others name no error level, though two of them
/// contain the word "error" (in lower case, or as a JSON message).
fn app_line(i: usize) -> String {
    match i % 10 {
        0 => format!("2026-11-24T10:00:00Z ERROR request {i} failed"),
        1 => format!(r#"{{"ts":"2026-11-24T10:00:00Z","level":"fatal","msg":"worker {i} died"}}"#),
        2 => format!("CRITICAL disk full on request {i}"),
        3 => format!("2026-11-24T10:00:00Z INFO request {i} ok, no error"),
        4 => format!(r#"{{"level":"info","msg":"error budget fine","n":{i}}}"#),
        5 => format!("WARN slow request {i}"),
        6 => format!("level=debug msg=\"tick {i}\""),
        _ => format!("plain line {i} without a level"),
    }
}

#[test]
fn error_counters_match_a_known_error_fraction_and_the_endpoint_serves_them() {
    let env = Env::new();
    let (_sink, url) = start_sink("127.0.0.1:0", &env.data(), &env.token());
    let billing = env.path("billing");
    std::fs::create_dir_all(&billing).unwrap();
    let extra = format!(
        r#"
[[logs]]
paths = ["{}/*.log"]
service = "billing"
error_pattern = 'Exception'

[telemetry]
interval = "1s"
listen = "127.0.0.1:0"
"#,
        billing.display()
    );
    let cfg = env.config(&url, "*.log", &extra);
    let log = env.path("agent.log");
    let mut agent = start_agent(&cfg, &log);
    let text = wait_for_log(&log, "telemetry endpoint listening");
    let address = text
        .lines()
        .find(|l| l.contains("telemetry endpoint listening"))
        .and_then(|l| l.split("address=").nth(1))
        .map(|a| a.split_whitespace().next().unwrap().to_owned())
        .unwrap();

    // 1000 app lines, 300 errors; 200 billing lines, 50 with an exception (and 20 that say
    // ERROR, which this input's pattern does not count).
    append(
        &env.logs().join("app.log"),
        &(0..1000).map(app_line).collect::<Vec<_>>(),
    );
    let billing_lines: Vec<String> = (0..200)
        .map(|i| match i % 20 {
            0..5 => format!("INFO charge {i}: java.lang.NullPointerException at Foo.bar"),
            5..7 => format!("ERROR charge {i} declined"),
            _ => format!("INFO charge {i} ok"),
        })
        .collect();
    append(&billing.join("billing.log"), &billing_lines);

    let db = env.data().join("metrics.db");
    let app = r#"{"service":"app"}"#;
    let bill = r#"{"service":"billing"}"#;
    poll_until("all lines counted at the sink", || {
        stored_sum(&db, "log.lines", app) == 1000.0
            && stored_sum(&db, "log.lines", bill) == 200.0
            && stored_sum(&db, "agent.lines_read", "{}") == 1200.0
    });
    assert_eq!(stored_sum(&db, "log.error_lines", app), 300.0);
    assert_eq!(stored_sum(&db, "log.error_lines", bill), 50.0);
    poll_until("two heartbeats", || {
        stored_sum(&db, "agent.heartbeat", "{}") >= 2.0
    });
    poll_until("batches counted as sent", || {
        stored_sum(&db, "agent.batches_sent", "{}") >= 1.0
    });
    assert_eq!(stored_sum(&db, "agent.batches_failed", "{}"), 0.0);

    let metrics = http_get(&address, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    for want in [
        "\noutpost_log_lines_total{service=\"app\"} 1000\n",
        "\noutpost_log_error_lines_total{service=\"app\"} 300\n",
        "\noutpost_log_lines_total{service=\"billing\"} 200\n",
        "\noutpost_log_error_lines_total{service=\"billing\"} 50\n",
        "\noutpost_agent_lines_read_total 1200\n",
        "\noutpost_agent_files_watched 2\n",
    ] {
        assert!(metrics.contains(want), "{want:?} not in:\n{metrics}");
    }
    let health = http_get(&address, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    assert!(health.contains(r#""status":"ok""#), "{health}");

    agent.signal("-TERM");
    assert!(agent.wait().success());
}
