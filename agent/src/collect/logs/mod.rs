//! Log inputs: find files by glob, follow them, split lines, detect levels.

pub mod coalesce;
pub mod level;
pub mod lines;
pub mod multiline;
pub mod rotated;
pub mod tailer;
pub mod watch;
