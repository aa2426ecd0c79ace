//! The agent's configuration: parse the TOML file (`file`), then check and resolve it
//! (`validate`) into a [`Config`], reporting every problem with its file and key.

mod error;
mod file;
pub mod units;
mod validate;

pub use error::{ConfigError, ConfigIssue, Location};
pub use file::{FileConfig, ReadFrom, SinkKind};
pub use validate::{
    AgentConfig, BatchLimits, Config, HostConfig, KinesisStream, LogInput, MAX_BATCH_BYTES,
    MIN_SPOOL_BYTES, MultilineConfig, SinkConfig, SinkTransport, SpoolConfig, TailConfig,
    function_url_region, read_secret, validate,
};

use std::path::Path;

/// Read, parse and validate a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let issue = |location, message| ConfigError {
        issues: vec![ConfigIssue {
            file: path.to_path_buf(),
            location,
            message,
        }],
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| issue(Location::File, format!("cannot read config file: {e}")))?;
    let parsed = parse(&text).map_err(|(loc, msg)| issue(loc, msg))?;
    validate(parsed, path)
}

/// Parse TOML text into the file structs; on error, where and what.
pub fn parse(text: &str) -> Result<FileConfig, (Location, String)> {
    toml::from_str::<FileConfig>(text).map_err(|e| {
        let location = match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                Location::Line { line, column }
            }
            None => Location::File,
        };
        (location, e.message().to_owned())
    })
}
