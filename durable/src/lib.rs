//! Crash-safe file writes, the one helper the agent and the sink use for every file they
//! replace: write a temporary file in the target's directory, `sync_all` it, `rename` it over
//! the target, then fsync the directory (as Vector's `checkpointer.rs`). After a crash at any
//! moment the target holds either its old or its new contents, never a mix, and once a call
//! returns `Ok` the new contents survive a power loss.
//!
//! Temporary names are the caller's choice ([`write_via`]) or `.{name}.tmp` ([`replace`]); a
//! crash can leave one behind, and it is safe to delete. Everything here blocks: call it from a
//! blocking thread in async code.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file system operation that failed, with what was being done and to which path.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct DurableError {
    /// What was being done: `creating`, `writing`, `syncing`, `renaming into`,
    /// `syncing directory` or `creating directory`.
    pub op: &'static str,
    /// The path it was done to.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl From<DurableError> for io::Error {
    fn from(error: DurableError) -> Self {
        io::Error::new(error.source.kind(), error)
    }
}

fn at<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DurableError + 'a {
    move |source| DurableError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Replace `path` with `contents` through the temporary file `.{name}.tmp` beside it.
pub fn replace(path: &Path, contents: &[u8]) -> Result<(), DurableError> {
    let invalid = |what: &str| DurableError {
        op: "replacing",
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, format!("path has no {what}")),
    };
    let dir = path.parent().ok_or_else(|| invalid("parent"))?;
    let name = path.file_name().ok_or_else(|| invalid("file name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    write_via(path, &tmp, contents)
}

/// Replace `target` with `contents` through the temporary file `tmp`, which must be in the
/// same directory (a rename is atomic only within one file system). A `tmp` left by a crash is
/// overwritten; on failure `tmp` is removed (best effort) and `target` is untouched or whole.
pub fn write_via(target: &Path, tmp: &Path, contents: &[u8]) -> Result<(), DurableError> {
    let result = write_synced(tmp, contents)
        .and_then(|()| fs::rename(tmp, target).map_err(at("renaming into", target)))
        .and_then(
            |()| match target.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(dir) => sync_dir(dir),
                None => sync_dir(Path::new(".")),
            },
        );
    if result.is_err() {
        // Best effort: the temp file may not exist, or may already be renamed.
        let _ = fs::remove_file(tmp);
    }
    result
}

fn write_synced(path: &Path, contents: &[u8]) -> Result<(), DurableError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(at("creating", path))?;
    file.write_all(contents).map_err(at("writing", path))?;
    file.sync_all().map_err(at("syncing", path))
}

/// fsync a directory, so that a rename, creation or deletion inside it survives power loss.
pub fn sync_dir(dir: &Path) -> Result<(), DurableError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at("syncing directory", dir))
}

/// Create `dir` (and missing parents) so that its entry is durable. An existing directory costs
/// one `stat`; a new one (created here or concurrently by another writer) has its parent
/// synced, so it cannot vanish in a power loss after a write inside it was acknowledged.
pub fn create_dir_durably(dir: &Path) -> Result<(), DurableError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(e) => return Err(at("creating directory", dir)(e)),
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replace_swaps_contents_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seq");
        replace(&p, b"1").unwrap();
        replace(&p, b"22").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"22");
        assert_eq!(names(dir.path()), ["seq"]);
    }

    #[test]
    fn a_stale_temp_file_from_a_crash_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        fs::write(dir.path().join(".state.json.tmp"), b"half a write").unwrap();
        replace(&p, b"{}").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"{}");
        assert_eq!(names(dir.path()), ["state.json"]);
    }

    #[test]
    fn a_failed_rename_names_the_step_keeps_the_target_and_removes_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory where the file should go makes the rename fail.
        let target = dir.path().join("object");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), b"").unwrap();
        let tmp = dir.path().join(".tmp-1");
        let error = write_via(&target, &tmp, b"body").unwrap_err();
        assert_eq!(error.op, "renaming into");
        assert_eq!(error.path, target);
        assert_eq!(names(dir.path()), ["object"]);
        assert_eq!(names(&target), ["keep"]);
        let as_io: io::Error = error.into();
        assert!(as_io.to_string().contains("renaming into"), "{as_io}");
    }

    #[test]
    fn a_path_without_a_file_name_is_refused() {
        let error = replace(Path::new("/"), b"x").unwrap_err();
        assert_eq!(error.source.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn directories_are_created_with_their_parents_and_an_existing_one_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        create_dir_durably(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_durably(&deep).unwrap();
        fs::write(dir.path().join("file"), b"").unwrap();
        let error = create_dir_durably(&dir.path().join("file/sub")).unwrap_err();
        assert_eq!(error.op, "creating directory");
    }
}
