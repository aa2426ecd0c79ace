//! The spool itself: appending entries to the newest segment (rolling to a new one when it is
//! full), handing entries to the shipper in order, and acknowledging them so that older segments
//! whose entries are all acknowledged are deleted.

use super::cursor::{Cursor, Entry};
use super::error::{SpoolError, durable, io_at};
use super::format::{
    ACKED_FILE, ACKED_MAGIC, ENTRY_HEADER_LEN, EntryHeader, HEADER_LEN, LOCK_FILE, MAX_PAYLOAD_LEN,
    SEGMENT_MAGIC, encode_header, segment_name, stored_len,
};
use super::recover::{Recovery, recover};
use super::segment::Segment;
use outpost_durable::{create_dir_durably, replace, sync_dir};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Write buffer of an append.
const WRITE_BUFFER: usize = 64 * 1024;

/// Sizes that bound the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolOptions {
    /// A segment is closed and a new one started when the next entry would take it past this
    /// many bytes (a segment holding a single entry may be larger). Default 8 MiB.
    pub segment_bytes: u64,
    /// The most bytes the spool's segment files may take on disk. An append that would pass it
    /// fails with [`SpoolError::Full`]. Default 256 MiB.
    pub max_bytes: u64,
}

/// Default [`SpoolOptions::segment_bytes`]: 8 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// Default [`SpoolOptions::max_bytes`]: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

impl Default for SpoolOptions {
    fn default() -> Self {
        Self {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// Whether an entry of `add` bytes starts a new segment after one of `len` bytes holding
/// `entries` entries. A segment always takes at least one entry, however large.
fn rolls(len: u64, entries: u64, add: u64, segment_bytes: u64) -> bool {
    entries > 0 && len.saturating_add(add) > segment_bytes
}

/// How an append will go, decided before anything is written.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Start a new segment first, freeing a newest segment that holds only acknowledged
    /// entries.
    roll_first: bool,
}

/// A durable FIFO queue of byte payloads in a directory: see the [module docs](super).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    options: SpoolOptions,
    /// Oldest first. Each holds at least one unacknowledged entry, except the newest, which is
    /// kept for appends even when everything in it is acknowledged.
    segments: VecDeque<Segment>,
    acked: u64,
    next_id: u64,
    /// Append handle of the newest segment, opened on first use.
    tail: Option<File>,
    /// False once a failed write to the newest segment could not be undone: the next append
    /// starts a new segment.
    tail_writable: bool,
    cursor: Option<Cursor>,
    /// Held for the spool's lifetime; the OS releases the lock when it is closed.
    _lock: File,
}

impl Spool {
    /// Open the spool in `dir` (conventionally `STATE_DIR/spool`), creating it if needed, and
    /// recover it: see the [module docs](super) for what is repaired. Only I/O errors and
    /// another process holding the spool make this fail, never the spool's contents.
    pub fn open(dir: &Path, options: SpoolOptions) -> Result<(Self, Recovery), SpoolError> {
        create_dir_durably(dir).map_err(durable)?;
        let lock = lock(&dir.join(LOCK_FILE))?;
        let recovered = recover(dir)?;
        let spool = Self {
            dir: dir.to_path_buf(),
            options,
            segments: recovered.segments,
            acked: recovered.acked,
            next_id: recovered.next_id,
            tail: None,
            tail_writable: true,
            cursor: None,
            _lock: lock,
        };
        Ok((spool, recovered.report))
    }

    /// Store one payload and return its id. The entry is on disk (`fdatasync`ed) when this
    /// returns `Ok`. Fails with [`SpoolError::Full`] or [`SpoolError::TooLarge`] without
    /// writing anything.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, SpoolError> {
        self.append_many(&[payload]).map(|ids| ids.start)
    }

    /// Store several payloads with one `fdatasync` per segment written (group commit) and
    /// return their ids, consecutive. Either all fit or none is written
    /// ([`SpoolError::Full`], [`SpoolError::TooLarge`]). On an I/O error the payloads already
    /// synced into earlier segments stay stored (and will be delivered): retrying stores those
    /// twice, which at-least-once delivery allows.
    pub fn append_many<P: AsRef<[u8]>>(
        &mut self,
        payloads: &[P],
    ) -> Result<Range<u64>, SpoolError> {
        let plan = self.plan(payloads.iter().map(|p| p.as_ref().len()))?;
        let start = self.next_id;
        if start.checked_add(payloads.len() as u64).is_none() {
            return Err(SpoolError::IdsExhausted);
        }
        if plan.roll_first {
            self.start_segment()?;
        }
        let mut rest = payloads;
        while !rest.is_empty() {
            let first_add = stored_len(rest[0].as_ref().len());
            let starts_segment = match self.writable_tail() {
                Some(s) => rolls(s.len, s.entries(), first_add, self.options.segment_bytes),
                None => true,
            };
            if starts_segment {
                self.start_segment()?;
            }
            let (mut len, mut entries) = match self.segments.back() {
                Some(s) => (s.len, s.entries()),
                None => (0, 0),
            };
            let mut count = 0;
            for p in rest {
                let add = stored_len(p.as_ref().len());
                if count > 0 && rolls(len, entries, add, self.options.segment_bytes) {
                    break;
                }
                len += add;
                entries += 1;
                count += 1;
            }
            let (run, later) = rest.split_at(count);
            self.write_run(run, len)?;
            rest = later;
        }
        Ok(start..self.next_id)
    }

    /// Whether an append of a `len`-byte payload would be accepted now.
    pub fn can_accept(&self, len: usize) -> bool {
        self.plan([len]).is_ok()
    }

    /// The entry after `after` (the oldest unacknowledged one when `after` is `None` or
    /// acknowledged), or `None` when there is none yet. Entries come in id order; a shipper
    /// passes the id it last received so that each entry is handed out once per run, and
    /// `None` after a restart to start again from the oldest unacknowledged entry.
    ///
    /// Reads one entry through a buffered reader that stays open on the segment between calls;
    /// a segment is never loaded whole.
    pub fn next_unacked(&mut self, after: Option<u64>) -> Result<Option<Entry>, SpoolError> {
        let want = after
            .map_or(0, |a| a.saturating_add(1))
            .max(self.acked.saturating_add(1));
        let Some(segment) = self
            .segments
            .iter()
            .find(|s| s.next_id > want && s.entries() > 0)
        else {
            return Ok(None);
        };
        let target = want.max(segment.first_id);
        let reusable = self
            .cursor
            .as_ref()
            .is_some_and(|c| c.segment() == segment.first_id && c.position() <= target);
        let mut cursor = match self.cursor.take() {
            Some(c) if reusable => c,
            _ => Cursor::open(&segment.path, segment.first_id)?,
        };
        let entry = cursor.read(target)?;
        self.cursor = Some(cursor);
        Ok(Some(entry))
    }

    /// Acknowledge entry `id`, which must be the oldest unacknowledged one (acknowledging an
    /// already acknowledged id does nothing). The watermark is persisted (atomically) before
    /// this returns, then every older segment whose entries are all acknowledged is deleted.
    /// The newest segment is kept for appends even then.
    pub fn ack(&mut self, id: u64) -> Result<(), SpoolError> {
        if id > self.acked {
            match self.oldest_unacked() {
                Some(oldest) if oldest == id => {}
                oldest => {
                    return Err(SpoolError::OutOfOrderAck {
                        id,
                        expected: oldest.unwrap_or(self.next_id),
                    });
                }
            }
            let path = self.dir.join(ACKED_FILE);
            replace(&path, &encode_header(ACKED_MAGIC, id)).map_err(durable)?;
            self.acked = id;
        }
        self.remove_acknowledged()
    }

    /// Acknowledge every entry up to and including `id` at once (one write of the watermark):
    /// what a shipper that delivered a group of entries calls. `id` must have been appended;
    /// acknowledging an already acknowledged id does nothing.
    pub fn ack_through(&mut self, id: u64) -> Result<(), SpoolError> {
        if id > self.acked {
            if id >= self.next_id {
                return Err(SpoolError::OutOfOrderAck {
                    id,
                    expected: self.oldest_unacked().unwrap_or(self.next_id),
                });
            }
            let path = self.dir.join(ACKED_FILE);
            replace(&path, &encode_header(ACKED_MAGIC, id)).map_err(durable)?;
            self.acked = id;
        }
        self.remove_acknowledged()
    }

    /// Bytes of segment files on disk, including the newest segment when all its entries are
    /// acknowledged (it is kept to append to, and freed when an append needs its room). Never
    /// more than `max_bytes` through appends (a spool reopened with a smaller `max_bytes` may
    /// start above it).
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Entries appended and not yet acknowledged.
    pub fn pending(&self) -> u64 {
        let first_unacked = self.acked.saturating_add(1);
        self.segments
            .iter()
            .map(|s| s.next_id - first_unacked.max(s.first_id).min(s.next_id))
            .sum()
    }

    /// The acknowledged watermark: every entry up to it is acknowledged.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The id of the oldest unacknowledged entry: the one the next `ack` must name.
    pub fn oldest_unacked(&self) -> Option<u64> {
        let first_unacked = self.acked.saturating_add(1);
        self.segments.iter().find_map(|s| {
            let id = first_unacked.max(s.first_id);
            (id < s.next_id).then_some(id)
        })
    }

    /// The id the next appended entry gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// The longest payload this spool can ever store (the frame limit, or less when
    /// `max_bytes` is smaller).
    pub fn max_payload_len(&self) -> usize {
        let room = self
            .options
            .max_bytes
            .saturating_sub(HEADER_LEN + ENTRY_HEADER_LEN);
        usize::try_from(room).map_or(MAX_PAYLOAD_LEN, |r| r.min(MAX_PAYLOAD_LEN))
    }

    /// The spool's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The newest segment, if appends may go to it: nothing failed there, and the next id
    /// follows its last (after recovery skipped ids past a damaged segment, it does not).
    fn writable_tail(&self) -> Option<&Segment> {
        self.segments
            .back()
            .filter(|s| self.tail_writable && s.next_id == self.next_id)
    }

    /// How payloads of `lens` would be stored, or why they cannot be.
    ///
    /// They go to the newest segment while it has room. When that would pass `max_bytes` and
    /// the newest segment holds nothing unacknowledged, they start a new segment instead, and
    /// the old one's bytes are freed.
    fn plan(&self, lens: impl IntoIterator<Item = usize>) -> Result<Plan, SpoolError> {
        let max = self.max_payload_len();
        let lens: Vec<usize> = lens.into_iter().collect();
        if let Some(&len) = lens.iter().find(|l| **l > max) {
            return Err(SpoolError::TooLarge { len, max });
        }
        let tail = self.writable_tail();
        let available = self.options.max_bytes.saturating_sub(self.bytes());
        let needed = self.bytes_needed(&lens, tail.map(|s| (s.len, s.entries())));
        if needed <= available {
            return Ok(Plan { roll_first: false });
        }
        if let Some(drained) = tail.filter(|s| self.is_acknowledged(s)) {
            let needed = self.bytes_needed(&lens, None);
            let available = available + drained.len;
            if needed > available {
                return Err(SpoolError::Full { needed, available });
            }
            return Ok(Plan { roll_first: true });
        }
        Err(SpoolError::Full { needed, available })
    }

    /// Bytes that entries of `lens` add after a newest segment of `tail` (bytes, entries), or
    /// with a new segment first when `tail` is `None`.
    fn bytes_needed(&self, lens: &[usize], mut tail: Option<(u64, u64)>) -> u64 {
        let mut needed = 0u64;
        for &len in lens {
            let add = stored_len(len);
            tail = match tail {
                Some((l, n)) if !rolls(l, n, add, self.options.segment_bytes) => {
                    Some((l + add, n + 1))
                }
                _ => {
                    needed += HEADER_LEN;
                    Some((HEADER_LEN + add, 1))
                }
            };
            needed += add;
        }
        needed
    }

    /// Whether every entry of `segment` is acknowledged.
    fn is_acknowledged(&self, segment: &Segment) -> bool {
        segment.next_id <= self.acked.saturating_add(1)
    }

    /// Create a segment for the next id (durably: temp file, sync, rename, directory sync).
    fn start_segment(&mut self) -> Result<(), SpoolError> {
        self.tail = None;
        if let Some(back) = self.segments.back() {
            // An empty newest segment for the same id has the same name: the rename below
            // replaces it. One whose entries are all acknowledged goes; the directory sync
            // below makes that durable too.
            let same_name = back.entries() == 0 && back.first_id == self.next_id;
            let acknowledged = self.is_acknowledged(back);
            if same_name || acknowledged {
                if !same_name {
                    match fs::remove_file(&back.path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_at(&back.path)(e)),
                    }
                }
                if self
                    .cursor
                    .as_ref()
                    .is_some_and(|c| c.segment() == back.first_id)
                {
                    self.cursor = None;
                }
                self.segments.pop_back();
            }
        }
        let first_id = self.next_id;
        let path = self.dir.join(segment_name(first_id));
        replace(&path, &encode_header(SEGMENT_MAGIC, first_id)).map_err(durable)?;
        self.segments.push_back(Segment {
            first_id,
            next_id: first_id,
            len: HEADER_LEN,
            path,
        });
        self.tail_writable = true;
        Ok(())
    }

    /// Write `run` to the newest segment (which then is `new_len` bytes), sync once, and
    /// commit. On failure, cut what was written and stop appending to this segment.
    fn write_run<P: AsRef<[u8]>>(&mut self, run: &[P], new_len: u64) -> Result<(), SpoolError> {
        let Some(segment) = self.segments.back_mut() else {
            return Err(SpoolError::Io {
                path: self.dir.clone(),
                source: io::Error::other("no segment to append to"),
            });
        };
        let file = match self.tail.take() {
            Some(f) => f,
            None => OpenOptions::new()
                .append(true)
                .open(&segment.path)
                .map_err(io_at(&segment.path))?,
        };
        let first_id = segment.next_id;
        let written = (|| -> io::Result<()> {
            let mut w = BufWriter::with_capacity(WRITE_BUFFER, &file);
            for (id, p) in (first_id..).zip(run) {
                let p = p.as_ref();
                w.write_all(&EntryHeader::for_payload(id, p).encode())?;
                w.write_all(p)?;
            }
            w.flush()?;
            drop(w);
            file.sync_data()
        })();
        if let Err(source) = written {
            // Cut the partial write so no garbage sits between entries. A later sync of a file
            // whose sync failed proves nothing, so the next append starts a new segment.
            let cut = file.set_len(segment.len).and_then(|()| file.sync_data());
            if let Err(error) = cut {
                tracing::error!(%error, path = %segment.path.display(),
                    "cannot cut a failed spool write; the next start sets the segment aside");
            }
            self.tail_writable = false;
            if self
                .cursor
                .as_ref()
                .is_some_and(|c| c.segment() == segment.first_id)
            {
                self.cursor = None;
            }
            return Err(SpoolError::Io {
                path: segment.path.clone(),
                source,
            });
        }
        segment.len = new_len;
        segment.next_id = first_id + run.len() as u64;
        self.next_id = segment.next_id;
        self.tail = Some(file);
        Ok(())
    }

    /// Delete, oldest first, the segments whose entries are all acknowledged.
    fn remove_acknowledged(&mut self) -> Result<(), SpoolError> {
        let mut removed = false;
        let mut result = Ok(());
        // The newest segment stays while appends may go to it: deleting it would make the next
        // append create a segment, three syncs instead of one.
        let keep_tail = self.writable_tail().is_some();
        while let Some(front) = self.segments.front()
            && self.is_acknowledged(front)
            && (self.segments.len() > 1 || !keep_tail)
        {
            match fs::remove_file(&front.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    result = Err(io_at(&front.path)(e));
                    break;
                }
            }
            if self
                .cursor
                .as_ref()
                .is_some_and(|c| c.segment() == front.first_id)
            {
                self.cursor = None;
            }
            if self.segments.len() == 1 {
                self.tail = None;
                self.tail_writable = true;
            }
            self.segments.pop_front();
            removed = true;
        }
        if removed {
            sync_dir(&self.dir).map_err(durable)?;
        }
        result
    }
}

/// Take the spool's lock, so two processes never write one spool.
fn lock(path: &Path) -> Result<File, SpoolError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_at(path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(SpoolError::Locked {
            path: path.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
            tracing::warn!(path = %path.display(), "file locks are not supported here; the spool is not protected against a second agent");
            Ok(file)
        }
        Err(TryLockError::Error(e)) => Err(io_at(path)(e)),
    }
}
