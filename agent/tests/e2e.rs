//! End to end on one machine: the real `outpost-sink` and `outpost-agent` binaries, a log file
//! written while the agent runs, and the data checked where the sink stores it.
//!
//! Needs the sink binary built beside the agent's: `cargo test --workspace` builds both.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn metric_count(db: &Path, name: &str) -> i64 {
    if !db.exists() {
        return 0;
    }
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row(
        "SELECT count(*) FROM points WHERE host = 'e2e-host' AND name = ?1",
        [name],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

fn write_config(dir: &Path, sink_url: &str, token: &Path) -> PathBuf {
    let cfg = dir.join("agent.toml");
    let text = format!(
        r#"[agent]
state_dir = "{state}"
hostname = "e2e-host"
id = "e2e-agent"

[host]
interval = "1s"

[tail]
poll_interval = "50ms"

[[logs]]
paths = ["{logs}/*.log"]
service = "app"

[batch]
max_records = 100
max_bytes = "64KiB"
max_age = "200ms"

[sink]
kind = "http"
url = "{sink_url}"
token_file = "{token}"
"#,
        state = dir.join("state").display(),
        logs = dir.join("logs").display(),
        token = token.display(),
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

#[test]
fn every_line_arrives_exactly_once_and_host_metrics_reach_the_db() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "  s3cret-token\n").unwrap();
    let (_sink, url) = start_sink("127.0.0.1:0", &data, &token);

    let app = logs.join("app.log");
    let before: Vec<String> = (0..100).map(|i| format!("before {i} INFO ready")).collect();
    append(&app, &before);

    let cfg = write_config(dir.path(), &url, &token);
    let mut agent = start_agent(&cfg, &dir.path().join("agent.log"));

    let mut expected: Vec<String> = before.clone();
    for round in 0..5 {
        let lines: Vec<String> = (0..200)
            .map(|i| {
                format!(
                    "round {round} line {i} ERROR something {}",
                    "x".repeat(i % 50)
                )
            })
            .collect();
        append(&app, &lines);
        expected.extend(lines);
    }
    let late: Vec<String> = (0..50).map(|i| format!("late file line {i}")).collect();
    append(&logs.join("late.log"), &late);
    expected.extend(late);

    poll_until("all lines in the sink", || {
        stored_messages(&data).values().sum::<usize>() >= expected.len()
    });
    poll_until("host metrics in metrics.db", || {
        metric_count(&data.join("metrics.db"), "cpu.utilization") > 0
            && metric_count(&data.join("metrics.db"), "memory.utilization") > 0
    });

    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0), "SIGTERM exits 0");
    let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap();
    assert!(
        !log.contains("AWS configuration loaded"),
        "an http sink never loads the AWS SDK's configuration: {log}"
    );

    for obj in stored_objects(&data) {
        assert_eq!(obj["host"], "e2e-host");
        assert_eq!(obj["service"], "app");
        assert!(obj["ts"].as_str().unwrap().ends_with('Z'));
    }
    let stored = stored_messages(&data);
    assert_eq!(stored.len(), expected.len(), "no unexpected lines");
    for line in &expected {
        assert_eq!(stored.get(line), Some(&1), "{line:?} stored exactly once");
    }
    // The sequence number survives in the state directory.
    let seq: u64 = std::fs::read_to_string(dir.path().join("state/seq"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(seq > 0);
}

#[test]
fn check_config_reports_every_error_with_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[host]\ninterval = \"often\"\n[batch]\nmax_bytes = \"9GiB\"\n[sink]\nkind = \"http\"\nurl = \"nope\"\n",
    )
    .unwrap();
    let out = Command::new(agent_bin())
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    for (line, key) in lines
        .iter()
        .zip(["host.interval", "batch.max_bytes", "sink.url"])
    {
        assert!(
            line.starts_with(&format!("{}: {key}: ", cfg.display())),
            "{line}"
        );
    }

    let token = dir.path().join("token");
    std::fs::write(&token, "t").unwrap();
    let good = write_config(dir.path(), "http://127.0.0.1:9", &token);
    let out = Command::new(agent_bin())
        .args(["check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_shipped_example_config_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/agent.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    let parsed = outpost_agent::config::parse(&text).unwrap();
    assert_eq!(parsed.logs.len(), 1);
    assert_eq!(parsed.logs[0].service, "app");
    // It validates as shipped (a fresh install starts with it): no token file to exist.
    let config = outpost_agent::config::validate(parsed, &example).unwrap();
    assert_eq!(config.sink.describe(), "http://127.0.0.1:7070/");
    assert_eq!(config.agent.state_dir, Path::new("/var/lib/outpost"));
}

#[test]
fn sample_prints_host_metrics_as_json() {
    let out = run_ok(Command::new(agent_bin()).arg("sample"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"cpu.utilization"));
    assert!(names.contains(&"memory.utilization"));
    assert!(names.contains(&"load.1m"));
}

#[test]
fn version_is_printed() {
    let out = run_ok(Command::new(agent_bin()).arg("--version"));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("outpost-agent {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
}
