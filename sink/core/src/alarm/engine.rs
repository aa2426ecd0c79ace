//! The alarm engine: reads the last N periods of every rule through the core's ports (the
//! hosts from [`MetricStore::hosts`], the series from [`SeriesReader::series`]) and applies the
//! pure evaluator to the [`AlarmBook`]. Where the store is and when to tick is the caller's
//! business (the sink's `serve --rules` task).
//!
//! Each evaluation recomputes the whole window from the store instead of updating on ingest,
//! so a batch that arrives late (an agent that was offline and replays its spool) still counts
//! at the next evaluation as long as its period is inside the window.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::alarm::book::{AlarmBook, AlarmKey, Transition};
use crate::alarm::eval::{self, AlarmState};
use crate::alarm::rules::{Rules, Scope};
use crate::error::StorageError;
use crate::ports::{MetricStore, SeriesQuery, SeriesReader};

/// `(ts_ms, value)` samples with a value.
type Samples = Vec<(i64, f64)>;

/// What one alarm is evaluated on: read by [`read_inputs`], applied by [`apply`].
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// The alarm: its rule's name and, for a per-host rule, the host.
    key: AlarmKey,
    /// Index of its rule in [`Rules::rules`].
    rule: usize,
    /// The samples of the rule's metric.
    samples: Samples,
    /// For a rule with a denominator, the denominator's samples.
    denominator: Option<Samples>,
}

/// Milliseconds of `d`, saturating.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Read what every alarm of `rules` is evaluated on at `now_ms`: per rule, the metric of every
/// host, then the denominator (if any) of every host, over the same dimensions and window.
pub async fn read_inputs<S>(
    rules: &Rules,
    store: &S,
    now_ms: i64,
) -> Result<Vec<Input>, StorageError>
where
    S: MetricStore + SeriesReader,
{
    let hosts: Vec<String> = store.hosts().await?.into_iter().map(|h| h.host).collect();
    let delay = millis(rules.delay);
    let mut queries = Vec::with_capacity(rules.rules.len() * hosts.len() * 2);
    for rule in &rules.rules {
        let end = eval::window_end(now_ms, delay, rule.period_ms);
        let dimensions = serde_json::to_string(&rule.dimensions).unwrap_or_default();
        for name in std::iter::once(&rule.metric).chain(&rule.denominator) {
            for host in &hosts {
                queries.push(SeriesQuery {
                    host: host.clone(),
                    name: name.clone(),
                    dimensions: dimensions.clone(),
                    from_ms: end - i64::from(rule.evaluation_periods) * rule.period_ms,
                    to_ms: end,
                });
            }
        }
    }
    let mut series = store.series(queries).await?.into_iter();
    let mut next_per_host = || -> BTreeMap<&String, Samples> {
        hosts
            .iter()
            .map(|host| {
                let points = series.next().unwrap_or_default();
                let samples = points
                    .into_iter()
                    .filter_map(|(ts, v)| v.map(|v| (ts, v)))
                    .collect();
                (host, samples)
            })
            .collect()
    };
    let mut inputs = Vec::new();
    for (index, rule) in rules.rules.iter().enumerate() {
        let metric = next_per_host();
        let mut denominator = rule.denominator.as_ref().map(|_| next_per_host());
        match rule.scope {
            Scope::PerHost => {
                for (host, samples) in metric {
                    let of_host = denominator
                        .as_mut()
                        .map(|d| d.remove(host).unwrap_or_default());
                    inputs.push(Input {
                        key: (rule.name.clone(), Some(host.clone())),
                        rule: index,
                        samples,
                        denominator: of_host,
                    });
                }
            }
            Scope::Fleet => {
                let all = |by_host: BTreeMap<&String, Samples>| {
                    by_host.into_values().flatten().collect::<Samples>()
                };
                inputs.push(Input {
                    key: (rule.name.clone(), None),
                    rule: index,
                    samples: all(metric),
                    denominator: denominator.map(all),
                });
            }
        }
    }
    Ok(inputs)
}

/// Evaluate every input at `now_ms` and record the outcomes in `book`; the state changes.
pub fn apply(
    rules: &Rules,
    book: &mut AlarmBook,
    inputs: Vec<Input>,
    now_ms: i64,
) -> Vec<Transition> {
    let delay = millis(rules.delay);
    let mut transitions = Vec::new();
    for input in inputs {
        let rule = &rules.rules[input.rule];
        let end = eval::window_end(now_ms, delay, rule.period_ms);
        let points = match &input.denominator {
            Some(d) => eval::ratio_datapoints(rule, end, &input.samples, d),
            None => eval::datapoints(rule, end, &input.samples),
        };
        let window: Vec<Option<f64>> = points.iter().map(|d| d.value).collect();
        let current: AlarmState = book.state(&input.key);
        let outcome = eval::evaluate(rule, &window, current);
        transitions.extend(book.apply(&input.key, outcome, points, now_ms));
    }
    transitions
}
