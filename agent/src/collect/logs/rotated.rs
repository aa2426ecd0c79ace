//! Finding where a followed file went when it was rotated while the agent was down: among the
//! siblings named like it, the one whose [identity](FileIdentity) matches.

use crate::state::position::FileIdentity;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// File name extensions of compressed rotated files. [`find_rotated`] never considers them: their
/// bytes are not the bytes that were being read.
pub const COMPRESSED_EXTENSIONS: [&str; 6] = ["gz", "zst", "bz2", "xz", "lz4", "zip"];

/// Find where the file `stored` describes went when it was rotated away from `original`, e.g.
/// while the agent was down: among the siblings of `original` named like it plus a suffix that
/// starts with `.`, `-` or `_` (`app.log.1`, `app.log-20261123`, `app.log.old`), the one whose
/// identity [matches](FileIdentity::matches) `stored`. Compressed files
/// ([`COMPRESSED_EXTENSIONS`], e.g. `app.log.1.gz`) are skipped. `original` itself is not a
/// candidate: check it first. Unreadable directories and files are skipped; `None` when nothing
/// matches. When hard links make several names match, the first in byte order of the name wins.
pub fn find_rotated(original: &Path, stored: &FileIdentity) -> Option<PathBuf> {
    let name = original.file_name()?.as_encoded_bytes();
    let dir = match original.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|entry| is_rotated_name(name, entry.file_name().as_encoded_bytes()))
        .map(|entry| entry.path())
        .collect();
    candidates.sort();
    candidates.into_iter().find(|path| {
        // A cheap stat first; only a file on the right inode is opened and read.
        let same_inode = std::fs::metadata(path)
            .is_ok_and(|m| m.is_file() && m.dev() == stored.dev && m.ino() == stored.ino);
        same_inode
            && File::open(path)
                .and_then(|f| stored.matches(&f))
                .unwrap_or(false)
    })
}

/// `candidate` is `original` plus a separator and a suffix, and not a compressed file.
fn is_rotated_name(original: &[u8], candidate: &[u8]) -> bool {
    let Some(suffix) = candidate.strip_prefix(original) else {
        return false;
    };
    let Some((&sep, rest)) = suffix.split_first() else {
        return false;
    };
    if !matches!(sep, b'.' | b'-' | b'_') || rest.is_empty() {
        return false;
    }
    let ext = candidate
        .rsplit(|&b| b == b'.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    !COMPRESSED_EXTENSIONS
        .iter()
        .any(|c| c.as_bytes() == ext.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::position::tests::{append, identity_of};

    #[test]
    fn find_rotated_finds_the_renamed_file_and_skips_compressed_ones() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        append(&p, b"line one\n");
        let id = identity_of(&p);
        // Rotated while the agent was down: renamed, then a new file at the original path.
        std::fs::rename(&p, d.path().join("app.log.1")).unwrap();
        append(&p, b"new file\n");
        append(&d.path().join("app.log.2"), b"older\n");
        append(&d.path().join("other.log.1"), b"line one\n");
        assert_eq!(find_rotated(&p, &id), Some(d.path().join("app.log.1")));

        // The same inode under a compressed name is not a candidate.
        std::fs::rename(d.path().join("app.log.1"), d.path().join("app.log.1.gz")).unwrap();
        assert_eq!(find_rotated(&p, &id), None);

        // Date suffixes count.
        std::fs::rename(
            d.path().join("app.log.1.gz"),
            d.path().join("app.log-20261123"),
        )
        .unwrap();
        assert_eq!(
            find_rotated(&p, &id),
            Some(d.path().join("app.log-20261123"))
        );
    }

    #[test]
    fn find_rotated_requires_matching_content_too() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        append(&p, b"line one\n");
        let id = identity_of(&p);
        let rotated = d.path().join("app.log.1");
        std::fs::rename(&p, &rotated).unwrap();
        std::fs::write(&rotated, b"rewritten in place\n").unwrap();
        assert_eq!(find_rotated(&p, &id), None);
    }

    #[test]
    fn rotated_names() {
        let ok = |c: &str| is_rotated_name(b"app.log", c.as_bytes());
        assert!(ok("app.log.1"));
        assert!(ok("app.log-20261123"));
        assert!(ok("app.log_old"));
        assert!(ok("app.log.2026-11-23"));
        assert!(!ok("app.log"));
        assert!(!ok("app.log."));
        assert!(!ok("app.logger"));
        assert!(!ok("xapp.log.1"));
        for ext in COMPRESSED_EXTENSIONS {
            assert!(!ok(&format!("app.log.1.{ext}")));
            assert!(!ok(&format!("app.log-20261123.{}", ext.to_uppercase())));
        }
    }
}
