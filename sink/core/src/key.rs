//! The key of a log object: `logs/host=H/dt=YYYY-MM-DD/hour=HH/<agent_id>-<seq>.ndjson.zst`.
//!
//! Every backend (local disk now, S3 later) stores a log object under this key, so Athena or
//! DuckDB read both the same way. The key is a pure function of the batch and the records'
//! timestamps, which is what makes a re-sent batch overwrite itself instead of duplicating.

use std::fmt;

use time::Date;

use crate::names::sanitize;
use crate::timestamp;

/// Suffix of every complete log object; temporary files never end with it.
pub const LOG_OBJECT_SUFFIX: &str = ".ndjson.zst";

/// Top-level directory (or key prefix) of the log objects.
pub const LOGS_PREFIX: &str = "logs";

/// The UTC hour a log record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    /// UTC date.
    pub date: Date,
    /// UTC hour, 0..=23.
    pub hour: u8,
}

impl Partition {
    /// The partition of a record stamped `ts_ms`, or `None` when the timestamp is outside
    /// [`timestamp::in_range`].
    pub fn of(ts_ms: i64) -> Option<Self> {
        timestamp::date_hour(ts_ms).map(|(date, hour)| Self { date, hour })
    }
}

/// Where one log object of one batch is stored. Construct with [`LogObjectKey::new`], which
/// sanitises the host name and agent id into safe path components ([`sanitize`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogObjectKey {
    host: String,
    partition: Partition,
    agent_id: String,
    seq: u64,
}

impl LogObjectKey {
    /// The key of the objects holding `agent_id`'s batch `seq` from `hostname` in `partition`.
    pub fn new(hostname: &str, agent_id: &str, seq: u64, partition: Partition) -> Self {
        Self {
            host: sanitize(hostname),
            partition,
            agent_id: sanitize(agent_id),
            seq,
        }
    }

    /// The directory components below [`LOGS_PREFIX`]: `host=H`, `dt=YYYY-MM-DD`, `hour=HH`.
    pub fn dir_components(&self) -> [String; 3] {
        [
            format!("host={}", self.host),
            format!("dt={}", timestamp::format_date(self.partition.date)),
            format!("hour={:02}", self.partition.hour),
        ]
    }

    /// The file name: `<agent_id>-<seq, 20 digits>.ndjson.zst`.
    pub fn file_name(&self) -> String {
        format!("{}-{:020}{LOG_OBJECT_SUFFIX}", self.agent_id, self.seq)
    }

    /// The partition this object covers.
    pub fn partition(&self) -> Partition {
        self.partition
    }
}

/// The full key, `/`-separated, starting with [`LOGS_PREFIX`].
impl fmt::Display for LogObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [host, dt, hour] = self.dir_components();
        write!(f, "{LOGS_PREFIX}/{host}/{dt}/{hour}/{}", self.file_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(ts_ms: i64) -> Partition {
        Partition::of(ts_ms).unwrap()
    }

    #[test]
    fn key_has_the_documented_shape() {
        // 2026-11-23T22:57:58.123Z
        let key = LogObjectKey::new("web-1", "abc123", 42, partition(1_795_474_678_123));
        assert_eq!(
            key.to_string(),
            "logs/host=web-1/dt=2026-11-23/hour=22/abc123-00000000000000000042.ndjson.zst"
        );
    }

    #[test]
    fn hour_is_zero_padded_and_max_seq_fits() {
        let key = LogObjectKey::new("h", "a", u64::MAX, partition(3_600_000));
        assert_eq!(
            key.to_string(),
            "logs/host=h/dt=1970-01-01/hour=01/a-18446744073709551615.ndjson.zst"
        );
    }
}
