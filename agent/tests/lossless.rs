//! The agent's promise, tested on the real binaries: no log line lost and none stored twice,
//! across restarts, kill -9, a sink outage, a full spool and a corrupt spool segment.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::time::Duration;

const FAST_BATCH: &str = "[batch]\nmax_records = 200\nmax_bytes = \"32KiB\"\nmax_age = \"50ms\"\n";

fn lines(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| format!("{prefix} {i:06} lorem ipsum dolor"))
        .collect()
}

#[test]
fn restarts_resume_where_they_stopped_even_across_a_rotation() {
    let env = Env::new();
    let (_sink, url) = start_sink("127.0.0.1:0", &env.data(), &env.token());
    let cfg = env.config(&url, "*.log", FAST_BATCH);
    let app = env.logs().join("app.log");
    let mut expected = lines("first", 0..300);
    append(&app, &expected);

    let mut agent = start_agent(&cfg, &env.path("agent.log"));
    poll_until("first lines", || stored_messages(&env.data()).len() == 300);
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));

    // While the agent is down: more lines, then a rotation by rename, then a new file.
    let more = lines("while-down", 0..200);
    append(&app, &more);
    expected.extend(more);
    std::fs::rename(&app, env.logs().join("app.log.1")).unwrap();
    let after = lines("after-rotation", 0..100);
    append(&app, &after);
    expected.extend(after);

    let mut agent = start_agent(&cfg, &env.path("agent.log"));
    poll_until("all lines", || {
        stored_messages(&env.data()).len() >= expected.len()
    });
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));
    assert_exactly_once(&env.data(), &expected);

    // `status` reads the same state: app.log fully read, nothing left in the spool.
    let out = run_ok(
        std::process::Command::new(agent_bin())
            .args(["status", "--json", "--config"])
            .arg(&cfg),
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files = status["files"].as_array().unwrap();
    let at_app: Vec<&str> = files
        .iter()
        .filter(|f| f["path"] == app.to_str().unwrap())
        .map(|f| f["state"].as_str().unwrap())
        .collect();
    // The file rotated away (recorded under its original name) and the new one.
    assert_eq!(at_app.len(), 2, "{status}");
    assert!(
        at_app.contains(&"rotated") && at_app.contains(&"same"),
        "{status}"
    );
    let current = files
        .iter()
        .find(|f| f["path"] == app.to_str().unwrap() && f["state"] == "same")
        .unwrap();
    assert_eq!(current["lag_bytes"], 0);
    assert!(status["last_ack_ms"].as_u64().is_some());
    assert_eq!(status["dead_letters"], 0);
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let env = Env::new();
    let (_sink, url) = start_sink("127.0.0.1:0", &env.data(), &env.token());
    let cfg = env.config(&url, "*.log", FAST_BATCH);
    let writer = Writer::start(env.logs().join("app.log"), "crash", 20);
    // A fixed-seed xorshift picks the moments, so a failure can be replayed.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..8 {
        let mut agent = start_agent(&cfg, &env.path("agent.log"));
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let before = writer.written();
        // Let the agent work for a while: at least until the writer wrote more.
        poll_until("the writer to go on", || writer.written() > before + 20);
        std::thread::sleep(Duration::from_millis(50 + x % 400));
        agent.signal("-KILL");
        let status = agent.wait();
        assert_eq!(status.code(), None, "round {round}: killed by a signal");
    }
    let expected = writer.finish();
    let mut agent = start_agent(&cfg, &env.path("agent.log"));
    poll_until("every line after the crashes", || {
        stored_messages(&env.data()).len() >= expected.len()
    });
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));
    assert_exactly_once(&env.data(), &expected);
}

#[test]
fn a_sink_outage_is_bridged_by_the_spool() {
    let env = Env::new();
    let (mut sink, url) = start_sink("127.0.0.1:0", &env.data(), &env.token());
    let addr = url.trim_start_matches("http://").to_owned();
    let cfg = env.config(&url, "*.log", FAST_BATCH);
    let app = env.logs().join("app.log");
    let mut agent = start_agent(&cfg, &env.path("agent.log"));
    let mut expected = lines("before", 0..100);
    append(&app, &expected);
    poll_until("lines before the outage", || {
        stored_messages(&env.data()).len() == 100
    });

    sink.signal("-TERM");
    assert_eq!(sink.wait().code(), Some(0));
    let during = lines("during-outage", 0..2000);
    append(&app, &during);
    expected.extend(during);
    // The lines are read and spooled (the checkpoint covers the whole file) while the sink is
    // away.
    let size = std::fs::metadata(&app).unwrap().len();
    poll_until("the outage's lines to be spooled", || {
        std::fs::read_to_string(env.path("state/checkpoints.json"))
            .is_ok_and(|t| t.contains(&format!("\"offset\":{size}")))
    });
    assert!(agent.is_running());

    let (_sink, _) = start_sink(&addr, &env.data(), &env.token());
    poll_until("the outage's lines to arrive", || {
        stored_messages(&env.data()).len() >= expected.len()
    });
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));
    assert_exactly_once(&env.data(), &expected);
}

#[test]
fn a_full_spool_pauses_reading_and_resumes_without_loss() {
    let env = Env::new();
    let (mut sink, url) = start_sink("127.0.0.1:0", &env.data(), &env.token());
    let addr = url.trim_start_matches("http://").to_owned();
    sink.signal("-TERM");
    sink.wait();
    let extra = format!("{FAST_BATCH}[spool]\nmax_bytes = \"2MiB\"\nsegment_bytes = \"1MiB\"\n");
    let cfg = env.config(&url, "*.log", &extra);
    // Hard to compress: hex of a xorshift stream, ~8 MiB raw, more than twice the spool compressed.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let expected: Vec<String> = (0..60_000)
        .map(|i| {
            let mut s = format!("full {i:06} ");
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push_str(&format!("{x:016x}"));
            }
            s
        })
        .collect();
    append(&env.logs().join("app.log"), &expected);
    let log = env.path("agent.log");
    let mut agent = start_agent(&cfg, &log);
    poll_until("the spool to fill", || {
        assert!(
            agent.is_running(),
            "the agent exited: see {}",
            log.display()
        );
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("spool full"))
    });
    assert!(agent.is_running());
    let (_sink, _) = start_sink(&addr, &env.data(), &env.token());
    poll_until("every line once the sink is back", || {
        stored_messages(&env.data()).len() >= expected.len()
    });
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));
    assert_exactly_once(&env.data(), &expected);
}

#[test]
fn a_corrupt_spool_segment_is_set_aside_and_the_agent_goes_on() {
    let env = Env::new();
    let (mut sink, url) = start_sink("127.0.0.1:0", &env.data(), &env.token());
    let addr = url.trim_start_matches("http://").to_owned();
    sink.signal("-TERM");
    sink.wait();
    let cfg = env.config(&url, "*.log", FAST_BATCH);
    let app = env.logs().join("app.log");
    append(&app, &lines("lost-with-the-segment", 0..3000));
    let mut agent = start_agent(&cfg, &env.path("agent.log"));
    let size = std::fs::metadata(&app).unwrap().len();
    poll_until("lines spooled", || {
        std::fs::read_to_string(env.path("state/checkpoints.json"))
            .is_ok_and(|t| t.contains(&format!("\"offset\":{size}")))
    });
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));

    // Flip bytes in the middle of the spooled data.
    let seg = std::fs::read_dir(env.path("state/spool"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0xff;
    }
    std::fs::write(&seg, &bytes).unwrap();

    let (_sink, _) = start_sink(&addr, &env.data(), &env.token());
    let mut agent = start_agent(&cfg, &env.path("agent.log"));
    let fresh = lines("after-corruption", 0..100);
    append(&app, &fresh);
    poll_until("new lines after the corruption", || {
        let stored = stored_messages(&env.data());
        fresh.iter().all(|l| stored.get(l) == Some(&1))
    });
    assert!(agent.is_running());
    let set_aside = std::fs::read_dir(env.path("state/spool"))
        .unwrap()
        .flatten()
        .any(|e| e.path().to_string_lossy().ends_with(".corrupt"));
    assert!(
        set_aside,
        "the corrupt segment is kept aside for inspection"
    );
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));
    let stored = stored_messages(&env.data());
    assert!(stored.values().all(|&n| n == 1), "nothing stored twice");
}

#[test]
fn sighup_adds_an_input_without_losing_a_position_and_a_bad_config_is_refused() {
    let env = Env::new();
    let (_sink, url) = start_sink("127.0.0.1:0", &env.data(), &env.token());
    std::fs::create_dir_all(env.logs().join("b")).unwrap();
    let cfg = env.config(&url, "*.log", FAST_BATCH);
    let log = env.path("agent.log");
    let mut agent = start_agent(&cfg, &log);
    let a = env.logs().join("a.log");
    let mut expected = lines("a-before", 0..100);
    append(&a, &expected);
    poll_until("a.log's first lines", || {
        stored_messages(&env.data()).len() == 100
    });

    // Add an input and reload.
    let extra = format!(
        "{FAST_BATCH}[[logs]]\npaths = [\"{}/b/*.log\"]\nservice = \"b\"\n",
        env.logs().display()
    );
    env.config(&url, "*.log", &extra);
    agent.signal("-HUP");
    poll_until("the reload", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("config reloaded"))
    });
    let b_lines = lines("b", 0..50);
    append(&env.logs().join("b").join("b.log"), &b_lines);
    expected.extend(b_lines);
    let more = lines("a-after", 0..50);
    append(&a, &more);
    expected.extend(more);
    poll_until("both inputs' lines", || {
        stored_messages(&env.data()).len() >= expected.len()
    });

    // A broken config is refused; the agent keeps running on the old one.
    std::fs::write(&cfg, "[sink]\nkind = \"carrier-pigeon\"\n").unwrap();
    agent.signal("-HUP");
    poll_until("the refusal", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("config rejected"))
    });
    let last = lines("a-last", 0..10);
    append(&a, &last);
    expected.extend(last);
    poll_until("lines after the refused reload", || {
        stored_messages(&env.data()).len() >= expected.len()
    });
    assert!(agent.is_running());
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));
    assert_exactly_once(&env.data(), &expected);
}
