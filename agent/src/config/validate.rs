//! Second stage of config loading: check every value, resolve paths and URLs, and report all
//! problems at once.

use super::error::{ConfigError, ConfigIssue, Location};
use super::file::{FileConfig, ReadFrom, SinkKind};
use super::units::parse_duration;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Largest `batch.max_bytes`: with zstd's worst-case expansion an incompressible batch of this
/// size still fits a frame's 4 MiB compressed limit.
pub const MAX_BATCH_BYTES: u64 = 3 * 1024 * 1024;

/// The checked, resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub source: PathBuf,
    /// Identity and state.
    pub agent: AgentConfig,
    /// Host sampling, when enabled.
    pub host: Option<HostConfig>,
    /// File following.
    pub tail: TailConfig,
    /// Log inputs.
    pub logs: Vec<LogInput>,
    /// Batch limits.
    pub batch: BatchLimits,
    /// zstd level of frames.
    pub zstd_level: i32,
    /// Spool bounds.
    pub spool: SpoolConfig,
    /// The sink.
    pub sink: SinkConfig,
}

/// `[agent]`, resolved.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Configured id, if any.
    pub id: Option<String>,
    /// Configured host name, if any.
    pub hostname: Option<String>,
    /// Absolute state directory.
    pub state_dir: PathBuf,
    /// Drain budget on shutdown.
    pub shutdown_timeout: Duration,
}

/// `[host]`, resolved.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Sampling interval.
    pub interval: Duration,
}

/// `[tail]`, resolved.
#[derive(Debug, Clone)]
pub struct TailConfig {
    /// Poll interval.
    pub poll_interval: Duration,
    /// Rescan interval when filesystem events are used.
    pub rescan_interval: Duration,
    /// How long a rotated file stays open after its last new byte.
    pub rotate_wait: Duration,
}

/// One `[[logs]]` input, resolved.
#[derive(Debug, Clone)]
pub struct LogInput {
    /// Absolute glob patterns.
    pub patterns: Vec<String>,
    /// Service name.
    pub service: String,
    /// Where to start in files present at start.
    pub read_from: ReadFrom,
    /// Longest line (or joined record) kept.
    pub max_line_bytes: usize,
    /// Multiline joining, when configured.
    pub multiline: Option<MultilineConfig>,
}

/// `[logs.multiline]`, resolved.
#[derive(Debug, Clone)]
pub struct MultilineConfig {
    /// Lines matching this start a record.
    pub start_pattern: regex::bytes::Regex,
    /// An open record is sent this long after its last line.
    pub flush_timeout: Duration,
}

/// `[batch]`, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most records.
    pub max_records: usize,
    /// Most bytes (by [`outpost_proto::Record::size_hint`]).
    pub max_bytes: usize,
    /// Longest a batch stays open.
    pub max_age: Duration,
}

/// `[spool]`, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Most bytes on disk.
    pub max_bytes: u64,
    /// Segment roll-over size.
    pub segment_bytes: u64,
}

/// Smallest `spool.max_bytes`. It must also hold four of the largest batches (see
/// `validate`), so a full spool can always take the next batch once one is delivered.
pub const MIN_SPOOL_BYTES: u64 = 256 * 1024;

/// `[sink]`, resolved.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Kind of sink.
    pub kind: SinkKind,
    /// Base URL as configured.
    pub url: Url,
    /// Where batches are POSTed: `url` + `/v1/batches`.
    pub batches_url: Url,
    /// Absolute path of the token file.
    pub token_file: Option<PathBuf>,
    /// Request timeout.
    pub timeout: Duration,
}

/// Read a secret from a file, with surrounding whitespace trimmed; an empty secret is an error.
pub fn read_secret(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(secret.to_owned())
}

struct Issues<'a> {
    file: &'a Path,
    list: Vec<ConfigIssue>,
}

impl Issues<'_> {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.list.push(ConfigIssue {
            file: self.file.to_path_buf(),
            location: Location::Key(key.into()),
            message: message.into(),
        });
    }

    fn duration(&mut self, key: &str, text: &str, min: Duration, max: Duration) -> Duration {
        match parse_duration(text) {
            Ok(d) if d < min || d > max => {
                self.add(
                    key,
                    format!(
                        "{text:?} is out of range ({} to {})",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                );
                min
            }
            Ok(d) => d,
            Err(e) => {
                self.add(key, e);
                min
            }
        }
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Check and resolve a parsed config. `source` is the file it came from: errors name it, and
/// relative paths are resolved against its directory.
pub fn validate(file: FileConfig, source: &Path) -> Result<Config, ConfigError> {
    let base = source
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let base = std::path::absolute(&base).unwrap_or(base);
    let mut is = Issues {
        file: source,
        list: Vec::new(),
    };

    // [agent]
    let a = &file.agent;
    let bad = |s: &str, max: usize| {
        s.trim().is_empty() || s.len() > max || s.chars().any(char::is_control)
    };
    if a.id.as_deref().is_some_and(|id| bad(id, 128)) {
        is.add(
            "agent.id",
            "must be 1 to 128 characters without control characters",
        );
    }
    if a.hostname.as_deref().is_some_and(|h| bad(h, 253)) {
        is.add(
            "agent.hostname",
            "must be 1 to 253 characters without control characters",
        );
    }
    if a.state_dir.as_os_str().is_empty() {
        is.add("agent.state_dir", "must not be empty");
    }
    let agent = AgentConfig {
        id: a.id.as_ref().map(|s| s.trim().to_owned()),
        hostname: a.hostname.as_ref().map(|s| s.trim().to_owned()),
        state_dir: resolve(&base, &a.state_dir),
        shutdown_timeout: is.duration(
            "agent.shutdown_timeout",
            &a.shutdown_timeout,
            Duration::ZERO,
            Duration::from_secs(600),
        ),
    };

    // [host]
    let interval = is.duration(
        "host.interval",
        &file.host.interval,
        Duration::from_secs(1),
        Duration::from_secs(3600),
    );
    let host = file.host.enabled.then_some(HostConfig { interval });

    // [tail]
    let tail = TailConfig {
        poll_interval: is.duration(
            "tail.poll_interval",
            &file.tail.poll_interval,
            Duration::from_millis(10),
            Duration::from_secs(60),
        ),
        rescan_interval: is.duration(
            "tail.rescan_interval",
            &file.tail.rescan_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        ),
        rotate_wait: is.duration(
            "tail.rotate_wait",
            &file.tail.rotate_wait,
            Duration::ZERO,
            Duration::from_secs(3600),
        ),
    };

    // [[logs]]
    let mut logs = Vec::new();
    for (i, l) in file.logs.iter().enumerate() {
        if l.paths.is_empty() {
            is.add(format!("logs[{i}].paths"), "must list at least one glob");
        }
        let mut patterns = Vec::new();
        for (j, p) in l.paths.iter().enumerate() {
            let resolved = resolve(&base, Path::new(p));
            let text = resolved.to_string_lossy().into_owned();
            match glob::Pattern::new(&text) {
                Ok(_) => patterns.push(text),
                Err(e) => is.add(
                    format!("logs[{i}].paths[{j}]"),
                    format!("bad glob {p:?}: {e}"),
                ),
            }
        }
        if l.service.trim().is_empty() {
            is.add(format!("logs[{i}].service"), "must not be empty");
        }
        let max_line_bytes = match l.max_line_bytes.bytes() {
            Ok(b) if (16..=MAX_BATCH_BYTES).contains(&b) => b as usize,
            Ok(b) => {
                is.add(
                    format!("logs[{i}].max_line_bytes"),
                    format!("{b} bytes is out of range (16B to 3MiB: one record must fit a frame)"),
                );
                0
            }
            Err(e) => {
                is.add(format!("logs[{i}].max_line_bytes"), e);
                0
            }
        };
        let multiline = l.multiline.as_ref().and_then(|m| {
            let flush_timeout = is.duration(
                &format!("logs[{i}].multiline.flush_timeout"),
                &m.flush_timeout,
                Duration::from_millis(10),
                Duration::from_secs(600),
            );
            match regex::bytes::Regex::new(&m.start_pattern) {
                Ok(start_pattern) => Some(MultilineConfig {
                    start_pattern,
                    flush_timeout,
                }),
                Err(e) => {
                    is.add(
                        format!("logs[{i}].multiline.start_pattern"),
                        format!("bad regex {:?}: {e}", m.start_pattern),
                    );
                    None
                }
            }
        });
        logs.push(LogInput {
            patterns,
            service: l.service.trim().to_owned(),
            read_from: l.read_from,
            max_line_bytes,
            multiline,
        });
    }

    // [batch]
    let b = &file.batch;
    let max_records = outpost_proto::limits::MAX_RECORDS as u64;
    if b.max_records == 0 || b.max_records > max_records {
        is.add(
            "batch.max_records",
            format!("{} is out of range (1 to {max_records})", b.max_records),
        );
    }
    let max_bytes = match b.max_bytes.bytes() {
        Ok(v) if (1024..=MAX_BATCH_BYTES).contains(&v) => v as usize,
        Ok(v) => {
            is.add(
                "batch.max_bytes",
                format!("{v} bytes is out of range (1KiB to 3MiB: a frame carries at most 4 MiB compressed)"),
            );
            0
        }
        Err(e) => {
            is.add("batch.max_bytes", e);
            0
        }
    };
    let batch = BatchLimits {
        max_records: b.max_records as usize,
        max_bytes,
        max_age: is.duration(
            "batch.max_age",
            &b.max_age,
            Duration::from_millis(10),
            Duration::from_secs(3600),
        ),
    };
    if !(1..=19).contains(&b.zstd_level) {
        is.add(
            "batch.zstd_level",
            format!("{} is out of range (1 to 19)", b.zstd_level),
        );
    }

    // [spool]
    let mut size = |key: &str, v: &super::units::SizeValue, min: u64, max: u64| match v.bytes() {
        Ok(b) if (min..=max).contains(&b) => b,
        Ok(b) => {
            is.add(
                key,
                format!("{b} bytes is out of range ({min} to {max} bytes)"),
            );
            min
        }
        Err(e) => {
            is.add(key, e);
            min
        }
    };
    let spool = SpoolConfig {
        max_bytes: size(
            "spool.max_bytes",
            &file.spool.max_bytes,
            MIN_SPOOL_BYTES,
            1 << 40,
        ),
        segment_bytes: size(
            "spool.segment_bytes",
            &file.spool.segment_bytes,
            1 << 20,
            1 << 30,
        ),
    };

    let largest_record = logs
        .iter()
        .map(|l| l.max_line_bytes as u64)
        .max()
        .unwrap_or(0);
    let largest_batch = (max_bytes as u64).max(largest_record) + 64 * 1024;
    if spool.max_bytes < 4 * largest_batch {
        is.add(
            "spool.max_bytes",
            format!(
                "{} bytes cannot hold four of the largest batches (4 x {largest_batch} bytes, from batch.max_bytes and max_line_bytes)",
                spool.max_bytes
            ),
        );
    }

    // [sink]
    let s = &file.sink;
    let url = match Url::parse(&s.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
        Ok(u) => {
            is.add(
                "sink.url",
                format!("{:?}: scheme must be http or https with a host", u.as_str()),
            );
            None
        }
        Err(e) => {
            is.add("sink.url", format!("{:?} is not a URL: {e}", s.url));
            None
        }
    };
    let token_file = s.token_file.as_ref().map(|p| resolve(&base, p));
    if let Some(p) = &token_file
        && let Err(e) = read_secret(p)
    {
        is.add("sink.token_file", e);
    }
    let timeout = is.duration(
        "sink.timeout",
        &s.timeout,
        Duration::from_millis(100),
        Duration::from_secs(600),
    );

    if !is.list.is_empty() {
        return Err(ConfigError { issues: is.list });
    }
    // A URL was parsed, or an issue was recorded and we returned above.
    let Some(url) = url else {
        return Err(ConfigError { issues: is.list });
    };
    let batches_url = batches_url(&url);
    Ok(Config {
        source: source.to_path_buf(),
        agent,
        host,
        tail,
        logs,
        batch,
        zstd_level: b.zstd_level,
        spool,
        sink: SinkConfig {
            kind: s.kind,
            url,
            batches_url,
            token_file,
            timeout,
        },
    })
}

/// `BASE/v1/batches`, keeping any path prefix of the base URL.
fn batches_url(base: &Url) -> Url {
    let mut u = base.clone();
    let path = format!("{}/v1/batches", base.path().trim_end_matches('/'));
    u.set_path(&path);
    u
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    const MINIMAL: &str = "[sink]\nkind = \"http\"\nurl = \"http://127.0.0.1:7070\"\n";

    fn check(text: &str) -> Result<Config, ConfigError> {
        validate(parse(text).unwrap(), Path::new("/etc/outpost/agent.toml"))
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = check(MINIMAL).unwrap();
        assert_eq!(c.agent.state_dir, PathBuf::from("/var/lib/outpost"));
        assert_eq!(c.host.unwrap().interval, Duration::from_secs(10));
        assert_eq!(c.batch.max_records, 10_000);
        assert_eq!(c.batch.max_bytes, 1 << 20);
        assert_eq!(c.batch.max_age, Duration::from_secs(5));
        assert_eq!(c.tail.poll_interval, Duration::from_millis(250));
        assert_eq!(c.tail.rescan_interval, Duration::from_secs(10));
        assert_eq!(c.tail.rotate_wait, Duration::from_secs(5));
        assert_eq!(c.spool.max_bytes, 256 << 20);
        assert_eq!(c.spool.segment_bytes, 8 << 20);
        assert_eq!(
            c.sink.batches_url.as_str(),
            "http://127.0.0.1:7070/v1/batches"
        );
    }

    #[test]
    fn every_error_is_reported_with_its_key_and_file() {
        let text = r#"
[agent]
shutdown_timeout = "forever"
[host]
interval = "10"
[[logs]]
paths = []
service = ""
[batch]
max_records = 0
max_bytes = "1 parsec"
max_age = "5s"
[sink]
kind = "http"
url = "ftp://x"
token_file = "/nonexistent/outpost-token"
"#;
        let err = check(text).unwrap_err();
        let keys: Vec<String> = err
            .issues
            .iter()
            .map(|i| match &i.location {
                Location::Key(k) => k.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            keys,
            [
                "agent.shutdown_timeout",
                "host.interval",
                "logs[0].paths",
                "logs[0].service",
                "batch.max_records",
                "batch.max_bytes",
                "sink.url",
                "sink.token_file",
            ]
        );
        let shown = err.to_string();
        assert!(shown.starts_with("/etc/outpost/agent.toml: agent.shutdown_timeout: "));
        assert_eq!(shown.lines().count(), 8);
    }

    #[test]
    fn multiline_is_parsed_and_a_bad_regex_names_its_key() {
        let good = format!(
            "[[logs]]\npaths = [\"/l/*.log\"]\nservice = \"a\"\n[logs.multiline]\nstart_pattern = '^\\d{{4}}-'\n{MINIMAL}"
        );
        let c = check(&good).unwrap();
        let m = c.logs[0].multiline.as_ref().unwrap();
        assert!(m.start_pattern.is_match(b"2026-11-23 x"));
        assert_eq!(m.flush_timeout, Duration::from_secs(1));
        let bad = good.replace("^\\d{4}-", "(");
        let err = check(&bad).unwrap_err();
        assert_eq!(
            err.issues[0].location,
            Location::Key("logs[0].multiline.start_pattern".into())
        );
    }

    #[test]
    fn the_spool_must_hold_four_of_the_largest_batches() {
        let text =
            format!("[batch]\nmax_bytes = \"1MiB\"\n[spool]\nmax_bytes = \"4MiB\"\n{MINIMAL}");
        let err = check(&text).unwrap_err();
        assert_eq!(
            err.issues[0].location,
            Location::Key("spool.max_bytes".into())
        );
        let text =
            format!("[batch]\nmax_bytes = \"64KiB\"\n[spool]\nmax_bytes = \"512KiB\"\n{MINIMAL}");
        assert!(check(&text).is_ok());
    }

    #[test]
    fn limits_plus_one_are_rejected() {
        let over = MAX_BATCH_BYTES + 1;
        let text = format!(
            "[batch]\nmax_records = {}\nmax_bytes = {over}\n{MINIMAL}",
            outpost_proto::limits::MAX_RECORDS + 1
        );
        let err = check(&text).unwrap_err();
        assert_eq!(err.issues.len(), 2, "{err}");
        let at_limit = format!(
            "[batch]\nmax_records = {}\nmax_bytes = {MAX_BATCH_BYTES}\n{MINIMAL}",
            outpost_proto::limits::MAX_RECORDS
        );
        assert!(check(&at_limit).is_ok());
    }

    #[test]
    fn unknown_keys_are_syntax_errors_with_a_line() {
        let text = format!("{MINIMAL}colour = \"blue\"\n");
        let (loc, msg) = parse(&text).unwrap_err();
        assert_eq!(loc, Location::Line { line: 4, column: 1 });
        assert!(msg.contains("colour"), "{msg}");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let text = format!(
            "[agent]\nstate_dir = \"state\"\n[[logs]]\npaths = [\"logs/*.log\"]\nservice = \"app\"\n{MINIMAL}"
        );
        let c = check(&text).unwrap();
        assert_eq!(c.agent.state_dir, PathBuf::from("/etc/outpost/state"));
        assert_eq!(c.logs[0].patterns, ["/etc/outpost/logs/*.log"]);
    }

    #[test]
    fn url_path_prefix_is_kept() {
        let u = Url::parse("https://example.com/outpost/").unwrap();
        assert_eq!(
            batches_url(&u).as_str(),
            "https://example.com/outpost/v1/batches"
        );
    }
}
