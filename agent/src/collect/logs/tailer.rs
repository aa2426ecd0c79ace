//! Following log files: discovery by glob, reading new bytes, rotation, truncation, restart.
//!
//! A file is identified by device, inode and a fingerprint of its first bytes
//! ([`crate::state::position`]). Rules:
//! - Rotation by rename: the renamed file keeps being read to its end under its original name,
//!   then stays open for `rotate_wait` after its last new byte (for writers that have not
//!   reopened yet) and is closed; the new file at the path is read from its beginning.
//! - copytruncate: a file that got smaller is read again from offset 0 (see docs/tailing.md for
//!   the race copytruncate itself has).
//! - A deleted file is read to its end and closed at once: no descriptor held, no space pinned.
//! - Restart: a file resumes at its checkpoint when its identity matches; a file rotated while
//!   the agent was down is found among its siblings (`app.log.1`, never `app.log.1.gz`) and read
//!   to its end first. Files without a checkpoint start at their beginning, except on the very
//!   first start, where each input's `read_from` decides.
//!
//! Every chunk of records handed out carries the [`Position`] just past its last record, which
//! the caller persists once the records are durably spooled. The tailer is synchronous and does
//! no waiting: the caller polls it and supplies the clock.

use super::level;
use super::lines::{Line, LineSplitter};
use super::multiline::{Joined, Multiline};
use super::rotated::find_rotated;
use crate::config::{LogInput, ReadFrom};
use crate::state::checkpoint::Checkpoint;
use crate::state::position::{FileIdentity, Position, read_identity};
use outpost_proto::Level;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes read from one file per poll, so one busy file cannot starve the others.
pub const READ_BUDGET: usize = 4 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
/// Records are handed out in chunks of about this many bytes read (or what one poll read): a
/// chunk costs a wake-up of the batcher, and a live file is read a few times a second.
const EMIT_BYTES: usize = 256 * 1024;

/// Counters of what the tailer did, for logs and the agent's own metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TailStats {
    /// Records emitted (a joined multiline record counts once).
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Records cut to `max_line_bytes`.
    pub truncated: u64,
    /// Records that are not valid UTF-8 (kept as bytes).
    pub invalid_utf8: u64,
    /// Files opened.
    pub opened: u64,
    /// Files closed (deleted or rotated away).
    pub closed: u64,
    /// Times a file shrank and was read again from the start.
    pub truncations: u64,
    /// Files resumed at a checkpoint.
    pub resumed: u64,
    /// Rotated files found on start by their identity.
    pub rotated_found: u64,
}

/// The caller's receiver said stop (the agent is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

/// Records read from one file, and the position just past the last one.
#[derive(Debug, Clone, PartialEq)]
pub struct TailChunk {
    /// The file's path, as the records' `source`.
    pub source: Arc<str>,
    /// The input's service name.
    pub service: Arc<str>,
    /// The records, in file order (possibly none: a position-only update after a truncation).
    pub lines: Vec<TailLine>,
    /// Where the file has been read up to (`offset` is the last line's `end`).
    pub position: Position,
    /// How many of `lines` are error lines (the input's `error_pattern`, or their level).
    pub errors: u32,
}

/// One record (a line, or a joined multiline record) of a [`TailChunk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailLine {
    /// When it was read, unix milliseconds.
    pub ts_ms: i64,
    /// Its bytes, without the line terminator.
    pub bytes: Vec<u8>,
    /// Its detected level.
    pub level: Option<Level>,
    /// The file offset just past it: a consumer that keeps only some of a chunk's records (a
    /// batch closing mid-chunk) knows exactly how far those cover.
    pub end: u64,
}

/// Receives chunks; `Err(Stopped)` ends the poll.
pub type Emit<'a> = dyn FnMut(TailChunk) -> Result<(), Stopped> + 'a;

struct Tracked {
    identity: FileIdentity,
    source: PathBuf,
    input: usize,
    file: File,
    /// Bytes of the file consumed by the splitter.
    read_offset: u64,
    /// Just past the last record handed out.
    emitted_offset: u64,
    splitter: LineSplitter,
    multiline: Option<Multiline>,
    moved_at: Option<Instant>,
    /// The last read stopped at the read budget: data was left waiting.
    behind: bool,
    /// Found rotated at start: nobody writes it any more, close at its end.
    rotated: bool,
    reset_pending: bool,
}

/// How the tailer is set up.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// How long a renamed file stays open after its last new byte.
    pub rotate_wait: Duration,
    /// No checkpoint file existed: apply each input's `read_from` to files present now.
    pub first_start: bool,
}

/// Follows the files of all log inputs.
pub struct Tailer {
    inputs: Vec<LogInput>,
    options: TailOptions,
    resume: Vec<Checkpoint>,
    files: Vec<Tracked>,
    started: bool,
    stats: TailStats,
    buf: Vec<u8>,
    /// The last poll stopped reading some file at its read budget, not at its end.
    behind: bool,
}

impl Tailer {
    /// A tailer over `inputs`, resuming from `resume` (the persisted checkpoints).
    pub fn new(inputs: Vec<LogInput>, resume: Vec<Checkpoint>, options: TailOptions) -> Self {
        Self {
            inputs,
            options,
            resume,
            files: Vec::new(),
            started: false,
            stats: TailStats::default(),
            buf: Vec::new(),
            behind: false,
        }
    }

    /// What the tailer has done so far.
    pub fn stats(&self) -> TailStats {
        self.stats
    }

    /// Number of files open now.
    pub fn open_files(&self) -> usize {
        self.files.len()
    }

    /// The positions of every open file (for `status` and touching checkpoints).
    pub fn positions(&self) -> Vec<Position> {
        self.files.iter().map(position).collect()
    }

    /// Replace the inputs (config reload). Files of removed inputs are closed; their positions
    /// stay in the checkpoints, so re-adding an input resumes where it was.
    pub fn set_inputs(&mut self, inputs: Vec<LogInput>) {
        let old = std::mem::replace(&mut self.inputs, inputs);
        let mut kept = Vec::new();
        for mut t in std::mem::take(&mut self.files) {
            let service = &old[t.input].service;
            let patterns = &old[t.input].patterns;
            match self
                .inputs
                .iter()
                .position(|i| &i.service == service && &i.patterns == patterns)
            {
                Some(idx) => {
                    t.input = idx;
                    kept.push(t);
                }
                None => {
                    tracing::info!(path = %t.source.display(), "input removed; closing file");
                    self.stats.closed += 1;
                }
            }
        }
        self.files = kept;
    }

    /// The earliest time a multiline record must be flushed, if any is open.
    pub fn deadline(&self) -> Option<Instant> {
        self.files
            .iter()
            .filter_map(|t| t.multiline.as_ref().and_then(Multiline::deadline))
            .min()
    }

    /// Whether the last poll left data unread in some file (it stopped at [`READ_BUDGET`]): the
    /// caller should poll again at once rather than wait for a change, since a file being
    /// caught up on produces no events.
    pub fn is_behind(&self) -> bool {
        self.behind
    }

    /// Discover new files, read new data from all, close files that are gone.
    pub fn poll(&mut self, now: Instant, now_ms: i64, emit: &mut Emit<'_>) -> Result<(), Stopped> {
        if !self.started {
            self.recover_rotated();
        }
        self.discover();
        self.behind = false;
        let mut i = 0;
        while i < self.files.len() {
            if self.service(i, now, now_ms, emit)? {
                i += 1;
            } else {
                self.files.remove(i);
                self.stats.closed += 1;
            }
        }
        Ok(())
    }

    /// Hand out every record still held (partial lines, open multiline records): shutdown.
    pub fn flush(&mut self, now_ms: i64, emit: &mut Emit<'_>) -> Result<(), Stopped> {
        for i in 0..self.files.len() {
            self.flush_file(i, now_ms, emit)?;
        }
        Ok(())
    }

    /// Files rotated while the agent was down: their checkpoint's path now holds another file
    /// (or none), and a sibling holds theirs. Read those first, from the checkpoint.
    fn recover_rotated(&mut self) {
        let resume = std::mem::take(&mut self.resume);
        for cp in &resume {
            let Some(input) = self.input_for(&cp.path) else {
                continue;
            };
            if cp.identity.fingerprint.is_none() {
                // Recorded while the file was empty (a truncation): no bytes to tell it from
                // another file that reused its inode, such as the copy copytruncate made of
                // the new file at the path. Read that copy from 0 and its lines come twice.
                continue;
            }
            let still_there = File::open(&cp.path)
                .and_then(|f| cp.identity.matches(&f))
                .unwrap_or(false);
            if still_there {
                continue;
            }
            let Some(rotated) = find_rotated(&cp.path, &cp.identity) else {
                continue;
            };
            match File::open(&rotated) {
                Ok(file) => {
                    tracing::info!(path = %cp.path.display(), rotated = %rotated.display(),
                        offset = cp.offset, "file was rotated while the agent was down; reading the rest of it");
                    self.stats.rotated_found += 1;
                    self.stats.opened += 1;
                    let len = file.metadata().map_or(0, |m| m.len());
                    let offset = if cp.offset <= len { cp.offset } else { 0 };
                    let mut t = self.track(cp.path.clone(), input, file, cp.identity, offset);
                    t.rotated = true;
                    self.files.push(t);
                }
                Err(error) => {
                    tracing::warn!(%error, path = %rotated.display(), "cannot open rotated file")
                }
            }
        }
        self.resume = resume;
    }

    fn input_for(&self, path: &std::path::Path) -> Option<usize> {
        let text = path.to_string_lossy();
        self.inputs.iter().position(|i| {
            i.patterns
                .iter()
                .any(|p| glob::Pattern::new(p).is_ok_and(|g| g.matches(&text)))
        })
    }

    fn track(
        &self,
        source: PathBuf,
        input: usize,
        file: File,
        identity: FileIdentity,
        offset: u64,
    ) -> Tracked {
        let inp = &self.inputs[input];
        Tracked {
            identity,
            source,
            input,
            file,
            read_offset: offset,
            emitted_offset: offset,
            splitter: LineSplitter::new(inp.max_line_bytes),
            multiline: inp.multiline.as_ref().map(|m| {
                Multiline::new(m.start_pattern.clone(), inp.max_line_bytes, m.flush_timeout)
            }),
            moved_at: None,
            behind: false,
            rotated: false,
            reset_pending: false,
        }
    }

    fn discover(&mut self) {
        for input_idx in 0..self.inputs.len() {
            for pattern in self.inputs[input_idx].patterns.clone() {
                let Ok(paths) = glob::glob(&pattern) else {
                    continue;
                };
                for path in paths.flatten() {
                    let Ok(meta) = std::fs::metadata(&path) else {
                        continue;
                    };
                    if !meta.is_file()
                        || self
                            .files
                            .iter()
                            .any(|t| t.identity.dev == meta.dev() && t.identity.ino == meta.ino())
                    {
                        continue;
                    }
                    if let Err(error) = self.open_new(path.clone(), input_idx) {
                        tracing::warn!(%error, path = %path.display(), "cannot open log file");
                    }
                }
            }
        }
        self.started = true;
    }

    fn open_new(&mut self, path: PathBuf, input: usize) -> io::Result<()> {
        let file = File::open(&path)?;
        let identity = read_identity(&file)?;
        let len = file.metadata()?.len();
        let checkpoint = self.resume.iter().find(|cp| {
            cp.identity.same_inode(&identity) && cp.identity.matches(&file).unwrap_or(false)
        });
        let offset = match checkpoint {
            Some(cp) if cp.offset <= len => {
                self.stats.resumed += 1;
                cp.offset
            }
            Some(_) => 0,
            None if !self.started
                && self.options.first_start
                && self.inputs[input].read_from == ReadFrom::End =>
            {
                len
            }
            None => 0,
        };
        tracing::info!(path = %path.display(), offset, service = %self.inputs[input].service, "following file");
        self.stats.opened += 1;
        let t = self.track(path, input, file, identity, offset);
        self.files.push(t);
        Ok(())
    }

    /// Read what is new in file `i`. Returns whether to keep it open.
    fn service(
        &mut self,
        i: usize,
        now: Instant,
        now_ms: i64,
        emit: &mut Emit<'_>,
    ) -> Result<bool, Stopped> {
        let meta = match self.files[i].file.metadata() {
            Ok(m) => m,
            Err(error) => {
                tracing::warn!(%error, path = %self.files[i].source.display(), "cannot stat open log file; closing it");
                return Ok(false);
            }
        };
        let t = &self.files[i];
        let len = meta.len();
        // A file that shrank, or whose first bytes changed: truncated (copytruncate) and written
        // again, perhaps already back to or past our old position. The fingerprint is checked at
        // every poll, not only when the size changed: the new content can have the old length.
        let truncated = len < t.read_offset
            || (t.read_offset > 0 && !t.identity.matches(&t.file).unwrap_or(true));
        if truncated {
            tracing::info!(path = %self.files[i].source.display(), "file was truncated; reading it again from the start");
            self.stats.truncations += 1;
            self.flush_file(i, now_ms, emit)?;
            let t = &mut self.files[i];
            t.read_offset = 0;
            t.emitted_offset = 0;
            t.reset_pending = true;
            if let Ok(id) = read_identity(&t.file) {
                t.identity = id;
            }
        }
        if self.files[i].behind
            && let Some(m) = self.files[i].multiline.as_mut()
        {
            // The open record's next lines were already in the file while we were held back:
            // it has not timed out.
            m.touch(now);
        }
        let read = self.read_new(i, now, now_ms, emit)?;
        self.files[i].behind = !read.at_eof;
        // The truncation check compares the fingerprint with the file: it must cover the bytes
        // read, not only those handed out. One taken while the file was empty, followed by a
        // partial line only, would match any new content after a copytruncate.
        let t = &mut self.files[i];
        if !t.identity.covers(t.read_offset)
            && let Ok(id) = read_identity(&t.file)
            && id.same_inode(&t.identity)
        {
            t.identity = id;
        }
        // Multiline records that timed out (only at the end of what is written). The open
        // record is also complete when the file itself has not been written to for
        // `flush_timeout` (a file read from behind, or quiet since before the agent started):
        // no continuation line is coming, so it need not wait for the timer.
        if read.at_eof {
            let t = &mut self.files[i];
            let timed_out = t.multiline.as_mut().and_then(|m| {
                let open = m.deadline().is_some();
                let quiet = open && unwritten_for(&t.file, now_ms) >= Some(m.flush_timeout());
                if quiet { m.flush() } else { m.poll(now) }
            });
            if let Some(j) = timed_out {
                self.emit_joined(i, vec![j], now_ms, emit)?;
            }
        }
        if self.files[i].reset_pending {
            // Nothing was read after the truncation yet: still record the reset.
            let position = self.position_of(i);
            let (source, service) = self.names(i);
            emit(TailChunk {
                source,
                service,
                lines: Vec::new(),
                position,
                errors: 0,
            })?;
            self.files[i].reset_pending = false;
        }
        if !read.at_eof {
            self.behind = true;
            return Ok(true);
        }
        let t = &mut self.files[i];
        if meta.nlink() == 0 || t.rotated {
            // Deleted, or rotated before we started: nothing more will be written that anyone
            // could read. Close now.
            self.flush_file(i, now_ms, emit)?;
            return Ok(false);
        }
        let moved = std::fs::metadata(&t.source).map_or(true, |m| {
            m.dev() != t.identity.dev || m.ino() != t.identity.ino
        });
        if moved {
            let since = *t.moved_at.get_or_insert(now);
            if read.bytes > 0 {
                t.moved_at = Some(now);
            } else if now.duration_since(since) >= self.options.rotate_wait {
                self.flush_file(i, now_ms, emit)?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn flush_file(&mut self, i: usize, now_ms: i64, emit: &mut Emit<'_>) -> Result<(), Stopped> {
        let t = &mut self.files[i];
        let mut joined = Vec::new();
        let partial_end = t.read_offset;
        if let Some(line) = t.splitter.flush() {
            match t.multiline.as_mut() {
                Some(m) => m.push(line, partial_end, Instant::now(), &mut joined),
                None => joined.push(single(line, partial_end)),
            }
        }
        if let Some(m) = t.multiline.as_mut() {
            joined.extend(m.flush());
        }
        if joined.is_empty() {
            return Ok(());
        }
        self.emit_joined(i, joined, now_ms, emit)
    }

    fn position_of(&mut self, i: usize) -> Position {
        let t = &mut self.files[i];
        if !t.identity.covers(t.emitted_offset)
            && let Ok(id) = read_identity(&t.file)
            && id.same_inode(&t.identity)
        {
            // The fingerprint was taken while the file was short: sharpen it now.
            t.identity = id;
        }
        position(t)
    }

    fn emit_joined(
        &mut self,
        i: usize,
        joined: Vec<Joined>,
        now_ms: i64,
        emit: &mut Emit<'_>,
    ) -> Result<(), Stopped> {
        let Some(end) = joined.last().map(|j| j.end_offset) else {
            return Ok(());
        };
        let lines: Vec<TailLine> = joined.into_iter().map(|j| self.record(j, now_ms)).collect();
        let matcher = &self.inputs[self.files[i].input].errors;
        let errors = lines
            .iter()
            .filter(|l| matcher.is_error(&l.bytes, l.level))
            .count();
        self.files[i].emitted_offset = end;
        let position = self.position_of(i);
        self.files[i].reset_pending = false;
        let (source, service) = self.names(i);
        emit(TailChunk {
            source,
            service,
            lines,
            position,
            errors: u32::try_from(errors).unwrap_or(u32::MAX),
        })
    }

    /// The `source` and `service` of file `i`'s records (once a chunk, not once a record).
    fn names(&self, i: usize) -> (Arc<str>, Arc<str>) {
        let t = &self.files[i];
        (
            Arc::from(t.source.to_string_lossy()),
            Arc::from(self.inputs[t.input].service.as_str()),
        )
    }

    fn record(&mut self, joined: Joined, now_ms: i64) -> TailLine {
        self.stats.lines += 1;
        if joined.truncated {
            self.stats.truncated += 1;
        }
        if std::str::from_utf8(&joined.bytes).is_err() {
            self.stats.invalid_utf8 += 1;
        }
        TailLine {
            ts_ms: now_ms,
            level: level::detect(&joined.bytes),
            end: joined.end_offset,
            bytes: joined.bytes,
        }
    }

    fn read_new(
        &mut self,
        i: usize,
        now: Instant,
        now_ms: i64,
        emit: &mut Emit<'_>,
    ) -> Result<ReadOutcome, Stopped> {
        // Reuse one read buffer across files and polls (taken out to satisfy the borrow checker).
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(CHUNK, 0);
        let result = self.read_into(i, now, now_ms, emit, &mut buf);
        self.buf = buf;
        result
    }

    fn read_into(
        &mut self,
        i: usize,
        now: Instant,
        now_ms: i64,
        emit: &mut Emit<'_>,
        buf: &mut [u8],
    ) -> Result<ReadOutcome, Stopped> {
        let mut total = 0usize;
        let mut lines = Vec::new();
        let mut joined = Vec::new();
        let offset = self.files[i].read_offset;
        if let Err(error) = self.files[i].file.seek(SeekFrom::Start(offset)) {
            tracing::warn!(%error, path = %self.files[i].source.display(), "seek failed");
            return Ok(ReadOutcome {
                bytes: 0,
                at_eof: true,
            });
        }
        // Bytes read since the last chunk was handed out.
        let mut unsent = 0usize;
        let at_eof = loop {
            if total >= READ_BUDGET {
                break false;
            }
            let t = &mut self.files[i];
            let n = match t.file.read(buf) {
                Ok(0) => break true,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    tracing::warn!(%error, path = %t.source.display(), "read failed");
                    break true;
                }
            };
            total += n;
            t.read_offset += n as u64;
            t.splitter.push_at(&buf[..n], t.read_offset, &mut lines);
            for (line, end) in lines.drain(..) {
                match t.multiline.as_mut() {
                    Some(m) => m.push(line, end, now, &mut joined),
                    None => joined.push(single(line, end)),
                }
            }
            unsent += n;
            if unsent >= EMIT_BYTES && !joined.is_empty() {
                self.emit_joined(i, std::mem::take(&mut joined), now_ms, emit)?;
                unsent = 0;
            }
        };
        if !joined.is_empty() {
            self.emit_joined(i, joined, now_ms, emit)?;
        }
        self.stats.bytes += total as u64;
        Ok(ReadOutcome {
            bytes: total,
            at_eof,
        })
    }
}

/// How long ago `file` was last written, by its mtime against `now_ms` (unix ms); `None` when
/// unknown or in the future.
fn unwritten_for(file: &File, now_ms: i64) -> Option<Duration> {
    let meta = file.metadata().ok()?;
    let mtime_ms = meta
        .mtime()
        .checked_mul(1000)?
        .checked_add(meta.mtime_nsec() / 1_000_000)?;
    let ago = now_ms.checked_sub(mtime_ms)?;
    u64::try_from(ago).ok().map(Duration::from_millis)
}

fn position(t: &Tracked) -> Position {
    Position {
        path: t.source.clone(),
        identity: t.identity,
        offset: t.emitted_offset,
        reset: t.reset_pending,
    }
}

fn single(line: Line, end_offset: u64) -> Joined {
    Joined {
        bytes: line.bytes,
        truncated: line.truncated,
        lines: 1,
        discarded_lines: 0,
        end_offset,
    }
}

struct ReadOutcome {
    bytes: usize,
    at_eof: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MultilineConfig;
    use std::io::Write;
    use std::path::Path;

    fn input(dir: &Path, read_from: ReadFrom) -> LogInput {
        LogInput {
            patterns: vec![format!("{}/*.log", dir.display())],
            service: "app".into(),
            read_from,
            max_line_bytes: 1024,
            multiline: None,
            errors: crate::config::ErrorMatch::Level,
        }
    }

    fn opts(first_start: bool) -> TailOptions {
        TailOptions {
            rotate_wait: Duration::from_secs(2),
            first_start,
        }
    }

    /// Poll once; the lines read and the last position of each file.
    fn poll_at(t: &mut Tailer, now: Instant) -> (Vec<String>, Vec<Position>) {
        let mut got = Vec::new();
        let mut positions: Vec<Position> = Vec::new();
        t.poll(now, 0, &mut |chunk| {
            got.extend(
                chunk
                    .lines
                    .into_iter()
                    .map(|r| String::from_utf8(r.bytes).unwrap()),
            );
            positions.retain(|p| p.identity != chunk.position.identity);
            positions.push(chunk.position);
            Ok(())
        })
        .unwrap();
        (got, positions)
    }

    fn poll(t: &mut Tailer, now: Instant) -> Vec<String> {
        poll_at(t, now).0
    }

    fn append(p: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn checkpoints(positions: &[Position]) -> Vec<Checkpoint> {
        positions
            .iter()
            .map(|p| Checkpoint {
                path: p.path.clone(),
                identity: p.identity,
                offset: p.offset,
                updated_ms: 0,
            })
            .collect()
    }

    #[test]
    fn reads_existing_and_new_files_and_appends() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        append(&a, "1\n2\n");
        let mut t = Tailer::new(
            vec![input(d.path(), ReadFrom::Beginning)],
            vec![],
            opts(true),
        );
        let now = Instant::now();
        assert_eq!(poll(&mut t, now), ["1", "2"]);
        append(&a, "3\npart");
        append(&d.path().join("b.log"), "b1\n");
        let (lines, pos) = poll_at(&mut t, now);
        assert_eq!(lines, ["3", "b1"]);
        let pa = pos.iter().find(|p| p.path == a).unwrap();
        assert_eq!(pa.offset, 6, "the position stops before the partial line");
        append(&a, "ial\n");
        assert_eq!(poll(&mut t, now), ["partial"]);
        assert_eq!(t.stats().lines, 5);
    }

    #[test]
    fn read_from_end_applies_only_on_the_first_start() {
        let d = tempfile::tempdir().unwrap();
        append(&d.path().join("a.log"), "old\n");
        let mut t = Tailer::new(vec![input(d.path(), ReadFrom::End)], vec![], opts(true));
        let now = Instant::now();
        assert!(poll(&mut t, now).is_empty());
        append(&d.path().join("a.log"), "new\n");
        append(&d.path().join("late.log"), "late\n");
        assert_eq!(poll(&mut t, now), ["new", "late"]);
        // Not a first start (a checkpoint file existed): a file without checkpoint is new.
        let mut t = Tailer::new(vec![input(d.path(), ReadFrom::End)], vec![], opts(false));
        assert_eq!(poll(&mut t, now).len(), 3);
    }

    #[test]
    fn restart_resumes_at_the_checkpoint() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        append(&a, "1\n2\n");
        let now = Instant::now();
        let mut t = Tailer::new(
            vec![input(d.path(), ReadFrom::Beginning)],
            vec![],
            opts(true),
        );
        let (_, pos) = poll_at(&mut t, now);
        drop(t);
        append(&a, "3\n");
        let mut t = Tailer::new(
            vec![input(d.path(), ReadFrom::Beginning)],
            checkpoints(&pos),
            opts(false),
        );
        assert_eq!(poll(&mut t, now), ["3"]);
        assert_eq!(t.stats().resumed, 1);
    }

    #[test]
    fn a_file_rotated_while_down_is_read_to_its_end_first() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        append(&a, "1\n");
        let now = Instant::now();
        let mut t = Tailer::new(
            vec![input(d.path(), ReadFrom::Beginning)],
            vec![],
            opts(true),
        );
        let (_, pos) = poll_at(&mut t, now);
        drop(t);
        append(&a, "2\n");
        std::fs::rename(&a, d.path().join("a.log.1")).unwrap();
        append(&a, "3\n");
        let mut t = Tailer::new(
            vec![input(d.path(), ReadFrom::Beginning)],
            checkpoints(&pos),
            opts(false),
        );
        assert_eq!(poll(&mut t, now), ["2", "3"]);
        assert_eq!(t.stats().rotated_found, 1);
        assert_eq!(t.open_files(), 1, "the rotated file is closed at its end");
    }

    #[test]
    fn rename_rotation_drains_old_then_reads_new() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        append(&a, "1\n");
        let mut t = Tailer::new(
            vec![input(d.path(), ReadFrom::Beginning)],
            vec![],
            opts(true),
        );
        let now = Instant::now();
        assert_eq!(poll(&mut t, now), ["1"]);
        append(&a, "2\n");
        std::fs::rename(&a, d.path().join("a.log.1")).unwrap();
        append(&a, "3\n");
        assert_eq!(poll(&mut t, now), ["2", "3"]);
        assert_eq!(t.open_files(), 2, "the rotated file waits for late writes");
        assert!(poll(&mut t, now + Duration::from_secs(2)).is_empty());
        assert_eq!(t.open_files(), 1);
    }

    #[test]
    fn truncation_restarts_at_zero_and_reports_a_reset() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        append(&a, "one\ntwo\n");
        let mut t = Tailer::new(
            vec![input(d.path(), ReadFrom::Beginning)],
            vec![],
            opts(true),
        );
        let now = Instant::now();
        assert_eq!(poll(&mut t, now), ["one", "two"]);
        std::fs::File::create(&a).unwrap();
        let (lines, pos) = poll_at(&mut t, now);
        assert!(lines.is_empty());
        assert_eq!(pos[0].offset, 0);
        assert!(pos[0].reset);
        append(&a, "x\n");
        let (lines, pos) = poll_at(&mut t, now);
        assert_eq!(lines, ["x"]);
        assert!(!pos[0].reset);
        assert_eq!(t.stats().truncations, 1);
    }

    #[test]
    fn truncated_and_regrown_past_the_position_is_still_noticed() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        append(&a, "old line one\n");
        let mut t = Tailer::new(
            vec![input(d.path(), ReadFrom::Beginning)],
            vec![],
            opts(true),
        );
        let now = Instant::now();
        assert_eq!(poll(&mut t, now), ["old line one"]);
        std::fs::File::create(&a).unwrap();
        append(&a, "new first line, longer than the old\n");
        assert_eq!(poll(&mut t, now), ["new first line, longer than the old"]);
        assert_eq!(t.stats().truncations, 1);
    }

    #[test]
    fn deleted_file_is_drained_and_closed_at_once() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        append(&a, "1\n");
        let mut t = Tailer::new(
            vec![input(d.path(), ReadFrom::Beginning)],
            vec![],
            opts(true),
        );
        let now = Instant::now();
        assert_eq!(poll(&mut t, now), ["1"]);
        append(&a, "2\nlast");
        std::fs::remove_file(&a).unwrap();
        assert_eq!(poll(&mut t, now), ["2", "last"]);
        assert_eq!(t.open_files(), 0);
    }

    #[test]
    fn multiline_records_and_their_positions() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        let mut inp = input(d.path(), ReadFrom::Beginning);
        inp.multiline = Some(MultilineConfig {
            start_pattern: regex::bytes::Regex::new(r"^\d").unwrap(),
            flush_timeout: Duration::from_secs(1),
        });
        append(&a, "1 boom\n  at a\n  at b\n2 ok\n");
        let mut t = Tailer::new(vec![inp], vec![], opts(true));
        let now = Instant::now();
        let (lines, pos) = poll_at(&mut t, now);
        assert_eq!(lines, ["1 boom\n  at a\n  at b"]);
        assert_eq!(
            pos[0].offset, 21,
            "the open record `2 ok` is not covered yet"
        );
        assert_eq!(t.deadline(), Some(now + Duration::from_secs(1)));
        let (lines, pos) = poll_at(&mut t, now + Duration::from_secs(1));
        assert_eq!(lines, ["2 ok"]);
        assert_eq!(pos[0].offset, 26);
    }

    #[test]
    fn an_open_multiline_record_waits_only_while_its_file_may_still_be_written() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        let mut inp = input(d.path(), ReadFrom::Beginning);
        inp.multiline = Some(MultilineConfig {
            start_pattern: regex::bytes::Regex::new(r"^\d").unwrap(),
            flush_timeout: Duration::from_secs(5),
        });
        append(&a, "1 boom\n  at a\n2 last\n  at z\n");
        let now_ms = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        let mut t = Tailer::new(vec![inp], vec![], opts(true));
        let poll_wall = |t: &mut Tailer| {
            let mut got = Vec::new();
            t.poll(Instant::now(), now_ms, &mut |c| {
                got.extend(
                    c.lines
                        .into_iter()
                        .map(|l| String::from_utf8(l.bytes).unwrap()),
                );
                Ok(())
            })
            .unwrap();
            got
        };
        // Written just now: the last record may still get continuation lines.
        assert_eq!(poll_wall(&mut t), ["1 boom\n  at a"]);
        assert!(t.deadline().is_some());
        // Not written for longer than the flush timeout: nothing more is coming.
        let past = std::time::SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options()
            .append(true)
            .open(&a)
            .unwrap()
            .set_modified(past)
            .unwrap();
        assert_eq!(poll_wall(&mut t), ["2 last\n  at z"]);
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn a_poll_that_hits_the_read_budget_reports_it_is_behind() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        let line = "x".repeat(1000);
        let n = READ_BUDGET / 1000 + 100;
        append(&a, &format!("{line}\n").repeat(n));
        let mut t = Tailer::new(
            vec![input(d.path(), ReadFrom::Beginning)],
            vec![],
            opts(true),
        );
        let now = Instant::now();
        let first = poll(&mut t, now).len();
        assert!(first < n);
        assert!(t.is_behind(), "data is left to read");
        let second = poll(&mut t, now).len();
        assert_eq!(first + second, n);
        assert!(!t.is_behind());
    }

    #[test]
    fn a_multiline_record_does_not_time_out_while_its_lines_wait_to_be_read() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        let mut inp = input(d.path(), ReadFrom::Beginning);
        inp.max_line_bytes = 1024 * 1024;
        inp.multiline = Some(MultilineConfig {
            start_pattern: regex::bytes::Regex::new(r"^START").unwrap(),
            flush_timeout: Duration::from_secs(1),
        });
        // Records before the trace fill most of a poll's read budget, so the budget ends in
        // the middle of the trace: its tail is read by the next poll.
        let filler = format!("START filler {}\n", "f".repeat(1000));
        let fillers = READ_BUDGET / filler.len() - 20;
        let trace = format!(
            "START trace\n{}",
            format!("  at {}\n", "x".repeat(1000)).repeat(200)
        );
        append(
            &a,
            &format!("{}{trace}START next\n", filler.repeat(fillers)),
        );
        let mut t = Tailer::new(vec![inp], vec![], opts(true));
        let now = Instant::now();
        let first = poll(&mut t, now);
        assert_eq!(first.len(), fillers);
        assert!(t.is_behind());
        // The next poll comes long after the flush timeout (the pipeline was blocked).
        let got = poll(&mut t, now + Duration::from_secs(10));
        assert_eq!(got.len(), 1, "only the trace: `START next` is still open");
        assert_eq!(
            got[0],
            trace.trim_end(),
            "the trace is one record, not cut in two"
        );
    }

    #[test]
    fn stop_from_the_receiver_ends_the_poll() {
        let d = tempfile::tempdir().unwrap();
        append(&d.path().join("a.log"), "1\n");
        let mut t = Tailer::new(
            vec![input(d.path(), ReadFrom::Beginning)],
            vec![],
            opts(true),
        );
        let r = t.poll(Instant::now(), 0, &mut |_| Err(Stopped));
        assert_eq!(r, Err(Stopped));
    }
}
