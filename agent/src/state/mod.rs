//! The agent's durable state under `agent.state_dir`, and the file positions it keeps.

pub mod checkpoint;
pub mod identity;
pub mod position;
pub mod seq;
