//! Errors that stop the agent from starting.

use std::path::PathBuf;

/// Why `run` could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The state directory or a file in it could not be used.
    #[error("agent.state_dir: {path}: {source}")]
    State {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Host metrics could not be read.
    #[error(transparent)]
    Sampler(#[from] crate::collect::host::SamplerError),
    /// The sink transport could not be set up.
    #[error(transparent)]
    Sink(#[from] crate::ship::SetupError),
    /// The disk spool could not be opened or used.
    #[error("spool: {0}")]
    Spool(String),
    /// The checkpoint store could not be read or written.
    #[error("checkpoints: {0}")]
    Checkpoint(String),
    /// A worker thread could not be started or panicked.
    #[error("internal: {0}")]
    Internal(String),
}
