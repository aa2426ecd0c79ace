//! Custom metrics: node_exporter-style `*.prom` text files and commands run on an interval
//! (`[textfile]`, `[[exec]]`), read into metric points.
//!
//! | file | what |
//! |---|---|
//! | `prom.rs` | the Prometheus text format 0.0.4 parser (pure) |
//! | `jsonl.rs` | the JSON-lines parser (pure) |
//! | `validate.rs` | names, labels, limits and duplicates; samples to [`MetricPoint`]s (pure) |
//! | `textfile.rs` | reading the `*.prom` files of a directory |
//! | `exec.rs` | running a command with a timeout and bounded output |
//! | `runner.rs` | the schedule of every input, and reporting problems (rate limited, counted) |
//!
//! A bad line is reported and skipped, the rest of its file or output used; a file that
//! cannot be read, or a command that fails, times out or prints too much, is reported and its
//! output discarded for that run. Nothing here stops the agent.

pub mod exec;
pub mod jsonl;
pub mod prom;
pub mod runner;
pub mod textfile;
pub mod validate;

pub use runner::{CustomRunner, Problem};

use outpost_proto::MetricPoint;

/// Most bytes read from one file or one command's standard output; past this the whole
/// output is discarded for that run.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// Most series (distinct name and labels) taken from one file or one command's output.
pub const MAX_SERIES: usize = 1000;

/// Most labels on one sample: a metric point carries at most this many dimensions.
pub const MAX_LABELS: usize = outpost_proto::limits::MAX_DIMENSIONS as usize;

/// Longest metric or label name, in bytes (CloudWatch's limit for a metric or dimension
/// name).
pub const MAX_NAME_LEN: usize = 255;

/// Longest label value, in bytes (CloudWatch's limit for a dimension value).
pub const MAX_LABEL_VALUE_LEN: usize = 1024;

/// Most `*.prom` files read from the textfile directory in one run; the rest are reported.
pub const MAX_TEXTFILES: usize = 256;

/// One sample as a parser read it, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Line number in its file or output, from 1.
    pub line: usize,
    /// Metric name as written.
    pub name: String,
    /// Labels in the order written (values unescaped).
    pub labels: Vec<(String, String)>,
    /// The value; NaN and the infinities are allowed.
    pub value: f64,
    /// Its own timestamp (unix milliseconds), if it has one.
    pub ts_ms: Option<i64>,
    /// The unit (JSON lines may give one; Prometheus text has none).
    pub unit: outpost_proto::Unit,
}

/// A line that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// Line number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// What a parser made of one file or output: the samples, and the lines it skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Samples, in order.
    pub samples: Vec<Sample>,
    /// Lines skipped, in order.
    pub errors: Vec<LineError>,
}

/// The points of one file or output, and its bad lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Read {
    /// Valid points.
    pub points: Vec<MetricPoint>,
    /// Lines skipped (syntax, validation), in order.
    pub errors: Vec<LineError>,
}

/// Split `text` into lines numbered from 1, without their `\n` (nor a `\r` before it).
pub(crate) fn numbered_lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let empty = text.is_empty();
    body.split(|&b| b == b'\n')
        .filter(move |_| !empty)
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
}
