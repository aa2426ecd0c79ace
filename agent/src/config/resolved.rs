//! The checked, resolved configuration ([`Config`]) that [`validate`](super::validate) produces
//! and the agent runs on: paths absolute, patterns compiled, durations and sizes in range, the
//! sink's transport chosen.

use super::file::{ExecFormat, ReadFrom, SinkKind};
use super::limits::KINESIS_MAX_FRAME_LEN;
use super::secret::Secret;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// Largest `batch.max_bytes`: with zstd's worst-case expansion an incompressible batch of this
/// size still fits a frame's 4 MiB compressed limit.
pub const MAX_BATCH_BYTES: u64 = 3 * 1024 * 1024;

/// The checked, resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The main config file (drop-ins and the environment may have added to it).
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
    /// Self-metrics, heartbeat and the Prometheus endpoint.
    pub telemetry: TelemetryConfig,
    /// `[textfile]`, when configured.
    pub textfile: Option<TextfileConfig>,
    /// `[[exec]]` inputs.
    pub exec: Vec<ExecInput>,
}

/// `[textfile]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextfileConfig {
    /// Absolute directory of the `*.prom` files.
    pub dir: PathBuf,
    /// How often they are read.
    pub interval: Duration,
}

/// One `[[exec]]` input, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecInput {
    /// Its name, unique among the `[[exec]]` inputs.
    pub name: String,
    /// The program (an absolute path, or a bare name looked up in `PATH`) and its arguments.
    pub command: Vec<String>,
    /// How often it runs.
    pub interval: Duration,
    /// How long one run may take (at most `interval`).
    pub timeout: Duration,
    /// What it prints.
    pub format: ExecFormat,
}

/// Longest `exec[].name`.
pub const MAX_EXEC_NAME_LEN: usize = 64;
/// `exec[].timeout` when none is set (or `interval`, when shorter).
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(10);

/// `[telemetry]`, resolved.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Ship the self-metrics, log counters and heartbeat.
    pub ship: bool,
    /// How often.
    pub interval: Duration,
    /// Where the Prometheus endpoint listens, when enabled.
    pub listen: Option<std::net::SocketAddr>,
}

/// What makes a log record count as an error line (`log.error_lines`).
#[derive(Debug, Clone)]
pub enum ErrorMatch {
    /// The detected level is error or worse (the default).
    Level,
    /// The record matches this regex (`logs[].error_pattern`).
    Pattern(regex::bytes::Regex),
}

impl ErrorMatch {
    /// Whether a record with these bytes and this detected level is an error line.
    pub fn is_error(&self, bytes: &[u8], level: Option<outpost_proto::Level>) -> bool {
        match self {
            Self::Level => level.is_some_and(|l| l >= outpost_proto::Level::Error),
            Self::Pattern(re) => re.is_match(bytes),
        }
    }
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
    /// What counts as an error line.
    pub errors: ErrorMatch,
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
    /// Where frames go and how.
    pub transport: SinkTransport,
    /// Request timeout.
    pub timeout: Duration,
}

/// The sink's transport and its settings.
#[derive(Debug, Clone)]
pub enum SinkTransport {
    /// `kind = "http"`: POST to an `outpost-sink`.
    Http {
        /// Base URL as configured.
        url: Url,
        /// Where batches are POSTed: `url` + `/v1/batches`.
        batches_url: Url,
        /// Absolute path of the token file; `None` when there is none, or when `token` is set.
        token_file: Option<PathBuf>,
        /// The token itself, from `OUTPOST_SINK_TOKEN`: wins over `token_file`.
        token: Option<Secret>,
    },
    /// `kind = "lambda_url"`: POST to a Lambda Function URL, signed with SigV4.
    LambdaUrl {
        /// The Function URL as configured.
        url: Url,
        /// Where batches are POSTed: `url` + `/v1/batches`.
        batches_url: Url,
        /// The region to sign for: `sink.region`, else the one in the URL's host name; `None`:
        /// from the AWS SDK's chain at start.
        region: Option<String>,
    },
    /// `kind = "kinesis"`: `PutRecords` to a Kinesis data stream.
    Kinesis {
        /// The stream.
        stream: KinesisStream,
        /// `sink.region`, else the one in the stream's ARN; `None`: from the AWS SDK's chain.
        region: Option<String>,
    },
}

/// A Kinesis stream, by name or by ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KinesisStream {
    /// The stream's name (in the account of the credentials).
    Name(String),
    /// The stream's ARN.
    Arn(String),
}

impl SinkConfig {
    /// The configured kind.
    pub fn kind(&self) -> SinkKind {
        match self.transport {
            SinkTransport::Http { .. } => SinkKind::Http,
            SinkTransport::LambdaUrl { .. } => SinkKind::LambdaUrl,
            SinkTransport::Kinesis { .. } => SinkKind::Kinesis,
        }
    }

    /// Where frames go, for logs: a URL or the stream.
    pub fn describe(&self) -> String {
        match &self.transport {
            SinkTransport::Http { url, .. } | SinkTransport::LambdaUrl { url, .. } => {
                url.to_string()
            }
            SinkTransport::Kinesis {
                stream: KinesisStream::Name(s) | KinesisStream::Arn(s),
                ..
            } => format!("kinesis:{s}"),
        }
    }

    /// The largest frame this transport carries: the wire format's limit, or less for Kinesis
    /// (a record holds at most 1 MiB).
    pub fn max_frame_len(&self) -> usize {
        match self.transport {
            SinkTransport::Kinesis { .. } => KINESIS_MAX_FRAME_LEN,
            _ => outpost_proto::limits::MAX_FRAME_LEN,
        }
    }
}
