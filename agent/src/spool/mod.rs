//! The disk spool: a segment-based write-ahead queue of encoded frames under
//! `STATE_DIR/spool/`, holding each frame from "batch closed" until "sink acknowledged".
//!
//! Delivery is at least once and first in, first out. `docs/spool.md` specifies the on-disk
//! layout byte by byte, the fsync policy, the recovery rules and the bounds; in short:
//!
//! - Entries get consecutive ids from 1 and go to the newest *segment*
//!   (`NNNNNNNNNNNNNNNNNNNN.seg`, named by its first id); a new one starts when the next entry
//!   would pass [`SpoolOptions::segment_bytes`].
//! - [`Spool::append`] returns once the entry is `fdatasync`ed: a caller may then advance its
//!   own checkpoints. [`Spool::append_many`] syncs once for several entries.
//! - [`Spool::next_unacked`] hands entries out in order; [`Spool::ack`] takes them in the same
//!   order, persists the watermark (`acked`) and deletes segments with nothing left to deliver
//!   (except the newest, kept to append to).
//! - [`SpoolOptions::max_bytes`] bounds the segment files: an append past it fails with
//!   [`SpoolError::Full`]. The spool never blocks and never drops; the caller decides.
//! - [`Spool::open`] recovers after a crash: a torn tail is cut, a damaged segment is set aside
//!   as `*.corrupt` (its entries before the damage are still delivered), a corrupt `acked`
//!   file counts as 0. It never fails because of what the files contain.
//!
//! The spool is a plain, blocking, single-owner type: an async caller runs it on a blocking
//! thread.

mod cursor;
mod error;
pub mod format;
mod queue;
mod recover;
pub mod scan;
mod segment;
#[cfg(test)]
mod tests;

pub use cursor::Entry;
pub use error::SpoolError;
pub use format::Defect;
pub use queue::{DEFAULT_MAX_BYTES, DEFAULT_SEGMENT_BYTES, Spool, SpoolOptions};
pub use recover::{AckedFile, Recovery, SetAside};
