//! A [`Snapshot`] in the Prometheus text exposition format (0.0.4), as served on
//! `GET /metrics`. Totals as `_total` counters, per-service log counters with a `service` label.

use super::counters::Snapshot;
use std::fmt::Write;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Render `s`; `version` goes into `outpost_agent_build_info`.
pub fn render(s: &Snapshot, version: &str) -> String {
    let mut out = String::with_capacity(2048 + 160 * s.logs.len());
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "outpost_agent_lines_read_total",
        "counter",
        "Log records read.",
        s.lines_read as f64,
    );
    metric(
        "outpost_agent_bytes_read_total",
        "counter",
        "Log bytes read.",
        s.bytes_read as f64,
    );
    metric(
        "outpost_agent_batches_sent_total",
        "counter",
        "Frames the sink acknowledged.",
        s.batches_sent as f64,
    );
    metric(
        "outpost_agent_batches_failed_total",
        "counter",
        "Failed delivery attempts and frames the sink refused for good.",
        s.batches_failed as f64,
    );
    metric(
        "outpost_agent_records_dropped_total",
        "counter",
        "Host samples and custom-input runs dropped while blocked, and records of refused frames.",
        s.records_dropped as f64,
    );
    metric(
        "outpost_agent_custom_errors_total",
        "counter",
        "Problems of the textfile and exec inputs.",
        s.custom_errors as f64,
    );
    metric(
        "outpost_agent_spool_bytes",
        "gauge",
        "Bytes in the disk spool.",
        s.spool_bytes as f64,
    );
    metric(
        "outpost_agent_files_watched",
        "gauge",
        "Log files followed.",
        s.files_watched as f64,
    );
    metric(
        "outpost_agent_last_sent_timestamp_seconds",
        "gauge",
        "When the sink last acknowledged a frame (0: not since the start).",
        s.last_sent_ms as f64 / 1000.0,
    );
    let _ = writeln!(
        out,
        "# HELP outpost_agent_build_info The agent's version.\n# TYPE outpost_agent_build_info gauge\noutpost_agent_build_info{{version=\"{}\"}} 1",
        escape(version)
    );
    for (name, help, get) in [
        (
            "outpost_log_lines_total",
            "Log records read per service.",
            (|c: &super::LogCount| c.lines) as fn(&super::LogCount) -> u64,
        ),
        (
            "outpost_log_error_lines_total",
            "Error lines per service.",
            |c: &super::LogCount| c.errors,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (service, count) in &s.logs {
            let _ = writeln!(
                out,
                "{name}{{service=\"{}\"}} {}",
                escape(service),
                get(count)
            );
        }
    }
    out
}

/// A label value with `\`, `"` and line feeds escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::LogCount;
    use std::sync::Arc;

    #[test]
    fn renders_counters_gauges_and_escaped_service_labels() {
        let mut s = Snapshot {
            lines_read: 12,
            spool_bytes: 4096,
            ..Snapshot::default()
        };
        s.logs.insert(
            Arc::from("a\"b\\c"),
            LogCount {
                lines: 3,
                errors: 1,
            },
        );
        let text = render(&s, "0.1.0");
        assert!(text.contains(
            "\n# TYPE outpost_agent_lines_read_total counter\noutpost_agent_lines_read_total 12\n"
        ));
        assert!(text.contains("\noutpost_agent_spool_bytes 4096\n"));
        assert!(text.contains("outpost_log_lines_total{service=\"a\\\"b\\\\c\"} 3\n"));
        assert!(text.contains("outpost_log_error_lines_total{service=\"a\\\"b\\\\c\"} 1\n"));
        assert!(text.contains("outpost_agent_build_info{version=\"0.1.0\"} 1\n"));
        // Every sample line is `name[{labels}] value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
