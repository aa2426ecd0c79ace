//! Local alarms end to end: the real `outpost-sink serve --rules` with 1-second periods, a
//! webhook receiver in the test, CPU batches above then below the threshold, and log-line
//! counters whose error rate (a rule with a denominator) crosses 5 % and falls back.

// clippy.toml's allow-unwrap-in-tests covers #[test] functions, not these helpers.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use outpost_proto::{Dimension, MetricPoint, Record, Unit};
use reqwest::StatusCode;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_outpost-sink");
const TOKEN: &str = "alarm-test-token";
/// Generous: the alarm needs a few 1-second periods each way; this only bounds a hang.
const DEADLINE: Duration = Duration::from_secs(60);
/// How often the test agent sends a sample (its collection interval, not a synchronisation).
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

const RULES_HEAD: &str = r#"
[evaluation]
delay = "0s"

[notify]
webhook_url = "WEBHOOK"
max_attempts = 3
"#;

/// The evaluation and notification settings, then the shared `cpu-high` fixture (maximum over
/// 1 s, 2 of 3).
fn rules_text() -> String {
    RULES_HEAD.to_owned() + &outpost_testkit::cpu_high_rule("max", "1s", 2, 3)
}

/// The running binary; killed (by its pid) if the test fails before stopping it.
struct Sink {
    child: Child,
    addr: SocketAddr,
}

impl Sink {
    fn start(data: &Path, rules: &Path, token_file: &Path) -> Self {
        let (child, url) = outpost_testkit::spawn_sink_serve(
            Path::new(BIN),
            &[
                "--listen".as_ref(),
                "127.0.0.1:0".as_ref(),
                "--data".as_ref(),
                data.as_os_str(),
                "--rules".as_ref(),
                rules.as_os_str(),
                "--token-file".as_ref(),
                token_file.as_os_str(),
            ],
        );
        let addr = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("unexpected URL {url:?}"))
            .parse()
            .unwrap();
        Self { child, addr }
    }

    async fn post(&self, seq: u64, points: Vec<MetricPoint>) {
        let records = points.into_iter().map(Record::Metric).collect();
        let batch = outpost_testkit::test_batch(seq, now_ms(), records);
        let reply = reqwest::Client::new()
            .post(format!("http://{}/v1/batches", self.addr))
            .bearer_auth(TOKEN)
            .header("content-type", "application/octet-stream")
            .body(outpost_proto::encode(&batch).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
    }

    async fn alarms(&self, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = reqwest::Client::new().get(format!("http://{}/v1/alarms", self.addr));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let reply = request.send().await.unwrap();
        let status = reply.status();
        (
            status,
            serde_json::from_str(&reply.text().await.unwrap()).unwrap(),
        )
    }

    /// The state of alarm `name` of host web-1.
    async fn state_of(&self, name: &str) -> Option<String> {
        let (status, body) = self.alarms(Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name && a["host"] == "web-1")
            .map(|a| a["state"].as_str().unwrap().to_owned())
    }

    /// SIGTERM, then the exit status must be 0.
    fn stop(mut self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        assert_eq!(self.child.wait().unwrap().code(), Some(0));
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Already reaped after stop(); otherwise end our own child, by its pid.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A point of `name` with one dimension, now.
fn point(name: &str, key: &str, value_of_key: &str, value: f64) -> MetricPoint {
    MetricPoint {
        name: name.into(),
        ts_ms: now_ms(),
        value,
        unit: if name == "cpu.utilization" {
            Unit::Percent
        } else {
            Unit::Count
        },
        dimensions: vec![Dimension {
            key: key.into(),
            value: value_of_key.into(),
        }],
    }
}

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

type Received = Arc<Mutex<Vec<Value>>>;

/// A webhook receiver on 127.0.0.1:0 that records every JSON body.
async fn webhook() -> (SocketAddr, Received) {
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            post(
                |State(r): State<Received>, Json(body): Json<Value>| async move {
                    r.lock().unwrap().push(body);
                },
            ),
        )
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

/// Send `value` every [`SAMPLE_EVERY`] until the alarm is in `state`.
async fn feed_until(sink: &Sink, seq: &mut u64, value: f64, state: &str) {
    let cpu = || vec![point("cpu.utilization", "cpu", "total", value)];
    feed_points_until(sink, seq, cpu, "cpu-high", state).await;
}

/// Send `points()` every [`SAMPLE_EVERY`] until alarm `alarm` of web-1 is in `state`.
async fn feed_points_until(
    sink: &Sink,
    seq: &mut u64,
    points: impl Fn() -> Vec<MetricPoint>,
    alarm: &str,
    state: &str,
) {
    let start = Instant::now();
    let mut pace = tokio::time::interval(SAMPLE_EVERY);
    loop {
        pace.tick().await;
        *seq += 1;
        sink.post(*seq, points()).await;
        if sink.state_of(alarm).await.as_deref() == Some(state) {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "{alarm} never reached {state}");
    }
}

fn transitions(received: &Received) -> Vec<(String, String)> {
    received
        .lock()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["old_state"].as_str().unwrap().to_owned(),
                b["new_state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_above_then_below_the_threshold_alarms_notifies_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let (hook, received) = webhook().await;
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        rules_text().replace("WEBHOOK", &format!("http://{hook}/hook")),
    )
    .unwrap();
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let data = tmp.path().join("data");
    let sink = Sink::start(&data, &rules, &token_file);

    // Same authentication as the other routes.
    let (status, _) = sink.alarms(None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let mut seq = 0;
    feed_until(&sink, &mut seq, 95.0, "ALARM").await;
    feed_until(&sink, &mut seq, 5.0, "OK").await;

    // Both notifications arrive (delivery is asynchronous: poll with a deadline).
    let start = Instant::now();
    let wanted = |t: &[(String, String)]| {
        let alarm = t.iter().position(|(_, new)| new == "ALARM");
        alarm.is_some_and(|i| {
            t[i + 1..]
                .iter()
                .any(|(old, new)| old == "ALARM" && new == "OK")
        })
    };
    while !wanted(&transitions(&received)) {
        assert!(start.elapsed() < DEADLINE, "{:?}", transitions(&received));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bodies = received.lock().unwrap().clone();
    for body in &bodies {
        assert_eq!(body["alarm"], "cpu-high", "{body}");
        assert_eq!(body["host"], "web-1", "{body}");
        assert!(body["time"].as_str().unwrap().ends_with('Z'), "{body}");
        assert!(body["time_ms"].as_i64().unwrap() > 0, "{body}");
    }
    let to_alarm = bodies.iter().find(|b| b["new_state"] == "ALARM").unwrap();
    let reason = to_alarm["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("Threshold Crossed: ") && reason.contains("the threshold (80)"),
        "{reason}"
    );

    // GET /v1/alarms shows the state and the same history.
    let (status, body) = sink.alarms(Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let alarm = &body["alarms"][0];
    assert_eq!(
        (
            &alarm["name"],
            &alarm["host"],
            &alarm["state"],
            &alarm["scope"]
        ),
        (
            &Value::from("cpu-high"),
            &Value::from("web-1"),
            &Value::from("OK"),
            &Value::from("per_host")
        ),
        "{body}"
    );
    assert_eq!(alarm["datapoints"].as_array().unwrap().len(), 3, "{body}");
    assert_eq!(alarm["denominator"], Value::Null, "{body}");
    let history: Vec<(String, String)> = alarm["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["old_state"].as_str().unwrap().to_owned(),
                t["new_state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(wanted(&history), "{history:?}");
    // The same transitions in the same order (either side may already hold a later one: with no
    // data the alarm goes on to INSUFFICIENT_DATA).
    let sent = transitions(&received);
    let common = history.len().min(sent.len());
    assert!(common >= 2, "{history:?} {sent:?}");
    assert_eq!(history[..common], sent[..common]);
    assert!(
        body["notifications"]["delivered"].as_u64().unwrap() >= 2,
        "{body}"
    );
    assert_eq!(body["notifications"]["failed"], 0, "{body}");
    sink.stop();

    // A restart keeps the history (later evaluations may only append to it).
    let before = alarm["history"].as_array().unwrap().clone();
    let sink = Sink::start(&data, &rules, &token_file);
    let (_, after) = sink.alarms(Some(TOKEN)).await;
    let after = after["alarms"][0]["history"].as_array().unwrap().clone();
    assert!(after.len() >= before.len(), "{after:?}");
    assert_eq!(after[..before.len()], before[..]);
    sink.stop();
}

/// The evaluation and notification settings, then the shared error-rate fixture (1 s, 2 of
/// 3, missing data not breaching).
fn rate_rules_text() -> String {
    RULES_HEAD.to_owned()
        + &outpost_testkit::error_rate_rule("error-rate-high", "1s", 2, 3)
        + "missing_data = \"not_breaching\"
"
}

/// One interval's log counters of web-1: `errors` of 100 lines for service `app`, and 10 of 10
/// for service `db`, which the rule (dimensions `service = "app"`) must not count.
fn log_counters(errors: f64) -> Vec<MetricPoint> {
    vec![
        point("log.lines", "service", "app", 100.0),
        point("log.error_lines", "service", "app", errors),
        point("log.lines", "service", "db", 10.0),
        point("log.error_lines", "service", "db", 10.0),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_rate_above_then_below_5_percent_alarms_notifies_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let (hook, received) = webhook().await;
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        rate_rules_text().replace("WEBHOOK", &format!("http://{hook}/hook")),
    )
    .unwrap();
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let sink = Sink::start(&tmp.path().join("data"), &rules, &token_file);

    let mut seq = 0;
    // 20 % of app's lines are errors; then 1 %. Were db's lines counted, the rate would stay
    // above 5 % (11 of 110) and the alarm would never return to OK.
    let alarm = "error-rate-high";
    feed_points_until(&sink, &mut seq, || log_counters(20.0), alarm, "ALARM").await;
    feed_points_until(&sink, &mut seq, || log_counters(1.0), alarm, "OK").await;

    let start = Instant::now();
    let wanted = |t: &[(String, String)]| {
        let alarm = t.iter().position(|(_, new)| new == "ALARM");
        alarm.is_some_and(|i| {
            t[i + 1..]
                .iter()
                .any(|(old, new)| old == "ALARM" && new == "OK")
        })
    };
    while !wanted(&transitions(&received)) {
        assert!(start.elapsed() < DEADLINE, "{:?}", transitions(&received));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bodies = received.lock().unwrap().clone();
    for body in &bodies {
        assert_eq!(body["alarm"], alarm, "{body}");
        assert_eq!(body["host"], "web-1", "{body}");
    }
    let to_alarm = bodies.iter().find(|b| b["new_state"] == "ALARM").unwrap();
    let reason = to_alarm["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("Threshold Crossed: ") && reason.contains("the threshold (5)"),
        "{reason}"
    );

    // The datapoints are percentages of app's lines: each period holds batches of 20 % and/or
    // 1 % (a period without batches is null), so every value lies between 1 and 20.
    let (status, body) = sink.alarms(Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let record = body["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == alarm)
        .unwrap();
    assert_eq!(record["metric"], "log.error_lines", "{body}");
    assert_eq!(record["denominator"], "log.lines", "{body}");
    let values: Vec<f64> = record["datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["value"].as_f64())
        .collect();
    assert!(
        values.iter().all(|v| (1.0..=20.0).contains(v)),
        "{values:?}"
    );
    sink.stop();
}

#[test]
fn a_bad_rules_file_stops_the_start_naming_the_file_and_the_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules.toml");
    let bad = rules_text()
        .replace("WEBHOOK", "http://127.0.0.1:9/hook")
        .replace("datapoints_to_alarm = 2", "datapoints_to_alarm = 4")
        .replace("\"1s\"", "\"a while\"");
    std::fs::write(&rules, bad).unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(tmp.path().join("data"))
        .arg("--rules")
        .arg(&rules)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let file = rules.display().to_string();
    for key in ["rule[0].period", "rule[0].datapoints_to_alarm"] {
        assert!(stderr.contains(&format!("{file}: {key}: ")), "{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}
