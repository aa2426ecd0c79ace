//! The key of a log object: `logs/host=H/dt=YYYY-MM-DD/hour=HH/<agent_id>-<seq>.ndjson.zst`.
//!
//! Every backend (local disk now, S3 later) stores a log object under this key, so Athena or
//! DuckDB read both the same way. The key is a pure function of the batch and the records'
//! timestamps, which is what makes a re-sent batch overwrite itself instead of duplicating.

use std::fmt;

use time::Date;

use crate::timestamp;

/// Suffix of every complete log object; temporary files never end with it.
pub const LOG_OBJECT_SUFFIX: &str = ".ndjson.zst";

/// Top-level directory (or key prefix) of the log objects.
pub const LOGS_PREFIX: &str = "logs";

/// Longest host name or agent id, in characters, that the sink accepts. [`sanitize`] maps each
/// character to one byte, so every path component stays under the 255-byte file name limit of
/// common file systems (`<agent_id>-<20 digits>.ndjson.zst` is at most 232 bytes).
pub const MAX_NAME_LEN: usize = 200;

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
/// sanitises the host name and agent id into safe path components.
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

/// Map a host name or agent id to a safe path component.
///
/// Keeps ASCII letters, digits, `-`, `_` and `.`; every other character (including `/`, `\`,
/// `=`, NUL, spaces and any non-ASCII character) becomes `_`. A `.` at the start or right
/// after another `.` also becomes `_`, so the result is never hidden, never `..` and never
/// contains `..`. An empty input becomes `_`. The mapping is not injective: `a/b` and `a_b`
/// share a directory, which is why every NDJSON line also carries the raw host and agent id.
pub fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len().max(1));
    let mut previous = None;
    for c in name.chars() {
        let keep = match c {
            '.' => previous.is_some() && previous != Some('.'),
            c => c.is_ascii_alphanumeric() || c == '-' || c == '_',
        };
        let c = if keep { c } else { '_' };
        out.push(c);
        previous = Some(c);
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    #[test]
    fn unsafe_names_are_mapped() {
        assert_eq!(sanitize("../etc/passwd"), "_._etc_passwd");
        assert_eq!(sanitize(".."), "_.");
        assert_eq!(sanitize(".hidden"), "_hidden");
        assert_eq!(sanitize("a..b"), "a._b");
        assert_eq!(sanitize("a\0b"), "a_b");
        assert_eq!(sanitize("héte"), "h_te");
        assert_eq!(sanitize("host=x y"), "host_x_y");
        assert_eq!(sanitize(""), "_");
        assert_eq!(sanitize("web-1.example.com"), "web-1.example.com");
    }

    proptest! {
        #[test]
        fn sanitized_names_are_always_safe(name in any::<String>()) {
            let s = sanitize(&name);
            prop_assert!(!s.is_empty());
            prop_assert!(!s.starts_with('.'));
            prop_assert!(!s.contains(".."));
            prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
            prop_assert!(s.len() <= name.len().max(1));
        }
    }
}
