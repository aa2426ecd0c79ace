//! Log inputs: find files by glob, follow them, split lines, detect levels.

pub mod level;
pub mod lines;
pub mod tailer;
