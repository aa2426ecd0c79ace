//! The real agent binary with `kind = "lambda_url"` against a local stand-in for a Function
//! URL: signed frames arrive, a skewed clock is corrected once (and logged), a frame refused
//! with a 400 becomes a dead letter, and a 403 keeps the frames spooled until it is fixed.
#![allow(clippy::unwrap_used)]

mod common;
mod fake_function_url;

use common::*;
use fake_function_url::{FakeFunctionUrl, Reply, Seen};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const FAST_BATCH: &str = "[batch]\nmax_records = 50\nmax_bytes = \"32KiB\"\nmax_age = \"50ms\"\n";

/// The agent's AWS environment: static credentials, no instance metadata.
fn aws_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "AKIDTEST".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "secret".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

fn sink(server: &FakeFunctionUrl) -> String {
    format!(
        "kind = \"lambda_url\"\nurl = \"{}\"\nregion = \"us-east-1\"\n",
        server.url
    )
}

/// The log lines of a frame.
fn lines_of(frame: &[u8]) -> Vec<String> {
    outpost_proto::decode(frame)
        .unwrap()
        .records
        .into_iter()
        .filter_map(|r| match r {
            outpost_proto::Record::Log(l) => Some(String::from_utf8(l.line).unwrap()),
            outpost_proto::Record::Metric(_) => None,
        })
        .collect()
}

/// How often each line arrived in the requests answered 200.
fn accepted(seen: &[Seen]) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for r in seen {
        if r.status == 200 {
            for l in lines_of(&r.body) {
                *out.entry(l).or_default() += 1;
            }
        }
    }
    out
}

#[test]
fn signed_frames_reach_a_function_url_and_a_skewed_clock_is_corrected_once() {
    let server = FakeFunctionUrl::start(|n, _| {
        if n == 0 {
            Reply::signature_expired(Duration::from_secs(600))
        } else {
            Reply::status(200, "")
        }
    });
    let env = Env::new();
    let cfg = env.config_with_sink(&sink(&server), "*.log", FAST_BATCH);
    let expected = lines("signed", 0..300);
    append(&env.logs().join("app.log"), &expected);
    let log = env.path("agent.log");
    let mut agent = start_agent_with_env(&cfg, &log, &aws_env());

    poll_until("every line accepted", || {
        accepted(&server.seen()).len() == expected.len()
    });
    let text = wait_for_log(&log, "clock skew of ");
    assert!(
        ["+599 s", "+600 s", "+601 s"]
            .iter()
            .any(|s| text.contains(&format!(
                "clock skew of {s} against AWS; signing with the server's time"
            ))),
        "{text}"
    );
    assert_eq!(text.matches("clock skew of ").count(), 1, "{text}");
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));

    let seen = server.seen();
    let stored = accepted(&seen);
    for l in &expected {
        assert_eq!(stored.get(l), Some(&1), "{l:?} accepted exactly once");
    }
    for r in seen.iter() {
        let auth = r.header("authorization").unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
                && auth.contains("/us-east-1/lambda/aws4_request"),
            "{auth}"
        );
        assert!(r.header("x-amz-date").is_some());
        assert_eq!(r.header("x-amz-content-sha256").map(str::len), Some(64));
    }
}

#[test]
fn a_frame_the_function_url_refuses_with_400_is_dead_lettered_and_counted() {
    let server = FakeFunctionUrl::start(|_, _| Reply::status(400, r#"{"error":"bad frame"}"#));
    let env = Env::new();
    let cfg = env.config_with_sink(&sink(&server), "*.log", FAST_BATCH);
    let expected = lines("refused", 0..120);
    append(&env.logs().join("app.log"), &expected);
    let log = env.path("agent.log");
    let mut agent = start_agent_with_env(&cfg, &log, &aws_env());

    let dead = env.path("state/dead-letter");
    let dead_lines = || -> Vec<String> {
        let mut frames: Vec<_> = std::fs::read_dir(&dead)
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "frame"))
            .collect();
        frames.sort();
        frames
            .iter()
            .flat_map(|p| lines_of(&std::fs::read(p).unwrap()))
            .collect()
    };
    poll_until("every line dead-lettered", || {
        dead_lines().len() == expected.len()
    });
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));
    assert_eq!(dead_lines(), expected, "in order, each once");
    for e in std::fs::read_dir(&dead).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "reason") {
            let reason = std::fs::read_to_string(&p).unwrap();
            assert_eq!(reason, "HTTP 400: {\"error\":\"bad frame\"}\n");
        }
    }
    let out = run_ok(
        std::process::Command::new(agent_bin())
            .args(["status", "--json", "--config"])
            .arg(&cfg),
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        status["dead_letters"].as_u64(),
        Some(server.seen().len() as u64),
        "{status}"
    );
}

#[test]
fn access_denied_keeps_the_frames_spooled_until_iam_is_fixed() {
    let fixed = Arc::new(AtomicBool::new(false));
    let is_fixed = fixed.clone();
    let server = FakeFunctionUrl::start(move |_, _| {
        if is_fixed.load(Ordering::SeqCst) {
            Reply::status(200, "")
        } else {
            Reply::status(403, r#"{"Message":"Forbidden"}"#)
        }
    });
    let env = Env::new();
    let cfg = env.config_with_sink(&sink(&server), "*.log", FAST_BATCH);
    let expected = lines("denied", 0..80);
    append(&env.logs().join("app.log"), &expected);
    let log = env.path("agent.log");
    let mut agent = start_agent_with_env(&cfg, &log, &aws_env());

    wait_for_log(&log, "refuses this agent");
    assert!(accepted(&server.seen()).is_empty());
    fixed.store(true, Ordering::SeqCst);
    poll_until("every line accepted once IAM is fixed", || {
        accepted(&server.seen()).len() == expected.len()
    });
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));
    assert!(
        !env.path("state/dead-letter").exists(),
        "a 403 never dead-letters"
    );
    assert!(accepted(&server.seen()).values().all(|&n| n == 1));
    assert!(server.seen().iter().any(|r| r.status == 403));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("ERROR"), "logged at error: {text}");
}
