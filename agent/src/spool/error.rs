//! Errors of the disk spool.

use super::format::Defect;
use std::path::{Path, PathBuf};

/// Why a spool operation failed. Spool *contents* never make [`Spool::open`](super::Spool::open)
/// fail (they are repaired or set aside); only I/O errors, a lock held by another process, and
/// caller mistakes are errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// A file or directory of the spool could not be read or written.
    #[error("spool: {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Storing the entry would take the spool past `max_bytes`. Nothing was written. Retry after
    /// acknowledging entries, or drop something: the spool never blocks and never drops.
    #[error("spool full: {needed} bytes needed, {available} available")]
    Full {
        /// Bytes the append would add (entry headers and payloads, and a segment header if it
        /// would start a segment).
        needed: u64,
        /// Bytes left under `max_bytes`.
        available: u64,
    },
    /// A payload that can never be stored: longer than a frame, or than an empty spool holds.
    /// Nothing was written.
    #[error("a {len}-byte entry can never be stored: the limit is {max} bytes")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The longest payload this spool can store.
        max: usize,
    },
    /// `ack` named an entry other than the oldest unacknowledged one.
    #[error("out-of-order ack of entry {id}: the next ack must name entry {expected}")]
    OutOfOrderAck {
        /// The id passed to `ack`.
        id: u64,
        /// The oldest unacknowledged entry (or, when none is pending, the next id to be
        /// assigned).
        expected: u64,
    },
    /// An entry that was valid when the spool was opened no longer is (the disk changed under
    /// it). Reopening the spool sets the damaged segment aside.
    #[error("spool: {path}: entry {id}: {defect}; reopen the spool to set the segment aside")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// The entry that could not be read.
        id: u64,
        /// What is wrong with it.
        defect: Defect,
    },
    /// Another process holds the spool's lock file.
    #[error("spool: {path} is locked by another process")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// Entry ids ran out (only reachable with a hand-made segment name near `u64::MAX`).
    #[error("spool: entry ids exhausted")]
    IdsExhausted,
}

/// A durable write or directory sync that failed, as a spool I/O error on the path it names.
pub(crate) fn durable(e: outpost_durable::DurableError) -> SpoolError {
    SpoolError::Io {
        path: e.path,
        source: e.source,
    }
}

/// Attach a path to an I/O error: `.map_err(io_at(&path))`. The path is copied only on error.
pub(crate) fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}
