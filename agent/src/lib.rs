//! outpost-agent: samples host metrics and follows log files, batches records, and ships them
//! as frames to an Outpost sink.
//!
//! `run` wires the pieces: two worker threads (the log tailer and the host sampler) feed a
//! bounded channel; the batcher closes batches by count, bytes and age; the shipper numbers,
//! encodes and delivers them with retries. Bounded channels give backpressure: a slow sink slows
//! reading, it does not grow memory.

pub mod batch;
pub mod collect;
pub mod config;
pub mod error;
mod run;
pub mod sd_notify;
pub mod ship;
pub mod spool;
pub mod state;
pub mod status;
pub mod telemetry;
pub mod version;

pub use error::AgentError;
pub use run::{RunSummary, run, unix_ms};
