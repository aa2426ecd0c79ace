//! The alarm book on disk: `DIR/alarms.json`, versioned, written atomically (temp file, fsync,
//! rename, fsync of the directory: `outpost_durable`), so a restart keeps states and does not
//! re-notify.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use outpost_sink_core::alarm::book::{AlarmBook, AlarmRecord};

/// File name inside the data directory.
pub const STATE_FILE: &str = "alarms.json";

/// The layout version this build writes and reads.
pub const STATE_VERSION: u32 = 1;

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// A file system operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a state file this build reads.
    #[error("{} is not a version {STATE_VERSION} alarm state file: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    alarms: Vec<AlarmRecord>,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PersistError + 'a {
    move |source| PersistError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The book saved in `data_dir`, or `None` when there is none yet.
pub fn load(data_dir: &Path) -> Result<Option<AlarmBook>, PersistError> {
    let path = data_dir.join(STATE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("reading", &path)(e)),
    };
    let format = |message: String| PersistError::Format {
        path: path.clone(),
        message,
    };
    let file: StateFile = serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
    if file.version != STATE_VERSION {
        return Err(format(format!("version {}", file.version)));
    }
    Ok(Some(AlarmBook::from_records(file.alarms)))
}

/// Write `book` to `data_dir` atomically. Blocking.
pub fn save(data_dir: &Path, book: &AlarmBook) -> Result<(), PersistError> {
    let path = data_dir.join(STATE_FILE);
    let tmp = data_dir.join(format!(".tmp-{STATE_FILE}-{}", std::process::id()));
    let file = StateFile {
        version: STATE_VERSION,
        alarms: book.records().cloned().collect(),
    };
    let body = serde_json::to_vec_pretty(&file).map_err(|e| PersistError::Format {
        path: path.clone(),
        message: e.to_string(),
    })?;
    outpost_durable::write_via(&path, &tmp, &body).map_err(|e| PersistError::Io {
        op: e.op,
        path: e.path,
        source: e.source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_sink_core::alarm::eval::{AlarmState, Outcome};

    #[test]
    fn a_saved_book_loads_back_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(load(tmp.path()).unwrap(), None);
        let mut book = AlarmBook::default();
        let outcome = Outcome {
            state: AlarmState::Alarm,
            reason: "r".into(),
        };
        book.apply(&("cpu".into(), Some("web-1".into())), outcome, vec![], 5);
        save(tmp.path(), &book).unwrap();
        save(tmp.path(), &book).unwrap();
        assert_eq!(load(tmp.path()).unwrap(), Some(book));
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [STATE_FILE]);
    }

    #[test]
    fn a_corrupt_or_newer_file_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(STATE_FILE), "{\"version\":1,\"alar").unwrap();
        let error = load(tmp.path()).unwrap_err().to_string();
        assert!(error.contains(STATE_FILE), "{error}");
        fs::write(tmp.path().join(STATE_FILE), "{\"version\":2,\"alarms\":[]}").unwrap();
        let error = load(tmp.path()).unwrap_err().to_string();
        assert!(error.ends_with("version 2"), "{error}");
    }
}
