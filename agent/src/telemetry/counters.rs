//! Counters the pipeline's threads and tasks bump, read as a [`Snapshot`]. Atomics for the
//! totals; one mutex for the per-service log counters, taken once per chunk of lines.

use crate::collect::logs::tailer::TailStats;
use crate::ship::ShipStats;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Lines and error lines of one service.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LogCount {
    /// Records read (a joined multiline record counts once).
    pub lines: u64,
    /// Of those, error lines (`logs[].error_pattern`, or the detected level).
    pub errors: u64,
}

/// The agent's counters. Totals only grow while the agent runs; gauges are set.
#[derive(Debug, Default)]
pub struct Counters {
    lines_read: AtomicU64,
    bytes_read: AtomicU64,
    files_watched: AtomicU64,
    batches_sent: AtomicU64,
    batches_failed: AtomicU64,
    records_rejected: AtomicU64,
    metric_runs_dropped: AtomicU64,
    custom_errors: AtomicU64,
    spool_bytes: AtomicU64,
    last_sent_ms: AtomicI64,
    stopping: AtomicBool,
    logs: Mutex<BTreeMap<Arc<str>, LogCount>>,
}

/// The counters at one moment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Log records read.
    pub lines_read: u64,
    /// Log bytes read.
    pub bytes_read: u64,
    /// Files followed now.
    pub files_watched: u64,
    /// Frames the sink acknowledged.
    pub batches_sent: u64,
    /// Failed delivery attempts (retried) and frames the sink refused for good.
    pub batches_failed: u64,
    /// Not delivered: runs of metric points (host samples, custom inputs) dropped while the
    /// pipeline was blocked, and records of frames the sink refused (kept as dead letters).
    pub records_dropped: u64,
    /// Problems of the custom metric inputs (bad files, failing commands).
    pub custom_errors: u64,
    /// Bytes in the spool.
    pub spool_bytes: u64,
    /// When the sink last acknowledged a frame, unix ms; 0 if never since the start.
    pub last_sent_ms: i64,
    /// Lines and error lines per service.
    pub logs: BTreeMap<Arc<str>, LogCount>,
}

impl Counters {
    /// The log services now configured: each new one starts at zero (so it has a point even
    /// before its first line), those still configured keep their counts, and those no longer
    /// configured are forgotten (no more points for them after a reload removed them).
    pub fn set_services<'a>(&self, services: impl IntoIterator<Item = &'a str>) {
        let wanted: std::collections::BTreeSet<&str> = services.into_iter().collect();
        let mut logs = self.logs.lock().unwrap_or_else(PoisonError::into_inner);
        logs.retain(|name, _| wanted.contains(&**name));
        for s in wanted {
            if !logs.contains_key(s) {
                logs.insert(Arc::from(s), LogCount::default());
            }
        }
    }

    /// Count a chunk of `lines` records of `service`, `errors` of them error lines. Only the
    /// services of [`Counters::set_services`] are counted (a chunk of an input a reload just
    /// removed is not).
    pub fn count_logs(&self, service: &str, lines: u64, errors: u64) {
        let mut logs = self.logs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = logs.get_mut(service) {
            c.lines += lines;
            c.errors += errors;
        }
    }

    /// The tailer's totals.
    pub fn set_tail(&self, stats: &TailStats) {
        self.lines_read.store(stats.lines, Ordering::Relaxed);
        self.bytes_read.store(stats.bytes, Ordering::Relaxed);
        self.files_watched
            .store(stats.opened.saturating_sub(stats.closed), Ordering::Relaxed);
    }

    /// The shipper's totals and the dead letters written; `now_ms` is when they were read.
    pub fn set_ship(&self, ship: &ShipStats, dead_lettered: u64, now_ms: i64) {
        let before = self.batches_sent.swap(ship.frames_sent, Ordering::Relaxed);
        if ship.frames_sent > before {
            self.last_sent_ms.store(now_ms, Ordering::Relaxed);
        }
        self.batches_failed
            .store(ship.retries + dead_lettered, Ordering::Relaxed);
        self.records_rejected
            .store(ship.records_rejected, Ordering::Relaxed);
    }

    /// One more run of metric points (a host sample, a custom input's run) dropped while the
    /// pipeline was blocked.
    pub fn metrics_dropped(&self) {
        self.metric_runs_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` more problems of the custom metric inputs.
    pub fn custom_errors(&self, n: u64) {
        self.custom_errors.fetch_add(n, Ordering::Relaxed);
    }

    /// The spool's size now.
    pub fn set_spool_bytes(&self, bytes: u64) {
        self.spool_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The agent has begun to stop (`/healthz` answers 503 from now on).
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether the agent is stopping.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Read every counter.
    pub fn snapshot(&self) -> Snapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            lines_read: get(&self.lines_read),
            bytes_read: get(&self.bytes_read),
            files_watched: get(&self.files_watched),
            batches_sent: get(&self.batches_sent),
            batches_failed: get(&self.batches_failed),
            records_dropped: get(&self.metric_runs_dropped) + get(&self.records_rejected),
            custom_errors: get(&self.custom_errors),
            spool_bytes: get(&self.spool_bytes),
            last_sent_ms: self.last_sent_ms.load(Ordering::Relaxed),
            logs: self
                .logs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_service_and_a_reload_keeps_only_configured_services() {
        let c = Counters::default();
        c.set_services(["api", "web"]);
        let api: Arc<str> = Arc::from("api");
        c.count_logs("api", 10, 2);
        c.count_logs("api", 5, 1);
        let want = LogCount {
            lines: 15,
            errors: 3,
        };
        let s = c.snapshot();
        assert_eq!(s.logs[&api], want);
        assert_eq!(s.logs[&Arc::from("web")], LogCount::default());
        // A reload dropped `web` and added `db`: `api` keeps its counts.
        c.set_services(["api", "db"]);
        let s = c.snapshot();
        assert_eq!(s.logs[&api], want);
        assert_eq!(s.logs[&Arc::from("db")], LogCount::default());
        assert!(!s.logs.contains_key(&Arc::from("web")));
        assert_eq!(s.logs.len(), 2);
        // A last chunk of the removed input is not counted (nor brings `web` back).
        c.count_logs("web", 3, 1);
        assert_eq!(c.snapshot().logs.len(), 2);
    }

    #[test]
    fn ship_totals_and_drops() {
        let c = Counters::default();
        let ship = ShipStats {
            frames_sent: 4,
            records_sent: 40,
            retries: 3,
            records_rejected: 7,
            records_abandoned: 0,
        };
        c.set_ship(&ship, 1, 1_000);
        c.metrics_dropped();
        c.set_ship(&ship, 1, 2_000);
        let s = c.snapshot();
        assert_eq!(s.batches_sent, 4);
        assert_eq!(s.batches_failed, 4);
        assert_eq!(s.records_dropped, 8);
        // Nothing new was acknowledged at 2000: the last delivery stays at 1000.
        assert_eq!(s.last_sent_ms, 1_000);
    }
}
