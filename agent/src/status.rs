//! `outpost-agent status`: what the agent's state directory says, read without side effects
//! (no lock taken, nothing repaired), so it is safe while the agent runs.

use serde::Serialize;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::UNIX_EPOCH;

/// One followed file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileStatus {
    /// The file's path.
    pub path: String,
    /// Bytes durably read (spooled) so far.
    pub offset: u64,
    /// The file's current size, when the path still holds the same file.
    pub size: Option<u64>,
    /// `size - offset`: bytes not read yet.
    pub lag_bytes: Option<u64>,
    /// `same`, `rotated` (the path holds another file now) or `missing`.
    pub state: &'static str,
}

/// The agent's state as found on disk.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    /// The version and commit of the `outpost-agent` binary reading the state (`0.1.0 (commit
    /// 1a2b3c4d5e6f)`).
    pub version: &'static str,
    /// The state directory.
    pub state_dir: String,
    /// Per-file positions.
    pub files: Vec<FileStatus>,
    /// Spool segment files.
    pub spool_segments: u64,
    /// Bytes in spool segment files.
    pub spool_bytes: u64,
    /// Spool segments set aside as corrupt.
    pub spool_corrupt: u64,
    /// When the sink last acknowledged a frame (unix ms), from the spool's ack file.
    pub last_ack_ms: Option<u64>,
    /// Frames the sink refused for good.
    pub dead_letters: u64,
    /// Batch sequence high-water mark.
    pub seq: Option<u64>,
}

fn mtime_ms(p: &Path) -> Option<u64> {
    let m = std::fs::metadata(p).ok()?.modified().ok()?;
    u64::try_from(m.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()
}

/// Read the state directory.
pub fn read(state_dir: &Path) -> Status {
    let files = crate::state::checkpoint::peek(state_dir)
        .unwrap_or_default()
        .into_iter()
        .map(|cp| {
            let (size, state) = match std::fs::metadata(&cp.path) {
                Ok(m) if m.dev() == cp.identity.dev && m.ino() == cp.identity.ino => {
                    (Some(m.len()), "same")
                }
                Ok(_) => (None, "rotated"),
                Err(_) => (None, "missing"),
            };
            FileStatus {
                lag_bytes: size.map(|s| s.saturating_sub(cp.offset)),
                path: cp.path.display().to_string(),
                offset: cp.offset,
                size,
                state,
            }
        })
        .collect();
    let spool = state_dir.join("spool");
    let (mut segments, mut bytes, mut corrupt) = (0, 0, 0);
    for e in std::fs::read_dir(&spool).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".seg") {
            segments += 1;
            bytes += e.metadata().map_or(0, |m| m.len());
        } else if name.ends_with(".corrupt") {
            corrupt += 1;
        }
    }
    let dead_letters = std::fs::read_dir(state_dir.join("dead-letter"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".frame"))
        .count() as u64;
    Status {
        version: crate::version::LONG,
        state_dir: state_dir.display().to_string(),
        files,
        spool_segments: segments,
        spool_bytes: bytes,
        spool_corrupt: corrupt,
        last_ack_ms: mtime_ms(&spool.join("acked")),
        dead_letters,
        seq: std::fs::read_to_string(state_dir.join("seq"))
            .ok()
            .and_then(|t| t.trim().parse().ok()),
    }
}

/// A human-readable rendering.
pub fn render(s: &Status, now_ms: u64) -> String {
    let mut out = format!("outpost-agent {}\n", s.version);
    out += &format!("state directory: {}\n", s.state_dir);
    out += &format!(
        "spool: {} bytes in {} segment(s){}\n",
        s.spool_bytes,
        s.spool_segments,
        if s.spool_corrupt > 0 {
            format!(", {} set aside as corrupt", s.spool_corrupt)
        } else {
            String::new()
        }
    );
    out += &match s.last_ack_ms {
        Some(t) => format!(
            "last delivery acknowledged: {:.1} s ago\n",
            now_ms.saturating_sub(t) as f64 / 1000.0
        ),
        None => "last delivery acknowledged: never\n".to_owned(),
    };
    out += &format!("dead letters: {}\n", s.dead_letters);
    out += &format!("files: {}\n", s.files.len());
    for f in &s.files {
        let lag = f
            .lag_bytes
            .map_or_else(|| "-".to_owned(), |l| l.to_string());
        out += &format!(
            "  {}  offset {}  lag {} bytes  ({})\n",
            f.path, f.offset, lag, f.state
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_positions_spool_and_dead_letters() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("app.log");
        std::fs::write(&log, "0123456789").unwrap();
        let m = std::fs::metadata(&log).unwrap();
        let cp = serde_json::json!({"version": 1, "files": [
            {"path": log, "dev": m.dev(), "ino": m.ino(), "fingerprint": null,
             "fingerprint_len": 0, "offset": 4, "updated_ms": 0},
            {"path": d.path().join("gone.log"), "dev": 1, "ino": 2, "fingerprint": null,
             "fingerprint_len": 0, "offset": 9, "updated_ms": 0}]});
        std::fs::write(d.path().join("checkpoints.json"), cp.to_string()).unwrap();
        std::fs::create_dir_all(d.path().join("spool")).unwrap();
        std::fs::write(d.path().join("spool/00000000000000000001.seg"), [0u8; 100]).unwrap();
        std::fs::create_dir_all(d.path().join("dead-letter")).unwrap();
        std::fs::write(
            d.path().join("dead-letter/00000000000000000007.frame"),
            b"x",
        )
        .unwrap();
        std::fs::write(d.path().join("seq"), "42\n").unwrap();
        let s = read(d.path());
        let by_name = |n: &str| s.files.iter().find(|f| f.path.ends_with(n)).unwrap();
        assert_eq!(s.files.len(), 2);
        assert_eq!(by_name("app.log").lag_bytes, Some(6));
        assert_eq!(by_name("app.log").state, "same");
        assert_eq!(by_name("gone.log").state, "missing");
        assert_eq!((s.spool_segments, s.spool_bytes), (1, 100));
        assert_eq!(s.dead_letters, 1);
        assert_eq!(s.seq, Some(42));
        assert_eq!(s.last_ack_ms, None);
        let text = render(&s, 0);
        assert!(text.contains("lag 6 bytes  (same)"), "{text}");
        assert!(
            text.starts_with(&format!("outpost-agent {}\n", crate::version::LONG)),
            "{text}"
        );
    }
}
