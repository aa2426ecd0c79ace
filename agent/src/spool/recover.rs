//! Opening a spool directory after a clean stop or a crash: remove stray temp files, read the
//! acknowledged watermark, scan every segment, cut torn tails, set corrupt segments aside, and
//! report what was done.

use super::error::{SpoolError, durable, io_at};
use super::format::{
    ACKED_FILE, ACKED_MAGIC, CORRUPT_SUFFIX, Defect, ENTRY_HEADER_LEN, HEADER_LEN, decode_header,
    parse_segment_name,
};
use super::scan::{End, Scan, scan};
use super::segment::Segment;
use outpost_durable::sync_dir;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// Buffer used to scan a segment.
const SCAN_BUFFER: usize = 64 * 1024;

/// What the `acked` file held when the spool was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AckedFile {
    /// A valid watermark.
    Found(u64),
    /// No file: a new spool, or one whose file was lost. Every entry on disk is delivered.
    #[default]
    Missing,
    /// A file that did not decode; it is treated as 0, so every entry on disk is delivered
    /// again (at least once, never lost).
    Corrupt(Defect),
}

/// A segment moved out of the way because it was damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// Where the damaged bytes are now (the segment's name plus `.corrupt`).
    pub path: PathBuf,
    /// What was wrong.
    pub defect: Defect,
    /// Offset in the segment of the first byte not delivered.
    pub at: u64,
    /// Entries before the damage that stay in the spool and are delivered (the segment was
    /// copied aside and cut at the damage); 0 when the whole segment was moved aside.
    pub entries_kept: u64,
}

/// What [`Spool::open`](super::Spool::open) found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// Unacknowledged entries in the spool after recovery, ready for delivery.
    pub entries_recovered: u64,
    /// Segment files in the spool after recovery.
    pub segments: usize,
    /// The acknowledged watermark in effect (0 when the file was missing or corrupt).
    pub acked: u64,
    /// What the `acked` file held.
    pub acked_file: AckedFile,
    /// Segments whose torn tail (an append interrupted by a crash) was cut off.
    pub tails_truncated: u64,
    /// Bytes cut off torn tails.
    pub bytes_truncated: u64,
    /// Segments set aside as `*.corrupt`.
    pub set_aside: Vec<SetAside>,
    /// Segment files deleted because every entry in them was acknowledged, or they held none.
    pub segments_removed: u64,
    /// Stray temporary files (`.*.tmp`) deleted.
    pub temp_files_removed: u64,
    /// The id the next appended entry gets.
    pub next_id: u64,
}

/// The state recovery hands to the spool.
#[derive(Debug)]
pub(super) struct Recovered {
    pub segments: VecDeque<Segment>,
    pub acked: u64,
    pub next_id: u64,
    pub report: Recovery,
}

/// Recover the spool in `dir` (which exists and is locked by the caller).
pub(super) fn recover(dir: &Path) -> Result<Recovered, SpoolError> {
    let mut report = Recovery::default();
    let mut changed = false;

    let candidates = segment_files(dir, &mut report)?;
    changed |= report.temp_files_removed > 0;

    let (acked, acked_file) = read_acked(&dir.join(ACKED_FILE))?;
    report.acked = acked;
    report.acked_file = acked_file;

    let mut segments = VecDeque::new();
    // The next id must pass every id that may ever have been used.
    let mut floor = acked.saturating_add(1);
    // One past the last id of the previous valid segment.
    let mut previous_next = 0u64;
    let last = candidates.len().saturating_sub(1);
    for (index, (name_id, path)) in candidates.into_iter().enumerate() {
        let file = File::open(&path).map_err(io_at(&path))?;
        let file_len = file.metadata().map_err(io_at(&path))?.len();
        let s =
            scan(BufReader::with_capacity(SCAN_BUFFER, &file), file_len).map_err(io_at(&path))?;
        drop(file);
        // A set-aside file of `file_len` bytes holds fewer than `file_len / 16` entries.
        let set_aside_floor = name_id.saturating_add(file_len / ENTRY_HEADER_LEN);

        let first_id = match first_id(&s, name_id, previous_next) {
            Ok(id) => id,
            Err(defect) => {
                let dest = set_aside_whole(&path)?;
                tracing::error!(path = %path.display(), set_aside = %dest.display(), %defect,
                    "spool segment is unreadable; moved aside, its entries are not delivered");
                report.set_aside.push(SetAside {
                    path: dest,
                    defect,
                    at: 0,
                    entries_kept: 0,
                });
                floor = floor.max(set_aside_floor);
                changed = true;
                continue;
            }
        };

        let (good_len, entries) = (s.good_len, s.entries);
        match repair_end(&path, &s, index == last, file_len, &mut report)? {
            Repair::Nothing => {}
            Repair::Truncated => changed = true,
            Repair::SetAside { kept } => {
                floor = floor.max(set_aside_floor);
                changed = true;
                if kept == 0 {
                    continue;
                }
            }
        }

        let next_id = first_id.saturating_add(entries);
        previous_next = next_id;
        floor = floor.max(next_id);
        if entries == 0 || next_id <= acked.saturating_add(1) {
            // Empty, or every entry acknowledged (a crash between persisting the watermark and
            // deleting the segment).
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&path)(e)),
            }
            report.segments_removed += 1;
            changed = true;
            continue;
        }
        segments.push_back(Segment {
            first_id,
            next_id,
            len: good_len,
            path,
        });
    }

    if changed {
        sync_dir(dir).map_err(durable)?;
    }
    report.segments = segments.len();
    report.entries_recovered = segments
        .iter()
        .map(|s| s.next_id - s.first_id.max(acked.saturating_add(1)).min(s.next_id))
        .sum();
    report.next_id = floor;
    Ok(Recovered {
        segments,
        acked,
        next_id: floor,
        report,
    })
}

/// The segment files in `dir`, in id order; stray temporary files are removed (and counted in
/// `report`).
fn segment_files(dir: &Path, report: &mut Recovery) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
    let mut candidates = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let is_file = entry.file_type().map_err(io_at(&path))?.is_file();
        if !is_file {
            continue;
        }
        if name.starts_with('.') && name.ends_with(".tmp") {
            tracing::debug!(path = %path.display(), "removing a stray temporary file");
            fs::remove_file(&path).map_err(io_at(&path))?;
            report.temp_files_removed += 1;
        } else if let Some(id) = parse_segment_name(&name) {
            candidates.push((id, path));
        }
    }
    candidates.sort_unstable_by_key(|(id, _)| *id);
    Ok(candidates)
}

/// The first id of a scanned segment named `name_id`, or why the whole segment is unusable (its
/// header, or ids that do not follow the previous segment's, ending at `previous_next`).
fn first_id(s: &Scan, name_id: u64, previous_next: u64) -> Result<u64, Defect> {
    match s.first_id {
        Some(first) if first != name_id => Err(Defect::NameMismatch {
            header: first,
            name: name_id,
        }),
        Some(first) if first < previous_next => Err(Defect::Overlap {
            first,
            previous: previous_next - 1,
        }),
        Some(first) => Ok(first),
        None => match s.end {
            End::Corrupt { defect, .. } | End::Torn { defect, .. } => Err(defect),
            End::Clean => Err(Defect::ShortHeader),
        },
    }
}

/// What was done about the end of a segment.
enum Repair {
    /// It ended clean.
    Nothing,
    /// The newest segment's torn tail was cut.
    Truncated,
    /// It was damaged: set aside, `kept` entries before the damage copied back.
    SetAside { kept: u64 },
}

/// Repair how a scanned segment ends: cut a torn tail of the `newest` segment, set aside one
/// damaged elsewhere (keeping the entries before the damage). Counted in `report`.
fn repair_end(
    path: &Path,
    s: &Scan,
    newest: bool,
    file_len: u64,
    report: &mut Recovery,
) -> Result<Repair, SpoolError> {
    match s.end {
        End::Clean => Ok(Repair::Nothing),
        End::Torn { at, defect } if newest => {
            tracing::warn!(path = %path.display(), offset = at, bytes = file_len - at, %defect,
                "cutting the torn tail of the newest spool segment");
            truncate(path, s.good_len)?;
            report.tails_truncated += 1;
            report.bytes_truncated += file_len - at;
            Ok(Repair::Truncated)
        }
        End::Torn { at, defect } | End::Corrupt { at, defect } => {
            let (dest, kept) = set_aside_copy(path, s.good_len, s.entries)?;
            tracing::error!(path = %path.display(), set_aside = %dest.display(), offset = at,
                entries_kept = kept, %defect,
                "spool segment is damaged; set aside, entries before the damage are kept");
            report.set_aside.push(SetAside {
                path: dest,
                defect,
                at,
                entries_kept: kept,
            });
            Ok(Repair::SetAside { kept })
        }
    }
}

/// Read the watermark; a missing or undecodable file counts as 0.
fn read_acked(path: &Path) -> Result<(u64, AckedFile), SpoolError> {
    let mut bytes = Vec::with_capacity(HEADER_LEN as usize);
    match File::open(path) {
        Ok(f) => {
            f.take(HEADER_LEN)
                .read_to_end(&mut bytes)
                .map_err(io_at(path))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, AckedFile::Missing)),
        Err(e) => return Err(io_at(path)(e)),
    }
    match decode_header(&bytes, ACKED_MAGIC) {
        Ok(acked) => Ok((acked, AckedFile::Found(acked))),
        Err(defect) => {
            tracing::warn!(path = %path.display(), %defect,
                "spool acked file is corrupt; treating it as 0 so every entry on disk is delivered again");
            Ok((0, AckedFile::Corrupt(defect)))
        }
    }
}

/// A name beside `path` for its damaged copy that is not taken yet: `X.corrupt`, then
/// `X.corrupt.1`, `X.corrupt.2`, ...
fn corrupt_name(path: &Path) -> PathBuf {
    let base = format!("{}{CORRUPT_SUFFIX}", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 1u32;
    while candidate.symlink_metadata().is_ok() && n < 10_000 {
        candidate = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    candidate
}

/// Move the whole segment aside.
fn set_aside_whole(path: &Path) -> Result<PathBuf, SpoolError> {
    let dest = corrupt_name(path);
    fs::rename(path, &dest).map_err(io_at(path))?;
    Ok(dest)
}

/// Keep the `good_len` bytes before the damage in place and copy the whole file aside first, so
/// a crash at any point leaves either the original segment or both files. When the copy cannot
/// be made (a full disk), the whole segment is moved aside instead. Returns the copy's path and
/// the entries kept.
fn set_aside_copy(path: &Path, good_len: u64, entries: u64) -> Result<(PathBuf, u64), SpoolError> {
    if entries == 0 {
        return Ok((set_aside_whole(path)?, 0));
    }
    let dest = corrupt_name(path);
    let copied = fs::copy(path, &dest).and_then(|_| File::open(&dest)?.sync_all());
    if let Err(error) = copied {
        tracing::warn!(%error, path = %dest.display(),
            "cannot copy a damaged spool segment aside; moving it aside whole");
        let _ = fs::remove_file(&dest);
        return Ok((set_aside_whole(path)?, 0));
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir).map_err(durable)?;
    }
    truncate(path, good_len)?;
    Ok((dest, entries))
}

/// Cut `path` to `len` bytes, durably.
fn truncate(path: &Path, len: u64) -> Result<(), SpoolError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_at(path))?;
    f.set_len(len).map_err(io_at(path))?;
    f.sync_all().map_err(io_at(path))
}
