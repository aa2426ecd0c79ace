//! A coalescing inotify watch of directories (not recursive): the only file that imports
//! `inotify`.
//!
//! The `notify` crate's watcher thread wakes up for every event, and a log file written line by
//! line produces an event per write: thousands of wake-ups a second, each allocating an event
//! with its path, only for the tailer to read the file a few times a second anyway. Here the
//! reader thread, once it has passed on a change, sleeps for `settle` (the tailer's
//! `poll_interval`) before it reads the queue again; meanwhile the kernel merges repeated
//! events for the same file into one. So a busy directory costs at most one wake-up of this
//! thread per `settle`, whatever the write rate. Reads and opens (the tailer's own) are not
//! watched at all.

use inotify::{Inotify, WatchMask, Watches};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What can mean new data or new files in a directory.
fn mask() -> WatchMask {
    WatchMask::MODIFY
        | WatchMask::CREATE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::DELETE
        | WatchMask::CLOSE_WRITE
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

/// Watches directories; calls `on_change` (from its own thread) at most once per `settle`.
pub struct CoalescingWatch {
    watches: Watches,
    descriptors: Vec<inotify::WatchDescriptor>,
    stop: Arc<AtomicBool>,
}

impl CoalescingWatch {
    /// Watch `dirs` (an empty list watches nothing and starts no thread).
    pub fn start(
        dirs: &[PathBuf],
        settle: Duration,
        on_change: impl Fn() -> bool + Send + 'static,
    ) -> io::Result<Option<Self>> {
        if dirs.is_empty() {
            return Ok(None);
        }
        let mut inotify = Inotify::init()?;
        let mut watches = inotify.watches();
        let mut descriptors = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let wd = watches
                .add(dir, mask())
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
            descriptors.push(wd);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        std::thread::Builder::new()
            .name("outpost-inotify".to_owned())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match inotify.read_events_blocking(&mut buf) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(error) => {
                            tracing::warn!(%error, "inotify read failed; the periodic rescan goes on");
                            return;
                        }
                    }
                    if thread_stop.load(Ordering::Acquire) || !on_change() {
                        return;
                    }
                    // Let the next events gather (and merge) in the kernel's queue.
                    std::thread::sleep(settle);
                }
            })?;
        Ok(Some(Self {
            watches,
            descriptors,
            stop,
        }))
    }
}

impl Drop for CoalescingWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Removing the watches queues IN_IGNORED events: the reader wakes, sees `stop`, and
        // ends, closing the inotify descriptor.
        for wd in self.descriptors.drain(..) {
            let _ = self.watches.remove(wd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A watch of `dir` that settles for an hour after a change, and its count of changes.
    fn counting_watch(dir: &std::path::Path) -> (CoalescingWatch, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let watch =
            CoalescingWatch::start(&[dir.to_path_buf()], Duration::from_secs(3600), move || {
                c.fetch_add(1, Ordering::SeqCst);
                true
            })
            .unwrap()
            .unwrap();
        (watch, calls)
    }

    #[test]
    fn writes_wake_it_and_a_burst_is_one_wake_up_per_settle() {
        let dir = tempfile::tempdir().unwrap();
        let (watch, calls) = counting_watch(dir.path());
        let path = dir.path().join("a.log");
        std::fs::write(&path, "0\n").unwrap();
        wait_for("the first change", || calls.load(Ordering::SeqCst) == 1);
        // The reader now settles for an hour: more writes cannot call again.
        for i in 0..200 {
            std::fs::write(&path, format!("{i}\n")).unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        drop(watch);
    }

    #[test]
    fn reading_a_file_is_not_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "x\n").unwrap();
        let (_watch, calls) = counting_watch(dir.path());
        for _ in 0..20 {
            assert_eq!(std::fs::read(&path).unwrap(), b"x\n");
            let _ = std::fs::read_dir(dir.path()).unwrap().count();
        }
        // Nothing can signal that no event came: give the reads' events (if any were
        // watched) time to arrive.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(calls.load(Ordering::SeqCst), 0, "reads woke the watch");
        std::fs::write(dir.path().join("b.log"), "y\n").unwrap();
        wait_for("the write", || calls.load(Ordering::SeqCst) == 1);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = CoalescingWatch::start(
            std::slice::from_ref(&missing),
            Duration::from_millis(1),
            || true,
        )
        .err()
        .unwrap();
        assert!(
            err.to_string().contains(&*missing.to_string_lossy()),
            "{err}"
        );
        assert!(
            CoalescingWatch::start(&[], Duration::from_millis(1), || true)
                .unwrap()
                .is_none()
        );
    }
}
