//! Delivering a group of spooled frames with retries: until each is taken, refused for good,
//! or the drain time after shutdown runs out. Only the frames the sink did not take are sent
//! again; a call refused as a whole is split in halves to find the frame the sink refuses.

use super::backoff::Backoff;
use super::sender::Sender;
use super::transport::{GroupLimits, SendError, Transport};
use bytes::Bytes;
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

/// A spooled frame to deliver.
#[derive(Debug, Clone)]
pub struct SpooledFrame {
    /// Its spool entry.
    pub id: u64,
    /// Records in it.
    pub records: u64,
    /// The frame (empty for an entry that only carries file positions: nothing is sent).
    pub frame: Bytes,
}

/// How one frame's delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameOutcome {
    /// The sink acknowledged the frame (or there was nothing to send).
    Delivered,
    /// The sink refused it for good (400, 413, a `ValidationException`): retrying cannot help.
    Rejected {
        /// HTTP status (413 when the transport refused it before sending).
        status: u16,
        /// Why.
        reason: String,
    },
    /// Shutdown's drain time ran out first; the frame stays spooled.
    Abandoned,
}

/// Delivers frames to the sink through `T` (the configured [`Sender`] unless a test scripts
/// one), retrying with backoff until acknowledged, refused for good, or the drain time after
/// shutdown is up.
pub struct Shipper<T = Sender> {
    sender: T,
    drain: Duration,
    shutdown: watch::Receiver<bool>,
    drain_deadline: Option<Instant>,
    stats: ShipStats,
}

impl<T: Transport> Shipper<T> {
    /// A shipper that, once `shutdown` turns true, keeps trying for at most `drain`.
    pub fn new(sender: T, drain: Duration, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            sender,
            drain,
            shutdown,
            drain_deadline: None,
            stats: ShipStats::default(),
        }
    }

    /// How many frames one call of the transport carries.
    pub fn limits(&self) -> GroupLimits {
        self.sender.limits()
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

    /// Deliver a group of frames (within [`Shipper::limits`]); one outcome for each, in order.
    pub async fn deliver(&mut self, items: &[SpooledFrame]) -> Vec<FrameOutcome> {
        let mut outcomes: Vec<Option<FrameOutcome>> = vec![None; items.len()];
        let mut todo = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if item.frame.is_empty() {
                outcomes[i] = Some(FrameOutcome::Delivered);
            } else if let Some(reason) = self.sender.refuse(&item.frame) {
                outcomes[i] = Some(self.rejected(item, 413, reason));
            } else {
                todo.push(i);
            }
        }
        // Sets of frames still to send, the next on top.
        let mut work = if todo.is_empty() { vec![] } else { vec![todo] };
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
        while let Some(mut set) = work.pop() {
            loop {
                if self.out_of_time() {
                    let left: Vec<usize> = set.drain(..).chain(work.drain(..).flatten()).collect();
                    let records: u64 = left.iter().map(|&i| items[i].records).sum();
                    tracing::warn!(
                        id = items[left[0]].id,
                        frames = left.len(),
                        records,
                        "shutdown drain time is up; frames stay in the spool"
                    );
                    self.stats.records_abandoned += records;
                    break;
                }
                let frames: Vec<Bytes> = set.iter().map(|&i| items[i].frame.clone()).collect();
                let error = match self.sender.send(&frames).await {
                    Ok(failed) => {
                        let mut errors: Vec<Option<SendError>> = vec![None; set.len()];
                        for f in failed {
                            if let Some(slot) = errors.get_mut(f.index) {
                                *slot = Some(f.error);
                            }
                        }
                        let mut again = Vec::new();
                        let mut worst: Option<SendError> = None;
                        for (&i, error) in set.iter().zip(errors) {
                            outcomes[i] = match error {
                                None => Some(self.delivered(&items[i])),
                                Some(SendError::Rejected { status, reason }) => {
                                    Some(self.rejected(&items[i], status, reason))
                                }
                                Some(e) => {
                                    again.push(i);
                                    worst = Some(worse(worst, e));
                                    None
                                }
                            };
                        }
                        match worst {
                            None => break,
                            Some(e) => {
                                set = again;
                                e
                            }
                        }
                    }
                    Err(SendError::Rejected { status, reason }) if set.len() > 1 => {
                        tracing::warn!(id = items[set[0]].id, frames = set.len(), status, %reason,
                            "the sink refused a call of several frames; sending halves to find the frame it refuses");
                        let second = set.split_off(set.len() / 2);
                        work.push(second);
                        work.push(set);
                        break;
                    }
                    Err(SendError::Rejected { status, reason }) => {
                        outcomes[set[0]] = Some(self.rejected(&items[set[0]], status, reason));
                        break;
                    }
                    Err(e) => e,
                };
                self.pause(&mut backoff, &error, items[set[0]].id, set.len())
                    .await;
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(FrameOutcome::Abandoned))
            .collect()
    }

    fn delivered(&mut self, item: &SpooledFrame) -> FrameOutcome {
        tracing::debug!(
            id = item.id,
            records = item.records,
            bytes = item.frame.len(),
            "frame delivered"
        );
        self.stats.frames_sent += 1;
        self.stats.records_sent += item.records;
        FrameOutcome::Delivered
    }

    fn rejected(&mut self, item: &SpooledFrame, status: u16, reason: String) -> FrameOutcome {
        tracing::error!(id = item.id, records = item.records, status, %reason, "sink rejected the frame");
        self.stats.records_rejected += item.records;
        FrameOutcome::Rejected { status, reason }
    }

    /// Wait before the next attempt (less when the drain time ends first; woken when
    /// shutdown begins so that the drain deadline starts).
    async fn pause(&mut self, backoff: &mut Backoff, error: &SendError, id: u64, frames: usize) {
        self.stats.retries += 1;
        if matches!(error, SendError::Unauthorized(_)) {
            self.sender.reload_credentials();
        }
        let delay = backoff.next_delay(rand::random::<f64>());
        let attempt = backoff.attempts();
        match error {
            SendError::Misconfigured(reason) => {
                tracing::error!(id, frames, attempt, retry_in = ?delay, %reason,
                "the sink refuses this agent (credentials, IAM, stream or URL), not the data: frames stay in the spool until it is fixed; will retry")
            }
            other => tracing::warn!(id, frames, attempt, retry_in = ?delay, reason = %other,
                "delivery failed; will retry"),
        }
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

/// The error to report for a set of frames that failed differently: a configuration problem
/// first (it needs an operator), then a 401 (the token is re-read), then any.
fn worse(a: Option<SendError>, b: SendError) -> SendError {
    let rank = |e: &SendError| match e {
        SendError::Misconfigured(_) => 2,
        SendError::Unauthorized(_) => 1,
        _ => 0,
    };
    match a {
        Some(a) if rank(&a) >= rank(&b) => a,
        _ => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ship::transport::Failed;
    use std::sync::{Arc, Mutex};

    /// A scripted transport: `answer` gets each call's frames.
    struct Scripted {
        /// Frames a call carries.
        limits: GroupLimits,
        /// Largest frame taken (larger ones are refused before sending).
        max_frame: usize,
        /// The answer to each call.
        #[allow(clippy::type_complexity)]
        answer: Box<dyn FnMut(&[Bytes]) -> Result<Vec<Failed>, SendError> + Send>,
    }

    impl Transport for Scripted {
        fn limits(&self) -> GroupLimits {
            self.limits
        }

        fn refuse(&self, frame: &[u8]) -> Option<String> {
            (frame.len() > self.max_frame).then(|| "too large".to_owned())
        }

        async fn send(&mut self, frames: &[Bytes]) -> Result<Vec<Failed>, SendError> {
            (self.answer)(frames)
        }

        fn reload_credentials(&mut self) {}
    }

    type Calls = Arc<Mutex<Vec<Vec<u8>>>>;

    /// Frames whose first byte names them; the mock records each call's names.
    fn items(n: u8) -> Vec<SpooledFrame> {
        (0..n)
            .map(|i| SpooledFrame {
                id: u64::from(i) + 1,
                records: 10,
                frame: Bytes::from(vec![i; 8]),
            })
            .collect()
    }

    fn shipper(
        answer: impl FnMut(&[Bytes]) -> Result<Vec<Failed>, SendError> + Send + 'static,
    ) -> (Shipper<Scripted>, Calls, watch::Sender<bool>) {
        let calls: Calls = Arc::default();
        let seen = calls.clone();
        let mut answer = answer;
        let sender = Scripted {
            limits: GroupLimits {
                max_entries: 500,
                max_bytes: 5 << 20,
                entry_overhead: 0,
            },
            max_frame: 100,
            answer: Box::new(move |frames| {
                seen.lock()
                    .unwrap()
                    .push(frames.iter().map(|f| f[0]).collect());
                answer(frames)
            }),
        };
        let (tx, rx) = watch::channel(false);
        (Shipper::new(sender, Duration::from_secs(1), rx), calls, tx)
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_failed_frames_are_sent_again() {
        let mut first = true;
        let (mut s, calls, _tx) = shipper(move |frames| {
            if std::mem::take(&mut first) {
                Ok([1, 3]
                    .into_iter()
                    .map(|index| Failed {
                        index,
                        error: SendError::Retryable(
                            "ProvisionedThroughputExceededException".into(),
                        ),
                    })
                    .collect())
            } else {
                assert_eq!(frames.len(), 2);
                Ok(vec![])
            }
        });
        let out = s.deliver(&items(5)).await;
        assert_eq!(out, vec![FrameOutcome::Delivered; 5]);
        assert_eq!(*calls.lock().unwrap(), [vec![0, 1, 2, 3, 4], vec![1, 3]]);
        let st = s.stats();
        assert_eq!((st.frames_sent, st.records_sent, st.retries), (5, 50, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_call_is_halved_until_the_refused_frame_is_found() {
        let (mut s, calls, _tx) = shipper(|frames| {
            if frames.iter().any(|f| f[0] == 2) {
                Err(SendError::Rejected {
                    status: 400,
                    reason: "ValidationException".into(),
                })
            } else {
                Ok(vec![])
            }
        });
        let out = s.deliver(&items(5)).await;
        let rejected = FrameOutcome::Rejected {
            status: 400,
            reason: "ValidationException".into(),
        };
        assert_eq!(
            out,
            [
                FrameOutcome::Delivered,
                FrameOutcome::Delivered,
                rejected,
                FrameOutcome::Delivered,
                FrameOutcome::Delivered
            ]
        );
        // Each good frame was taken exactly once.
        let calls = calls.lock().unwrap();
        let taken: Vec<u8> = calls
            .iter()
            .filter(|c| !c.contains(&2))
            .flatten()
            .copied()
            .collect();
        assert_eq!(taken, [0, 1, 3, 4], "{calls:?}");
        assert_eq!(s.stats().records_rejected, 10);
        assert_eq!(s.stats().retries, 0, "a refusal is not retried");
    }

    #[tokio::test(start_paused = true)]
    async fn a_configuration_problem_is_retried_never_dead_lettered() {
        let mut n = 0;
        let (mut s, calls, _tx) = shipper(move |_| {
            n += 1;
            if n < 6 {
                Err(SendError::Misconfigured("AccessDeniedException".into()))
            } else {
                Ok(vec![])
            }
        });
        let started = Instant::now();
        let out = s.deliver(&items(2)).await;
        assert_eq!(out, vec![FrameOutcome::Delivered; 2]);
        assert_eq!(calls.lock().unwrap().len(), 6);
        assert_eq!(s.stats().retries, 5);
        // Backed off: 125 ms + 250 ms + 500 ms + 1 s + 2 s at the least (equal jitter).
        assert!(started.elapsed() >= Duration::from_millis(3875));
    }

    #[tokio::test(start_paused = true)]
    async fn frames_too_large_for_the_transport_are_refused_unsent_and_empty_ones_skipped() {
        let (mut s, calls, _tx) = shipper(|_| Ok(vec![]));
        let mut group = items(3);
        group[0].frame = Bytes::from(vec![7; 101]);
        group[1].frame = Bytes::new();
        let out = s.deliver(&group).await;
        assert!(matches!(out[0], FrameOutcome::Rejected { status: 413, .. }));
        assert_eq!(out[1..], [FrameOutcome::Delivered, FrameOutcome::Delivered]);
        assert_eq!(*calls.lock().unwrap(), [vec![2]]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_time_running_out_abandons_what_is_left() {
        let (mut s, calls, tx) = shipper(|frames| {
            // Frame 0 is taken; the others never are.
            Ok(frames
                .iter()
                .enumerate()
                .filter(|(_, f)| f[0] != 0)
                .map(|(index, _)| Failed {
                    index,
                    error: SendError::Retryable("503".into()),
                })
                .collect())
        });
        tx.send(true).unwrap();
        let out = s.deliver(&items(3)).await;
        assert_eq!(
            out,
            [
                FrameOutcome::Delivered,
                FrameOutcome::Abandoned,
                FrameOutcome::Abandoned
            ]
        );
        assert_eq!(s.stats().records_abandoned, 20);
        assert!(calls.lock().unwrap().len() > 1);
    }
}
