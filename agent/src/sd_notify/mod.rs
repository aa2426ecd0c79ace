//! The systemd notification protocol (`sd_notify(3)`), with std only: readiness, reloads,
//! shutdown and watchdog pings for a unit of `Type=notify`.
//!
//! | file | what |
//! |---|---|
//! | `protocol.rs` | pure: the messages, the socket address and the watchdog interval from the environment |
//! | `notifier.rs` | the datagram socket; sends are best effort (a failure is logged once) |

mod notifier;
mod protocol;

pub use notifier::Notifier;
pub use protocol::{Message, Target, format, monotonic_usec, target, watchdog_interval};
