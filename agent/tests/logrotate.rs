//! Rotation by the real `logrotate` (3.21, installed by `.ci/run`) while a writer appends at a
//! high rate and the agent ships to the real sink: rename rotation (`create`, also with
//! `compress` and `delaycompress`) loses and duplicates nothing; copytruncate loses only what
//! docs/tailing.md says it may.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

const ROTATIONS: usize = 12;
const BATCH: &str = "[batch]\nmax_records = 500\nmax_bytes = \"64KiB\"\nmax_age = \"50ms\"\n";

/// Whether logrotate is here; under CI its absence is a failure, not a skip.
fn have_logrotate() -> bool {
    let found = Command::new("logrotate").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "logrotate is not installed (CI=true): .ci/run must install it"
        );
        eprintln!("SKIPPED: logrotate is not installed (apt-get install logrotate)");
    }
    found
}

/// Run the writer, the agent and `ROTATIONS` forced rotations with the given directives.
/// Returns the test environment and every line written.
fn rotate_while_writing(directives: &str) -> (Env, Vec<String>, Proc, Proc) {
    let env = Env::new();
    let (sink, url) = start_sink("127.0.0.1:0", &env.data(), &env.token());
    let cfg = env.config(&url, "app.log", BATCH);
    let app = env.logs().join("app.log");
    let conf = env.path("logrotate.conf");
    std::fs::write(
        &conf,
        format!(
            "{app} {{\n    rotate 1000\n    missingok\n    notifempty\n{directives}}}\n",
            app = app.display()
        ),
    )
    .unwrap();
    append(&app, &lines("start", 0..10));
    let agent = start_agent(&cfg, &env.path("agent.log"));
    // Rotate only once the agent follows the file: a file rotated away before the agent ever
    // saw it is not one it can be expected to find.
    poll_until("the agent to follow app.log", || {
        stored_messages(&env.data()).contains_key("start 000009 lorem ipsum dolor")
    });
    let writer = Writer::start(app.clone(), "rot", 20);
    for _ in 0..ROTATIONS {
        let before = writer.written();
        poll_until("the writer to write more", || {
            writer.written() >= before + 400
        });
        run_ok(
            Command::new("logrotate")
                .arg("-f")
                .arg("-s")
                .arg(env.path("logrotate.state"))
                .arg(&conf),
        );
        // What `postrotate` does for a daemon: reopen the log (a no-op for copytruncate, whose
        // whole point is a writer that never reopens, but harmless).
        if !directives.contains("copytruncate") {
            writer.reopen();
        }
    }
    let mut written = lines("start", 0..10);
    written.extend(writer.finish());
    (env, written, agent, sink)
}

fn stop(mut agent: Proc) {
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));
}

fn exactly_once_under(directives: &str) {
    if !have_logrotate() {
        return;
    }
    let (env, written, agent, _sink) = rotate_while_writing(directives);
    poll_until("every written line", || {
        stored_messages(&env.data()).len() >= written.len()
    });
    stop(agent);
    assert_exactly_once(&env.data(), &written);
    // The rotations really happened.
    let rotated = std::fs::read_dir(env.logs()).unwrap().count();
    assert!(
        rotated > ROTATIONS / 2,
        "only {rotated} files in the log directory"
    );
}

#[test]
fn create_rotation_loses_and_duplicates_nothing() {
    exactly_once_under("    create\n");
}

#[test]
fn compress_with_delaycompress_loses_and_duplicates_nothing() {
    exactly_once_under("    create\n    compress\n    delaycompress\n");
}

/// Lines of a file, in order.
fn file_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn copytruncate_loses_only_the_documented_race() {
    if !have_logrotate() {
        return;
    }
    let (env, written, agent, _sink) = rotate_while_writing("    copytruncate\n");
    // After the last truncation nothing races: every line of the current file arrives.
    let current = file_lines(&env.logs().join("app.log"));
    poll_until("the current file's lines", || {
        let stored = stored_messages(&env.data());
        current.iter().all(|l| stored.contains_key(l))
    });
    stop(agent);
    let stored = stored_messages(&env.data());
    assert!(stored.values().all(|&n| n == 1), "nothing stored twice");
    assert!(
        stored.keys().all(|l| written.contains(l)),
        "nothing stored that was not written"
    );
    // Each copy holds the lines written between two truncations. The agent read the original
    // up to some point before each truncation: of each copy it delivered a prefix, and lost at
    // most the copy's tail it had not read yet (the race docs/tailing.md describes). Lines in
    // no file at all were lost by logrotate itself, between its copy and its truncate.
    let mut copies = 0;
    let mut lost_in_race = 0;
    for entry in std::fs::read_dir(env.logs()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "app.log" {
            continue;
        }
        copies += 1;
        let copy = file_lines(&entry.path());
        let delivered: Vec<bool> = copy.iter().map(|l| stored.contains_key(l)).collect();
        let prefix = delivered.iter().take_while(|&&d| d).count();
        assert!(
            delivered[prefix..].iter().all(|&d| !d),
            "{name}: the agent skipped lines in the middle of a copy"
        );
        lost_in_race += copy.len() - prefix;
    }
    assert!(copies >= ROTATIONS / 2, "only {copies} copies");
    eprintln!(
        "copytruncate: {} lines written, {} stored, {lost_in_race} lost in the agent's race",
        written.len(),
        stored.len()
    );
}
