//! The pure alarm evaluator: points become one datapoint per period (for a rule with a
//! denominator, the guarded percentage of two metrics' sums), the last N datapoints and the
//! missing-data policy become a state and a reason. No clock, no I/O: time is passed in.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::alarm::rules::{Comparison, MissingData, Rule, Statistic};

/// An alarm's state, spelled as CloudWatch spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    /// The metric is within the threshold.
    Ok,
    /// The metric breached the threshold (M of the last N datapoints).
    Alarm,
    /// Not enough data to decide; every alarm starts here.
    InsufficientData,
}

impl AlarmState {
    /// `OK`, `ALARM`, `INSUFFICIENT_DATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One period's datapoint: its start and the statistic of its values, `None` when it had none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Datapoint {
    /// Start of the period, unix milliseconds.
    pub start_ms: i64,
    /// The statistic, or `None` (missing).
    pub value: Option<f64>,
}

/// The result of evaluating one alarm once.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The state the alarm should be in.
    pub state: AlarmState,
    /// Why, in CloudWatch's StateReason style.
    pub reason: String,
}

/// The statistic of `values`, `None` when there are none.
pub fn aggregate(statistic: Statistic, values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let sum = || values.iter().sum::<f64>();
    Some(match statistic {
        Statistic::Avg => sum() / values.len() as f64,
        Statistic::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Statistic::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        Statistic::Sum => sum(),
        Statistic::Count => values.len() as f64,
    })
}

/// Start of the last complete period at `now_ms - delay_ms`: periods are aligned to the unix
/// epoch, as CloudWatch aligns them, so every alarm sees the same boundaries.
pub fn window_end(now_ms: i64, delay_ms: i64, period_ms: i64) -> i64 {
    (now_ms.saturating_sub(delay_ms)).div_euclid(period_ms) * period_ms
}

/// The samples of each of the `rule.evaluation_periods` periods ending at `end_ms` (exclusive),
/// oldest first. Samples outside the window and non-finite values are skipped.
fn buckets(rule: &Rule, end_ms: i64, samples: &[(i64, f64)]) -> Vec<Vec<f64>> {
    let start_ms = end_ms - i64::from(rule.evaluation_periods) * rule.period_ms;
    let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); rule.evaluation_periods as usize];
    for &(ts_ms, value) in samples {
        if ts_ms < start_ms || ts_ms >= end_ms || !value.is_finite() {
            continue;
        }
        let index = (ts_ms - start_ms) / rule.period_ms;
        if let Some(bucket) = usize::try_from(index).ok().and_then(|i| buckets.get_mut(i)) {
            bucket.push(value);
        }
    }
    buckets
}

/// The datapoints with `values` (one per period, oldest first) of the window ending at `end_ms`.
fn with_starts(
    rule: &Rule,
    end_ms: i64,
    values: impl Iterator<Item = Option<f64>>,
) -> Vec<Datapoint> {
    let start_ms = end_ms - i64::from(rule.evaluation_periods) * rule.period_ms;
    values
        .enumerate()
        .map(|(i, value)| Datapoint {
            start_ms: start_ms + i as i64 * rule.period_ms,
            value,
        })
        .collect()
}

/// The `rule.evaluation_periods` datapoints of the periods ending at `end_ms` (exclusive),
/// oldest first, from `(ts_ms, value)` samples in any order. Samples outside the window and
/// non-finite values are skipped.
pub fn datapoints(rule: &Rule, end_ms: i64, samples: &[(i64, f64)]) -> Vec<Datapoint> {
    let buckets = buckets(rule, end_ms, samples);
    with_starts(
        rule,
        end_ms,
        buckets
            .iter()
            .map(|values| aggregate(rule.statistic, values)),
    )
}

/// The datapoint of a rule with a denominator, from the statistics `n` (of the metric) and `d`
/// (of the denominator) of one period, guarded against division by zero exactly as the
/// CloudWatch expression `IF(d > 0, 100 * n / d, 0)`:
///
/// - neither has data: missing (`None`; the rule's missing-data policy applies);
/// - `d` present and above 0: `100 × n / d`, a missing `n` counting as 0;
/// - otherwise (`d` is 0, negative or missing while `n` is present): 0.
pub fn guarded_ratio(n: Option<f64>, d: Option<f64>) -> Option<f64> {
    match (n, d) {
        (None, None) => None,
        (n, Some(d)) if d > 0.0 => Some(100.0 * n.unwrap_or(0.0) / d),
        _ => Some(0.0),
    }
}

/// Like [`datapoints`] for a rule with a denominator: each period's datapoint is the
/// [`guarded_ratio`] of the rule's statistic over the period's `numerator` samples and over its
/// `denominator` samples (same dimensions and host(s)).
pub fn ratio_datapoints(
    rule: &Rule,
    end_ms: i64,
    numerator: &[(i64, f64)],
    denominator: &[(i64, f64)],
) -> Vec<Datapoint> {
    let n = buckets(rule, end_ms, numerator);
    let d = buckets(rule, end_ms, denominator);
    with_starts(
        rule,
        end_ms,
        n.iter().zip(&d).map(|(n, d)| {
            guarded_ratio(aggregate(rule.statistic, n), aggregate(rule.statistic, d))
        }),
    )
}

/// Whether `value` breaches `threshold` under `comparison`.
pub fn breaches(comparison: Comparison, value: f64, threshold: f64) -> bool {
    match comparison {
        Comparison::Greater => value > threshold,
        Comparison::GreaterOrEqual => value >= threshold,
        Comparison::Less => value < threshold,
        Comparison::LessOrEqual => value <= threshold,
    }
}

fn comparison_text(comparison: Comparison) -> &'static str {
    match comparison {
        Comparison::Greater => "greater than",
        Comparison::GreaterOrEqual => "greater than or equal to",
        Comparison::Less => "less than",
        Comparison::LessOrEqual => "less than or equal to",
    }
}

fn policy_text(policy: MissingData) -> &'static str {
    match policy {
        MissingData::Missing => "missing",
        MissingData::Breaching => "breaching",
        MissingData::NotBreaching => "not_breaching",
        MissingData::Ignore => "ignore",
    }
}

/// The state of an alarm whose last N datapoints (oldest first) are `window`, currently in
/// `current`. The rules (CloudWatch's, `docs/alarms.md`):
///
/// - `breaching` / `not_breaching`: a missing datapoint counts as breaching / not breaching;
///   ALARM when at least M of the N breach, else OK.
/// - `missing` / `ignore`: missing datapoints are left out. When all N are missing, `missing`
///   gives INSUFFICIENT_DATA and `ignore` keeps `current`. Otherwise ALARM when at least M
///   present datapoints breach, or when the oldest breaching datapoint is at least M periods
///   old and every newer datapoint breaches or is missing (CloudWatch's rule that avoids a
///   premature return to OK when data stops arriving); else OK.
pub fn evaluate(rule: &Rule, window: &[Option<f64>], current: AlarmState) -> Outcome {
    let m = rule.datapoints_to_alarm as usize;
    let n = window.len();
    let breach = |v: f64| breaches(rule.comparison, v, rule.threshold);
    let present = window.iter().flatten().count();
    let policy = rule.missing_data;
    let threshold = rule.threshold;
    let compared = comparison_text(rule.comparison);
    let breaching = match policy {
        MissingData::Breaching => window.iter().filter(|d| d.is_none_or(breach)).count(),
        _ => window.iter().flatten().filter(|&&v| breach(v)).count(),
    };
    if present == 0 && matches!(policy, MissingData::Missing | MissingData::Ignore) {
        let state = if policy == MissingData::Missing {
            AlarmState::InsufficientData
        } else {
            current
        };
        return Outcome {
            state,
            reason: format!(
                "Insufficient Data: no datapoints in the last {n} periods \
                 (treat missing data: {})",
                policy_text(policy)
            ),
        };
    }
    // Age 1 is the newest datapoint.
    let premature = matches!(policy, MissingData::Missing | MissingData::Ignore)
        && window
            .iter()
            .position(|d| d.is_some_and(breach))
            .is_some_and(|oldest| {
                n - oldest >= m && window[oldest..].iter().all(|d| d.is_none_or(breach))
            });
    let considered = match policy {
        MissingData::Breaching | MissingData::NotBreaching => n,
        _ => present,
    };
    let alarm = breaching >= m || premature;
    let state = if alarm {
        AlarmState::Alarm
    } else {
        AlarmState::Ok
    };
    let reason = if alarm && breaching < m {
        format!(
            "Threshold Crossed: {breaching} datapoint(s) {compared} the threshold ({threshold}), \
             the oldest at least {m} periods old, and no newer datapoint within it"
        )
    } else {
        format!(
            "Threshold Crossed: {breaching} out of the last {considered} datapoints were \
             {compared} the threshold ({threshold}) (minimum {m} datapoints for ALARM)"
        )
    };
    Outcome {
        state,
        reason: format!("{reason}{}", reason_suffix(policy, n - present)),
    }
}

fn reason_suffix(policy: MissingData, missing: usize) -> String {
    if missing == 0 {
        String::new()
    } else {
        format!(
            "; {missing} missing datapoint(s) treated as {}",
            policy_text(policy)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::rules::Scope;
    use proptest::prelude::*;

    fn rule(m: u32, n: u32, missing_data: MissingData) -> Rule {
        Rule {
            name: "r".into(),
            metric: "cpu.utilization".into(),
            denominator: None,
            dimensions: Default::default(),
            statistic: Statistic::Avg,
            period_ms: 1_000,
            comparison: Comparison::Greater,
            threshold: 50.0,
            datapoints_to_alarm: m,
            evaluation_periods: n,
            missing_data,
            scope: Scope::PerHost,
        }
    }

    const X: Option<f64> = Some(90.0);
    const O: Option<f64> = Some(10.0);
    const NA: Option<f64> = None;

    fn state(m: u32, policy: MissingData, window: &[Option<f64>]) -> AlarmState {
        let r = rule(m, window.len() as u32, policy);
        evaluate(&r, window, AlarmState::Ok).state
    }

    use AlarmState::{Alarm, InsufficientData, Ok as Fine};
    use MissingData::{Breaching, Ignore, Missing, NotBreaching};

    #[test]
    fn the_cloudwatch_table_for_3_of_3() {
        // Rows of CloudWatch's "how alarm state is evaluated when data is missing" for a
        // 3-of-3 alarm, restricted to the last 3 periods (no look-back; see docs/alarms.md).
        let all = [Missing, Ignore, Breaching, NotBreaching];
        let expect = |window: &[Option<f64>], states: [AlarmState; 4]| {
            for (policy, expected) in all.iter().zip(states) {
                assert_eq!(state(3, *policy, window), expected, "{window:?} {policy:?}");
            }
        };
        expect(&[O, X, X], [Fine, Fine, Fine, Fine]);
        expect(&[X, X, X], [Alarm, Alarm, Alarm, Alarm]);
        expect(&[NA, NA, NA], [InsufficientData, Fine, Alarm, Fine]);
        expect(&[O, NA, NA], [Fine, Fine, Fine, Fine]);
        expect(&[X, NA, NA], [Alarm, Alarm, Alarm, Fine]);
        expect(&[NA, X, NA], [Fine, Fine, Alarm, Fine]);
        expect(&[X, X, NA], [Alarm, Alarm, Alarm, Fine]);
    }

    #[test]
    fn ignore_keeps_the_current_state_only_when_everything_is_missing() {
        let r = rule(1, 2, Ignore);
        for current in [Fine, Alarm, InsufficientData] {
            assert_eq!(evaluate(&r, &[NA, NA], current).state, current);
        }
        assert_eq!(evaluate(&r, &[NA, O], Alarm).state, Fine);
    }

    #[test]
    fn comparisons_at_the_threshold() {
        assert!(breaches(Comparison::GreaterOrEqual, 5.0, 5.0));
        assert!(!breaches(Comparison::Greater, 5.0, 5.0));
        assert!(breaches(Comparison::LessOrEqual, 5.0, 5.0));
        assert!(!breaches(Comparison::Less, 5.0, 5.0));
    }

    #[test]
    fn statistics() {
        let v = [1.0, 2.0, 6.0];
        assert_eq!(aggregate(Statistic::Avg, &v), Some(3.0));
        assert_eq!(aggregate(Statistic::Max, &v), Some(6.0));
        assert_eq!(aggregate(Statistic::Min, &v), Some(1.0));
        assert_eq!(aggregate(Statistic::Sum, &v), Some(9.0));
        assert_eq!(aggregate(Statistic::Count, &v), Some(3.0));
        assert_eq!(aggregate(Statistic::Count, &[]), None);
    }

    #[test]
    fn samples_fall_in_epoch_aligned_half_open_periods() {
        let mut r = rule(1, 3, Missing);
        r.statistic = Statistic::Max;
        assert_eq!(window_end(10_999, 0, 1_000), 10_000);
        assert_eq!(window_end(11_000, 500, 1_000), 10_000);
        assert_eq!(window_end(-1, 0, 1_000), -1_000);
        let samples = [
            (6_999, 100.0),    // before the window
            (7_000, 1.0),      // first period, its first millisecond
            (7_999, 2.0),      // first period, its last millisecond
            (9_500, f64::NAN), // not finite: skipped
            (10_000, 100.0),   // the current, incomplete period: not evaluated
        ];
        let points = datapoints(&r, 10_000, &samples);
        assert_eq!(
            points,
            [
                Datapoint {
                    start_ms: 7_000,
                    value: Some(2.0)
                },
                Datapoint {
                    start_ms: 8_000,
                    value: None
                },
                Datapoint {
                    start_ms: 9_000,
                    value: None
                },
            ]
        );
    }

    #[test]
    fn reasons_name_the_counts_and_the_threshold() {
        let r = rule(2, 3, Missing);
        let outcome = evaluate(&r, &[X, O, X], Fine);
        assert_eq!(outcome.state, Alarm);
        assert!(
            outcome.reason.starts_with(
                "Threshold Crossed: 2 out of the last 3 datapoints were greater than the threshold (50)"
            ),
            "{}",
            outcome.reason
        );
        let outcome = evaluate(&r, &[NA, NA, NA], Fine);
        assert!(
            outcome
                .reason
                .contains("no datapoints in the last 3 periods")
        );
    }

    #[test]
    fn the_ratio_is_guarded_like_the_cloudwatch_expression() {
        // IF(d > 0, 100 * n / d, 0), and missing only when neither series has data.
        assert_eq!(guarded_ratio(Some(3.0), Some(60.0)), Some(5.0));
        assert_eq!(guarded_ratio(None, Some(60.0)), Some(0.0));
        assert_eq!(guarded_ratio(Some(0.0), Some(0.0)), Some(0.0));
        assert_eq!(guarded_ratio(Some(4.0), Some(0.0)), Some(0.0));
        assert_eq!(guarded_ratio(None, Some(0.0)), Some(0.0));
        assert_eq!(guarded_ratio(Some(4.0), None), Some(0.0));
        assert_eq!(guarded_ratio(Some(1.0), Some(-2.0)), Some(0.0));
        assert_eq!(guarded_ratio(None, None), None);
    }

    #[test]
    fn ratio_datapoints_divide_the_sums_of_each_period() {
        let mut r = rule(1, 4, Missing);
        r.statistic = Statistic::Sum;
        r.denominator = Some("log.lines".into());
        let errors = [(6_000, 1.0), (6_500, 2.0), (8_100, 7.0), (9_999, f64::NAN)];
        let lines = [
            (6_100, 20.0),
            (6_900, 40.0),
            (7_000, 0.0),
            (9_000, 10.0),
            (10_000, 1.0), // the current period: not evaluated
        ];
        let values: Vec<Option<f64>> = ratio_datapoints(&r, 10_000, &errors, &lines)
            .iter()
            .map(|d| d.value)
            .collect();
        // [6 s, 7 s): 3 of 60; [7 s, 8 s): lines 0; [8 s, 9 s): no lines; [9 s, 10 s): no
        // (finite) errors.
        assert_eq!(values, [Some(5.0), Some(0.0), Some(0.0), Some(0.0)]);
        let empty = ratio_datapoints(&r, 10_000, &[], &[]);
        assert_eq!(empty.len(), 4);
        assert!(empty.iter().all(|d| d.value.is_none()));
        assert_eq!(empty[0].start_ms, 6_000);
        assert_eq!(empty[3].start_ms, 9_000);
    }

    // --- the reference model -------------------------------------------------------------

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Class {
        Breach,
        Within,
        Missing,
    }

    /// The rules of docs/alarms.md written as plainly as possible, independently of
    /// `evaluate`'s counting.
    fn model(m: usize, policy: MissingData, classes: &[Class], current: AlarmState) -> AlarmState {
        let filled: Vec<Class> = classes
            .iter()
            .map(|&c| match (c, policy) {
                (Class::Missing, MissingData::Breaching) => Class::Breach,
                (Class::Missing, MissingData::NotBreaching) => Class::Within,
                (c, _) => c,
            })
            .collect();
        if filled.iter().all(|&c| c == Class::Missing) {
            return if policy == MissingData::Ignore {
                current
            } else {
                InsufficientData
            };
        }
        let count = filled.iter().filter(|&&c| c == Class::Breach).count();
        if count >= m {
            return Alarm;
        }
        if matches!(policy, MissingData::Missing | MissingData::Ignore) {
            let newest_within = filled.iter().rposition(|&c| c == Class::Within);
            let oldest_breach = filled.iter().position(|&c| c == Class::Breach);
            if let Some(i) = oldest_breach
                && newest_within.is_none_or(|w| w < i)
                && filled.len() - i >= m
            {
                return Alarm;
            }
        }
        Fine
    }

    fn policies() -> impl Strategy<Value = MissingData> {
        prop_oneof![
            Just(Missing),
            Just(Breaching),
            Just(NotBreaching),
            Just(Ignore)
        ]
    }

    fn states() -> impl Strategy<Value = AlarmState> {
        prop_oneof![Just(Fine), Just(Alarm), Just(InsufficientData)]
    }

    fn case() -> impl Strategy<Value = (u32, Vec<Class>, MissingData, AlarmState)> {
        (1usize..=8).prop_flat_map(|n| {
            (
                1..=n as u32,
                proptest::collection::vec(
                    prop_oneof![
                        Just(Class::Breach),
                        Just(Class::Within),
                        Just(Class::Missing)
                    ],
                    n,
                ),
                policies(),
                states(),
            )
        })
    }

    fn values(classes: &[Class]) -> Vec<Option<f64>> {
        classes
            .iter()
            .map(|c| match c {
                Class::Breach => X,
                Class::Within => O,
                Class::Missing => NA,
            })
            .collect()
    }

    /// Count-like samples (whole numbers, some 0) over a window of 5 periods of 1 s starting at
    /// 10 s, a few outside it.
    fn counts() -> impl Strategy<Value = Vec<(i64, f64)>> {
        proptest::collection::vec((9_000i64..16_000, 0u32..50), 0..30).prop_map(|v| {
            v.into_iter()
                .map(|(ts, count)| (ts, f64::from(count)))
                .collect()
        })
    }

    /// The sum of the samples of `[from, to)`, `None` when there are none: written out here
    /// independently of `buckets` and `aggregate`.
    fn period_sum(samples: &[(i64, f64)], from: i64, to: i64) -> Option<f64> {
        let inside: Vec<f64> = samples
            .iter()
            .filter(|(ts, _)| (from..to).contains(ts))
            .map(|&(_, v)| v)
            .collect();
        (!inside.is_empty()).then(|| inside.iter().sum())
    }

    proptest! {
        #[test]
        fn a_ratio_datapoint_is_the_guarded_ratio_of_the_two_sums(
            errors in counts(), lines in counts(),
        ) {
            let mut r = rule(1, 5, Missing);
            r.statistic = Statistic::Sum;
            r.denominator = Some("log.lines".into());
            let points = ratio_datapoints(&r, 15_000, &errors, &lines);
            prop_assert_eq!(points.len(), 5);
            for (i, point) in points.iter().enumerate() {
                let from = 10_000 + i as i64 * 1_000;
                prop_assert_eq!(point.start_ms, from);
                let n = period_sum(&errors, from, from + 1_000);
                let d = period_sum(&lines, from, from + 1_000);
                let expected = match (n, d) {
                    (None, None) => None,
                    (n, Some(d)) if d > 0.0 => Some(100.0 * n.unwrap_or(0.0) / d),
                    _ => Some(0.0),
                };
                prop_assert_eq!(point.value, expected, "period {}: n {:?} d {:?}", i, n, d);
                // Missing exactly when neither metric has a sample in the period.
                prop_assert_eq!(point.value.is_none(), n.is_none() && d.is_none());
                // A rate of counts where errors are a part of the lines stays in [0, 100].
                if let (Some(n), Some(d)) = (n, d)
                    && n <= d
                {
                    prop_assert!((0.0..=100.0).contains(&point.value.unwrap_or(-1.0)));
                }
            }
        }

        #[test]
        fn evaluate_agrees_with_the_model((m, classes, policy, current) in case()) {
            let r = rule(m, classes.len() as u32, policy);
            let got = evaluate(&r, &values(&classes), current).state;
            prop_assert_eq!(got, model(m as usize, policy, &classes, current));
        }

        #[test]
        fn filled_policies_are_plain_m_of_n((m, classes, policy, current) in case()) {
            prop_assume!(matches!(policy, Breaching | NotBreaching));
            let r = rule(m, classes.len() as u32, policy);
            let counted = classes
                .iter()
                .filter(|&&c| c == Class::Breach || (c == Class::Missing && policy == Breaching))
                .count();
            let got = evaluate(&r, &values(&classes), current).state;
            prop_assert_eq!(got == Alarm, counted >= m as usize);
            prop_assert_ne!(got, InsufficientData);
        }

        #[test]
        fn a_full_window_ignores_the_policy((m, classes, _policy, current) in case()) {
            let classes: Vec<Class> = classes
                .into_iter()
                .map(|c| if c == Class::Missing { Class::Within } else { c })
                .collect();
            let window = values(&classes);
            let states: Vec<AlarmState> = [Missing, Breaching, NotBreaching, Ignore]
                .into_iter()
                .map(|p| evaluate(&rule(m, classes.len() as u32, p), &window, current).state)
                .collect();
            prop_assert!(states.windows(2).all(|w| w[0] == w[1]), "{:?}", states);
        }

        #[test]
        fn a_missing_datapoint_under_breaching_never_lowers_the_state(
            (m, classes, _policy, current) in case(), at in 0usize..8,
        ) {
            // Replacing a non-breaching datapoint with a missing one cannot turn ALARM into OK.
            let r = rule(m, classes.len() as u32, Breaching);
            let before = evaluate(&r, &values(&classes), current).state;
            let mut after = classes.clone();
            let at = at % after.len();
            if after[at] == Class::Within {
                after[at] = Class::Missing;
            }
            let after = evaluate(&r, &values(&after), current).state;
            prop_assert!(!(before == Alarm && after == Fine));
        }
    }
}
