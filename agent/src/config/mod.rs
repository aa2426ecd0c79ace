//! The agent's configuration, reporting every problem with its file (or environment variable)
//! and key.
//!
//! | file | what |
//! |---|---|
//! | `file.rs` | the serde structs a file parses into (every key is public contract) |
//! | `load.rs` | reading the main file and the `agent.d/` drop-ins, in order |
//! | `merge.rs` | merging the layers, and which layer set each key |
//! | `env.rs` | the `OUTPOST_*` environment overrides |
//! | `validate.rs` | checking and resolving the merged config into a [`Config`] |
//! | `resolved.rs` | [`Config`]: the checked, resolved configuration the agent runs on |
//! | `print.rs` | `check-config --print`: the effective config, secrets redacted |
//! | `limits.rs` | the limits a transport imposes (Kinesis), which validation checks |
//! | `units.rs`, `secret.rs`, `error.rs` | durations and sizes; secret values; errors |

mod env;
mod error;
mod file;
pub mod limits;
mod load;
mod merge;
mod print;
mod resolved;
mod secret;
pub mod units;
mod validate;

pub use env::{ENV_KEYS, TOKEN_VAR};
pub use error::{ConfigError, ConfigIssue, Location, Origin};
pub use file::{ExecFormat, FileConfig, ReadFrom, SinkKind};
pub use load::{DROPIN_DIR, Loaded, dropin_dir, load_from, load_layered};
pub use merge::{APPEND_KEYS, Merged};
pub use print::REDACTED;
pub use resolved::{
    AgentConfig, BatchLimits, Config, DEFAULT_EXEC_TIMEOUT, ErrorMatch, ExecInput, HostConfig,
    KinesisStream, LogInput, MAX_BATCH_BYTES, MAX_EXEC_NAME_LEN, MIN_SPOOL_BYTES, MultilineConfig,
    SinkConfig, SinkTransport, SpoolConfig, TailConfig, TelemetryConfig, TextfileConfig,
};
pub use secret::Secret;
pub use validate::{function_url_region, read_secret, validate, validate_merged};

use std::path::Path;

/// Read and check the config as the agent does: `path`, the drop-ins in `agent.d/` beside it,
/// then the `OUTPOST_*` variables of the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_layered(path, &|name| std::env::var_os(name)).map(|l| l.config)
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
