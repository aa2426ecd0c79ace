//! The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` lines,
//! samples `name{label="value",...} value [timestamp_ms]`. Pure: bytes in, samples and the
//! lines skipped (with why) out; a bad line never affects the others.
//!
//! Histogram and summary samples (`x_bucket{le=...}`, `x{quantile=...}`, `x_sum`, `x_count`)
//! are plain series. A `# TYPE` line a sample contradicts (a bare `x` of a histogram, a bucket
//! without `le`, `x_bucket` of a summary) makes that sample's line an error, as do a second
//! `# TYPE` for a name and one after the name's samples.

use super::{LineError, Parsed, Sample, numbered_lines};
use outpost_proto::Unit;
use std::collections::{HashMap, HashSet};

/// A metric family's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`: `x_bucket{le=}`, `x_sum`, `x_count`.
    Histogram,
    /// `summary`: `x{quantile=}`, `x_sum`, `x_count`.
    Summary,
    /// `untyped`
    Untyped,
}

impl Kind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "histogram" => Self::Histogram,
            "summary" => Self::Summary,
            "untyped" => Self::Untyped,
            _ => return None,
        })
    }
}

/// Whether `s` is a metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// Whether `s` is a label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A sample value: a float, `NaN`, `+Inf` or `-Inf` (as Go's `ParseFloat` reads them).
pub fn parse_value(s: &str) -> Option<f64> {
    // Rust reads the same spellings (`NaN`, `Inf`, `+Inf`, `-Inf`, any case); refuse what Go
    // would not: nothing here takes `_` or hex, and an empty string fails.
    if s.is_empty() || s.bytes().any(|b| b == b'_') {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Parse a whole file or command output.
pub fn parse(text: &[u8]) -> Parsed {
    let mut state = State::default();
    let mut out = Parsed::default();
    for (line, bytes) in numbered_lines(text) {
        let result = match std::str::from_utf8(bytes) {
            Ok(s) => state.line(s, line),
            Err(e) => Err(format!(
                "not valid UTF-8 (at byte {} of the line)",
                e.valid_up_to() + 1
            )),
        };
        match result {
            Ok(Some(sample)) => out.samples.push(sample),
            Ok(None) => {}
            Err(reason) => out.errors.push(LineError { line, reason }),
        }
    }
    out
}

#[derive(Default)]
struct State {
    /// Declared types, with the line of the declaration.
    types: HashMap<String, (Kind, usize)>,
    /// Names with a `# HELP` line.
    helps: HashSet<String>,
    /// Families with samples so far.
    sampled: HashSet<String>,
}

impl State {
    fn line(&mut self, s: &str, line: usize) -> Result<Option<Sample>, String> {
        let t = s.trim_start_matches([' ', '\t']);
        if t.trim_end_matches([' ', '\t']).is_empty() {
            return Ok(None);
        }
        if let Some(comment) = t.strip_prefix('#') {
            self.comment(comment, line)?;
            return Ok(None);
        }
        let sample = parse_sample(t, line)?;
        self.check_family(&sample)?;
        Ok(Some(sample))
    }

    /// `# HELP name text`, `# TYPE name type`; any other comment is ignored.
    fn comment(&mut self, c: &str, line: usize) -> Result<(), String> {
        let mut words = c.split([' ', '\t']).filter(|w| !w.is_empty());
        let keyword = words.next();
        if !matches!(keyword, Some("HELP" | "TYPE")) {
            return Ok(());
        }
        let Some(name) = words.next() else {
            return Err(format!("# {} without a metric name", keyword.unwrap_or("")));
        };
        if !is_metric_name(name) {
            return Err(format!("{name:?} is not a metric name"));
        }
        if keyword == Some("HELP") {
            if !self.helps.insert(name.to_owned()) {
                return Err(format!("a second HELP line for {name}"));
            }
            return Ok(());
        }
        let kind = match (words.next(), words.next()) {
            (Some(k), None) => Kind::parse(k).ok_or_else(|| {
                format!("unknown type {k:?} (counter, gauge, histogram, summary or untyped)")
            })?,
            (None, _) => return Err(format!("TYPE line for {name} without a type")),
            (Some(_), Some(extra)) => {
                return Err(format!("unexpected {extra:?} after the type of {name}"));
            }
        };
        if let Some((_, first)) = self.types.get(name) {
            return Err(format!(
                "a second TYPE line for {name} (first on line {first})"
            ));
        }
        if self.sampled.contains(name) {
            return Err(format!("TYPE line for {name} after its samples"));
        }
        self.types.insert(name.to_owned(), (kind, line));
        Ok(())
    }

    /// The family a sample belongs to, checked against its declared type.
    fn check_family(&mut self, sample: &Sample) -> Result<(), String> {
        let name = sample.name.as_str();
        let has = |label: &str| {
            sample
                .labels
                .iter()
                .find(|(k, _)| k == label)
                .map(|(_, v)| v.as_str())
        };
        let bound = |label: &str, family: &str, kind: &str| match has(label) {
            None => Err(format!("{kind} {family}: {name} without a {label:?} label")),
            Some(v) if parse_value(v).is_none() => {
                Err(format!("{kind} {family}: {label}={v:?} is not a number"))
            }
            Some(_) => Ok(()),
        };
        let family = match self.types.get(name).map(|(k, _)| *k) {
            Some(Kind::Histogram) => {
                return Err(format!(
                    "histogram {name} has only {name}_bucket, {name}_sum and {name}_count samples"
                ));
            }
            Some(Kind::Summary) => {
                bound("quantile", name, "summary")?;
                name
            }
            Some(_) => name,
            None => {
                let suffixed = ["_bucket", "_sum", "_count"]
                    .into_iter()
                    .find_map(|suffix| {
                        let base = name.strip_suffix(suffix)?;
                        let (kind, _) = self.types.get(base)?;
                        matches!(kind, Kind::Histogram | Kind::Summary)
                            .then_some((base, suffix, *kind))
                    });
                match suffixed {
                    Some((base, "_bucket", Kind::Histogram)) => {
                        bound("le", base, "histogram")?;
                        base
                    }
                    Some((base, "_bucket", _)) => {
                        return Err(format!("summary {base} has no {name} samples"));
                    }
                    Some((base, _, _)) => base,
                    None => name,
                }
            }
        };
        if !self.sampled.contains(family) {
            self.sampled.insert(family.to_owned());
        }
        Ok(())
    }
}

/// Parse `name{labels} value [timestamp]` (leading whitespace already removed).
fn parse_sample(s: &str, line: usize) -> Result<Sample, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let name_end = b
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b':'))
        .unwrap_or(b.len());
    let name = &s[..name_end];
    if !is_metric_name(name) {
        return Err(format!(
            "expected a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), found {:?}",
            first_word(s)
        ));
    }
    i += name_end;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    let mut labels: Vec<(String, String)> = Vec::new();
    if b.get(i) == Some(&b'{') {
        i += 1;
        loop {
            skip_ws(&mut i);
            if b.get(i) == Some(&b'}') {
                i += 1;
                break;
            }
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let label = &s[start..i];
            if !is_label_name(label) {
                return Err(format!(
                    "expected a label name ([a-zA-Z_][a-zA-Z0-9_]*) at column {}",
                    start + 1
                ));
            }
            skip_ws(&mut i);
            if b.get(i) != Some(&b'=') {
                return Err(format!("expected '=' after label {label}"));
            }
            i += 1;
            skip_ws(&mut i);
            if b.get(i) != Some(&b'"') {
                return Err(format!("expected '\"' to open the value of label {label}"));
            }
            i += 1;
            let (value, used) = unescape(&s[i..]).map_err(|e| format!("label {label}: {e}"))?;
            i += used;
            if labels.iter().any(|(k, _)| k == label) {
                return Err(format!("label {label} given twice"));
            }
            labels.push((label.to_owned(), value));
            skip_ws(&mut i);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return Err(format!("expected ',' or '}}' after label {label}")),
            }
        }
        skip_ws(&mut i);
    } else if i == name_end && i < b.len() {
        return Err(format!(
            "expected a space or '{{' after the metric name, found {:?}",
            first_word(&s[i..])
        ));
    }
    let mut words = s[i..].split([' ', '\t']).filter(|w| !w.is_empty());
    let value = match words.next() {
        None => return Err(format!("{name}: no value")),
        Some(v) => parse_value(v).ok_or_else(|| format!("{name}: {v:?} is not a number"))?,
    };
    let ts_ms = match words.next() {
        None => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| format!("{name}: timestamp {t:?} is not an integer (milliseconds)"))?,
        ),
    };
    if let Some(extra) = words.next() {
        return Err(format!("{name}: unexpected {extra:?} after the timestamp"));
    }
    Ok(Sample {
        line,
        name: name.to_owned(),
        labels,
        value,
        ts_ms,
        unit: Unit::None,
    })
}

/// The text up to the next whitespace, for error messages (at most 40 characters).
fn first_word(s: &str) -> String {
    s.split([' ', '\t'])
        .next()
        .unwrap_or("")
        .chars()
        .take(40)
        .collect()
}

/// A label value after its opening quote: the unescaped value and the bytes used, closing
/// quote included. Escapes: `\\`, `\"`, `\n`.
fn unescape(s: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, other)) => {
                    return Err(format!(
                        "unknown escape \\{other} (only \\\\, \\\" and \\n)"
                    ));
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("unterminated value (no closing '\"')".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Sample {
        let p = parse(text.as_bytes());
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.samples.len(), 1, "{p:?}");
        p.samples.into_iter().next().unwrap()
    }

    fn error(text: &str) -> LineError {
        let p = parse(text.as_bytes());
        assert_eq!(p.errors.len(), 1, "{text:?}: {p:?}");
        p.errors.into_iter().next().unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn samples_with_labels_values_and_timestamps() {
        let s = one("node_xyz{a=\"1\",b=\"two\"} 1.5 1700000000000\n");
        assert_eq!(s.name, "node_xyz");
        assert_eq!(s.labels, labels(&[("a", "1"), ("b", "two")]));
        assert_eq!(s.value, 1.5);
        assert_eq!(s.ts_ms, Some(1_700_000_000_000));
        assert_eq!(s.line, 1);
        assert_eq!(s.unit, Unit::None);

        let s = one("up 1");
        assert!(s.labels.is_empty());
        assert_eq!(s.ts_ms, None);
        // Whitespace around the parts, a trailing comma, empty braces, tabs, CRLF.
        let s = one("  x:y { a = \"v\" , } \t -2e3 \r\n");
        assert_eq!((s.name.as_str(), s.value), ("x:y", -2000.0));
        assert_eq!(s.labels, labels(&[("a", "v")]));
        assert!(one("m{} 0").labels.is_empty());
        assert_eq!(one("m{a=\"b\"}7").value, 7.0);
        assert_eq!(one("m -1 -5").ts_ms, Some(-5));
    }

    #[test]
    fn special_values() {
        assert!(one("m NaN").value.is_nan());
        assert_eq!(one("m +Inf").value, f64::INFINITY);
        assert_eq!(one("m -Inf").value, f64::NEG_INFINITY);
        assert_eq!(one("m Inf").value, f64::INFINITY);
        assert_eq!(parse_value("1_000"), None);
        assert_eq!(parse_value(""), None);
        assert_eq!(parse_value("0x10"), None);
    }

    #[test]
    fn label_value_escapes() {
        let s = one(r#"m{path="C:\\dir",q="say \"hi\"",nl="a\nb"} 1"#);
        assert_eq!(
            s.labels,
            labels(&[("path", "C:\\dir"), ("q", "say \"hi\""), ("nl", "a\nb")])
        );
        // A `}` or `,` inside a value is part of it.
        assert_eq!(one(r#"m{a="},{"} 1"#).labels, labels(&[("a", "},{")]));
        let e = error(r#"m{a="\t"} 1"#);
        assert!(e.reason.contains("unknown escape"), "{e:?}");
        let e = error(r#"m{a="open} 1"#);
        assert!(e.reason.contains("unterminated"), "{e:?}");
    }

    #[test]
    fn comments_help_and_type_lines() {
        let text =
            "# HELP m Some help with \\n escapes.\n# TYPE m gauge\n# just a comment\n#\n\nm 1\n";
        let p = parse(text.as_bytes());
        assert!(p.errors.is_empty(), "{p:?}");
        assert_eq!(p.samples.len(), 1);
        assert_eq!(p.samples[0].line, 6);
    }

    #[test]
    fn histograms_and_summaries_are_plain_series() {
        let text = r#"# TYPE h histogram
h_bucket{le="0.5"} 1
h_bucket{le="+Inf"} 3
h_sum 4.5
h_count 3
# TYPE s summary
s{quantile="0.99"} 0.2
s_sum 10
s_count 50
"#;
        let p = parse(text.as_bytes());
        assert!(p.errors.is_empty(), "{p:?}");
        let names: Vec<&str> = p.samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "h_bucket", "h_bucket", "h_sum", "h_count", "s", "s_sum", "s_count"
            ]
        );
    }

    #[test]
    fn type_lines_samples_contradict() {
        let cases = [
            ("# TYPE h histogram\nh 1\n", "has only h_bucket"),
            ("# TYPE h histogram\nh_bucket 1\n", "without a \"le\" label"),
            (
                "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n",
                "is not a number",
            ),
            ("# TYPE s summary\ns 1\n", "without a \"quantile\" label"),
            (
                "# TYPE s summary\ns_bucket{le=\"1\"} 1\n",
                "summary s has no s_bucket",
            ),
            (
                "# TYPE m gauge\n# TYPE m counter\n",
                "a second TYPE line for m (first on line 1)",
            ),
            ("m 1\n# TYPE m gauge\n", "TYPE line for m after its samples"),
            ("# TYPE m flux\n", "unknown type \"flux\""),
            ("# TYPE m\n", "without a type"),
            ("# TYPE m gauge extra\n", "unexpected \"extra\""),
            ("# TYPE 1m gauge\n", "not a metric name"),
            ("# TYPE\n", "without a metric name"),
            ("# HELP m a\n# HELP m b\n", "a second HELP line"),
        ];
        for (text, want) in cases {
            let e = error(text);
            assert!(e.reason.contains(want), "{text:?}: {e:?}");
        }
        // The error is on the contradicting line; the others stand.
        let p = parse(b"# TYPE h histogram\nh_sum 1\nh 2\nh_count 3\n");
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].line, 3);
        assert_eq!(p.samples.len(), 2);
        // A suffix of an undeclared or gauge family is its own untyped series.
        let p = parse(b"# TYPE g gauge\ng 1\ng_sum 2\nx_bucket 1\n");
        assert!(p.errors.is_empty(), "{p:?}");
    }

    #[test]
    fn every_bad_sample_line_is_reported_with_its_number() {
        let cases = [
            ("1m 1", "expected a metric name"),
            ("m-x 1", "expected a space or '{'"),
            ("m", "no value"),
            ("m{} ", "no value"),
            ("m one", "\"one\" is not a number"),
            ("m 1 soon", "timestamp \"soon\""),
            ("m 1 1.5", "timestamp \"1.5\""),
            ("m 1 2 3", "unexpected \"3\""),
            ("m{1a=\"x\"} 1", "expected a label name"),
            ("m{a-b=\"x\"} 1", "expected '=' after label a"),
            ("m{a} 1", "expected '=' after label a"),
            ("m{a=x} 1", "expected '\"'"),
            ("m{a=\"x\" b=\"y\"} 1", "expected ',' or '}'"),
            ("m{a=\"x\",a=\"y\"} 1", "label a given twice"),
            ("m{a=\"x\"", "expected ',' or '}'"),
        ];
        for (line, want) in cases {
            let text = format!("ok 1\n{line}\nok2 2\n");
            let p = parse(text.as_bytes());
            assert_eq!(p.samples.len(), 2, "{line:?}: {p:?}");
            assert_eq!(p.errors.len(), 1, "{line:?}: {p:?}");
            assert_eq!(p.errors[0].line, 2);
            assert!(
                p.errors[0].reason.contains(want),
                "{line:?}: {:?}",
                p.errors[0]
            );
        }
    }

    #[test]
    fn a_line_that_is_not_utf8_is_skipped() {
        let p = parse(b"a 1\nb{x=\"\xff\"} 2\nc 3\n");
        assert_eq!(p.samples.len(), 2);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].line, 2);
        assert!(p.errors[0].reason.contains("UTF-8"), "{:?}", p.errors);
    }

    #[test]
    fn names() {
        assert!(is_metric_name("a"));
        assert!(is_metric_name("_a:b_9"));
        assert!(is_metric_name(":x"));
        assert!(!is_metric_name(""));
        assert!(!is_metric_name("9a"));
        assert!(!is_metric_name("a.b"));
        assert!(!is_metric_name("a-b"));
        assert!(is_label_name("_x9"));
        assert!(!is_label_name("a:b"));
        assert!(!is_label_name("1"));
        assert!(!is_label_name(""));
    }

    #[test]
    fn empty_input_has_nothing() {
        assert_eq!(parse(b""), Parsed::default());
        assert_eq!(parse(b"\n\n  \n"), Parsed::default());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let p = parse(&bytes);
            for e in &p.errors {
                proptest::prop_assert!(e.line >= 1);
            }
        }

        #[test]
        fn never_panics_on_format_like_text(text in r#"([a-z_:{}="\\, \t\n#0-9.+-]|TYPE|HELP|NaN|Inf|le|quantile|histogram|summary|_bucket|_sum|_count){0,80}"#) {
            let p = parse(text.as_bytes());
            let lines = text.split('\n').count();
            for s in &p.samples {
                proptest::prop_assert!(s.line >= 1 && s.line <= lines);
            }
        }
    }
}
