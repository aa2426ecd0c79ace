//! The collector threads: the log tailer, the host sampler and the custom inputs.

use super::Collected;
use crate::collect::custom::CustomRunner;
use crate::collect::host::HostSampler;
use crate::collect::logs::tailer::{Stopped, TailChunk, TailStats, Tailer};
use crate::collect::logs::watch::{DirWatcher, Wake, Woken};
use crate::config::{Config, LogInput};
use crate::error::AgentError;
use crate::telemetry::Counters;
use outpost_proto::MetricPoint;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often the positions of every followed file are sent to the checkpoints (keeping their
/// entries fresh, so pruning only drops files no longer followed).
pub const CHECKPOINT_KEEPALIVE: Duration = Duration::from_secs(3600);

/// Host samples kept while the pipeline is blocked; past this the oldest are dropped.
pub const SAMPLE_BACKLOG: usize = 60;

/// The sampler thread and how to stop it.
pub struct Sampler {
    pub handle: std::thread::JoinHandle<u64>,
    wake: std_mpsc::Sender<Wake>,
}

impl Sampler {
    /// Ask the thread to stop; it returns from its wait at once.
    pub fn stop(&self) {
        let _ = self.wake.send(Wake::Stop);
    }
}

/// Controls the tailer thread from the async side.
#[derive(Clone)]
pub struct TailControl {
    wake: std_mpsc::Sender<Wake>,
    stop: Arc<AtomicBool>,
    inputs: Arc<Mutex<Option<Vec<LogInput>>>>,
}

impl TailControl {
    /// Ask the tailer to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.wake.send(Wake::Stop);
    }

    /// Hand the tailer a new set of inputs (config reload).
    pub fn reload(&self, inputs: Vec<LogInput>) {
        if let Ok(mut slot) = self.inputs.lock() {
            *slot = Some(inputs);
        }
        let _ = self.wake.send(Wake::Changed);
    }
}

fn patterns(inputs: &[LogInput]) -> Vec<String> {
    inputs
        .iter()
        .flat_map(|l| l.patterns.iter().cloned())
        .collect()
}

/// Start the tailer thread.
pub fn spawn_tailer(
    mut tailer: Tailer,
    config: &Config,
    tx: mpsc::Sender<Collected>,
    counters: Arc<Counters>,
) -> Result<(std::thread::JoinHandle<TailStats>, TailControl), AgentError> {
    let (mut watcher, wake) = DirWatcher::new(
        &patterns(&config.logs),
        config.tail.poll_interval,
        config.tail.rescan_interval,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let inputs: Arc<Mutex<Option<Vec<LogInput>>>> = Arc::new(Mutex::new(None));
    let control = TailControl {
        wake,
        stop: stop.clone(),
        inputs: inputs.clone(),
    };
    let thread_stop = stop;
    let handle = spawn("outpost-tailer", move || {
        let mut settling = false;
        let mut last_keepalive: Option<Instant> = None;
        loop {
            if let Some(new) = inputs.lock().ok().and_then(|mut s| s.take()) {
                watcher.rewatch(&patterns(&new));
                tailer.set_inputs(new);
            }
            let mut emit = |chunk: TailChunk| {
                if thread_stop.load(Ordering::Relaxed) {
                    return Err(Stopped);
                }
                if !chunk.lines.is_empty() {
                    counters.count_logs(
                        &chunk.service,
                        chunk.lines.len() as u64,
                        u64::from(chunk.errors),
                    );
                }
                tx.blocking_send(Collected::Logs(chunk))
                    .map_err(|_| Stopped)
            };
            let was_behind = tailer.is_behind();
            let polled = tailer.poll(Instant::now(), super::unix_ms(), &mut emit);
            counters.set_tail(&tailer.stats());
            if polled.is_err() {
                break;
            }
            // A backlog was just read to its end. Once the tailer holds no record back (an open
            // multiline record waits for its flush timeout), the batcher spools its open batch
            // at once rather than after `batch.max_age`: nothing more is coming soon.
            settling |= was_behind && !tailer.is_behind();
            if settling && tailer.deadline().is_none() {
                settling = false;
                if tx.blocking_send(Collected::CaughtUp).is_err() {
                    break;
                }
            }
            if thread_stop.load(Ordering::Relaxed) {
                break;
            }
            // Keep the checkpoints of the files still followed from being pruned as stale
            // (the writer prunes entries not refreshed for a week).
            if last_keepalive.is_none_or(|t| t.elapsed() >= CHECKPOINT_KEEPALIVE) {
                last_keepalive = Some(Instant::now());
                let positions = tailer.positions();
                if !positions.is_empty()
                    && tx.blocking_send(Collected::Positions(positions)).is_err()
                {
                    break;
                }
            }
            // Catching up (a read budget was hit): read on at once; a file being read from
            // behind sends no events to wait for.
            if !tailer.is_behind() && watcher.wait(tailer.deadline()) == Woken::Stop {
                break;
            }
        }
        tailer.stats()
    })?;
    Ok((handle, control))
}

/// Start the sampler thread. It returns how many samples it dropped.
pub fn spawn_sampler(
    mut sampler: HostSampler,
    interval: Duration,
    tx: mpsc::Sender<Collected>,
    counters: Arc<Counters>,
) -> Result<Sampler, AgentError> {
    let (wake, wait) = std_mpsc::channel::<Wake>();
    let handle = spawn("outpost-sampler", move || {
        let mut backlog = MetricBacklog::new(SAMPLE_BACKLOG, "host sample");
        loop {
            match wait.recv_timeout(interval) {
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Ok(Wake::Changed) => continue,
                Ok(Wake::Stop) | Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
            backlog.push(sampler.sample(super::unix_ms()), &counters);
            if backlog.send(&tx).is_err() {
                break;
            }
        }
        backlog.dropped
    })?;
    Ok(Sampler { handle, wake })
}

/// Runs of custom inputs (`[textfile]`, `[[exec]]`) kept while the pipeline is blocked; past
/// this the oldest are dropped.
pub const CUSTOM_BACKLOG: usize = 60;

/// The custom-metrics thread and how to stop it.
pub struct CustomThread {
    /// Returns how many runs' points it dropped while the pipeline was blocked.
    pub handle: std::thread::JoinHandle<u64>,
    wake: std_mpsc::Sender<Wake>,
    stop: Arc<AtomicBool>,
}

impl CustomThread {
    /// Ask the thread to stop: it returns from its wait at once, and a running command is
    /// killed.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.wake.send(Wake::Stop);
    }
}

/// Start the one thread that runs every custom input when it is due. Like the sampler's,
/// its points wait in a bounded backlog while the pipeline is blocked, the oldest dropped.
/// Problems are counted in `counters` too (`agent.custom_errors`).
pub fn spawn_custom(
    mut runner: CustomRunner,
    tx: mpsc::Sender<Collected>,
    counters: Arc<Counters>,
) -> Result<CustomThread, AgentError> {
    let (wake, wait) = std_mpsc::channel::<Wake>();
    let stop = Arc::new(AtomicBool::new(false));
    // Every problem so far; its growth goes to `agent.custom_errors`.
    let errors = runner.errors();
    let thread_stop = stop.clone();
    let (textfile, exec) = runner.inputs();
    tracing::info!(textfile, exec, "custom metrics: starting");
    let handle = spawn("outpost-custom", move || {
        let mut backlog = MetricBacklog::new(CUSTOM_BACKLOG, "run of custom metrics");
        let mut counted = 0u64;
        loop {
            let wait_for = runner.deadline().map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(Instant::now())
            });
            match wait.recv_timeout(wait_for) {
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Ok(Wake::Changed) => continue,
                Ok(Wake::Stop) | Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
            runner.run_due(
                Instant::now(),
                super::unix_ms(),
                &thread_stop,
                &mut |points| backlog.push(points, &counters),
            );
            let total = errors.load(Ordering::Relaxed);
            counters.custom_errors(total - counted);
            counted = total;
            if thread_stop.load(Ordering::Relaxed) || backlog.send(&tx).is_err() {
                break;
            }
        }
        backlog.dropped
    })?;
    Ok(CustomThread { handle, wake, stop })
}

/// Metric points waiting for room in the pipeline (a sampler or custom-input thread never
/// blocks on it): the newest `limit` runs are kept, the oldest dropped and counted.
struct MetricBacklog {
    runs: VecDeque<Vec<MetricPoint>>,
    limit: usize,
    /// What one run is, for the log line.
    what: &'static str,
    /// Runs dropped.
    dropped: u64,
}

/// The pipeline has closed (the agent is stopping).
struct Closed;

impl MetricBacklog {
    fn new(limit: usize, what: &'static str) -> Self {
        Self {
            runs: VecDeque::new(),
            limit,
            what,
            dropped: 0,
        }
    }

    /// Queue one run's points; past the limit the oldest run is dropped (counted in
    /// `agent.records_dropped`).
    fn push(&mut self, points: Vec<MetricPoint>, counters: &Counters) {
        self.runs.push_back(points);
        if self.runs.len() > self.limit {
            self.runs.pop_front();
            self.dropped += 1;
            counters.metrics_dropped();
            tracing::warn!(
                dropped = self.dropped,
                "pipeline blocked; dropping the oldest {}",
                self.what
            );
        }
    }

    /// Hand the pipeline every queued run it takes now, oldest first.
    fn send(&mut self, tx: &mpsc::Sender<Collected>) -> Result<(), Closed> {
        while let Some(points) = self.runs.pop_front() {
            match tx.try_send(Collected::Metrics(points)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(item)) => {
                    if let Collected::Metrics(points) = item {
                        self.runs.push_front(points);
                    }
                    return Ok(());
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(Closed),
            }
        }
        Ok(())
    }
}

/// Start a named thread.
pub fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>, AgentError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(|e| AgentError::Internal(format!("cannot start {name}: {e}")))
}
