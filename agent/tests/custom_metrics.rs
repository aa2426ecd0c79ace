//! Custom metrics end to end: the real agent with a `[textfile]` directory (a good file and
//! bad ones) and `[[exec]]` inputs (JSON lines, a failing command, one that times out),
//! shipping to a real `outpost-sink serve`; the good metrics arrive with their values and
//! dimensions, every problem is logged by file, line or command, and the agent keeps running.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;

/// One stored point: (dimensions as the sink's JSON, value, unit).
type Stored = BTreeMap<String, Vec<(String, Option<f64>, String)>>;

/// The points the sink stored for `test-host`, by name.
fn stored_points(db: &Path) -> Stored {
    let mut out = Stored::new();
    if !db.exists() {
        return out;
    }
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return out;
    };
    let Ok(mut stmt) = conn.prepare(
        "SELECT name, dimensions, value, unit FROM points WHERE host = 'test-host' ORDER BY ts_ms",
    ) else {
        return out;
    };
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<f64>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .unwrap();
    for (name, dims, value, unit) in rows.flatten() {
        out.entry(name).or_default().push((dims, value, unit));
    }
    out
}

/// The text without ANSI colour sequences (the log's fields are coloured).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ ... final byte in @..~
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether some line of `log` contains every one of `needles`.
fn logged(log: &str, needles: &[&str]) -> bool {
    log.lines().any(|l| needles.iter().all(|n| l.contains(n)))
}

#[test]
fn textfile_and_exec_metrics_arrive_and_every_problem_is_reported() {
    let env = Env::new();
    let (_sink, url) = start_sink("127.0.0.1:0", &env.data(), &env.token());

    let textfile = env.path("textfile");
    std::fs::create_dir_all(&textfile).unwrap();
    std::fs::write(
        textfile.join("good.prom"),
        "# HELP node_custom_jobs Jobs done.\n# TYPE node_custom_jobs counter\nnode_custom_jobs{zone=\"b\",queue=\"mail\"} 42\nnode_custom_temp 21.5\n",
    )
    .unwrap();
    let too_many: Vec<String> = (0..=30).map(|i| format!("l{i}=\"v\"")).collect();
    std::fs::write(
        textfile.join("bad.prom"),
        format!(
            "bad_file_good_line 1\nthis is {{ not valid\ntoo_many{{{}}} 1\n",
            too_many.join(",")
        ),
    )
    .unwrap();
    std::fs::write(textfile.join("binary.prom"), b"\xff\xfe\x00garbage\n").unwrap();
    // Being written: never read.
    std::fs::write(textfile.join("good.prom.4242"), "half_written 1\n").unwrap();

    let json =
        r#"echo '{"name":"app_queue_depth","value":7,"labels":{"q":"mail"},"unit":"Count"}'"#;
    let extra = format!(
        r#"
[telemetry]
interval = "1s"

[textfile]
dir = "{textfile}"
interval = "1s"

[[exec]]
name = "queue"
command = ["/bin/sh", "-c", {json:?}]
interval = "2s"
format = "json"

[[exec]]
name = "broken"
command = ["false"]
interval = "2s"

[[exec]]
name = "slow"
command = ["sleep", "30"]
interval = "2s"
timeout = "1s"
"#,
        textfile = textfile.display(),
    );
    let cfg = env.config(&url, "*.log", &extra);
    let log = env.path("agent.log");
    let mut agent = start_agent(&cfg, &log);

    let db = env.data().join("metrics.db");
    let want = [
        "node_custom_jobs",
        "node_custom_temp",
        "bad_file_good_line",
        "app_queue_depth",
    ];
    let mut points = Stored::new();
    poll_until("the custom metrics in metrics.db", || {
        points = stored_points(&db);
        want.iter().all(|n| points.contains_key(*n))
    });
    assert_eq!(
        points["node_custom_jobs"][0],
        (
            r#"{"queue":"mail","zone":"b"}"#.to_owned(),
            Some(42.0),
            "None".to_owned()
        )
    );
    assert_eq!(
        points["node_custom_temp"][0],
        ("{}".to_owned(), Some(21.5), "None".to_owned())
    );
    assert_eq!(points["bad_file_good_line"][0].1, Some(1.0));
    assert_eq!(
        points["app_queue_depth"][0],
        (r#"{"q":"mail"}"#.to_owned(), Some(7.0), "Count".to_owned())
    );
    assert!(!points.contains_key("too_many"), "{points:?}");
    assert!(!points.contains_key("half_written"), "{points:?}");

    // Every problem, by file and line or by command; the slow command was timed out.
    let bad = textfile.join("bad.prom").display().to_string();
    let binary = textfile.join("binary.prom").display().to_string();
    let expected: [&[&str]; 5] = [
        &[
            "textfile: bad line skipped",
            &bad,
            "line=2",
            "\"is\" is not a number",
        ],
        &[
            "textfile: bad line skipped",
            &bad,
            "line=3",
            "31 labels, more than 30",
        ],
        &[
            "textfile: bad line skipped",
            &binary,
            "line=1",
            "not valid UTF-8",
        ],
        &[
            "exec: run failed",
            "exec=broken",
            "command=false",
            "exit status: 1",
        ],
        &[
            "exec: run failed",
            "exec=slow",
            "command=sleep 30",
            "timed out after 1s; killed",
        ],
    ];
    let start = std::time::Instant::now();
    let text = loop {
        let text = plain(&std::fs::read_to_string(&log).unwrap_or_default());
        let missing: Vec<_> = expected.iter().filter(|n| !logged(&text, n)).collect();
        if missing.is_empty() {
            break text;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "not logged: {missing:?}\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        !text.contains("good.prom"),
        "the good file has no problem: {text}"
    );
    // The problems are counted in the agent's own `agent.custom_errors`.
    poll_until("agent.custom_errors > 0 in metrics.db", || {
        stored_points(&db)
            .get("agent.custom_errors")
            .is_some_and(|ps| ps.iter().filter_map(|p| p.1).sum::<f64>() > 0.0)
    });
    assert!(agent.is_running(), "the agent keeps running: {text}");

    // It stops promptly and cleanly even with a command running.
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0), "{text}");
}

#[test]
fn check_config_names_the_bad_custom_keys() {
    let env = Env::new();
    let extra = r#"
[textfile]
dir = ""
interval = "often"

[[exec]]
name = "a b"
command = []
interval = "10s"
timeout = "20s"

[[exec]]
name = "dup"
command = ["/bin/true"]

[[exec]]
name = "dup"
command = ["/bin/true"]
format = "yaml"
"#;
    let cfg = env.config("http://127.0.0.1:9", "*.log", extra);
    let out = std::process::Command::new(agent_bin())
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    // A syntax problem (an unknown format) is reported alone, with its line.
    assert!(err.contains("yaml"), "{err}");

    let fixed = extra.replace("format = \"yaml\"\n", "");
    let cfg = env.config("http://127.0.0.1:9", "*.log", &fixed);
    let out = std::process::Command::new(agent_bin())
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let keys: Vec<&str> = err
        .lines()
        .map(|l| {
            l.strip_prefix(&format!("{}: ", cfg.display()))
                .unwrap_or_else(|| panic!("{l}"))
                .split(": ")
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        keys,
        [
            "textfile.dir",
            "textfile.interval",
            "exec[0].name",
            "exec[0].command",
            "exec[0].timeout",
            "exec[2].name",
        ],
        "{err}"
    );
}

#[test]
fn the_printed_config_keeps_the_custom_inputs() {
    let env = Env::new();
    let extra = "\n[textfile]\ndir = \"textfile\"\n\n[[exec]]\nname = \"probe\"\ncommand = [\"/usr/lib/probe\", \"--all\"]\nformat = \"json\"\n";
    let cfg = env.config("http://127.0.0.1:9", "*.log", extra);
    let out = run_ok(
        std::process::Command::new(agent_bin())
            .args(["check-config", "--print", "--config"])
            .arg(&cfg),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let parsed = outpost_agent::config::parse(&text).unwrap();
    let textfile = parsed.textfile.unwrap();
    assert_eq!(textfile.dir, Path::new("textfile"));
    assert_eq!(textfile.interval, "60s");
    assert_eq!(parsed.exec.len(), 1);
    assert_eq!(parsed.exec[0].command, ["/usr/lib/probe", "--all"]);
    assert_eq!(parsed.exec[0].interval, "60s");
    assert_eq!(
        parsed.exec[0].format,
        outpost_agent::config::ExecFormat::Json
    );
}
