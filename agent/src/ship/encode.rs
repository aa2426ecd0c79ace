//! Encoding closed batches into frames, splitting any that exceed the wire format's limits or
//! the transport's frame cap.

use outpost_proto::{AgentIdentity, EncodeError, FrameBuilder, FrameEncoder};

/// Encode records into one or more frames, halving any part that exceeds a frame limit or
/// `max_frame_len` (the transport's: a Kinesis record holds 1 MiB). `next_seq` numbers each
/// frame; a number used for a frame that had to be split is skipped. Also returns the records'
/// buffer, emptied, for reuse. A single record whose frame exceeds `max_frame_len` stays one
/// frame (config validation keeps records smaller; the transport refuses it as a dead letter).
pub fn encode_frames(
    encoder: &mut FrameEncoder,
    identity: &AgentIdentity,
    records: FrameBuilder,
    created_ms: i64,
    max_frame_len: usize,
    next_seq: &mut dyn FnMut() -> std::io::Result<u64>,
) -> std::io::Result<Frames> {
    let mut out = Vec::new();
    let mut buffer = Vec::new();
    let mut pending = vec![records];
    while let Some(mut records) = pending.pop() {
        let seq = next_seq()?;
        match encoder.encode(identity, seq, created_ms, &records) {
            Ok(frame) if frame.len() > max_frame_len && records.len() > 1 => {
                let second = records.split_off(records.len() / 2);
                pending.push(second);
                pending.push(records);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_proto::limits::MAX_FRAME_LEN;
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
            MAX_FRAME_LEN,
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
        let frames = encode_frames(
            &mut enc,
            &ident(),
            build(&records),
            0,
            MAX_FRAME_LEN,
            &mut || {
                n += 1;
                Ok(n)
            },
        )
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

    #[test]
    fn frames_are_capped_at_the_transports_limit() {
        // ~3 MiB incompressible: one frame for HTTP, split to fit Kinesis's 1 MiB records.
        let records = incompressible(12, 256 * 1024);
        let cap = crate::config::limits::KINESIS_MAX_FRAME_LEN;
        let mut n = 0;
        let mut enc = FrameEncoder::new(1);
        let frames = encode_frames(&mut enc, &ident(), build(&records), 0, cap, &mut || {
            n += 1;
            Ok(n)
        })
        .unwrap()
        .frames;
        assert!(frames.len() >= 3, "{}", frames.len());
        assert!(frames.iter().all(|f| f.bytes.len() <= cap));
        let back: Vec<Record> = frames
            .iter()
            .flat_map(|f| outpost_proto::decode(&f.bytes).unwrap().records)
            .collect();
        assert_eq!(back, records);
        // A single record over the cap stays one frame (the transport refuses it).
        let one = incompressible(1, 1024);
        let frames = encode_frames(&mut enc, &ident(), build(&one), 0, 100, &mut || Ok(1))
            .unwrap()
            .frames;
        assert_eq!(frames.len(), 1);
    }
}
