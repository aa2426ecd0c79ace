//! The alarm engine: rules over stored metrics, evaluated like CloudWatch alarms
//! (`docs/alarms.md`).
//!
//! - [`rules`]: the rules file (`serve --rules FILE`): parsing and validation.
//! - [`eval`]: the pure evaluator: datapoints per period in, alarm state and reason out.
//! - [`book`]: every alarm's state and bounded history, and the transitions between states.
//! - [`engine`]: one evaluation of every rule, reading series through the core's ports.

pub mod book;
pub mod engine;
pub mod eval;
pub mod rules;

pub use book::{AlarmBook, AlarmRecord, Transition};
pub use eval::AlarmState;
pub use rules::{Rule, Rules, RulesError};
