//! node_exporter's textfile collector: the `*.prom` files of a directory, in the Prometheus
//! text format. Writers should write `name.prom.$$` (or any other name) and rename it to
//! `name.prom`, so a file is never read half-written; names not ending in `.prom` are
//! ignored. The only file that reads the directory.

use super::validate::{Seen, to_points};
use super::{MAX_OUTPUT_BYTES, MAX_TEXTFILES, Read, prom};
use std::io::Read as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

/// What one run made of one file: its points and bad lines, or why it was not read.
#[derive(Debug)]
pub struct FileResult {
    /// The file.
    pub path: PathBuf,
    /// Its points and bad lines, or why none were taken.
    pub read: Result<Read, String>,
}

/// Read every `*.prom` file of `dir` (in name order, at most [`MAX_TEXTFILES`]); samples
/// without a timestamp get `now_ms`. `Err`: the directory itself could not be read; the
/// second value reports files left out over the limit.
pub fn read_dir(dir: &Path, now_ms: i64) -> Result<(Vec<FileResult>, Option<String>), String> {
    let mut paths = list(dir).map_err(|e| format!("cannot read the directory: {e}"))?;
    let over = (paths.len() > MAX_TEXTFILES).then(|| {
        format!(
            "{} *.prom files; only the first {MAX_TEXTFILES} (by name) are read",
            paths.len()
        )
    });
    paths.truncate(MAX_TEXTFILES);
    let mut seen = Seen::default();
    let files = paths
        .into_iter()
        .map(|path| {
            let read = read_file(&path).map(|bytes| {
                let name = path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                to_points(prom::parse(&bytes), &name, now_ms, &mut seen)
            });
            FileResult { path, read }
        })
        .collect();
    Ok((files, over))
}

/// The `*.prom` files (not directories) in `dir`, by name.
fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.as_bytes();
        if name.len() > b".prom".len() && name.ends_with(b".prom") {
            // Follows symlinks; a dangling one is kept, and reading it reports the problem.
            let path = entry.path();
            if !std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A file's bytes, at most [`MAX_OUTPUT_BYTES`].
fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_OUTPUT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() > MAX_OUTPUT_BYTES {
        return Err(format!("larger than {MAX_OUTPUT_BYTES} bytes; not read"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prom_files_are_read_in_name_order_and_others_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("b.prom"), "b_metric 2\n").unwrap();
        std::fs::write(d.join("a.prom"), "a_metric{x=\"1\"} 1\nbad line\n").unwrap();
        std::fs::write(d.join("c.prom.1234"), "half_written 1\n").unwrap();
        std::fs::write(d.join("notes.txt"), "not metrics\n").unwrap();
        std::fs::write(d.join(".prom"), "no name\n").unwrap();
        std::fs::create_dir(d.join("dir.prom")).unwrap();
        let (files, over) = read_dir(d, 7).unwrap();
        assert!(over.is_none());
        let names: Vec<String> = files
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.prom", "b.prom"]);
        let a = files[0].read.as_ref().unwrap();
        assert_eq!(a.points.len(), 1);
        assert_eq!(a.points[0].ts_ms, 7);
        assert_eq!(a.errors.len(), 1);
        assert_eq!(a.errors[0].line, 2);
        assert_eq!(files[1].read.as_ref().unwrap().points[0].name, "b_metric");
    }

    #[test]
    fn a_series_in_two_files_is_a_duplicate_in_the_second() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.prom"), "m 1\n").unwrap();
        std::fs::write(dir.path().join("b.prom"), "n 1\nm 2\n").unwrap();
        let (files, _) = read_dir(dir.path(), 0).unwrap();
        let b = files[1].read.as_ref().unwrap();
        assert_eq!(b.points.len(), 1);
        assert!(
            b.errors[0].reason.contains("first on a.prom line 1"),
            "{:?}",
            b.errors
        );
    }

    #[test]
    fn unreadable_large_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::os::unix::fs::symlink(d.join("gone"), d.join("dangling.prom")).unwrap();
        std::fs::write(d.join("big.prom"), vec![b'#'; MAX_OUTPUT_BYTES + 1]).unwrap();
        std::fs::write(d.join("limit.prom"), vec![b'\n'; MAX_OUTPUT_BYTES]).unwrap();
        let (files, _) = read_dir(d, 0).unwrap();
        let results: Vec<(String, Result<usize, String>)> = files
            .iter()
            .map(|f| {
                (
                    f.path.file_name().unwrap().to_string_lossy().into_owned(),
                    f.read
                        .as_ref()
                        .map(|r| r.points.len())
                        .map_err(Clone::clone),
                )
            })
            .collect();
        assert_eq!(results[0].0, "big.prom");
        assert!(
            results[0].1.as_ref().unwrap_err().contains("larger than"),
            "{results:?}"
        );
        assert_eq!(results[1].0, "dangling.prom");
        assert!(
            results[1]
                .1
                .as_ref()
                .unwrap_err()
                .starts_with("cannot read"),
            "{results:?}"
        );
        assert_eq!(results[2], ("limit.prom".to_owned(), Ok(0)));
        let e = read_dir(&d.join("missing"), 0).unwrap_err();
        assert!(e.starts_with("cannot read the directory"), "{e}");
    }

    #[test]
    fn files_past_the_limit_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..=MAX_TEXTFILES {
            std::fs::write(dir.path().join(format!("{i:04}.prom")), "").unwrap();
        }
        let (files, over) = read_dir(dir.path(), 0).unwrap();
        assert_eq!(files.len(), MAX_TEXTFILES);
        assert!(
            over.unwrap()
                .contains(&format!("{} *.prom files", MAX_TEXTFILES + 1))
        );
    }
}
