//! Outpost's sink core: everything the sink does that knows no cloud, no server and no
//! database. The `outpost-sink` crate's fronts (HTTP server, Lambda) call it, and its adapters
//! (local files + SQLite; S3, DynamoDB and CloudWatch) implement its ports.
//!
//! - [`ingest`]: frame bytes in, log objects and metric rows out through the ports: [`ingest::prepare`]
//!   is pure (decode, validate, build every object), [`ingest::store`] writes, [`ingest::handle`] is both.
//! - [`ports`]: the storage traits ([`ports::LogStore`], [`ports::MetricStore`],
//!   [`ports::SeriesReader`]) and the rows they exchange.
//! - [`key`], [`ndjson`], [`timestamp`], [`names`]: the storage layout, the log line format,
//!   timestamps, and the limits and sanitiser of host names and agent ids.
//! - [`alarm`]: the alarm engine: rules, the pure evaluator, the book of states, and the
//!   evaluation of every rule through [`ports::SeriesReader`].
//! - [`health`]: the health check's pure part: silent and hot hosts from the host summaries.
//! - [`error`]: ingest and storage errors.
//!
//! It depends on `outpost-proto`, serde (JSON, TOML), zstd, time, humantime, url and thiserror only;
//! `.ci/run` fails if an AWS, HTTP, async-runtime or database crate enters its dependency tree.

pub mod alarm;
pub mod error;
pub mod health;
pub mod ingest;
pub mod key;
pub mod names;
pub mod ndjson;
pub mod ports;
pub mod timestamp;
