//! The batcher: a pure state machine that collects records into batches and closes a batch when
//! it reaches its record count, its byte budget or its age. Records are serialised as they come
//! ([`FrameBuilder`]): a batch holds bytes, not records. It never reads a clock: callers pass
//! `now`.

use crate::config::BatchLimits;
use outpost_proto::{EncodeError, FrameBuilder, MetricPoint, Record};
use std::time::Instant;

/// Collects records into batches.
#[derive(Debug)]
pub struct Batcher {
    limits: BatchLimits,
    records: FrameBuilder,
    bytes: usize,
    opened: Option<Instant>,
    /// Buffers of encoded batches, given back for the next batches.
    spare: Vec<Vec<u8>>,
}

/// Spare buffers kept (a batch's buffer is reused, so a busy agent does not map, fault in and
/// unmap a fresh megabyte for every batch).
const SPARE_BUFFERS: usize = 2;

impl Batcher {
    /// An empty batcher.
    pub fn new(limits: BatchLimits) -> Self {
        Self {
            limits,
            records: FrameBuilder::new(),
            bytes: 0,
            opened: None,
            spare: Vec::new(),
        }
    }

    /// Give back the buffer of a batch that has been encoded, for a later batch.
    pub fn recycle(&mut self, buffer: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(buffer);
        }
    }

    /// Add a log record (by its parts). Batches it closes (to make room for it, or because it
    /// filled one) are appended to `closed`, oldest first. A single record larger than the byte
    /// budget travels alone.
    pub fn push_log(
        &mut self,
        line: LogLine<'_>,
        now: Instant,
        closed: &mut Vec<FrameBuilder>,
    ) -> Result<(), EncodeError> {
        let size = outpost_proto::log_size_hint(line.source, line.service, line.bytes);
        self.push_with(size, now, closed, |b| {
            b.push_log(
                line.ts_ms,
                line.source,
                line.service,
                line.bytes,
                line.level,
            )
        })
    }

    /// Add a metric point. One with more dimensions than a frame can carry is refused
    /// ([`EncodeError::TooManyDimensions`]) and not added.
    pub fn push_metric(
        &mut self,
        point: MetricPoint,
        now: Instant,
        closed: &mut Vec<FrameBuilder>,
    ) -> Result<(), EncodeError> {
        let record = Record::Metric(point);
        // Checked before anything is closed to make room for it.
        FrameBuilder::check(&record)?;
        self.push_with(record.size_hint(), now, closed, |b| b.push(&record))
    }

    /// Add the points of one sample (or one scrape) together: when the open batch cannot take
    /// them all, it is closed first, so that they travel in one batch unless they alone exceed
    /// one. (The AWS sink stores the points of a metric at one time as one DynamoDB item; a
    /// sample split over two batches would have the second overwrite the first.) Points no
    /// frame can carry are refused, with their errors returned, and the others added.
    pub fn push_metrics(
        &mut self,
        points: Vec<MetricPoint>,
        now: Instant,
        closed: &mut Vec<FrameBuilder>,
    ) -> Vec<EncodeError> {
        let mut errors = Vec::new();
        let records: Vec<Record> = points
            .into_iter()
            .map(Record::Metric)
            .filter(|r| match FrameBuilder::check(r) {
                Ok(()) => true,
                Err(e) => {
                    errors.push(e);
                    false
                }
            })
            .collect();
        let size: usize = records.iter().map(Record::size_hint).sum();
        if !self.records.is_empty()
            && (self.records.len() + records.len() > self.limits.max_records
                || self.bytes + size > self.limits.max_bytes)
        {
            closed.extend(self.take());
        }
        for record in records {
            if let Err(e) = self.push_with(record.size_hint(), now, closed, |b| b.push(&record)) {
                errors.push(e);
            }
        }
        errors
    }

    fn push_with(
        &mut self,
        size: usize,
        now: Instant,
        closed: &mut Vec<FrameBuilder>,
        add: impl FnOnce(&mut FrameBuilder) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        if !self.records.is_empty() && self.bytes + size > self.limits.max_bytes {
            closed.extend(self.take());
        }
        add(&mut self.records)?;
        self.opened.get_or_insert(now);
        self.bytes += size;
        if self.records.len() >= self.limits.max_records || self.bytes >= self.limits.max_bytes {
            closed.extend(self.take());
        }
        Ok(())
    }

    /// When the open batch must be closed by age, if one is open.
    pub fn deadline(&self) -> Option<Instant> {
        self.opened.map(|o| o + self.limits.max_age)
    }

    /// Close the open batch if it has reached its age. A batch closed by age means little is
    /// coming in: the spare buffers are freed too.
    pub fn poll(&mut self, now: Instant) -> Option<FrameBuilder> {
        if self.deadline().is_some_and(|d| now >= d) {
            self.spare.clear();
            self.take()
        } else {
            None
        }
    }

    /// Close the open batch whatever its state (shutdown).
    pub fn flush(&mut self) -> Option<FrameBuilder> {
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

    fn take(&mut self) -> Option<FrameBuilder> {
        self.opened = None;
        self.bytes = 0;
        if self.records.is_empty() {
            return None;
        }
        let next = self
            .spare
            .pop()
            .map(FrameBuilder::from_buffer)
            .unwrap_or_default();
        Some(std::mem::replace(&mut self.records, next))
    }
}

/// A log record's parts, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct LogLine<'a> {
    /// When it was read, unix milliseconds.
    pub ts_ms: i64,
    /// The file it came from.
    pub source: &'a str,
    /// The input's service.
    pub service: &'a str,
    /// Its bytes.
    pub bytes: &'a [u8],
    /// Its detected level.
    pub level: Option<outpost_proto::Level>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_proto::LogRecord;
    use std::time::Duration;

    fn log(n: usize, len: usize) -> LogRecord {
        LogRecord {
            ts_ms: n as i64,
            source: String::new(),
            service: String::new(),
            line: vec![b'x'; len],
            level: None,
        }
    }

    fn push(b: &mut Batcher, r: &LogRecord, now: Instant, out: &mut Vec<FrameBuilder>) {
        let line = LogLine {
            ts_ms: r.ts_ms,
            source: &r.source,
            service: &r.service,
            bytes: &r.line,
            level: r.level,
        };
        b.push_log(line, now, out).unwrap();
    }

    fn records(f: &FrameBuilder) -> Vec<Record> {
        f.records().unwrap()
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
            push(&mut b, &log(i, 1), now, &mut out);
        }
        assert_eq!(
            out.iter().map(FrameBuilder::len).collect::<Vec<_>>(),
            [3, 3]
        );
        assert_eq!(b.len(), 1);
        assert_eq!(records(&out[1])[0], Record::Log(log(3, 1)));
    }

    #[test]
    fn closes_before_the_byte_budget_is_exceeded() {
        let size = Record::Log(log(0, 100)).size_hint();
        let mut b = Batcher::new(limits(1000, size * 3 + 1));
        let now = Instant::now();
        let mut out = Vec::new();
        for i in 0..4 {
            push(&mut b, &log(i, 100), now, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 3);
        assert!(out[0].body_len() <= size * 3 + 1);
    }

    #[test]
    fn an_oversized_record_travels_alone_and_in_order() {
        let mut b = Batcher::new(limits(1000, 500));
        let now = Instant::now();
        let mut out = Vec::new();
        push(&mut b, &log(0, 10), now, &mut out);
        push(&mut b, &log(1, 10_000), now, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(records(&out[0]), vec![Record::Log(log(0, 10))]);
        assert_eq!(records(&out[1]), vec![Record::Log(log(1, 10_000))]);
        assert!(b.is_empty());
    }

    #[test]
    fn a_metric_no_frame_can_carry_is_refused_and_the_batch_goes_on() {
        use outpost_proto::{Dimension, Unit};
        let mut b = Batcher::new(limits(1000, 1 << 20));
        let now = Instant::now();
        let mut out = Vec::new();
        let point = |dims: u32| MetricPoint {
            name: "m".into(),
            ts_ms: 1,
            value: 1.0,
            unit: Unit::Count,
            dimensions: (0..dims)
                .map(|i| Dimension {
                    key: format!("k{i}"),
                    value: "v".into(),
                })
                .collect(),
        };
        let wide = outpost_proto::limits::MAX_DIMENSIONS + 1;
        assert!(matches!(
            b.push_metric(point(wide), now, &mut out),
            Err(EncodeError::TooManyDimensions { .. })
        ));
        assert!(b.is_empty() && b.deadline().is_none());
        b.push_metric(point(2), now, &mut out).unwrap();
        assert_eq!(
            b.flush().map(|f| records(&f)),
            Some(vec![Record::Metric(point(2))])
        );
    }

    #[test]
    fn a_sample_is_never_split_over_two_batches() {
        use outpost_proto::{Dimension, Unit};
        let mut b = Batcher::new(limits(5, 1 << 20));
        let now = Instant::now();
        let mut out = Vec::new();
        for n in 0..3 {
            push(&mut b, &log(n, 10), now, &mut out);
        }
        let disk = |mount: &str| MetricPoint {
            name: "disk.used".into(),
            ts_ms: 7,
            value: 1.0,
            unit: Unit::Percent,
            dimensions: vec![Dimension {
                key: "mount".into(),
                value: mount.into(),
            }],
        };
        let sample: Vec<MetricPoint> = ["/", "/boot", "/var", "/home"].map(disk).into();
        // Room for two more records: the open batch (the three lines) closes first and the
        // four points travel together.
        let errors = b.push_metrics(sample.clone(), now, &mut out);
        assert!(errors.is_empty());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 3);
        assert_eq!(
            b.flush().map(|f| records(&f)),
            Some(sample.into_iter().map(Record::Metric).collect())
        );
        // A point no frame can carry is refused, the others added.
        let mut wide = disk("/");
        wide.dimensions = (0..=outpost_proto::limits::MAX_DIMENSIONS)
            .map(|i| Dimension {
                key: format!("k{i}"),
                value: "v".into(),
            })
            .collect();
        let errors = b.push_metrics(vec![wide, disk("/")], now, &mut out);
        assert!(matches!(
            errors[..],
            [EncodeError::TooManyDimensions { .. }]
        ));
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn a_recycled_buffer_carries_the_next_batch() {
        let mut b = Batcher::new(limits(2, 1 << 20));
        let now = Instant::now();
        let mut out = Vec::new();
        push(&mut b, &log(0, 100), now, &mut out);
        push(&mut b, &log(1, 100), now, &mut out);
        let first = out.pop().unwrap();
        assert_eq!(first.len(), 2);
        let buffer = first.into_buffer();
        let ptr = buffer.as_ptr();
        b.recycle(buffer);
        push(&mut b, &log(2, 10), now, &mut out);
        push(&mut b, &log(3, 10), now, &mut out);
        let second = out.pop().unwrap();
        assert_eq!(
            records(&second),
            vec![Record::Log(log(2, 10)), Record::Log(log(3, 10))]
        );
        // The second batch opened before the buffer came back; the third is written into it.
        push(&mut b, &log(4, 10), now, &mut out);
        let third = b.flush().unwrap();
        assert_eq!(records(&third), vec![Record::Log(log(4, 10))]);
        let (second, third) = (second.into_buffer(), third.into_buffer());
        assert_ne!(second.as_ptr(), ptr);
        assert_eq!(third.as_ptr(), ptr);
        // Closing by age (little traffic) lets the spare buffers go.
        b.recycle(third);
        assert_eq!(b.spare.len(), 1);
        push(&mut b, &log(5, 10), now, &mut out);
        assert!(b.poll(now + Duration::from_secs(5)).is_some());
        assert!(b.spare.is_empty());
    }

    #[test]
    fn closes_by_age_from_the_first_record() {
        let mut b = Batcher::new(limits(1000, 1 << 20));
        let t0 = Instant::now();
        let mut out = Vec::new();
        assert_eq!(b.deadline(), None);
        push(&mut b, &log(0, 1), t0, &mut out);
        push(&mut b, &log(1, 1), t0 + Duration::from_secs(4), &mut out);
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
