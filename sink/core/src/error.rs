//! The core's errors: ingest and storage, one variant per thing a caller may act on.
//!
//! The core says *what* failed; which HTTP status (or Lambda retry decision) that becomes is the
//! business of each front.

use std::error::Error as StdError;
use std::path::PathBuf;

use outpost_proto::DecodeError;
use thiserror::Error;

/// A boxed error from a backend's client library, kept as the `source` of a [`StorageError`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why ingesting one frame failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The frame is malformed. The client's fault; re-sending the same bytes cannot succeed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The frame decoded but its content cannot be stored. The client's fault, never retryable.
    #[error(transparent)]
    Invalid(#[from] InvalidBatch),
    /// Building a log object failed (JSON or zstd encoding). The sink's fault.
    #[error("encoding {what} failed: {message}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's message.
        message: String,
    },
    /// A backend failed. Retryable: every write is an idempotent overwrite.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A decoded batch whose content the sink refuses. Checked before anything is written.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidBatch {
    /// A record's timestamp cannot be written as RFC 3339 (years 0000 to 9999).
    #[error("record {index}: timestamp {ts_ms} ms is outside years 0000 to 9999")]
    TimestampOutOfRange {
        /// Index of the record in the batch.
        index: usize,
        /// Its timestamp.
        ts_ms: i64,
    },
    /// The host name or agent id is longer than [`crate::key::MAX_NAME_LEN`] characters.
    #[error("{field} is {len} characters long, the limit is {limit}")]
    NameTooLong {
        /// `hostname` or `agent_id`.
        field: &'static str,
        /// Its length in characters.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The host name or agent id is empty.
    #[error("{field} is empty")]
    EmptyName {
        /// `hostname` or `agent_id`.
        field: &'static str,
    },
    /// The sequence number does not fit a signed 64-bit integer (SQLite's INTEGER).
    #[error("seq {0} exceeds the largest storable value {max}", max = i64::MAX)]
    SeqTooLarge(u64),
}

/// Why a backend could not store or read data. Every variant is worth retrying.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file system operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done, e.g. `"renaming into"`.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The metrics database failed.
    #[error("metrics database {}: {context}", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// The database library's error.
        #[source]
        source: BoxError,
    },
    /// The metrics database was written by a newer sink.
    #[error(
        "metrics database {} has schema version {found}; this sink knows versions up to {supported}",
        path.display()
    )]
    SchemaVersion {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` found.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A blocking storage task panicked or was cancelled.
    #[error("storage worker failed: {0}")]
    Worker(String),
    /// An AWS service call failed (after the SDK's own retries), or returned what the sink
    /// cannot use.
    #[error("{service} {op}")]
    Remote {
        /// `S3`, `DynamoDB`, `CloudWatch`.
        service: &'static str,
        /// What was being done, e.g. `"PutObject logs/host=web-1/..."`.
        op: String,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
}

/// An error and all its sources, joined with `: ` (what `anyhow` prints with `{:#}`).
pub fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_joins_sources() {
        let error = StorageError::Io {
            op: "writing",
            path: PathBuf::from("/d/f"),
            source: std::io::Error::other("disk full"),
        };
        assert_eq!(chain(&error), "writing /d/f: disk full");
    }

    #[test]
    fn decode_errors_display_unchanged() {
        let error = IngestError::from(DecodeError::UnsupportedVersion(9));
        assert_eq!(error.to_string(), "unsupported format version 9");
    }
}
