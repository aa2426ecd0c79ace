//! The delivery task: frames leave the spool in order, in groups as large as one call of the
//! transport carries (one frame for HTTP; up to 500 records and 5 MiB for Kinesis), go to the
//! sink, and are acknowledged in the spool, in order, only once the sink took every frame of
//! the group (or refused one for good: then it is kept in `STATE_DIR/dead-letter/` and
//! counted).

use super::envelope;
use crate::error::AgentError;
use crate::ship::{FrameOutcome, GroupLimits, ShipStats, Shipper, SpooledFrame};
use crate::spool::{Entry, Spool};
use outpost_durable::replace;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// What delivery did.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeliveryStats {
    /// Shipper counters.
    pub ship: ShipStats,
    /// Frames written to the dead-letter directory.
    pub dead_lettered: u64,
}

/// Reads the spool and delivers.
pub struct DeliveryTask {
    pub spool: Arc<Mutex<Spool>>,
    pub shipper: Shipper,
    pub dead_letter_dir: PathBuf,
    /// Notified by the writer after each append.
    pub spooled: Arc<Notify>,
    /// Notified here after each ack.
    pub freed: Arc<Notify>,
    pub dead_lettered: u64,
    /// The last entry whose positions the writer has put in the checkpoint file.
    pub checkpointed: watch::Receiver<u64>,
    /// Turns true when the agent begins to stop.
    pub shutdown: watch::Receiver<bool>,
    /// The agent's counters (deliveries, the spool's size).
    pub counters: Arc<crate::telemetry::Counters>,
}

/// While draining at shutdown, how often to check whether the writer has finished.
const DRAIN_RECHECK: Duration = Duration::from_millis(100);

fn spool_err(e: impl std::fmt::Display) -> AgentError {
    AgentError::Spool(e.to_string())
}

impl DeliveryTask {
    /// Deliver until shutdown has begun and either everything spooled is delivered once the
    /// writer finished (`writer_done`), or the drain time is up.
    pub async fn run(
        mut self,
        writer_done: impl Fn() -> bool + Send + 'static,
    ) -> Result<DeliveryStats, AgentError> {
        let limits = self.shipper.limits();
        // The last entry read from the spool, and one read that did not fit the last group.
        let mut last: Option<u64> = None;
        let mut carry: Option<SpooledFrame> = None;
        let spooled_notify = self.spooled.clone();
        loop {
            let spooled = spooled_notify.notified();
            tokio::pin!(spooled);
            spooled.as_mut().enable();
            // Read before looking at the spool: if the writer was done by then, everything it
            // spooled is visible below.
            let writer_finished = writer_done();
            let group = self.read_group(limits, &mut last, &mut carry)?;
            if group.is_empty() {
                if self.shipper.deadline().is_some() && writer_finished {
                    // Stopping, and the writer spools nothing more: everything is delivered.
                    break;
                }
                if self.shipper.out_of_time() {
                    break;
                }
                if self.shipper.deadline().is_none() {
                    // Running: sleep until something is spooled or the agent begins to stop
                    // (no timer: an idle agent does not wake up for nothing).
                    tokio::select! {
                        () = &mut spooled => {}
                        _ = self.shutdown.changed() => {}
                    }
                } else {
                    // Draining: re-check the writer's end now and then.
                    tokio::select! {
                        () = &mut spooled => {}
                        () = tokio::time::sleep(DRAIN_RECHECK) => {}
                    }
                }
                continue;
            }
            let outcomes = self.shipper.deliver(&group).await;
            let counters = self.counters.clone();
            // Acknowledge, in order, up to the first frame left for the next start.
            let mut through = None;
            let mut abandoned = false;
            for (item, outcome) in group.iter().zip(outcomes) {
                match outcome {
                    FrameOutcome::Delivered => {}
                    FrameOutcome::Rejected { status, reason } => {
                        self.dead_letter(item.id, status, &reason, &item.frame)?;
                    }
                    FrameOutcome::Abandoned => {
                        abandoned = true;
                        break;
                    }
                }
                through = Some(item.id);
            }
            drop(group);
            if let Some(id) = through {
                // Ack only once the checkpoint file covers these entries' positions; else a
                // crash right after the ack would lose them and the lines would be read again.
                if self.checkpointed.wait_for(|&c| c >= id).await.is_err() {
                    break;
                }
                super::with_spool(&self.spool, |s| {
                    let r = s.ack_through(id);
                    counters.set_spool_bytes(s.bytes());
                    r
                })?
                .map_err(spool_err)?;
                self.freed.notify_waiters();
            }
            self.counters
                .set_ship(&self.shipper.stats(), self.dead_lettered, super::unix_ms());
            if abandoned {
                break;
            }
        }
        Ok(DeliveryStats {
            ship: self.shipper.stats(),
            dead_lettered: self.dead_lettered,
        })
    }

    /// The next entries of the spool, as many as one call carries (`carry` first: an entry
    /// read before that did not fit the previous group). `last` is the last entry read.
    fn read_group(
        &self,
        limits: GroupLimits,
        last: &mut Option<u64>,
        carry: &mut Option<SpooledFrame>,
    ) -> Result<Vec<SpooledFrame>, AgentError> {
        let mut group = Vec::new();
        let mut bytes = 0;
        if let Some(item) = carry.take() {
            bytes += limits.cost(item.frame.len());
            group.push(item);
        }
        super::with_spool(&self.spool, |s| {
            while group.len() < limits.max_entries {
                let Some(entry) = s.next_unacked(*last)? else {
                    break;
                };
                *last = Some(entry.id);
                let item = spooled_frame(entry);
                let cost = limits.cost(item.frame.len());
                if !limits.admits(group.len(), bytes, cost) {
                    *carry = Some(item);
                    break;
                }
                bytes += cost;
                group.push(item);
            }
            Ok(())
        })?
        .map_err(|e: crate::spool::SpoolError| spool_err(e))?;
        Ok(group)
    }

    fn dead_letter(
        &mut self,
        id: u64,
        status: u16,
        reason: &str,
        frame: &[u8],
    ) -> Result<(), AgentError> {
        let dir = &self.dead_letter_dir;
        let path = dir.join(format!("{id:020}.frame"));
        std::fs::create_dir_all(dir)
            .and_then(|()| Ok(replace(&path, frame)?))
            .and_then(|()| {
                Ok(replace(
                    &dir.join(format!("{id:020}.reason")),
                    format!("{reason}\n").as_bytes(),
                )?)
            })
            .map_err(|source| AgentError::State {
                path: path.clone(),
                source,
            })?;
        self.dead_lettered += 1;
        tracing::error!(id, status, path = %path.display(), "frame kept as dead letter");
        Ok(())
    }
}

/// A spool entry as a frame to deliver.
fn spooled_frame(entry: Entry) -> SpooledFrame {
    let id = entry.id;
    let payload = bytes::Bytes::from(entry.payload);
    let frame = match envelope::frame_range(&payload) {
        Ok(range) => payload.slice(range),
        Err(error) => {
            // Written by this agent and checksummed by the spool: only a format from a newer
            // agent gets here. Send it as is: the sink rejects what it cannot read, and a
            // rejected frame is kept as a dead letter, never lost.
            tracing::error!(id, %error, "unreadable spool entry");
            payload
        }
    };
    let records = if frame.is_empty() {
        0
    } else {
        outpost_proto::parse_header(&frame).map_or(0, |h| u64::from(h.record_count))
    };
    SpooledFrame { id, records, frame }
}
