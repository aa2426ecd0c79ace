//! What `outpost-sink serve` needs to run: the listen address, the data directory, the token,
//! the alarm rules.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::token::Token;
use outpost_sink_core::alarm::Rules;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./outpost-data";

/// The server's configuration. Build with [`Config::new`], then set `token` and `rules` if
/// required.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Data directory: `logs/` and `metrics.db` live here. Created if missing.
    pub data_dir: PathBuf,
    /// When set, every route but `/healthz` requires `Authorization: Bearer <token>`.
    pub token: Option<Token>,
    /// When set, the alarm rules evaluated in the background (`serve --rules FILE`).
    pub rules: Option<Rules>,
}

impl Config {
    /// A configuration without a token.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            data_dir: data_dir.into(),
            token: None,
            rules: None,
        }
    }
}
