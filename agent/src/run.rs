//! The running agent: threads, channels, shutdown.

use crate::batch::Batcher;
use crate::collect::host::{HostSampler, system_hostname};
use crate::collect::logs::tailer::{Stopped, TailChunk, TailOptions, TailStats, Tailer};
use crate::collect::logs::watch::{DirWatcher, Wake, Woken};
use crate::config::Config;
use crate::error::AgentError;
use crate::ship::http::HttpSender;
use crate::ship::{ShipStats, Shipper};
use crate::state::identity::{MACHINE_ID, identity, resolve_id};
use crate::state::seq::{Recovered, SeqAllocator};
use outpost_proto::Record;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};

/// Chunks of records buffered between the collectors and the batcher.
const RECORD_CHANNEL: usize = 64;
/// Closed batches buffered between the batcher and the shipper.
const BATCH_CHANNEL: usize = 2;

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What a run did, returned when it ends.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunSummary {
    /// Tailer counters.
    pub tail: TailStats,
    /// Shipper counters.
    pub ship: ShipStats,
    /// Metric samples dropped because the pipeline was full.
    pub samples_dropped: u64,
}

/// Run the agent until `shutdown` completes, then deliver what is buffered within
/// `agent.shutdown_timeout` and return.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, AgentError> {
    let state_dir = config.agent.state_dir.clone();
    let state_err = |source| AgentError::State {
        path: state_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&state_dir).map_err(state_err)?;
    let (agent_id, id_source) = resolve_id(
        config.agent.id.as_deref(),
        std::path::Path::new(MACHINE_ID),
        &state_dir,
    )
    .map_err(state_err)?;
    let hostname = config
        .agent
        .hostname
        .clone()
        .unwrap_or_else(system_hostname);
    let now_ms = u64::try_from(unix_ms()).unwrap_or(0);
    let (seq, recovered) = SeqAllocator::open(&state_dir, now_ms).map_err(state_err)?;
    if recovered == Recovered::Corrupt {
        tracing::warn!(path = %state_dir.join("seq").display(), "sequence file was corrupt; continuing from the clock");
    }
    let ident = identity(agent_id, hostname);
    tracing::info!(agent_id = %ident.agent_id, id_source = ?id_source, hostname = %ident.hostname,
        sink = %config.sink.url, inputs = config.logs.len(), "outpost-agent starting");

    let sender = HttpSender::new(&config.sink)?;
    // Everything that can fail is set up before any thread starts.
    let sampler = config
        .host
        .as_ref()
        .map(|h| HostSampler::new().map(|s| (s, h.interval)))
        .transpose()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut shipper = Shipper::new(
        sender,
        seq,
        ident,
        config.zstd_level,
        config.agent.shutdown_timeout,
        shutdown_rx,
    );

    let (rec_tx, mut rec_rx) = mpsc::channel::<Vec<Record>>(RECORD_CHANNEL);
    let (batch_tx, mut batch_rx) = mpsc::channel::<(Vec<Record>, i64)>(BATCH_CHANNEL);
    let stop = Arc::new(AtomicBool::new(false));
    // Dropping a `*_wake` sender wakes its worker thread out of its wait at once.
    let patterns: Vec<String> = config
        .logs
        .iter()
        .flat_map(|l| l.patterns.iter().cloned())
        .collect();
    let (mut watcher, tail_wake) = DirWatcher::new(
        &patterns,
        config.tail.poll_interval,
        config.tail.rescan_interval,
    );
    let (sample_wake, sample_wait) = std_mpsc::channel::<()>();
    let samples_dropped = Arc::new(AtomicU64::new(0));

    // Log tailer thread.
    let tailer_handle = {
        let tx = rec_tx.clone();
        let stop = stop.clone();
        let mut tailer = Tailer::new(
            config.logs.clone(),
            Vec::new(),
            TailOptions {
                rotate_wait: config.tail.rotate_wait,
                first_start: true,
            },
        );
        spawn("outpost-tailer", move || {
            loop {
                let mut emit = |chunk: TailChunk| {
                    if stop.load(Ordering::Relaxed) {
                        return Err(Stopped);
                    }
                    tx.blocking_send(chunk.records.into_iter().map(Record::Log).collect())
                        .map_err(|_| Stopped)
                };
                if tailer.poll(Instant::now(), unix_ms(), &mut emit).is_err() {
                    break;
                }
                if watcher.wait() == Woken::Stop {
                    break;
                }
            }
            tailer.stats()
        })?
    };

    // Host sampler thread.
    let sampler_handle = match sampler {
        Some((mut sampler, interval)) => {
            let tx = rec_tx.clone();
            let dropped = samples_dropped.clone();
            Some(spawn("outpost-sampler", move || {
                loop {
                    if wait(&sample_wait, interval) {
                        break;
                    }
                    let points = sampler.sample(unix_ms());
                    let n = points.len() as u64;
                    match tx.try_send(points.into_iter().map(Record::Metric).collect()) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            let total = dropped.fetch_add(n, Ordering::Relaxed) + n;
                            tracing::warn!(dropped = total, "pipeline full; host sample dropped");
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => break,
                    }
                }
            })?)
        }
        None => None,
    };
    drop(rec_tx);

    // Batcher task.
    let limits = config.batch;
    let batcher = tokio::spawn(async move {
        let mut batcher = Batcher::new(limits);
        let mut closed = Vec::new();
        loop {
            let deadline = batcher.deadline();
            tokio::select! {
                msg = rec_rx.recv() => match msg {
                    Some(records) => {
                        let now = Instant::now();
                        for r in records {
                            batcher.push(r, now, &mut closed);
                        }
                    }
                    None => break,
                },
                () = sleep_until(deadline), if deadline.is_some() => {
                    closed.extend(batcher.poll(Instant::now()));
                }
            }
            for b in closed.drain(..) {
                if batch_tx.send((b, unix_ms())).await.is_err() {
                    return;
                }
            }
        }
        if let Some(b) = batcher.flush() {
            let _ = batch_tx.send((b, unix_ms())).await;
        }
    });

    // Shipper task.
    let shipping = tokio::spawn(async move {
        while let Some((records, created_ms)) = batch_rx.recv().await {
            shipper.ship(records, created_ms).await;
        }
        shipper.stats()
    });

    shutdown.await;
    tracing::info!("shutting down: flushing the current batch");
    stop.store(true, Ordering::Relaxed);
    let _ = shutdown_tx.send(true);
    let _ = tail_wake.send(Wake::Stop);
    drop(sample_wake);

    let tail = join_thread(tailer_handle).await?;
    if let Some(h) = sampler_handle {
        join_thread(h).await?;
    }
    batcher
        .await
        .map_err(|e| AgentError::Internal(format!("batcher: {e}")))?;
    let ship = shipping
        .await
        .map_err(|e| AgentError::Internal(format!("shipper: {e}")))?;
    let summary = RunSummary {
        tail,
        ship,
        samples_dropped: samples_dropped.load(Ordering::Relaxed),
    };
    tracing::info!(
        lines = tail.lines,
        frames = ship.frames_sent,
        records = ship.records_sent,
        rejected = ship.records_rejected,
        abandoned = ship.records_abandoned,
        "outpost-agent stopped"
    );
    Ok(summary)
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
    }
}

/// Wait up to `timeout`; true when the agent is stopping.
fn wait(wake: &std_mpsc::Receiver<()>, timeout: Duration) -> bool {
    !matches!(
        wake.recv_timeout(timeout),
        Err(std_mpsc::RecvTimeoutError::Timeout)
    )
}

fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>, AgentError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(|e| AgentError::Internal(format!("cannot start {name}: {e}")))
}

async fn join_thread<T: Send + 'static>(h: std::thread::JoinHandle<T>) -> Result<T, AgentError> {
    tokio::task::spawn_blocking(move || h.join())
        .await
        .map_err(|e| AgentError::Internal(e.to_string()))?
        .map_err(|_| AgentError::Internal("worker thread panicked".to_owned()))
}
