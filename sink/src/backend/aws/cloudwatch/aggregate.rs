//! Statistic sets per series and minute in either scope, the fleet totals, and the checks that
//! skip points CloudWatch refuses or the selection leaves out.

use std::collections::{BTreeMap, HashMap};

use super::config::CloudWatchScope;
use super::names::{dimension_name_accepted, dimension_value_accepted, metric_name_accepted};
use super::select::MetricSelection;
use super::{HOST_DIMENSION, MAX_POINT_DIMENSIONS, MINUTE_MS};
use outpost_sink_core::ports::MetricWrite;

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

/// The statistics of one series (metric name and dimensions) in one minute.
#[derive(Debug, Clone, PartialEq)]
pub struct StatisticSet {
    /// Metric name.
    pub name: String,
    /// `("Host", host)` first in the per-host scope, then the point's dimensions, sorted by
    /// name; empty for a fleet total.
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
    /// A metric name, dimension name or value (the host's included, in the per-host scope)
    /// CloudWatch does not accept: empty, too long, not printable ASCII (dimensions), a
    /// dimension named `Host` (in either scope), or dimensions that are not a JSON object of
    /// strings.
    pub not_accepted: u64,
    /// The value's magnitude, or the sum of its series in the minute, is above
    /// [`MAX_ABS_VALUE`].
    pub value_out_of_range: u64,
    /// The timestamp is more than [`MAX_AGE_MS`] before or [`MAX_AHEAD_MS`] after the batch's
    /// arrival.
    pub time_out_of_range: u64,
    /// The series is not in the [`MetricSelection`] (`OUTPOST_CLOUDWATCH_METRICS`): left out
    /// on purpose, not an error.
    pub not_selected: u64,
}

impl Skipped {
    /// All skipped points, the ones not selected included.
    pub fn total(&self) -> u64 {
        self.refused() + self.not_finite + self.not_selected
    }

    /// The points CloudWatch would refuse for their dimensions, name, value or time: worth a
    /// warning, unlike values that are not finite and series that are not selected.
    pub fn refused(&self) -> u64 {
        self.too_many_dimensions
            + self.not_accepted
            + self.value_out_of_range
            + self.time_out_of_range
    }
}

/// What [`aggregate`] makes of a batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregation {
    /// One set per series and minute, ordered by minute, then series without `Host` before
    /// series with it, then the point's dimensions' canonical JSON, then name.
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

/// Metrics that are also published as dimensionless fleet totals, in both scopes: the values
/// of a batch's points of one of these names at one time are summed (over services, for the
/// log counters) into one value of the series without any dimension.
pub const FLEET_TOTALS: [&str; 3] = ["log.lines", "log.error_lines", "agent.heartbeat"];

/// A group's key: minute, whether the series carries the `Host` dimension, the point's
/// dimensions (canonical JSON), metric name.
type GroupKey<'a> = (i64, bool, &'a str, &'a str);

/// The canonical JSON of no dimensions.
const NO_DIMENSIONS: &str = "{}";

/// Group a batch's points by series (name, dimensions) and minute (`ts_ms` floored to
/// [`MINUTE_MS`]) into statistic sets, leaving out and counting the points CloudWatch would
/// refuse (see [`Skipped`]). Points of one series in one minute with different units take the
/// first one's unit. Pure and deterministic.
///
/// In [`CloudWatchScope::PerHost`] every series carries `("Host", host)` before the point's
/// dimensions; in [`CloudWatchScope::Fleet`] it carries the point's dimensions only, so the
/// sets of every host's batches meet in the same series. In both scopes the points named in
/// [`FLEET_TOTALS`] also feed their dimensionless total (once: in the fleet scope a point
/// without dimensions already is the total). A total counts a point whose own series is
/// refused for its host or dimensions (the total carries neither); [`Skipped`] counts the
/// points left out of their own series.
///
/// Only the series `selection` selects are published (by the point's name and own
/// dimensions); the others are counted in [`Skipped::not_selected`]. The dimensionless totals
/// are published whatever the selection, and still count the points of unselected series.
pub fn aggregate(
    write: &MetricWrite,
    scope: CloudWatchScope,
    selection: &MetricSelection,
) -> Aggregation {
    let scoped = scope == CloudWatchScope::PerHost;
    let mut skipped = Skipped::default();
    let groups = group(write, scoped, selection, &mut skipped);
    let sets = statistic_sets(groups, &write.host, &mut skipped);
    Aggregation { sets, skipped }
}

/// The accumulators of [`aggregate`]'s groups: every point `selection` selects, by series and
/// minute, then the fleet totals; the points left out are counted in `skipped`.
fn group<'a>(
    write: &'a MetricWrite,
    scoped: bool,
    selection: &MetricSelection,
    skipped: &mut Skipped,
) -> BTreeMap<GroupKey<'a>, Accumulator> {
    let host_accepted = !scoped || dimension_value_accepted(&write.host);
    let oldest = write.received_ms.saturating_sub(MAX_AGE_MS);
    let newest = write.received_ms.saturating_add(MAX_AHEAD_MS);
    let mut groups: BTreeMap<GroupKey<'_>, Accumulator> = BTreeMap::new();
    // (name, ts) of a total to the sum of its points' values and the first one's unit.
    let mut totals: BTreeMap<(&str, i64), (f64, &'static str)> = BTreeMap::new();
    for point in &write.points {
        let is_total = FLEET_TOTALS.contains(&point.name.as_str());
        // In the fleet scope a total's point without dimensions is in the total's own series.
        let is_the_total = is_total && !scoped && point.dimensions == NO_DIMENSIONS;
        let selected = is_the_total || selection.selects(&point.name, &point.dimensions);
        if !selected && !is_total {
            skipped.not_selected += 1;
            continue;
        }
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
        let value = if value.abs() < MIN_ABS_VALUE {
            0.0
        } else {
            value
        };
        if is_total && !is_the_total {
            totals
                .entry((point.name.as_str(), point.ts_ms))
                .or_insert((0.0, point.unit))
                .0 += value;
        }
        if !selected {
            skipped.not_selected += 1;
            continue;
        }
        if !host_accepted || !metric_name_accepted(&point.name) {
            skipped.not_accepted += 1;
            continue;
        }
        let minute = minute_of(point.ts_ms);
        add(
            &mut groups,
            (
                minute,
                scoped,
                point.dimensions.as_str(),
                point.name.as_str(),
            ),
            point.unit,
            value,
        );
    }
    for ((name, ts_ms), (sum, unit)) in totals {
        // A sum of in-range values may leave the range; such a total is left out (its points
        // are in their own series).
        if in_range(sum) {
            add(
                &mut groups,
                (minute_of(ts_ms), false, NO_DIMENSIONS, name),
                unit,
                sum,
            );
        }
    }
    groups
}

/// One statistic set per group, leaving out (and counting in `skipped`) the groups whose
/// dimensions or sum CloudWatch refuses; `host` is the value of the `Host` dimension.
fn statistic_sets(
    groups: BTreeMap<GroupKey<'_>, Accumulator>,
    host: &str,
    skipped: &mut Skipped,
) -> Vec<StatisticSet> {
    let mut parsed: HashMap<&str, Result<Pairs, Refused>> = HashMap::new();
    let mut sets = Vec::with_capacity(groups.len());
    for ((minute_ms, host_scoped, dims_json, name), acc) in groups {
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
        if host_scoped {
            dimensions.push((HOST_DIMENSION.to_owned(), host.to_owned()));
        }
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
    sets
}

/// The start of `ts_ms`'s minute.
fn minute_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

/// Add `value` to the group `key` (created with `unit`).
fn add<'a>(
    groups: &mut BTreeMap<GroupKey<'a>, Accumulator>,
    key: GroupKey<'a>,
    unit: &'static str,
    value: f64,
) {
    let acc = groups.entry(key).or_insert_with(|| Accumulator {
        unit,
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

/// A statistic set of one value (for the health check's metrics).
pub fn single(
    name: &str,
    dimensions: Vec<(String, String)>,
    minute_ms: i64,
    unit: &'static str,
    value: f64,
) -> StatisticSet {
    StatisticSet {
        name: name.to_owned(),
        dimensions,
        minute_ms,
        unit,
        sample_count: 1,
        sum: value,
        min: value,
        max: value,
        values: vec![value],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::aws::cloudwatch::test_support::{T0, per_host, point, write};
    use outpost_sink_core::ports::PointRow;

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
        let agg = per_host(&write(vec![
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
        assert_eq!(per_host(&w).sets[0].minute_ms, -MINUTE_MS);
    }

    fn many_dims(n: usize) -> String {
        let map: BTreeMap<String, String> = (0..n)
            .map(|i| (format!("k{i:02}"), "v".to_owned()))
            .collect();
        serde_json::to_string(&map).unwrap()
    }

    #[test]
    fn skips_not_finite_and_too_many_dimensions() {
        let agg = per_host(&write(vec![
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
        let agg = per_host(&write(vec![
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
                not_selected: 0,
            }
        );
        assert_eq!(agg.sets.len(), 1);
        assert_eq!(agg.sets[0].values, vec![0.0], "a tiny value is sent as 0");

        let mut w = write(vec![point("a", "{}", T0, Some(1.0))]);
        w.host = "hôte".into();
        assert_eq!(per_host(&w).skipped.not_accepted, 1);
    }

    fn count_point(name: &str, dims: &str, ts_ms: i64, value: f64) -> PointRow {
        PointRow {
            unit: "Count",
            ..point(name, dims, ts_ms, Some(value))
        }
    }

    /// (name, dimensions as `k=v`, minute, values) of each set.
    fn summary(agg: &Aggregation) -> Vec<(String, Vec<String>, i64, Vec<f64>)> {
        agg.sets
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.dimensions
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect(),
                    s.minute_ms,
                    s.values.clone(),
                )
            })
            .collect()
    }

    fn owned(rows: &[(&str, &[&str], i64, &[f64])]) -> Vec<(String, Vec<String>, i64, Vec<f64>)> {
        rows.iter()
            .map(|(n, d, m, v)| {
                (
                    (*n).to_owned(),
                    d.iter().map(|x| (*x).to_owned()).collect(),
                    *m,
                    v.to_vec(),
                )
            })
            .collect()
    }

    fn telemetry() -> MetricWrite {
        write(vec![
            count_point("log.lines", r#"{"service":"api"}"#, T0, 10.0),
            count_point("log.lines", r#"{"service":"db"}"#, T0, 5.0),
            count_point("log.error_lines", r#"{"service":"api"}"#, T0, 1.0),
            count_point("log.error_lines", r#"{"service":"db"}"#, T0, 0.0),
            count_point("agent.heartbeat", "{}", T0, 1.0),
            count_point("log.lines", r#"{"service":"api"}"#, T0 + 30_000, 7.0),
            count_point("log.lines", r#"{"service":"db"}"#, T0 + 30_000, 2.0),
            count_point("agent.heartbeat", "{}", T0 + 30_000, 1.0),
            point("cpu.utilization", r#"{"cpu":"total"}"#, T0, Some(50.0)),
        ])
    }

    #[test]
    fn per_host_scope_adds_dimensionless_totals() {
        let agg = aggregate(
            &telemetry(),
            CloudWatchScope::PerHost,
            &MetricSelection::all(),
        );
        assert_eq!(agg.skipped, Skipped::default());
        let host = "Host=web-1";
        assert_eq!(
            summary(&agg),
            owned(&[
                // The totals: per time, the sum over services; no dimension at all.
                ("agent.heartbeat", &[], T0, &[1.0, 1.0]),
                ("log.error_lines", &[], T0, &[1.0]),
                ("log.lines", &[], T0, &[15.0, 9.0]),
                // Then the host's series, by dimensions JSON (`{}` after `{"...`).
                ("cpu.utilization", &[host, "cpu=total"], T0, &[50.0]),
                ("log.error_lines", &[host, "service=api"], T0, &[1.0]),
                ("log.lines", &[host, "service=api"], T0, &[10.0, 7.0]),
                ("log.error_lines", &[host, "service=db"], T0, &[0.0]),
                ("log.lines", &[host, "service=db"], T0, &[5.0, 2.0]),
                ("agent.heartbeat", &[host], T0, &[1.0, 1.0]),
            ])
        );
        let total = &agg.sets[2];
        assert_eq!(
            (total.sum, total.unit, total.sample_count),
            (24.0, "Count", 2)
        );
    }

    #[test]
    fn fleet_scope_drops_the_host_and_keeps_one_heartbeat_series() {
        let agg = aggregate(
            &telemetry(),
            CloudWatchScope::Fleet,
            &MetricSelection::all(),
        );
        assert_eq!(agg.skipped, Skipped::default());
        assert_eq!(
            summary(&agg),
            owned(&[
                ("cpu.utilization", &["cpu=total"], T0, &[50.0]),
                ("log.error_lines", &["service=api"], T0, &[1.0]),
                ("log.lines", &["service=api"], T0, &[10.0, 7.0]),
                ("log.error_lines", &["service=db"], T0, &[0.0]),
                ("log.lines", &["service=db"], T0, &[5.0, 2.0]),
                // The heartbeat has no dimensions of its own: its series is the total, once.
                ("agent.heartbeat", &[], T0, &[1.0, 1.0]),
                ("log.error_lines", &[], T0, &[1.0]),
                ("log.lines", &[], T0, &[15.0, 9.0]),
            ])
        );
        assert!(
            agg.sets
                .iter()
                .all(|s| s.dimensions.iter().all(|(k, _)| k != HOST_DIMENSION))
        );
    }

    #[test]
    fn fleet_series_of_two_hosts_carry_both_values() {
        // Two hosts' batches in one minute: the same series (no Host), so CloudWatch's
        // statistics over the minute are the fleet's.
        let mut a = write(vec![point(
            "cpu.utilization",
            r#"{"cpu":"total"}"#,
            T0,
            Some(20.0),
        )]);
        let mut b = a.clone();
        a.host = "web-1".into();
        b.host = "web-2".into();
        b.points[0].value = Some(90.0);
        let sets: Vec<StatisticSet> = [a, b]
            .iter()
            .flat_map(|w| aggregate(w, CloudWatchScope::Fleet, &MetricSelection::all()).sets)
            .collect();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].dimensions, sets[1].dimensions);
        assert_eq!(sets[0].name, sets[1].name);
        assert_eq!(sets[0].minute_ms, sets[1].minute_ms);
        // A host name CloudWatch would refuse as a dimension does not matter without `Host`.
        let mut w = write(vec![point("a", "{}", T0, Some(1.0))]);
        w.host = "hôte".into();
        assert_eq!(
            aggregate(&w, CloudWatchScope::Fleet, &MetricSelection::all()).skipped,
            Skipped::default()
        );
    }

    #[test]
    fn totals_count_points_whose_own_series_is_refused() {
        let mut w = write(vec![
            count_point("log.lines", r#"{"service":"café"}"#, T0, 3.0),
            count_point("log.lines", r#"{"service":"api"}"#, T0, 4.0),
            PointRow {
                value: None,
                ..count_point("log.lines", r#"{"service":"api"}"#, T0, 0.0)
            },
        ]);
        w.host = "hôte".into();
        let agg = aggregate(&w, CloudWatchScope::PerHost, &MetricSelection::all());
        assert_eq!(
            agg.skipped,
            Skipped {
                not_finite: 1,
                not_accepted: 2,
                ..Skipped::default()
            }
        );
        assert_eq!(summary(&agg), owned(&[("log.lines", &[], T0, &[7.0])]));
    }

    /// [`telemetry`] plus series the default selection leaves out.
    fn host_telemetry() -> MetricWrite {
        let mut w = telemetry();
        w.points.extend([
            point("cpu.utilization", r#"{"cpu":"0"}"#, T0, Some(70.0)),
            point("memory.utilization", "{}", T0, Some(40.0)),
            point("disk.utilization", r#"{"mount":"/"}"#, T0, Some(10.0)),
            point("disk.utilization", r#"{"mount":"/"}"#, T0 + 1, None),
        ]);
        w
    }

    fn selection(text: &str) -> MetricSelection {
        MetricSelection::parse(text).unwrap()
    }

    #[test]
    fn the_default_selection_and_star_publish_every_series() {
        for scope in [CloudWatchScope::PerHost, CloudWatchScope::Fleet] {
            let all = aggregate(&host_telemetry(), scope, &MetricSelection::default());
            assert_eq!(all, aggregate(&host_telemetry(), scope, &selection("*")));
            assert_eq!(all.skipped.not_selected, 0);
            assert_eq!(all.skipped.not_finite, 1);
            assert!(all.sets.iter().any(|s| s.name == "disk.utilization"));
        }
    }

    #[test]
    fn per_host_selection_keeps_the_selected_series_and_every_total() {
        let only = selection("cpu.utilization{cpu=total}, memory.utilization");
        let agg = aggregate(&host_telemetry(), CloudWatchScope::PerHost, &only);
        let host = "Host=web-1";
        assert_eq!(
            summary(&agg),
            owned(&[
                // The totals, although no series of theirs is selected.
                ("agent.heartbeat", &[], T0, &[1.0, 1.0]),
                ("log.error_lines", &[], T0, &[1.0]),
                ("log.lines", &[], T0, &[15.0, 9.0]),
                ("cpu.utilization", &[host, "cpu=total"], T0, &[50.0]),
                ("memory.utilization", &[host], T0, &[40.0]),
            ])
        );
        // 8 log and heartbeat points, cpu=0 and the disk's two points: not selected, which
        // is not an error (the disk's `None` is not counted as not finite either).
        assert_eq!(
            agg.skipped,
            Skipped {
                not_selected: 11,
                ..Skipped::default()
            }
        );
        assert_eq!(agg.skipped.refused(), 0);
    }

    #[test]
    fn fleet_selection_keeps_the_selected_series_and_every_total() {
        let only = selection("cpu.utilization{cpu=total},memory.utilization");
        let agg = aggregate(&host_telemetry(), CloudWatchScope::Fleet, &only);
        assert_eq!(
            summary(&agg),
            owned(&[
                ("cpu.utilization", &["cpu=total"], T0, &[50.0]),
                // The heartbeat's own series is its total: published, not counted as skipped.
                ("agent.heartbeat", &[], T0, &[1.0, 1.0]),
                ("log.error_lines", &[], T0, &[1.0]),
                ("log.lines", &[], T0, &[15.0, 9.0]),
                ("memory.utilization", &[], T0, &[40.0]),
            ])
        );
        assert_eq!(agg.skipped.not_selected, 9);
        assert_eq!(agg.skipped.total(), 9);
    }

    #[test]
    fn a_name_selects_all_its_series_and_dimensions_exactly_one() {
        let host = "Host=web-1";
        let agg = aggregate(
            &host_telemetry(),
            CloudWatchScope::PerHost,
            &selection("log.lines,agent.heartbeat,cpu.utilization{cpu=0}"),
        );
        assert_eq!(
            summary(&agg),
            owned(&[
                ("agent.heartbeat", &[], T0, &[1.0, 1.0]),
                ("log.error_lines", &[], T0, &[1.0]),
                ("log.lines", &[], T0, &[15.0, 9.0]),
                ("cpu.utilization", &[host, "cpu=0"], T0, &[70.0]),
                ("log.lines", &[host, "service=api"], T0, &[10.0, 7.0]),
                ("log.lines", &[host, "service=db"], T0, &[5.0, 2.0]),
                ("agent.heartbeat", &[host], T0, &[1.0, 1.0]),
            ])
        );
        // log.error_lines ×2, cpu=total, memory, disk ×2.
        assert_eq!(agg.skipped.not_selected, 6);

        let agg = aggregate(
            &host_telemetry(),
            CloudWatchScope::Fleet,
            &selection("log.lines{service=api},disk.utilization{mount=/var}"),
        );
        assert_eq!(
            summary(&agg),
            owned(&[
                ("log.lines", &["service=api"], T0, &[10.0, 7.0]),
                ("agent.heartbeat", &[], T0, &[1.0, 1.0]),
                ("log.error_lines", &[], T0, &[1.0]),
                ("log.lines", &[], T0, &[15.0, 9.0]),
            ])
        );
    }

    #[test]
    fn totals_of_unselected_series_still_skip_what_cloudwatch_refuses() {
        // An unselected log counter still feeds the total, so its value is checked.
        let w = write(vec![
            PointRow {
                value: None,
                ..count_point("log.lines", r#"{"service":"api"}"#, T0, 0.0)
            },
            count_point("log.lines", r#"{"service":"api"}"#, T0, 2.0),
        ]);
        let agg = aggregate(
            &w,
            CloudWatchScope::PerHost,
            &selection("memory.utilization"),
        );
        assert_eq!(
            agg.skipped,
            Skipped {
                not_finite: 1,
                not_selected: 1,
                ..Skipped::default()
            }
        );
        assert_eq!(summary(&agg), owned(&[("log.lines", &[], T0, &[2.0])]));
    }
}
