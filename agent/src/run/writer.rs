//! The encoder thread and the writer task: closed batches are numbered and encoded into spool
//! entries (the thread), the entries go into the spool (durably), then the file checkpoints
//! move past the lines they carry (the task). Never the other way round.
//!
//! Each spool entry carries the positions its lines complete ([`super::envelope`]); a batch
//! with positions but no records (a truncation noticed before anything new was read) is spooled
//! as an entry with an empty frame. So every checkpoint change is in the spool first, and
//! `checkpointed` tells delivery up to which entry the checkpoint file is written: an entry is
//! acknowledged (and may vanish from the spool) only after that.

use super::batcher::Closed;
use super::envelope;
use crate::error::AgentError;
use crate::ship::encode_frames;
use crate::spool::{Spool, SpoolError};
use crate::state::checkpoint::CheckpointStore;
use crate::state::seq::SeqAllocator;
use outpost_proto::{AgentIdentity, FrameEncoder};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

/// How long a writer waiting for spool space sleeps between checks when no ack wakes it.
const FULL_RECHECK: Duration = Duration::from_secs(1);
/// An encoder without a batch for this long frees its compression context and buffers.
const IDLE_RELEASE: Duration = Duration::from_secs(2);
/// Most spool entries written with one `fdatasync` (group commit).
const GROUP_MAX: usize = 16;

/// A closed batch, encoded: its spool entries (frames wrapped with the positions they
/// complete) and what they carry.
pub struct Encoded {
    /// Spool entries, in order; the positions ride with the last.
    pub entries: Vec<Vec<u8>>,
    /// The positions the entries complete.
    pub positions: Vec<crate::state::position::Position>,
    /// Records in the entries.
    pub records: u64,
}

/// The encoder thread's channels.
pub struct EncoderChannels {
    /// Closed batches, from the batcher.
    pub closed: mpsc::Receiver<Closed>,
    /// Encoded batches, to the writer.
    pub encoded: mpsc::Sender<Encoded>,
    /// Emptied batch buffers, back to the batcher.
    pub recycle: std::sync::mpsc::SyncSender<Vec<u8>>,
}

/// The encoder thread: closed batches become spool entries (postcard, zstd, envelope). A thread
/// of its own, so compressing the next batch overlaps the batcher, the `fdatasync` of the last
/// one and the tailer (tasks passing messages on the async runtime tend to run one after the
/// other on the same worker).
pub fn encode_loop(
    runtime: &tokio::runtime::Handle,
    channels: EncoderChannels,
    identity: AgentIdentity,
    zstd_level: i32,
    max_frame_len: usize,
    mut seq: SeqAllocator,
) -> Result<(), AgentError> {
    let EncoderChannels {
        mut closed,
        encoded: out,
        recycle,
    } = channels;
    let mut encoder = FrameEncoder::new(zstd_level);
    loop {
        // Idle for a while: give back the compression context and buffers (megabytes).
        // (The timer is made inside `block_on`: it needs the runtime's context.)
        let waited =
            runtime.block_on(async { tokio::time::timeout(IDLE_RELEASE, closed.recv()).await });
        let batch = match waited {
            Ok(batch) => batch,
            Err(_) => {
                encoder.release();
                closed.blocking_recv()
            }
        };
        let Some(batch) = batch else { break };
        let light = !batch.full;
        let (encoded, buffer) = encode(batch, &identity, &mut encoder, max_frame_len, &mut seq)?;
        if light && closed.is_empty() {
            // Light traffic (a batch closed by its age or a flush, not full, and none waiting):
            // a context rebuilt every few seconds costs far less than keeping its megabytes
            // resident between batches. Under load batches close full and keep it.
            encoder.release();
        }
        // Back to the batcher for a later batch (dropped if it has enough).
        let _ = recycle.try_send(buffer);
        if let Some(e) = encoded
            && out.blocking_send(e).is_err()
        {
            break;
        }
    }
    Ok(())
}

/// Encode one batch; `None` when it carries neither records nor positions. Also returns the
/// batch's buffer, for reuse.
fn encode(
    batch: Closed,
    identity: &AgentIdentity,
    encoder: &mut FrameEncoder,
    max_frame_len: usize,
    seq: &mut SeqAllocator,
) -> Result<(Option<Encoded>, Vec<u8>), AgentError> {
    let records = batch.records.len() as u64;
    let (frames, buffer) = if batch.records.is_empty() {
        if batch.positions.is_empty() {
            return Ok((None, batch.records.into_buffer()));
        }
        (vec![Vec::new()], batch.records.into_buffer())
    } else {
        let encoded = encode_frames(
            encoder,
            identity,
            batch.records,
            batch.created_ms,
            max_frame_len,
            &mut || seq.allocate(),
        )
        .map_err(encode_err)?;
        let frames = encoded.frames.into_iter().map(|f| f.bytes).collect();
        (frames, encoded.buffer)
    };
    let last = frames.len() - 1;
    let entries = frames
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            // The positions ride with the last frame: they are complete once it is spooled.
            let positions = if i == last { &batch.positions[..] } else { &[] };
            envelope::seal(frame, positions)
        })
        .collect();
    Ok((
        Some(Encoded {
            entries,
            positions: batch.positions,
            records,
        }),
        buffer,
    ))
}

/// What the writer did.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriterStats {
    /// Records written to the spool.
    pub records_spooled: u64,
    /// Records given up at shutdown because the spool stayed full.
    pub records_unspooled: u64,
    /// Times the writer had to wait for spool space.
    pub full_waits: u64,
}

/// Owns the checkpoint store and the sequence numbers; shares the spool with delivery.
pub struct Writer {
    pub spool: Arc<Mutex<Spool>>,
    pub checkpoints: CheckpointStore,
    /// Notified after each append (delivery waits on it).
    pub spooled: Arc<Notify>,
    /// Notified after each ack (a writer waiting for space waits on it).
    pub freed: Arc<Notify>,
    pub shutdown: watch::Receiver<bool>,
    pub drain: Duration,
    pub stats: WriterStats,
    /// The last spool entry whose positions are in the checkpoint file.
    pub checkpointed: watch::Sender<u64>,
    /// The last spool entry appended.
    pub last_appended: u64,
    /// When the writer started (stale checkpoints are pruned only after a while).
    pub started: std::time::Instant,
    /// The agent's counters (the spool's size after each append).
    pub counters: Arc<crate::telemetry::Counters>,
    /// When stale checkpoints were last pruned.
    pub last_prune: std::time::Instant,
}

/// Stale checkpoints are pruned only once the agent has run this long (every followed file has
/// refreshed its entry by then), and then at most this often.
const PRUNE_AFTER: Duration = Duration::from_secs(2 * 3600);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// A batch that could not be encoded into frames: the encoder failed, or persisting the next
/// sequence-number lease did (`encode_frames` reports both as an `io::Error`).
fn encode_err(e: std::io::Error) -> AgentError {
    AgentError::Internal(format!("encoding a batch: {e}"))
}

impl Writer {
    /// Run until the encoder closes its channel.
    pub async fn run(
        mut self,
        mut encoded: mpsc::Receiver<Encoded>,
    ) -> Result<WriterStats, AgentError> {
        let mut gave_up = false;
        let mut deadline: Option<Instant> = None;
        let mut group = Vec::with_capacity(GROUP_MAX);
        while let Some(first) = encoded.recv().await {
            group.push(first);
            while group.len() < GROUP_MAX
                && let Ok(more) = encoded.try_recv()
            {
                group.push(more);
            }
            if gave_up {
                self.stats.records_unspooled += group.drain(..).map(|e| e.records).sum::<u64>();
                continue;
            }
            if !self.spool_group(&mut group, &mut deadline).await? {
                gave_up = true;
                self.stats.records_unspooled += group.drain(..).map(|e| e.records).sum::<u64>();
                continue;
            }
            if encoded.is_empty() {
                // Group commit: one checkpoint write for everything spooled so far.
                self.flush_checkpoints().await?;
            }
        }
        self.flush_checkpoints().await?;
        Ok(self.stats)
    }

    async fn flush_checkpoints(&mut self) -> Result<(), AgentError> {
        if self.started.elapsed() >= PRUNE_AFTER && self.last_prune.elapsed() >= PRUNE_EVERY {
            // Running long enough for every followed file to have refreshed its entry (see
            // `CHECKPOINT_KEEPALIVE`): what is older belongs to files gone or no longer followed.
            self.last_prune = std::time::Instant::now();
            let pruned = self.checkpoints.prune(
                super::unix_ms(),
                crate::state::checkpoint::DEFAULT_PRUNE_AGE,
            );
            if pruned > 0 {
                tracing::info!(
                    pruned,
                    "checkpoints of files not followed for a week dropped"
                );
            }
        }
        if self.checkpoints.is_dirty() {
            // Small (one line a file) and rare (once per batch at most): fine on this thread.
            tokio::task::block_in_place(|| self.checkpoints.flush())
                .map_err(|e| AgentError::Checkpoint(e.to_string()))?;
        }
        self.checkpointed.send_replace(self.last_appended);
        Ok(())
    }

    /// Spool a group of encoded batches, in order, and record their positions. The group goes
    /// to the spool with one `fdatasync` when it fits; when the spool is full, entry by entry
    /// as space frees up. Spooled batches leave `group`; `Ok(false)`: shutdown came while the
    /// spool was full, and what is left in `group` was not spooled.
    async fn spool_group(
        &mut self,
        group: &mut Vec<Encoded>,
        deadline: &mut Option<Instant>,
    ) -> Result<bool, AgentError> {
        let all: Vec<&[u8]> = group
            .iter()
            .flat_map(|e| e.entries.iter().map(Vec::as_slice))
            .collect();
        let counters = &self.counters;
        let at_once = super::with_spool(&self.spool, |s| {
            let r = s.append_many(&all);
            counters.set_spool_bytes(s.bytes());
            r
        })?;
        drop(all);
        match at_once {
            Ok(ids) => {
                self.last_appended = ids.end.saturating_sub(1);
                for e in group.drain(..) {
                    self.spooled_batch(e);
                }
                return Ok(true);
            }
            Err(SpoolError::Full { .. }) => {}
            Err(e) => return Err(AgentError::Spool(e.to_string())),
        }
        while !group.is_empty() {
            for entry in &group[0].entries {
                if !self.append(entry, deadline).await? {
                    return Ok(false);
                }
            }
            let e = group.remove(0);
            self.spooled_batch(e);
        }
        Ok(true)
    }

    /// A batch is in the spool: count it, wake delivery, and move its files' checkpoints.
    fn spooled_batch(&mut self, batch: Encoded) {
        self.stats.records_spooled += batch.records;
        self.spooled.notify_one();
        apply(&mut self.checkpoints, &batch.positions);
    }

    /// Append one frame, waiting for space while the spool is full. `Ok(false)` when shutdown's
    /// drain time ran out first.
    async fn append(
        &mut self,
        frame: &[u8],
        deadline: &mut Option<Instant>,
    ) -> Result<bool, AgentError> {
        let mut warned = false;
        let freed_notify = self.freed.clone();
        loop {
            let freed = freed_notify.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let counters = &self.counters;
            let result = super::with_spool(&self.spool, |s| {
                let r = s.append(frame);
                counters.set_spool_bytes(s.bytes());
                r
            })?;
            match result {
                Ok(id) => {
                    self.last_appended = id;
                    return Ok(true);
                }
                Err(SpoolError::Full { needed, available }) => {
                    self.stats.full_waits += 1;
                    // Delivery acks an entry only once the checkpoint file covers it: publish
                    // what is spooled so far, or delivery and this wait would wait on each other.
                    self.flush_checkpoints().await?;
                    if !warned {
                        tracing::warn!(
                            needed,
                            available,
                            "spool full: log reading pauses until the sink takes data"
                        );
                        warned = true;
                    }
                }
                Err(e) => return Err(AgentError::Spool(e.to_string())),
            }
            if deadline.is_none() && *self.shutdown.borrow() {
                *deadline = Some(Instant::now() + self.drain);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                tracing::warn!(
                    "spool still full at shutdown; unspooled lines are read again on the next start"
                );
                return Ok(false);
            }
            let wake = Instant::now() + FULL_RECHECK;
            let wake = deadline.map_or(wake, |d| wake.min(d));
            tokio::select! {
                () = &mut freed => {}
                () = tokio::time::sleep_until(wake) => {}
                _ = self.shutdown.changed() => {}
            }
        }
    }
}

/// Record positions in the checkpoint store, in order.
pub fn apply(store: &mut CheckpointStore, positions: &[crate::state::position::Position]) {
    let now_ms = super::unix_ms();
    for p in positions {
        if p.reset {
            store.reset(&p.path, p.identity, p.offset, now_ms);
        } else {
            store.set(&p.path, p.identity, p.offset, now_ms);
        }
    }
}
