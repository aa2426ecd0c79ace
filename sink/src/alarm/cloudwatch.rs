//! The rules file as CloudWatch metric alarms (`outpost-sink cloudwatch-alarms`): each
//! validated [`Rule`] becomes the parameters of one `PutMetricAlarm` call ([`AlarmDefinition`])
//! per alarm, over the metrics the sink publishes. Pure: no SDK, no clock, no I/O; the calls are
//! made by [`super::cloudwatch_apply`].
//!
//! A `fleet` rule makes one alarm on the metric with the rule's dimensions only, which is what
//! the sink publishes with `OUTPOST_CLOUDWATCH_SCOPE=fleet`. A `per_host` rule makes one alarm
//! per host, on the metric with `Host=<host>` and the rule's dimensions, which is what the sink
//! publishes with `OUTPOST_CLOUDWATCH_SCOPE=per_host`. A rule with a denominator makes
//! metric-math alarms ([`AlarmMetric::Math`]): the sums of both metrics and the guarded
//! percentage [`RATIO_EXPRESSION`], the same as the local evaluator computes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::Serialize;

use outpost_sink_core::names::sanitize;

use crate::backend::aws::cloudwatch::{
    HOST_DIMENSION, MAX_DIMENSION_NAME_LEN, MAX_DIMENSION_VALUE_LEN, MAX_METRIC_NAME_LEN,
    dimension_name_valid, dimension_value_accepted,
};
use outpost_sink_core::alarm::rules::{Comparison, MissingData, Rule, Rules, Scope, Statistic};

/// Longest alarm name CloudWatch accepts, characters.
pub const MAX_ALARM_NAME_LEN: usize = 255;
/// Longest alarm description CloudWatch accepts, characters.
pub const MAX_ALARM_DESCRIPTION_LEN: usize = 1024;
/// Most dimensions of the metric of an alarm.
pub const MAX_ALARM_DIMENSIONS: usize = 30;
/// Longest namespace CloudWatch accepts, characters.
pub const MAX_NAMESPACE_LEN: usize = 255;
/// Periods under a minute that CloudWatch alarms accept, seconds (high-resolution alarms);
/// every other period must be a multiple of [`PERIOD_MULTIPLE_S`].
pub const SHORT_PERIODS_S: [i64; 2] = [10, 30];
/// Longer periods are a multiple of this many seconds.
pub const PERIOD_MULTIPLE_S: i64 = 60;
/// Default alarm name prefix.
pub const DEFAULT_PREFIX: &str = "outpost-";
/// Hex digits of the hash that ends a name shortened to [`MAX_ALARM_NAME_LEN`].
const HASH_DIGITS: usize = 16;

/// What the rules file does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmOptions {
    /// Namespace the sink publishes to (`OUTPOST_METRICS_NAMESPACE`).
    pub namespace: String,
    /// Prepended to every alarm name.
    pub prefix: String,
    /// SNS topic notified on ALARM and on the return to OK.
    pub topic_arn: Option<String>,
}

/// One dimension of an alarm's metric.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmDimension {
    /// Dimension name.
    pub name: String,
    /// Dimension value.
    pub value: String,
}

/// The expression of the alarm of a rule with a denominator, over the period sums `n` (of the
/// metric) and `d` (of the denominator): the guard of [`outpost_sink_core::alarm::eval::guarded_ratio`].
pub const RATIO_EXPRESSION: &str = "IF(d > 0, 100 * n / d, 0)";
/// `Id` of the metric (numerator) in a ratio alarm's `Metrics`.
pub const NUMERATOR_ID: &str = "n";
/// `Id` of the denominator in a ratio alarm's `Metrics`.
pub const DENOMINATOR_ID: &str = "d";
/// `Id` of the expression (the alarm's datapoints) in a ratio alarm's `Metrics`.
pub const EXPRESSION_ID: &str = "e1";

/// One metric with its dimensions (the API's `Metric`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricId {
    /// The namespace.
    pub namespace: String,
    /// The metric's name.
    pub metric_name: String,
    /// The dimensions: `Host` first for a per-host alarm, then the rule's, by name.
    pub dimensions: Vec<AlarmDimension>,
}

/// A metric's statistic per period (the API's `MetricStat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricStat {
    /// The metric.
    pub metric: MetricId,
    /// Seconds.
    pub period: i32,
    /// `Average`, `Maximum`, `Minimum`, `Sum` or `SampleCount`.
    pub stat: &'static str,
}

/// One element of a metric-math alarm's `Metrics` (the API's `MetricDataQuery`): a metric's
/// statistic or an expression over the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricQuery {
    /// Referred to by expressions: a lower-case letter, then letters, digits, `_`.
    pub id: &'static str,
    /// The metric's statistic (none for an expression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_stat: Option<MetricStat>,
    /// The expression (none for a metric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Shown in the console.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// True for exactly one element: the series the alarm evaluates.
    pub return_data: bool,
}

/// What an alarm watches, as `PutMetricAlarm` parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AlarmMetric {
    /// One metric's statistic: `Namespace`, `MetricName`, `Dimensions`, `Statistic`, `Period`.
    #[serde(rename_all = "PascalCase")]
    Single {
        /// The metric's namespace.
        namespace: String,
        /// The metric's name.
        metric_name: String,
        /// The metric's dimensions: `Host` first for a per-host alarm, then the rule's, by name.
        dimensions: Vec<AlarmDimension>,
        /// `Average`, `Maximum`, `Minimum`, `Sum` or `SampleCount`.
        statistic: &'static str,
        /// Seconds.
        period: i32,
    },
    /// Metric math (a rule with a `denominator`): `Metrics` = `n` and `d`, the `Sum` of the
    /// metric and of the denominator, and `e1` = [`RATIO_EXPRESSION`], the evaluated series.
    #[serde(rename_all = "PascalCase")]
    Math {
        /// `n`, `d`, `e1`.
        metrics: Vec<MetricQuery>,
    },
}

/// The parameters of one `PutMetricAlarm` call, serialised with the API's parameter names (the
/// JSON of one element is valid input for `aws cloudwatch put-metric-alarm --cli-input-json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmDefinition {
    /// `<prefix><rule>` or `<prefix><rule>-<host>`, at most [`MAX_ALARM_NAME_LEN`] characters.
    pub alarm_name: String,
    /// Names the rule, the host and the rules file; at most [`MAX_ALARM_DESCRIPTION_LEN`].
    pub alarm_description: String,
    /// The metric, or the metric math, the alarm evaluates.
    #[serde(flatten)]
    pub metric: AlarmMetric,
    /// N.
    pub evaluation_periods: i32,
    /// M.
    pub datapoints_to_alarm: i32,
    /// The threshold.
    pub threshold: f64,
    /// E.g. `GreaterThanThreshold`.
    pub comparison_operator: &'static str,
    /// `missing`, `breaching`, `notBreaching` or `ignore`.
    pub treat_missing_data: &'static str,
    /// The topic, when given.
    pub alarm_actions: Vec<String>,
    /// The topic, when given.
    #[serde(rename = "OKActions")]
    pub ok_actions: Vec<String>,
    /// The rule it came from (not a `PutMetricAlarm` parameter).
    #[serde(skip)]
    pub rule: String,
    /// The host of a per-host alarm (not a `PutMetricAlarm` parameter).
    #[serde(skip)]
    pub host: Option<String>,
}

/// One reason the rules cannot become alarms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionIssue {
    /// Where: `FILE: rule "NAME"`, or the option, e.g. `--namespace`.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

/// Every reason the rules cannot become alarms, each naming the rule (and file) or option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Issues(issues))]
#[non_exhaustive]
pub struct ConversionError {
    /// The problems, rules in file order.
    pub issues: Vec<ConversionIssue>,
}

struct Issues<'a>(&'a [ConversionIssue]);

impl fmt::Display for Issues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", issue.location, issue.message)?;
        }
        Ok(())
    }
}

/// CloudWatch's name of a statistic.
pub fn statistic_name(statistic: Statistic) -> &'static str {
    match statistic {
        Statistic::Avg => "Average",
        Statistic::Max => "Maximum",
        Statistic::Min => "Minimum",
        Statistic::Sum => "Sum",
        Statistic::Count => "SampleCount",
    }
}

/// CloudWatch's `ComparisonOperator` of a comparison.
pub fn comparison_operator(comparison: Comparison) -> &'static str {
    match comparison {
        Comparison::Greater => "GreaterThanThreshold",
        Comparison::GreaterOrEqual => "GreaterThanOrEqualToThreshold",
        Comparison::Less => "LessThanThreshold",
        Comparison::LessOrEqual => "LessThanOrEqualToThreshold",
    }
}

/// CloudWatch's `TreatMissingData` of a missing-data policy.
pub fn treat_missing_data(missing: MissingData) -> &'static str {
    match missing {
        MissingData::Missing => "missing",
        MissingData::Breaching => "breaching",
        MissingData::NotBreaching => "notBreaching",
        MissingData::Ignore => "ignore",
    }
}

/// The period in whole seconds, or why CloudWatch refuses it.
pub fn period_seconds(period_ms: i64) -> Result<i32, String> {
    let seconds = period_ms / 1000;
    let accepted = period_ms % 1000 == 0
        && (SHORT_PERIODS_S.contains(&seconds)
            || (seconds > 0 && seconds % PERIOD_MULTIPLE_S == 0));
    match i32::try_from(seconds) {
        Ok(s) if accepted => Ok(s),
        _ if period_ms % 1000 != 0 => Err(format!(
            "period {period_ms}ms: CloudWatch alarms take a period of 10s, 30s or a multiple of 60s"
        )),
        _ => Err(format!(
            "period {seconds}s: CloudWatch alarms take a period of 10s, 30s or a multiple of 60s"
        )),
    }
}

/// Why CloudWatch would refuse this dimension (the rules the sink's publisher applies too).
fn dimension_problem(name: &str, value: &str) -> Option<String> {
    if !dimension_name_valid(name) {
        return Some(format!(
            "dimension name {name:?} must be 1 to {MAX_DIMENSION_NAME_LEN} printable ASCII characters"
        ));
    }
    if !dimension_value_accepted(value) {
        return Some(format!(
            "dimension {name} = {value:?}: the value must be 1 to {MAX_DIMENSION_VALUE_LEN} printable ASCII characters"
        ));
    }
    None
}

/// FNV-1a, 64 bits: stable across builds and platforms, so a shortened name is the same on
/// every run (and `PutMetricAlarm` overwrites instead of adding an alarm).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `name` if it fits [`MAX_ALARM_NAME_LEN`]; else its beginning, `-` and a hash of the whole
/// name, [`MAX_ALARM_NAME_LEN`] characters in all.
pub fn fit_alarm_name(name: &str) -> String {
    if name.chars().count() <= MAX_ALARM_NAME_LEN {
        return name.to_owned();
    }
    let keep = MAX_ALARM_NAME_LEN - HASH_DIGITS - 1;
    let head: String = name.chars().take(keep).collect();
    format!("{head}-{:0width$x}", fnv1a(name), width = HASH_DIGITS)
}

fn truncate_chars(text: String, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((at, _)) => text[..at].to_owned(),
        None => text,
    }
}

fn description(rule: &Rule, host: Option<&str>, source: &Path) -> String {
    let what = match host {
        Some(host) => format!("per-host alarm of host {host}"),
        None => "fleet alarm".to_owned(),
    };
    let text = format!(
        "Outpost {what} from rule \"{}\" in {} (outpost-sink cloudwatch-alarms)",
        rule.name,
        source.display()
    );
    truncate_chars(text, MAX_ALARM_DESCRIPTION_LEN)
}

fn option_issues(options: &AlarmOptions, issues: &mut Vec<ConversionIssue>) {
    let mut issue = |location: &str, message: String| {
        issues.push(ConversionIssue {
            location: location.to_owned(),
            message,
        });
    };
    let ns = &options.namespace;
    if !(1..=MAX_NAMESPACE_LEN).contains(&ns.chars().count()) || ns.starts_with(':') {
        issue(
            "--namespace",
            format!("{ns:?} must be 1 to {MAX_NAMESPACE_LEN} characters, not starting with ':'"),
        );
    }
    if options.prefix.chars().any(char::is_control) {
        issue(
            "--prefix",
            format!("{:?} must not hold control characters", options.prefix),
        );
    }
    if let Some(arn) = &options.topic_arn
        && (!arn.starts_with("arn:") || arn.chars().any(char::is_whitespace))
    {
        issue(
            "--topic-arn",
            format!("{arn:?} is not an ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC)"),
        );
    }
}

/// What the alarm of `rule` watches: the metric with `dimensions`, or, for a rule with a
/// denominator, the metric math over the metric and the denominator, both with `dimensions`.
fn alarm_metric(
    rule: &Rule,
    namespace: &str,
    dimensions: Vec<AlarmDimension>,
    period: i32,
) -> AlarmMetric {
    let statistic = statistic_name(rule.statistic);
    let Some(denominator) = &rule.denominator else {
        return AlarmMetric::Single {
            namespace: namespace.to_owned(),
            metric_name: rule.metric.clone(),
            dimensions,
            statistic,
            period,
        };
    };
    let stat = |id: &'static str, metric_name: &str| MetricQuery {
        id,
        metric_stat: Some(MetricStat {
            metric: MetricId {
                namespace: namespace.to_owned(),
                metric_name: metric_name.to_owned(),
                dimensions: dimensions.clone(),
            },
            period,
            stat: statistic,
        }),
        expression: None,
        label: None,
        return_data: false,
    };
    AlarmMetric::Math {
        metrics: vec![
            stat(NUMERATOR_ID, &rule.metric),
            stat(DENOMINATOR_ID, denominator),
            MetricQuery {
                id: EXPRESSION_ID,
                metric_stat: None,
                expression: Some(RATIO_EXPRESSION.to_owned()),
                label: Some(format!("{} per 100 {denominator}", rule.metric)),
                return_data: true,
            },
        ],
    }
}

/// The alarms of one rule, or its problems.
fn rule_alarms(
    rule: &Rule,
    hosts: &BTreeSet<&str>,
    options: &AlarmOptions,
    source: &Path,
) -> Result<Vec<AlarmDefinition>, Vec<String>> {
    let mut problems = Vec::new();
    let period = match period_seconds(rule.period_ms) {
        Ok(seconds) => Some(seconds),
        Err(message) => {
            problems.push(message);
            None
        }
    };
    for name in std::iter::once(&rule.metric).chain(&rule.denominator) {
        if name.chars().count() > MAX_METRIC_NAME_LEN {
            problems.push(format!(
                "metric name {name:?} is {} characters, CloudWatch allows {MAX_METRIC_NAME_LEN}",
                name.chars().count()
            ));
        }
    }
    problems.extend(
        rule.dimensions
            .iter()
            .filter_map(|(name, value)| dimension_problem(name, value)),
    );
    let per_host = rule.scope == Scope::PerHost;
    let count = rule.dimensions.len() + usize::from(per_host);
    if count > MAX_ALARM_DIMENSIONS {
        let host = if per_host { " (with Host)" } else { "" };
        problems.push(format!(
            "{count} dimensions{host}, CloudWatch allows {MAX_ALARM_DIMENSIONS}"
        ));
    }
    if per_host && rule.dimensions.contains_key(HOST_DIMENSION) {
        problems.push(format!(
            "a per_host rule gets the {HOST_DIMENSION} dimension from its hosts; remove {HOST_DIMENSION} from its dimensions"
        ));
    }
    if per_host && hosts.is_empty() {
        problems.push(
            "scope is per_host but no host is given (--host NAME or --hosts-from-table)".into(),
        );
    }
    for host in hosts.iter().filter(|_| per_host) {
        if let Some(problem) = dimension_problem(HOST_DIMENSION, host) {
            problems.push(problem);
        }
    }
    let Some(period) = period.filter(|_| problems.is_empty()) else {
        return Err(problems);
    };
    let to_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let actions: Vec<String> = options.topic_arn.iter().cloned().collect();
    let own: Vec<AlarmDimension> = rule
        .dimensions
        .iter()
        .map(|(name, value)| AlarmDimension {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    let alarm = |host: Option<&str>| {
        let mut dimensions = Vec::with_capacity(own.len() + 1);
        let name = match host {
            Some(host) => {
                dimensions.push(AlarmDimension {
                    name: HOST_DIMENSION.to_owned(),
                    value: host.to_owned(),
                });
                format!("{}{}-{}", options.prefix, rule.name, sanitize(host))
            }
            None => format!("{}{}", options.prefix, rule.name),
        };
        dimensions.extend(own.iter().cloned());
        AlarmDefinition {
            alarm_name: fit_alarm_name(&name),
            alarm_description: description(rule, host, source),
            metric: alarm_metric(rule, &options.namespace, dimensions, period),
            evaluation_periods: to_i32(rule.evaluation_periods),
            datapoints_to_alarm: to_i32(rule.datapoints_to_alarm),
            threshold: rule.threshold,
            comparison_operator: comparison_operator(rule.comparison),
            treat_missing_data: treat_missing_data(rule.missing_data),
            alarm_actions: actions.clone(),
            ok_actions: actions.clone(),
            rule: rule.name.clone(),
            host: host.map(str::to_owned),
        }
    };
    Ok(if per_host {
        hosts.iter().map(|host| alarm(Some(host))).collect()
    } else {
        vec![alarm(None)]
    })
}

/// Every alarm of `rules`: rules in file order, a per-host rule's alarms by host name. `hosts`
/// (duplicates ignored) are the hosts of per-host rules. Reports every problem at once, each
/// naming the file and the rule (or the option), including two alarms that would share a name.
pub fn alarm_definitions(
    rules: &Rules,
    hosts: &[String],
    options: &AlarmOptions,
) -> Result<Vec<AlarmDefinition>, ConversionError> {
    let mut issues = Vec::new();
    option_issues(options, &mut issues);
    let hosts: BTreeSet<&str> = hosts.iter().map(String::as_str).collect();
    let mut alarms = Vec::new();
    for rule in &rules.rules {
        match rule_alarms(rule, &hosts, options, &rules.source) {
            Ok(more) => alarms.extend(more),
            Err(problems) => issues.extend(problems.into_iter().map(|message| ConversionIssue {
                location: format!("{}: rule {:?}", rules.source.display(), rule.name),
                message,
            })),
        }
    }
    let mut seen: BTreeMap<&str, &AlarmDefinition> = BTreeMap::new();
    for alarm in &alarms {
        if let Some(first) = seen.insert(&alarm.alarm_name, alarm) {
            let whose = |a: &AlarmDefinition| match &a.host {
                Some(host) => format!("rule {:?} host {host:?}", a.rule),
                None => format!("rule {:?}", a.rule),
            };
            issues.push(ConversionIssue {
                location: format!("{}: {}", rules.source.display(), whose(alarm)),
                message: format!(
                    "alarm name {:?} is also the name of the alarm of {}",
                    alarm.alarm_name,
                    whose(first)
                ),
            });
        }
    }
    if issues.is_empty() {
        Ok(alarms)
    } else {
        Err(ConversionError { issues })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_sink_core::alarm::rules::parse;

    /// The shared `cpu-high` fixture (average over 60 s, 3 of 5) in the fleet scope.
    static RULE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        outpost_testkit::cpu_high_rule("avg", "60s", 3, 5) + "scope = \"fleet\"\n"
    });

    fn rules(text: &str) -> Rules {
        parse(text, Path::new("rules.toml")).unwrap()
    }

    fn options() -> AlarmOptions {
        AlarmOptions {
            namespace: "Outpost".into(),
            prefix: DEFAULT_PREFIX.into(),
            topic_arn: None,
        }
    }

    fn convert(text: &str, hosts: &[&str]) -> Result<Vec<AlarmDefinition>, ConversionError> {
        let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        alarm_definitions(&rules(text), &hosts, &options())
    }

    fn one(text: &str) -> AlarmDefinition {
        let mut alarms = convert(text, &[]).unwrap();
        assert_eq!(alarms.len(), 1);
        alarms.remove(0)
    }

    fn error(text: &str, hosts: &[&str]) -> String {
        convert(text, hosts).unwrap_err().to_string()
    }

    /// The metric of a single-metric alarm: namespace, name, dimensions, statistic, period.
    struct Single<'a> {
        namespace: &'a str,
        metric_name: &'a str,
        dimensions: &'a [AlarmDimension],
        statistic: &'a str,
        period: i32,
    }

    fn single(alarm: &AlarmDefinition) -> Single<'_> {
        match &alarm.metric {
            AlarmMetric::Single {
                namespace,
                metric_name,
                dimensions,
                statistic,
                period,
            } => Single {
                namespace,
                metric_name,
                dimensions,
                statistic,
                period: *period,
            },
            AlarmMetric::Math { .. } => panic!("{} is a metric-math alarm", alarm.alarm_name),
        }
    }

    fn pairs(dimensions: &[AlarmDimension]) -> Vec<(&str, &str)> {
        dimensions
            .iter()
            .map(|d| (d.name.as_str(), d.value.as_str()))
            .collect()
    }

    fn dims(alarm: &AlarmDefinition) -> Vec<(&str, &str)> {
        pairs(single(alarm).dimensions)
    }

    #[test]
    fn a_fleet_rule_is_one_alarm_on_the_metric_without_host() {
        let a = one(&RULE);
        assert_eq!(a.alarm_name, "outpost-cpu-high");
        let m = single(&a);
        assert_eq!(m.namespace, "Outpost");
        assert_eq!(m.metric_name, "cpu.utilization");
        assert_eq!(dims(&a), [("cpu", "total")]);
        assert_eq!(m.statistic, "Average");
        assert_eq!(
            (m.period, a.evaluation_periods, a.datapoints_to_alarm),
            (60, 5, 3)
        );
        assert_eq!(a.threshold, 80.0);
        assert_eq!(a.comparison_operator, "GreaterThanThreshold");
        assert_eq!(a.treat_missing_data, "missing");
        assert!(a.alarm_actions.is_empty() && a.ok_actions.is_empty());
        assert!(
            a.alarm_description.contains("rule \"cpu-high\"")
                && a.alarm_description.contains("rules.toml"),
            "{}",
            a.alarm_description
        );
        assert_eq!(a.host, None);
    }

    #[test]
    fn every_statistic_maps_to_cloudwatch() {
        for (ours, theirs) in [
            ("avg", "Average"),
            ("max", "Maximum"),
            ("min", "Minimum"),
            ("sum", "Sum"),
            ("count", "SampleCount"),
        ] {
            let text = RULE.replace("\"avg\"", &format!("{ours:?}"));
            assert_eq!(single(&one(&text)).statistic, theirs, "{ours}");
        }
    }

    #[test]
    fn every_comparison_maps_to_cloudwatch() {
        for (ours, theirs) in [
            (">", "GreaterThanThreshold"),
            (">=", "GreaterThanOrEqualToThreshold"),
            ("<", "LessThanThreshold"),
            ("<=", "LessThanOrEqualToThreshold"),
        ] {
            let text = RULE.replace("\">\"", &format!("{ours:?}"));
            assert_eq!(one(&text).comparison_operator, theirs, "{ours}");
        }
    }

    #[test]
    fn every_missing_data_policy_maps_to_cloudwatch() {
        for (ours, theirs) in [
            ("missing", "missing"),
            ("breaching", "breaching"),
            ("not_breaching", "notBreaching"),
            ("ignore", "ignore"),
        ] {
            let text = format!("{}missing_data = {ours:?}\n", *RULE);
            assert_eq!(one(&text).treat_missing_data, theirs, "{ours}");
        }
    }

    #[test]
    fn periods_of_10s_30s_and_multiples_of_a_minute_are_taken() {
        for (period, seconds) in [("10s", 10), ("30s", 30), ("5m", 300), ("1h", 3600)] {
            let text = RULE
                .replace("\"60s\"", &format!("{period:?}"))
                .replace("= 5", "= 1")
                .replace("= 3", "= 1");
            assert_eq!(single(&one(&text)).period, seconds, "{period}");
        }
    }

    #[test]
    fn any_other_period_is_refused_naming_the_file_and_rule() {
        for period in ["1s", "20s", "45s", "90s", "61s"] {
            let message = error(&RULE.replace("\"60s\"", &format!("{period:?}")), &[]);
            assert!(
                message.starts_with(&format!(
                    "rules.toml: rule \"cpu-high\": period {period}: CloudWatch alarms take a period of 10s, 30s or a multiple of 60s"
                )),
                "{message}"
            );
        }
    }

    #[test]
    fn a_per_host_rule_is_one_alarm_per_distinct_host_with_host_first() {
        let text = RULE.replace("fleet", "per_host");
        let alarms = convert(&text, &["web-2", "web-1", "web-2"]).unwrap();
        let names: Vec<_> = alarms.iter().map(|a| a.alarm_name.as_str()).collect();
        assert_eq!(names, ["outpost-cpu-high-web-1", "outpost-cpu-high-web-2"]);
        assert_eq!(dims(&alarms[0]), [("Host", "web-1"), ("cpu", "total")]);
        assert_eq!(alarms[1].host.as_deref(), Some("web-2"));
        assert!(alarms[1].alarm_description.contains("host web-2"));
    }

    #[test]
    fn a_fleet_rule_ignores_the_hosts() {
        assert_eq!(convert(&RULE, &["web-1", "web-2"]).unwrap().len(), 1);
    }

    #[test]
    fn a_per_host_rule_without_hosts_is_refused() {
        let message = error(&RULE.replace("fleet", "per_host"), &[]);
        assert!(
            message.contains("rule \"cpu-high\": scope is per_host but no host is given"),
            "{message}"
        );
    }

    #[test]
    fn a_host_is_sanitised_in_the_name_but_kept_in_the_dimension() {
        let text = RULE.replace("fleet", "per_host");
        let alarms = convert(&text, &["db 1/eu"]).unwrap();
        assert_eq!(alarms[0].alarm_name, "outpost-cpu-high-db_1_eu");
        assert_eq!(dims(&alarms[0])[0], ("Host", "db 1/eu"));
    }

    #[test]
    fn the_host_part_of_a_name_follows_the_one_sanitiser_of_the_storage_layout() {
        // outpost_sink_core::names::sanitize: a leading `.` and a `.` after a `.` become `_`
        // too (the alarm conversion had its own copy that kept them until the sink core).
        let text = RULE.replace("fleet", "per_host");
        let alarms = convert(&text, &[".db..1"]).unwrap();
        assert_eq!(alarms[0].alarm_name, "outpost-cpu-high-_db._1");
        assert_eq!(dims(&alarms[0])[0], ("Host", ".db..1"));
    }

    #[test]
    fn hosts_that_sanitise_to_one_name_are_refused() {
        let message = error(&RULE.replace("fleet", "per_host"), &["a b", "a/b"]);
        assert!(
            message.contains("alarm name \"outpost-cpu-high-a_b\" is also the name"),
            "{message}"
        );
    }

    #[test]
    fn a_host_cloudwatch_refuses_as_a_dimension_value_is_refused() {
        let message = error(&RULE.replace("fleet", "per_host"), &["tab\there"]);
        assert!(
            message.contains("dimension Host = \"tab\\there\""),
            "{message}"
        );
    }

    #[test]
    fn a_per_host_rule_must_not_name_the_host_dimension() {
        let text = RULE
            .replace("fleet", "per_host")
            .replace("cpu = \"total\"", "Host = \"x\"");
        assert!(error(&text, &["web-1"]).contains("remove Host from its dimensions"));
    }

    #[test]
    fn the_alarm_name_limit_is_kept_with_a_stable_hash() {
        let rule = "cpu-high";
        let at = |len: usize| AlarmOptions {
            prefix: "p".repeat(len - rule.len()),
            ..options()
        };
        let convert_with = |o: &AlarmOptions| alarm_definitions(&rules(&RULE), &[], o).unwrap();
        let exact = convert_with(&at(MAX_ALARM_NAME_LEN));
        assert_eq!(exact[0].alarm_name.len(), MAX_ALARM_NAME_LEN);
        assert!(exact[0].alarm_name.ends_with(rule));
        let over = convert_with(&at(MAX_ALARM_NAME_LEN + 1));
        let name = &over[0].alarm_name;
        assert_eq!(name.chars().count(), MAX_ALARM_NAME_LEN);
        assert!(!name.ends_with(rule), "{name}");
        assert_eq!(
            convert_with(&at(MAX_ALARM_NAME_LEN + 1))[0].alarm_name,
            *name
        );
        assert_ne!(
            convert_with(&at(MAX_ALARM_NAME_LEN + 2))[0].alarm_name,
            *name
        );
    }

    #[test]
    fn long_host_names_make_distinct_names_within_the_limit() {
        let text = RULE.replace("fleet", "per_host");
        let long = "h".repeat(300);
        let hosts = [format!("{long}1"), format!("{long}2")];
        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let alarms = convert(&text, &hosts).unwrap();
        assert!(
            alarms
                .iter()
                .all(|a| a.alarm_name.chars().count() == MAX_ALARM_NAME_LEN)
        );
        assert_ne!(alarms[0].alarm_name, alarms[1].alarm_name);
    }

    #[test]
    fn the_description_limit_is_kept() {
        let base = one(&RULE).alarm_description;
        let fixed = base.chars().count() - "rules.toml".len();
        let at = |len: usize| {
            let path = format!("{}.toml", "r".repeat(len - fixed - ".toml".len()));
            let rules = parse(&RULE, Path::new(&path)).unwrap();
            alarm_definitions(&rules, &[], &options()).unwrap()[0]
                .alarm_description
                .clone()
        };
        let exact = at(MAX_ALARM_DESCRIPTION_LEN);
        assert_eq!(exact.chars().count(), MAX_ALARM_DESCRIPTION_LEN);
        assert!(exact.ends_with("cloudwatch-alarms)"));
        let over = at(MAX_ALARM_DESCRIPTION_LEN + 1);
        assert_eq!(over.chars().count(), MAX_ALARM_DESCRIPTION_LEN);
        assert!(!over.ends_with("cloudwatch-alarms)"));
    }

    fn with_dimensions(n: usize, scope: &str) -> String {
        let dims: Vec<String> = (0..n).map(|i| format!("d{i:02} = \"v\"")).collect();
        RULE.replace("cpu = \"total\"", &dims.join(", "))
            .replace("fleet", scope)
    }

    #[test]
    fn the_dimension_limit_counts_host_for_per_host_rules() {
        let fleet = convert(&with_dimensions(MAX_ALARM_DIMENSIONS, "fleet"), &[]).unwrap();
        assert_eq!(dims(&fleet[0]).len(), MAX_ALARM_DIMENSIONS);
        let message = error(&with_dimensions(MAX_ALARM_DIMENSIONS + 1, "fleet"), &[]);
        assert!(
            message.contains("31 dimensions, CloudWatch allows 30"),
            "{message}"
        );
        let host = convert(
            &with_dimensions(MAX_ALARM_DIMENSIONS - 1, "per_host"),
            &["web-1"],
        )
        .unwrap();
        assert_eq!(dims(&host[0]).len(), MAX_ALARM_DIMENSIONS);
        let message = error(
            &with_dimensions(MAX_ALARM_DIMENSIONS, "per_host"),
            &["web-1"],
        );
        assert!(
            message.contains("31 dimensions (with Host), CloudWatch allows 30"),
            "{message}"
        );
    }

    #[test]
    fn the_topic_is_both_alarm_and_ok_action() {
        let arn = "arn:aws:sns:us-east-1:123456789012:outpost-alarms";
        let o = AlarmOptions {
            topic_arn: Some(arn.into()),
            ..options()
        };
        let a = &alarm_definitions(&rules(&RULE), &[], &o).unwrap()[0];
        assert_eq!(
            (&a.alarm_actions[..], &a.ok_actions[..]),
            (&[arn.to_owned()][..], &[arn.to_owned()][..])
        );
    }

    #[test]
    fn bad_options_are_all_reported() {
        let o = AlarmOptions {
            namespace: String::new(),
            prefix: "a\nb".into(),
            topic_arn: Some("my-topic".into()),
        };
        let message = alarm_definitions(&rules(&RULE), &[], &o)
            .unwrap_err()
            .to_string();
        for key in [
            "--namespace: \"\"",
            "--prefix: \"a\\nb\"",
            "--topic-arn: \"my-topic\"",
        ] {
            assert!(message.contains(key), "{key} not in {message}");
        }
    }

    #[test]
    fn every_problem_of_every_rule_is_reported() {
        let text = format!(
            "{}{}",
            RULE.replace("\"60s\"", "\"45s\""),
            RULE.replace("cpu-high", "b").replace("fleet", "per_host")
        );
        let message = error(&text, &[]);
        assert!(
            message.contains("rule \"cpu-high\": period 45s"),
            "{message}"
        );
        assert!(
            message.contains("rule \"b\": scope is per_host"),
            "{message}"
        );
    }

    #[test]
    fn the_dry_run_json_uses_put_metric_alarm_parameter_names() {
        let o = AlarmOptions {
            topic_arn: Some("arn:aws:sns:us-east-1:123456789012:t".into()),
            ..options()
        };
        let a = &alarm_definitions(&rules(&RULE), &[], &o).unwrap()[0];
        let json = serde_json::to_value(a).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "AlarmActions",
                "AlarmDescription",
                "AlarmName",
                "ComparisonOperator",
                "DatapointsToAlarm",
                "Dimensions",
                "EvaluationPeriods",
                "MetricName",
                "Namespace",
                "OKActions",
                "Period",
                "Statistic",
                "Threshold",
                "TreatMissingData",
            ]
        );
        assert_eq!(json["Dimensions"][0]["Name"], "cpu");
        assert_eq!(json["Dimensions"][0]["Value"], "total");
    }

    #[test]
    fn the_shipped_example_converts_with_hosts() {
        let text = include_str!("../../rules.example.toml");
        let alarms = convert(text, &["web-1"]).unwrap();
        let names: Vec<_> = alarms.iter().map(|a| a.alarm_name.as_str()).collect();
        assert_eq!(
            names,
            [
                "outpost-cpu-high-web-1",
                "outpost-memory-high-web-1",
                "outpost-host-silent-web-1",
                "outpost-error-rate-high-web-1"
            ]
        );
        assert_eq!(single(&alarms[2]).statistic, "SampleCount");
        assert_eq!(alarms[2].treat_missing_data, "breaching");
        let rate = &alarms[3];
        assert_eq!(rate.alarm_name, "outpost-error-rate-high-web-1");
        assert!(matches!(rate.metric, AlarmMetric::Math { .. }));
        assert_eq!(
            (
                rate.threshold,
                rate.comparison_operator,
                rate.treat_missing_data
            ),
            (5.0, "GreaterThanThreshold", "notBreaching")
        );
    }

    /// The shared error-rate fixture (5 m, 2 of 4) at `>=`, not breaching, for the fleet.
    static RATE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        outpost_testkit::error_rate_rule("error-rate", "5m", 2, 4)
            .replace("comparison = \">\"", "comparison = \">=\"")
            + "missing_data = \"not_breaching\"
scope = \"fleet\"
"
    });

    fn metrics(alarm: &AlarmDefinition) -> &[MetricQuery] {
        match &alarm.metric {
            AlarmMetric::Math { metrics } => metrics,
            AlarmMetric::Single { .. } => panic!("{} is a single-metric alarm", alarm.alarm_name),
        }
    }

    /// A metric query's id, metric name, dimensions, period and stat.
    fn stat(query: &MetricQuery) -> (&str, &str, Vec<(&str, &str)>, i32, &str) {
        let s = query.metric_stat.as_ref().unwrap();
        assert_eq!(s.metric.namespace, "Outpost");
        assert_eq!((&query.expression, &query.label), (&None, &None));
        assert!(!query.return_data, "{}", query.id);
        (
            query.id,
            s.metric.metric_name.as_str(),
            pairs(&s.metric.dimensions),
            s.period,
            s.stat,
        )
    }

    #[test]
    fn a_rule_with_a_denominator_is_a_metric_math_alarm() {
        let a = one(&RATE);
        assert_eq!(a.alarm_name, "outpost-error-rate");
        let m = metrics(&a);
        assert_eq!(m.len(), 3);
        let app = vec![("service", "app")];
        assert_eq!(
            stat(&m[0]),
            ("n", "log.error_lines", app.clone(), 300, "Sum")
        );
        assert_eq!(stat(&m[1]), ("d", "log.lines", app, 300, "Sum"));
        assert_eq!(m[2].id, "e1");
        assert_eq!(
            m[2].expression.as_deref(),
            Some("IF(d > 0, 100 * n / d, 0)")
        );
        assert_eq!(
            m[2].label.as_deref(),
            Some("log.error_lines per 100 log.lines")
        );
        assert!(m[2].return_data && m[2].metric_stat.is_none());
        // Thresholds, M of N, missing data: as for any rule.
        assert_eq!(
            (
                a.evaluation_periods,
                a.datapoints_to_alarm,
                a.threshold,
                a.comparison_operator,
                a.treat_missing_data
            ),
            (4, 2, 5.0, "GreaterThanOrEqualToThreshold", "notBreaching")
        );
    }

    #[test]
    fn a_per_host_ratio_alarm_has_host_on_both_metrics() {
        let text = RATE.replace("fleet", "per_host");
        let alarms = convert(&text, &["web-2", "web-1"]).unwrap();
        let names: Vec<_> = alarms.iter().map(|a| a.alarm_name.as_str()).collect();
        assert_eq!(
            names,
            ["outpost-error-rate-web-1", "outpost-error-rate-web-2"]
        );
        for (alarm, host) in alarms.iter().zip(["web-1", "web-2"]) {
            let m = metrics(alarm);
            for query in &m[..2] {
                assert_eq!(
                    stat(query).2,
                    [("Host", host), ("service", "app")],
                    "{}",
                    query.id
                );
            }
        }
    }

    #[test]
    fn the_dimension_limit_counts_host_for_ratio_alarms_too() {
        let text = with_dimensions(MAX_ALARM_DIMENSIONS, "per_host")
            .replace(
                "cpu.utilization\"",
                "log.error_lines\"\ndenominator = \"log.lines\"",
            )
            .replace("\"avg\"", "\"sum\"");
        let message = error(&text, &["web-1"]);
        assert!(
            message.contains("31 dimensions (with Host), CloudWatch allows 30"),
            "{message}"
        );
    }

    #[test]
    fn the_dry_run_json_of_a_ratio_alarm_uses_the_api_names() {
        let a = one(&RATE);
        let json = serde_json::to_value(&a).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "AlarmActions",
                "AlarmDescription",
                "AlarmName",
                "ComparisonOperator",
                "DatapointsToAlarm",
                "EvaluationPeriods",
                "Metrics",
                "OKActions",
                "Threshold",
                "TreatMissingData",
            ]
        );
        assert_eq!(
            json["Metrics"],
            serde_json::json!([
                {
                    "Id": "n",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "Outpost",
                            "MetricName": "log.error_lines",
                            "Dimensions": [{"Name": "service", "Value": "app"}]
                        },
                        "Period": 300,
                        "Stat": "Sum"
                    },
                    "ReturnData": false
                },
                {
                    "Id": "d",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "Outpost",
                            "MetricName": "log.lines",
                            "Dimensions": [{"Name": "service", "Value": "app"}]
                        },
                        "Period": 300,
                        "Stat": "Sum"
                    },
                    "ReturnData": false
                },
                {
                    "Id": "e1",
                    "Expression": "IF(d > 0, 100 * n / d, 0)",
                    "Label": "log.error_lines per 100 log.lines",
                    "ReturnData": true
                }
            ])
        );
    }
}
