//! outpost-agent: samples host metrics and follows log files, batches records, and ships them
//! as frames to an Outpost sink.
//!
//! `run` wires the pieces (the diagram is in `run/mod.rs`): collector threads (the log tailer,
//! the host sampler, the `[textfile]`/`[[exec]]` runner) and the self-telemetry task feed one
//! bounded channel; the batcher task closes batches by count, bytes and age; an encoder thread
//! numbers them and encodes them into frames; the writer task appends the frames to the disk
//! spool (fsync) and only then moves the file checkpoints; the delivery task sends what is
//! spooled through the configured transport with retries and acknowledges it in the spool.
//! Bounded channels and a bounded spool give backpressure: a slow sink fills the spool, then
//! slows reading; it does not grow memory.
//!
//! Layers, lowest first: `config`; `state` (file positions, checkpoints, ids, sequence numbers),
//! `spool`, `batch`; `collect` and `ship`; `telemetry`; `run`, which alone sees them all.

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
