//! The data a frame carries: a batch of metric points and log records from one agent.
//!
//! postcard is not self-describing, so these types must never use `skip_serializing_if`,
//! `flatten` or internally tagged enums, and fields are never reordered or removed: a change of
//! shape is a new [`crate::FORMAT_VERSION`].

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::limits::MAX_DIMENSIONS;

/// Who sent a batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AgentIdentity {
    /// Stable agent id (by default the host's `/etc/machine-id`).
    pub agent_id: String,
    /// The host name the agent reports.
    pub hostname: String,
    /// The agent's version string.
    pub agent_version: String,
}

/// One shipment from an agent: the unit the sink acknowledges and stores idempotently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The sender.
    pub agent: AgentIdentity,
    /// Per-agent sequence number; it only grows, across restarts too. `(agent_id, seq)` names the
    /// batch, so a re-sent batch overwrites itself at the sink.
    pub seq: u64,
    /// When the agent closed the batch, unix milliseconds.
    pub created_ms: i64,
    /// The records, in the order the agent collected them.
    pub records: Vec<Record>,
}

/// One record of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// A metric sample.
    Metric(MetricPoint),
    /// A log line.
    Log(LogRecord),
}

/// A metric sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// Dotted metric name, e.g. `cpu.utilization`.
    pub name: String,
    /// Sample time, unix milliseconds.
    pub ts_ms: i64,
    /// The value.
    pub value: f64,
    /// Unit of `value`.
    pub unit: Unit,
    /// Dimensions (e.g. `cpu=3`, `mount=/`), sorted by key by the agent. At most
    /// [`MAX_DIMENSIONS`](crate::limits::MAX_DIMENSIONS): the encoder refuses more, and the
    /// decoder stops reading at the first one past the limit.
    #[serde(deserialize_with = "bounded_dimensions")]
    pub dimensions: Vec<Dimension>,
}

/// Deserialise `MetricPoint::dimensions` without ever holding more than
/// [`MAX_DIMENSIONS`](crate::limits::MAX_DIMENSIONS) of them. Only deserialisation changes:
/// on the wire it is still a plain sequence.
fn bounded_dimensions<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Dimension>, D::Error> {
    struct Bounded;

    impl<'de> Visitor<'de> for Bounded {
        type Value = Vec<Dimension>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "at most {MAX_DIMENSIONS} dimensions")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let limit = MAX_DIMENSIONS as usize;
            if let Some(len) = seq.size_hint().filter(|&len| len > limit) {
                return Err(de::Error::invalid_length(len, &self));
            }
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(limit));
            while let Some(dimension) = seq.next_element()? {
                if out.len() == limit {
                    return Err(de::Error::invalid_length(limit + 1, &self));
                }
                out.push(dimension);
            }
            Ok(out)
        }
    }

    deserializer.deserialize_seq(Bounded)
}

/// A key/value dimension of a metric point.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dimension {
    /// Dimension name.
    pub key: String,
    /// Dimension value.
    pub value: String,
}

/// A log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// When the agent read the line, unix milliseconds.
    pub ts_ms: i64,
    /// Path of the file the line came from.
    pub source: String,
    /// Service name from the log input's config.
    pub service: String,
    /// The line's bytes without its line terminator. Not necessarily UTF-8.
    #[serde(with = "serde_bytes")]
    pub line: Vec<u8>,
    /// Severity, when the agent detected one.
    pub level: Option<Level>,
}

/// Unit of a metric value. The names follow CloudWatch's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Unit {
    /// No unit.
    None,
    /// Percent, 0 to 100.
    Percent,
    /// Bytes.
    Bytes,
    /// Bytes per second.
    BytesPerSecond,
    /// Seconds.
    Seconds,
    /// A count.
    Count,
    /// A count per second.
    CountPerSecond,
}

impl Unit {
    /// The CloudWatch name of the unit.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::None => "None",
            Unit::Percent => "Percent",
            Unit::Bytes => "Bytes",
            Unit::BytesPerSecond => "Bytes/Second",
            Unit::Seconds => "Seconds",
            Unit::Count => "Count",
            Unit::CountPerSecond => "Count/Second",
        }
    }
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    /// trace
    Trace,
    /// debug
    Debug,
    /// info
    Info,
    /// warn, warning
    Warn,
    /// error
    Error,
    /// fatal, critical, panic
    Fatal,
}

impl Level {
    /// Lower-case name, as stored by the sink.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }
}

impl Record {
    /// An upper bound of the record's postcard size, cheap to compute; the agent's batcher uses it
    /// to keep batches under a byte budget without serialising twice.
    pub fn size_hint(&self) -> usize {
        // Each varint length prefix or integer is at most 10 bytes; f64 is 8.
        const INT: usize = 10;
        match self {
            Record::Metric(m) => {
                1 + INT
                    + m.name.len()
                    + INT
                    + 8
                    + 1
                    + INT
                    + m.dimensions
                        .iter()
                        .map(|d| 2 * INT + d.key.len() + d.value.len())
                        .sum::<usize>()
            }
            Record::Log(l) => log_size_hint(&l.source, &l.service, &l.line),
        }
    }
}

/// An upper bound of a log record's serialised size (see [`Record::size_hint`]).
pub fn log_size_hint(source: &str, service: &str, line: &[u8]) -> usize {
    const INT: usize = 10;
    1 + INT + 3 * INT + source.len() + service.len() + line.len() + 2
}
