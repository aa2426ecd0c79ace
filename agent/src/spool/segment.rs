//! [`Segment`]: what the spool knows of one segment file in memory, as recovery finds it and
//! the queue keeps it.

use std::path::PathBuf;

/// A segment file: entries `first_id..next_id`, `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Segment {
    pub first_id: u64,
    pub next_id: u64,
    pub len: u64,
    pub path: PathBuf,
}

impl Segment {
    pub(super) fn entries(&self) -> u64 {
        self.next_id - self.first_id
    }
}
