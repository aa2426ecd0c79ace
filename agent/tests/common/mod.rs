//! Shared harness of the agent's binary-level tests: the real `outpost-sink` and
//! `outpost-agent` binaries, temp configs, and reading what the sink stored.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long any wait in these tests may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(90);

pub fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_outpost-agent"))
}

pub fn sink_bin() -> PathBuf {
    let p = agent_bin().with_file_name("outpost-sink");
    assert!(
        p.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p outpost-sink`) first",
        p.display()
    );
    p
}

/// A child process killed when dropped, so a failing test leaves nothing running.
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Send a signal with the `kill` command (no unsafe code needed).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Wait for exit, with the deadline.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(start.elapsed() < DEADLINE, "process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the sink on `listen` (e.g. `127.0.0.1:0`); returns it and its base URL.
pub fn start_sink(listen: &str, data: &Path, token: &Path) -> (Proc, String) {
    let (child, url) = outpost_testkit::spawn_sink_serve(
        &sink_bin(),
        &[
            "--listen".as_ref(),
            listen.as_ref(),
            "--data".as_ref(),
            data.as_os_str(),
            "--token-file".as_ref(),
            token.as_os_str(),
        ],
    );
    (Proc(child), url)
}

/// Start the agent; its stderr goes to `log`.
pub fn start_agent(config: &Path, log: &Path) -> Proc {
    start_agent_with_env(config, log, &[])
}

/// Variables of the AWS SDK's chain that must not leak from the machine into a test's agent.
const AWS_VARS: &[&str] = &[
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

/// Start the agent with extra environment variables (an AWS endpoint and credentials); its
/// stderr goes to `log`. AWS profiles of the machine are hidden from it.
pub fn start_agent_with_env(config: &Path, log: &Path, env: &[(&str, String)]) -> Proc {
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = Command::new(agent_bin());
    cmd.args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(err);
    if !env.is_empty() {
        for v in AWS_VARS {
            cmd.env_remove(v);
        }
        // An empty AWS config file: no profile of the machine's (and no warning about a
        // missing file).
        let none = log.with_file_name("aws-config-empty");
        std::fs::write(&none, "").unwrap();
        cmd.env("AWS_CONFIG_FILE", &none)
            .env("AWS_SHARED_CREDENTIALS_FILE", &none);
    }
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    Proc(cmd.spawn().unwrap())
}

/// Wait until the agent's log contains `needle`; returns the log.
pub fn wait_for_log(log: &Path, needle: &str) -> String {
    let mut text = String::new();
    poll_until(&format!("{needle:?} in {}", log.display()), || {
        text = std::fs::read_to_string(log).unwrap_or_default();
        text.contains(needle)
    });
    text
}

pub fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    f.write_all(text.as_bytes()).unwrap();
}

/// Every stored NDJSON object, from all log files under `data/logs`.
pub fn stored_objects(data: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut stack = vec![data.join("logs")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".ndjson.zst") {
                let text = zstd::bulk::decompress(&std::fs::read(&p).unwrap(), 64 << 20).unwrap();
                out.extend(
                    text.split(|&b| b == b'\n')
                        .filter(|l| !l.is_empty())
                        .map(|l| serde_json::from_slice::<serde_json::Value>(l).unwrap()),
                );
            }
        }
    }
    out
}

/// Every stored log message, with how often it was stored.
pub fn stored_messages(data: &Path) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for v in stored_objects(data) {
        *out.entry(v["message"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    out
}

/// Run `cmd` to its end and assert it succeeded (its stderr in the failure message).
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Poll `done` until it holds, failing after [`DEADLINE`].
pub fn poll_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Assert every expected line is stored exactly once and nothing else is.
pub fn assert_exactly_once(data: &Path, expected: &[String]) {
    let stored = stored_messages(data);
    let dups: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dups.is_empty(), "stored more than once: {dups:?}");
    let missing: Vec<_> = expected
        .iter()
        .filter(|l| !stored.contains_key(*l))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "never stored: {missing:?}");
    assert_eq!(stored.len(), expected.len(), "unexpected extra lines");
}

/// A test directory: token, logs dir, data dir, and a config writer.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    /// A fresh directory. With `OUTPOST_KEEP_TEST_DIRS` set it is kept (and its path printed)
    /// for a post-mortem.
    pub fn new() -> Self {
        let mut dir = tempfile::tempdir().unwrap();
        if std::env::var_os("OUTPOST_KEEP_TEST_DIRS").is_some() {
            dir.disable_cleanup(true);
            eprintln!("test directory kept: {}", dir.path().display());
        }
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        std::fs::write(dir.path().join("token"), "test-token\n").unwrap();
        Self { dir }
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    pub fn data(&self) -> PathBuf {
        self.path("data")
    }
    pub fn token(&self) -> PathBuf {
        self.path("token")
    }
    pub fn logs(&self) -> PathBuf {
        self.path("logs")
    }
    /// Write `agent.toml` for `sink_url`; `extra` is appended (more sections).
    pub fn config(&self, sink_url: &str, logs_glob: &str, extra: &str) -> PathBuf {
        let sink = format!(
            "kind = \"http\"\nurl = \"{sink_url}\"\ntoken_file = \"{}\"\n",
            self.token().display()
        );
        self.config_with_sink(&sink, logs_glob, extra)
    }

    /// Write `agent.toml` with `sink` as the body of its `[sink]` section (`timeout = "5s"`
    /// is added); `extra` is appended (more sections).
    pub fn config_with_sink(&self, sink: &str, logs_glob: &str, extra: &str) -> PathBuf {
        let cfg = self.path("agent.toml");
        let text = format!(
            r#"[agent]
state_dir = "{state}"
hostname = "test-host"
id = "test-agent"
shutdown_timeout = "5s"

[host]
enabled = false

[tail]
poll_interval = "20ms"
rotate_wait = "1s"

[[logs]]
paths = ["{logs}/{logs_glob}"]
service = "app"

[sink]
{sink}timeout = "5s"
{extra}"#,
            state = self.path("state").display(),
            logs = self.logs().display(),
        );
        std::fs::write(&cfg, text).unwrap();
        cfg
    }
}

/// Numbered lines `PREFIX NNNNNN lorem ipsum dolor`.
pub fn lines(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| format!("{prefix} {i:06} lorem ipsum dolor"))
        .collect()
}

/// Appends numbered lines in a thread until stopped, keeping its file open like a daemon
/// does (O_APPEND); [`Writer::reopen`] makes it open the path again, as a daemon does when
/// logrotate's `postrotate` signals it.
pub struct Writer {
    stop: Arc<AtomicBool>,
    reopen: Arc<AtomicBool>,
    written: Arc<AtomicUsize>,
    handle: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Writer {
    pub fn start(path: std::path::PathBuf, prefix: &'static str, per_burst: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let reopen = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicUsize::new(0));
        let (s, r, w) = (stop.clone(), reopen.clone(), written.clone());
        let open = move || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap()
        };
        let handle = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut file = open();
            while !s.load(Ordering::Relaxed) {
                if r.swap(false, Ordering::Relaxed) {
                    file = open();
                }
                let n = all.len();
                let burst = lines(prefix, n..n + per_burst);
                let mut text = burst.join("\n");
                text.push('\n');
                file.write_all(text.as_bytes()).unwrap();
                all.extend(burst);
                w.store(all.len(), Ordering::Relaxed);
                // Pacing of the writer (a rate), not synchronisation.
                std::thread::sleep(Duration::from_millis(2));
            }
            all
        });
        Self {
            stop,
            reopen,
            written,
            handle: Some(handle),
        }
    }

    pub fn written(&self) -> usize {
        self.written.load(Ordering::Relaxed)
    }

    /// Open the path again before the next burst.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }

    pub fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}
