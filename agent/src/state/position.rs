//! File identities and positions, the types the tailer and the checkpoint store share: a file's
//! device, inode and a fingerprint of its first bytes, so that a reused inode or a file replaced
//! under the same name is told apart from the file a position was recorded for; and a
//! [`Position`], how far a file has been read.
//!
//! # The fingerprint
//! The fingerprint is the CRC-32C of the first [`FINGERPRINT_BYTES`] bytes of the file, or of the
//! whole file while it is shorter; `fingerprint_len` records how many bytes were hashed. CRC-32C
//! is fixed by its specification, so persisted fingerprints stay comparable across Rust and
//! crate versions (std's `DefaultHasher` is not). An empty file has no fingerprint (`None`,
//! length 0).
//!
//! # Matching
//! A stored identity `S` matches a file `F` when `F` has the same device and inode as `S` and
//! the first `S.fingerprint_len` bytes of `F`, read again now, hash to `S.fingerprint`. So a file
//! that was short when it was identified still matches after it grew (its old window is a prefix
//! of the new content), while a file whose first bytes changed — the inode was freed and reused,
//! or the file was truncated and rewritten in place — does not. A file now shorter than the
//! stored window does not match either. Two different files on the same inode whose first
//! `fingerprint_len` bytes are equal cannot be told apart; the wider the window, the rarer that
//! is, which is why a short file's identity should be read again as it grows.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;

/// How many leading bytes of a file the fingerprint covers once the file is at least that long.
pub const FINGERPRINT_BYTES: u32 = 1024;

/// Where a file has been read up to: just past the last record handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The file's (original) path.
    pub path: PathBuf,
    /// Its identity.
    pub identity: FileIdentity,
    /// Offset just past the last record handed out.
    pub offset: u64,
    /// The file shrank (copytruncate): the offset moved backwards on purpose.
    pub reset: bool,
}

/// Who a file is: its device and inode, and a fingerprint of its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// Device number (`st_dev`).
    pub dev: u64,
    /// Inode number (`st_ino`).
    pub ino: u64,
    /// CRC-32C of the first `fingerprint_len` bytes; `None` when the file was empty.
    pub fingerprint: Option<u64>,
    /// How many bytes the fingerprint covers: `min(file length, FINGERPRINT_BYTES)` when it
    /// was read.
    pub fingerprint_len: u32,
}

impl FileIdentity {
    /// The identity of a file on `dev`/`ino` whose content starts with `prefix`. At most
    /// [`FINGERPRINT_BYTES`] of `prefix` are hashed; pass the whole file when it is shorter.
    pub fn from_prefix(dev: u64, ino: u64, prefix: &[u8]) -> Self {
        let window = &prefix[..prefix.len().min(FINGERPRINT_BYTES as usize)];
        Self {
            dev,
            ino,
            fingerprint: fingerprint_of(window),
            // `window` is at most FINGERPRINT_BYTES long, so this never saturates.
            fingerprint_len: u32::try_from(window.len()).unwrap_or(FINGERPRINT_BYTES),
        }
    }

    /// Same device and inode (says nothing about the content).
    pub fn same_inode(&self, other: &Self) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }

    /// The fingerprint covers the full window, so it no longer changes as the file grows.
    /// While this is false, read the identity again after the file grew to keep it sharp.
    pub fn is_complete(&self) -> bool {
        self.fingerprint_len >= FINGERPRINT_BYTES
    }

    /// The fingerprint covers the first `offset` bytes, or the full window when `offset` is past
    /// it. An identity recorded with a checkpoint at `offset` should cover it: one read while
    /// the file was shorter would let a file that reused the inode, and starts with those few
    /// bytes, inherit the offset. Read the identity again (after the bytes up to `offset` were
    /// read) when this is false.
    pub fn covers(&self, offset: u64) -> bool {
        u64::from(self.fingerprint_len) >= offset.min(u64::from(FINGERPRINT_BYTES))
    }

    /// Whether `candidate` is the file this identity was read from: same device and inode, and
    /// its first `self.fingerprint_len` bytes (read again now) hash to `self.fingerprint`.
    /// See the module documentation for the exact rule.
    pub fn matches(&self, candidate: &File) -> io::Result<bool> {
        let meta = candidate.metadata()?;
        if meta.dev() != self.dev || meta.ino() != self.ino {
            return Ok(false);
        }
        let prefix = read_prefix(candidate, self.fingerprint_len)?;
        Ok(prefix_matches(self, &prefix))
    }
}

/// The names a persisted layout gives a file identity's fields. Shipped layouts are never
/// edited, and two of them name the fingerprint differently: `checkpoints.json` spells it out
/// ([`CheckpointKeys`]), the spool entry's positions abbreviate it ([`EnvelopeKeys`]).
pub trait IdentityKeys {
    /// The key of [`FileIdentity::fingerprint`].
    const FINGERPRINT: &'static str;
    /// The key of [`FileIdentity::fingerprint_len`].
    const FINGERPRINT_LEN: &'static str;
    /// All four keys: `dev`, `ino` and the two above.
    const FIELDS: &'static [&'static str];
}

/// `checkpoints.json`: `dev`, `ino`, `fingerprint`, `fingerprint_len`.
pub struct CheckpointKeys;

impl IdentityKeys for CheckpointKeys {
    const FINGERPRINT: &'static str = "fingerprint";
    const FINGERPRINT_LEN: &'static str = "fingerprint_len";
    const FIELDS: &'static [&'static str] = &["dev", "ino", "fingerprint", "fingerprint_len"];
}

/// A spool entry's positions: `dev`, `ino`, `fp`, `fp_len`.
pub struct EnvelopeKeys;

impl IdentityKeys for EnvelopeKeys {
    const FINGERPRINT: &'static str = "fp";
    const FINGERPRINT_LEN: &'static str = "fp_len";
    const FIELDS: &'static [&'static str] = &["dev", "ino", "fp", "fp_len"];
}

/// The one serde representation of a [`FileIdentity`] in a persisted record: its four fields,
/// in the order `dev`, `ino`, fingerprint, fingerprint length, named by `K`. Records embed it
/// with `#[serde(flatten)]`, so the fields sit beside the record's own. A missing fingerprint
/// reads as `None` (an empty file's); the other three are required.
pub struct FlatIdentity<K>(pub FileIdentity, std::marker::PhantomData<K>);

impl<K> From<FileIdentity> for FlatIdentity<K> {
    fn from(identity: FileIdentity) -> Self {
        Self(identity, std::marker::PhantomData)
    }
}

impl<K: IdentityKeys> serde::Serialize for FlatIdentity<K> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("FileIdentity", 4)?;
        s.serialize_field("dev", &self.0.dev)?;
        s.serialize_field("ino", &self.0.ino)?;
        s.serialize_field(K::FINGERPRINT, &self.0.fingerprint)?;
        s.serialize_field(K::FINGERPRINT_LEN, &self.0.fingerprint_len)?;
        s.end()
    }
}

impl<'de, K: IdentityKeys> serde::Deserialize<'de> for FlatIdentity<K> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(
            "FileIdentity",
            K::FIELDS,
            FlatVisitor::<K>(std::marker::PhantomData),
        )
    }
}

struct FlatVisitor<K>(std::marker::PhantomData<K>);

impl<'de, K: IdentityKeys> serde::de::Visitor<'de> for FlatVisitor<K> {
    type Value = FlatIdentity<K>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a file identity ({})", K::FIELDS.join(", "))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let (mut dev, mut ino, mut fingerprint, mut fingerprint_len) = (None, None, None, None);
        fn once<T, E: Error>(slot: &mut Option<T>, key: &'static str, value: T) -> Result<(), E> {
            match slot.replace(value) {
                Some(_) => Err(E::duplicate_field(key)),
                None => Ok(()),
            }
        }
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "dev" => once(&mut dev, "dev", map.next_value()?)?,
                "ino" => once(&mut ino, "ino", map.next_value()?)?,
                k if k == K::FINGERPRINT => once(
                    &mut fingerprint,
                    K::FINGERPRINT,
                    map.next_value::<Option<u64>>()?,
                )?,
                k if k == K::FINGERPRINT_LEN => {
                    once(&mut fingerprint_len, K::FINGERPRINT_LEN, map.next_value()?)?
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(FileIdentity {
            dev: dev.ok_or_else(|| A::Error::missing_field("dev"))?,
            ino: ino.ok_or_else(|| A::Error::missing_field("ino"))?,
            fingerprint: fingerprint.flatten(),
            fingerprint_len: fingerprint_len
                .ok_or_else(|| A::Error::missing_field(K::FINGERPRINT_LEN))?,
        }
        .into())
    }
}

/// CRC-32C of `window`, widened to the persisted width; `None` for no bytes.
fn fingerprint_of(window: &[u8]) -> Option<u64> {
    (!window.is_empty()).then(|| u64::from(crc32c::crc32c(window)))
}

/// Read the identity of an open file. The file's read position is not moved (positional reads).
pub fn read_identity(file: &File) -> io::Result<FileIdentity> {
    let meta = file.metadata()?;
    let prefix = read_prefix(file, FINGERPRINT_BYTES)?;
    Ok(FileIdentity::from_prefix(meta.dev(), meta.ino(), &prefix))
}

/// Read up to `len` bytes from the start of `file` (fewer when the file is shorter), without
/// moving its read position.
pub fn read_prefix(file: &File, len: u32) -> io::Result<Vec<u8>> {
    let len = len as usize;
    let mut buf = vec![0; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// The pure half of matching: whether a file starting with `candidate_prefix` has the content
/// `stored` was fingerprinted from. `candidate_prefix` must hold at least
/// `stored.fingerprint_len` bytes of the candidate when the candidate has that many: a shorter
/// prefix means the candidate is shorter than the stored window, which never matches. A stored
/// identity of an empty file (nothing hashed) matches any prefix. Device and inode are not
/// compared here.
pub fn prefix_matches(stored: &FileIdentity, candidate_prefix: &[u8]) -> bool {
    let len = stored.fingerprint_len as usize;
    match candidate_prefix.get(..len) {
        Some(window) => fingerprint_of(window) == stored.fingerprint,
        None => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::path::Path;

    /// Append `bytes` to the file at `p`, creating it (also for `collect::logs::rotated`'s tests).
    pub(crate) fn append(p: &Path, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    /// The identity of the file at `p` now.
    pub(crate) fn identity_of(p: &Path) -> FileIdentity {
        read_identity(&File::open(p).unwrap()).unwrap()
    }

    fn matches(id: &FileIdentity, p: &Path) -> bool {
        id.matches(&File::open(p).unwrap()).unwrap()
    }

    #[test]
    fn identity_is_stable_across_appends() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        append(&p, &[b'a'; 1500]);
        let first = identity_of(&p);
        assert!(first.is_complete());
        assert_eq!(first.fingerprint_len, FINGERPRINT_BYTES);
        append(&p, b"more lines\n");
        assert_eq!(identity_of(&p), first);
        assert!(matches(&first, &p));
    }

    #[test]
    fn reading_the_identity_does_not_move_the_read_position() {
        use std::io::{Read, Seek, SeekFrom};
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        append(&p, b"0123456789");
        let mut f = File::open(&p).unwrap();
        f.seek(SeekFrom::Start(4)).unwrap();
        read_identity(&f).unwrap();
        let mut rest = String::new();
        f.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "456789");
    }

    #[test]
    fn a_file_replaced_by_another_inode_does_not_match() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        append(&p, b"original content\n");
        let old = identity_of(&p);
        let other = d.path().join("new");
        append(&other, b"original content\n");
        std::fs::rename(&other, &p).unwrap();
        let new = identity_of(&p);
        assert!(!old.same_inode(&new));
        assert_eq!(old.fingerprint, new.fingerprint, "same bytes, other inode");
        assert!(!matches(&old, &p));
    }

    #[test]
    fn the_same_inode_with_different_first_bytes_does_not_match() {
        // What a freed and reused inode looks like: same dev and ino, other content.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        append(&p, b"first file\n");
        let old = identity_of(&p);
        std::fs::write(&p, b"second file, longer than the first\n").unwrap();
        let new = identity_of(&p);
        assert!(old.same_inode(&new));
        assert!(!matches(&old, &p));
        // Shorter than the stored window: cannot be the same file either.
        std::fs::write(&p, b"first").unwrap();
        assert!(!matches(&old, &p));
    }

    #[test]
    fn a_short_file_keeps_matching_as_it_grows() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        std::fs::write(&p, b"").unwrap();
        let empty = identity_of(&p);
        assert_eq!((empty.fingerprint, empty.fingerprint_len), (None, 0));
        append(&p, b"hello\n");
        let short = identity_of(&p);
        assert_eq!(short.fingerprint_len, 6);
        assert!(!short.is_complete());
        assert!(
            matches(&empty, &p),
            "an empty file's identity matches its inode"
        );
        append(&p, &[b'x'; 2000]);
        let full = identity_of(&p);
        assert_eq!(full.fingerprint_len, FINGERPRINT_BYTES);
        assert_ne!(full.fingerprint, short.fingerprint, "recomputed as it grew");
        assert!(
            matches(&short, &p),
            "the old window is a prefix of the grown file"
        );
        assert!(matches(&full, &p));
        assert!(empty.covers(0) && !empty.covers(1));
        assert!(short.covers(6) && !short.covers(7));
        assert!(full.covers(u64::MAX));
    }

    #[test]
    fn prefix_matching_rules() {
        let id = FileIdentity::from_prefix(1, 2, b"abcdef");
        assert!(prefix_matches(&id, b"abcdef"));
        assert!(prefix_matches(&id, b"abcdefghi"));
        assert!(
            !prefix_matches(&id, b"abcde"),
            "candidate shorter than window"
        );
        assert!(!prefix_matches(&id, b"abcdeX"));
        let empty = FileIdentity::from_prefix(1, 2, b"");
        assert!(prefix_matches(&empty, b""));
        assert!(prefix_matches(&empty, b"anything"));
        let long = vec![7u8; 3000];
        let id = FileIdentity::from_prefix(1, 2, &long);
        assert_eq!(id.fingerprint_len, FINGERPRINT_BYTES);
        assert!(prefix_matches(&id, &long[..FINGERPRINT_BYTES as usize]));
    }

    #[test]
    fn fingerprint_is_crc32c_so_persisted_values_stay_valid() {
        // Pinned: changing the algorithm needs a new checkpoint format version.
        let id = FileIdentity::from_prefix(0, 0, b"123456789");
        assert_eq!(id.fingerprint, Some(0xE306_9283));
    }
}
