//! The agent's durable state under `agent.state_dir`.

pub mod atomic;
pub mod checkpoint;
pub mod identity;
pub mod seq;
