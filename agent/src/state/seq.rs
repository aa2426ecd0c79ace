//! The batch sequence number: it only grows, across restarts, crashes and even a lost state
//! directory.
//!
//! The sink names a batch by `(agent_id, seq)` and a re-sent batch overwrites itself, so a
//! sequence number that went backwards would overwrite *older, different* data. Two guards:
//! the high-water mark of a leased block is persisted (atomically) before any number of the block
//! is used, and every start begins at least at `unix_ms * 1000`, so even a wiped state directory
//! does not reuse numbers unless the clock also went back.

use std::io;
use std::path::{Path, PathBuf};

/// How many numbers one persisted lease covers.
pub const LEASE: u64 = 1024;

/// Hands out sequence numbers and persists leases.
#[derive(Debug)]
pub struct SeqAllocator {
    path: PathBuf,
    next: u64,
    lease_end: u64,
}

/// What a start found in the sequence file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// A valid high-water mark.
    Found(u64),
    /// No file (first start).
    Missing,
    /// A file that did not parse; the clock floor is used.
    Corrupt,
}

/// The pure rule: where numbering starts given the persisted mark and the clock.
pub fn start_at(recovered: Recovered, now_ms: u64) -> u64 {
    let floor = now_ms.saturating_mul(1000);
    match recovered {
        Recovered::Found(n) => n.max(floor),
        Recovered::Missing | Recovered::Corrupt => floor,
    }
}

impl SeqAllocator {
    /// Open (or create) the sequence file `dir/seq`.
    pub fn open(dir: &Path, now_ms: u64) -> io::Result<(Self, Recovered)> {
        let path = dir.join("seq");
        let recovered = match std::fs::read_to_string(&path) {
            Ok(t) => t
                .trim()
                .parse()
                .map_or(Recovered::Corrupt, Recovered::Found),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Recovered::Missing,
            Err(e) => return Err(e),
        };
        let next = start_at(recovered, now_ms);
        let mut alloc = Self {
            path,
            next,
            lease_end: next,
        };
        alloc.extend()?;
        Ok((alloc, recovered))
    }

    fn extend(&mut self) -> io::Result<()> {
        let end = self.next.saturating_add(LEASE);
        outpost_durable::replace(&self.path, format!("{end}\n").as_bytes())?;
        self.lease_end = end;
        Ok(())
    }

    /// The next sequence number. Persists a new lease first when the current one is used up.
    pub fn allocate(&mut self) -> io::Result<u64> {
        if self.next >= self.lease_end {
            self.extend()?;
        }
        let n = self.next;
        self.next += 1;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_across_restarts_even_with_a_stuck_clock() {
        let dir = tempfile::tempdir().unwrap();
        let (mut a, r) = SeqAllocator::open(dir.path(), 5).unwrap();
        assert_eq!(r, Recovered::Missing);
        let first = a.allocate().unwrap();
        let mut last = first;
        for _ in 0..(LEASE + 10) {
            let n = a.allocate().unwrap();
            assert!(n > last);
            last = n;
        }
        drop(a);
        // Same clock reading: the persisted lease must keep numbers growing.
        let (mut b, r) = SeqAllocator::open(dir.path(), 5).unwrap();
        assert!(matches!(r, Recovered::Found(_)));
        assert!(b.allocate().unwrap() > last);
    }

    #[test]
    fn corrupt_file_falls_back_to_the_clock_floor() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("seq"), "garbage").unwrap();
        let (mut a, r) = SeqAllocator::open(dir.path(), 7).unwrap();
        assert_eq!(r, Recovered::Corrupt);
        assert_eq!(a.allocate().unwrap(), 7000);
    }

    #[test]
    fn clock_floor_wins_over_an_old_mark() {
        assert_eq!(start_at(Recovered::Found(10), 1), 1000);
        assert_eq!(start_at(Recovered::Found(5000), 1), 5000);
    }
}
