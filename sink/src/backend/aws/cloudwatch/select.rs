//! Which series reach CloudWatch: the selection of `OUTPOST_CLOUDWATCH_METRICS`, its parser
//! and its match against a point's metric name and dimensions.
//!
//! Every published series is a billed custom metric, so the selection keeps the bill to the
//! series that alarms and dashboards use. The syntax:
//!
//! - `*` (or the variable unset): every series.
//! - Otherwise a comma-separated list of selectors, whitespace around each part ignored:
//!   - `name`: every dimension set of that metric, e.g. `memory.utilization`;
//!   - `name{key=value,...}`: exactly that set of the point's own dimensions (not counting
//!     `Host`, which the per-host scope adds), e.g. `cpu.utilization{cpu=total}`; `name{}` is
//!     the series without dimensions. Keys and values cannot contain `,`, `{`, `}`; a key
//!     cannot contain `=`.
//!
//! The selection never hides the dimensionless fleet totals ([`super::FLEET_TOTALS`]) or the
//! health check's `pipeline.*` metrics: [`aggregate`](super::aggregate()) and
//! [`super::CloudWatch::publish_values`] publish those whatever it says.

use std::collections::{BTreeMap, BTreeSet};

use super::names::{dimension_name_accepted, dimension_value_accepted, metric_name_accepted};

/// The value that selects every series.
pub const ALL_SERIES: &str = "*";

/// A selector of `OUTPOST_CLOUDWATCH_METRICS` that cannot be used; each names the item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// Nothing between two commas, or before the first or after the last.
    #[error("has an empty item (two commas in a row, or one at an end)")]
    Empty,
    /// `*` among other selectors.
    #[error("lists `*` (every series) together with other items; use `*` alone")]
    StarNotAlone,
    /// A `{` without its `}`, a `}` without its `{`, braces inside braces, or text after `}`.
    #[error("item `{item}` has unbalanced braces (expected `name` or `name{{key=value,...}}`)")]
    Unbalanced {
        /// The item.
        item: String,
    },
    /// A metric name CloudWatch does not accept.
    #[error(
        "item `{item}` does not start with a metric name CloudWatch accepts (1 to 255 characters)"
    )]
    BadName {
        /// The item.
        item: String,
    },
    /// A dimension that is not `key=value`.
    #[error("item `{item}`: `{pair}` is not key=value")]
    NotKeyValue {
        /// The item.
        item: String,
        /// The part between the braces.
        pair: String,
    },
    /// A dimension name or value CloudWatch does not accept, or the name `Host`.
    #[error(
        "item `{item}`: `{pair}` is not a dimension a point can have (name: 1 to 255 printable \
         ASCII characters, not starting with `:`, not `Host`; value: 1 to 1024 printable ASCII \
         characters)"
    )]
    BadDimension {
        /// The item.
        item: String,
        /// The dimension.
        pair: String,
    },
    /// The same dimension twice in one selector.
    #[error("item `{item}` names the dimension `{key}` twice")]
    DuplicateKey {
        /// The item.
        item: String,
        /// The dimension name.
        key: String,
    },
}

/// What a metric name's selectors select.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Series {
    /// Every dimension set.
    Every,
    /// These dimension sets, each as the canonical JSON of its object (keys sorted), the form
    /// of [`outpost_sink_core::ports::PointRow::dimensions`].
    Exactly(BTreeSet<String>),
}

/// The series that are published to CloudWatch (besides the fleet totals and the health
/// check's metrics, which always are). The default selects every series.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricSelection {
    /// `None`: every series.
    names: Option<BTreeMap<String, Series>>,
}

impl MetricSelection {
    /// Every series.
    pub fn all() -> Self {
        Self::default()
    }

    /// Parse the value of `OUTPOST_CLOUDWATCH_METRICS` (see the module's documentation).
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let text = text.trim();
        if text == ALL_SERIES {
            return Ok(Self::all());
        }
        let mut names: BTreeMap<String, Series> = BTreeMap::new();
        for item in split_items(text) {
            let item = item.trim();
            if item == ALL_SERIES {
                return Err(SelectorError::StarNotAlone);
            }
            let (name, dimensions) = parse_item(item)?;
            match dimensions {
                None => {
                    names.insert(name, Series::Every);
                }
                Some(json) => {
                    let series = names
                        .entry(name)
                        .or_insert_with(|| Series::Exactly(BTreeSet::new()));
                    if let Series::Exactly(sets) = series {
                        sets.insert(json);
                    }
                }
            }
        }
        Ok(Self { names: Some(names) })
    }

    /// Whether every series is selected.
    pub fn is_all(&self) -> bool {
        self.names.is_none()
    }

    /// Whether the series of metric `name` with the point's own dimensions `dimensions`
    /// (canonical JSON, keys sorted, as in [`outpost_sink_core::ports::PointRow::dimensions`]) is
    /// selected.
    pub fn selects(&self, name: &str, dimensions: &str) -> bool {
        let Some(names) = &self.names else {
            return true;
        };
        match names.get(name) {
            None => false,
            Some(Series::Every) => true,
            Some(Series::Exactly(sets)) => sets.contains(dimensions),
        }
    }
}

/// `text` split at the commas outside braces (a `}` without `{` does not nest; the item's
/// parser refuses it).
fn split_items(text: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
}

/// One trimmed item as its metric name and, for `name{...}`, the canonical JSON of its
/// dimensions.
fn parse_item(item: &str) -> Result<(String, Option<String>), SelectorError> {
    if item.is_empty() {
        return Err(SelectorError::Empty);
    }
    let unbalanced = || SelectorError::Unbalanced {
        item: item.to_owned(),
    };
    let (name, inner) = match item.split_once('{') {
        None if item.contains('}') => return Err(unbalanced()),
        None => (item, None),
        Some((name, rest)) => {
            let inner = rest.strip_suffix('}').ok_or_else(unbalanced)?;
            if inner.contains(['{', '}']) {
                return Err(unbalanced());
            }
            (name.trim_end(), Some(inner))
        }
    };
    if !metric_name_accepted(name) {
        return Err(SelectorError::BadName {
            item: item.to_owned(),
        });
    }
    let Some(inner) = inner else {
        return Ok((name.to_owned(), None));
    };
    let mut dimensions: BTreeMap<&str, &str> = BTreeMap::new();
    if !inner.trim().is_empty() {
        for pair in inner.split(',') {
            let pair = pair.trim();
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| SelectorError::NotKeyValue {
                    item: item.to_owned(),
                    pair: pair.to_owned(),
                })?;
            let (key, value) = (key.trim(), value.trim());
            if !dimension_name_accepted(key) || !dimension_value_accepted(value) {
                return Err(SelectorError::BadDimension {
                    item: item.to_owned(),
                    pair: pair.to_owned(),
                });
            }
            if dimensions.insert(key, value).is_some() {
                return Err(SelectorError::DuplicateKey {
                    item: item.to_owned(),
                    key: key.to_owned(),
                });
            }
        }
    }
    // Serializing a map of strings cannot fail; the fallback is never taken.
    let json = serde_json::to_string(&dimensions).unwrap_or_default();
    Ok((name.to_owned(), Some(json)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> MetricSelection {
        MetricSelection::parse(text).unwrap()
    }

    #[test]
    fn star_and_default_select_everything() {
        for selection in [MetricSelection::default(), parse("*"), parse("  * ")] {
            assert!(selection.is_all());
            assert!(selection.selects("anything", "{}"));
            assert!(selection.selects("disk.utilization", r#"{"mount":"/"}"#));
        }
    }

    #[test]
    fn a_name_selects_every_dimension_set() {
        let s = parse("memory.utilization, disk.utilization ");
        assert!(!s.is_all());
        assert!(s.selects("memory.utilization", "{}"));
        assert!(s.selects("disk.utilization", r#"{"mount":"/"}"#));
        assert!(s.selects("disk.utilization", r#"{"mount":"/var"}"#));
        assert!(!s.selects("memory.used_bytes", "{}"));
        assert!(!s.selects("disk", r#"{"mount":"/"}"#));
    }

    #[test]
    fn a_name_with_dimensions_selects_exactly_that_set() {
        let s =
            parse(" cpu.utilization{cpu=total} ,disk.utilization{ mount = / , device=sda1 },up{}");
        assert!(s.selects("cpu.utilization", r#"{"cpu":"total"}"#));
        assert!(!s.selects("cpu.utilization", r#"{"cpu":"0"}"#));
        assert!(!s.selects("cpu.utilization", "{}"));
        assert!(s.selects("disk.utilization", r#"{"device":"sda1","mount":"/"}"#));
        assert!(!s.selects("disk.utilization", r#"{"mount":"/"}"#));
        assert!(!s.selects(
            "disk.utilization",
            r#"{"device":"sda1","fs":"ext4","mount":"/"}"#
        ));
        assert!(s.selects("up", "{}"));
        assert!(!s.selects("up", r#"{"cpu":"total"}"#));
    }

    #[test]
    fn sets_of_one_name_add_up_and_a_bare_name_wins() {
        let s = parse("cpu.utilization{cpu=0},cpu.utilization{cpu=1}");
        assert!(s.selects("cpu.utilization", r#"{"cpu":"0"}"#));
        assert!(s.selects("cpu.utilization", r#"{"cpu":"1"}"#));
        assert!(!s.selects("cpu.utilization", r#"{"cpu":"total"}"#));
        for text in [
            "cpu.utilization{cpu=0},cpu.utilization",
            "cpu.utilization,cpu.utilization{cpu=0}",
        ] {
            assert!(parse(text).selects("cpu.utilization", r#"{"cpu":"total"}"#));
        }
    }

    #[test]
    fn values_may_hold_an_equals_sign_and_odd_names_are_names() {
        let s = parse("m{k=a=b},log lines");
        assert!(s.selects("m", r#"{"k":"a=b"}"#));
        assert!(s.selects("log lines", "{}"));
    }

    #[test]
    fn bad_selectors_name_the_item() {
        let long = format!("{}{{a=b}}", "n".repeat(256));
        let cases: Vec<(&str, SelectorError)> = vec![
            ("", SelectorError::Empty),
            ("a,,b", SelectorError::Empty),
            ("a,", SelectorError::Empty),
            (" , a", SelectorError::Empty),
            ("a,*", SelectorError::StarNotAlone),
            (
                "cpu{cpu=total",
                SelectorError::Unbalanced {
                    item: "cpu{cpu=total".into(),
                },
            ),
            (
                "a, cpu{cpu=total,b",
                SelectorError::Unbalanced {
                    item: "cpu{cpu=total,b".into(),
                },
            ),
            (
                "cpu}",
                SelectorError::Unbalanced {
                    item: "cpu}".into(),
                },
            ),
            (
                "cpu{a=b}x",
                SelectorError::Unbalanced {
                    item: "cpu{a=b}x".into(),
                },
            ),
            (
                "cpu{a={b}}",
                SelectorError::Unbalanced {
                    item: "cpu{a={b}}".into(),
                },
            ),
            (
                "{cpu=total}",
                SelectorError::BadName {
                    item: "{cpu=total}".into(),
                },
            ),
            (&long, SelectorError::BadName { item: long.clone() }),
            (
                "cpu{total}",
                SelectorError::NotKeyValue {
                    item: "cpu{total}".into(),
                    pair: "total".into(),
                },
            ),
            (
                "cpu{a=b,}",
                SelectorError::NotKeyValue {
                    item: "cpu{a=b,}".into(),
                    pair: String::new(),
                },
            ),
            (
                "cpu{Host=web-1}",
                SelectorError::BadDimension {
                    item: "cpu{Host=web-1}".into(),
                    pair: "Host=web-1".into(),
                },
            ),
            (
                "cpu{cpu=}",
                SelectorError::BadDimension {
                    item: "cpu{cpu=}".into(),
                    pair: "cpu=".into(),
                },
            ),
            (
                "disk{mount=/médias}",
                SelectorError::BadDimension {
                    item: "disk{mount=/médias}".into(),
                    pair: "mount=/médias".into(),
                },
            ),
            (
                "cpu{cpu=0, cpu=1}",
                SelectorError::DuplicateKey {
                    item: "cpu{cpu=0, cpu=1}".into(),
                    key: "cpu".into(),
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                MetricSelection::parse(text),
                Err(expected.clone()),
                "{text}"
            );
            let message = expected.to_string();
            if let SelectorError::Unbalanced { item }
            | SelectorError::BadName { item }
            | SelectorError::NotKeyValue { item, .. }
            | SelectorError::BadDimension { item, .. }
            | SelectorError::DuplicateKey { item, .. } = &expected
            {
                assert!(message.contains(&format!("`{item}`")), "{message}");
            }
        }
    }
}
