//! Statistic sets per series and minute, and the checks that skip points CloudWatch refuses.

use std::collections::{BTreeMap, HashMap};

use super::{HOST_DIMENSION, MAX_POINT_DIMENSIONS, MINUTE_MS};
use crate::backend::MetricWrite;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::aws::cloudwatch::test_support::{T0, point, write};

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
}
