//! Second stage of config loading: check every value, resolve paths and URLs, and report all
//! problems at once.

use super::env::TOKEN_VAR;
use super::error::{ConfigError, ConfigIssue, Location, Origin};
use super::file::{
    AgentSection, BatchSection, FileConfig, HostSection, LogsSection, SinkKind, SinkSection,
    SpoolSection, TailSection, TelemetrySection,
};
use super::limits::KINESIS_MAX_BATCH_BYTES;
use super::merge::Merged;
use super::resolved::{
    AgentConfig, BatchLimits, Config, DEFAULT_EXEC_TIMEOUT, ErrorMatch, ExecInput, HostConfig,
    KinesisStream, LogInput, MAX_BATCH_BYTES, MAX_EXEC_NAME_LEN, MIN_SPOOL_BYTES, MultilineConfig,
    SinkConfig, SinkTransport, SpoolConfig, TailConfig, TelemetryConfig, TextfileConfig,
};
use super::secret::Secret;
use super::units::{SizeValue, parse_duration};
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

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
    /// The main config file: where defaults (keys no layer set) are reported.
    main: &'a Path,
    /// Which file or variable set each key.
    merged: &'a Merged,
    list: Vec<ConfigIssue>,
}

impl Issues<'_> {
    /// A problem with `key`, reported against the file or variable that set it.
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        let key = key.into();
        let origin = self
            .merged
            .origin_of(&key)
            .cloned()
            .unwrap_or_else(|| Origin::File(self.main.to_path_buf()));
        self.add_at(origin, Location::Key(key), message);
    }

    fn add_at(&mut self, origin: Origin, location: Location, message: impl Into<String>) {
        self.list.push(ConfigIssue {
            origin,
            location,
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
    validate_merged(file, source, &Merged::default(), None)
}

/// Check and resolve a config merged from layers: `source` is the main file (relative paths
/// are resolved against its directory, and problems with defaults name it); `merged` says
/// which file or variable set each key, and problems name that one. `token` is the sink token
/// from the environment.
pub fn validate_merged(
    file: FileConfig,
    source: &Path,
    merged: &Merged,
    token: Option<&Secret>,
) -> Result<Config, ConfigError> {
    let base = source
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let base = std::path::absolute(&base).unwrap_or(base);
    let mut is = Issues {
        main: source,
        merged,
        list: Vec::new(),
    };

    let agent = agent_section(&mut is, &file.agent, &base);
    let host = host_section(&mut is, &file.host);
    let tail = tail_section(&mut is, &file.tail);
    let logs: Vec<LogInput> = file
        .logs
        .iter()
        .enumerate()
        .map(|(i, l)| log_input(&mut is, i, l, &base))
        .collect();
    let batch = batch_section(&mut is, &file.batch, file.sink.kind, &logs);
    let spool = spool_section(&mut is, &file.spool, &logs, batch.max_bytes);
    let Some(sink) = sink_section(&mut is, &file.sink, &base, token) else {
        return Err(ConfigError { issues: is.list });
    };
    let telemetry = telemetry_section(&mut is, &file.telemetry);
    // [textfile], [[exec]]
    let (textfile, exec) = custom_inputs(&mut is, &file, &base);

    if !is.list.is_empty() {
        return Err(ConfigError { issues: is.list });
    }
    // What the kind needs was parsed, or an issue was recorded and we returned above.
    let Some(transport) = sink.transport(token) else {
        return Err(ConfigError { issues: is.list });
    };
    Ok(Config {
        source: source.to_path_buf(),
        agent,
        host,
        tail,
        logs,
        batch,
        zstd_level: file.batch.zstd_level,
        spool,
        sink: SinkConfig {
            transport,
            timeout: sink.timeout,
        },
        telemetry,
        textfile,
        exec,
    })
}

/// `[agent]`: id, host name, state directory, shutdown timeout.
fn agent_section(is: &mut Issues<'_>, a: &AgentSection, base: &Path) -> AgentConfig {
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
    AgentConfig {
        id: a.id.as_ref().map(|s| s.trim().to_owned()),
        hostname: a.hostname.as_ref().map(|s| s.trim().to_owned()),
        state_dir: resolve(base, &a.state_dir),
        shutdown_timeout: is.duration(
            "agent.shutdown_timeout",
            &a.shutdown_timeout,
            Duration::ZERO,
            Duration::from_secs(600),
        ),
    }
}

/// `[host]`: the sampling interval (checked even when sampling is off).
fn host_section(is: &mut Issues<'_>, h: &HostSection) -> Option<HostConfig> {
    let interval = is.duration(
        "host.interval",
        &h.interval,
        Duration::from_secs(1),
        Duration::from_secs(3600),
    );
    h.enabled.then_some(HostConfig { interval })
}

/// `[tail]`: polling, rescanning and how long a rotated file stays open.
fn tail_section(is: &mut Issues<'_>, t: &TailSection) -> TailConfig {
    TailConfig {
        poll_interval: is.duration(
            "tail.poll_interval",
            &t.poll_interval,
            Duration::from_millis(10),
            Duration::from_secs(60),
        ),
        rescan_interval: is.duration(
            "tail.rescan_interval",
            &t.rescan_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        ),
        rotate_wait: is.duration(
            "tail.rotate_wait",
            &t.rotate_wait,
            Duration::ZERO,
            Duration::from_secs(3600),
        ),
    }
}

/// `logs[i]`: globs, service, line length, multiline joining and the error pattern.
fn log_input(is: &mut Issues<'_>, i: usize, l: &LogsSection, base: &Path) -> LogInput {
    if l.paths.is_empty() {
        is.add(format!("logs[{i}].paths"), "must list at least one glob");
    }
    let mut patterns = Vec::new();
    for (j, p) in l.paths.iter().enumerate() {
        let resolved = resolve(base, Path::new(p));
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
    let errors = match l.error_pattern.as_deref() {
        None => ErrorMatch::Level,
        Some(p) => match regex::bytes::Regex::new(p) {
            Ok(re) => ErrorMatch::Pattern(re),
            Err(e) => {
                is.add(
                    format!("logs[{i}].error_pattern"),
                    format!("bad regex {p:?}: {e}"),
                );
                ErrorMatch::Level
            }
        },
    };
    LogInput {
        patterns,
        service: l.service.trim().to_owned(),
        read_from: l.read_from,
        max_line_bytes,
        multiline,
        errors,
    }
}

/// `[batch]`: records, bytes (lower with `sink.kind = "kinesis"`, for lines too), age and
/// the zstd level.
fn batch_section(
    is: &mut Issues<'_>,
    b: &BatchSection,
    kind: Option<SinkKind>,
    logs: &[LogInput],
) -> BatchLimits {
    let max_records = outpost_proto::limits::MAX_RECORDS as u64;
    if b.max_records == 0 || b.max_records > max_records {
        is.add(
            "batch.max_records",
            format!("{} is out of range (1 to {max_records})", b.max_records),
        );
    }
    // A Kinesis record holds at most 1 MiB: batches (and single lines) must stay below that.
    let kinesis = kind == Some(SinkKind::Kinesis);
    let (default_max_bytes, max_batch_bytes, why) = if kinesis {
        (
            KINESIS_MAX_BATCH_BYTES,
            KINESIS_MAX_BATCH_BYTES,
            "1KiB to 1000KiB with sink.kind = \"kinesis\": a frame must fit a 1 MiB Kinesis record, with zstd's worst-case expansion and the 24-byte header",
        )
    } else {
        (
            1 << 20,
            MAX_BATCH_BYTES,
            "1KiB to 3MiB: a frame carries at most 4 MiB compressed",
        )
    };
    let max_bytes = match b
        .max_bytes
        .as_ref()
        .map_or(Ok(default_max_bytes), SizeValue::bytes)
    {
        Ok(v) if (1024..=max_batch_bytes).contains(&v) => v as usize,
        Ok(v) => {
            is.add(
                "batch.max_bytes",
                format!("{v} bytes is out of range ({why})"),
            );
            0
        }
        Err(e) => {
            is.add("batch.max_bytes", e);
            0
        }
    };
    if kinesis {
        for (i, l) in logs.iter().enumerate() {
            if l.max_line_bytes as u64 > KINESIS_MAX_BATCH_BYTES {
                is.add(
                    format!("logs[{i}].max_line_bytes"),
                    format!(
                        "{} bytes is out of range (16B to 1000KiB with sink.kind = \"kinesis\": one record must fit a frame, and a frame a 1 MiB Kinesis record)",
                        l.max_line_bytes
                    ),
                );
            }
        }
    }
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
    batch
}

/// `[spool]`: its bounds, which must hold four of the largest batches.
fn spool_section(
    is: &mut Issues<'_>,
    sp: &SpoolSection,
    logs: &[LogInput],
    max_bytes: usize,
) -> SpoolConfig {
    let mut size = |key: &str, v: &SizeValue, min: u64, max: u64| match v.bytes() {
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
        max_bytes: size("spool.max_bytes", &sp.max_bytes, MIN_SPOOL_BYTES, 1 << 40),
        segment_bytes: size("spool.segment_bytes", &sp.segment_bytes, 1 << 20, 1 << 30),
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
    spool
}

/// The checked `[sink]` keys, before they are assembled into a [`SinkTransport`].
struct SinkKeys {
    kind: SinkKind,
    url: Option<Url>,
    stream: Option<(KinesisStream, Option<String>)>,
    token_file: Option<PathBuf>,
    region: Option<String>,
    timeout: Duration,
}

impl SinkKeys {
    /// The transport, when what the kind needs was parsed.
    fn transport(&self, token: Option<&Secret>) -> Option<SinkTransport> {
        match (self.kind, &self.url, &self.stream) {
            (SinkKind::Http, Some(url), _) => Some(SinkTransport::Http {
                batches_url: batches_url(url),
                url: url.clone(),
                token_file: self.token_file.clone(),
                token: token.cloned(),
            }),
            (SinkKind::LambdaUrl, Some(url), _) => Some(SinkTransport::LambdaUrl {
                batches_url: batches_url(url),
                url: url.clone(),
                region: self.region.clone(),
            }),
            (SinkKind::Kinesis, _, Some((stream, _))) => Some(SinkTransport::Kinesis {
                stream: stream.clone(),
                region: self.region.clone(),
            }),
            _ => None,
        }
    }
}

/// `[sink]`: the kind, the keys it uses (and those it does not), the URL, the token, the region
/// and the stream. `None` when the kind is missing: nothing else can be checked.
fn sink_section(
    is: &mut Issues<'_>,
    s: &SinkSection,
    base: &Path,
    token: Option<&Secret>,
) -> Option<SinkKeys> {
    let Some(kind) = s.kind else {
        is.add(
            "sink.kind",
            "required: \"http\", \"lambda_url\" or \"kinesis\" (in the main file, a drop-in or OUTPOST_SINK_KIND)",
        );
        return None;
    };
    unused_sink_keys(is, s, kind);
    let url = sink_url(is, s, kind);
    if token.is_some() && kind != SinkKind::Http {
        is.add_at(
            Origin::Env(TOKEN_VAR),
            Location::File,
            format!(
                "not used by sink.kind = \"{}\" (only by \"http\"; \"lambda_url\" and \"kinesis\" use AWS credentials)",
                kind.as_str()
            ),
        );
    }
    // A token from the environment wins: the file is not read.
    let token_file = match token {
        Some(_) => None,
        None => s.token_file.as_ref().map(|p| resolve(base, p)),
    };
    if kind == SinkKind::Http
        && let Some(p) = &token_file
        && let Err(e) = read_secret(p)
    {
        is.add("sink.token_file", e);
    }
    if let Some(r) = &s.region
        && !valid_region(r)
    {
        is.add(
            "sink.region",
            format!("{r:?} is not an AWS region name (like \"eu-west-1\")"),
        );
    }
    let stream = match (&s.stream, kind) {
        (None, SinkKind::Kinesis) => {
            is.add("sink.stream", "required with kind = \"kinesis\"");
            None
        }
        (Some(text), SinkKind::Kinesis) => match parse_stream(text) {
            Ok(stream) => Some(stream),
            Err(e) => {
                is.add("sink.stream", e);
                None
            }
        },
        _ => None,
    };
    let region = sink_region(is, s, kind, url.as_ref(), stream.as_ref());
    let timeout = is.duration(
        "sink.timeout",
        &s.timeout,
        Duration::from_millis(100),
        Duration::from_secs(600),
    );
    Some(SinkKeys {
        kind,
        url,
        stream,
        token_file,
        region,
        timeout,
    })
}

/// Keys set that `kind` does not use.
fn unused_sink_keys(is: &mut Issues<'_>, s: &SinkSection, kind: SinkKind) {
    let mut not_for = |key: &str, set: bool, used_by: &str| {
        if set {
            is.add(
                format!("sink.{key}"),
                format!(
                    "not used by kind = \"{}\" (only by {used_by})",
                    kind.as_str()
                ),
            );
        }
    };
    not_for(
        "url",
        kind == SinkKind::Kinesis && s.url.is_some(),
        "\"http\" and \"lambda_url\"",
    );
    not_for(
        "token_file",
        kind != SinkKind::Http && s.token_file.is_some(),
        "\"http\"; \"lambda_url\" signs with AWS credentials",
    );
    not_for(
        "stream",
        kind != SinkKind::Kinesis && s.stream.is_some(),
        "\"kinesis\"",
    );
    not_for(
        "region",
        kind == SinkKind::Http && s.region.is_some(),
        "\"lambda_url\" and \"kinesis\"",
    );
}

/// `sink.url`, required by the HTTP kinds: http or https with a host.
fn sink_url(is: &mut Issues<'_>, s: &SinkSection, kind: SinkKind) -> Option<Url> {
    match (&s.url, kind) {
        (_, SinkKind::Kinesis) => None,
        (None, _) => {
            is.add(
                "sink.url",
                format!("required with kind = \"{}\"", kind.as_str()),
            );
            None
        }
        (Some(text), _) => match Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            Ok(u) => {
                is.add(
                    "sink.url",
                    format!("{:?}: scheme must be http or https with a host", u.as_str()),
                );
                None
            }
            Err(e) => {
                is.add("sink.url", format!("{text:?} is not a URL: {e}"));
                None
            }
        },
    }
}

/// The region to use: `sink.region`, which must agree with the one the URL's host or the
/// stream's ARN names, else that one.
fn sink_region(
    is: &mut Issues<'_>,
    s: &SinkSection,
    kind: SinkKind,
    url: Option<&Url>,
    stream: Option<&(KinesisStream, Option<String>)>,
) -> Option<String> {
    // A region the URL's host or the stream's ARN names; `sink.region` must agree with it.
    let implied_region = match (url, stream) {
        (Some(u), _) if kind == SinkKind::LambdaUrl => u.host_str().and_then(function_url_region),
        (_, Some((_, arn_region))) => arn_region.clone(),
        _ => None,
    };
    if let (Some(r), Some(implied)) = (&s.region, &implied_region)
        && r != implied
    {
        let from = if kind == SinkKind::Kinesis {
            "sink.stream's ARN"
        } else {
            "sink.url's host"
        };
        is.add(
            "sink.region",
            format!("{r:?} differs from {implied:?} in {from}"),
        );
    }
    s.region.clone().or(implied_region)
}

/// `[telemetry]`: shipping self-metrics, their interval and the Prometheus endpoint.
fn telemetry_section(is: &mut Issues<'_>, t: &TelemetrySection) -> TelemetryConfig {
    let telemetry_interval = is.duration(
        "telemetry.interval",
        &t.interval,
        Duration::from_secs(1),
        Duration::from_secs(3600),
    );
    let listen = t.listen.as_deref().and_then(|a| match a.parse() {
        Ok(addr) => Some(addr),
        Err(e) => {
            is.add(
                "telemetry.listen",
                format!("{a:?} is not an IP address and port (e.g. \"127.0.0.1:9464\"): {e}"),
            );
            None
        }
    });
    TelemetryConfig {
        ship: t.ship,
        interval: telemetry_interval,
        listen,
    }
}

/// `[textfile]` and `[[exec]]`: intervals, timeouts, names and commands.
fn custom_inputs(
    is: &mut Issues<'_>,
    file: &FileConfig,
    base: &Path,
) -> (Option<TextfileConfig>, Vec<ExecInput>) {
    let (min, max) = (Duration::from_secs(1), Duration::from_secs(3600));
    let textfile = file.textfile.as_ref().map(|t| {
        if t.dir.as_os_str().is_empty() {
            is.add("textfile.dir", "must not be empty");
        }
        TextfileConfig {
            dir: resolve(base, &t.dir),
            interval: is.duration("textfile.interval", &t.interval, min, max),
        }
    });
    let mut exec: Vec<ExecInput> = Vec::new();
    for (i, e) in file.exec.iter().enumerate() {
        let name_ok = (1..=MAX_EXEC_NAME_LEN).contains(&e.name.len())
            && e.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !name_ok {
            is.add(
                format!("exec[{i}].name"),
                format!(
                    "{:?} must be 1 to {MAX_EXEC_NAME_LEN} of a-z, A-Z, 0-9, _ . -",
                    e.name
                ),
            );
        } else if let Some(j) = exec.iter().position(|x| x.name == e.name) {
            is.add(
                format!("exec[{i}].name"),
                format!("{:?} is already the name of exec[{j}]", e.name),
            );
        }
        let mut command = e.command.clone();
        match command.first_mut() {
            None => is.add(
                format!("exec[{i}].command"),
                "must name a program: [\"/path/to/program\", \"arg\", ...]",
            ),
            Some(p) if p.is_empty() => is.add(format!("exec[{i}].command[0]"), "must not be empty"),
            // A relative path with a slash: against the config file's directory, like every
            // path; a bare name is looked up in PATH when run.
            Some(p) if p.contains('/') => {
                *p = resolve(base, Path::new(p.as_str()))
                    .to_string_lossy()
                    .into_owned();
            }
            Some(_) => {}
        }
        for (j, arg) in e.command.iter().enumerate() {
            if arg.contains('\0') {
                is.add(format!("exec[{i}].command[{j}]"), "must not contain NUL");
            }
        }
        let interval = is.duration(&format!("exec[{i}].interval"), &e.interval, min, max);
        let timeout = match &e.timeout {
            None => DEFAULT_EXEC_TIMEOUT.min(interval),
            Some(t) => {
                let key = format!("exec[{i}].timeout");
                let timeout = is.duration(&key, t, Duration::from_millis(100), max);
                if timeout > interval {
                    is.add(
                        key,
                        format!("{t:?} is longer than interval {:?}", e.interval),
                    );
                }
                timeout
            }
        };
        exec.push(ExecInput {
            name: e.name.clone(),
            command,
            interval,
            timeout,
            format: e.format,
        });
    }
    (textfile, exec)
}

/// Whether `r` looks like an AWS region name: lower-case letters, digits and dashes, with a
/// dash (`us-east-1`, `eu-central-2`, `us-gov-west-1`).
fn valid_region(r: &str) -> bool {
    (4..=32).contains(&r.len())
        && r.contains('-')
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !r.starts_with('-')
        && !r.ends_with('-')
}

/// The region of a Lambda Function URL's host name, `<id>.lambda-url.<region>.on.aws`.
pub fn function_url_region(host: &str) -> Option<String> {
    let labels: Vec<&str> = host.trim_end_matches('.').split('.').collect();
    match labels.as_slice() {
        [.., "lambda-url", region, "on", "aws"] if valid_region(region) => {
            Some((*region).to_owned())
        }
        _ => None,
    }
}

/// A stream name (1 to 128 of `a-zA-Z0-9_.-`) or ARN
/// (`arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME`), with the ARN's region.
fn parse_stream(text: &str) -> Result<(KinesisStream, Option<String>), String> {
    let valid_name = |n: &str| {
        (1..=128).contains(&n.len())
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    };
    if text.starts_with("arn:") {
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", partition, "kinesis", region, account, resource]
                if partition.starts_with("aws")
                    && valid_region(region)
                    && account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit())
                    && resource.strip_prefix("stream/").is_some_and(valid_name) =>
            {
                Ok((
                    KinesisStream::Arn(text.to_owned()),
                    Some((*region).to_owned()),
                ))
            }
            _ => Err(format!(
                "{text:?} is not a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)"
            )),
        }
    } else if valid_name(text) {
        Ok((KinesisStream::Name(text.to_owned()), None))
    } else {
        Err(format!(
            "{text:?} is not a stream name (1 to 128 of a-z, A-Z, 0-9, _ . -) or ARN"
        ))
    }
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
    use crate::config::ExecFormat;

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
        match &c.sink.transport {
            SinkTransport::Http { batches_url, .. } => {
                assert_eq!(batches_url.as_str(), "http://127.0.0.1:7070/v1/batches");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.sink.max_frame_len(), outpost_proto::limits::MAX_FRAME_LEN);
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
    fn error_pattern_and_telemetry_are_checked_and_name_their_keys() {
        let c = check(MINIMAL).unwrap();
        assert!(c.telemetry.ship);
        assert_eq!(c.telemetry.interval, Duration::from_secs(60));
        assert!(c.telemetry.listen.is_none());
        let good = format!(
            "[[logs]]\npaths = [\"/l/*.log\"]\nservice = \"a\"\nerror_pattern = 'Exception'\n[telemetry]\nlisten = \"127.0.0.1:9464\"\ninterval = \"5s\"\n{MINIMAL}"
        );
        let c = check(&good).unwrap();
        assert!(c.logs[0].errors.is_error(b"x NullPointerException", None));
        assert!(
            !c.logs[0]
                .errors
                .is_error(b"ERROR x", Some(outpost_proto::Level::Error))
        );
        assert_eq!(c.telemetry.listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(c.telemetry.interval, Duration::from_secs(5));
        let bad = good
            .replace("'Exception'", "'('")
            .replace("127.0.0.1:9464", "localhost")
            .replace("\"5s\"", "\"0s\"");
        let err = check(&bad).unwrap_err();
        assert_eq!(
            keys(&err),
            [
                "logs[0].error_pattern",
                "telemetry.interval",
                "telemetry.listen"
            ]
        );
    }

    #[test]
    fn the_default_error_match_is_error_level_or_worse() {
        use outpost_proto::Level;
        let m = ErrorMatch::Level;
        assert!(m.is_error(b"", Some(Level::Error)));
        assert!(m.is_error(b"", Some(Level::Fatal)));
        assert!(!m.is_error(b"error", Some(Level::Warn)));
        assert!(!m.is_error(b"error", None));
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

    fn keys(err: &ConfigError) -> Vec<String> {
        err.issues
            .iter()
            .map(|i| match &i.location {
                Location::Key(k) => k.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    const LAMBDA: &str =
        "[sink]\nkind = \"lambda_url\"\nurl = \"https://abc123.lambda-url.eu-west-1.on.aws/\"\n";
    const KINESIS: &str = "[sink]\nkind = \"kinesis\"\nstream = \"outpost\"\n";

    #[test]
    fn lambda_url_takes_its_region_from_the_host_or_the_key() {
        let c = check(LAMBDA).unwrap();
        let SinkTransport::LambdaUrl {
            batches_url,
            region,
            ..
        } = &c.sink.transport
        else {
            panic!("{:?}", c.sink)
        };
        assert_eq!(
            batches_url.as_str(),
            "https://abc123.lambda-url.eu-west-1.on.aws/v1/batches"
        );
        assert_eq!(region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.sink.kind(), SinkKind::LambdaUrl);
        assert_eq!(c.sink.max_frame_len(), outpost_proto::limits::MAX_FRAME_LEN);
        assert_eq!(c.batch.max_bytes, 1 << 20);

        // Another host (a custom domain): the key, else the SDK's chain at start.
        let custom = "[sink]\nkind = \"lambda_url\"\nurl = \"https://ingest.example.com\"\n";
        let c = check(custom).unwrap();
        assert!(matches!(
            c.sink.transport,
            SinkTransport::LambdaUrl { region: None, .. }
        ));
        let c = check(&format!("{custom}region = \"us-west-2\"\n")).unwrap();
        assert!(
            matches!(&c.sink.transport, SinkTransport::LambdaUrl { region: Some(r), .. } if r == "us-west-2")
        );

        // A key that contradicts the host, a bad region, and a token: each named.
        let err = check(&format!(
            "{LAMBDA}region = \"us-east-1\"\ntoken_file = \"/t\"\n"
        ))
        .unwrap_err();
        assert_eq!(keys(&err), ["sink.token_file", "sink.region"], "{err}");
        let err = check(&format!("{LAMBDA}region = \"Mars 1\"\n")).unwrap_err();
        assert_eq!(keys(&err), ["sink.region", "sink.region"], "{err}");
        let err = check("[sink]\nkind = \"lambda_url\"\n").unwrap_err();
        assert_eq!(keys(&err), ["sink.url"], "{err}");
    }

    #[test]
    fn kinesis_needs_a_stream_and_takes_the_region_of_its_arn() {
        let c = check(KINESIS).unwrap();
        assert!(matches!(
            &c.sink.transport,
            SinkTransport::Kinesis { stream: KinesisStream::Name(n), region: None } if n == "outpost"
        ));
        assert_eq!(c.sink.describe(), "kinesis:outpost");
        assert_eq!(
            c.sink.max_frame_len(),
            crate::config::limits::KINESIS_MAX_FRAME_LEN
        );
        // The default batch size is the largest a Kinesis record can carry.
        assert_eq!(c.batch.max_bytes as u64, KINESIS_MAX_BATCH_BYTES);

        let arn = "arn:aws:kinesis:eu-central-1:123456789012:stream/outpost";
        let c = check(&format!(
            "[sink]\nkind = \"kinesis\"\nstream = \"{arn}\"\ntimeout = \"5s\"\n"
        ))
        .unwrap();
        assert!(matches!(
            &c.sink.transport,
            SinkTransport::Kinesis { stream: KinesisStream::Arn(a), region: Some(r) }
                if a == arn && r == "eu-central-1"
        ));
        assert_eq!(c.sink.timeout, Duration::from_secs(5));

        let err = check("[sink]\nkind = \"kinesis\"\nurl = \"http://x\"\ntoken_file = \"/t\"\n")
            .unwrap_err();
        assert_eq!(
            keys(&err),
            ["sink.url", "sink.token_file", "sink.stream"],
            "{err}"
        );
        for bad in ["a b", "arn:aws:kinesis:eu-central-1:1234:stream/x", ""] {
            let err =
                check(&format!("[sink]\nkind = \"kinesis\"\nstream = \"{bad}\"\n")).unwrap_err();
            assert_eq!(keys(&err), ["sink.stream"], "{bad}: {err}");
        }
        let err = check(&format!(
            "[sink]\nkind = \"kinesis\"\nstream = \"{arn}\"\nregion = \"us-east-1\"\n"
        ))
        .unwrap_err();
        assert_eq!(keys(&err), ["sink.region"], "{err}");
        let err = check(
            "[sink]\nkind = \"http\"\nurl = \"http://x\"\nstream = \"s\"\nregion = \"us-east-1\"\n",
        )
        .unwrap_err();
        assert_eq!(keys(&err), ["sink.stream", "sink.region"], "{err}");
    }

    #[test]
    fn kinesis_limits_plus_one_are_rejected_and_say_why() {
        let over = KINESIS_MAX_BATCH_BYTES + 1;
        let text = format!(
            "[[logs]]\npaths = [\"/l/*\"]\nservice = \"a\"\nmax_line_bytes = {over}\n[batch]\nmax_bytes = {over}\n{KINESIS}"
        );
        let err = check(&text).unwrap_err();
        assert_eq!(
            keys(&err),
            ["batch.max_bytes", "logs[0].max_line_bytes"],
            "{err}"
        );
        assert!(
            err.issues[0].message.contains("1 MiB Kinesis record"),
            "{err}"
        );
        let at_limit = text.replace(&over.to_string(), &KINESIS_MAX_BATCH_BYTES.to_string());
        assert!(check(&at_limit).is_ok());
        // The same sizes are fine for the HTTP transports (4 MiB frames).
        assert!(check(&text.replace(KINESIS, LAMBDA)).is_ok());
    }

    #[test]
    fn function_url_regions_are_read_from_the_host() {
        assert_eq!(
            function_url_region("abcdefg.lambda-url.ap-southeast-2.on.aws").as_deref(),
            Some("ap-southeast-2")
        );
        assert_eq!(function_url_region("example.com"), None);
        assert_eq!(function_url_region("x.lambda-url.on.aws"), None);
    }

    #[test]
    fn custom_inputs_take_defaults_and_resolve_paths() {
        let c = check(MINIMAL).unwrap();
        assert!(c.textfile.is_none() && c.exec.is_empty());
        let text = format!(
            r#"[textfile]
dir = "textfile"
[[exec]]
name = "a"
command = ["bin/probe", "-x"]
[[exec]]
name = "b.2_x-y"
command = ["probe"]
interval = "5s"
format = "json"
[[exec]]
name = "c"
command = ["/usr/lib/probe"]
timeout = "2s"
{MINIMAL}"#
        );
        let c = check(&text).unwrap();
        assert_eq!(
            c.textfile,
            Some(TextfileConfig {
                dir: PathBuf::from("/etc/outpost/textfile"),
                interval: Duration::from_secs(60),
            })
        );
        let a = &c.exec[0];
        assert_eq!(a.command, ["/etc/outpost/bin/probe", "-x"]);
        assert_eq!(a.interval, Duration::from_secs(60));
        assert_eq!(a.timeout, DEFAULT_EXEC_TIMEOUT);
        assert_eq!(a.format, ExecFormat::Prometheus);
        let b = &c.exec[1];
        // A bare name is looked up in PATH when run; the timeout defaults to a shorter interval.
        assert_eq!(b.command, ["probe"]);
        assert_eq!(b.timeout, Duration::from_secs(5));
        assert_eq!(b.format, ExecFormat::Json);
        assert_eq!(c.exec[2].timeout, Duration::from_secs(2));
        assert_eq!(c.exec[2].command, ["/usr/lib/probe"]);
    }

    #[test]
    fn custom_input_errors_name_their_keys() {
        let long = "n".repeat(MAX_EXEC_NAME_LEN + 1);
        let text = format!(
            r#"[textfile]
dir = ""
interval = "0s"
[[exec]]
name = "{long}"
command = []
interval = "10s"
timeout = "11s"
[[exec]]
name = "ok"
command = [""]
interval = "2h"
[[exec]]
name = "ok"
command = ["/bin/x", "a\u0000b"]
timeout = "50ms"
{MINIMAL}"#
        );
        let err = check(&text).unwrap_err();
        assert_eq!(
            keys(&err),
            [
                "textfile.dir",
                "textfile.interval",
                "exec[0].name",
                "exec[0].command",
                "exec[0].timeout",
                "exec[1].command[0]",
                "exec[1].interval",
                "exec[2].name",
                "exec[2].command[1]",
                "exec[2].timeout",
            ],
            "{err}"
        );
        assert!(err.to_string().contains("is longer than interval"), "{err}");
        // The longest name, and a timeout equal to the interval, are fine.
        let at_limit = format!(
            "[[exec]]\nname = \"{}\"\ncommand = [\"/bin/x\"]\ninterval = \"10s\"\ntimeout = \"10s\"\n{MINIMAL}",
            "n".repeat(MAX_EXEC_NAME_LEN)
        );
        assert!(check(&at_limit).is_ok());
    }
}
