//! Following log files: discovery by glob, reading new bytes, rotation and truncation.
//!
//! A file is identified by device and inode, so a file renamed by rotation keeps being read to
//! its end under its original name while the new file at that path is read from its beginning.
//! A file that shrank (copytruncate) is read again from offset 0. A deleted file is read to its
//! end and closed at once. Positions are kept in memory only: durable checkpoints come with the
//! disk spool.
//!
//! The tailer is synchronous and does no waiting: the caller polls it and supplies the clock.

use super::level;
use super::lines::{Line, LineSplitter};
use crate::config::{LogInput, ReadFrom};
use outpost_proto::LogRecord;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a renamed (rotated) file stays open after its last new byte, for writers that have
/// not reopened yet.
pub const ROTATE_WAIT: Duration = Duration::from_secs(2);
/// Bytes read from one file per poll, so one busy file cannot starve the others.
pub const READ_BUDGET: usize = 4 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// Counters of what the tailer did, for logs and (later) the agent's own metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TailStats {
    /// Lines emitted.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Lines cut to `max_line_bytes`.
    pub truncated: u64,
    /// Lines that are not valid UTF-8 (kept as bytes).
    pub invalid_utf8: u64,
    /// Files opened.
    pub opened: u64,
    /// Files closed (deleted or rotated away).
    pub closed: u64,
    /// Times a file shrank and was read again from the start.
    pub truncations: u64,
}

/// The caller's receiver said stop (the agent is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

type FileId = (u64, u64);

struct Tracked {
    id: FileId,
    source: PathBuf,
    input: usize,
    file: File,
    offset: u64,
    splitter: LineSplitter,
    moved_at: Option<Instant>,
}

/// Follows the files of all log inputs.
pub struct Tailer {
    inputs: Vec<LogInput>,
    files: Vec<Tracked>,
    started: bool,
    stats: TailStats,
    buf: Vec<u8>,
}

fn file_id(m: &std::fs::Metadata) -> FileId {
    (m.dev(), m.ino())
}

impl Tailer {
    /// A tailer over these inputs. Files present at the first poll start where each input's
    /// `read_from` says; files found later start at their beginning.
    pub fn new(inputs: Vec<LogInput>) -> Self {
        Self {
            inputs,
            files: Vec::new(),
            started: false,
            stats: TailStats::default(),
            buf: Vec::new(),
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

    /// Discover new files, read new data from all, close files that are gone. Records are
    /// handed to `emit` in chunks, in file order; `emit` returning `Err(Stopped)` ends the poll.
    pub fn poll(
        &mut self,
        now: Instant,
        now_ms: i64,
        emit: &mut dyn FnMut(Vec<LogRecord>) -> Result<(), Stopped>,
    ) -> Result<(), Stopped> {
        self.discover();
        let mut i = 0;
        while i < self.files.len() {
            let keep = self.service(i, now, now_ms, emit)?;
            if keep {
                i += 1;
            } else {
                self.files.remove(i);
                self.stats.closed += 1;
            }
        }
        Ok(())
    }

    /// Emit every partial line still held (shutdown: the lines will not be completed by us).
    pub fn flush_partial(
        &mut self,
        now_ms: i64,
        emit: &mut dyn FnMut(Vec<LogRecord>) -> Result<(), Stopped>,
    ) -> Result<(), Stopped> {
        for i in 0..self.files.len() {
            if let Some(line) = self.files[i].splitter.flush() {
                let rec = self.record(i, line, now_ms);
                emit(vec![rec])?;
            }
        }
        Ok(())
    }

    fn discover(&mut self) {
        for (input_idx, input) in self.inputs.iter().enumerate() {
            for pattern in &input.patterns {
                let Ok(paths) = glob::glob(pattern) else {
                    continue;
                };
                for path in paths.flatten() {
                    let Ok(meta) = std::fs::metadata(&path) else {
                        continue;
                    };
                    if !meta.is_file() {
                        continue;
                    }
                    let id = file_id(&meta);
                    if self.files.iter().any(|t| t.id == id) {
                        continue;
                    }
                    match open_at(&path, &meta, self.started, input.read_from) {
                        Ok((file, offset)) => {
                            tracing::info!(path = %path.display(), offset, service = %input.service, "following file");
                            self.stats.opened += 1;
                            self.files.push(Tracked {
                                id,
                                source: path,
                                input: input_idx,
                                file,
                                offset,
                                splitter: LineSplitter::new(input.max_line_bytes),
                                moved_at: None,
                            });
                        }
                        Err(error) => {
                            tracing::warn!(%error, path = %path.display(), "cannot open log file");
                        }
                    }
                }
            }
        }
        self.started = true;
    }

    fn record(&mut self, i: usize, line: Line, now_ms: i64) -> LogRecord {
        let t = &self.files[i];
        let input = &self.inputs[t.input];
        self.stats.lines += 1;
        if line.truncated {
            self.stats.truncated += 1;
        }
        if std::str::from_utf8(&line.bytes).is_err() {
            self.stats.invalid_utf8 += 1;
        }
        LogRecord {
            ts_ms: now_ms,
            source: t.source.to_string_lossy().into_owned(),
            service: input.service.clone(),
            level: level::detect(&line.bytes),
            line: line.bytes,
        }
    }

    /// Read what is new in file `i`. Returns whether to keep it open.
    fn service(
        &mut self,
        i: usize,
        now: Instant,
        now_ms: i64,
        emit: &mut dyn FnMut(Vec<LogRecord>) -> Result<(), Stopped>,
    ) -> Result<bool, Stopped> {
        let meta = match self.files[i].file.metadata() {
            Ok(m) => m,
            Err(error) => {
                tracing::warn!(%error, path = %self.files[i].source.display(), "cannot stat open log file; closing it");
                return Ok(false);
            }
        };
        if meta.len() < self.files[i].offset {
            // copytruncate (or a writer that truncated): the old tail is gone, start over.
            tracing::info!(path = %self.files[i].source.display(), "file shrank; reading it again from the start");
            self.stats.truncations += 1;
            if let Some(line) = self.files[i].splitter.flush() {
                let rec = self.record(i, line, now_ms);
                emit(vec![rec])?;
            }
            self.files[i].offset = 0;
        }
        let read = self.read_new(i, now_ms, emit)?;
        let t = &mut self.files[i];
        if read.at_eof {
            if meta.nlink() == 0 {
                // Deleted: nothing more can be written that anyone could read. Close now.
                if let Some(line) = t.splitter.flush() {
                    let rec = self.record(i, line, now_ms);
                    emit(vec![rec])?;
                }
                return Ok(false);
            }
            let moved = std::fs::metadata(&t.source).map_or(true, |m| file_id(&m) != t.id);
            if moved {
                let since = *t.moved_at.get_or_insert(now);
                if read.bytes > 0 {
                    t.moved_at = Some(now);
                } else if now.duration_since(since) >= ROTATE_WAIT {
                    if let Some(line) = t.splitter.flush() {
                        let rec = self.record(i, line, now_ms);
                        emit(vec![rec])?;
                    }
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    fn read_new(
        &mut self,
        i: usize,
        now_ms: i64,
        emit: &mut dyn FnMut(Vec<LogRecord>) -> Result<(), Stopped>,
    ) -> Result<ReadOutcome, Stopped> {
        // Reuse one read buffer across files and polls (taken out to satisfy the borrow checker).
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(CHUNK, 0);
        let result = self.read_into(i, now_ms, emit, &mut buf);
        self.buf = buf;
        result
    }

    fn read_into(
        &mut self,
        i: usize,
        now_ms: i64,
        emit: &mut dyn FnMut(Vec<LogRecord>) -> Result<(), Stopped>,
        buf: &mut [u8],
    ) -> Result<ReadOutcome, Stopped> {
        let mut total = 0usize;
        let mut lines = Vec::new();
        let offset = self.files[i].offset;
        if let Err(error) = self.files[i].file.seek(SeekFrom::Start(offset)) {
            tracing::warn!(%error, path = %self.files[i].source.display(), "seek failed");
            return Ok(ReadOutcome {
                bytes: 0,
                at_eof: true,
            });
        }
        let at_eof = loop {
            if total >= READ_BUDGET {
                break false;
            }
            let n = match self.files[i].file.read(buf) {
                Ok(0) => break true,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    tracing::warn!(%error, path = %self.files[i].source.display(), "read failed");
                    break true;
                }
            };
            total += n;
            self.files[i].offset += n as u64;
            self.files[i].splitter.push(&buf[..n], &mut lines);
            if !lines.is_empty() {
                let recs: Vec<LogRecord> = std::mem::take(&mut lines)
                    .into_iter()
                    .map(|l| self.record(i, l, now_ms))
                    .collect();
                emit(recs)?;
            }
        };
        self.stats.bytes += total as u64;
        Ok(ReadOutcome {
            bytes: total,
            at_eof,
        })
    }
}

struct ReadOutcome {
    bytes: usize,
    at_eof: bool,
}

fn open_at(
    path: &Path,
    meta: &std::fs::Metadata,
    started: bool,
    read_from: ReadFrom,
) -> io::Result<(File, u64)> {
    let file = File::open(path)?;
    let offset = if !started && read_from == ReadFrom::End {
        meta.len()
    } else {
        0
    };
    Ok((file, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn input(dir: &Path, read_from: ReadFrom) -> LogInput {
        LogInput {
            patterns: vec![format!("{}/*.log", dir.display())],
            service: "app".into(),
            read_from,
            max_line_bytes: 1024,
        }
    }

    fn poll(t: &mut Tailer, now: Instant) -> Vec<String> {
        let mut got = Vec::new();
        t.poll(now, 0, &mut |recs| {
            got.extend(recs.into_iter().map(|r| String::from_utf8(r.line).unwrap()));
            Ok(())
        })
        .unwrap();
        got
    }

    fn append(p: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn reads_existing_and_new_files_and_appends() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        append(&a, "1\n2\n");
        let mut t = Tailer::new(vec![input(d.path(), ReadFrom::Beginning)]);
        let now = Instant::now();
        assert_eq!(poll(&mut t, now), ["1", "2"]);
        append(&a, "3\npart");
        append(&d.path().join("b.log"), "b1\n");
        assert_eq!(poll(&mut t, now), ["3", "b1"]);
        append(&a, "ial\n");
        assert_eq!(poll(&mut t, now), ["partial"]);
        assert_eq!(t.stats().lines, 5);
    }

    #[test]
    fn read_from_end_skips_existing_content_only_at_start() {
        let d = tempfile::tempdir().unwrap();
        append(&d.path().join("a.log"), "old\n");
        let mut t = Tailer::new(vec![input(d.path(), ReadFrom::End)]);
        let now = Instant::now();
        assert!(poll(&mut t, now).is_empty());
        append(&d.path().join("a.log"), "new\n");
        append(&d.path().join("late.log"), "late\n");
        assert_eq!(poll(&mut t, now), ["new", "late"]);
    }

    #[test]
    fn rename_rotation_drains_old_then_reads_new() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        append(&a, "1\n");
        let mut t = Tailer::new(vec![input(d.path(), ReadFrom::Beginning)]);
        let now = Instant::now();
        assert_eq!(poll(&mut t, now), ["1"]);
        append(&a, "2\n");
        std::fs::rename(&a, d.path().join("a.log.1")).unwrap();
        append(&a, "3\n");
        assert_eq!(poll(&mut t, now), ["2", "3"]);
        assert_eq!(t.open_files(), 2, "the rotated file waits for late writes");
        assert!(poll(&mut t, now + ROTATE_WAIT).is_empty());
        assert_eq!(t.open_files(), 1);
    }

    #[test]
    fn truncation_restarts_at_zero() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        append(&a, "one\ntwo\n");
        let mut t = Tailer::new(vec![input(d.path(), ReadFrom::Beginning)]);
        let now = Instant::now();
        assert_eq!(poll(&mut t, now), ["one", "two"]);
        std::fs::File::create(&a).unwrap();
        append(&a, "x\n");
        assert_eq!(poll(&mut t, now), ["x"]);
        assert_eq!(t.stats().truncations, 1);
    }

    #[test]
    fn deleted_file_is_drained_and_closed_at_once() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        append(&a, "1\n");
        let mut t = Tailer::new(vec![input(d.path(), ReadFrom::Beginning)]);
        let now = Instant::now();
        assert_eq!(poll(&mut t, now), ["1"]);
        append(&a, "2\nlast");
        std::fs::remove_file(&a).unwrap();
        assert_eq!(poll(&mut t, now), ["2", "last"]);
        assert_eq!(t.open_files(), 0);
    }

    #[test]
    fn stop_from_the_receiver_ends_the_poll() {
        let d = tempfile::tempdir().unwrap();
        append(&d.path().join("a.log"), "1\n");
        let mut t = Tailer::new(vec![input(d.path(), ReadFrom::Beginning)]);
        let r = t.poll(Instant::now(), 0, &mut |_| Err(Stopped));
        assert_eq!(r, Err(Stopped));
    }
}
