//! Outpost's sink: receives frames from agents and stores their logs and metrics.
//!
//! - [`handler`]: the ingest core (decode, validate, partition, encode), free of any transport.
//! - [`backend`]: the storage traits and the local disk backend.
//! - [`front`]: the local HTTP server ([`front::server::Server`]).
//! - [`key`], [`ndjson`], [`timestamp`]: the storage layout and formats.
//! - [`alarm`]: local alarm rules, their evaluation and notifications (`serve --rules`).
//! - [`health`]: the scheduled health check (silent and hot hosts, `pipeline.*` metrics).
//! - [`backoff`]: the one jittered retry schedule of the sink's remote calls.
//! - [`config`], [`token`], [`error`]: configuration and errors.

pub mod alarm;
pub mod backend;
pub mod backoff;
pub mod config;
pub mod error;
pub mod front;
pub mod health;
pub mod token;

pub use config::Config;
pub use front::server::Server;
