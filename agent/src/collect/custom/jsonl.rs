//! JSON lines: one object per line,
//! `{"name": "...", "value": 1.5, "labels": {"k": "v"}, "unit": "Count", "ts_ms": 1700000000000}`
//! (`labels`, `unit` and `ts_ms` optional). Pure: bytes in, samples and the lines skipped out.

use super::{LineError, Parsed, Sample, numbered_lines};
use outpost_proto::Unit;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The units a line may name: CloudWatch's names, as the sink publishes them.
pub const UNITS: &[Unit] = &[
    Unit::None,
    Unit::Percent,
    Unit::Bytes,
    Unit::BytesPerSecond,
    Unit::Seconds,
    Unit::Count,
    Unit::CountPerSecond,
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    name: String,
    value: f64,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    ts_ms: Option<i64>,
}

/// The unit named `s` (`"Count"`, `"Bytes/Second"`, ...).
pub fn parse_unit(s: &str) -> Option<Unit> {
    UNITS.iter().copied().find(|u| u.as_str() == s)
}

/// Parse a whole output. Blank lines are skipped.
pub fn parse(text: &[u8]) -> Parsed {
    let mut out = Parsed::default();
    for (line, bytes) in numbered_lines(text) {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(bytes, line) {
            Ok(sample) => out.samples.push(sample),
            Err(reason) => out.errors.push(LineError { line, reason }),
        }
    }
    out
}

fn parse_line(bytes: &[u8], line: usize) -> Result<Sample, String> {
    let l: Line = serde_json::from_slice(bytes).map_err(|e| {
        // serde_json says "... at line 1 column N": the line is always 1 here.
        let text = e.to_string();
        let what = text.split(" at line ").next().unwrap_or(&text).to_owned();
        format!("{what} (column {})", e.column())
    })?;
    let unit = match &l.unit {
        None => Unit::None,
        Some(u) => parse_unit(u).ok_or_else(|| {
            let known: Vec<&str> = UNITS.iter().map(|u| u.as_str()).collect();
            format!("unknown unit {u:?} (one of {})", known.join(", "))
        })?,
    };
    Ok(Sample {
        line,
        name: l.name,
        labels: l.labels.into_iter().collect(),
        value: l.value,
        ts_ms: l.ts_ms,
        unit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_line_and_a_minimal_one() {
        let text = br#"{"name": "app_queue", "value": 1.5, "labels": {"q": "mail", "a": "x"}, "unit": "Count", "ts_ms": 1700000000000}

{"name":"up","value":1}
"#;
        let p = parse(text);
        assert!(p.errors.is_empty(), "{p:?}");
        assert_eq!(p.samples.len(), 2);
        let s = &p.samples[0];
        assert_eq!(
            (s.name.as_str(), s.value, s.unit),
            ("app_queue", 1.5, Unit::Count)
        );
        assert_eq!(
            s.labels,
            [
                ("a".to_owned(), "x".to_owned()),
                ("q".to_owned(), "mail".to_owned())
            ]
        );
        assert_eq!(s.ts_ms, Some(1_700_000_000_000));
        let s = &p.samples[1];
        assert_eq!((s.line, s.unit, s.ts_ms), (3, Unit::None, None));
        assert!(s.labels.is_empty());
    }

    #[test]
    fn every_unit_name_is_accepted() {
        for u in UNITS {
            let text = format!("{{\"name\":\"m\",\"value\":1,\"unit\":\"{}\"}}", u.as_str());
            assert_eq!(parse(text.as_bytes()).samples[0].unit, *u);
        }
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let cases = [
            (r#"{"name":"m"}"#, "missing field `value`"),
            (r#"{"value":1}"#, "missing field `name`"),
            (r#"{"name":"m","value":"1"}"#, "invalid type"),
            (
                r#"{"name":"m","value":1,"unit":"Furlongs"}"#,
                "unknown unit \"Furlongs\"",
            ),
            (
                r#"{"name":"m","value":1,"colour":"red"}"#,
                "unknown field `colour`",
            ),
            (r#"{"name":"m","value":1,"labels":{"a":1}}"#, "invalid type"),
            (r#"{"name":"m","value":1,"ts_ms":1.5}"#, "invalid type"),
            (r#"{"name":"m","value":1e999}"#, "number out of range"),
            (r#"{"name":"m","value":1} x"#, "trailing characters"),
            ("m 1", "expected value"),
        ];
        for (line, want) in cases {
            let text = format!("{{\"name\":\"ok\",\"value\":1}}\n{line}\n");
            let p = parse(text.as_bytes());
            assert_eq!(p.samples.len(), 1, "{line:?}: {p:?}");
            assert_eq!(p.errors.len(), 1, "{line:?}: {p:?}");
            assert_eq!(p.errors[0].line, 2);
            assert!(
                p.errors[0].reason.contains(want),
                "{line:?}: {:?}",
                p.errors[0]
            );
            assert!(!p.errors[0].reason.contains("at line"), "{:?}", p.errors[0]);
        }
        let p = parse(b"{\"name\":\"m\",\"value\":1,\"labels\":{\"a\":\"\xff\"}}\n");
        assert_eq!(p.errors.len(), 1, "{p:?}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn never_panics_on_json_like_text(text in r#"([{}\[\]":,\n ]|name|value|labels|unit|ts_ms|Count|[0-9.e+-]){0,60}"#) {
            let _ = parse(text.as_bytes());
        }
    }
}
