//! CloudWatch custom metrics: each batch's points aggregated per series and minute
//! ([`aggregate`]), then published as Embedded Metric Format lines ([`emf_lines`]) or through
//! `PutMetricData` ([`metric_data_calls`]) by [`CloudWatch::publish`]. The health check's
//! metrics go the same way ([`CloudWatch::publish_values`]).
//!
//! # The two scopes
//!
//! - **`per_host`** (the default): every metric carries a `Host` dimension (the batch's host)
//!   before the point's own dimensions. Per-host graphs and alarms; one billed metric per
//!   host × series.
//! - **`fleet`**: the `Host` dimension is dropped and the point's own dimensions kept, so the
//!   values of every host meet in one series per minute: CloudWatch's Maximum, Average or p95 of
//!   that minute are the fleet's (in EMF each line carries one batch's values, and CloudWatch
//!   merges the lines of all invocations; in `PutMetricData` it merges the statistic sets).
//!   The bill no longer grows with the number of hosts; per-host detail stays in DynamoDB.
//!
//! In both scopes the metrics of [`FLEET_TOTALS`] are also published as dimensionless totals
//! (`log.lines` and `log.error_lines` summed over services, `agent.heartbeat`), so the standard
//! alarms work whichever scope is chosen. A point may have at most [`MAX_POINT_DIMENSIONS`]
//! dimensions of its own in either scope (CloudWatch allows 30, `Host` included).
//!
//! # Which series
//!
//! Every series published is a billed custom metric. [`MetricSelection`]
//! (`OUTPOST_CLOUDWATCH_METRICS`, see [`select`]) names the series to publish by
//! metric name, or by name and the point's own dimensions; by default every series is. The
//! fleet totals and the health check's `pipeline.*` metrics are published whatever the
//! selection. Points of unselected series are counted ([`Skipped::not_selected`],
//! [`CloudWatch::unselected_points`]) and logged at `debug` only: leaving them out is the
//! configuration, not an error. DynamoDB keeps every point regardless.
//!
//! # The two modes
//!
//! - **`PutMetricData`** sends one statistic set (`SampleCount`, `Sum`, `Minimum`, `Maximum`) per
//!   series and minute, at most [`PUT_MAX_DATUMS`] datums and an estimated
//!   [`PUT_MAX_REQUEST_BYTES`] per call (see [`estimated_request_bytes`]).
//! - **EMF** (Embedded Metric Format) writes JSON lines on stdout, which CloudWatch Logs turns
//!   into metrics: no API calls, no throttling, the default inside Lambda. EMF cannot carry a
//!   statistic set: each metric's member is the array of its values in that minute, from which
//!   CloudWatch computes the same statistics (and percentiles, which a statistic set cannot
//!   give). A line holds one minute and one dimension set, at most [`EMF_MAX_METRICS`] metrics
//!   of at most [`EMF_MAX_VALUES`] values each, and about [`EMF_MAX_LINE_BYTES`]; more make
//!   more lines. In EMF, metric values and dimension values are members of the same JSON
//!   object, so a metric named like one of its dimensions (or `_aws`) cannot be written: such
//!   series are skipped and counted ([`emf_representable`]).
//!
//! # What is skipped
//!
//! One invalid datum makes CloudWatch refuse a whole `PutMetricData` call (up to 1000 series),
//! so points CloudWatch would refuse are dropped and counted ([`Skipped`]) before any call: not
//! finite values (JSON cannot carry them; they arrive as `None`), magnitudes above 2^359,
//! timestamps more than two weeks old or two hours ahead of the batch's arrival, too many
//! dimensions, and names or dimensions CloudWatch does not accept. Magnitudes below 2^-359,
//! which CloudWatch also refuses, are sent as 0. DynamoDB keeps every point regardless.

mod aggregate;
mod config;
mod emf;
mod names;
mod put;
pub mod select;

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use aws_sdk_cloudwatch::Client;
use tracing::{debug, error, warn};

use crate::backend::aws::{remote, service};
use outpost_sink_core::error::chain;
use outpost_sink_core::ports::MetricWrite;

pub use aggregate::{
    Aggregation, FLEET_TOTALS, MAX_ABS_VALUE, MAX_AGE_MS, MAX_AHEAD_MS, MIN_ABS_VALUE, Skipped,
    StatisticSet, aggregate,
};
pub use config::{CloudWatchMode, CloudWatchScope};
pub use emf::{
    EMF_MAX_LINE_BYTES, EMF_MAX_METRICS, EMF_MAX_VALUES, EMF_METADATA_KEY, emf_lines,
    emf_representable,
};
pub use names::{
    MAX_DIMENSION_NAME_LEN, MAX_DIMENSION_VALUE_LEN, MAX_METRIC_NAME_LEN, dimension_name_valid,
    dimension_value_accepted,
};
pub use put::{
    PUT_MAX_DATUMS, PUT_MAX_REQUEST_BYTES, PUT_REQUEST_BASE_BYTES, estimated_request_bytes,
    metric_data_calls,
};
pub use select::{ALL_SERIES, MetricSelection, SelectorError};

/// Name of the dimension that carries the batch's host (in the per-host scope).
pub const HOST_DIMENSION: &str = "Host";
/// Dimensions a point may have besides [`HOST_DIMENSION`] (CloudWatch allows 30 a metric); the
/// same in the fleet scope, so that a point publishes alike in both.
pub const MAX_POINT_DIMENSIONS: usize = 29;
/// Length of the aggregation period, milliseconds.
pub const MINUTE_MS: i64 = 60_000;

/// Publishes each batch's metrics to CloudWatch in the configured [`CloudWatchMode`] and
/// [`CloudWatchScope`].
///
/// Publishing never fails the batch: DynamoDB holds the record of every point, and CloudWatch
/// metrics are derived from it for alarms. Failing the batch would make the client (or the
/// Kinesis trigger) send it again, and `PutMetricData` is not idempotent: the minutes already
/// published would be counted twice. So a failed call or EMF write is logged at `error` with
/// its error chain and counted ([`CloudWatch::failures`]); its metrics are lost to CloudWatch.
pub struct CloudWatch {
    mode: CloudWatchMode,
    scope: CloudWatchScope,
    selection: MetricSelection,
    namespace: String,
    client: Option<Client>,
    emf: Mutex<Box<dyn Write + Send>>,
    failures: AtomicU64,
    skipped: AtomicU64,
    unselected: AtomicU64,
}

impl fmt::Debug for CloudWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudWatch")
            .field("mode", &self.mode)
            .field("scope", &self.scope)
            .field("selection", &self.selection)
            .field("namespace", &self.namespace)
            .field("client", &self.client.is_some())
            .field("failures", &self.failures)
            .field("skipped", &self.skipped)
            .field("unselected", &self.unselected)
            .finish_non_exhaustive()
    }
}

impl CloudWatch {
    /// A publisher to `namespace`. `client` is used in [`CloudWatchMode::PutMetricData`] only;
    /// that mode without a client is logged once here, and then publishes nothing (each
    /// batch with metrics counts as a failure). EMF goes to stdout. The scope is
    /// [`CloudWatchScope::PerHost`] unless [`CloudWatch::with_scope`] says otherwise, and every
    /// series is published unless [`CloudWatch::with_selection`] says otherwise.
    pub fn new(mode: CloudWatchMode, namespace: String, client: Option<Client>) -> Self {
        if mode == CloudWatchMode::PutMetricData && client.is_none() {
            error!(
                namespace,
                "CloudWatch mode put_metric_data without a client: no metrics will be published"
            );
        }
        Self {
            mode,
            scope: CloudWatchScope::default(),
            selection: MetricSelection::all(),
            namespace,
            client,
            emf: Mutex::new(Box::new(std::io::stdout())),
            failures: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            unselected: AtomicU64::new(0),
        }
    }

    /// Publish in `scope`.
    pub fn with_scope(mut self, scope: CloudWatchScope) -> Self {
        self.scope = scope;
        self
    }

    /// Publish only the series `selection` selects (besides the totals and the health check's
    /// metrics, which are always published).
    pub fn with_selection(mut self, selection: MetricSelection) -> Self {
        self.selection = selection;
        self
    }

    /// Write EMF lines to `writer` instead of stdout (for tests).
    pub fn with_emf_writer(mut self, writer: Box<dyn Write + Send>) -> Self {
        self.emf = Mutex::new(writer);
        self
    }

    /// The mode.
    pub fn mode(&self) -> CloudWatchMode {
        self.mode
    }

    /// The scope.
    pub fn scope(&self) -> CloudWatchScope {
        self.scope
    }

    /// The selection of series.
    pub fn selection(&self) -> &MetricSelection {
        &self.selection
    }

    /// `PutMetricData` calls and EMF writes that failed (and batches that found no client).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Points left out of CloudWatch: see [`Skipped`] (but not the points of unselected series,
    /// see [`CloudWatch::unselected_points`]), plus in EMF mode the points of series that are
    /// not [`emf_representable`].
    pub fn skipped_points(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Points left out because their series is not selected ([`Skipped::not_selected`]).
    pub fn unselected_points(&self) -> u64 {
        self.unselected.load(Ordering::Relaxed)
    }

    /// Publish `write`'s points, aggregated per series and minute. Never fails: see the type's
    /// documentation.
    pub async fn publish(&self, write: &MetricWrite) {
        if self.mode == CloudWatchMode::Off {
            return;
        }
        let Aggregation { sets, skipped } = aggregate(write, self.scope, &self.selection);
        self.note_skipped(&write.host, &skipped);
        self.publish_sets(&write.host, &sets).await;
    }

    /// Publish dimensionless values (name, value; unit `Count`) at `now_ms`'s minute, whatever
    /// the scope: the health check's metrics. Never fails, like [`CloudWatch::publish`]; its
    /// log lines name the host `(health check)`.
    pub async fn publish_values(&self, values: &[(&str, f64)], now_ms: i64) {
        if self.mode == CloudWatchMode::Off {
            return;
        }
        let minute_ms = now_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
        let sets: Vec<StatisticSet> = values
            .iter()
            .map(|(name, value)| aggregate::single(name, Vec::new(), minute_ms, "Count", *value))
            .collect();
        self.publish_sets("(health check)", &sets).await;
    }

    async fn publish_sets(&self, host: &str, sets: &[StatisticSet]) {
        if sets.is_empty() {
            return;
        }
        match self.mode {
            CloudWatchMode::Emf => self.write_emf(host, sets),
            CloudWatchMode::PutMetricData => self.put_metric_data(host, sets).await,
            CloudWatchMode::Off => {}
        }
    }

    fn note_skipped(&self, host: &str, skipped: &Skipped) {
        if skipped.total() == 0 {
            return;
        }
        self.skipped
            .fetch_add(skipped.total() - skipped.not_selected, Ordering::Relaxed);
        self.unselected
            .fetch_add(skipped.not_selected, Ordering::Relaxed);
        if skipped.refused() == 0 {
            // Values that are not finite and series left out by the selection are expected.
            debug!(
                host,
                not_finite = skipped.not_finite,
                not_selected = skipped.not_selected,
                "points without a finite value or of unselected series left out of CloudWatch"
            );
        } else {
            warn!(
                host,
                not_finite = skipped.not_finite,
                too_many_dimensions = skipped.too_many_dimensions,
                not_accepted = skipped.not_accepted,
                value_out_of_range = skipped.value_out_of_range,
                time_out_of_range = skipped.time_out_of_range,
                not_selected = skipped.not_selected,
                "points CloudWatch would refuse left out of CloudWatch (DynamoDB has them)"
            );
        }
    }

    fn write_emf(&self, host: &str, sets: &[StatisticSet]) {
        let unrepresentable: u64 = sets
            .iter()
            .filter(|s| !emf_representable(s))
            .map(|s| s.sample_count)
            .sum();
        if unrepresentable > 0 {
            self.skipped.fetch_add(unrepresentable, Ordering::Relaxed);
            warn!(
                host,
                points = unrepresentable,
                "metrics named like one of their dimensions (or `_aws`) cannot be written as EMF; left out"
            );
        }
        let mut text = String::new();
        for line in emf_lines(&self.namespace, sets) {
            text.push_str(&line);
            text.push('\n');
        }
        if text.is_empty() {
            return;
        }
        // One write per batch under the lock: lines of concurrent batches never interleave.
        let mut out = self.emf.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            self.failures.fetch_add(1, Ordering::Relaxed);
            error!(%error, host, "writing CloudWatch EMF lines failed; these metrics are lost");
        }
    }

    async fn put_metric_data(&self, host: &str, sets: &[StatisticSet]) {
        let Some(client) = &self.client else {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return;
        };
        for call in metric_data_calls(sets) {
            let datums = call.len();
            let result = client
                .put_metric_data()
                .namespace(&self.namespace)
                .set_metric_data(Some(call))
                .send()
                .await;
            if let Err(e) = result {
                let error = remote(
                    service::CLOUDWATCH,
                    format!("PutMetricData to {} ({datums} metrics)", self.namespace),
                    e,
                );
                self.failures.fetch_add(1, Ordering::Relaxed);
                error!(
                    error = %chain(&error),
                    host,
                    "CloudWatch metrics lost (DynamoDB has the points; the batch is not retried, \
                     which would count them twice)"
                );
            }
        }
    }
}

/// Builders shared by the unit tests of the module's parts.
#[cfg(test)]
mod test_support {
    use serde_json::Value;

    use super::CloudWatchScope;
    use super::{Aggregation, MINUTE_MS, MetricSelection, StatisticSet, aggregate};
    use outpost_sink_core::ports::{MetricWrite, PointRow};

    pub(super) const T0: i64 = 1_700_000_040_000; // a minute boundary

    pub(super) fn point(name: &str, dims: &str, ts_ms: i64, value: Option<f64>) -> PointRow {
        PointRow {
            name: name.into(),
            dimensions: dims.into(),
            ts_ms,
            value,
            unit: "Percent",
        }
    }

    pub(super) fn write(points: Vec<PointRow>) -> MetricWrite {
        MetricWrite {
            host: "web-1".into(),
            agent_id: "a1".into(),
            agent_version: "0.1.0".into(),
            seq: 7,
            received_ms: T0 + 5 * MINUTE_MS,
            points,
        }
    }

    pub(super) fn per_host(write: &MetricWrite) -> Aggregation {
        aggregate(write, CloudWatchScope::PerHost, &MetricSelection::all())
    }

    pub(super) fn set(
        name: &str,
        dims: &[(&str, &str)],
        minute_ms: i64,
        values: Vec<f64>,
    ) -> StatisticSet {
        StatisticSet {
            name: name.into(),
            dimensions: dims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            minute_ms,
            unit: "Count",
            sample_count: values.len() as u64,
            sum: values.iter().sum(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            values,
        }
    }

    pub(super) fn parse(line: &str) -> Value {
        serde_json::from_str(line).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{T0, parse, point, write};
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    /// A writer whose bytes a test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("pipe closed"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn publishes_emf_lines() {
        let out = Shared::default();
        let cw = CloudWatch::new(CloudWatchMode::Emf, "Outpost".into(), None)
            .with_emf_writer(Box::new(out.clone()));
        cw.publish(&write(vec![
            point("disk.used", r#"{"mount":"/"}"#, T0, Some(1.0)),
            point("mount", r#"{"mount":"/"}"#, T0, Some(1.0)),
            point("disk.used", r#"{"mount":"/"}"#, T0, None),
        ]))
        .await;
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 1);
        assert!(text.ends_with('\n'));
        assert_eq!(parse(lines[0])["disk.used"], json!([1.0]));
        assert_eq!(cw.skipped_points(), 2);
        assert_eq!(cw.failures(), 0);
        assert!(format!("{cw:?}").contains("Emf"));
    }

    #[tokio::test]
    async fn emf_write_failures_are_counted() {
        let cw = CloudWatch::new(CloudWatchMode::Emf, "Outpost".into(), None)
            .with_emf_writer(Box::new(Broken));
        cw.publish(&write(vec![point("m", "{}", T0, Some(1.0))]))
            .await;
        assert_eq!(cw.failures(), 1);
    }

    #[tokio::test]
    async fn off_and_clientless_publish_nothing() {
        let out = Shared::default();
        let off = CloudWatch::new(CloudWatchMode::Off, "Outpost".into(), None)
            .with_emf_writer(Box::new(out.clone()));
        off.publish(&write(vec![point("m", "{}", T0, None)])).await;
        assert_eq!((off.failures(), off.skipped_points()), (0, 0));
        let clientless = CloudWatch::new(CloudWatchMode::PutMetricData, "Outpost".into(), None)
            .with_emf_writer(Box::new(out.clone()));
        clientless
            .publish(&write(vec![point("m", "{}", T0, Some(1.0))]))
            .await;
        assert_eq!(clientless.failures(), 1);
        assert!(out.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn fleet_scope_and_health_values_publish_without_host() {
        let out = Shared::default();
        let cw = CloudWatch::new(CloudWatchMode::Emf, "Outpost".into(), None)
            .with_scope(CloudWatchScope::Fleet)
            .with_emf_writer(Box::new(out.clone()));
        assert_eq!(cw.scope(), CloudWatchScope::Fleet);
        cw.publish(&write(vec![
            point("agent.heartbeat", "{}", T0, Some(1.0)),
            point("disk.used", r#"{"mount":"/"}"#, T0, Some(3.0)),
        ]))
        .await;
        cw.publish_values(
            &[
                ("pipeline.silent_hosts", 2.0),
                ("pipeline.health_checks", 1.0),
            ],
            T0 + 59_999,
        )
        .await;
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<_> = text.lines().map(parse).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines.iter().all(|l| l.get(HOST_DIMENSION).is_none()),
            "{text}"
        );
        assert_eq!(lines[0]["agent.heartbeat"], json!([1.0]));
        assert_eq!(lines[1]["mount"], json!("/"));
        assert_eq!(
            lines[2]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
        assert_eq!(lines[2]["_aws"]["Timestamp"], json!(T0));
        assert_eq!(lines[2]["pipeline.silent_hosts"], json!([2.0]));
        assert_eq!(lines[2]["pipeline.health_checks"], json!([1.0]));
        assert_eq!(
            lines[2]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            json!("Count")
        );

        let off = CloudWatch::new(CloudWatchMode::Off, "Outpost".into(), None)
            .with_emf_writer(Box::new(out.clone()));
        off.publish_values(&[("pipeline.health_checks", 1.0)], T0)
            .await;
        assert_eq!(
            String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
            text
        );
    }

    #[tokio::test]
    async fn a_selection_publishes_its_series_and_the_totals_in_emf() {
        let out = Shared::default();
        let selection = MetricSelection::parse("cpu.utilization{cpu=total}").unwrap();
        let cw = CloudWatch::new(CloudWatchMode::Emf, "Outpost".into(), None)
            .with_selection(selection.clone())
            .with_emf_writer(Box::new(out.clone()));
        assert_eq!(cw.selection(), &selection);
        cw.publish(&write(vec![
            point("cpu.utilization", r#"{"cpu":"total"}"#, T0, Some(50.0)),
            point("cpu.utilization", r#"{"cpu":"0"}"#, T0, Some(60.0)),
            point("log.lines", r#"{"service":"api"}"#, T0, Some(3.0)),
            point("disk.used", r#"{"mount":"/"}"#, T0, None),
        ]))
        .await;
        cw.publish_values(&[("pipeline.health_checks", 1.0)], T0)
            .await;
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<_> = text.lines().map(parse).collect();
        assert_eq!(lines.len(), 3, "{text}");
        // The total first (no dimensions), then the host's selected series.
        assert_eq!(lines[0]["log.lines"], json!([3.0]));
        assert_eq!(
            lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
        assert_eq!(lines[1]["cpu.utilization"], json!([50.0]));
        assert_eq!(lines[1]["cpu"], json!("total"));
        assert_eq!(lines[2]["pipeline.health_checks"], json!([1.0]));
        assert!(
            !text.contains("disk.used") && !text.contains("60.0"),
            "{text}"
        );
        // Unselected points are counted apart from the ones CloudWatch would refuse.
        assert_eq!((cw.unselected_points(), cw.skipped_points()), (3, 0));
        assert_eq!(cw.failures(), 0);
    }

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn publisher_is_send_and_sync() {
        assert_send_sync::<CloudWatch>();
    }
}
