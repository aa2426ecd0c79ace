//! Alarms around the core's engine (`outpost_sink_core::alarm`: rules, evaluator, book):
//!
//! - [`task`]: the background task of `serve --rules`: ticks, runs the engine over the local
//!   store, saves the book, notifies.
//! - [`persist`]: the book on disk (`DIR/alarms.json`, written atomically).
//! - [`notify`]: state-change notifications: a log line and an optional webhook.
//! - [`cloudwatch`]: the rules as CloudWatch alarm definitions (`cloudwatch-alarms`), pure; it
//!   applies CloudWatch's naming rules from `backend::aws::cloudwatch`.
//! - [`cloudwatch_apply`]: `PutMetricAlarm` calls and the hosts of the DynamoDB table.

pub mod cloudwatch;
pub mod cloudwatch_apply;
pub mod notify;
pub mod persist;
pub mod task;

pub use task::Alarms;
