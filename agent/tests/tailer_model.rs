//! Model test of the log tailer against real files: random appends (partial lines included),
//! rename rotations, copytruncates, deletions, re-creations, polls on a fake clock and restarts
//! from the checkpoints the caller persisted, run on a temp dir and on a model of what the
//! tailer reads.
//!
//! # The model
//! It follows every inode (`a.log`, `b.log`, their `.1` siblings, copytruncate copies), which
//! content generation each holds (a copytruncate starts a new one on the same inode), and, for
//! the running tailer, which inodes it has open, how far it read them and which partial line it
//! holds. A line becomes *required* when a poll reads it:
//! - a poll opens every file at `x.log`; on the first poll after a restart it also opens every
//!   `x.log.1` whose current generation has a persisted checkpoint with a fingerprint (a
//!   checkpoint recorded while the file was empty identifies nothing); a file stays open
//!   through rename and unlink until it is closed;
//! - an open file is read to its end, so its complete lines are required at that very poll;
//! - a file is closed, its partial last line flushed (so required), when it cannot grow any
//!   more: at the poll that finds it deleted, at once if it was found rotated at start, or once
//!   renamed with nothing new for `rotate_wait`;
//! - a partial line held when its file is copytruncated is flushed, cut to the bytes read, by
//!   the next poll.
//!
//! # What may be missing
//! Exactly what no poll read, which the real tool loses too: lines of a file deleted, or rotated
//! away twice, before any poll saw it; lines of a file rotated during a restart without a
//! checkpoint of its generation (nothing tells the new tailer the sibling is one of its files);
//! lines written after the last poll before a copytruncate (logrotate's own race: they are only
//! in the copy, which no glob matches); lines written after the last poll before a restart to a
//! file deleted meanwhile; a partial line held across a restart whose file is not found again.
//!
//! # Checked, at every poll
//! Every required line has been delivered; nothing is delivered that the model says was not
//! read (the model is exact); no line twice, across restarts too; lines of one generation in
//! the order written; each record names its file; the tailer has exactly the model's files
//! open. At the end, after writers finish their lines and polls past `rotate_wait`: delivered
//! lines carry the bytes written (a copytruncated partial line, the bytes read), and only the
//! files at `x.log` are open. `PROPTEST_CASES=10000` for a soak.
#![allow(clippy::unwrap_used)]

use outpost_agent::collect::logs::tailer::{TailChunk, TailOptions, Tailer};
use outpost_agent::config::{ErrorMatch, LogInput, ReadFrom};
use outpost_agent::state::checkpoint::{Checkpoint, CheckpointStore};
use outpost_agent::state::position::FileIdentity;
use proptest::prelude::*;
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const NAMES: [&str; 2] = ["a.log", "b.log"];
const ROTATE_WAIT: Duration = Duration::from_secs(1);
/// Line bodies after the id; a line is `{id} {FILLER[..2 + n]}`.
const FILLER: &str = "abcdefgh";

#[derive(Debug, Clone)]
enum Action {
    /// Complete the pending partial line, if any, then append a line per filler length; with
    /// `partial` the last one is written without its end (and its newline).
    Append {
        file: usize,
        fillers: Vec<usize>,
        partial: bool,
    },
    /// `x.log` → `x.log.1` (replacing it); `create`: a new empty `x.log` at once, else the next
    /// append creates it.
    RenameRotate {
        file: usize,
        create: bool,
    },
    /// Copy `x.log` to a new `x.log.1` (the old one removed first), truncate `x.log` to 0.
    CopyTruncate {
        file: usize,
    },
    Delete {
        file: usize,
    },
    /// Create an empty `x.log` if there is none.
    Recreate {
        file: usize,
    },
    /// Advance the clock, then poll.
    Poll {
        step_ms: u64,
    },
    /// Drop the tailer; start a new one from the persisted checkpoints.
    Restart,
}

fn action() -> impl Strategy<Value = Action> {
    let file = 0..NAMES.len();
    prop_oneof![
        5 => (
            file.clone(),
            proptest::collection::vec(0usize..4, 1..3),
            proptest::bool::weighted(0.4),
        )
            .prop_map(|(file, fillers, partial)| Action::Append { file, fillers, partial }),
        5 => (0u64..1500).prop_map(|step_ms| Action::Poll { step_ms }),
        2 => (file.clone(), any::<bool>())
            .prop_map(|(file, create)| Action::RenameRotate { file, create }),
        2 => file.clone().prop_map(|file| Action::CopyTruncate { file }),
        1 => file.clone().prop_map(|file| Action::Delete { file }),
        1 => file.prop_map(|file| Action::Recreate { file }),
        1 => Just(Action::Restart),
    ]
}

struct Line {
    /// `a.log g007 l002`: unique, parsed back from what is delivered.
    id: String,
    full: String,
    generation: usize,
    k: usize,
    /// Bytes of `full` in the file.
    written: usize,
    /// Its newline is in the file.
    complete: bool,
    /// A poll read it: it must be delivered.
    required: bool,
    /// Held partial when its file was copytruncated: delivered as `full[..cut]`.
    cut: Option<usize>,
    delivered: Option<String>,
}

struct Generation {
    name: usize,
    lines: Vec<usize>,
    last_delivered_k: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    /// At `x.log`.
    Live,
    /// At `x.log.1`.
    Rotated,
    Unlinked,
}

struct Inode {
    dev_ino: (u64, u64),
    loc: Loc,
    /// The content generation; `None` for a copytruncate copy (its lines belong to the
    /// generation it copied, and no tailer should ever read it).
    generation: Option<usize>,
    /// The running tailer follows it.
    tracked: bool,
    /// Followed because the first poll after a restart found it rotated by its checkpoint:
    /// nobody writes it any more, so it is closed at its end.
    recovered: bool,
    /// The generation and length the running tailer has read up to.
    seen: Option<(usize, u64)>,
    /// When the running tailer first found it renamed at its end (or last read from it since).
    moved_at: Option<u64>,
    /// The partial line the running tailer holds, and how many bytes of it it read.
    held: Option<(usize, usize)>,
    /// A held partial line the next poll must flush (the file was copytruncated).
    cut_flush: Option<usize>,
    /// The generation of the last position delivered for this inode (so persisted).
    checkpointed: Option<usize>,
}

struct Harness {
    logs: PathBuf,
    store: CheckpointStore,
    tailer: Tailer,
    base: Instant,
    clock_ms: u64,
    lines: Vec<Line>,
    generations: Vec<Generation>,
    inodes: Vec<Inode>,
    /// Inode at `x.log`, at `x.log.1`.
    live: [Option<usize>; 2],
    rotated: [Option<usize>; 2],
    /// The line the writer left without its end, per name.
    pending: [Option<usize>; 2],
    first_polled: bool,
    by_id: HashMap<String, usize>,
    by_dev_ino: HashMap<(u64, u64), usize>,
}

fn tailer(logs: &Path, resume: Vec<Checkpoint>, first_start: bool) -> Tailer {
    let input = LogInput {
        patterns: vec![format!("{}/*.log", logs.display())],
        service: "app".into(),
        read_from: ReadFrom::Beginning,
        max_line_bytes: 1024,
        multiline: None,
        errors: ErrorMatch::Level,
    };
    Tailer::new(
        vec![input],
        resume,
        TailOptions {
            rotate_wait: ROTATE_WAIT,
            first_start,
        },
    )
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

impl Harness {
    fn new(root: &Path) -> Self {
        let logs = root.join("logs");
        let state = root.join("state");
        std::fs::create_dir(&logs).unwrap();
        std::fs::create_dir(&state).unwrap();
        let (store, _) = CheckpointStore::open(&state).unwrap();
        let tailer = tailer(&logs, Vec::new(), true);
        Self {
            logs,
            store,
            tailer,
            base: Instant::now(),
            clock_ms: 0,
            lines: Vec::new(),
            generations: Vec::new(),
            inodes: Vec::new(),
            live: [None; 2],
            rotated: [None; 2],
            pending: [None; 2],
            first_polled: false,
            by_id: HashMap::new(),
            by_dev_ino: HashMap::new(),
        }
    }

    fn path(&self, file: usize) -> PathBuf {
        self.logs.join(NAMES[file])
    }

    fn rotated_path(&self, file: usize) -> PathBuf {
        self.logs.join(format!("{}.1", NAMES[file]))
    }

    fn new_generation(&mut self, name: usize) -> usize {
        self.generations.push(Generation {
            name,
            lines: Vec::new(),
            last_delivered_k: None,
        });
        self.generations.len() - 1
    }

    /// A new inode now at `path`.
    fn new_inode(&mut self, path: &Path, loc: Loc, generation: Option<usize>) -> usize {
        let meta = std::fs::metadata(path).unwrap();
        let dev_ino = (meta.dev(), meta.ino());
        self.inodes.push(Inode {
            dev_ino,
            loc,
            generation,
            tracked: false,
            recovered: false,
            seen: None,
            moved_at: None,
            held: None,
            cut_flush: None,
            checkpointed: None,
        });
        let i = self.inodes.len() - 1;
        // A number reused by the file system now means this inode.
        self.by_dev_ino.insert(dev_ino, i);
        i
    }

    fn ensure_live(&mut self, file: usize) -> usize {
        if let Some(i) = self.live[file] {
            return i;
        }
        let path = self.path(file);
        OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .unwrap();
        let generation = self.new_generation(file);
        let i = self.new_inode(&path, Loc::Live, Some(generation));
        self.live[file] = Some(i);
        i
    }

    /// The file at `x.log.1` is gone (replaced or removed).
    fn unlink_rotated(&mut self, file: usize) {
        if let Some(i) = self.rotated[file].take() {
            self.inodes[i].loc = Loc::Unlinked;
        }
    }

    fn apply(&mut self, action: &Action) -> Result<(), TestCaseError> {
        match *action {
            Action::Append {
                file,
                ref fillers,
                partial,
            } => self.append(file, fillers, partial),
            Action::RenameRotate { file, create } => {
                let Some(x) = self.live[file] else {
                    return Ok(());
                };
                self.unlink_rotated(file);
                std::fs::rename(self.path(file), self.rotated_path(file)).unwrap();
                self.inodes[x].loc = Loc::Rotated;
                self.rotated[file] = Some(x);
                self.live[file] = None;
                self.pending[file] = None;
                if create {
                    self.ensure_live(file);
                }
            }
            Action::CopyTruncate { file } => {
                let Some(x) = self.live[file] else {
                    return Ok(());
                };
                let rotated = self.rotated_path(file);
                if self.rotated[file].is_some() {
                    std::fs::remove_file(&rotated).unwrap();
                    self.unlink_rotated(file);
                }
                std::fs::copy(self.path(file), &rotated).unwrap();
                let copy = self.new_inode(&rotated, Loc::Rotated, None);
                self.rotated[file] = Some(copy);
                OpenOptions::new()
                    .write(true)
                    .open(self.path(file))
                    .unwrap()
                    .set_len(0)
                    .unwrap();
                self.pending[file] = None;
                let generation = self.new_generation(file);
                let inode = &mut self.inodes[x];
                inode.generation = Some(generation);
                if let Some((line, read)) = inode.held.take() {
                    self.lines[line].cut = Some(read);
                    inode.cut_flush = Some(line);
                }
            }
            Action::Delete { file } => {
                let Some(x) = self.live[file] else {
                    return Ok(());
                };
                std::fs::remove_file(self.path(file)).unwrap();
                self.inodes[x].loc = Loc::Unlinked;
                self.live[file] = None;
                self.pending[file] = None;
            }
            Action::Recreate { file } => {
                self.ensure_live(file);
            }
            Action::Poll { step_ms } => self.poll(step_ms)?,
            Action::Restart => self.restart(),
        }
        Ok(())
    }

    fn append(&mut self, file: usize, fillers: &[usize], partial: bool) {
        let mut bytes = self.complete_pending(file);
        let x = self.ensure_live(file);
        let generation = self.inodes[x].generation.unwrap();
        for (n, &filler) in fillers.iter().enumerate() {
            let k = self.generations[generation].lines.len();
            let id = format!("{} g{generation:03} l{k:03}", NAMES[file]);
            let full = format!("{id} {}", &FILLER[..2 + filler]);
            let cut = partial && n + 1 == fillers.len();
            let written = if cut { id.len() + 2 } else { full.len() };
            bytes.extend_from_slice(&full.as_bytes()[..written]);
            if !cut {
                bytes.push(b'\n');
            }
            self.lines.push(Line {
                id: id.clone(),
                full,
                generation,
                k,
                written,
                complete: !cut,
                required: false,
                cut: None,
                delivered: None,
            });
            let line = self.lines.len() - 1;
            self.by_id.insert(id, line);
            self.generations[generation].lines.push(line);
            if cut {
                self.pending[file] = Some(line);
            }
        }
        append_bytes(&self.path(file), &bytes);
    }

    /// The bytes that end the writer's pending partial line (to be written by the caller).
    fn complete_pending(&mut self, file: usize) -> Vec<u8> {
        let Some(line) = self.pending[file].take() else {
            return Vec::new();
        };
        let l = &mut self.lines[line];
        let mut rest = l.full.as_bytes()[l.written..].to_vec();
        rest.push(b'\n');
        l.written = l.full.len();
        l.complete = true;
        rest
    }

    fn restart(&mut self) {
        // The agent resumes from what it persisted: the positions of the records it received.
        self.tailer = tailer(&self.logs, self.store.iter().cloned().collect(), false);
        for inode in &mut self.inodes {
            inode.tracked = false;
            inode.recovered = false;
            inode.seen = None;
            inode.moved_at = None;
            inode.held = None;
            inode.cut_flush = None;
        }
        self.first_polled = false;
    }

    fn poll(&mut self, step_ms: u64) -> Result<(), TestCaseError> {
        self.clock_ms += step_ms;
        let now = self.base + Duration::from_millis(self.clock_ms);
        let mut chunks = Vec::new();
        self.tailer
            .poll(now, self.now_ms(), &mut |c| {
                chunks.push(c);
                Ok(())
            })
            .unwrap();
        // Predict what this poll reads before the positions it delivers are persisted: the
        // tailer looked for rotated files with the checkpoints it was started with.
        self.predict_poll();
        for chunk in chunks {
            self.deliver(chunk)?;
        }
        self.check_open()?;
        self.check_required("after a poll")
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.clock_ms).unwrap()
    }

    /// Bytes of a generation in its file.
    fn generation_len(&self, generation: usize) -> u64 {
        self.generations[generation]
            .lines
            .iter()
            .map(|&l| (self.lines[l].written + usize::from(self.lines[l].complete)) as u64)
            .sum()
    }

    /// What a poll at `clock_ms` reads, flushes and closes.
    fn predict_poll(&mut self) {
        let now = self.clock_ms;
        let rotate_wait = u64::try_from(ROTATE_WAIT.as_millis()).unwrap();
        let first = !std::mem::replace(&mut self.first_polled, true);
        for i in 0..self.inodes.len() {
            let len = self.inodes[i].generation.map(|g| self.generation_len(g));
            let inode = &mut self.inodes[i];
            let recovered = first
                && inode.loc == Loc::Rotated
                && inode.generation.is_some()
                && inode.checkpointed == inode.generation;
            if (inode.loc == Loc::Live || recovered) && !inode.tracked {
                inode.tracked = true;
                inode.recovered = recovered;
            }
            if !inode.tracked {
                continue;
            }
            if let Some(line) = inode.cut_flush.take() {
                self.lines[line].required = true;
            }
            let (Some(generation), Some(len)) = (inode.generation, len) else {
                continue;
            };
            // Read to the end (from 0 again after a truncation).
            let read = match inode.seen {
                Some((g, seen)) if g == generation => len - seen,
                _ => len,
            };
            inode.seen = Some((generation, len));
            // Closed (its partial last line flushed) when it cannot grow any more: deleted,
            // found rotated at start, or renamed with nothing new for `rotate_wait`.
            let closes = match inode.loc {
                Loc::Live => false,
                Loc::Unlinked => true,
                Loc::Rotated if inode.recovered => true,
                Loc::Rotated => {
                    let since = *inode.moved_at.get_or_insert(now);
                    if read > 0 {
                        inode.moved_at = Some(now);
                        false
                    } else {
                        now - since >= rotate_wait
                    }
                }
            };
            inode.held = None;
            for &line in &self.generations[generation].lines {
                let l = &mut self.lines[line];
                if l.complete || closes {
                    l.required = true;
                } else {
                    // The last line: held until completed or its file closes.
                    inode.held = Some((line, l.written));
                }
            }
            if closes {
                inode.tracked = false;
                inode.held = None;
            }
        }
    }

    /// The tailer has exactly the files open that the model follows.
    fn check_open(&self) -> Result<(), TestCaseError> {
        let mut open: Vec<(u64, u64)> = self
            .tailer
            .positions()
            .iter()
            .map(|p| (p.identity.dev, p.identity.ino))
            .collect();
        let mut model: Vec<(u64, u64)> = self
            .inodes
            .iter()
            .filter(|i| i.tracked)
            .map(|i| i.dev_ino)
            .collect();
        open.sort_unstable();
        model.sort_unstable();
        prop_assert_eq!(open, model, "files open");
        Ok(())
    }

    fn deliver(&mut self, chunk: TailChunk) -> Result<(), TestCaseError> {
        let source = chunk.source.clone();
        for record in chunk.lines {
            let text = String::from_utf8(record.bytes).unwrap();
            let id = text.splitn(4, ' ').take(3).collect::<Vec<_>>().join(" ");
            let Some(&line) = self.by_id.get(&id) else {
                return Err(TestCaseError::fail(format!(
                    "delivered a line never written: {text:?}"
                )));
            };
            let l = &mut self.lines[line];
            // The model is exact: the tailer reads nothing it says no poll could.
            prop_assert!(
                l.required,
                "{} was delivered though the model says no poll read it",
                l.id
            );
            prop_assert!(
                l.delivered.is_none(),
                "{} delivered twice: {:?} then {:?}",
                l.id,
                l.delivered,
                text
            );
            let g = &mut self.generations[l.generation];
            let expected_source = self.logs.join(NAMES[g.name]);
            prop_assert_eq!(Path::new(&*source), expected_source.as_path());
            prop_assert!(
                g.last_delivered_k.is_none_or(|k| k < l.k),
                "{} delivered after line {:?} of its generation",
                l.id,
                g.last_delivered_k
            );
            g.last_delivered_k = Some(l.k);
            l.delivered = Some(text);
        }
        // What the agent does once the records are spooled (`run/writer.rs`).
        let p = chunk.position;
        if p.reset {
            self.store
                .reset(&p.path, p.identity, p.offset, self.now_ms());
        } else {
            self.store.set(&p.path, p.identity, p.offset, self.now_ms());
        }
        if let Some(&i) = self.by_dev_ino.get(&(p.identity.dev, p.identity.ino)) {
            // A checkpoint of an empty file (a truncation noticed before anything was written
            // again) has no bytes to identify it by: a rotated file is not looked up with it.
            let inode = &mut self.inodes[i];
            inode.checkpointed = inode
                .generation
                .filter(|_| p.identity.fingerprint.is_some());
        }
        Ok(())
    }

    fn check_required(&self, when: &str) -> Result<(), TestCaseError> {
        for l in &self.lines {
            prop_assert!(
                !l.required || l.delivered.is_some(),
                "{}: {} was read but not delivered",
                when,
                l.id
            );
        }
        Ok(())
    }

    /// Writers finish their lines; poll past `rotate_wait` until every renamed file is closed.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        for file in 0..NAMES.len() {
            let bytes = self.complete_pending(file);
            if !bytes.is_empty() {
                append_bytes(&self.path(file), &bytes);
            }
        }
        let step = u64::try_from(ROTATE_WAIT.as_millis()).unwrap() + 1000;
        for _ in 0..3 {
            self.poll(step)?;
        }
        for inode in &self.inodes {
            prop_assert!(
                !inode.tracked || inode.loc == Loc::Live,
                "renamed files are closed"
            );
        }
        self.check_required("after the drain")?;
        for l in &self.lines {
            let Some(got) = &l.delivered else { continue };
            let expected = &l.full[..l.cut.unwrap_or(l.written)];
            prop_assert_eq!(got.as_str(), expected, "content of {}", &l.id);
        }
        Ok(())
    }
}

fn run(actions: &[Action]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::new(dir.path());
    for action in actions {
        h.apply(action)?;
    }
    h.drain()
}

/// 128 cases run in well under a second.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn tailer_delivers_what_it_read_once_and_in_order(
        actions in proptest::collection::vec(action(), 1..40),
    ) {
        run(&actions)?;
    }
}

/// Bug (fixed with this test): the fingerprint was taken when `a.log` was empty and then only a
/// partial line was read, so it still covered no bytes and matched any content. After a
/// copytruncate and one new line, the truncation went unnoticed: the old partial line and the
/// tail of the new one were spliced into `a.log g000 l000 ab`, and the new line was lost.
#[test]
fn regression_copytruncate_after_only_a_partial_line_was_read_is_noticed() {
    use Action::{Append, CopyTruncate, Poll, Recreate};
    run(&[
        Recreate { file: 0 },
        Poll { step_ms: 0 },
        Append {
            file: 0,
            fillers: vec![0],
            partial: true,
        },
        Poll { step_ms: 0 },
        CopyTruncate { file: 0 },
        Append {
            file: 0,
            fillers: vec![0],
            partial: false,
        },
    ])
    .unwrap();
}

/// Bug (fixed with this test): the fingerprint was checked only when the size had changed since
/// the last poll. Truncated and written again back to exactly the old length, `b.log` looked
/// unchanged and its two new lines were never read.
#[test]
fn regression_copytruncate_back_to_the_same_length_is_noticed() {
    use Action::{Append, CopyTruncate, Poll};
    run(&[
        Append {
            file: 1,
            fillers: vec![3, 1],
            partial: false,
        },
        Poll { step_ms: 0 },
        CopyTruncate { file: 1 },
        Append {
            file: 1,
            fillers: vec![2, 2],
            partial: false,
        },
        Poll { step_ms: 0 },
    ])
    .unwrap();
}

/// Bug (fixed with this test): a checkpoint recorded while its file was empty (a truncation
/// noticed before anything was written again) has no fingerprint, so on restart it "matched"
/// whichever rotated sibling had since taken its inode number, and that file was read from 0.
/// Found as: `b.log` copytruncated and renamed away while still empty, a new `b.log` read,
/// restart, copytruncate: the copy `b.log.1` reused the freed inode and every line of the new
/// `b.log` was delivered a second time. Built directly here, as inode reuse is up to the file
/// system.
#[test]
fn regression_an_empty_checkpoint_does_not_adopt_another_file_on_its_inode() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("b.log");
    append_bytes(&log, b"new\n");
    let copy = d.path().join("b.log.1");
    append_bytes(&copy, b"delivered before the restart\n");
    let meta = std::fs::metadata(&copy).unwrap();
    let empty = Checkpoint {
        path: log,
        identity: FileIdentity::from_prefix(meta.dev(), meta.ino(), b""),
        offset: 0,
        updated_ms: 0,
    };
    let mut t = tailer(d.path(), vec![empty], false);
    let mut got = Vec::new();
    t.poll(Instant::now(), 0, &mut |chunk| {
        got.extend(chunk.lines.into_iter().map(|r| r.bytes));
        Ok(())
    })
    .unwrap();
    assert_eq!(got, [b"new".to_vec()]);
}
