//! The alarm task of `outpost-sink serve --rules`: on every tick it runs the core's alarm
//! engine over the store (`outpost_sink_core::alarm::engine`), saves the book when a state
//! changed and hands the transitions to the notifier.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outpost_sink_core::alarm::book::{AlarmBook, AlarmRecord};
use outpost_sink_core::alarm::engine::{self, millis};
use outpost_sink_core::alarm::eval;
use outpost_sink_core::alarm::rules::Rules;
use outpost_sink_core::error::{StorageError, chain};
use outpost_sink_core::ports::{MetricStore, SeriesReader};
use outpost_sink_core::timestamp;

use crate::alarm::notify::{Counters, Notifier};
use crate::alarm::persist;

/// The alarms of one rules file: shared by the task and `GET /v1/alarms`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Alarms {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rules: Rules,
    book: Mutex<AlarmBook>,
    notifier: Notifier,
    data_dir: PathBuf,
}

impl Alarms {
    /// Load the saved states from `data_dir` (blocking, brief) and start the notifier. Call
    /// within a tokio runtime. A state file that cannot be read is logged and replaced.
    pub fn start(rules: Rules, data_dir: &Path) -> Self {
        let mut book = match persist::load(data_dir) {
            Ok(book) => book.unwrap_or_default(),
            Err(error) => {
                let error = chain(&error);
                tracing::error!(%error, "alarm states not loaded, starting afresh");
                AlarmBook::default()
            }
        };
        book.retain(|(rule, _)| rules.rules.iter().any(|r| &r.name == rule));
        let notifier = Notifier::start(rules.webhook.clone());
        Self {
            inner: Arc::new(Inner {
                rules,
                book: Mutex::new(book),
                notifier,
                data_dir: data_dir.to_path_buf(),
            }),
        }
    }

    /// The rules.
    pub fn rules(&self) -> &Rules {
        &self.inner.rules
    }

    /// Every alarm, by rule then host.
    pub fn records(&self) -> Vec<AlarmRecord> {
        self.book().records().cloned().collect()
    }

    /// The webhook delivery counters.
    pub fn counters(&self) -> &Counters {
        self.inner.notifier.counters()
    }

    fn book(&self) -> std::sync::MutexGuard<'_, AlarmBook> {
        self.inner
            .book
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Evaluate at every tick (`k × tick + delay` on the wall clock) until dropped.
    pub async fn run<S: MetricStore + SeriesReader>(self, store: S) {
        let tick = millis(self.inner.rules.tick).max(1);
        let delay = millis(self.inner.rules.delay);
        tracing::info!(
            rules = self.inner.rules.rules.len(),
            file = %self.inner.rules.source.display(),
            tick = ?self.inner.rules.tick,
            "evaluating alarms"
        );
        loop {
            let now = timestamp::now_ms();
            let next = eval::window_end(now, delay, tick) + tick + delay;
            let wait = u64::try_from(next - now).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            if let Err(error) = self.evaluate(&store, timestamp::now_ms()).await {
                let error = chain(&error);
                tracing::error!(%error, "alarm evaluation failed, retrying at the next tick");
            }
        }
    }

    /// Evaluate every alarm once at `now_ms`; the number of state changes.
    pub async fn evaluate<S: MetricStore + SeriesReader>(
        &self,
        store: &S,
        now_ms: i64,
    ) -> Result<usize, StorageError> {
        let rules = &self.inner.rules;
        let inputs = engine::read_inputs(rules, store, now_ms).await?;
        // Evaluated under the lock.
        let (transitions, snapshot) = {
            let mut book = self.book();
            let transitions = engine::apply(rules, &mut book, inputs, now_ms);
            let snapshot = (!transitions.is_empty()).then(|| book.clone());
            (transitions, snapshot)
        };
        if let Some(book) = snapshot {
            let dir = self.inner.data_dir.clone();
            let saved = tokio::task::spawn_blocking(move || persist::save(&dir, &book)).await;
            match saved {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    let error = chain(&error);
                    tracing::error!(%error, "alarm states not saved");
                }
                Err(error) => tracing::error!(%error, "alarm state writer failed"),
            }
        }
        let changed = transitions.len();
        for transition in transitions {
            self.inner.notifier.notify(transition);
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalBackend;
    use outpost_sink_core::alarm::eval::AlarmState;
    use outpost_sink_core::ports::{MetricWrite, PointRow};
    use std::path::Path;

    /// The shared `cpu-high` fixture (maximum over 1 s, 2 of 2), and a fleet rule.
    fn rules_text() -> String {
        outpost_testkit::cpu_high_rule("max", "1s", 2, 2) + FLEET_RULE
    }

    const FLEET_RULE: &str = r#"
[[rule]]
name = "fleet-cpu"
metric = "cpu.utilization"
dimensions = { cpu = "total" }
statistic = "avg"
period = "1s"
comparison = ">"
threshold = 80.0
datapoints_to_alarm = 1
evaluation_periods = 1
scope = "fleet"
"#;

    async fn put(store: &LocalBackend, host: &str, seq: u64, ts_ms: i64, value: f64) {
        put_points(
            store,
            host,
            seq,
            ts_ms,
            &[("cpu.utilization", r#"{"cpu":"total"}"#, value)],
        )
        .await;
    }

    /// One batch of `(name, dimensions JSON, value)` points at `ts_ms`.
    async fn put_points(
        store: &LocalBackend,
        host: &str,
        seq: u64,
        ts_ms: i64,
        points: &[(&str, &str, f64)],
    ) {
        store
            .put_metrics(MetricWrite {
                host: host.into(),
                agent_id: "a".into(),
                agent_version: "0".into(),
                seq,
                received_ms: ts_ms,
                points: points
                    .iter()
                    .map(|&(name, dimensions, value)| PointRow {
                        name: name.into(),
                        dimensions: dimensions.into(),
                        ts_ms,
                        value: Some(value),
                        unit: if name == "cpu.utilization" {
                            "Percent"
                        } else {
                            "Count"
                        },
                    })
                    .collect(),
            })
            .await
            .unwrap();
    }

    fn states(alarms: &Alarms) -> Vec<(String, Option<String>, AlarmState)> {
        alarms
            .records()
            .into_iter()
            .map(|r| (r.alarm, r.host, r.state))
            .collect()
    }

    #[tokio::test]
    async fn per_host_and_fleet_alarms_follow_the_store_and_survive_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalBackend::open(tmp.path()).unwrap();
        let rules =
            outpost_sink_core::alarm::rules::parse(&rules_text(), Path::new("r.toml")).unwrap();
        let alarms = Alarms::start(rules.clone(), tmp.path());
        put(&store, "web-1", 1, 10_100, 95.0).await;
        put(&store, "web-1", 2, 11_100, 90.0).await;
        put(&store, "web-2", 1, 11_200, 10.0).await;
        // At 12.0 s the window is [10 s, 12 s).
        assert_eq!(alarms.evaluate(&store, 12_000).await.unwrap(), 3);
        use AlarmState::*;
        let s = |a: &str, h: Option<&str>, st| (a.to_owned(), h.map(str::to_owned), st);
        assert_eq!(
            states(&alarms),
            [
                s("cpu-high", Some("web-1"), Alarm),
                s("cpu-high", Some("web-2"), Ok),
                // avg(90, 10) in [11 s, 12 s)
                s("fleet-cpu", None, Ok),
            ]
        );
        // Nothing changed: nothing to notify.
        assert_eq!(alarms.evaluate(&store, 12_500).await.unwrap(), 0);
        // A restart keeps the states: the first evaluation changes nothing.
        let again = Alarms::start(rules, tmp.path());
        assert_eq!(states(&again), states(&alarms));
        assert_eq!(again.evaluate(&store, 12_000).await.unwrap(), 0);
        // A late batch for a period still in the window counts at the next evaluation.
        put(&store, "web-2", 2, 11_300, 250.0).await;
        assert_eq!(again.evaluate(&store, 12_000).await.unwrap(), 1);
        assert_eq!(again.records()[2].state, Alarm);
    }

    /// The shared error-rate fixture (1 s, 1 of 1) per host and for the fleet.
    fn rate_rules_text() -> String {
        outpost_testkit::error_rate_rule("error-rate", "1s", 1, 1)
            + &outpost_testkit::error_rate_rule("fleet-error-rate", "1s", 1, 1)
            + "scope = \"fleet\"
"
    }

    const APP: &str = r#"{"service":"app"}"#;

    /// The latest datapoint of every alarm, by rule then host.
    fn values(alarms: &Alarms) -> Vec<(String, Option<String>, Option<f64>)> {
        alarms
            .records()
            .into_iter()
            .map(|r| (r.alarm, r.host, r.datapoints.last().and_then(|d| d.value)))
            .collect()
    }

    #[tokio::test]
    async fn a_rule_with_a_denominator_divides_the_sums_of_each_host_or_of_the_fleet() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalBackend::open(tmp.path()).unwrap();
        let rules = outpost_sink_core::alarm::rules::parse(&rate_rules_text(), Path::new("r.toml"))
            .unwrap();
        let alarms = Alarms::start(rules, tmp.path());
        // web-1: 8 errors of 100 lines in two batches; web-2: 0 of 100, plus another service's
        // and a dimensionless series that must not count; web-3: no log counters at all.
        let web1 = [("log.lines", APP, 60.0), ("log.error_lines", APP, 3.0)];
        put_points(&store, "web-1", 1, 10_100, &web1).await;
        let web1 = [("log.lines", APP, 40.0), ("log.error_lines", APP, 5.0)];
        put_points(&store, "web-1", 2, 10_600, &web1).await;
        let web2 = [
            ("log.lines", APP, 100.0),
            ("log.error_lines", APP, 0.0),
            ("log.lines", r#"{"service":"db"}"#, 1.0),
            ("log.error_lines", r#"{"service":"db"}"#, 1.0),
            ("log.error_lines", "{}", 50.0),
        ];
        put_points(&store, "web-2", 1, 10_200, &web2).await;
        put(&store, "web-3", 1, 10_300, 1.0).await;
        // web-3's alarm stays in INSUFFICIENT_DATA, where it started: three changes.
        assert_eq!(alarms.evaluate(&store, 11_000).await.unwrap(), 3);
        let v = |a: &str, h: Option<&str>, x| (a.to_owned(), h.map(str::to_owned), x);
        assert_eq!(
            values(&alarms),
            [
                v("error-rate", Some("web-1"), Some(8.0)),
                v("error-rate", Some("web-2"), Some(0.0)),
                v("error-rate", Some("web-3"), None),
                // 8 of 200
                v("fleet-error-rate", None, Some(4.0)),
            ]
        );
        use AlarmState::*;
        let got: Vec<AlarmState> = alarms.records().iter().map(|r| r.state).collect();
        assert_eq!(got, [Alarm, Ok, InsufficientData, Ok]);
    }
}
