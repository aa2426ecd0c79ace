//! The batcher task: records from the collectors go into batches ([`Batcher`]); each closed
//! batch goes to the encoder with the file positions just past its records.

use super::{Collected, unix_ms};
use crate::batch::{Batcher, LogLine};
use crate::collect::logs::tailer::TailChunk;
use crate::state::position::Position;
use outpost_proto::FrameBuilder;
use std::time::Instant;
use tokio::sync::mpsc;

/// A closed batch and the file positions it completes.
pub(super) struct Closed {
    pub records: FrameBuilder,
    pub positions: Vec<Position>,
    pub created_ms: i64,
    /// Closed because it was full (traffic), not by its age, a flush or for positions alone.
    pub full: bool,
}

/// Positions of the records in the open batch, one per file: the newest wins, and a truncation
/// reset among them is kept.
fn note_position(open: &mut Vec<Position>, mut position: Position) {
    open.retain(|p| {
        let same = p.identity.same_inode(&position.identity);
        position.reset |= same && p.reset;
        !same
    });
    open.push(position);
}

/// Positions that come without records (a truncation noticed, the checkpoint keep-alive): they
/// go with the open batch, or alone as a batch without records.
fn positions_only(
    batcher: &Batcher,
    open_positions: &mut Vec<Position>,
    ready: &mut Vec<Closed>,
    positions: Vec<Position>,
) {
    if batcher.is_empty() {
        ready.push(Closed {
            records: FrameBuilder::new(),
            positions,
            created_ms: unix_ms(),
            full: false,
        });
    } else {
        for p in positions {
            note_position(open_positions, p);
        }
    }
}

/// The batcher task: collect records into batches; hand each closed batch to the writer with
/// the file positions just past its records (exactly: a batch that closes mid-chunk covers
/// only the records it holds, so a crash after spooling it re-reads nothing it carried).
pub(super) async fn batch_loop(
    mut batcher: Batcher,
    mut items: mpsc::Receiver<Collected>,
    out: mpsc::Sender<Closed>,
    recycled: std::sync::mpsc::Receiver<Vec<u8>>,
) {
    let mut closed = Vec::new();
    // Positions just past the records in the open batch.
    let mut open_positions: Vec<Position> = Vec::new();
    loop {
        while let Ok(buffer) = recycled.try_recv() {
            batcher.recycle(buffer);
        }
        let deadline = batcher.deadline();
        let mut ready: Vec<Closed> = Vec::new();
        let close = |records, positions, full| Closed {
            records,
            positions,
            created_ms: unix_ms(),
            full,
        };
        tokio::select! {
            item = items.recv() => match item {
                Some(Collected::Logs(chunk)) => {
                    let now = Instant::now();
                    let TailChunk { source, service, lines, position, .. } = chunk;
                    if lines.is_empty() {
                        // A truncation noticed before anything new was read.
                        positions_only(&batcher, &mut open_positions, &mut ready, vec![position]);
                    } else {
                        // The end of this chunk's newest record in the open batch. A position
                        // is built only when a batch closes and at the chunk's end, not for
                        // every record.
                        let mut open_end: Option<u64> = None;
                        for l in &lines {
                            let line = LogLine { ts_ms: l.ts_ms, source: &source, service: &service, bytes: &l.bytes, level: l.level };
                            if let Err(error) = batcher.push_log(line, now, &mut closed) {
                                // Only metric points can be refused; a log line never is.
                                tracing::error!(%error, "log record not batched");
                            }
                            // The record itself went into a closed batch (it filled one).
                            let filled = batcher.is_empty();
                            let n = closed.len();
                            for (k, records) in closed.drain(..).enumerate() {
                                let upto = if filled && k + 1 == n { Some(l.end) } else { open_end.take() };
                                if let Some(offset) = upto {
                                    note_position(&mut open_positions, Position { offset, ..position.clone() });
                                }
                                ready.push(close(records, std::mem::take(&mut open_positions), true));
                            }
                            open_end = (!filled).then_some(l.end);
                        }
                        if let Some(offset) = open_end {
                            note_position(&mut open_positions, Position { offset, ..position });
                        }
                    }
                }
                Some(Collected::Metrics(points)) => {
                    // One sample's points go into one batch (Batcher::push_metrics).
                    for error in batcher.push_metrics(points, Instant::now(), &mut closed) {
                        tracing::error!(%error, "dropping a metric point no frame can carry");
                    }
                    for records in closed.drain(..) {
                        ready.push(close(records, std::mem::take(&mut open_positions), true));
                    }
                }
                Some(Collected::Positions(positions)) => {
                    positions_only(&batcher, &mut open_positions, &mut ready, positions);
                }
                Some(Collected::CaughtUp) => {
                    if let Some(records) = batcher.flush() {
                        ready.push(close(records, std::mem::take(&mut open_positions), false));
                    }
                }
                None => break,
            },
            () = sleep_until(deadline), if deadline.is_some() => {
                if let Some(records) = batcher.poll(Instant::now()) {
                    ready.push(close(records, std::mem::take(&mut open_positions), false));
                }
            }
        }
        for c in ready {
            if out.send(c).await.is_err() {
                return;
            }
        }
    }
    let records = batcher.flush().unwrap_or_default();
    if !records.is_empty() || !open_positions.is_empty() {
        let _ = out
            .send(Closed {
                records,
                positions: open_positions,
                created_ms: unix_ms(),
                full: false,
            })
            .await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BatchLimits;
    use crate::state::position::FileIdentity;
    use outpost_proto::{MetricPoint, Record, Unit};
    use std::path::PathBuf;
    use std::time::Duration;

    fn pos(path: &str, ino: u64, offset: u64) -> Position {
        Position {
            path: PathBuf::from(path),
            identity: FileIdentity {
                dev: 1,
                ino,
                fingerprint: None,
                fingerprint_len: 0,
            },
            offset,
            reset: false,
        }
    }

    #[tokio::test]
    async fn keepalive_positions_travel_alone_or_with_the_open_batch() {
        let (tx, rx) = mpsc::channel(4);
        let (out_tx, mut out) = mpsc::channel(4);
        let (_recycle_tx, recycle_rx) = std::sync::mpsc::sync_channel(1);
        let limits = BatchLimits {
            max_records: 100,
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
        };
        let task = tokio::spawn(batch_loop(Batcher::new(limits), rx, out_tx, recycle_rx));

        // Nothing batched: the positions make a batch of their own, without records.
        tx.send(Collected::Positions(vec![
            pos("/a", 1, 10),
            pos("/b", 2, 20),
        ]))
        .await
        .unwrap();
        let alone = out.recv().await.unwrap();
        assert!(alone.records.is_empty());
        assert_eq!(alone.positions, [pos("/a", 1, 10), pos("/b", 2, 20)]);

        // A batch open: they ride with it, and are spooled with its records.
        let point = MetricPoint {
            name: "m".into(),
            ts_ms: 1,
            value: 1.0,
            unit: Unit::Count,
            dimensions: vec![],
        };
        tx.send(Collected::Metrics(vec![point.clone()]))
            .await
            .unwrap();
        tx.send(Collected::Positions(vec![pos("/a", 1, 30)]))
            .await
            .unwrap();
        drop(tx);
        let with = out.recv().await.unwrap();
        assert_eq!(with.records.records().unwrap(), [Record::Metric(point)]);
        assert_eq!(with.positions, [pos("/a", 1, 30)]);
        task.await.unwrap();
        assert!(out.recv().await.is_none());
    }

    #[tokio::test]
    async fn only_a_batch_closed_by_filling_up_is_marked_full() {
        let (tx, rx) = mpsc::channel(4);
        let (out_tx, mut out) = mpsc::channel(4);
        let (_recycle_tx, recycle_rx) = std::sync::mpsc::sync_channel(1);
        let limits = BatchLimits {
            max_records: 2,
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
        };
        let task = tokio::spawn(batch_loop(Batcher::new(limits), rx, out_tx, recycle_rx));
        let point = |ts_ms| MetricPoint {
            name: "m".into(),
            ts_ms,
            value: 1.0,
            unit: Unit::Count,
            dimensions: vec![],
        };
        // Two records fill a batch: it closes full (traffic; the encoder keeps its context).
        tx.send(Collected::Metrics(vec![point(1), point(2), point(3)]))
            .await
            .unwrap();
        let filled = out.recv().await.unwrap();
        assert_eq!(filled.records.len(), 2);
        assert!(filled.full);
        // A flush (caught up, shutdown) and positions alone are not full.
        tx.send(Collected::CaughtUp).await.unwrap();
        let flushed = out.recv().await.unwrap();
        assert_eq!(flushed.records.len(), 1);
        assert!(!flushed.full);
        tx.send(Collected::Positions(vec![pos("/a", 1, 10)]))
            .await
            .unwrap();
        assert!(!out.recv().await.unwrap().full);
        drop(tx);
        task.await.unwrap();
    }
}
