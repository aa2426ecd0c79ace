//! The config file as written: serde structs that only parse. Meaning is checked in `validate`.
//! Every file (the main one and each drop-in) must parse on its own; the merged result is
//! parsed again. `Serialize` is for `check-config --print`.
//!
//! Every key here is public contract (users and config management write it): add keys freely,
//! never rename or remove one without a migration note.

use super::units::SizeValue;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The whole config file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[agent]`: identity and state.
    #[serde(default)]
    pub agent: AgentSection,
    /// `[host]`: host metric sampling.
    #[serde(default)]
    pub host: HostSection,
    /// `[tail]`: how log files are followed.
    #[serde(default)]
    pub tail: TailSection,
    /// `[[logs]]`: log inputs.
    #[serde(default)]
    pub logs: Vec<LogsSection>,
    /// `[batch]`: when a batch is closed.
    #[serde(default)]
    pub batch: BatchSection,
    /// `[spool]`: the disk buffer between batching and delivery.
    #[serde(default)]
    pub spool: SpoolSection,
    /// `[sink]`: where batches go. Required, but it may come from a drop-in file or the
    /// environment: `validate` checks that `sink.kind` is set.
    #[serde(default)]
    pub sink: SinkSection,
    /// `[telemetry]`: the agent's own metrics, its heartbeat and the local Prometheus endpoint.
    #[serde(default)]
    pub telemetry: TelemetrySection,
    /// `[textfile]`: `*.prom` files read on an interval; off when absent.
    #[serde(default)]
    pub textfile: Option<TextfileSection>,
    /// `[[exec]]`: commands run on an interval, their output read as metrics.
    #[serde(default)]
    pub exec: Vec<ExecSection>,
}

/// `[agent]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Agent id; default: the contents of `/etc/machine-id`.
    #[serde(default)]
    pub id: Option<String>,
    /// Host name reported with every batch; default: the system's host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Directory for the agent's durable state; default `/var/lib/outpost`. A relative path is
    /// resolved against the config file's directory.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// How long SIGTERM/SIGINT may spend delivering what is buffered; default `"10s"`.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: String,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/outpost")
}
fn default_shutdown_timeout() -> String {
    "10s".to_owned()
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            id: None,
            hostname: None,
            state_dir: default_state_dir(),
            shutdown_timeout: default_shutdown_timeout(),
        }
    }
}

/// `[host]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostSection {
    /// Sample host metrics at all; default `true`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Sampling interval; default `"10s"`.
    #[serde(default = "default_host_interval")]
    pub interval: String,
}

fn default_true() -> bool {
    true
}
fn default_host_interval() -> String {
    "10s".to_owned()
}

impl Default for HostSection {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: default_host_interval(),
        }
    }
}

/// `[tail]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TailSection {
    /// Shortest time between two reads of the followed files; without filesystem events, how
    /// often files are checked for new data and globs for new files. Default `"250ms"`.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: String,
    /// With filesystem events, how often the globs are re-evaluated and files checked anyway,
    /// in case an event was missed; default `"10s"`.
    #[serde(default = "default_rescan_interval")]
    pub rescan_interval: String,
    /// How long a rotated (renamed) file stays open after its last new byte, for writers that
    /// have not reopened the new file yet; default `"5s"`.
    #[serde(default = "default_rotate_wait")]
    pub rotate_wait: String,
}

fn default_rotate_wait() -> String {
    "5s".to_owned()
}

fn default_poll_interval() -> String {
    "250ms".to_owned()
}
fn default_rescan_interval() -> String {
    "10s".to_owned()
}

impl Default for TailSection {
    fn default() -> Self {
        Self {
            poll_interval: default_poll_interval(),
            rescan_interval: default_rescan_interval(),
            rotate_wait: default_rotate_wait(),
        }
    }
}

/// Where to start in a file that exists when the agent starts.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// From the first byte.
    Beginning,
    /// From the current end: only lines written after the start are shipped.
    End,
}

/// `[[logs]]`: one log input.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogsSection {
    /// Glob patterns of files to follow (absolute, or relative to the config file).
    pub paths: Vec<String>,
    /// Service name attached to every line; required.
    pub service: String,
    /// For files present at start: `"beginning"` (default) or `"end"`. Files that appear later
    /// are always read from their beginning.
    #[serde(default = "default_read_from")]
    pub read_from: ReadFrom,
    /// Longest line kept; longer lines are truncated to this and counted. Default `"256KiB"`.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: SizeValue,
    /// Join continuation lines (stack traces) into one record; off by default.
    #[serde(default)]
    pub multiline: Option<MultilineSection>,
    /// Regex a record must match to count as an error line in `log.error_lines`, e.g.
    /// `'\b(ERROR|Exception)\b'`. Default: the record's detected level is error or worse
    /// (`ERROR`, `ERR`, `FATAL`, `CRITICAL`, `CRIT`, `PANIC`, `EMERG`, `ALERT` in upper case or
    /// `[brackets]`, or a JSON / logfmt `level`, `severity` or `lvl` field of any case).
    #[serde(default)]
    pub error_pattern: Option<String>,
}

/// `[logs.multiline]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineSection {
    /// Regex a line that starts a new record matches (anchor it with `^`), e.g.
    /// `'^\d{4}-\d{2}-\d{2}'`; every other line continues the open record.
    pub start_pattern: String,
    /// An open record is sent this long after its last line; default `"1s"`.
    #[serde(default = "default_flush_timeout")]
    pub flush_timeout: String,
}

fn default_flush_timeout() -> String {
    "1s".to_owned()
}

fn default_read_from() -> ReadFrom {
    ReadFrom::Beginning
}
fn default_max_line_bytes() -> SizeValue {
    SizeValue::Text("256KiB".to_owned())
}

/// `[batch]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSection {
    /// Most records in a batch; default 10000.
    #[serde(default = "default_max_records")]
    pub max_records: u64,
    /// Most (uncompressed) bytes in a batch; default `"1MiB"`, or `"1000KiB"` with
    /// `sink.kind = "kinesis"` (a Kinesis record holds at most 1 MiB).
    #[serde(default)]
    pub max_bytes: Option<SizeValue>,
    /// Longest a batch stays open; default `"5s"`.
    #[serde(default = "default_max_age")]
    pub max_age: String,
    /// zstd level of the frames; default 3.
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
}

fn default_max_records() -> u64 {
    10_000
}
fn default_max_age() -> String {
    "5s".to_owned()
}
fn default_zstd_level() -> i32 {
    outpost_proto::DEFAULT_ZSTD_LEVEL
}

impl Default for BatchSection {
    fn default() -> Self {
        Self {
            max_records: default_max_records(),
            max_bytes: None,
            max_age: default_max_age(),
            zstd_level: default_zstd_level(),
        }
    }
}

/// `[spool]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSection {
    /// Most disk space the spool may use; when full, log reading pauses. Default `"256MiB"`.
    #[serde(default = "default_spool_max_bytes")]
    pub max_bytes: SizeValue,
    /// Size at which a spool segment file is closed and a new one started. Default `"8MiB"`.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: SizeValue,
}

fn default_spool_max_bytes() -> SizeValue {
    SizeValue::Text("256MiB".to_owned())
}
fn default_segment_bytes() -> SizeValue {
    SizeValue::Text("8MiB".to_owned())
}

impl Default for SpoolSection {
    fn default() -> Self {
        Self {
            max_bytes: default_spool_max_bytes(),
            segment_bytes: default_segment_bytes(),
        }
    }
}

/// The kinds of sink.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// HTTP POST of frames to `outpost-sink serve` (bearer token).
    Http,
    /// HTTP POST of frames to an AWS Lambda Function URL, signed with SigV4 (service `lambda`).
    LambdaUrl,
    /// Amazon Kinesis Data Streams `PutRecords`, one frame per record.
    Kinesis,
}

impl SinkKind {
    /// The value as written in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::LambdaUrl => "lambda_url",
            Self::Kinesis => "kinesis",
        }
    }
}

/// `[sink]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSection {
    /// `"http"`, `"lambda_url"` or `"kinesis"`; required (`validate` says so when missing).
    #[serde(default)]
    pub kind: Option<SinkKind>,
    /// `http`: base URL of the sink, e.g. `"http://127.0.0.1:7070"`; `lambda_url`: the Function
    /// URL. Batches go to `URL/v1/batches`. Required for both; not used by `kinesis`.
    #[serde(default)]
    pub url: Option<String>,
    /// `http` only: file holding the bearer token (surrounding whitespace trimmed); optional.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// `kinesis` only: the stream's name or ARN; required.
    #[serde(default)]
    pub stream: Option<String>,
    /// `lambda_url` and `kinesis`: the AWS region; default: from the Function URL's host name or
    /// the stream's ARN, else the AWS SDK's chain (`AWS_REGION`, profile, instance metadata).
    #[serde(default)]
    pub region: Option<String>,
    /// Timeout of one request; default `"30s"`.
    #[serde(default = "default_request_timeout")]
    pub timeout: String,
}

fn default_request_timeout() -> String {
    "30s".to_owned()
}

impl Default for SinkSection {
    fn default() -> Self {
        Self {
            kind: None,
            url: None,
            token_file: None,
            stream: None,
            region: None,
            timeout: default_request_timeout(),
        }
    }
}

/// `[telemetry]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySection {
    /// Ship the agent's own metrics, the per-service log line counters and the heartbeat to the
    /// sink; default `true`.
    #[serde(default = "default_true")]
    pub ship: bool,
    /// How often they are shipped (one point per metric each time); default `"60s"`.
    #[serde(default = "default_telemetry_interval")]
    pub interval: String,
    /// Address of the Prometheus endpoint (`GET /metrics`, `GET /healthz`), e.g.
    /// `"127.0.0.1:9464"`; default: none (no listener).
    #[serde(default)]
    pub listen: Option<String>,
}

fn default_telemetry_interval() -> String {
    "60s".to_owned()
}

impl Default for TelemetrySection {
    fn default() -> Self {
        Self {
            ship: true,
            interval: default_telemetry_interval(),
            listen: None,
        }
    }
}

/// `[textfile]`: node_exporter's textfile collector. Files are expected to be renamed into
/// place, so a half-written one is never read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TextfileSection {
    /// Directory whose `*.prom` files (Prometheus text format) are read; required in the
    /// section. A relative path is resolved against the config file's directory.
    pub dir: PathBuf,
    /// How often the files are read; default `"60s"`.
    #[serde(default = "default_custom_interval")]
    pub interval: String,
}

/// What an `[[exec]]` command prints.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExecFormat {
    /// Prometheus text exposition format 0.0.4.
    Prometheus,
    /// JSON lines: one `{"name": ..., "value": ...}` object per line.
    Json,
}

impl ExecFormat {
    /// The value as written in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prometheus => "prometheus",
            Self::Json => "json",
        }
    }
}

/// `[[exec]]`: one command whose output is read as metrics.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSection {
    /// Name of the input, in log lines; required, unique among the `[[exec]]` entries.
    pub name: String,
    /// The program and its arguments (run directly, no shell): an absolute path, a bare name
    /// looked up in `PATH`, or a path relative to the config file's directory.
    pub command: Vec<String>,
    /// How often the command is run; default `"60s"`.
    #[serde(default = "default_custom_interval")]
    pub interval: String,
    /// How long one run may take before it is killed; default `"10s"`, or `interval` when that
    /// is shorter. At most `interval`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// `"prometheus"` (default) or `"json"`.
    #[serde(default = "default_exec_format")]
    pub format: ExecFormat,
}

fn default_custom_interval() -> String {
    "60s".to_owned()
}
fn default_exec_format() -> ExecFormat {
    ExecFormat::Prometheus
}
