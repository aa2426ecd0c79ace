//! Outpost's wire format, shared by the agent and the sink.
//!
//! A [`Batch`] of [`Record`]s is serialised with `postcard`, compressed with zstd and wrapped in a
//! frame (see `docs/wire-format.md`) whose header carries a magic, a format version, the lengths and
//! a CRC32C of the compressed body. [`decode`] checks every limit in [`limits`] before it allocates,
//! so a hostile or corrupt frame costs at most the declared, bounded, size.
//!
//! This crate does no I/O and knows no runtime.

mod builder;
mod codec;
mod error;
mod header;
pub mod limits;
mod types;

pub use builder::{FrameBuilder, FrameEncoder};
pub use codec::{DEFAULT_ZSTD_LEVEL, decode, encode, encode_with_level, parse_header};
pub use error::{DecodeError, EncodeError};
pub use header::{FLAG_ZSTD, FORMAT_VERSION, HEADER_LEN, Header, MAGIC};
pub use types::{
    AgentIdentity, Batch, Dimension, Level, LogRecord, MetricPoint, Record, Unit, log_size_hint,
};
