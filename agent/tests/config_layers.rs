//! Drop-in files (`agent.d/*.toml` beside the main file) and `OUTPOST_*` environment
//! overrides, tested on the real binaries: `check-config` shows what was merged, errors name
//! the drop-in or the variable, and `run` (with a SIGHUP reload) and `status` use the merged
//! config, the sink token from `OUTPOST_SINK_TOKEN` included.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::process::Command;

fn check_config(cfg: &std::path::Path, env: &[(&str, &str)], print: bool) -> std::process::Output {
    let mut cmd = Command::new(agent_bin());
    cmd.args(["check-config", "--config"]).arg(cfg);
    if print {
        cmd.arg("--print");
    }
    cmd.envs(env.iter().copied()).output().unwrap()
}

#[test]
fn check_config_lists_the_files_and_prints_the_merged_config_without_secrets() {
    let env = Env::new();
    let cfg = env.config("http://127.0.0.1:9", "*.log", "");
    let dropins = env.path("agent.d");
    std::fs::create_dir_all(&dropins).unwrap();
    // Read in byte order of their names; other files are ignored.
    std::fs::write(
        dropins.join("20-app.toml"),
        "[[logs]]\npaths = [\"/var/log/app2/*.log\"]\nservice = \"app2\"\n[batch]\nmax_age = \"2s\"\n",
    )
    .unwrap();
    std::fs::write(dropins.join("10-batch.toml"), "[batch]\nmax_age = \"1s\"\n").unwrap();
    std::fs::write(dropins.join("README"), "not toml").unwrap();

    let out = check_config(
        &cfg,
        &[
            ("OUTPOST_SINK_URL", "https://sink.example.com"),
            ("OUTPOST_SINK_TOKEN", "very-secret-token"),
        ],
        true,
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            format!("read {}", cfg.display()),
            format!("read {}", dropins.join("10-batch.toml").display()),
            format!("read {}", dropins.join("20-app.toml").display()),
            "environment: OUTPOST_SINK_URL, OUTPOST_SINK_TOKEN".to_owned(),
            format!("{}: ok", cfg.display()),
        ]
    );
    assert!(!stdout.contains("very-secret-token"), "{stdout}");
    assert!(
        stdout.contains("#   sink.url = OUTPOST_SINK_URL\n"),
        "{stdout}"
    );
    assert!(stdout.contains("OUTPOST_SINK_TOKEN (REDACTED"), "{stdout}");
    // The printed config is a config: the merged values, logs appended, the later file's
    // batch.max_age, the environment's URL.
    let printed = outpost_agent::config::parse(&stdout).unwrap();
    let services: Vec<&str> = printed.logs.iter().map(|l| l.service.as_str()).collect();
    assert_eq!(services, ["app", "app2"]);
    assert_eq!(printed.batch.max_age, "2s");
    assert_eq!(
        printed.sink.url.as_deref(),
        Some("https://sink.example.com")
    );

    // Without --print, nothing on stdout.
    let out = check_config(&cfg, &[], false);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
}

#[test]
fn check_config_errors_name_the_dropin_and_the_variable() {
    let env = Env::new();
    let cfg = env.config("http://127.0.0.1:9", "*.log", "");
    let dropins = env.path("agent.d");
    std::fs::create_dir_all(&dropins).unwrap();
    let bad = dropins.join("50-bad.toml");
    std::fs::write(&bad, "[host]\ninterval = \"often\"\n").unwrap();
    let out = check_config(&cfg, &[("OUTPOST_SINK_URL", "ftp://nope")], false);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{}: host.interval: ", bad.display())),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("environment OUTPOST_SINK_URL: sink.url: "),
        "{stderr}"
    );

    // Unknown keys are refused in a drop-in too, with its line and column.
    std::fs::write(&bad, "[batch]\nmax_age = \"1s\"\ncolour = \"blue\"\n").unwrap();
    let out = check_config(&cfg, &[], false);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!("{}:3:1: unknown field `colour`", bad.display())),
        "{stderr}"
    );
}

#[test]
fn run_and_reload_follow_dropin_inputs_and_status_uses_the_environment() {
    let env = Env::new();
    let (_sink, url) = start_sink("127.0.0.1:0", &env.data(), &env.token());
    // The main file follows logs/main-*.log; a drop-in adds logs/extra-*.log. Its token file
    // holds a token the sink refuses: the one from the environment wins.
    let wrong = env.path("wrong-token");
    std::fs::write(&wrong, "not-the-token\n").unwrap();
    let cfg = env.config_with_sink(
        &format!(
            "kind = \"http\"\nurl = \"{url}\"\ntoken_file = \"{}\"\n",
            wrong.display()
        ),
        "main-*.log",
        "[batch]\nmax_records = 100\nmax_age = \"50ms\"\n",
    );
    let dropins = env.path("agent.d");
    std::fs::create_dir_all(&dropins).unwrap();
    let glob = |name: &str| format!("{}/{name}-*.log", env.logs().display());
    std::fs::write(
        dropins.join("10-extra.toml"),
        format!(
            "[[logs]]\npaths = [\"{}\"]\nservice = \"extra\"\n",
            glob("extra")
        ),
    )
    .unwrap();
    append(&env.logs().join("main-1.log"), &["from main".to_owned()]);
    append(&env.logs().join("extra-1.log"), &["from extra".to_owned()]);
    append(&env.logs().join("later-1.log"), &["from later".to_owned()]);

    // The host name, the state directory and the sink token come from the environment.
    let state = env.path("state-from-env");
    let token = std::fs::read_to_string(env.token()).unwrap();
    let vars = [
        ("OUTPOST_HOSTNAME", "host-from-env".to_owned()),
        ("OUTPOST_STATE_DIR", state.display().to_string()),
        ("OUTPOST_SINK_TOKEN", token.trim().to_owned()),
    ];
    let log = env.path("agent.log");
    let mut agent = start_agent_with_env(&cfg, &log, &vars);
    poll_until("the lines of both inputs", || {
        let stored = stored_messages(&env.data());
        stored.contains_key("from main") && stored.contains_key("from extra")
    });

    // A drop-in added while running, then SIGHUP: its input is followed.
    std::fs::write(
        dropins.join("20-later.toml"),
        format!(
            "[[logs]]\npaths = [\"{}\"]\nservice = \"later\"\n",
            glob("later")
        ),
    )
    .unwrap();
    agent.signal("-HUP");
    poll_until("the line of the input added by reload", || {
        stored_messages(&env.data()).contains_key("from later")
    });
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));

    let objects = stored_objects(&env.data());
    let mut services: Vec<(&str, &str)> = objects
        .iter()
        .map(|o| (o["service"].as_str().unwrap(), o["host"].as_str().unwrap()))
        .collect();
    services.sort_unstable();
    assert_eq!(
        services,
        [
            ("app", "host-from-env"),
            ("extra", "host-from-env"),
            ("later", "host-from-env")
        ]
    );
    assert!(state.join("seq").exists(), "state in OUTPOST_STATE_DIR");
    assert!(!env.path("state").exists(), "not in the file's state_dir");

    // `status` reads the state directory the environment names, and shows the version.
    let out = run_ok(
        Command::new(agent_bin())
            .args(["status", "--config"])
            .arg(&cfg)
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str()))),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("outpost-agent {}\n", outpost_agent::version::LONG)),
        "{text}"
    );
    assert!(
        text.contains(&format!("state directory: {}\n", state.display())),
        "{text}"
    );
}

#[test]
fn version_names_the_commit() {
    let out = run_ok(Command::new(agent_bin()).arg("--version"));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        format!(
            "outpost-agent {} (commit {})\n",
            env!("CARGO_PKG_VERSION"),
            outpost_agent::version::COMMIT
        )
    );
    // Built from this checkout, or told the commit: never unknown where git knows it.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Ok(head) = head
        && head.status.success()
        && std::env::var_os("OUTPOST_BUILD_COMMIT").is_none()
    {
        let head = String::from_utf8(head.stdout).unwrap();
        assert_eq!(outpost_agent::version::COMMIT, head.trim());
    }
}
