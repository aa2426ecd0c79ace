//! Collectors: where records come from.

pub mod custom;
pub mod host;
pub mod logs;
