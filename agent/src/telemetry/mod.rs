//! The agent's own metrics: counters the pipeline bumps, shipped to the sink as metric points
//! with a heartbeat every `telemetry.interval`, and served on an opt-in local Prometheus
//! endpoint with `/healthz`.
//!
//! | file | what |
//! |---|---|
//! | `counters.rs` | the shared counters and their [`Snapshot`] |
//! | `points.rs` | a snapshot (and the previous one) as metric points: pure |
//! | `prometheus.rs` | a snapshot as Prometheus text exposition: pure |
//! | `server.rs` | the HTTP listener for `GET /metrics` and `GET /healthz` |

mod counters;
mod points;
mod prometheus;
mod server;

pub use counters::{Counters, LogCount, Snapshot};
pub use points::{AGENT_METRICS, HEARTBEAT, LOG_ERROR_LINES, LOG_LINES, SERVICE_DIMENSION, points};
pub use prometheus::{CONTENT_TYPE, render};
pub use server::{Health, MAX_CONNECTIONS, MAX_REQUEST_BYTES, serve};
