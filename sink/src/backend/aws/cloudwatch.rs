//! CloudWatch custom metrics: each batch's points aggregated per host, series and minute
//! ([`aggregate`]), then published as Embedded Metric Format lines ([`emf_lines`]) or through
//! `PutMetricData` ([`metric_data_calls`]) by [`CloudWatch::publish`].
//!
//! Every metric carries a `Host` dimension (the batch's host) before the point's own dimensions,
//! so a point may have at most [`MAX_POINT_DIMENSIONS`] of its own (CloudWatch allows 30).
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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    Dimension, MetricDatum, StandardUnit, StatisticSet as SdkStatisticSet,
};
use serde_json::{Map, Value, json};
use tracing::{debug, error, warn};

use crate::backend::MetricWrite;
use crate::backend::aws::settings::CloudWatchMode;
use crate::backend::aws::{remote, service};
use crate::error::chain;

/// Name of the dimension that carries the batch's host.
pub const HOST_DIMENSION: &str = "Host";
/// Dimensions a point may have besides [`HOST_DIMENSION`] (CloudWatch allows 30 a metric).
pub const MAX_POINT_DIMENSIONS: usize = 29;
/// Longest metric name CloudWatch accepts, characters.
pub const MAX_METRIC_NAME_LEN: usize = 255;
/// Longest dimension name CloudWatch accepts, characters.
pub const MAX_DIMENSION_NAME_LEN: usize = 255;
/// Longest dimension value CloudWatch accepts, characters.
pub const MAX_DIMENSION_VALUE_LEN: usize = 1024;
/// Largest magnitude of a value CloudWatch accepts: 2^359 (about 1.17e108).
pub const MAX_ABS_VALUE: f64 = f64::from_bits((1023 + 359) << 52);
/// Smallest non-zero magnitude CloudWatch accepts: 2^-359 (about 8.5e-109); smaller values are
/// sent as 0.
pub const MIN_ABS_VALUE: f64 = f64::from_bits((1023 - 359) << 52);
/// Oldest point accepted, relative to the batch's arrival: CloudWatch refuses data older than
/// two weeks; five minutes are kept for the time between arrival and the call.
pub const MAX_AGE_MS: i64 = 14 * 24 * 3_600_000 - 5 * 60_000;
/// Newest point accepted, relative to the batch's arrival: CloudWatch refuses data more than
/// two hours ahead; five minutes are kept for clock differences.
pub const MAX_AHEAD_MS: i64 = 2 * 3_600_000 - 5 * 60_000;
/// Length of the aggregation period, milliseconds.
pub const MINUTE_MS: i64 = 60_000;

/// Metrics in one EMF directive (the format's limit).
pub const EMF_MAX_METRICS: usize = 100;
/// Values in one EMF metric member (the format's limit).
pub const EMF_MAX_VALUES: usize = 100;
/// Estimated size an EMF line may grow to before its metrics continue on another line; well
/// below the 256 KiB of a CloudWatch Logs event. A line with a single metric may exceed it
/// only through 30 very long dimensions.
pub const EMF_MAX_LINE_BYTES: usize = 200_000;
/// The member of an EMF line that holds its metadata.
pub const EMF_METADATA_KEY: &str = "_aws";

/// Datums in one `PutMetricData` call (the API's limit).
pub const PUT_MAX_DATUMS: usize = 1000;
/// Size of one `PutMetricData` request (the API's limit is 1 MB; read as 10^6 bytes).
pub const PUT_MAX_REQUEST_BYTES: usize = 1_000_000;
/// Reserved in each request for `Action`, `Version` and the namespace (255 characters, each
/// percent-encoded to at most 3 bytes).
pub const PUT_REQUEST_BASE_BYTES: usize = 1024;

/// Bytes allowed for one query-protocol key such as `&MetricData.member.1000.Dimensions.member.30.Value=`
/// (51 bytes; the longest, `...StatisticValues.SampleCount=`, is 52).
const QUERY_KEY_BYTES: usize = 64;
/// Bytes allowed for one number (the shortest round-trip form of an `f64` has at most 24).
const QUERY_NUMBER_BYTES: usize = 32;
/// Bytes allowed for the percent-encoded timestamp (`2025-01-01T00%3A00%3A00Z` is 24).
const QUERY_TIMESTAMP_BYTES: usize = 64;
/// Fields of a datum besides its dimensions: name, timestamp, unit and four statistics.
const QUERY_FIXED_FIELDS: usize = 7;

/// The statistics of one series (host, metric name, dimensions) in one minute.
#[derive(Debug, Clone, PartialEq)]
pub struct StatisticSet {
    /// Metric name.
    pub name: String,
    /// `("Host", host)` first, then the point's dimensions, sorted by name.
    pub dimensions: Vec<(String, String)>,
    /// Start of the minute, unix milliseconds.
    pub minute_ms: i64,
    /// CloudWatch unit name of the series' first point in the minute.
    pub unit: &'static str,
    /// Number of values.
    pub sample_count: u64,
    /// Sum of the values.
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// The values in batch order (what EMF sends).
    pub values: Vec<f64>,
}

/// Points of a batch left out of CloudWatch, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// The value was NaN or infinite (`None`).
    pub not_finite: u64,
    /// More than [`MAX_POINT_DIMENSIONS`] dimensions.
    pub too_many_dimensions: u64,
    /// A metric name, dimension name or value (the host's included) CloudWatch does not accept:
    /// empty, too long, not printable ASCII (dimensions), a dimension named `Host`, or
    /// dimensions that are not a JSON object of strings.
    pub not_accepted: u64,
    /// The value's magnitude, or the sum of its series in the minute, is above
    /// [`MAX_ABS_VALUE`].
    pub value_out_of_range: u64,
    /// The timestamp is more than [`MAX_AGE_MS`] before or [`MAX_AHEAD_MS`] after the batch's
    /// arrival.
    pub time_out_of_range: u64,
}

impl Skipped {
    /// All skipped points.
    pub fn total(&self) -> u64 {
        self.not_finite
            + self.too_many_dimensions
            + self.not_accepted
            + self.value_out_of_range
            + self.time_out_of_range
    }
}

/// What [`aggregate`] makes of a batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregation {
    /// One set per series and minute, ordered by minute, then the dimensions' canonical JSON,
    /// then name.
    pub sets: Vec<StatisticSet>,
    /// Points left out.
    pub skipped: Skipped,
}

/// Why a dimensions object is refused.
#[derive(Debug, Clone, Copy)]
enum Refused {
    TooMany,
    NotAccepted,
}

#[derive(Debug)]
struct Accumulator {
    unit: &'static str,
    sum: f64,
    min: f64,
    max: f64,
    values: Vec<f64>,
}

/// Dimension name and value pairs.
type Pairs = Vec<(String, String)>;

/// Whether CloudWatch accepts `value`'s magnitude (false for NaN).
fn in_range(value: f64) -> bool {
    value.abs() <= MAX_ABS_VALUE
}

/// Printable ASCII with at least one non-space character (CloudWatch's rule for dimensions).
fn printable_ascii(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii() && !b.is_ascii_control())
        && s.bytes().any(|b| !b.is_ascii_whitespace())
}

fn metric_name_accepted(name: &str) -> bool {
    (1..=MAX_METRIC_NAME_LEN).contains(&name.chars().count())
}

fn dimension_name_accepted(name: &str) -> bool {
    (1..=MAX_DIMENSION_NAME_LEN).contains(&name.len())
        && printable_ascii(name)
        && !name.starts_with(':')
        && name != HOST_DIMENSION
}

fn dimension_value_accepted(value: &str) -> bool {
    (1..=MAX_DIMENSION_VALUE_LEN).contains(&value.len()) && printable_ascii(value)
}

/// The point's dimensions (canonical JSON) as sorted pairs, or why CloudWatch cannot take them.
fn parse_dimensions(json: &str) -> Result<Pairs, Refused> {
    let map: BTreeMap<String, String> =
        serde_json::from_str(json).map_err(|_| Refused::NotAccepted)?;
    if map.len() > MAX_POINT_DIMENSIONS {
        return Err(Refused::TooMany);
    }
    if map
        .iter()
        .any(|(k, v)| !dimension_name_accepted(k) || !dimension_value_accepted(v))
    {
        return Err(Refused::NotAccepted);
    }
    Ok(map.into_iter().collect())
}

/// Group a batch's points by series (name, dimensions) and minute (`ts_ms` floored to
/// [`MINUTE_MS`]) into statistic sets for the batch's host, leaving out and counting the points
/// CloudWatch would refuse (see [`Skipped`]). Points of one series in one minute with different
/// units take the first one's unit. Pure and deterministic.
pub fn aggregate(write: &MetricWrite) -> Aggregation {
    let mut skipped = Skipped::default();
    let host_accepted = dimension_value_accepted(&write.host);
    let oldest = write.received_ms.saturating_sub(MAX_AGE_MS);
    let newest = write.received_ms.saturating_add(MAX_AHEAD_MS);
    let mut groups: BTreeMap<(i64, &str, &str), Accumulator> = BTreeMap::new();
    for point in &write.points {
        let Some(value) = point.value else {
            skipped.not_finite += 1;
            continue;
        };
        if !in_range(value) {
            skipped.value_out_of_range += 1;
            continue;
        }
        if point.ts_ms < oldest || point.ts_ms > newest {
            skipped.time_out_of_range += 1;
            continue;
        }
        if !host_accepted || !metric_name_accepted(&point.name) {
            skipped.not_accepted += 1;
            continue;
        }
        let value = if value.abs() < MIN_ABS_VALUE {
            0.0
        } else {
            value
        };
        let minute = point.ts_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
        let acc = groups
            .entry((minute, point.dimensions.as_str(), point.name.as_str()))
            .or_insert_with(|| Accumulator {
                unit: point.unit,
                sum: 0.0,
                min: value,
                max: value,
                values: Vec::new(),
            });
        acc.sum += value;
        acc.min = acc.min.min(value);
        acc.max = acc.max.max(value);
        acc.values.push(value);
    }

    let mut parsed: HashMap<&str, Result<Pairs, Refused>> = HashMap::new();
    let mut sets = Vec::with_capacity(groups.len());
    for ((minute_ms, dims_json, name), acc) in groups {
        let count = acc.values.len() as u64;
        let dims = parsed
            .entry(dims_json)
            .or_insert_with(|| parse_dimensions(dims_json));
        let dims = match dims {
            Ok(dims) => dims,
            Err(Refused::TooMany) => {
                skipped.too_many_dimensions += count;
                continue;
            }
            Err(Refused::NotAccepted) => {
                skipped.not_accepted += count;
                continue;
            }
        };
        if !in_range(acc.sum) {
            skipped.value_out_of_range += count;
            continue;
        }
        let mut dimensions = Vec::with_capacity(dims.len() + 1);
        dimensions.push((HOST_DIMENSION.to_owned(), write.host.clone()));
        dimensions.extend(dims.iter().cloned());
        sets.push(StatisticSet {
            name: name.to_owned(),
            dimensions,
            minute_ms,
            unit: acc.unit,
            sample_count: count,
            sum: acc.sum,
            min: acc.min,
            max: acc.max,
            values: acc.values,
        });
    }
    Aggregation { sets, skipped }
}

/// Whether EMF can carry `set`: in an EMF line the metric's values and the dimensions' values
/// are members of one JSON object, so the metric's name must differ from every dimension name
/// and from [`EMF_METADATA_KEY`], and no dimension may be named [`EMF_METADATA_KEY`].
pub fn emf_representable(set: &StatisticSet) -> bool {
    set.name != EMF_METADATA_KEY
        && set
            .dimensions
            .iter()
            .all(|(k, _)| *k != set.name && k != EMF_METADATA_KEY)
}

/// Length of `s` as a JSON string, quotes included.
fn json_str_len(s: &str) -> usize {
    2 + s
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if c.is_control() && (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
}

/// Estimated bytes of one metric in an EMF line: its definition, its member and its values
/// (at most 24 characters and a comma each).
fn emf_metric_bytes(name: &str, unit: &str, values: usize) -> usize {
    2 * json_str_len(name) + json_str_len(unit) + 32 + 25 * values
}

/// Estimated bytes of an EMF line without metrics.
fn emf_base_bytes(namespace: &str, dims: &[(String, String)]) -> usize {
    let dims: usize = dims
        .iter()
        .map(|(k, v)| 2 * json_str_len(k) + json_str_len(v) + 3)
        .sum();
    json_str_len(namespace) + dims + 128
}

/// Sets by minute and dimension set.
type EmfGroups<'a> = BTreeMap<(i64, &'a [(String, String)]), Vec<&'a StatisticSet>>;

/// The metrics of one EMF line: name, unit, values.
type EmfLine<'a> = Vec<(&'a str, &'static str, &'a [f64])>;

/// The EMF lines (without line ends) that carry `sets` under `namespace`: one JSON object per
/// minute and dimension set, split into more lines beyond [`EMF_MAX_METRICS`] metrics,
/// [`EMF_MAX_VALUES`] values of a metric or about [`EMF_MAX_LINE_BYTES`]. Sets that are not
/// [`emf_representable`] are left out. For example:
///
/// ```json
/// {"_aws":{"Timestamp":1700000040000,"CloudWatchMetrics":[{"Namespace":"Outpost",
///  "Dimensions":[["Host","mount"]],"Metrics":[{"Name":"disk.used","Unit":"Percent"}]}]},
///  "Host":"web-1","mount":"/","disk.used":[1.0,2.0]}
/// ```
pub fn emf_lines(namespace: &str, sets: &[StatisticSet]) -> Vec<String> {
    let mut groups = EmfGroups::new();
    for set in sets.iter().filter(|s| emf_representable(s)) {
        groups
            .entry((set.minute_ms, set.dimensions.as_slice()))
            .or_default()
            .push(set);
    }
    let mut out = Vec::new();
    for ((minute_ms, dims), group) in groups {
        let base = emf_base_bytes(namespace, dims);
        // (metrics, estimated bytes); each chunk goes to the first line with room that does not
        // hold its metric yet (a line cannot name a metric twice).
        let mut lines: Vec<(EmfLine<'_>, usize)> = Vec::new();
        for set in group {
            for chunk in set.values.chunks(EMF_MAX_VALUES) {
                let bytes = emf_metric_bytes(&set.name, set.unit, chunk.len());
                let fits = lines.iter().position(|(metrics, used)| {
                    metrics.len() < EMF_MAX_METRICS
                        && used + bytes <= EMF_MAX_LINE_BYTES
                        && !metrics.iter().any(|(name, _, _)| *name == set.name)
                });
                let index = fits.unwrap_or_else(|| {
                    lines.push((Vec::new(), base));
                    lines.len() - 1
                });
                if let Some((metrics, used)) = lines.get_mut(index) {
                    metrics.push((&set.name, set.unit, chunk));
                    *used += bytes;
                }
            }
        }
        out.extend(
            lines
                .into_iter()
                .map(|(metrics, _)| emf_line(namespace, minute_ms, dims, &metrics)),
        );
    }
    out
}

fn emf_line(
    namespace: &str,
    minute_ms: i64,
    dims: &[(String, String)],
    metrics: &EmfLine<'_>,
) -> String {
    let mut root = Map::new();
    for (k, v) in dims {
        root.insert(k.clone(), Value::from(v.as_str()));
    }
    let mut definitions = Vec::with_capacity(metrics.len());
    for (name, unit, values) in metrics {
        definitions.push(json!({ "Name": name, "Unit": unit }));
        root.insert((*name).to_owned(), Value::from(values.to_vec()));
    }
    let keys: Vec<&str> = dims.iter().map(|(k, _)| k.as_str()).collect();
    root.insert(
        EMF_METADATA_KEY.to_owned(),
        json!({
            "Timestamp": minute_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [keys],
                "Metrics": definitions,
            }],
        }),
    );
    Value::Object(root).to_string()
}

/// An upper bound of the bytes `set` adds to a `PutMetricData` request body.
///
/// The SDK speaks CloudWatch's query protocol: a form-encoded body of
/// `&MetricData.member.N.<field>=<value>` pairs. The bound counts 64 bytes for
/// each key (seven fixed fields plus a name and a value per dimension; the longest key is 52
/// bytes), 32 bytes for each of the four statistics, 64 for the timestamp, and three bytes
/// (a percent-encoded byte) for every byte of the metric name, unit and dimensions. The SDK
/// may gzip the body, which only makes it smaller.
pub fn estimated_request_bytes(set: &StatisticSet) -> usize {
    let strings = set.name.len()
        + set.unit.len()
        + set
            .dimensions
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    QUERY_KEY_BYTES * (QUERY_FIXED_FIELDS + 2 * set.dimensions.len())
        + 4 * QUERY_NUMBER_BYTES
        + QUERY_TIMESTAMP_BYTES
        + 3 * strings
}

fn datum(set: &StatisticSet) -> MetricDatum {
    let dimensions = set
        .dimensions
        .iter()
        .map(|(k, v)| Dimension::builder().name(k).value(v).build())
        .collect();
    let statistics = SdkStatisticSet::builder()
        .sample_count(set.sample_count as f64)
        .sum(set.sum)
        .minimum(set.min)
        .maximum(set.max)
        .build();
    MetricDatum::builder()
        .metric_name(&set.name)
        .set_dimensions(Some(dimensions))
        .timestamp(DateTime::from_millis(set.minute_ms))
        .unit(StandardUnit::from(set.unit))
        .statistic_values(statistics)
        .build()
}

/// The `PutMetricData` calls that carry `sets`, in order: one statistic-set datum per set, at
/// most [`PUT_MAX_DATUMS`] a call, and at most [`PUT_MAX_REQUEST_BYTES`] a call by
/// [`estimated_request_bytes`] (after [`PUT_REQUEST_BASE_BYTES`]). A set that alone exceeds the
/// estimate (impossible within CloudWatch's name limits) still gets a call of its own.
pub fn metric_data_calls(sets: &[StatisticSet]) -> Vec<Vec<MetricDatum>> {
    let budget = PUT_MAX_REQUEST_BYTES - PUT_REQUEST_BASE_BYTES;
    let mut calls = Vec::new();
    let mut call = Vec::new();
    let mut bytes = 0;
    for set in sets {
        let size = estimated_request_bytes(set);
        if !call.is_empty() && (call.len() == PUT_MAX_DATUMS || bytes + size > budget) {
            calls.push(std::mem::take(&mut call));
            bytes = 0;
        }
        call.push(datum(set));
        bytes += size;
    }
    if !call.is_empty() {
        calls.push(call);
    }
    calls
}

/// Publishes each batch's metrics to CloudWatch in the configured [`CloudWatchMode`].
///
/// Publishing never fails the batch: DynamoDB holds the record of every point, and CloudWatch
/// metrics are derived from it for alarms. Failing the batch would make the client (or the
/// Kinesis trigger) send it again, and `PutMetricData` is not idempotent: the minutes already
/// published would be counted twice. So a failed call or EMF write is logged at `error` with
/// its error chain and counted ([`CloudWatch::failures`]); its metrics are lost to CloudWatch.
pub struct CloudWatch {
    mode: CloudWatchMode,
    namespace: String,
    client: Option<Client>,
    emf: Mutex<Box<dyn Write + Send>>,
    failures: AtomicU64,
    skipped: AtomicU64,
}

impl fmt::Debug for CloudWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudWatch")
            .field("mode", &self.mode)
            .field("namespace", &self.namespace)
            .field("client", &self.client.is_some())
            .field("failures", &self.failures)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

impl CloudWatch {
    /// A publisher to `namespace`. `client` is used in [`CloudWatchMode::PutMetricData`] only;
    /// that mode without a client is logged once here, and then publishes nothing (each
    /// batch with metrics counts as a failure). EMF goes to stdout.
    pub fn new(mode: CloudWatchMode, namespace: String, client: Option<Client>) -> Self {
        if mode == CloudWatchMode::PutMetricData && client.is_none() {
            error!(
                namespace,
                "CloudWatch mode put_metric_data without a client: no metrics will be published"
            );
        }
        Self {
            mode,
            namespace,
            client,
            emf: Mutex::new(Box::new(std::io::stdout())),
            failures: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
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

    /// `PutMetricData` calls and EMF writes that failed (and batches that found no client).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Points left out of CloudWatch: see [`Skipped`], plus in EMF mode the points of series
    /// that are not [`emf_representable`].
    pub fn skipped_points(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Publish `write`'s points, aggregated per series and minute. Never fails: see the type's
    /// documentation.
    pub async fn publish(&self, write: &MetricWrite) {
        if self.mode == CloudWatchMode::Off {
            return;
        }
        let Aggregation { sets, skipped } = aggregate(write);
        self.note_skipped(&write.host, &skipped);
        if sets.is_empty() {
            return;
        }
        match self.mode {
            CloudWatchMode::Emf => self.write_emf(&write.host, &sets),
            CloudWatchMode::PutMetricData => self.put_metric_data(&write.host, &sets).await,
            CloudWatchMode::Off => {}
        }
    }

    fn note_skipped(&self, host: &str, skipped: &Skipped) {
        let total = skipped.total();
        if total == 0 {
            return;
        }
        self.skipped.fetch_add(total, Ordering::Relaxed);
        if total == skipped.not_finite {
            debug!(
                host,
                not_finite = total,
                "points without a finite value left out of CloudWatch"
            );
        } else {
            warn!(
                host,
                not_finite = skipped.not_finite,
                too_many_dimensions = skipped.too_many_dimensions,
                not_accepted = skipped.not_accepted,
                value_out_of_range = skipped.value_out_of_range,
                time_out_of_range = skipped.time_out_of_range,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::PointRow;
    use std::sync::Arc;

    const T0: i64 = 1_700_000_040_000; // a minute boundary

    fn point(name: &str, dims: &str, ts_ms: i64, value: Option<f64>) -> PointRow {
        PointRow {
            name: name.into(),
            dimensions: dims.into(),
            ts_ms,
            value,
            unit: "Percent",
        }
    }

    fn write(points: Vec<PointRow>) -> MetricWrite {
        MetricWrite {
            host: "web-1".into(),
            agent_id: "a1".into(),
            agent_version: "0.1.0".into(),
            seq: 7,
            received_ms: T0 + 5 * MINUTE_MS,
            points,
        }
    }

    fn set(name: &str, dims: &[(&str, &str)], minute_ms: i64, values: Vec<f64>) -> StatisticSet {
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

    fn dims_of(json: &str) -> Vec<(String, String)> {
        let mut dims = vec![(HOST_DIMENSION.to_owned(), "web-1".to_owned())];
        dims.extend(parse_dimensions(json).unwrap());
        dims
    }

    #[test]
    fn limits_are_powers_of_two() {
        assert_eq!(MAX_ABS_VALUE, 2f64.powi(359));
        assert_eq!(MIN_ABS_VALUE, 2f64.powi(-359));
    }

    #[test]
    fn groups_per_series_and_minute() {
        let agg = aggregate(&write(vec![
            point("disk.used", r#"{"mount":"/"}"#, T0 + 59_999, Some(3.0)),
            point("disk.used", r#"{"mount":"/"}"#, T0, Some(1.0)),
            point("disk.used", r#"{"mount":"/"}"#, T0 + 30_000, Some(-2.0)),
            point("disk.used", r#"{"mount":"/"}"#, T0 + MINUTE_MS, Some(7.0)),
            point("disk.used", r#"{"mount":"/var"}"#, T0 + 10, Some(5.0)),
            point("cpu", "{}", T0 + 1, Some(50.0)),
        ]));
        assert_eq!(agg.skipped, Skipped::default());
        let summary: Vec<_> = agg
            .sets
            .iter()
            .map(|s| {
                (
                    s.minute_ms,
                    s.name.as_str(),
                    s.dimensions.clone(),
                    s.sample_count,
                    s.sum,
                    s.min,
                    s.max,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    T0,
                    "disk.used",
                    dims_of(r#"{"mount":"/"}"#),
                    3,
                    2.0,
                    -2.0,
                    3.0
                ),
                (
                    T0,
                    "disk.used",
                    dims_of(r#"{"mount":"/var"}"#),
                    1,
                    5.0,
                    5.0,
                    5.0
                ),
                (T0, "cpu", dims_of("{}"), 1, 50.0, 50.0, 50.0),
                (
                    T0 + MINUTE_MS,
                    "disk.used",
                    dims_of(r#"{"mount":"/"}"#),
                    1,
                    7.0,
                    7.0,
                    7.0
                ),
            ]
        );
        assert_eq!(agg.sets[0].values, vec![3.0, 1.0, -2.0]);
        assert_eq!(agg.sets[0].unit, "Percent");
        assert_eq!(
            agg.sets[0].dimensions,
            vec![
                ("Host".to_owned(), "web-1".to_owned()),
                ("mount".to_owned(), "/".to_owned())
            ]
        );
    }

    #[test]
    fn minutes_floor_before_the_epoch() {
        let mut w = write(vec![point("m", "{}", -1, Some(1.0))]);
        w.received_ms = 0;
        assert_eq!(aggregate(&w).sets[0].minute_ms, -MINUTE_MS);
    }

    fn many_dims(n: usize) -> String {
        let map: BTreeMap<String, String> = (0..n)
            .map(|i| (format!("k{i:02}"), "v".to_owned()))
            .collect();
        serde_json::to_string(&map).unwrap()
    }

    #[test]
    fn skips_not_finite_and_too_many_dimensions() {
        let agg = aggregate(&write(vec![
            point("a", "{}", T0, None),
            point("a", "{}", T0, Some(1.0)),
            point("b", &many_dims(29), T0, Some(1.0)),
            point("c", &many_dims(30), T0, Some(1.0)),
            point("c", &many_dims(30), T0 + 1, Some(2.0)),
        ]));
        assert_eq!(
            agg.skipped,
            Skipped {
                not_finite: 1,
                too_many_dimensions: 2,
                ..Skipped::default()
            }
        );
        assert_eq!(agg.skipped.total(), 3);
        let names: Vec<_> = agg.sets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(agg.sets[0].dimensions.len(), 30);
    }

    #[test]
    fn skips_what_cloudwatch_refuses() {
        let long_name = "n".repeat(256);
        let agg = aggregate(&write(vec![
            point("ok", r#"{"mount":"/"}"#, T0, Some(1e-300)),
            point("huge", "{}", T0, Some(1e200)),
            point("sum.huge", "{}", T0, Some(MAX_ABS_VALUE)),
            point("sum.huge", "{}", T0 + 1, Some(MAX_ABS_VALUE)),
            point("old", "{}", T0 + 5 * MINUTE_MS - MAX_AGE_MS - 1, Some(1.0)),
            point(
                "ahead",
                "{}",
                T0 + 5 * MINUTE_MS + MAX_AHEAD_MS + 1,
                Some(1.0),
            ),
            point(&long_name, "{}", T0, Some(1.0)),
            point("", "{}", T0, Some(1.0)),
            point("dims", r#"{"Host":"x"}"#, T0, Some(1.0)),
            point("dims", r#"{"mount":""}"#, T0, Some(1.0)),
            point("dims", r#"{"mount":"/médias"}"#, T0, Some(1.0)),
            point("dims", r#"{":k":"v"}"#, T0, Some(1.0)),
            point("dims", "not json", T0, Some(1.0)),
        ]));
        assert_eq!(
            agg.skipped,
            Skipped {
                not_finite: 0,
                too_many_dimensions: 0,
                not_accepted: 7,
                value_out_of_range: 3,
                time_out_of_range: 2,
            }
        );
        assert_eq!(agg.sets.len(), 1);
        assert_eq!(agg.sets[0].values, vec![0.0], "a tiny value is sent as 0");

        let mut w = write(vec![point("a", "{}", T0, Some(1.0))]);
        w.host = "hôte".into();
        assert_eq!(aggregate(&w).skipped.not_accepted, 1);
    }

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn emf_line_structure() {
        let agg = aggregate(&write(vec![
            point("disk.used", r#"{"mount":"/"}"#, T0, Some(1.0)),
            point("disk.free", r#"{"mount":"/"}"#, T0, Some(9.0)),
            point("disk.used", r#"{"mount":"/"}"#, T0 + 1, Some(2.0)),
            point("cpu", "{}", T0 + MINUTE_MS, Some(50.5)),
        ]));
        let lines = emf_lines("Outpost", &agg.sets);
        assert_eq!(lines.len(), 2);
        let first = parse(&lines[0]);
        assert_eq!(
            first,
            json!({
                "_aws": {
                    "Timestamp": T0,
                    "CloudWatchMetrics": [{
                        "Namespace": "Outpost",
                        "Dimensions": [["Host", "mount"]],
                        "Metrics": [
                            {"Name": "disk.free", "Unit": "Percent"},
                            {"Name": "disk.used", "Unit": "Percent"},
                        ],
                    }],
                },
                "Host": "web-1",
                "mount": "/",
                "disk.free": [9.0],
                "disk.used": [1.0, 2.0],
            })
        );
        let second = parse(&lines[1]);
        assert_eq!(second["_aws"]["Timestamp"], json!(T0 + MINUTE_MS));
        assert_eq!(
            second["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Host"]])
        );
        assert_eq!(second["cpu"], json!([50.5]));
        assert!(!lines[0].contains('\n'));
    }

    #[test]
    fn emf_splits_beyond_100_values() {
        let values: Vec<f64> = (0..250).map(f64::from).collect();
        let sets = [set("m", &[("Host", "h")], T0, values.clone())];
        let lines = emf_lines("ns", &sets);
        assert_eq!(lines.len(), 3);
        let mut seen = Vec::new();
        for line in &lines {
            let v = parse(line);
            let arr = v["m"].as_array().unwrap();
            assert!(arr.len() <= EMF_MAX_VALUES);
            seen.extend(arr.iter().map(|x| x.as_f64().unwrap()));
            assert_eq!(v["_aws"]["Timestamp"], json!(T0));
        }
        assert_eq!(seen, values);
    }

    #[test]
    fn emf_splits_beyond_100_metrics() {
        let sets: Vec<_> = (0..250)
            .map(|i| {
                set(
                    &format!("m{i:03}"),
                    &[("Host", "h")],
                    T0,
                    vec![f64::from(i)],
                )
            })
            .collect();
        let lines = emf_lines("ns", &sets);
        assert_eq!(lines.len(), 3);
        let mut names = Vec::new();
        for line in &lines {
            let v = parse(line);
            let metrics = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap();
            assert!(metrics.len() <= EMF_MAX_METRICS);
            for m in metrics {
                let name = m["Name"].as_str().unwrap().to_owned();
                assert!(v[&name].is_array(), "{name} has its member");
                names.push(name);
            }
        }
        names.sort();
        assert_eq!(
            names,
            sets.iter().map(|s| s.name.clone()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn emf_keeps_lines_under_the_byte_budget() {
        let name = "x".repeat(200);
        let sets: Vec<_> = (0..100)
            .map(|i| {
                set(
                    &format!("{name}{i:03}"),
                    &[("Host", "h")],
                    T0,
                    vec![-1.234_567_890_123_456_7e-300; EMF_MAX_VALUES],
                )
            })
            .collect();
        let lines = emf_lines("ns", &sets);
        assert!(lines.len() > 1);
        for line in &lines {
            assert!(line.len() <= EMF_MAX_LINE_BYTES, "{}", line.len());
        }
    }

    #[test]
    fn emf_never_shadows_a_dimension() {
        let sets = [
            set("mount", &[("Host", "h"), ("mount", "/")], T0, vec![1.0]),
            set("Host", &[("Host", "h")], T0, vec![1.0]),
            set("_aws", &[("Host", "h")], T0, vec![1.0]),
            set("ok", &[("Host", "h"), ("_aws", "x")], T0, vec![1.0]),
            set("ok", &[("Host", "h"), ("mount", "/")], T0, vec![2.0]),
        ];
        assert!(!emf_representable(&sets[0]));
        let lines = emf_lines("ns", &sets);
        assert_eq!(lines.len(), 1);
        let v = parse(&lines[0]);
        assert_eq!(v["mount"], json!("/"));
        assert_eq!(v["ok"], json!([2.0]));
    }

    #[test]
    fn emf_puts_a_repeated_name_on_another_line() {
        let sets = [
            set("m", &[("Host", "h")], T0, vec![1.0]),
            set("m", &[("Host", "h")], T0, vec![2.0]),
        ];
        let lines = emf_lines("ns", &sets);
        assert_eq!(lines.len(), 2);
        assert_eq!(parse(&lines[1])["m"], json!([2.0]));
    }

    #[test]
    fn put_metric_data_datums() {
        let s = set(
            "disk.used",
            &[("Host", "h"), ("mount", "/")],
            T0,
            vec![1.0, 5.0],
        );
        let calls = metric_data_calls(std::slice::from_ref(&s));
        assert_eq!(calls.len(), 1);
        let d = &calls[0][0];
        assert_eq!(d.metric_name(), Some("disk.used"));
        assert_eq!(d.timestamp(), Some(&DateTime::from_millis(T0)));
        assert_eq!(d.unit(), Some(&StandardUnit::Count));
        let dims: Vec<_> = d
            .dimensions()
            .iter()
            .map(|d| (d.name().unwrap(), d.value().unwrap()))
            .collect();
        assert_eq!(dims, [("Host", "h"), ("mount", "/")]);
        let stats = d.statistic_values().unwrap();
        assert_eq!(
            (
                stats.sample_count(),
                stats.sum(),
                stats.minimum(),
                stats.maximum()
            ),
            (Some(2.0), Some(6.0), Some(1.0), Some(5.0))
        );
        assert_eq!(d.value(), None);
        assert!(d.values().is_empty());
    }

    #[test]
    fn put_metric_data_splits_at_1000_datums() {
        let sets: Vec<_> = (0..2500)
            .map(|i| set(&format!("m{i}"), &[("Host", "h")], T0, vec![1.0]))
            .collect();
        let calls = metric_data_calls(&sets);
        let sizes: Vec<_> = calls.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        assert_eq!(calls[2][499].metric_name(), Some("m2499"));
        assert!(metric_data_calls(&[]).is_empty());
    }

    #[test]
    fn put_metric_data_splits_at_1_mb() {
        // 29 long dimensions: about 105 KB each by the estimate, so 9 fit in a call.
        let dims: Vec<(String, String)> = std::iter::once(("Host".to_owned(), "h".to_owned()))
            .chain((0..29).map(|i| (format!("{i:02}{}", "k".repeat(198)), "v".repeat(1000))))
            .collect();
        let dims: Vec<(&str, &str)> = dims.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let sets: Vec<_> = (0..30)
            .map(|i| set(&format!("m{i}"), &dims, T0, vec![1.0]))
            .collect();
        let each = estimated_request_bytes(&sets[0]);
        assert!(each > 100_000, "{each}");
        let calls = metric_data_calls(&sets);
        assert!(calls.len() > 1);
        let per_call = (PUT_MAX_REQUEST_BYTES - PUT_REQUEST_BASE_BYTES) / each;
        let sizes: Vec<_> = calls.iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 30);
        assert!(sizes.iter().all(|n| *n <= per_call), "{sizes:?}");
        assert_eq!(sizes[0], per_call);
    }

    #[test]
    fn estimate_bounds_the_query_encoding() {
        // The real encoding of the worst-case datum, key by key, stays under the estimate.
        let s = set(
            &"é".repeat(127),
            &[
                ("Host", &"%".repeat(1024)),
                (&"+".repeat(255), &"&".repeat(1024)),
            ],
            T0,
            vec![-1.234_567_890_123_456_7e-300, 1.0],
        );
        let prefix = "&MetricData.member.1000.";
        let mut real = 0;
        let field = |key: &str, value_bytes: usize| prefix.len() + key.len() + 1 + value_bytes;
        real += field("MetricName", 3 * s.name.len());
        real += field("Timestamp", "2023-11-14T22%3A14%3A00Z".len());
        real += field("Unit", 3 * s.unit.len());
        for stat in ["SampleCount", "Sum", "Minimum", "Maximum"] {
            real += field(&format!("StatisticValues.{stat}"), 24);
        }
        for (i, (k, v)) in s.dimensions.iter().enumerate() {
            real += field(&format!("Dimensions.member.{}.Name", i + 21), 3 * k.len());
            real += field(&format!("Dimensions.member.{}.Value", i + 21), 3 * v.len());
        }
        assert!(real <= estimated_request_bytes(&s), "{real}");
    }

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

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn publisher_is_send_and_sync() {
        assert_send_sync::<CloudWatch>();
    }
}
