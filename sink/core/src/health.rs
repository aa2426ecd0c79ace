//! The scheduled health check's pure part: from the host summaries, the time and the thresholds to a
//! [`HealthReport`] (who reports, who is silent, who runs hot) and its metrics.

use serde::Serialize;

use crate::ports::{HostSummary, LatestValue};

/// `pipeline.hosts_reporting`: hosts whose last batch is within the silent window.
pub const METRIC_HOSTS_REPORTING: &str = "pipeline.hosts_reporting";
/// `pipeline.silent_hosts`: hosts whose last batch is older than the silent window.
pub const METRIC_SILENT_HOSTS: &str = "pipeline.silent_hosts";
/// `pipeline.hosts_over_cpu`: reporting hosts whose fresh `cpu.utilization{cpu=total}` is
/// above the CPU threshold.
pub const METRIC_HOSTS_OVER_CPU: &str = "pipeline.hosts_over_cpu";
/// `pipeline.hosts_over_memory`: reporting hosts whose fresh `memory.utilization` is above the
/// memory threshold.
pub const METRIC_HOSTS_OVER_MEMORY: &str = "pipeline.hosts_over_memory";
/// `pipeline.health_checks`: 1 per run (an alarm on its absence tells that the check stopped).
pub const METRIC_HEALTH_CHECKS: &str = "pipeline.health_checks";

/// The CPU metric the check reads: `cpu.utilization` with the dimension `cpu=total`.
pub const CPU_METRIC: &str = "cpu.utilization";
/// The memory metric the check reads: `memory.utilization` without dimensions.
pub const MEMORY_METRIC: &str = "memory.utilization";

/// Default of [`Thresholds::silent_after_minutes`].
pub const DEFAULT_SILENT_AFTER_MINUTES: u32 = 5;
/// Default of [`Thresholds::cpu_percent`].
pub const DEFAULT_CPU_PERCENT: f64 = 80.0;
/// Default of [`Thresholds::memory_percent`].
pub const DEFAULT_MEMORY_PERCENT: f64 = 85.0;

/// What the health check compares against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// A host whose last batch arrived more than this many minutes ago is silent.
    pub silent_after_minutes: u32,
    /// A host whose latest CPU utilization is above this (percent) is over CPU.
    pub cpu_percent: f64,
    /// A host whose latest memory utilization is above this (percent) is over memory.
    pub memory_percent: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            silent_after_minutes: DEFAULT_SILENT_AFTER_MINUTES,
            cpu_percent: DEFAULT_CPU_PERCENT,
            memory_percent: DEFAULT_MEMORY_PERCENT,
        }
    }
}

impl Thresholds {
    /// The silent window, milliseconds.
    pub fn silent_after_ms(&self) -> i64 {
        i64::from(self.silent_after_minutes) * 60_000
    }
}

/// A host that sent nothing within the silent window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SilentHost {
    /// Host name.
    pub host: String,
    /// Time since its last batch arrived, milliseconds.
    pub age_ms: i64,
}

/// A host above a threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HotHost {
    /// Host name.
    pub host: String,
    /// Its latest value (percent).
    pub value: f64,
}

/// What one run of the health check found. Host lists are ordered by host name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// Hosts known (every host that ever sent a batch and is still in the table).
    pub hosts: usize,
    /// Hosts whose last batch is within the silent window.
    pub hosts_reporting: usize,
    /// Hosts whose last batch is older than the silent window.
    pub silent_hosts: Vec<SilentHost>,
    /// Reporting hosts over the CPU threshold.
    pub hosts_over_cpu: Vec<HotHost>,
    /// Reporting hosts over the memory threshold.
    pub hosts_over_memory: Vec<HotHost>,
}

impl HealthReport {
    /// The metrics to publish (all dimensionless counts), in a fixed order.
    pub fn metrics(&self) -> [(&'static str, f64); 5] {
        [
            (METRIC_HOSTS_REPORTING, self.hosts_reporting as f64),
            (METRIC_SILENT_HOSTS, self.silent_hosts.len() as f64),
            (METRIC_HOSTS_OVER_CPU, self.hosts_over_cpu.len() as f64),
            (
                METRIC_HOSTS_OVER_MEMORY,
                self.hosts_over_memory.len() as f64,
            ),
            (METRIC_HEALTH_CHECKS, 1.0),
        ]
    }
}

/// The latest value of `name` with exactly the dimensions `dims`, if it is fresh (its time
/// not older than `window_ms` before `now_ms`) and finite.
fn fresh_value(
    latest: &[LatestValue],
    name: &str,
    dims: &[(&str, &str)],
    now_ms: i64,
    window_ms: i64,
) -> Option<f64> {
    let point = latest.iter().find(|l| {
        l.name == name
            && l.dimensions.len() == dims.len()
            && dims
                .iter()
                .all(|(k, v)| l.dimensions.get(*k).is_some_and(|x| x == v))
    })?;
    if now_ms.saturating_sub(point.ts_ms) > window_ms {
        return None;
    }
    point.value
}

/// Evaluate the fleet at `now_ms` (unix ms). Pure.
///
/// - A host is **silent** when its last batch arrived more than
///   [`Thresholds::silent_after_minutes`] before `now_ms` (exactly at the limit it still
///   reports); otherwise it is **reporting**.
/// - A reporting host is **over CPU** when its latest `cpu.utilization{cpu=total}` is above
///   [`Thresholds::cpu_percent`], and **over memory** when its latest `memory.utilization` is
///   above [`Thresholds::memory_percent`]. A value counts only when its own time is within the
///   silent window too (an agent that stopped sending host metrics is not hot for ever) and it
///   is finite (NaN is stored as `None`). A missing metric counts as not over.
pub fn evaluate(hosts: &[HostSummary], now_ms: i64, thresholds: &Thresholds) -> HealthReport {
    let window = thresholds.silent_after_ms();
    let mut sorted: Vec<&HostSummary> = hosts.iter().collect();
    sorted.sort_by(|a, b| a.host.cmp(&b.host));
    let mut report = HealthReport {
        hosts: hosts.len(),
        hosts_reporting: 0,
        silent_hosts: Vec::new(),
        hosts_over_cpu: Vec::new(),
        hosts_over_memory: Vec::new(),
    };
    for host in sorted {
        let age_ms = now_ms.saturating_sub(host.last_seen_ms);
        if age_ms > window {
            report.silent_hosts.push(SilentHost {
                host: host.host.clone(),
                age_ms,
            });
            continue;
        }
        report.hosts_reporting += 1;
        let cpu = fresh_value(
            &host.latest,
            CPU_METRIC,
            &[("cpu", "total")],
            now_ms,
            window,
        );
        if let Some(value) = cpu.filter(|v| *v > thresholds.cpu_percent) {
            report.hosts_over_cpu.push(HotHost {
                host: host.host.clone(),
                value,
            });
        }
        let memory = fresh_value(&host.latest, MEMORY_METRIC, &[], now_ms, window);
        if let Some(value) = memory.filter(|v| *v > thresholds.memory_percent) {
            report.hosts_over_memory.push(HotHost {
                host: host.host.clone(),
                value,
            });
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const NOW: i64 = 1_795_510_800_000;
    const MIN: i64 = 60_000;

    fn latest(name: &str, dims: &[(&str, &str)], ts_ms: i64, value: Option<f64>) -> LatestValue {
        LatestValue {
            name: name.into(),
            dimensions: dims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            ts_ms,
            value,
            unit: "Percent".into(),
        }
    }

    fn host(name: &str, last_seen_ms: i64, latest: Vec<LatestValue>) -> HostSummary {
        HostSummary {
            host: name.into(),
            agent_id: format!("agent-{name}"),
            agent_version: "0.1.0".into(),
            last_seen_ms,
            last_seq: 1,
            latest,
        }
    }

    fn cpu(ts_ms: i64, value: Option<f64>) -> LatestValue {
        latest(CPU_METRIC, &[("cpu", "total")], ts_ms, value)
    }

    fn memory(ts_ms: i64, value: Option<f64>) -> LatestValue {
        latest(MEMORY_METRIC, &[], ts_ms, value)
    }

    fn names(hot: &[HotHost]) -> Vec<&str> {
        hot.iter().map(|h| h.host.as_str()).collect()
    }

    #[test]
    fn silent_exactly_after_the_window() {
        let t = Thresholds::default();
        let hosts = [
            host("at-limit", NOW - 5 * MIN, vec![]),
            host("just-over", NOW - 5 * MIN - 1, vec![]),
            host("fresh", NOW, vec![]),
            host("ahead", NOW + MIN, vec![]),
        ];
        let report = evaluate(&hosts, NOW, &t);
        assert_eq!(report.hosts, 4);
        assert_eq!(report.hosts_reporting, 3);
        assert_eq!(
            report.silent_hosts,
            [SilentHost {
                host: "just-over".into(),
                age_ms: 5 * MIN + 1
            }]
        );
        let one_minute = Thresholds {
            silent_after_minutes: 1,
            ..t
        };
        let report = evaluate(&hosts, NOW, &one_minute);
        let silent: Vec<_> = report
            .silent_hosts
            .iter()
            .map(|s| s.host.as_str())
            .collect();
        assert_eq!(silent, ["at-limit", "just-over"]);
        assert_eq!(report.hosts_reporting, 2);
    }

    #[test]
    fn hot_hosts_are_named_with_their_value() {
        let t = Thresholds::default();
        let hosts = [
            host(
                "web-2",
                NOW,
                vec![cpu(NOW - 1000, Some(95.5)), memory(NOW, Some(90.0))],
            ),
            host(
                "web-1",
                NOW,
                vec![cpu(NOW, Some(80.0)), memory(NOW, Some(85.0))],
            ),
            host(
                "db-1",
                NOW - MIN,
                vec![cpu(NOW - MIN, Some(80.5)), memory(NOW, Some(10.0))],
            ),
        ];
        let report = evaluate(&hosts, NOW, &t);
        assert_eq!(report.hosts_reporting, 3);
        assert!(report.silent_hosts.is_empty());
        assert_eq!(
            report.hosts_over_cpu,
            [
                HotHost {
                    host: "db-1".into(),
                    value: 80.5
                },
                HotHost {
                    host: "web-2".into(),
                    value: 95.5
                },
            ],
            "sorted by host; exactly at the threshold is not over"
        );
        assert_eq!(names(&report.hosts_over_memory), ["web-2"]);
        assert_eq!(report.hosts_over_memory[0].value, 90.0);
        assert_eq!(
            report.metrics(),
            [
                (METRIC_HOSTS_REPORTING, 3.0),
                (METRIC_SILENT_HOSTS, 0.0),
                (METRIC_HOSTS_OVER_CPU, 2.0),
                (METRIC_HOSTS_OVER_MEMORY, 1.0),
                (METRIC_HEALTH_CHECKS, 1.0),
            ]
        );
    }

    #[test]
    fn missing_not_finite_and_other_series_are_not_hot() {
        let t = Thresholds::default();
        let hosts = [
            host("none", NOW, vec![]),
            host("nan", NOW, vec![cpu(NOW, None), memory(NOW, None)]),
            host(
                "per-core",
                NOW,
                vec![
                    latest(CPU_METRIC, &[("cpu", "0")], NOW, Some(100.0)),
                    latest(CPU_METRIC, &[], NOW, Some(100.0)),
                    latest(MEMORY_METRIC, &[("kind", "x")], NOW, Some(100.0)),
                    latest("swap.utilization", &[], NOW, Some(100.0)),
                    latest(CPU_METRIC, &[("cpu", "total"), ("x", "y")], NOW, Some(99.0)),
                ],
            ),
        ];
        let report = evaluate(&hosts, NOW, &t);
        assert_eq!(report.hosts_reporting, 3);
        assert!(report.hosts_over_cpu.is_empty(), "{report:?}");
        assert!(report.hosts_over_memory.is_empty(), "{report:?}");
        assert_eq!(
            evaluate(&[], NOW, &t).metrics()[4],
            (METRIC_HEALTH_CHECKS, 1.0)
        );
    }

    #[test]
    fn stale_values_and_silent_hosts_are_not_hot() {
        let t = Thresholds::default();
        let hosts = [
            // Silent: its (old) hot CPU does not count.
            host(
                "silent",
                NOW - 6 * MIN,
                vec![
                    cpu(NOW - 6 * MIN, Some(99.0)),
                    memory(NOW - 6 * MIN, Some(99.0)),
                ],
            ),
            // Reporting, but its CPU point is older than the window (no more host metrics).
            host(
                "stale",
                NOW,
                vec![
                    cpu(NOW - 5 * MIN - 1, Some(99.0)),
                    memory(NOW - 5 * MIN, Some(99.0)),
                ],
            ),
        ];
        let report = evaluate(&hosts, NOW, &t);
        assert_eq!(report.hosts_reporting, 1);
        assert_eq!(report.silent_hosts.len(), 1);
        assert!(report.hosts_over_cpu.is_empty());
        assert_eq!(
            names(&report.hosts_over_memory),
            ["stale"],
            "exactly at the window is fresh"
        );
    }

    #[test]
    fn report_serializes_for_the_lambda_response() {
        let report = evaluate(
            &[host("a", NOW - 10 * MIN, vec![])],
            NOW,
            &Thresholds::default(),
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "hosts": 1,
                "hosts_reporting": 0,
                "silent_hosts": [{"host": "a", "age_ms": 600_000}],
                "hosts_over_cpu": [],
                "hosts_over_memory": [],
            })
        );
    }
}
