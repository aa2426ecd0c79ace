//! Checking parsed samples and turning them into metric points: metric and label names
//! (Prometheus syntax), lengths, label count, timestamps, duplicate series, and the series
//! limit. Pure.
//!
//! Names follow Prometheus (`[a-zA-Z_:][a-zA-Z0-9_:]*`) in both formats: they never contain a
//! dot, so a custom metric cannot collide with the agent's own (`cpu.utilization`).

use super::prom::{is_label_name, is_metric_name};
use super::{
    LineError, MAX_LABEL_VALUE_LEN, MAX_LABELS, MAX_NAME_LEN, MAX_SERIES, Parsed, Read, Sample,
};
use outpost_proto::{Dimension, MetricPoint};
use std::collections::HashMap;

/// Earliest sample timestamp accepted: `0000-01-01T00:00:00Z` (the sink's range).
pub const MIN_TS_MS: i64 = -62_167_219_200_000;
/// Latest sample timestamp accepted: `9999-12-31T23:59:59.999Z` (the sink's range).
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// A series: the metric name and its sorted dimensions.
pub type SeriesKey = (String, Vec<Dimension>);

/// The series seen in one run of an input, and where each was first seen (file, line): a
/// series given twice is an error on its second line, across the files of a directory too.
#[derive(Debug, Default)]
pub struct Seen {
    first: HashMap<SeriesKey, (String, usize)>,
}

/// Check `parsed` (from `source`, a file name or command name) and convert what is valid;
/// samples without a timestamp get `now_ms`. At most [`MAX_SERIES`] series are taken.
pub fn to_points(parsed: Parsed, source: &str, now_ms: i64, seen: &mut Seen) -> Read {
    let Parsed {
        samples,
        mut errors,
    } = parsed;
    let mut points = Vec::with_capacity(samples.len().min(MAX_SERIES));
    let total = samples.len();
    for (i, sample) in samples.into_iter().enumerate() {
        let line = sample.line;
        if points.len() == MAX_SERIES {
            errors.push(LineError {
                line,
                reason: format!(
                    "more than {MAX_SERIES} series: this sample and the {} after it are skipped",
                    total - i - 1
                ),
            });
            break;
        }
        match check(sample, now_ms) {
            Ok(point) => {
                let key = (point.name.clone(), point.dimensions.clone());
                if let Some((file, first)) = seen.first.get(&key) {
                    let at = if file == source {
                        format!("line {first}")
                    } else {
                        format!("{file} line {first}")
                    };
                    errors.push(LineError {
                        line,
                        reason: format!("duplicate series {} (first on {at})", show(&key)),
                    });
                } else {
                    seen.first.insert(key, (source.to_owned(), line));
                    points.push(point);
                }
            }
            Err(reason) => errors.push(LineError { line, reason }),
        }
    }
    errors.sort_by_key(|e| e.line);
    Read { points, errors }
}

/// `name{k="v",...}`, for messages.
fn show((name, dims): &SeriesKey) -> String {
    if dims.is_empty() {
        return name.clone();
    }
    let labels: Vec<String> = dims
        .iter()
        .map(|d| format!("{}={:?}", d.key, d.value))
        .collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// One sample, checked and converted. A label with an empty value is dropped (in Prometheus
/// it is the same as no label).
pub fn check(sample: Sample, now_ms: i64) -> Result<MetricPoint, String> {
    let Sample {
        name,
        labels,
        value,
        ts_ms,
        unit,
        ..
    } = sample;
    if !is_metric_name(&name) {
        return Err(format!(
            "{:?} is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
            clip(&name)
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "metric name of {} bytes is longer than {MAX_NAME_LEN}",
            name.len()
        ));
    }
    let mut dimensions = Vec::with_capacity(labels.len().min(MAX_LABELS));
    for (key, value) in labels {
        if !is_label_name(&key) {
            return Err(format!(
                "{name}: {:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)",
                clip(&key)
            ));
        }
        if key.len() > MAX_NAME_LEN {
            return Err(format!(
                "{name}: label name of {} bytes is longer than {MAX_NAME_LEN}",
                key.len()
            ));
        }
        if value.len() > MAX_LABEL_VALUE_LEN {
            return Err(format!(
                "{name}: value of label {key} is {} bytes, longer than {MAX_LABEL_VALUE_LEN}",
                value.len()
            ));
        }
        if !value.is_empty() {
            dimensions.push(Dimension { key, value });
        }
    }
    if dimensions.len() > MAX_LABELS {
        return Err(format!(
            "{name}: {} labels, more than {MAX_LABELS}",
            dimensions.len()
        ));
    }
    dimensions.sort();
    if let Some(w) = dimensions.windows(2).find(|w| w[0].key == w[1].key) {
        return Err(format!("{name}: label {} given twice", w[0].key));
    }
    let ts_ms = match ts_ms {
        Some(t) if !(MIN_TS_MS..=MAX_TS_MS).contains(&t) => {
            return Err(format!(
                "{name}: timestamp {t} is outside years 0 to 9999 (it is in milliseconds)"
            ));
        }
        Some(t) => t,
        None => now_ms,
    };
    Ok(MetricPoint {
        name,
        ts_ms,
        value,
        unit,
        dimensions,
    })
}

/// At most 64 characters of `s`, for messages.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_proto::Unit;

    const NOW: i64 = 1_800_000_000_000;

    fn sample(line: usize, name: &str, labels: &[(&str, &str)]) -> Sample {
        Sample {
            line,
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            value: 1.0,
            ts_ms: None,
            unit: Unit::None,
        }
    }

    fn dim(k: &str, v: &str) -> Dimension {
        Dimension {
            key: k.to_owned(),
            value: v.to_owned(),
        }
    }

    #[test]
    fn a_sample_becomes_a_point_with_sorted_dimensions() {
        let mut s = sample(1, "node_xyz", &[("z", "1"), ("a", "2"), ("empty", "")]);
        s.unit = Unit::Bytes;
        s.value = f64::NAN;
        let p = check(s, NOW).unwrap();
        assert_eq!(p.name, "node_xyz");
        assert_eq!(p.dimensions, [dim("a", "2"), dim("z", "1")]);
        assert_eq!(p.ts_ms, NOW);
        assert_eq!(p.unit, Unit::Bytes);
        assert!(p.value.is_nan());
        let mut s = sample(1, "m", &[]);
        s.ts_ms = Some(5);
        assert_eq!(check(s, NOW).unwrap().ts_ms, 5);
    }

    #[test]
    fn every_bad_sample_is_refused_with_a_reason() {
        let many: Vec<(String, String)> = (0..=MAX_LABELS)
            .map(|i| (format!("l{i}"), "v".to_owned()))
            .collect();
        let mut too_many = sample(1, "m", &[]);
        too_many.labels = many.clone();
        let mut at_limit = sample(1, "m", &[]);
        at_limit.labels = many[..MAX_LABELS].to_vec();
        assert!(check(at_limit, NOW).is_ok());
        let long_name = "m".repeat(MAX_NAME_LEN + 1);
        let long_value = "v".repeat(MAX_LABEL_VALUE_LEN + 1);
        let ok_value = "v".repeat(MAX_LABEL_VALUE_LEN);
        assert!(
            check(
                sample(1, &"m".repeat(MAX_NAME_LEN), &[("a", &ok_value)]),
                NOW
            )
            .is_ok()
        );
        let mut far = sample(1, "m", &[]);
        far.ts_ms = Some(MAX_TS_MS + 1);
        let mut early = sample(1, "m", &[]);
        early.ts_ms = Some(MIN_TS_MS - 1);
        let cases = [
            (sample(1, "cpu.utilization", &[]), "is not a metric name"),
            (sample(1, "", &[]), "is not a metric name"),
            (sample(1, "9x", &[]), "is not a metric name"),
            (sample(1, &long_name, &[]), "longer than 255"),
            (sample(1, "m", &[("a:b", "1")]), "is not a label name"),
            (
                sample(1, "m", &[(&long_name, "1")]),
                "label name of 256 bytes",
            ),
            (sample(1, "m", &[("a", &long_value)]), "longer than 1024"),
            (
                sample(1, "m", &[("a", "1"), ("a", "2")]),
                "label a given twice",
            ),
            (too_many, "31 labels, more than 30"),
            (far, "outside years 0 to 9999"),
            (early, "outside years 0 to 9999"),
        ];
        for (s, want) in cases {
            let e = check(s.clone(), NOW).unwrap_err();
            assert!(e.contains(want), "{s:?}: {e}");
        }
    }

    #[test]
    fn duplicates_are_errors_on_their_second_line_across_files_too() {
        let mut seen = Seen::default();
        let parsed = Parsed {
            samples: vec![
                sample(1, "m", &[("a", "1")]),
                sample(2, "m", &[("a", "2")]),
                sample(4, "m", &[("a", "1")]),
                // An empty label is no label: the same series as line 5's.
                sample(5, "n", &[]),
                sample(6, "n", &[("x", "")]),
            ],
            errors: vec![LineError {
                line: 3,
                reason: "syntax".into(),
            }],
        };
        let read = to_points(parsed, "a.prom", NOW, &mut seen);
        assert_eq!(read.points.len(), 3);
        let lines: Vec<usize> = read.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 6]);
        assert!(
            read.errors[1]
                .reason
                .contains("duplicate series m{a=\"1\"} (first on line 1)"),
            "{:?}",
            read.errors
        );
        let other = Parsed {
            samples: vec![sample(9, "m", &[("a", "2")])],
            errors: vec![],
        };
        let read = to_points(other, "b.prom", NOW, &mut seen);
        assert!(read.points.is_empty());
        assert!(
            read.errors[0].reason.contains("(first on a.prom line 2)"),
            "{:?}",
            read.errors
        );
    }

    #[test]
    fn at_most_max_series_are_taken_and_the_rest_reported_once() {
        let samples: Vec<Sample> = (0..MAX_SERIES + 5)
            .map(|i| sample(i + 1, &format!("m{i}"), &[]))
            .collect();
        let read = to_points(
            Parsed {
                samples,
                errors: vec![],
            },
            "x",
            NOW,
            &mut Seen::default(),
        );
        assert_eq!(read.points.len(), MAX_SERIES);
        assert_eq!(read.errors.len(), 1);
        assert_eq!(read.errors[0].line, MAX_SERIES + 1);
        assert!(
            read.errors[0].reason.contains("the 4 after it"),
            "{:?}",
            read.errors
        );
    }
}
