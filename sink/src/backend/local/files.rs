//! Log objects as files under `DIR/logs`, written atomically and durably.
//!
//! Each object is written to a temporary file `.tmp-<pid>-<n>` in its final directory, synced,
//! renamed over the final name, and the directory is synced (`outpost_durable::write_via`). Temporary names never end with
//! [`LOG_OBJECT_SUFFIX`], so readers globbing `*.ndjson.zst` never see a partial object. Blocking:
//! call from a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use outpost_durable::{DurableError, create_dir_durably, write_via};
use outpost_sink_core::error::StorageError;
use outpost_sink_core::key::{LOGS_PREFIX, LogObjectKey};

/// Prefix of temporary files; a crash can leave some behind, and they are safe to delete.
pub const TMP_PREFIX: &str = ".tmp-";

/// The `logs` directory of a data directory.
#[derive(Debug)]
pub struct LogDir {
    root: PathBuf,
    next_tmp: AtomicU64,
}

impl LogDir {
    /// Open (creating if needed) `data_dir/logs`.
    pub fn open(data_dir: &Path) -> Result<Self, StorageError> {
        let root = data_dir.join(LOGS_PREFIX);
        create_dir_durably(&root).map_err(storage_error)?;
        Ok(Self {
            root,
            next_tmp: AtomicU64::new(0),
        })
    }

    /// The `logs` directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The final path of `key`'s object.
    pub fn path_of(&self, key: &LogObjectKey) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(key.dir_components());
        path.push(key.file_name());
        path
    }

    /// Atomically create or replace `key`'s object with `body`, durably.
    pub fn write(&self, key: &LogObjectKey, body: &[u8]) -> Result<(), StorageError> {
        let mut dir = self.root.clone();
        dir.extend(key.dir_components());
        create_dir_durably(&dir).map_err(storage_error)?;
        let target = dir.join(key.file_name());
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{TMP_PREFIX}{}-{n}", std::process::id()));
        write_via(&target, &tmp, body).map_err(storage_error)
    }
}

fn storage_error(error: DurableError) -> StorageError {
    StorageError::Io {
        op: error.op,
        path: error.path,
        source: error.source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_sink_core::key::Partition;
    use std::fs;

    fn key(seq: u64) -> LogObjectKey {
        LogObjectKey::new(
            "web-1",
            "agent",
            seq,
            Partition::of(1_795_474_678_123).unwrap(),
        )
    }

    fn all_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(all_files(&path));
            } else {
                out.push(path);
            }
        }
        out.sort();
        out
    }

    #[test]
    fn object_appears_at_its_exact_path_and_no_temp_file_remains() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        logs.write(&key(7), b"body").unwrap();
        let expected = tmp
            .path()
            .join("logs/host=web-1/dt=2026-11-23/hour=22/agent-00000000000000000007.ndjson.zst");
        assert_eq!(all_files(tmp.path()), std::slice::from_ref(&expected));
        assert_eq!(fs::read(&expected).unwrap(), b"body");
        assert_eq!(logs.path_of(&key(7)), expected);
    }

    #[test]
    fn rewriting_replaces_the_object() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        logs.write(&key(7), b"first").unwrap();
        logs.write(&key(7), b"second").unwrap();
        let files = all_files(tmp.path());
        assert_eq!(files.len(), 1);
        assert_eq!(fs::read(&files[0]).unwrap(), b"second");
    }

    #[test]
    fn a_failed_write_leaves_no_file() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogDir::open(tmp.path()).unwrap();
        // A directory where the object should go makes the rename fail.
        let target = logs.path_of(&key(1));
        fs::create_dir_all(&target).unwrap();
        fs::write(target.join("keep"), b"").unwrap();
        let error = logs.write(&key(1), b"body").unwrap_err();
        assert!(matches!(
            error,
            StorageError::Io {
                op: "renaming into",
                ..
            }
        ));
        assert_eq!(all_files(tmp.path()), [target.join("keep")]);
    }
}
