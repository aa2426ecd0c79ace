//! Waking the tailer when a watched directory changes, with a periodic rescan as the fallback
//! for anything an event could miss.
//!
//! Each glob is watched at its longest wildcard-free directory: with a coalescing inotify watch
//! ([`super::coalesce`]: one wake-up per `poll_interval` at most, whatever the write rate), or,
//! when a directory component has a wildcard, recursively with `notify` (the only file that
//! imports it; a wake-up per event). Where watching is impossible (inotify watches exhausted, a
//! directory that does not exist yet, a platform without notify) the tailer degrades to polling
//! at `tail.poll_interval`, with one warning.

use super::coalesce::CoalescingWatch;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

/// A message to the waiting tailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something changed in a watched directory.
    Changed,
    /// The agent is stopping.
    Stop,
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// Time to read files again (an event, or the rescan/poll interval passed).
    Poll,
    /// The agent is stopping.
    Stop,
}

/// How the tailer learns about changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    /// Filesystem events, plus a rescan every `rescan_interval`.
    Notify,
    /// A poll every `poll_interval`.
    Polling,
}

/// The directory to watch for a glob pattern, and whether recursively.
pub fn watch_root(pattern: &str) -> (PathBuf, RecursiveMode) {
    let is_glob = |s: &str| s.contains(['*', '?', '[', '{']);
    let path = Path::new(pattern);
    let mut root = PathBuf::new();
    let comps: Vec<Component<'_>> = path.components().collect();
    let mut recursive = false;
    for (i, c) in comps.iter().enumerate() {
        let s = c.as_os_str().to_string_lossy();
        let last = i + 1 == comps.len();
        if is_glob(&s) {
            recursive = !last;
            break;
        }
        if last {
            break;
        }
        root.push(c.as_os_str());
    }
    let mode = if recursive {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    (root, mode)
}

/// Whether an event can mean new data or new files. Reads and opens do not: the tailer's own
/// scan opens the watched directory, and waking on that made an idle agent poll without end.
pub fn wakes(kind: &notify::EventKind) -> bool {
    !matches!(kind, notify::EventKind::Access(_))
}

/// Waits for changes or the next scheduled poll.
pub struct DirWatcher {
    _watcher: Option<RecommendedWatcher>,
    _coalescing: Option<CoalescingWatch>,
    tx: Sender<Wake>,
    rx: Receiver<Wake>,
    mode: WatchMode,
    poll_interval: Duration,
    rescan_interval: Duration,
    last_poll: Option<Instant>,
    /// Set by the event callback when it sends a `Changed`, cleared when the tailer polls: a
    /// burst of events between two polls sends one message and wakes the tailer once.
    pending: Arc<AtomicBool>,
}

impl DirWatcher {
    /// Watch the roots of `patterns`. Returns the watcher and the sender the agent uses to
    /// stop it.
    pub fn new(
        patterns: &[String],
        poll_interval: Duration,
        rescan_interval: Duration,
    ) -> (Self, Sender<Wake>) {
        let (tx, rx) = channel();
        let mut this = Self {
            _watcher: None,
            _coalescing: None,
            tx: tx.clone(),
            rx,
            mode: WatchMode::Polling,
            poll_interval,
            rescan_interval,
            last_poll: None,
            pending: Arc::new(AtomicBool::new(false)),
        };
        this.rewatch(patterns);
        (this, tx)
    }

    /// Watch the roots of a new set of patterns (config reload), replacing the old watches.
    pub fn rewatch(&mut self, patterns: &[String]) {
        self._watcher = None;
        self._coalescing = None;
        let mut roots: Vec<(PathBuf, RecursiveMode)> =
            patterns.iter().map(|p| watch_root(p)).collect();
        // A directory wanted both ways is watched recursively (which covers the other).
        roots.sort_by(|a, b| {
            let rank = |m: &RecursiveMode| u8::from(*m != RecursiveMode::Recursive);
            a.0.cmp(&b.0).then(rank(&a.1).cmp(&rank(&b.1)))
        });
        roots.dedup_by(|later, first| later.0 == first.0);
        let (recursive, flat): (Vec<_>, Vec<_>) = roots
            .into_iter()
            .partition(|(_, m)| *m == RecursiveMode::Recursive);
        let flat: Vec<PathBuf> = flat.into_iter().map(|(p, _)| p).collect();
        let recursive: Vec<PathBuf> = recursive.into_iter().map(|(p, _)| p).collect();

        let changed = {
            let events = self.tx.clone();
            let pending = self.pending.clone();
            move || pending.swap(true, Ordering::AcqRel) || events.send(Wake::Changed).is_ok()
        };
        let coalescing = CoalescingWatch::start(&flat, self.poll_interval, changed.clone())
            .map_err(|e| e.to_string());
        let watcher = if recursive.is_empty() {
            Ok(None)
        } else {
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if res.is_ok_and(|e| wakes(&e.kind)) {
                    changed();
                }
            })
            .and_then(|mut w| {
                for root in recursive {
                    w.watch(&root, RecursiveMode::Recursive)
                        .map_err(|e| e.add_path(root))?;
                }
                Ok(Some(w))
            })
            .map_err(|e| e.to_string())
        };
        match coalescing.and_then(|c| watcher.map(|w| (c, w))) {
            Ok((c, w)) => {
                self._coalescing = c;
                self._watcher = w;
                self.mode = WatchMode::Notify;
            }
            Err(error) => {
                tracing::warn!(%error, poll_interval = ?self.poll_interval,
                    "cannot watch log directories; polling instead");
                self.mode = WatchMode::Polling;
            }
        }
    }

    /// How changes are learnt.
    pub fn mode(&self) -> WatchMode {
        self.mode
    }

    /// Wait until the tailer should read again, or the agent stops. Polls are at least
    /// `poll_interval` apart, so a busy file costs a bounded number of polls a second; with
    /// events, a quiet host polls only every `rescan_interval`. `due` (a multiline flush, say)
    /// ends the wait early.
    pub fn wait(&mut self, due: Option<Instant>) -> Woken {
        let now = Instant::now();
        let cap = |t: Instant| due.map_or(t, |d| t.min(d.max(now)));
        let woken = match self.mode {
            WatchMode::Polling => self.recv_until(cap(now + self.poll_interval), false),
            WatchMode::Notify => {
                let earliest = self.last_poll.map_or(now, |l| l + self.poll_interval);
                match self.recv_until(cap(now + self.rescan_interval), true) {
                    Woken::Stop => Woken::Stop,
                    // An event: let a burst settle until the earliest next poll, then drain.
                    Woken::Poll => self.recv_until(earliest, false),
                }
            }
        };
        // Re-arm the callback before the read: an event from here on sends a new `Changed`,
        // and what it announces is either read now or by the poll it causes.
        self.pending.store(false, Ordering::Release);
        while let Ok(w) = self.rx.try_recv() {
            if w == Wake::Stop {
                return Woken::Stop;
            }
        }
        self.last_poll = Some(Instant::now());
        woken
    }

    /// Wait until `deadline`; with `on_change`, also return at the first change event.
    fn recv_until(&self, deadline: Instant, on_change: bool) -> Woken {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return Woken::Stop,
                Ok(Wake::Changed) if on_change => return Woken::Poll,
                Ok(Wake::Changed) => {}
                Err(RecvTimeoutError::Timeout) => return Woken::Poll,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_of_globs() {
        assert_eq!(
            watch_root("/var/log/app/*.log"),
            (PathBuf::from("/var/log/app"), RecursiveMode::NonRecursive)
        );
        assert_eq!(
            watch_root("/var/log/*/x.log"),
            (PathBuf::from("/var/log"), RecursiveMode::Recursive)
        );
        assert_eq!(
            watch_root("/srv/**/*.log"),
            (PathBuf::from("/srv"), RecursiveMode::Recursive)
        );
        assert_eq!(
            watch_root("/var/log/syslog"),
            (PathBuf::from("/var/log"), RecursiveMode::NonRecursive)
        );
    }

    #[test]
    fn an_event_wakes_the_waiter_before_the_rescan_interval() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = format!("{}/*.log", dir.path().display());
        let (mut w, _stop) = DirWatcher::new(
            &[pattern],
            Duration::from_millis(1),
            Duration::from_secs(3600),
        );
        assert_eq!(w.mode(), WatchMode::Notify);
        std::fs::write(dir.path().join("a.log"), "x\n").unwrap();
        // With a one-hour rescan interval, only the event can end this wait.
        assert_eq!(w.wait(None), Woken::Poll);
    }

    #[test]
    fn a_burst_of_events_wakes_the_waiter_once() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = format!("{}/*.log", dir.path().display());
        let (w, _stop) = DirWatcher::new(
            &[pattern],
            Duration::from_millis(1),
            Duration::from_secs(3600),
        );
        assert_eq!(w.mode(), WatchMode::Notify);
        let path = dir.path().join("a.log");
        for i in 0..50 {
            std::fs::write(&path, format!("{i}\n")).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !w.pending.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "no event arrived");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Until the tailer polls again, later events send nothing.
        assert_eq!(w.rx.try_iter().count(), 1);
    }

    #[test]
    fn a_wildcard_directory_is_watched_recursively_and_a_plain_one_coalesced() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("app1");
        std::fs::create_dir(&sub).unwrap();
        let flat = tempfile::tempdir().unwrap();
        let patterns = [
            format!("{}/*/*.log", dir.path().display()),
            format!("{}/*.log", flat.path().display()),
        ];
        let (mut w, _stop) = DirWatcher::new(
            &patterns,
            Duration::from_millis(1),
            Duration::from_secs(3600),
        );
        assert_eq!(w.mode(), WatchMode::Notify);
        assert!(w._watcher.is_some() && w._coalescing.is_some());
        // A file deep under the recursive root wakes the waiter (only an event can: the rescan
        // interval is an hour).
        std::fs::write(sub.join("a.log"), "x\n").unwrap();
        assert_eq!(w.wait(None), Woken::Poll);
        // (That the coalescing watch wakes is `coalesce`'s tests.)
    }

    #[test]
    fn the_tailers_own_reads_do_not_wake_it() {
        use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
        assert!(!wakes(&notify::EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!wakes(&notify::EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(wakes(&notify::EventKind::Modify(ModifyKind::Any)));
        assert!(wakes(&notify::EventKind::Create(CreateKind::File)));
    }

    #[test]
    fn a_due_time_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = format!("{}/*.log", dir.path().display());
        let (mut w, _stop) = DirWatcher::new(
            &[pattern],
            Duration::from_millis(1),
            Duration::from_secs(3600),
        );
        // Already due: returns at once instead of waiting an hour for the rescan.
        assert_eq!(w.wait(Some(Instant::now())), Woken::Poll);
    }

    #[test]
    fn stop_ends_a_wait_and_a_missing_directory_degrades_to_polling() {
        let (mut w, stop) = DirWatcher::new(
            &["/nonexistent-outpost-dir/*.log".to_owned()],
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        );
        assert_eq!(w.mode(), WatchMode::Polling);
        stop.send(Wake::Stop).unwrap();
        assert_eq!(w.wait(None), Woken::Stop);
    }
}
