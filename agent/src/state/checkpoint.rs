//! Per-file read checkpoints (`STATE_DIR/checkpoints.json`): how far each followed file has been
//! read *and durably handed on*, so a restart resumes where the last run stopped.
//!
//! The store only keeps numbers; the contract that makes them safe is the caller's: advance a
//! checkpoint only after every line before that offset is durably in the spool. Then a crash
//! can cause duplicates (lines spooled after the last flush are read again), never losses. See
//! `docs/checkpoints.md` for the contract, the file format and the recovery rules.
//!
//! Entries are keyed by device and inode: one entry per inode. Within one identity (inode and
//! fingerprint) an offset only grows, unless [`CheckpointStore::reset`] says the file was
//! truncated. A different identity on the same inode replaces the entry with its offset — it is
//! either another file that reused the inode (whose offset must not inherit the old, larger one:
//! that would skip data) or a refreshed fingerprint of the same file, whose offset the caller
//! tracks anyway.

use super::position::{CheckpointKeys, FINGERPRINT_BYTES, FileIdentity, FlatIdentity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the store in the state directory.
pub const FILE_NAME: &str = "checkpoints.json";
/// Where an unreadable store is moved (replacing an older one).
pub const CORRUPT_FILE_NAME: &str = "checkpoints.json.corrupt";
/// The format version this agent writes and reads.
pub const VERSION: u64 = 1;
/// A suggested age after which entries of files not seen are pruned.
pub const DEFAULT_PRUNE_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// [`CheckpointStore::touch`] marks the store dirty only when an entry's time moves by at least
/// this much, so touching every open file on each poll does not rewrite the file each flush.
pub const TOUCH_RESOLUTION_MS: i64 = 60_000;

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading the store failed (other than it not existing): the state directory is unusable.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Writing the store failed; the entries stay dirty and the next flush tries again.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The entries could not be encoded (not expected to happen).
    #[error("encoding checkpoints: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What [`CheckpointStore::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// No store yet (first start): every file starts per its input's `read_from`.
    Missing,
    /// A valid store with this many entries.
    Loaded {
        /// Entries read.
        files: usize,
    },
    /// The store did not parse, or broke a rule of its format. It was moved aside and the store
    /// starts empty: files are read again per `read_from`, so lines may be duplicated, never
    /// lost (with `read_from = "end"`, lines written while the agent was down are skipped).
    Corrupt {
        /// What was wrong.
        reason: String,
        /// Where the file was moved; `None` when that failed too (the next flush replaces it).
        moved_to: Option<PathBuf>,
    },
    /// The store has a version this agent does not know (e.g. written by a newer agent). Handled
    /// like [`Recovery::Corrupt`].
    UnknownVersion {
        /// The version found.
        version: u64,
        /// Where the file was moved; `None` when that failed too.
        moved_to: Option<PathBuf>,
    },
}

impl Recovery {
    /// The store was set aside and started empty (worth a warning).
    pub fn is_reset(&self) -> bool {
        matches!(self, Self::Corrupt { .. } | Self::UnknownVersion { .. })
    }
}

/// The checkpoint of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The path the file was last followed under (informational; lookups go by identity).
    pub path: PathBuf,
    /// Who the file is.
    pub identity: FileIdentity,
    /// Bytes of the file durably handed on: reading resumes here.
    pub offset: u64,
    /// Unix milliseconds of the last update or touch.
    pub updated_ms: i64,
}

/// The per-file checkpoints, in memory, persisted by [`flush`](CheckpointStore::flush).
#[derive(Debug)]
pub struct CheckpointStore {
    path: PathBuf,
    entries: BTreeMap<(u64, u64), Checkpoint>,
    dirty: bool,
}

/// On-disk layout, version 1. Never edit: add a version.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    version: u64,
    files: Vec<EntryV1>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryV1 {
    path: String,
    /// `dev`, `ino`, `fingerprint`, `fingerprint_len`.
    #[serde(flatten)]
    identity: FlatIdentity<CheckpointKeys>,
    offset: u64,
    updated_ms: i64,
}

#[derive(Deserialize)]
struct VersionProbe {
    version: u64,
}

enum Parsed {
    Entries(BTreeMap<(u64, u64), Checkpoint>),
    UnknownVersion(u64),
}

/// The checkpoints in `state_dir`, read without side effects (no lock, nothing moved aside):
/// for `outpost-agent status` while the agent runs. `None` when the file is missing, corrupt or
/// of an unknown version.
pub fn peek(state_dir: &Path) -> Option<Vec<Checkpoint>> {
    let bytes = std::fs::read(state_dir.join(FILE_NAME)).ok()?;
    match parse(&bytes) {
        Ok(Parsed::Entries(entries)) => Some(entries.into_values().collect()),
        Ok(Parsed::UnknownVersion(_)) | Err(_) => None,
    }
}

fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let probe: VersionProbe = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if probe.version != VERSION {
        return Ok(Parsed::UnknownVersion(probe.version));
    }
    let file: FileV1 = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut entries = BTreeMap::new();
    for e in file.files {
        let id = e.identity.0;
        if id.fingerprint_len > FINGERPRINT_BYTES {
            return Err(format!(
                "{}: fingerprint_len {} is over {FINGERPRINT_BYTES}",
                e.path, id.fingerprint_len
            ));
        }
        if id.fingerprint.is_none() != (id.fingerprint_len == 0) {
            return Err(format!(
                "{}: fingerprint must be null exactly when fingerprint_len is 0",
                e.path
            ));
        }
        if id.fingerprint.is_some_and(|f| f > u64::from(u32::MAX)) {
            return Err(format!("{}: fingerprint is not a CRC-32C", e.path));
        }
        let cp = Checkpoint {
            path: PathBuf::from(&e.path),
            identity: id,
            offset: e.offset,
            updated_ms: e.updated_ms,
        };
        if entries.insert((id.dev, id.ino), cp).is_some() {
            return Err(format!(
                "{}: a second entry for device {} inode {}",
                e.path, id.dev, id.ino
            ));
        }
    }
    Ok(Parsed::Entries(entries))
}

impl CheckpointStore {
    /// Open the store in `state_dir`. A missing file is a first start; a corrupt file or one of
    /// an unknown version is moved to [`CORRUPT_FILE_NAME`], logged as a warning, and the store
    /// starts empty — never an error, so never a crash loop. Only an I/O error reading the
    /// file (other than it not existing) is returned.
    pub fn open(state_dir: &Path) -> Result<(Self, Recovery), CheckpointError> {
        let path = state_dir.join(FILE_NAME);
        let mut store = Self {
            path: path.clone(),
            entries: BTreeMap::new(),
            dirty: false,
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((store, Recovery::Missing)),
            Err(source) => return Err(CheckpointError::Read { path, source }),
        };
        let recovery = match parse(&bytes) {
            Ok(Parsed::Entries(entries)) => {
                let files = entries.len();
                store.entries = entries;
                Recovery::Loaded { files }
            }
            Ok(Parsed::UnknownVersion(version)) => {
                let moved_to = set_aside(&path, state_dir);
                tracing::warn!(path = %path.display(), version, moved_to = ?moved_to, "checkpoint file has an unknown version; set aside, files are read again per read_from (duplicates possible)");
                Recovery::UnknownVersion { version, moved_to }
            }
            Err(reason) => {
                let moved_to = set_aside(&path, state_dir);
                tracing::warn!(path = %path.display(), error = %reason, moved_to = ?moved_to, "checkpoint file is corrupt; set aside, files are read again per read_from (duplicates possible)");
                Recovery::Corrupt { reason, moved_to }
            }
        };
        Ok((store, recovery))
    }

    /// The offset stored for exactly this identity (device, inode and fingerprint). To resume
    /// a file whose fingerprint may have grown since, use [`find_for_file`](Self::find_for_file).
    pub fn get(&self, identity: &FileIdentity) -> Option<u64> {
        self.entries
            .get(&(identity.dev, identity.ino))
            .filter(|cp| cp.identity == *identity)
            .map(|cp| cp.offset)
    }

    /// The entry for a device and inode, whatever its fingerprint.
    pub fn get_inode(&self, dev: u64, ino: u64) -> Option<&Checkpoint> {
        self.entries.get(&(dev, ino))
    }

    /// The most recently updated entry last recorded under `path`. Several entries can name the
    /// same path (the file there was rotated); the identity decides which one a file is.
    pub fn get_path(&self, path: &Path) -> Option<&Checkpoint> {
        self.entries
            .values()
            .filter(|cp| cp.path == path)
            .max_by_key(|cp| cp.updated_ms)
    }

    /// The entry whose stored identity [matches](FileIdentity::matches) the open file `file`:
    /// same inode, and the stored fingerprint window re-read from the file hashes the same. Use
    /// it on start-up to resume a file; then [`set`](Self::set) its fresh identity.
    pub fn find_for_file(&self, file: &File) -> io::Result<Option<&Checkpoint>> {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata()?;
        let Some(cp) = self.entries.get(&(meta.dev(), meta.ino())) else {
            return Ok(None);
        };
        Ok(cp.identity.matches(file)?.then_some(cp))
    }

    /// All entries, in device and inode order.
    pub fn iter(&self) -> impl Iterator<Item = &Checkpoint> {
        self.entries.values()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// There are changes not yet flushed.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Record that the file `identity` has been durably handed on up to `offset`. Call it only
    /// once the lines before `offset` are in the spool. For the same identity a smaller offset
    /// is ignored (returns `false`): offsets only grow unless [`reset`](Self::reset). A
    /// different identity on the same inode replaces the entry, offset included. `identity`
    /// should [cover](FileIdentity::covers) `offset` (read it again once the file grew past a
    /// short fingerprint), or a file that later reuses the inode is harder to tell apart.
    /// Returns whether anything changed.
    pub fn set(&mut self, path: &Path, identity: FileIdentity, offset: u64, now_ms: i64) -> bool {
        if let Some(cp) = self.entries.get_mut(&(identity.dev, identity.ino))
            && cp.identity == identity
        {
            if offset < cp.offset {
                tracing::debug!(path = %path.display(), stored = cp.offset, offset, "checkpoint would go back; kept");
                return false;
            }
            if offset == cp.offset && cp.path == path {
                return false;
            }
            cp.offset = offset;
            cp.path = path.to_owned();
            cp.updated_ms = now_ms;
            self.dirty = true;
            return true;
        }
        self.reset(path, identity, offset, now_ms);
        true
    }

    /// Record `offset` for `identity` even if it is smaller than the stored one: the file was
    /// truncated in place (copytruncate) and is read again from `offset` (usually 0).
    pub fn reset(&mut self, path: &Path, identity: FileIdentity, offset: u64, now_ms: i64) {
        self.entries.insert(
            (identity.dev, identity.ino),
            Checkpoint {
                path: path.to_owned(),
                identity,
                offset,
                updated_ms: now_ms,
            },
        );
        self.dirty = true;
    }

    /// Note that the file `identity` still exists (keeps its entry from being pruned) without
    /// changing its offset. Returns whether an entry has exactly this identity.
    pub fn touch(&mut self, identity: &FileIdentity, now_ms: i64) -> bool {
        let Some(cp) = self
            .entries
            .get_mut(&(identity.dev, identity.ino))
            .filter(|cp| cp.identity == *identity)
        else {
            return false;
        };
        if now_ms.saturating_sub(cp.updated_ms) >= TOUCH_RESOLUTION_MS {
            cp.updated_ms = now_ms;
            self.dirty = true;
        }
        true
    }

    /// Forget the file `identity` (it was deleted and fully read). Only an entry with exactly
    /// this identity is removed, so a file that since reused the inode keeps its entry. Returns
    /// whether an entry was removed.
    pub fn remove(&mut self, identity: &FileIdentity) -> bool {
        let key = (identity.dev, identity.ino);
        if self
            .entries
            .get(&key)
            .is_some_and(|cp| cp.identity == *identity)
        {
            self.entries.remove(&key);
            self.dirty = true;
            return true;
        }
        false
    }

    /// Drop entries not updated or touched for more than `max_age` before `now_ms`. Call it
    /// after the files still present have been touched (e.g. after a discovery pass), or their
    /// entries go too. Returns how many were dropped.
    pub fn prune(&mut self, now_ms: i64, max_age: Duration) -> usize {
        let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let before = self.entries.len();
        self.entries
            .retain(|_, cp| now_ms.saturating_sub(cp.updated_ms) <= max_age_ms);
        let dropped = before - self.entries.len();
        if dropped > 0 {
            self.dirty = true;
        }
        dropped
    }

    /// Persist the entries if anything changed since the last flush (temp file, fsync, rename,
    /// fsync of the directory). Returns whether the file was written. On error the entries stay
    /// dirty, so the next flush tries again.
    pub fn flush(&mut self) -> Result<bool, CheckpointError> {
        if !self.dirty {
            return Ok(false);
        }
        let file = FileV1 {
            version: VERSION,
            files: self
                .entries
                .values()
                .map(|cp| EntryV1 {
                    path: cp.path.to_string_lossy().into_owned(),
                    identity: cp.identity.into(),
                    offset: cp.offset,
                    updated_ms: cp.updated_ms,
                })
                .collect(),
        };
        let mut bytes = serde_json::to_vec(&file)?;
        bytes.push(b'\n');
        outpost_durable::replace(&self.path, &bytes).map_err(|e| CheckpointError::Write {
            path: self.path.clone(),
            source: e.into(),
        })?;
        self.dirty = false;
        Ok(true)
    }
}

/// Move an unreadable store out of the way (replacing an older one), so it can be inspected and
/// the next flush does not destroy it. Returns where it went, `None` if the move failed.
fn set_aside(path: &Path, state_dir: &Path) -> Option<PathBuf> {
    let to = state_dir.join(CORRUPT_FILE_NAME);
    let moved = std::fs::rename(path, &to).and_then(|()| Ok(outpost_durable::sync_dir(state_dir)?));
    match moved {
        Ok(()) => Some(to),
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "cannot set the corrupt checkpoint file aside; the next flush replaces it");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ino: u64, fp: Option<u64>, len: u32) -> FileIdentity {
        FileIdentity {
            dev: 8,
            ino,
            fingerprint: fp,
            fingerprint_len: len,
        }
    }

    fn open(dir: &Path) -> (CheckpointStore, Recovery) {
        CheckpointStore::open(dir).unwrap()
    }

    #[test]
    fn round_trip_across_reopen() {
        let d = tempfile::tempdir().unwrap();
        let (mut s, r) = open(d.path());
        assert_eq!(r, Recovery::Missing);
        assert!(!s.flush().unwrap(), "nothing to write");
        let a = id(1, Some(0xdead_beef), 1024);
        let empty = id(2, None, 0);
        assert!(s.set(Path::new("/var/log/a.log"), a, 4096, 1000));
        assert!(s.set(Path::new("/var/log/b.log"), empty, 0, 2000));
        assert!(s.flush().unwrap());
        assert!(!s.flush().unwrap(), "clean after a flush");
        drop(s);

        let (s, r) = open(d.path());
        assert_eq!(r, Recovery::Loaded { files: 2 });
        assert_eq!(s.get(&a), Some(4096));
        assert_eq!(s.get(&empty), Some(0));
        assert_eq!(s.get(&id(1, Some(1), 1024)), None, "other fingerprint");
        let cp = s.get_path(Path::new("/var/log/a.log")).unwrap();
        assert_eq!((cp.identity, cp.offset, cp.updated_ms), (a, 4096, 1000));
        assert_eq!(s.get_inode(8, 2).map(|cp| cp.offset), Some(0));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn the_file_format_is_version_1() {
        let d = tempfile::tempdir().unwrap();
        let (mut s, _) = open(d.path());
        s.set(Path::new("/l/a.log"), id(3, Some(42), 10), 7, 99);
        s.flush().unwrap();
        let text = std::fs::read_to_string(d.path().join(FILE_NAME)).unwrap();
        assert_eq!(
            text,
            "{\"version\":1,\"files\":[{\"path\":\"/l/a.log\",\"dev\":8,\"ino\":3,\
             \"fingerprint\":42,\"fingerprint_len\":10,\"offset\":7,\"updated_ms\":99}]}\n"
        );
    }

    #[test]
    fn a_file_an_earlier_agent_wrote_still_reads() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join(FILE_NAME),
            "{\"version\":1,\"files\":[{\"path\":\"/l/a.log\",\"dev\":8,\"ino\":3,\
             \"fingerprint\":42,\"fingerprint_len\":10,\"offset\":7,\"updated_ms\":99},\
             {\"path\":\"/l/b.log\",\"dev\":8,\"ino\":4,\"fingerprint\":null,\
             \"fingerprint_len\":0,\"offset\":0,\"updated_ms\":5}]}\n",
        )
        .unwrap();
        let (s, r) = open(d.path());
        assert_eq!(r, Recovery::Loaded { files: 2 });
        assert_eq!(s.get(&id(3, Some(42), 10)), Some(7));
        assert_eq!(s.get(&id(4, None, 0)), Some(0));
        assert_eq!(s.get_inode(8, 3).map(|cp| cp.updated_ms), Some(99));
    }

    #[test]
    fn finds_the_entry_of_an_open_file_whose_fingerprint_grew() {
        use crate::state::position::read_identity;
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("a.log");
        std::fs::write(&log, b"short\n").unwrap();
        let short = read_identity(&File::open(&log).unwrap()).unwrap();
        let (mut s, _) = open(d.path());
        s.set(&log, short, 6, 1);
        std::fs::write(&log, b"short\nand much longer now\n").unwrap();
        let f = File::open(&log).unwrap();
        let grown = read_identity(&f).unwrap();
        assert_eq!(s.get(&grown), None, "the exact identity changed");
        let cp = s.find_for_file(&f).unwrap().unwrap();
        assert_eq!(cp.offset, 6);
        // Refresh the identity: the entry now carries the wider fingerprint.
        assert!(s.set(&log, grown, 6, 2));
        assert_eq!(s.get(&grown), Some(6));
        assert_eq!(s.len(), 1);
        // Rewritten in place (same inode, other first bytes): no longer found.
        std::fs::write(&log, b"other content entirely\n").unwrap();
        assert!(
            s.find_for_file(&File::open(&log).unwrap())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn corrupt_file_is_set_aside_and_the_store_starts_empty() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(FILE_NAME);
        std::fs::write(&p, b"{\"version\":1,\"files\":[{\"pa").unwrap();
        let (mut s, r) = open(d.path());
        let Recovery::Corrupt { moved_to, .. } = &r else {
            panic!("expected Corrupt, got {r:?}");
        };
        assert!(r.is_reset());
        assert_eq!(
            moved_to.as_deref(),
            Some(d.path().join(CORRUPT_FILE_NAME).as_path())
        );
        assert_eq!(
            std::fs::read(d.path().join(CORRUPT_FILE_NAME)).unwrap(),
            b"{\"version\":1,\"files\":[{\"pa"
        );
        assert!(!p.exists());
        assert!(s.is_empty());
        // The store works on: the next flush writes a valid file.
        s.set(Path::new("/a"), id(1, Some(1), 1), 1, 1);
        s.flush().unwrap();
        assert_eq!(open(d.path()).1, Recovery::Loaded { files: 1 });
    }

    #[test]
    fn rule_breaking_and_unknown_version_files_are_set_aside() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(FILE_NAME);
        let entry = |ino: u64, fp: &str, len: u32| {
            format!(
                "{{\"path\":\"/a\",\"dev\":1,\"ino\":{ino},\"fingerprint\":{fp},\
                 \"fingerprint_len\":{len},\"offset\":0,\"updated_ms\":0}}"
            )
        };
        let bad = [
            format!("{{\"version\":1,\"files\":[{}]}}", entry(1, "5", 2000)),
            format!("{{\"version\":1,\"files\":[{}]}}", entry(1, "null", 3)),
            format!(
                "{{\"version\":1,\"files\":[{}]}}",
                entry(1, "4294967296", 3)
            ),
            format!(
                "{{\"version\":1,\"files\":[{},{}]}}",
                entry(1, "5", 3),
                entry(1, "6", 3)
            ),
            "{\"version\":1,\"files\":[],\"extra\":true}".to_owned(),
            format!(
                "{{\"version\":1,\"files\":[{}]}}",
                entry(1, "5", 3).replace("}", ",\"extra\":1}")
            ),
            format!(
                "{{\"version\":1,\"files\":[{}]}}",
                entry(1, "5", 3).replace("\"dev\":1,", "")
            ),
            "[]".to_owned(),
            String::new(),
        ];
        for text in bad {
            std::fs::write(&p, &text).unwrap();
            let (s, r) = open(d.path());
            assert!(matches!(r, Recovery::Corrupt { .. }), "{text}: {r:?}");
            assert!(s.is_empty());
        }
        std::fs::write(&p, "{\"version\":2,\"files\":[],\"new\":{}}").unwrap();
        let (s, r) = open(d.path());
        assert!(
            matches!(
                r,
                Recovery::UnknownVersion {
                    version: 2,
                    moved_to: Some(_)
                }
            ),
            "{r:?}"
        );
        assert!(s.is_empty());
        assert!(d.path().join(CORRUPT_FILE_NAME).exists());
    }

    #[test]
    fn offsets_only_grow_per_identity_unless_reset() {
        let d = tempfile::tempdir().unwrap();
        let (mut s, _) = open(d.path());
        let a = id(1, Some(7), 1024);
        let p = Path::new("/a");
        assert!(s.set(p, a, 100, 1));
        assert!(!s.set(p, a, 50, 2), "going back is ignored");
        assert_eq!(s.get(&a), Some(100));
        assert!(!s.set(p, a, 100, 3), "no change");
        assert!(s.set(p, a, 150, 4));
        assert_eq!(s.get(&a), Some(150));
        // copytruncate: explicitly back to the start.
        s.reset(p, a, 0, 5);
        assert_eq!(s.get(&a), Some(0));
        // Another file reused the inode: its own, smaller offset wins (keeping 150 would skip
        // its first 150 bytes).
        s.set(p, a, 150, 6);
        let b = id(1, Some(9), 1024);
        assert!(s.set(p, b, 20, 7));
        assert_eq!(s.get(&b), Some(20));
        assert_eq!(s.get(&a), None);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn remove_only_drops_the_exact_identity() {
        let d = tempfile::tempdir().unwrap();
        let (mut s, _) = open(d.path());
        let a = id(1, Some(7), 1024);
        let reused = id(1, Some(9), 1024);
        s.set(Path::new("/a"), reused, 5, 1);
        s.flush().unwrap();
        assert!(!s.remove(&a));
        assert!(!s.is_dirty());
        assert!(s.remove(&reused));
        assert!(s.is_empty());
        assert!(s.flush().unwrap());
        assert_eq!(open(d.path()).1, Recovery::Loaded { files: 0 });
    }

    #[test]
    fn prune_drops_entries_not_seen_for_max_age() {
        let d = tempfile::tempdir().unwrap();
        let (mut s, _) = open(d.path());
        let day = 24 * 3600 * 1000;
        let (old, idle, fresh) = (id(1, Some(1), 1), id(2, Some(2), 1), id(3, Some(3), 1));
        s.set(Path::new("/old"), old, 1, 0);
        s.set(Path::new("/idle"), idle, 1, 0);
        s.set(Path::new("/fresh"), fresh, 1, 9 * day);
        s.flush().unwrap();
        // The idle file still exists: a touch keeps it.
        assert!(s.touch(&idle, 10 * day));
        assert!(s.is_dirty(), "a touch that moves time a lot is persisted");
        assert!(!s.touch(&id(9, None, 0), 10 * day));
        assert_eq!(s.prune(10 * day, Duration::from_secs(7 * 24 * 3600)), 1);
        assert_eq!(s.get(&old), None);
        assert_eq!(s.get(&idle), Some(1));
        assert_eq!(s.get(&fresh), Some(1));
        s.flush().unwrap();
        let (s, r) = open(d.path());
        assert_eq!(r, Recovery::Loaded { files: 2 });
        assert_eq!(s.get(&old), None);
        // Nothing old enough: nothing dropped, nothing to write.
        let (mut s2, _) = open(d.path());
        assert_eq!(s2.prune(10 * day, DEFAULT_PRUNE_AGE), 0);
        assert!(!s2.is_dirty());
        // Small touches do not dirty the store.
        assert!(s2.touch(&fresh, 9 * day + 1000));
        assert!(!s2.is_dirty());
        drop(s);
    }
}
