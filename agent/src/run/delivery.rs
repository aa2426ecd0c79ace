//! The delivery task: frames leave the spool in order, go to the sink, and are acknowledged in
//! the spool only once the sink took them (or refused them for good: then they are kept in
//! `STATE_DIR/dead-letter/` and counted).

use super::envelope;
use crate::error::AgentError;
use crate::ship::{Delivery as Outcome, ShipStats, Shipper};
use crate::spool::Spool;
use crate::state::atomic::write_atomic;
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
pub struct Delivery {
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
}

/// While draining at shutdown, how often to check whether the writer has finished.
const DRAIN_RECHECK: Duration = Duration::from_millis(100);

fn spool_err(e: impl std::fmt::Display) -> AgentError {
    AgentError::Spool(e.to_string())
}

impl Delivery {
    /// Deliver until shutdown has begun and either everything spooled is delivered once the
    /// writer finished (`writer_done`), or the drain time is up.
    pub async fn run(
        mut self,
        writer_done: impl Fn() -> bool + Send + 'static,
    ) -> Result<DeliveryStats, AgentError> {
        let mut last: Option<u64> = None;
        let spooled_notify = self.spooled.clone();
        loop {
            let spooled = spooled_notify.notified();
            tokio::pin!(spooled);
            spooled.as_mut().enable();
            // Read before looking at the spool: if the writer was done by then, everything it
            // spooled is visible below.
            let writer_finished = writer_done();
            let entry =
                super::with_spool(&self.spool, |s| s.next_unacked(last))?.map_err(spool_err)?;
            let Some(entry) = entry else {
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
            };
            let entry_id = entry.id;
            let payload = bytes::Bytes::from(entry.payload);
            let frame = match envelope::frame_range(&payload) {
                Ok(range) => payload.slice(range),
                Err(error) => {
                    // Written by this agent and checksummed by the spool: only a format from
                    // a newer agent gets here. Send it as is: the sink rejects what it cannot
                    // read, and a rejected frame is kept as a dead letter, never lost.
                    tracing::error!(id = entry_id, %error, "unreadable spool entry");
                    payload
                }
            };
            if !frame.is_empty() {
                let records =
                    outpost_proto::parse_header(&frame).map_or(0, |h| u64::from(h.record_count));
                match self.shipper.deliver(entry_id, records, &frame).await {
                    Outcome::Delivered => {}
                    Outcome::Rejected { status, reason } => {
                        self.dead_letter(entry_id, status, &reason, &frame)?;
                    }
                    Outcome::Abandoned => break,
                }
            }
            drop(frame);
            // Ack only once the checkpoint file covers this entry's positions; else a crash
            // right after the ack would lose them and the lines would be read again.
            if self
                .checkpointed
                .wait_for(|&c| c >= entry.id)
                .await
                .is_err()
            {
                break;
            }
            super::with_spool(&self.spool, |s| s.ack(entry.id))?.map_err(spool_err)?;
            last = Some(entry.id);
            self.freed.notify_waiters();
        }
        Ok(DeliveryStats {
            ship: self.shipper.stats(),
            dead_lettered: self.dead_lettered,
        })
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
            .and_then(|()| write_atomic(&path, frame))
            .and_then(|()| {
                write_atomic(
                    &dir.join(format!("{id:020}.reason")),
                    format!("HTTP {status}: {reason}\n").as_bytes(),
                )
            })
            .map_err(|source| AgentError::State {
                path: path.clone(),
                source,
            })?;
        self.dead_lettered += 1;
        tracing::error!(id, path = %path.display(), "frame kept as dead letter");
        Ok(())
    }
}
