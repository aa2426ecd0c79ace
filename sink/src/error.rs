//! The sink binary's own errors: starting the server and reading its configuration. Ingest and
//! storage errors are the core's (`outpost_sink_core::error`).

use std::net::SocketAddr;
use std::path::PathBuf;

use outpost_sink_core::error::StorageError;
use thiserror::Error;

/// Why the server could not start or stopped with an error.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The data directory could not be opened.
    #[error("opening the data directory {}", path.display())]
    Open {
        /// The data directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: StorageError,
    },
    /// The listen address could not be bound.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("serving HTTP")]
    Serve(#[source] std::io::Error),
}

/// Why the configuration is unusable.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The token file could not be read.
    #[error("reading the token file {}", path.display())]
    TokenFileUnreadable {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The token file holds only whitespace.
    #[error("the token file {} is empty", path.display())]
    TokenFileEmpty {
        /// The file.
        path: PathBuf,
    },
    /// An environment variable is missing or invalid.
    #[error("{var} {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong with it.
        message: String,
    },
}
