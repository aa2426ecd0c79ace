//! Outpost's sink: the fronts and adapters around the sink core (`outpost_sink_core`), which
//! holds the ingest, the storage ports, the storage layout and the alarm engine.
//!
//! - [`front`]: the fronts that carry frames to the core through one ingest call: the HTTP
//!   server of `outpost-sink serve` ([`front::server::Server`]) and the Lambda function
//!   ([`front::lambda`]: Function URL, Kinesis and health-check events).
//! - [`backend`]: the adapters implementing the core's ports: local files + SQLite
//!   ([`backend::local`], the embedded default) and S3, DynamoDB and CloudWatch
//!   ([`backend::aws`]).
//! - [`alarm`]: the local alarms' runtime (the `serve --rules` task, persistence,
//!   notifications) and the rules as CloudWatch alarms (`cloudwatch-alarms`).
//! - [`health`]: the scheduled health check's run: read the hosts, log, publish `pipeline.*`.
//! - [`backoff`]: the one jittered retry schedule of the sink's remote calls.
//! - [`config`], [`token`], [`error`]: the server's configuration and errors.

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
