//! What a spool entry holds: a frame, and the file positions that frame completes.
//!
//! Keeping the positions in the same durable entry as the lines makes the spool the write-ahead
//! log of the checkpoints too: a crash between spooling a batch and writing `checkpoints.json`
//! is repaired on start by replaying the positions of the entries still in the spool, so those
//! lines are neither lost nor read (and stored) a second time.
//!
//! Layout (version 1): `0x01 | frame_len u32 LE | frame | positions` where positions are a JSON
//! array of `{"path","dev","ino","fp","fp_len","offset","reset"}` (possibly `[]`).

use crate::state::position::{EnvelopeKeys, FlatIdentity, Position};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

const VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Pos {
    path: String,
    /// `dev`, `ino`, `fp`, `fp_len`.
    #[serde(flatten)]
    identity: FlatIdentity<EnvelopeKeys>,
    offset: u64,
    reset: bool,
}

/// Why an entry could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("spool entry: {0}")]
pub struct EnvelopeError(String);

/// Wrap a frame and its positions.
pub fn seal(frame: &[u8], positions: &[Position]) -> Vec<u8> {
    let pos: Vec<Pos> = positions
        .iter()
        .map(|p| Pos {
            path: p.path.to_string_lossy().into_owned(),
            identity: p.identity.into(),
            offset: p.offset,
            reset: p.reset,
        })
        .collect();
    // Serialising plain structs of strings and integers cannot fail.
    let json = serde_json::to_vec(&pos).unwrap_or_else(|_| b"[]".to_vec());
    let mut out = Vec::with_capacity(5 + frame.len() + json.len());
    out.push(VERSION);
    out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    out.extend_from_slice(frame);
    out.extend_from_slice(&json);
    out
}

/// Where the frame is inside an entry (to share the entry's buffer rather than copy it).
pub fn frame_range(entry: &[u8]) -> Result<std::ops::Range<usize>, EnvelopeError> {
    split(entry).map(|(f, _)| HEADER..HEADER + f.len())
}

/// Bytes before the frame: the version and the frame's length.
const HEADER: usize = 5;

/// The positions inside an entry.
pub fn positions(entry: &[u8]) -> Result<Vec<Position>, EnvelopeError> {
    let (_, json) = split(entry)?;
    let pos: Vec<Pos> =
        serde_json::from_slice(json).map_err(|e| EnvelopeError(format!("positions: {e}")))?;
    Ok(pos
        .into_iter()
        .map(|p| Position {
            path: PathBuf::from(p.path),
            identity: p.identity.0,
            offset: p.offset,
            reset: p.reset,
        })
        .collect())
}

fn split(entry: &[u8]) -> Result<(&[u8], &[u8]), EnvelopeError> {
    let (&version, rest) = entry
        .split_first()
        .ok_or_else(|| EnvelopeError("empty".into()))?;
    if version != VERSION {
        return Err(EnvelopeError(format!("unknown version {version}")));
    }
    let len_bytes: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| EnvelopeError("truncated length".into()))?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    let body = &rest[4..];
    if body.len() < len {
        return Err(EnvelopeError("truncated frame".into()));
    }
    Ok(body.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::position::FileIdentity;

    #[test]
    fn round_trip_and_damage() {
        let p = Position {
            path: "/var/log/app.log".into(),
            identity: FileIdentity {
                dev: 1,
                ino: 2,
                fingerprint: Some(3),
                fingerprint_len: 4,
            },
            offset: 5,
            reset: true,
        };
        let e = seal(b"FRAME", std::slice::from_ref(&p));
        assert_eq!(&e[frame_range(&e).unwrap()], b"FRAME");
        assert_eq!(positions(&e).unwrap(), vec![p]);
        assert!(frame_range(&e[..7]).is_err());
        assert!(frame_range(&[2, 0, 0, 0, 0]).is_err());
        assert_eq!(positions(&seal(b"", &[])).unwrap(), vec![]);
    }

    #[test]
    fn the_positions_layout_is_version_1() {
        // Pinned: entries written by earlier agents sit in spools; the identity's keys are
        // `fp` and `fp_len` here (not checkpoints.json's).
        let p = Position {
            path: "/l/a.log".into(),
            identity: FileIdentity {
                dev: 8,
                ino: 3,
                fingerprint: Some(42),
                fingerprint_len: 10,
            },
            offset: 7,
            reset: false,
        };
        let e = seal(b"F", std::slice::from_ref(&p));
        let json = br#"[{"path":"/l/a.log","dev":8,"ino":3,"fp":42,"fp_len":10,"offset":7,"reset":false}]"#;
        assert_eq!(e, [&[1, 1, 0, 0, 0, b'F'][..], &json[..]].concat());
        // An entry an earlier agent wrote, with an empty file's identity, still reads.
        let old = br#"[{"path":"/l/b.log","dev":1,"ino":2,"fp":null,"fp_len":0,"offset":0,"reset":true}]"#;
        let entry = [&[1, 0, 0, 0, 0][..], &old[..]].concat();
        assert_eq!(
            positions(&entry).unwrap(),
            vec![Position {
                path: "/l/b.log".into(),
                identity: FileIdentity {
                    dev: 1,
                    ino: 2,
                    fingerprint: None,
                    fingerprint_len: 0,
                },
                offset: 0,
                reset: true,
            }]
        );
    }
}
