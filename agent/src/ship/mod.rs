//! Shipping: number closed batches and encode them into frames (splitting any that exceed a
//! frame's limits), and deliver frames with retries until each is acknowledged, refused for
//! good, or the shutdown drain budget runs out.

pub mod backoff;
pub mod http;

use backoff::Backoff;
use http::{HttpSender, SendError};
use outpost_proto::{AgentIdentity, EncodeError, FrameBuilder, FrameEncoder};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// First retry delay.
pub const RETRY_BASE: Duration = Duration::from_millis(250);
/// Longest retry delay.
pub const RETRY_CAP: Duration = Duration::from_secs(30);

/// What the shipper did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShipStats {
    /// Frames acknowledged by the sink.
    pub frames_sent: u64,
    /// Records in acknowledged frames.
    pub records_sent: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
    /// Records in frames the sink refused for good.
    pub records_rejected: u64,
    /// Records given up at shutdown because the drain budget ran out.
    pub records_abandoned: u64,
}

/// Encode records into one or more frames, halving any part that exceeds a frame limit.
/// `next_seq` numbers each frame; a number used for a frame that had to be split is skipped.
/// Also returns the records' buffer, emptied, for reuse.
pub fn encode_frames(
    encoder: &mut FrameEncoder,
    identity: &AgentIdentity,
    records: FrameBuilder,
    created_ms: i64,
    next_seq: &mut dyn FnMut() -> std::io::Result<u64>,
) -> std::io::Result<Frames> {
    let mut out = Vec::new();
    let mut buffer = Vec::new();
    let mut pending = vec![records];
    while let Some(mut records) = pending.pop() {
        let seq = next_seq()?;
        match encoder.encode(identity, seq, created_ms, &records) {
            Ok(frame) => {
                out.push(Frame {
                    seq,
                    records: records.len(),
                    bytes: frame,
                });
                let spent = records.into_buffer();
                if spent.capacity() > buffer.capacity() {
                    buffer = spent;
                }
            }
            Err(
                EncodeError::TooManyRecords { .. }
                | EncodeError::DecompressedTooLarge { .. }
                | EncodeError::CompressedTooLarge { .. },
            ) if records.len() > 1 => {
                let second = records.split_off(records.len() / 2);
                // Popped last-in first-out: push the later half first to keep order.
                pending.push(second);
                pending.push(records);
            }
            Err(e) => {
                return Err(std::io::Error::other(format!(
                    "cannot encode a batch of {} record(s): {e}",
                    records.len()
                )));
            }
        }
    }
    buffer.clear();
    Ok(Frames {
        frames: out,
        buffer,
    })
}

/// One encoded frame.
#[derive(Debug)]
pub struct Frame {
    /// Its sequence number.
    pub seq: u64,
    /// Records in it.
    pub records: usize,
    /// The frame.
    pub bytes: Vec<u8>,
}

/// The frames of one batch, and the batch's emptied buffer (for reuse).
#[derive(Debug)]
pub struct Frames {
    /// In order.
    pub frames: Vec<Frame>,
    /// The records' buffer, empty.
    pub buffer: Vec<u8>,
}

/// How one delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The sink acknowledged the frame.
    Delivered,
    /// The sink refused it for good (400, 413, other 4xx): retrying cannot help.
    Rejected {
        /// HTTP status.
        status: u16,
        /// The sink's reason.
        reason: String,
    },
    /// Shutdown's drain time ran out first; the frame stays spooled.
    Abandoned,
}

/// Delivers frames to the sink, retrying with backoff until acknowledged, refused for good, or
/// the drain time after shutdown is up.
pub struct Shipper {
    sender: HttpSender,
    drain: Duration,
    shutdown: watch::Receiver<bool>,
    drain_deadline: Option<Instant>,
    stats: ShipStats,
}

impl Shipper {
    /// A shipper that, once `shutdown` turns true, keeps trying for at most `drain`.
    pub fn new(sender: HttpSender, drain: Duration, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            sender,
            drain,
            shutdown,
            drain_deadline: None,
            stats: ShipStats::default(),
        }
    }

    /// What has been shipped so far.
    pub fn stats(&self) -> ShipStats {
        self.stats
    }

    /// When the drain time after shutdown ends, once shutdown has begun.
    pub fn deadline(&mut self) -> Option<Instant> {
        if self.drain_deadline.is_none() && *self.shutdown.borrow() {
            self.drain_deadline = Some(Instant::now() + self.drain);
        }
        self.drain_deadline
    }

    /// Whether shutdown began and its drain time is up.
    pub fn out_of_time(&mut self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// Deliver one frame carrying `records` records.
    pub async fn deliver(&mut self, id: u64, records: u64, frame: &bytes::Bytes) -> Delivery {
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
        loop {
            if self.out_of_time() {
                tracing::warn!(
                    id,
                    records,
                    "shutdown drain time is up; frame stays in the spool"
                );
                self.stats.records_abandoned += records;
                return Delivery::Abandoned;
            }
            match self.sender.send(frame).await {
                Ok(()) => {
                    tracing::debug!(id, records, bytes = frame.len(), "frame delivered");
                    self.stats.frames_sent += 1;
                    self.stats.records_sent += records;
                    return Delivery::Delivered;
                }
                Err(SendError::Rejected { status, reason }) => {
                    tracing::error!(id, records, status, %reason, "sink rejected the frame");
                    self.stats.records_rejected += records;
                    return Delivery::Rejected { status, reason };
                }
                Err(SendError::Retryable(reason)) => {
                    self.stats.retries += 1;
                    if reason.starts_with("HTTP 401") {
                        self.sender.reload_token();
                    }
                    let delay = backoff.next_delay(rand::random::<f64>());
                    tracing::warn!(id, attempt = backoff.attempts(), retry_in = ?delay, %reason, "delivery failed; will retry");
                    let wake = Instant::now() + delay;
                    let wake = match self.deadline() {
                        Some(d) => wake.min(d),
                        None => wake,
                    };
                    tokio::select! {
                        () = tokio::time::sleep_until(wake) => {}
                        _ = self.shutdown.changed(), if self.drain_deadline.is_none() => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_proto::{LogRecord, Record};

    fn build(records: &[Record]) -> FrameBuilder {
        let mut b = FrameBuilder::new();
        for r in records {
            b.push(r).unwrap();
        }
        b
    }

    fn ident() -> AgentIdentity {
        AgentIdentity {
            agent_id: "a".into(),
            hostname: "h".into(),
            agent_version: "0".into(),
        }
    }

    fn incompressible(n: usize, len: usize) -> Vec<Record> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .map(|i| {
                let line = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                Record::Log(LogRecord {
                    ts_ms: i as i64,
                    source: "s".into(),
                    service: "v".into(),
                    line,
                    level: None,
                })
            })
            .collect()
    }

    #[test]
    fn small_batch_is_one_frame() {
        let mut n = 10;
        let mut enc = FrameEncoder::new(3);
        let frames = encode_frames(
            &mut enc,
            &ident(),
            build(&incompressible(3, 10)),
            0,
            &mut || {
                n += 1;
                Ok(n)
            },
        )
        .unwrap()
        .frames;
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].seq, 11);
        assert_eq!(frames[0].records, 3);
        assert_eq!(
            outpost_proto::decode(&frames[0].bytes)
                .unwrap()
                .records
                .len(),
            3
        );
    }

    #[test]
    fn oversized_batch_is_split_in_order_with_growing_seqs() {
        // ~6 MiB of incompressible lines: more than one frame's 4 MiB compressed limit.
        let records = incompressible(24, 256 * 1024);
        let mut n = 0;
        let mut enc = FrameEncoder::new(1);
        let frames = encode_frames(&mut enc, &ident(), build(&records), 0, &mut || {
            n += 1;
            Ok(n)
        })
        .unwrap()
        .frames;
        assert!(frames.len() >= 2);
        let mut seqs: Vec<u64> = frames.iter().map(|f| f.seq).collect();
        let sorted = {
            let mut s = seqs.clone();
            s.sort();
            s
        };
        assert_eq!(seqs, sorted, "frames are numbered in delivery order");
        seqs.dedup();
        assert_eq!(seqs.len(), frames.len());
        let back: Vec<Record> = frames
            .iter()
            .flat_map(|f| outpost_proto::decode(&f.bytes).unwrap().records)
            .collect();
        assert_eq!(back, records, "nothing lost, nothing reordered");
        assert!(
            frames
                .iter()
                .all(|f| f.bytes.len() <= outpost_proto::limits::MAX_FRAME_LEN)
        );
    }
}
