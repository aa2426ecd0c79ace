//! A [`Snapshot`] as the metric points the agent ships: counters as the change since the
//! previous snapshot (so the sink's sums per period are rates), gauges as they are, and the
//! heartbeat. Pure: the caller keeps the previous snapshot and the clock.

use super::counters::Snapshot;
use outpost_proto::{Dimension, MetricPoint, Unit};

/// The heartbeat: 1 every interval, whatever else happens.
pub const HEARTBEAT: &str = "agent.heartbeat";
/// Log records read per service (dimension [`SERVICE_DIMENSION`]).
pub const LOG_LINES: &str = "log.lines";
/// Error lines per service (dimension [`SERVICE_DIMENSION`]).
pub const LOG_ERROR_LINES: &str = "log.error_lines";
/// The dimension naming a log input's service.
pub const SERVICE_DIMENSION: &str = "service";

/// The agent's own metrics, in the order they are shipped.
pub const AGENT_METRICS: [&str; 8] = [
    "agent.lines_read",
    "agent.bytes_read",
    "agent.batches_sent",
    "agent.batches_failed",
    "agent.records_dropped",
    "agent.custom_errors",
    "agent.spool_bytes",
    "agent.files_watched",
];

/// The points for `cur`, counters relative to `prev` (a counter that went down, as after a
/// restart of its source, counts from zero).
pub fn points(prev: &Snapshot, cur: &Snapshot, now_ms: i64) -> Vec<MetricPoint> {
    let delta = |p: u64, c: u64| if c >= p { c - p } else { c };
    let point = |name: &str, value: u64, unit: Unit, dimensions: Vec<Dimension>| MetricPoint {
        name: name.to_owned(),
        ts_ms: now_ms,
        value: value as f64,
        unit,
        dimensions,
    };
    let mut out = Vec::with_capacity(1 + AGENT_METRICS.len() + 2 * cur.logs.len());
    out.push(point(HEARTBEAT, 1, Unit::Count, Vec::new()));
    let values = [
        (delta(prev.lines_read, cur.lines_read), Unit::Count),
        (delta(prev.bytes_read, cur.bytes_read), Unit::Bytes),
        (delta(prev.batches_sent, cur.batches_sent), Unit::Count),
        (delta(prev.batches_failed, cur.batches_failed), Unit::Count),
        (
            delta(prev.records_dropped, cur.records_dropped),
            Unit::Count,
        ),
        (delta(prev.custom_errors, cur.custom_errors), Unit::Count),
        (cur.spool_bytes, Unit::Bytes),
        (cur.files_watched, Unit::Count),
    ];
    for (name, (value, unit)) in AGENT_METRICS.iter().zip(values) {
        out.push(point(name, value, unit, Vec::new()));
    }
    for (service, count) in &cur.logs {
        let before = prev.logs.get(service).copied().unwrap_or_default();
        let dims = || {
            vec![Dimension {
                key: SERVICE_DIMENSION.to_owned(),
                value: service.to_string(),
            }]
        };
        out.push(point(
            LOG_LINES,
            delta(before.lines, count.lines),
            Unit::Count,
            dims(),
        ));
        out.push(point(
            LOG_ERROR_LINES,
            delta(before.errors, count.errors),
            Unit::Count,
            dims(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::LogCount;
    use std::sync::Arc;

    fn value(points: &[MetricPoint], name: &str, service: Option<&str>) -> f64 {
        points
            .iter()
            .find(|p| p.name == name && p.dimensions.first().map(|d| d.value.as_str()) == service)
            .map(|p| p.value)
            .unwrap_or_else(|| panic!("no {name} {service:?}"))
    }

    #[test]
    fn counters_ship_as_deltas_gauges_as_is_and_a_heartbeat_always() {
        let mut prev = Snapshot {
            lines_read: 100,
            batches_sent: 5,
            ..Snapshot::default()
        };
        prev.logs.insert(
            Arc::from("api"),
            LogCount {
                lines: 90,
                errors: 9,
            },
        );
        let mut cur = prev.clone();
        cur.lines_read = 130;
        cur.batches_sent = 2; // went down: counted from zero
        cur.spool_bytes = 4096;
        cur.files_watched = 3;
        cur.logs.insert(
            Arc::from("api"),
            LogCount {
                lines: 120,
                errors: 12,
            },
        );
        cur.logs.insert(
            Arc::from("web"),
            LogCount {
                lines: 7,
                errors: 0,
            },
        );
        let p = points(&prev, &cur, 42);
        assert!(p.iter().all(|p| p.ts_ms == 42));
        assert_eq!(value(&p, HEARTBEAT, None), 1.0);
        assert_eq!(value(&p, "agent.lines_read", None), 30.0);
        assert_eq!(value(&p, "agent.batches_sent", None), 2.0);
        assert_eq!(value(&p, "agent.spool_bytes", None), 4096.0);
        assert_eq!(value(&p, "agent.files_watched", None), 3.0);
        assert_eq!(value(&p, LOG_LINES, Some("api")), 30.0);
        assert_eq!(value(&p, LOG_ERROR_LINES, Some("api")), 3.0);
        assert_eq!(value(&p, LOG_LINES, Some("web")), 7.0);
        assert_eq!(value(&p, LOG_ERROR_LINES, Some("web")), 0.0);
        assert_eq!(p.len(), 1 + AGENT_METRICS.len() + 4);
    }
}
