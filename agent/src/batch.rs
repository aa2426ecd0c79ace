//! The batcher: a pure state machine that collects records and closes a batch when it reaches
//! its record count, its byte budget or its age. It never reads a clock: callers pass `now`.

use crate::config::BatchLimits;
use outpost_proto::Record;
use std::time::Instant;

/// Collects records into batches.
#[derive(Debug)]
pub struct Batcher {
    limits: BatchLimits,
    records: Vec<Record>,
    bytes: usize,
    opened: Option<Instant>,
}

impl Batcher {
    /// An empty batcher.
    pub fn new(limits: BatchLimits) -> Self {
        Self {
            limits,
            records: Vec::new(),
            bytes: 0,
            opened: None,
        }
    }

    /// Add a record. Batches it closes (to make room for it, or because it filled one) are
    /// appended to `closed`, oldest first. A single record larger than the byte budget travels
    /// alone.
    pub fn push(&mut self, record: Record, now: Instant, closed: &mut Vec<Vec<Record>>) {
        let size = record.size_hint();
        if !self.records.is_empty() && self.bytes + size > self.limits.max_bytes {
            closed.extend(self.take());
        }
        self.opened.get_or_insert(now);
        self.records.push(record);
        self.bytes += size;
        if self.records.len() >= self.limits.max_records || self.bytes >= self.limits.max_bytes {
            closed.extend(self.take());
        }
    }

    /// When the open batch must be closed by age, if one is open.
    pub fn deadline(&self) -> Option<Instant> {
        self.opened.map(|o| o + self.limits.max_age)
    }

    /// Close the open batch if it has reached its age.
    pub fn poll(&mut self, now: Instant) -> Option<Vec<Record>> {
        if self.deadline().is_some_and(|d| now >= d) {
            self.take()
        } else {
            None
        }
    }

    /// Close the open batch whatever its state (shutdown).
    pub fn flush(&mut self) -> Option<Vec<Record>> {
        self.take()
    }

    /// Records in the open batch.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no batch is open.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn take(&mut self) -> Option<Vec<Record>> {
        self.opened = None;
        self.bytes = 0;
        (!self.records.is_empty()).then(|| std::mem::take(&mut self.records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_proto::LogRecord;
    use std::time::Duration;

    fn log(n: usize, len: usize) -> Record {
        Record::Log(LogRecord {
            ts_ms: n as i64,
            source: String::new(),
            service: String::new(),
            line: vec![b'x'; len],
            level: None,
        })
    }

    fn limits(max_records: usize, max_bytes: usize) -> BatchLimits {
        BatchLimits {
            max_records,
            max_bytes,
            max_age: Duration::from_secs(5),
        }
    }

    #[test]
    fn closes_on_record_count() {
        let mut b = Batcher::new(limits(3, 1 << 20));
        let now = Instant::now();
        let mut out = Vec::new();
        for i in 0..7 {
            b.push(log(i, 1), now, &mut out);
        }
        assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3]);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn closes_before_the_byte_budget_is_exceeded() {
        let size = log(0, 100).size_hint();
        let mut b = Batcher::new(limits(1000, size * 3 + 1));
        let now = Instant::now();
        let mut out = Vec::new();
        for i in 0..4 {
            b.push(log(i, 100), now, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 3);
        assert!(out[0].iter().map(Record::size_hint).sum::<usize>() <= size * 3 + 1);
    }

    #[test]
    fn an_oversized_record_travels_alone_and_in_order() {
        let mut b = Batcher::new(limits(1000, 500));
        let now = Instant::now();
        let mut out = Vec::new();
        b.push(log(0, 10), now, &mut out);
        b.push(log(1, 10_000), now, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], vec![log(0, 10)]);
        assert_eq!(out[1], vec![log(1, 10_000)]);
        assert!(b.is_empty());
    }

    #[test]
    fn closes_by_age_from_the_first_record() {
        let mut b = Batcher::new(limits(1000, 1 << 20));
        let t0 = Instant::now();
        let mut out = Vec::new();
        assert_eq!(b.deadline(), None);
        b.push(log(0, 1), t0, &mut out);
        b.push(log(1, 1), t0 + Duration::from_secs(4), &mut out);
        assert_eq!(b.deadline(), Some(t0 + Duration::from_secs(5)));
        assert!(b.poll(t0 + Duration::from_millis(4999)).is_none());
        assert_eq!(
            b.poll(t0 + Duration::from_secs(5)).map(|v| v.len()),
            Some(2)
        );
        assert_eq!(b.deadline(), None);
        assert!(b.flush().is_none());
    }
}
