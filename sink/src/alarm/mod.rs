//! Local alarms: rules over stored metrics, evaluated like CloudWatch alarms (`docs/alarms.md`).
//!
//! - [`rules`]: the rules file (`serve --rules FILE`): parsing and validation.
//! - [`eval`]: the pure evaluator: datapoints per period in, alarm state and reason out.
//! - [`book`]: every alarm's state and bounded history, and the transitions between states.
//! - [`persist`]: the book on disk (`DIR/alarms.json`, written atomically).
//! - [`notify`]: state-change notifications: a log line and an optional webhook.
//! - [`task`]: the background task of `serve`: ticks, reads the store, evaluates, notifies.
//! - [`cloudwatch`]: the rules as CloudWatch alarm definitions (`cloudwatch-alarms`), pure.
//! - [`cloudwatch_apply`]: `PutMetricAlarm` calls and the hosts of the DynamoDB table.

pub mod cloudwatch;
pub mod cloudwatch_apply;
pub mod notify;
pub mod persist;
pub mod task;

pub use task::Alarms;
