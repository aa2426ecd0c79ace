//! The agent's durable state under `agent.state_dir`, and the file positions it keeps: the
//! lowest layer above `config`, shared by the tailer (`collect`) and the pipeline (`run`).
//!
//! | file | what |
//! |---|---|
//! | `position.rs` | a file's identity (device, inode, fingerprint) and position; their serde form |
//! | `checkpoint.rs` | `checkpoints.json`: how far each file is durably read |
//! | `identity.rs` | the agent id and the identity sent with every batch |
//! | `seq.rs` | the batch sequence number, leased and persisted |

pub mod checkpoint;
pub mod identity;
pub mod position;
pub mod seq;
