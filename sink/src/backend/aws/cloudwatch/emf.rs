//! Embedded Metric Format: the JSON lines that carry statistic sets through CloudWatch Logs.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::aggregate::StatisticSet;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::aws::cloudwatch::MINUTE_MS;
    use crate::backend::aws::cloudwatch::test_support::{T0, parse, per_host, point, set, write};

    #[test]
    fn emf_line_structure() {
        let agg = per_host(&write(vec![
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
    fn emf_dimensionless_sets_have_an_empty_dimension_set() {
        let sets = [
            set("log.lines", &[], T0, vec![15.0, 9.0]),
            set("agent.heartbeat", &[], T0, vec![1.0]),
            set("log.lines", &[("service", "api")], T0, vec![10.0]),
        ];
        let lines = emf_lines("Outpost", &sets);
        assert_eq!(lines.len(), 2);
        let totals = parse(&lines[0]);
        assert_eq!(
            totals,
            json!({
                "_aws": {
                    "Timestamp": T0,
                    "CloudWatchMetrics": [{
                        "Namespace": "Outpost",
                        "Dimensions": [[]],
                        "Metrics": [
                            {"Name": "log.lines", "Unit": "Count"},
                            {"Name": "agent.heartbeat", "Unit": "Count"},
                        ],
                    }],
                },
                "log.lines": [15.0, 9.0],
                "agent.heartbeat": [1.0],
            })
        );
        let per_service = parse(&lines[1]);
        assert_eq!(
            per_service["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["service"]])
        );
        assert_eq!(per_service["service"], "api");
    }
}
