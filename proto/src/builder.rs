//! Building a frame record by record.
//!
//! [`FrameBuilder`] serialises each record (postcard) as it is added, so a batcher holds bytes
//! rather than records (no per-record allocations kept alive, and the records' memory is freed
//! where they were made), and the frame's compression does not serialise them again.
//! [`FrameEncoder`] turns a builder into a frame, reusing its zstd context and buffers from one
//! frame to the next. The bytes are exactly those of [`crate::encode_with_level`] for the same
//! batch: that function is built on these two.

use crate::error::{DecodeError, EncodeError};
use crate::header::{FLAG_ZSTD, FORMAT_VERSION, HEADER_LEN, MAGIC};
use crate::limits::{MAX_COMPRESSED_LEN, MAX_DECOMPRESSED_LEN, MAX_DIMENSIONS, MAX_RECORDS};
use crate::types::{AgentIdentity, Level, MetricPoint, Record};
use serde::Serialize;

/// A log record by reference: serialises exactly as [`crate::LogRecord`] does.
#[derive(Serialize)]
#[serde(rename = "LogRecord")]
struct LogRef<'a> {
    ts_ms: i64,
    source: &'a str,
    service: &'a str,
    #[serde(with = "serde_bytes")]
    line: &'a [u8],
    level: Option<Level>,
}

/// A record by reference: serialises exactly as [`Record`] does (same variants, same order).
#[derive(Serialize)]
#[serde(rename = "Record")]
enum RecordRef<'a> {
    #[allow(dead_code)] // Never built: it only holds the variant index of `Record::Metric`.
    Metric(&'a MetricPoint),
    Log(LogRef<'a>),
}

/// The leading fields of a [`crate::Batch`], in its field order.
#[derive(Serialize)]
struct BatchHead<'a> {
    agent: &'a AgentIdentity,
    seq: u64,
    created_ms: i64,
    /// The length prefix of the records sequence (postcard writes a `usize` and a sequence
    /// length the same way: a LEB128 varint).
    record_count: u64,
}

/// Records serialised one by one, in order, ready to become a frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameBuilder {
    body: Vec<u8>,
    /// Where each record's bytes end in `body`.
    ends: Vec<usize>,
}

impl FrameBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder that writes into `buffer` (cleared; its capacity is kept): to reuse the
    /// memory of a builder already encoded, see [`into_buffer`](Self::into_buffer).
    pub fn from_buffer(mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        Self {
            body: buffer,
            ends: Vec::new(),
        }
    }

    /// The builder's byte buffer, for [`from_buffer`](Self::from_buffer).
    pub fn into_buffer(self) -> Vec<u8> {
        self.body
    }

    /// Add a record. A metric point with more than [`MAX_DIMENSIONS`] dimensions is refused
    /// (no frame could carry it) and nothing is added.
    pub fn push(&mut self, record: &Record) -> Result<(), EncodeError> {
        Self::check(record)?;
        self.append(record)
    }

    /// Whether a frame can carry `record` ([`push`](Self::push) refuses it otherwise): a metric
    /// point may have at most [`MAX_DIMENSIONS`] dimensions.
    pub fn check(record: &Record) -> Result<(), EncodeError> {
        match record {
            Record::Metric(m) if m.dimensions.len() > MAX_DIMENSIONS as usize => {
                Err(EncodeError::TooManyDimensions {
                    count: m.dimensions.len(),
                    limit: MAX_DIMENSIONS,
                })
            }
            _ => Ok(()),
        }
    }

    /// Add a log record from borrowed parts: the same bytes as pushing the equivalent
    /// [`crate::LogRecord`], without building one.
    pub fn push_log(
        &mut self,
        ts_ms: i64,
        source: &str,
        service: &str,
        line: &[u8],
        level: Option<Level>,
    ) -> Result<(), EncodeError> {
        self.append(&RecordRef::Log(LogRef {
            ts_ms,
            source,
            service,
            line,
            level,
        }))
    }

    fn append<T: Serialize>(&mut self, record: &T) -> Result<(), EncodeError> {
        let body = std::mem::take(&mut self.body);
        let mark = body.len();
        match postcard::to_extend(record, body) {
            Ok(body) => {
                self.body = body;
                self.ends.push(self.body.len());
                Ok(())
            }
            // postcard into a Vec fails only on types it cannot represent; ours are all
            // representable, but keep the builder consistent whatever happens.
            Err(e) => {
                self.body.truncate(mark);
                Err(EncodeError::Serialize(e.to_string()))
            }
        }
    }

    /// Records added.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Serialised bytes of the records.
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// Move the records from index `at` on into a new builder (to halve a batch that exceeds a
    /// frame limit).
    pub fn split_off(&mut self, at: usize) -> FrameBuilder {
        let at = at.min(self.ends.len());
        let cut = if at == 0 { 0 } else { self.ends[at - 1] };
        let body = self.body.split_off(cut);
        let ends = self
            .ends
            .split_off(at)
            .into_iter()
            .map(|e| e - cut)
            .collect();
        FrameBuilder { body, ends }
    }

    /// The records, deserialised again (tests and diagnostics).
    pub fn records(&self) -> Result<Vec<Record>, DecodeError> {
        let mut out = Vec::with_capacity(self.ends.len());
        let mut rest = &self.body[..];
        while !rest.is_empty() {
            let (record, tail) = postcard::take_from_bytes::<Record>(rest)
                .map_err(|e| DecodeError::Body(e.to_string()))?;
            out.push(record);
            rest = tail;
        }
        Ok(out)
    }
}

/// Turns builders into frames at one zstd level, reusing the compression context and buffers.
pub struct FrameEncoder {
    level: i32,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    plain: Vec<u8>,
    compressed: Vec<u8>,
}

impl std::fmt::Debug for FrameEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameEncoder")
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl FrameEncoder {
    /// An encoder compressing at zstd `level`.
    pub fn new(level: i32) -> Self {
        Self {
            level,
            compressor: None,
            plain: Vec::new(),
            compressed: Vec::new(),
        }
    }

    /// Free the compression context and the buffers (an idle agent need not keep megabytes for
    /// the next batch); the next [`encode`](Self::encode) makes new ones.
    pub fn release(&mut self) {
        self.compressor = None;
        self.plain = Vec::new();
        self.compressed = Vec::new();
    }

    /// The frame of a batch whose records are in `records`: the bytes
    /// [`crate::encode_with_level`] produces for the same batch.
    pub fn encode(
        &mut self,
        agent: &AgentIdentity,
        seq: u64,
        created_ms: i64,
        records: &FrameBuilder,
    ) -> Result<Vec<u8>, EncodeError> {
        if records.len() > MAX_RECORDS as usize {
            return Err(EncodeError::TooManyRecords {
                count: records.len(),
                limit: MAX_RECORDS,
            });
        }
        let head = BatchHead {
            agent,
            seq,
            created_ms,
            record_count: records.len() as u64,
        };
        let mut plain = std::mem::take(&mut self.plain);
        plain.clear();
        let mut plain =
            postcard::to_extend(&head, plain).map_err(|e| EncodeError::Serialize(e.to_string()))?;
        plain.extend_from_slice(&records.body);
        let result = self.compress_frame(&plain, records.len());
        // Keep the buffer for the next frame, unless one huge batch made it huge.
        if plain.capacity() <= KEEP_CAPACITY {
            self.plain = plain;
        }
        result
    }

    fn compress_frame(
        &mut self,
        plain: &[u8],
        record_count: usize,
    ) -> Result<Vec<u8>, EncodeError> {
        if plain.len() > MAX_DECOMPRESSED_LEN as usize {
            return Err(EncodeError::DecompressedTooLarge {
                len: plain.len(),
                limit: MAX_DECOMPRESSED_LEN,
            });
        }
        let compress_err = |e: std::io::Error| EncodeError::Compress(e.to_string());
        let compressor = match &mut self.compressor {
            Some(c) => c,
            None => self
                .compressor
                .insert(zstd::bulk::Compressor::new(self.level).map_err(compress_err)?),
        };
        let compressed = &mut self.compressed;
        compressed.clear();
        compressed.reserve(zstd::zstd_safe::compress_bound(plain.len()));
        compressor
            .compress_to_buffer(plain, compressed)
            .map_err(compress_err)?;
        if compressed.len() > MAX_COMPRESSED_LEN as usize {
            return Err(EncodeError::CompressedTooLarge {
                len: compressed.len(),
                limit: MAX_COMPRESSED_LEN,
            });
        }
        // Both lengths are bounded by limits that fit in u32, checked above; so is the count
        // (MAX_RECORDS, checked by the caller).
        let compressed_len = compressed.len() as u32;
        let decompressed_len = plain.len() as u32;
        let mut frame = Vec::with_capacity(HEADER_LEN + compressed.len());
        frame.extend_from_slice(&MAGIC);
        frame.push(FORMAT_VERSION);
        frame.push(FLAG_ZSTD);
        frame.extend_from_slice(&0u16.to_le_bytes());
        frame.extend_from_slice(&(record_count as u32).to_le_bytes());
        frame.extend_from_slice(&compressed_len.to_le_bytes());
        frame.extend_from_slice(&decompressed_len.to_le_bytes());
        frame.extend_from_slice(&crc32c::crc32c(compressed).to_le_bytes());
        frame.extend_from_slice(compressed);
        if compressed.capacity() > KEEP_CAPACITY {
            *compressed = Vec::new();
        }
        Ok(frame)
    }
}

/// Buffers larger than this are not kept between frames.
const KEEP_CAPACITY: usize = 8 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Dimension, LogRecord, Unit};
    use crate::{Batch, decode, encode_with_level};

    fn agent() -> AgentIdentity {
        AgentIdentity {
            agent_id: "a".into(),
            hostname: "h".into(),
            agent_version: "0".into(),
        }
    }

    fn log(i: i64) -> LogRecord {
        LogRecord {
            ts_ms: i,
            source: "/var/log/x.log".into(),
            service: "svc".into(),
            line: format!("line {i}").into_bytes(),
            level: (i % 2 == 0).then_some(Level::Warn),
        }
    }

    #[test]
    fn push_log_serialises_like_a_log_record() {
        let mut a = FrameBuilder::new();
        let mut b = FrameBuilder::new();
        for i in 0..5 {
            let r = log(i);
            a.push(&Record::Log(r.clone())).unwrap();
            b.push_log(r.ts_ms, &r.source, &r.service, &r.line, r.level)
                .unwrap();
        }
        assert_eq!(a, b);
        assert_eq!(
            b.records().unwrap(),
            (0..5).map(|i| Record::Log(log(i))).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_reused_buffer_starts_empty_and_keeps_its_capacity() {
        let mut a = FrameBuilder::new();
        for i in 0..50 {
            a.push(&Record::Log(log(i))).unwrap();
        }
        let buf = a.into_buffer();
        let capacity = buf.capacity();
        let mut b = FrameBuilder::from_buffer(buf);
        assert!(b.is_empty() && b.body_len() == 0);
        b.push(&Record::Log(log(7))).unwrap();
        assert_eq!(b.records().unwrap(), vec![Record::Log(log(7))]);
        assert_eq!(b.into_buffer().capacity(), capacity);
    }

    #[test]
    fn split_off_keeps_records_whole_and_in_order() {
        let mut a = FrameBuilder::new();
        for i in 0..5 {
            a.push(&Record::Log(log(i))).unwrap();
        }
        let b = a.split_off(2);
        assert_eq!(a.len(), 2);
        assert_eq!(b.len(), 3);
        assert_eq!(a.records().unwrap()[1], Record::Log(log(1)));
        assert_eq!(b.records().unwrap()[0], Record::Log(log(2)));
        let mut whole = a.clone();
        whole.push(&Record::Log(log(2))).unwrap();
        assert_eq!(whole.split_off(3), FrameBuilder::new());
    }

    #[test]
    fn a_metric_with_too_many_dimensions_is_refused_and_not_added() {
        let dims = (0..=MAX_DIMENSIONS)
            .map(|i| Dimension {
                key: format!("k{i}"),
                value: "v".into(),
            })
            .collect();
        let mut b = FrameBuilder::new();
        let err = b.push(&Record::Metric(MetricPoint {
            name: "m".into(),
            ts_ms: 1,
            value: 1.0,
            unit: Unit::Count,
            dimensions: dims,
        }));
        assert!(matches!(err, Err(EncodeError::TooManyDimensions { .. })));
        assert!(b.is_empty());
        assert_eq!(b.body_len(), 0);
    }

    #[test]
    fn an_encoder_reused_across_frames_gives_the_one_shot_bytes() {
        let mut enc = FrameEncoder::new(3);
        for n in [0usize, 1, 7, 300, 2] {
            if n == 300 {
                enc.release();
            }
            let records: Vec<Record> = (0..n as i64).map(|i| Record::Log(log(i))).collect();
            let mut b = FrameBuilder::new();
            for r in &records {
                b.push(r).unwrap();
            }
            let batch = Batch {
                agent: agent(),
                seq: 1 << 40,
                created_ms: -5,
                records,
            };
            let frame = enc
                .encode(&batch.agent, batch.seq, batch.created_ms, &b)
                .unwrap();
            assert_eq!(frame, encode_with_level(&batch, 3).unwrap());
            assert_eq!(decode(&frame).unwrap(), batch);
            // The body is postcard's serialisation of the whole batch, byte for byte.
            let body = zstd::bulk::decompress(&frame[HEADER_LEN..], 1 << 20).unwrap();
            assert_eq!(body, postcard::to_stdvec(&batch).unwrap());
        }
    }
}
