//! The running agent: what runs where, and how it stops.
//!
//! ```text
//! tailer thread ───────┐
//! sampler thread ──────┤                    closed              encoded
//! custom-inputs thread ├─► Collected ─► batcher ─► encoder ─► writer task ──────────────┐
//! telemetry task ──────┘   (bounded)    task      thread     spool (fsync), then       │
//!                                                            checkpoints (atomic)      │
//!                                          delivery task: spool ─► Shipper ─► sink, ack ◄┘
//! ```
//! Besides: the reload task (SIGHUP: new log inputs to the tailer) and, when
//! `telemetry.listen` is set, the Prometheus endpoint task.
//!
//! Bounded channels and a bounded spool give backpressure: when the spool is full the writer
//! waits, the encoder and the batcher wait, and the tailer stops reading (the files keep the
//! data); the sampler and the custom inputs keep a bounded backlog of runs and drop the
//! oldest, the telemetry task skips an interval (its next deltas carry the counts). A
//! checkpoint only moves past lines that are durably spooled, and a spool entry is only
//! acknowledged once the sink took it and the checkpoint file covers its positions.
//!
//! systemd hears of it (`sd_notify`): `READY=1` once everything above is started, `WATCHDOG=1`
//! from the main loop below, `READY=1` after a reload, `STOPPING=1` when shutdown begins.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`run`]: opening the state, starting everything above, the main loop, stopping |
//! | `collectors.rs` | the tailer's, the sampler's and the custom inputs' threads |
//! | `telemetry.rs` | the task that ships the agent's own counters |
//! | `batcher.rs` | the batcher task |
//! | `writer.rs` | the encoder thread and the writer task (spool, then checkpoints) |
//! | `envelope.rs` | a spool entry: a frame and the file positions it completes |
//! | `delivery.rs` | the delivery task: spool to sink, acks, dead letters |

mod batcher;
mod collectors;
mod delivery;
mod envelope;
mod telemetry;
mod writer;

use batcher::{Closed, batch_loop};

use crate::batch::Batcher;
use crate::collect::host::{HostSampler, system_hostname};
use crate::collect::logs::tailer::{TailChunk, TailOptions, TailStats, Tailer};
use crate::config::{Config, LogInput};
use crate::error::AgentError;
use crate::sd_notify::Notifier;
use crate::ship::{Sender, ShipStats, Shipper};
use crate::spool::{Spool, SpoolOptions};
use crate::state::checkpoint::CheckpointStore;
use crate::state::identity::{MACHINE_ID, identity, resolve_id};
use crate::state::position::Position;
use crate::state::seq::{Recovered, SeqAllocator};
use crate::telemetry::Counters;
use outpost_proto::{AgentIdentity, MetricPoint};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, mpsc, watch};

/// Chunks of records buffered between the collectors and the batcher (a log chunk holds up to
/// about 256 KiB of lines).
const ITEM_CHANNEL: usize = 16;
/// Closed batches buffered between the batcher and the encoder.
const BATCH_CHANNEL: usize = 2;
/// Encoded batches buffered between the encoder and the writer (written as one group when
/// several wait).
const ENCODED_CHANNEL: usize = 4;

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
    /// Delivery counters.
    pub ship: ShipStats,
    /// Host samples dropped (oldest first) while the pipeline was blocked.
    pub samples_dropped: u64,
    /// Records written to the spool.
    pub records_spooled: u64,
    /// Records not spooled at shutdown (the spool stayed full); their lines are read again on
    /// the next start.
    pub records_unspooled: u64,
    /// Frames the sink refused for good, kept under `STATE_DIR/dead-letter/`.
    pub dead_lettered: u64,
    /// Times the writer found the spool full and waited for the sink.
    pub spool_full_waits: u64,
}

impl RunSummary {
    fn of(
        tail: TailStats,
        samples_dropped: u64,
        written: writer::WriterStats,
        delivered: delivery::DeliveryStats,
    ) -> Self {
        Self {
            tail,
            ship: delivered.ship,
            samples_dropped,
            records_spooled: written.records_spooled,
            records_unspooled: written.records_unspooled,
            dead_lettered: delivered.dead_lettered,
            spool_full_waits: written.full_waits,
        }
    }
}

/// What collectors hand the batcher.
enum Collected {
    Logs(TailChunk),
    Metrics(Vec<MetricPoint>),
    /// The tailer read a backlog to its end (it had stopped at its read budget before).
    CaughtUp,
    /// The current positions of the files followed (no new records): refreshes their
    /// checkpoints.
    Positions(Vec<Position>),
}

/// Run the agent until `shutdown` completes; on each value from `reload`, apply a new config's
/// log inputs. Then deliver what is spooled within `agent.shutdown_timeout` and return; what is
/// left stays in the spool for the next start. `notifier` tells systemd when the agent is
/// ready, reloaded and stopping, and pings its watchdog.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
    reload: mpsc::Receiver<Config>,
    notifier: Notifier,
) -> Result<RunSummary, AgentError> {
    let state_dir = config.agent.state_dir.clone();
    let state = open_state(&config)?;
    let sender = Sender::new(&config.sink, &state.ident.agent_id).await?;
    let counters = Arc::new(Counters::default());
    counters.set_services(config.logs.iter().map(|l| l.service.as_str()));
    let listener = bind_telemetry(&config).await?;
    let sampler = config
        .host
        .as_ref()
        .map(|h| HostSampler::new().map(|s| (s, h.interval)))
        .transpose()?;
    // Everything that can fail is set up; from here on the agent runs.
    let spool = Arc::new(Mutex::new(state.spool));
    let spooled = Arc::new(Notify::new());
    let freed = Arc::new(Notify::new());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (checkpointed_tx, checkpointed_rx) = watch::channel(state.checkpointed_through);

    let (item_tx, item_rx) = mpsc::channel::<Collected>(ITEM_CHANNEL);
    let collectors = Collectors::spawn(
        &config,
        &state.checkpoints,
        state.first_start,
        sampler,
        item_tx,
        &counters,
        &shutdown_rx,
    )?;
    let endpoint = listener.map(|l| serve_telemetry(l, &counters));
    let (batcher, encoder, encoded_rx) =
        spawn_batcher_and_encoder(&config, item_rx, state.ident, state.seq)?;
    let mut writer = tokio::spawn(
        writer::Writer {
            spool: spool.clone(),
            checkpoints: state.checkpoints,
            spooled: spooled.clone(),
            freed: freed.clone(),
            shutdown: shutdown_rx.clone(),
            drain: config.agent.shutdown_timeout,
            stats: writer::WriterStats::default(),
            checkpointed: checkpointed_tx,
            last_appended: state.checkpointed_through,
            started: std::time::Instant::now(),
            last_prune: std::time::Instant::now(),
            counters: counters.clone(),
        }
        .run(encoded_rx),
    );
    let mut delivery = tokio::spawn(
        delivery::DeliveryTask {
            spool: spool.clone(),
            shipper: Shipper::new(sender, config.agent.shutdown_timeout, shutdown_rx.clone()),
            dead_letter_dir: state_dir.join("dead-letter"),
            spooled: spooled.clone(),
            freed: freed.clone(),
            dead_lettered: 0,
            checkpointed: checkpointed_rx,
            shutdown: shutdown_rx.clone(),
            counters: counters.clone(),
        }
        .run(writer_done(&writer)),
    );

    let reloads = tokio::spawn(reload_loop(
        reload,
        collectors.tail_control.clone(),
        notifier.clone(),
        counters.clone(),
    ));
    notifier.ready(running_status(&config));
    let (writer_result, delivery_result) =
        wait_for_end(shutdown, &mut writer, &mut delivery, &notifier, &spool).await;
    notifier.stopping(if writer_result.is_some() || delivery_result.is_some() {
        "stopping after an error (see the log)"
    } else {
        "stopping: delivering what is spooled"
    });
    reloads.abort();
    counters.set_stopping();
    let _ = shutdown_tx.send(true);
    collectors.stop();

    let (tail, samples_dropped) = collectors.join().await?;
    batcher
        .await
        .map_err(|e| AgentError::Internal(format!("batcher: {e}")))?;
    // The writer and delivery only end early on an error the agent cannot run past (the spool's
    // disk failing, say): everything was stopped then; report it.
    let mut fatal: Option<AgentError> = None;
    if let Err(e) = join_thread(encoder).await.and_then(|r| r) {
        fatal.get_or_insert(e);
    }
    let written = finish("writer", writer_result, writer, &mut fatal).await;
    let delivered = finish("delivery", delivery_result, delivery, &mut fatal).await;
    if let Some(e) = fatal {
        return Err(e);
    }
    let summary = RunSummary::of(tail, samples_dropped, written, delivered);
    if let Some(e) = endpoint {
        e.abort();
    }
    log_stopped(&summary, &spool);
    Ok(summary)
}

/// The last line of a run.
fn log_stopped(summary: &RunSummary, spool: &Mutex<Spool>) {
    let left = spool.lock().map(|s| s.pending()).unwrap_or(0);
    tracing::info!(
        lines = summary.tail.lines,
        spooled = summary.records_spooled,
        sent = summary.ship.records_sent,
        frames_left_in_spool = left,
        dead_lettered = summary.dead_lettered,
        spool_full_waits = summary.spool_full_waits,
        "outpost-agent stopped"
    );
}

/// Bind `telemetry.listen`, when set (before anything runs: a port in use is a start error).
async fn bind_telemetry(config: &Config) -> Result<Option<tokio::net::TcpListener>, AgentError> {
    match config.telemetry.listen {
        Some(addr) => Ok(Some(tokio::net::TcpListener::bind(addr).await.map_err(
            |e| AgentError::Internal(format!("telemetry.listen: cannot listen on {addr}: {e}")),
        )?)),
        None => Ok(None),
    }
}

/// Serve the local Prometheus endpoint on `listener`.
fn serve_telemetry(
    listener: tokio::net::TcpListener,
    counters: &Arc<Counters>,
) -> tokio::task::JoinHandle<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "telemetry endpoint listening");
    }
    tokio::spawn(crate::telemetry::serve(
        listener,
        counters.clone(),
        env!("CARGO_PKG_VERSION"),
    ))
}

/// What the state directory gave a start: who the agent is, the sequence numbers, the spool
/// and the checkpoints (repaired from the spool).
struct State {
    ident: AgentIdentity,
    seq: SeqAllocator,
    spool: Spool,
    checkpoints: CheckpointStore,
    /// The last spool entry whose positions the checkpoint file covers.
    checkpointed_through: u64,
    /// No checkpoint file yet: each input's `read_from` decides where files start.
    first_start: bool,
}

/// Open the state directory: the agent id, the sequence file, the spool and the checkpoints,
/// replaying the spooled positions into the checkpoints; log the start.
fn open_state(config: &Config) -> Result<State, AgentError> {
    let state_dir = &config.agent.state_dir;
    let state_err = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| AgentError::State { path, source }
    };
    std::fs::create_dir_all(state_dir).map_err(state_err(state_dir))?;
    let (agent_id, id_source) = resolve_id(
        config.agent.id.as_deref(),
        std::path::Path::new(MACHINE_ID),
        state_dir,
    )
    .map_err(state_err(state_dir))?;
    let hostname = config
        .agent
        .hostname
        .clone()
        .unwrap_or_else(system_hostname);
    let now_ms = u64::try_from(unix_ms()).unwrap_or(0);
    let (seq, recovered) = SeqAllocator::open(state_dir, now_ms).map_err(state_err(state_dir))?;
    if recovered == Recovered::Corrupt {
        tracing::warn!(path = %state_dir.join("seq").display(), "sequence file was corrupt; continuing from the clock");
    }
    let ident = identity(agent_id, hostname);
    let (mut spool, spool_recovery) = Spool::open(
        &state_dir.join("spool"),
        SpoolOptions {
            max_bytes: config.spool.max_bytes,
            segment_bytes: config.spool.segment_bytes,
        },
    )
    .map_err(|e| AgentError::Spool(e.to_string()))?;
    let (mut checkpoints, cp_recovery) =
        CheckpointStore::open(state_dir).map_err(|e| AgentError::Checkpoint(e.to_string()))?;
    let replayed = replay_positions(&mut spool, &mut checkpoints)?;
    let checkpointed_through = spool.next_id().saturating_sub(1);
    let first_start = matches!(cp_recovery, crate::state::checkpoint::Recovery::Missing);
    tracing::info!(version = crate::version::LONG, agent_id = %ident.agent_id, id_source = ?id_source, hostname = %ident.hostname,
        sink = %config.sink.describe(), inputs = config.logs.len(), spooled = spool.pending(),
        spool_recovery = ?spool_recovery, checkpoints = checkpoints.len(), replayed, first_start,
        "outpost-agent starting");
    Ok(State {
        ident,
        seq,
        spool,
        checkpoints,
        checkpointed_through,
        first_start,
    })
}

/// The collectors feeding the batcher: the tailer's, the sampler's and the custom inputs'
/// threads, and the telemetry emitter task.
struct Collectors {
    tail_thread: std::thread::JoinHandle<TailStats>,
    tail_control: collectors::TailControl,
    sample_thread: Option<collectors::Sampler>,
    custom_thread: Option<collectors::CustomThread>,
    emitter: Option<tokio::task::JoinHandle<()>>,
}

impl Collectors {
    /// Start them, each with a sender of `items` (dropped here: the channel closes once all
    /// of them have ended).
    fn spawn(
        config: &Config,
        checkpoints: &CheckpointStore,
        first_start: bool,
        sampler: Option<(HostSampler, std::time::Duration)>,
        items: mpsc::Sender<Collected>,
        counters: &Arc<Counters>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Self, AgentError> {
        let resume = checkpoints.iter().cloned().collect();
        let tailer = Tailer::new(
            config.logs.clone(),
            resume,
            TailOptions {
                rotate_wait: config.tail.rotate_wait,
                first_start,
            },
        );
        let (tail_thread, tail_control) =
            collectors::spawn_tailer(tailer, config, items.clone(), counters.clone())?;
        let sample_thread = match sampler {
            Some((s, interval)) => Some(collectors::spawn_sampler(
                s,
                interval,
                items.clone(),
                counters.clone(),
            )?),
            None => None,
        };
        // Custom metrics ([textfile], [[exec]]): no thread when neither is configured.
        let custom_thread =
            match crate::collect::custom::CustomRunner::from_config(config, Instant::now()) {
                Some(r) => Some(collectors::spawn_custom(
                    r,
                    items.clone(),
                    counters.clone(),
                )?),
                None => None,
            };
        let emitter = config.telemetry.ship.then(|| {
            tokio::spawn(telemetry::emit_loop(
                counters.clone(),
                config.telemetry.interval,
                items.clone(),
                shutdown.clone(),
            ))
        });
        Ok(Self {
            tail_thread,
            tail_control,
            sample_thread,
            custom_thread,
            emitter,
        })
    }

    /// Ask the threads to stop (the emitter stops on shutdown).
    fn stop(&self) {
        self.tail_control.stop();
        if let Some(s) = &self.sample_thread {
            s.stop();
        }
        if let Some(c) = &self.custom_thread {
            c.stop();
        }
    }

    /// Wait for all of them: the tailer's counters and how many host samples were dropped.
    async fn join(self) -> Result<(TailStats, u64), AgentError> {
        let tail = join_thread(self.tail_thread).await?;
        let samples_dropped = match self.sample_thread {
            Some(s) => join_thread(s.handle).await?,
            None => 0,
        };
        if let Some(c) = self.custom_thread {
            join_thread(c.handle).await?;
        }
        if let Some(e) = self.emitter {
            let _ = e.await;
        }
        Ok((tail, samples_dropped))
    }
}

/// Start the batcher task and the encoder thread; the receiver of encoded batches is the
/// writer's.
#[allow(clippy::type_complexity)]
fn spawn_batcher_and_encoder(
    config: &Config,
    items: mpsc::Receiver<Collected>,
    ident: AgentIdentity,
    seq: SeqAllocator,
) -> Result<
    (
        tokio::task::JoinHandle<()>,
        std::thread::JoinHandle<Result<(), AgentError>>,
        mpsc::Receiver<writer::Encoded>,
    ),
    AgentError,
> {
    let (closed_tx, closed_rx) = mpsc::channel::<Closed>(BATCH_CHANNEL);
    let (recycle_tx, recycle_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    let batcher = tokio::spawn(batch_loop(
        Batcher::new(config.batch),
        items,
        closed_tx,
        recycle_rx,
    ));
    let (encoded_tx, encoded_rx) = mpsc::channel::<writer::Encoded>(ENCODED_CHANNEL);
    let zstd_level = config.zstd_level;
    let max_frame_len = config.sink.max_frame_len();
    let runtime = tokio::runtime::Handle::current();
    let encoder = collectors::spawn("outpost-encoder", move || {
        let channels = writer::EncoderChannels {
            closed: closed_rx,
            encoded: encoded_tx,
            recycle: recycle_tx,
        };
        writer::encode_loop(&runtime, channels, ident, zstd_level, max_frame_len, seq)
    })?;
    Ok((batcher, encoder, encoded_rx))
}

/// Run until `shutdown` completes or the writer or delivery ends (an error), pinging the
/// watchdog meanwhile. Returns the result of whichever of the two ended.
#[allow(clippy::type_complexity)]
async fn wait_for_end(
    shutdown: impl Future<Output = ()>,
    writer: &mut tokio::task::JoinHandle<Result<writer::WriterStats, AgentError>>,
    delivery: &mut tokio::task::JoinHandle<Result<delivery::DeliveryStats, AgentError>>,
    notifier: &Notifier,
    spool: &Mutex<Spool>,
) -> (
    Option<Result<Result<writer::WriterStats, AgentError>, tokio::task::JoinError>>,
    Option<Result<Result<delivery::DeliveryStats, AgentError>, tokio::task::JoinError>>,
) {
    tokio::pin!(shutdown);
    let mut watchdog = notifier.watchdog_interval().map(|every| {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    loop {
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("shutting down: spooling the current batch");
                return (None, None);
            }
            r = &mut *writer => return (Some(r), None),
            r = &mut *delivery => return (None, Some(r)),
            () = tick(&mut watchdog) => {
                // Proof of life: this loop runs (so does the runtime that batches, spools and
                // delivers), and the spool the writer and delivery share is not stuck.
                if with_spool(spool, |_| ()).is_ok() {
                    notifier.watchdog();
                }
            }
        }
    }
}

/// Repair the checkpoints from the spool: apply, in order, the positions of every entry still
/// in it (a crash may have come between spooling them and writing the checkpoint file), then
/// write the file. Returns how many entries were replayed.
fn replay_positions(
    spool: &mut Spool,
    checkpoints: &mut CheckpointStore,
) -> Result<u64, AgentError> {
    let mut after = None;
    let mut n = 0;
    while let Some(entry) = spool
        .next_unacked(after)
        .map_err(|e| AgentError::Spool(e.to_string()))?
    {
        match envelope::positions(&entry.payload) {
            Ok(positions) => writer::apply(checkpoints, &positions),
            Err(error) => {
                tracing::warn!(id = entry.id, %error, "spool entry without readable positions")
            }
        }
        after = Some(entry.id);
        n += 1;
    }
    checkpoints
        .flush()
        .map_err(|e| AgentError::Checkpoint(e.to_string()))?;
    Ok(n)
}

/// Resolves when the writer task has finished (for the delivery task's drain).
fn writer_done<T>(writer: &tokio::task::JoinHandle<T>) -> impl Fn() -> bool + Send + 'static {
    let abort = writer.abort_handle();
    move || abort.is_finished()
}

async fn reload_loop(
    mut reload: mpsc::Receiver<Config>,
    tail: collectors::TailControl,
    notifier: Notifier,
    counters: Arc<Counters>,
) {
    while let Some(config) = reload.recv().await {
        let inputs: Vec<LogInput> = config.logs.clone();
        counters.set_services(inputs.iter().map(|l| l.service.as_str()));
        tracing::info!(
            inputs = inputs.len(),
            "config reloaded: applying log inputs"
        );
        tail.reload(inputs);
        notifier.ready(format!(
            "{}; configuration reloaded",
            running_status(&config)
        ));
    }
}

/// `STATUS=` while running.
fn running_status(config: &Config) -> String {
    format!(
        "running: {} log input(s), sink kind {}",
        config.logs.len(),
        config.sink.kind().as_str()
    )
}

/// The next watchdog tick; never, without a watchdog.
async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Run `f` on the spool shared by the writer and delivery, outside the async worker (appends
/// and acks write and sync files).
fn with_spool<T>(spool: &Mutex<Spool>, f: impl FnOnce(&mut Spool) -> T) -> Result<T, AgentError> {
    tokio::task::block_in_place(|| {
        let mut spool = spool
            .lock()
            .map_err(|_| AgentError::Spool("lock poisoned".to_owned()))?;
        Ok(f(&mut spool))
    })
}

/// The result of a task that may already have finished; an error is kept in `fatal` (the
/// first one wins) and the task's default stats stand in.
async fn finish<T: Default>(
    name: &str,
    early: Option<Result<Result<T, AgentError>, tokio::task::JoinError>>,
    task: tokio::task::JoinHandle<Result<T, AgentError>>,
    fatal: &mut Option<AgentError>,
) -> T {
    let result = match early {
        Some(r) => r,
        None => task.await,
    };
    result
        .map_err(|e| AgentError::Internal(format!("{name}: {e}")))
        .and_then(|r| r)
        .unwrap_or_else(|e| {
            fatal.get_or_insert(e);
            T::default()
        })
}

async fn join_thread<T: Send + 'static>(h: std::thread::JoinHandle<T>) -> Result<T, AgentError> {
    tokio::task::spawn_blocking(move || h.join())
        .await
        .map_err(|e| AgentError::Internal(e.to_string()))?
        .map_err(|_| AgentError::Internal("worker thread panicked".to_owned()))
}
