//! The telemetry task: every `telemetry.interval`, the agent's counters as metric points (with
//! the heartbeat) into the pipeline like any other metrics. (The optional Prometheus endpoint
//! is [`crate::telemetry::serve`], started by `run`.)

use super::Collected;
use crate::telemetry::{Counters, Snapshot, points};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Ship the counters every `interval` until shutdown begins. When the pipeline is full the
/// points are not sent and the previous snapshot is kept, so the next interval's deltas carry
/// what was counted in between (only that interval's heartbeat is missing).
pub async fn emit_loop(
    counters: Arc<Counters>,
    interval: Duration,
    tx: mpsc::Sender<Collected>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prev = Snapshot::default();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.wait_for(|&stopping| stopping) => return,
        }
        let cur = counters.snapshot();
        match tx.try_send(Collected::Metrics(points(&prev, &cur, super::unix_ms()))) {
            Ok(()) => prev = cur,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!("pipeline busy: self-metrics wait for the next interval");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}
