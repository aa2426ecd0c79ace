//! Collectors: where records come from.

pub mod host;
pub mod logs;
