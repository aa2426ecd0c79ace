//! Shipping: number closed batches and encode them into frames (splitting any that exceed a
//! frame's limits), and deliver frames through the configured transport with retries until
//! each is acknowledged, refused for good, or the shutdown drain budget runs out.
//!
//! | file | what |
//! |---|---|
//! | `encode.rs` | batches into frames, within the wire format's and the transport's limits |
//! | `shipper.rs` | delivering a group of frames: retries, backoff, dead letters, drain |
//! | `transport.rs` | the [`Transport`] interface: send errors, failed frames, frames a call carries |
//! | `sender.rs` | [`Sender`]: the configured transport, the real [`Transport`] |
//! | `classify.rs` | which failures are retried, which frames are dead-lettered |
//! | `http.rs` | the HTTP client (reqwest) and the bearer-token transport |
//! | `sigv4.rs` | Lambda Function URLs: SigV4-signed HTTP |
//! | `kinesis.rs` | Kinesis `PutRecords` |
//! | `aws.rs`, `clock.rs` | the AWS SDK's configuration; the skew-corrected signing clock |
//! | `backoff.rs` | retry delays |
//!
//! The transports' limits are named in [`crate::config::limits`], where validation checks them.

pub mod aws;
pub mod backoff;
pub mod classify;
pub mod clock;
pub mod encode;
pub mod http;
pub mod kinesis;
pub mod sender;
pub mod shipper;
pub mod sigv4;
pub mod transport;

pub use encode::{Frame, Frames, encode_frames};
pub use sender::Sender;
pub use shipper::{FrameOutcome, RETRY_BASE, RETRY_CAP, ShipStats, Shipper, SpooledFrame};
pub use transport::{Failed, GroupLimits, SendError, SetupError, Transport};
