//! The rules file of `outpost-sink serve --rules FILE`: a serde layer that only parses, then
//! [`RulesFile::validate`], which reports every problem at once, each naming the file and the key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::names::MAX_METRIC_NAME_LEN;

/// The most evaluation periods a rule may look back over (also bounds the datapoints kept).
pub const MAX_EVALUATION_PERIODS: u32 = 100;

/// The longest evaluation range (`period × evaluation_periods`): one day, so a rule reads a
/// bounded slice of the store and stays portable to CloudWatch alarms.
pub const MAX_EVALUATION_RANGE: Duration = Duration::from_secs(24 * 60 * 60);

/// The shortest period and tick.
pub const MIN_PERIOD: Duration = Duration::from_secs(1);

/// The most webhook delivery attempts per notification.
pub const MAX_ATTEMPTS: u32 = 20;

fn default_delay() -> String {
    "0s".to_owned()
}

fn default_attempts() -> u32 {
    5
}

fn default_timeout() -> String {
    "5s".to_owned()
}

/// The file as written: parsed, not yet validated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    /// When rules are evaluated.
    #[serde(default)]
    pub evaluation: EvaluationFile,
    /// Where state changes are sent, besides the log.
    #[serde(default)]
    pub notify: NotifyFile,
    /// The rules (`[[rule]]` tables).
    #[serde(default)]
    pub rule: Vec<RuleFile>,
}

/// `[evaluation]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationFile {
    /// How often every rule is evaluated; default: the shortest `period` among the rules.
    pub tick: Option<String>,
    /// How long after a period ends it is first evaluated, so late batches count.
    #[serde(default = "default_delay")]
    pub delay: String,
}

impl Default for EvaluationFile {
    fn default() -> Self {
        Self {
            tick: None,
            delay: default_delay(),
        }
    }
}

/// `[notify]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    /// `http://` or `https://` URL each state change is POSTed to as JSON.
    pub webhook_url: Option<String>,
    /// Delivery attempts per notification (first try included).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Timeout of one delivery attempt.
    #[serde(default = "default_timeout")]
    pub timeout: String,
}

impl Default for NotifyFile {
    fn default() -> Self {
        Self {
            webhook_url: None,
            max_attempts: default_attempts(),
            timeout: default_timeout(),
        }
    }
}

/// One `[[rule]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Unique name: letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// Metric name as stored, e.g. `cpu.utilization`.
    pub metric: String,
    /// Makes the datapoint a percentage: `100 × S(metric) / S(denominator)` per period, where S
    /// is `statistic` (which must be `sum`) over the same dimensions and host(s); 0 when the
    /// denominator's sum is 0 or missing while the metric has data, missing when neither has.
    pub denominator: Option<String>,
    /// The exact dimension set of the series; none means the series without dimensions.
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// How the values of one period become one datapoint.
    pub statistic: Statistic,
    /// Length of one period, e.g. `"60s"`.
    pub period: String,
    /// How a datapoint is compared with the threshold.
    pub comparison: Comparison,
    /// The threshold.
    pub threshold: f64,
    /// M: breaching datapoints (of the last N) that put the alarm in ALARM.
    pub datapoints_to_alarm: u32,
    /// N: how many of the most recent periods are evaluated.
    pub evaluation_periods: u32,
    /// How periods without a datapoint are treated.
    #[serde(default)]
    pub missing_data: MissingData,
    /// One alarm per host, or one over the whole fleet.
    #[serde(default)]
    pub scope: Scope,
}

/// How the values of a period become its datapoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    /// Mean.
    Avg,
    /// Largest value.
    Max,
    /// Smallest value.
    Min,
    /// Sum.
    Sum,
    /// Number of values.
    Count,
}

/// How a datapoint is compared with the threshold; "breaching" means the comparison holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// `>`: GreaterThanThreshold.
    #[serde(rename = ">")]
    Greater,
    /// `>=`: GreaterThanOrEqualToThreshold.
    #[serde(rename = ">=")]
    GreaterOrEqual,
    /// `<`: LessThanThreshold.
    #[serde(rename = "<")]
    Less,
    /// `<=`: LessThanOrEqualToThreshold.
    #[serde(rename = "<=")]
    LessOrEqual,
}

/// CloudWatch's `TreatMissingData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingData {
    /// Missing datapoints are not considered; all N missing gives INSUFFICIENT_DATA.
    #[default]
    Missing,
    /// Missing datapoints count as breaching.
    Breaching,
    /// Missing datapoints count as not breaching.
    NotBreaching,
    /// Missing datapoints are not considered; all N missing keeps the current state.
    Ignore,
}

/// Which alarms a rule makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One alarm per host that ever sent a batch.
    #[default]
    PerHost,
    /// One alarm over the values of every host.
    Fleet,
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// Metric name.
    pub metric: String,
    /// The metric the datapoint is a percentage of (`100 × S(metric) / S(denominator)`, see
    /// [`crate::alarm::eval::guarded_ratio`]); `statistic` is then `sum`.
    pub denominator: Option<String>,
    /// Exact dimension set (of the metric and of the denominator).
    pub dimensions: BTreeMap<String, String>,
    /// Statistic per period.
    pub statistic: Statistic,
    /// Period length in milliseconds (a whole number of seconds).
    pub period_ms: i64,
    /// Comparison with the threshold.
    pub comparison: Comparison,
    /// Threshold (finite).
    pub threshold: f64,
    /// M.
    pub datapoints_to_alarm: u32,
    /// N.
    pub evaluation_periods: u32,
    /// Missing-data policy.
    pub missing_data: MissingData,
    /// Per host or fleet.
    pub scope: Scope,
}

/// Webhook settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Webhook {
    /// The URL.
    pub url: String,
    /// Attempts per notification, 1 to [`MAX_ATTEMPTS`].
    pub max_attempts: u32,
    /// Timeout of one attempt.
    pub timeout: Duration,
}

impl Webhook {
    /// Webhook settings as given (a rules file's are validated by [`RulesFile::validate`]).
    pub fn new(url: impl Into<String>, max_attempts: u32, timeout: Duration) -> Self {
        Self {
            url: url.into(),
            max_attempts,
            timeout,
        }
    }
}

/// A validated rules file.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Rules {
    /// The file it came from.
    pub source: PathBuf,
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// How often rules are evaluated.
    pub tick: Duration,
    /// How long after a period ends it is evaluated.
    pub delay: Duration,
    /// The webhook, if any.
    pub webhook: Option<Webhook>,
}

/// One problem in a rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesIssue {
    /// The key, e.g. `rule[0].period`, or `line 3, column 1` for a syntax error.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem of a rules file, each naming the file and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// The file could not be read.
    #[error("reading the rules file {}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The file is not a valid rules file.
    #[error("{}", Issues(path, issues))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The problems, in file order.
        issues: Vec<RulesIssue>,
    },
}

struct Issues<'a>(&'a PathBuf, &'a Vec<RulesIssue>);

impl fmt::Display for Issues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.1.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}: {}: {}",
                self.0.display(),
                issue.location,
                issue.message
            )?;
        }
        Ok(())
    }
}

/// Read, parse and validate `path`. Blocking; call at startup.
pub fn load(path: &Path) -> Result<Rules, RulesError> {
    let text = std::fs::read_to_string(path).map_err(|e| RulesError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse(&text, path)
}

/// Parse and validate `text`, which came from `path`.
pub fn parse(text: &str, path: &Path) -> Result<Rules, RulesError> {
    let file: RulesFile = toml::from_str(text).map_err(|e| {
        let location = match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
                format!("line {line}, column {column}")
            }
            None => "file".to_owned(),
        };
        RulesError::Invalid {
            path: path.to_path_buf(),
            issues: vec![RulesIssue {
                location,
                message: e.message().to_owned(),
            }],
        }
    })?;
    file.validate(path)
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?}: {e} (use a number and a unit, e.g. \"60s\", \"5m\")")
    })
}

/// Why `name` is not a metric name: 1 to [`MAX_METRIC_NAME_LEN`] characters, none of them a
/// control character, not only spaces.
fn metric_name_problem(name: &str) -> Option<String> {
    let chars = name.chars().count();
    if chars == 0 {
        Some("must not be empty".into())
    } else if chars > MAX_METRIC_NAME_LEN
        || name.chars().any(char::is_control)
        || name.trim().is_empty()
    {
        Some(format!(
            "{name:?} is not a metric name: 1 to {MAX_METRIC_NAME_LEN} characters, \
             no control characters, not only spaces"
        ))
    } else {
        None
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl RulesFile {
    /// Check every value; report all problems at once.
    pub fn validate(self, path: &Path) -> Result<Rules, RulesError> {
        let mut issues = Vec::new();
        let mut rules = Vec::new();
        let mut names = BTreeSet::new();
        for (i, r) in self.rule.into_iter().enumerate() {
            if let Some(rule) = r.validate(i, &mut names, &mut issues) {
                rules.push(rule);
            }
        }
        let shortest = rules
            .iter()
            .map(|r| Duration::from_millis(r.period_ms.unsigned_abs()))
            .min()
            .unwrap_or(Duration::from_secs(60));
        let (tick, delay) = self.evaluation.validate(shortest, &mut issues);
        let webhook = self.notify.validate(&mut issues);
        if issues.is_empty() {
            Ok(Rules {
                source: path.to_path_buf(),
                rules,
                tick,
                delay,
                webhook,
            })
        } else {
            Err(RulesError::Invalid {
                path: path.to_path_buf(),
                issues,
            })
        }
    }
}

impl RuleFile {
    /// Check the rule at index `i` of the file, adding its problems to `issues`; `names` holds
    /// the names of the rules before it. The rule, when its period is valid.
    fn validate(
        self,
        i: usize,
        names: &mut BTreeSet<String>,
        issues: &mut Vec<RulesIssue>,
    ) -> Option<Rule> {
        self.check_series(i, names, issues);
        let period = self.period(i, issues);
        self.check_window(i, period, issues);
        let r = self;
        let p = period?;
        Some(Rule {
            name: r.name,
            metric: r.metric,
            denominator: r.denominator,
            dimensions: r.dimensions,
            statistic: r.statistic,
            period_ms: i64::try_from(p.as_millis()).unwrap_or(i64::MAX),
            comparison: r.comparison,
            threshold: r.threshold,
            datapoints_to_alarm: r.datapoints_to_alarm,
            evaluation_periods: r.evaluation_periods,
            missing_data: r.missing_data,
            scope: r.scope,
        })
    }

    /// The name (valid, not used before), the metric and the denominator.
    fn check_series(&self, i: usize, names: &mut BTreeSet<String>, issues: &mut Vec<RulesIssue>) {
        let r = self;
        let mut issue = |location: String, message: String| {
            issues.push(RulesIssue { location, message });
        };
        let key = |field: &str| format!("rule[{i}].{field}");
        if !valid_name(&r.name) {
            issue(
                key("name"),
                format!(
                    "{:?} must be 1 to 200 letters, digits, '-', '_' or '.'",
                    r.name
                ),
            );
        } else if !names.insert(r.name.clone()) {
            issue(
                key("name"),
                format!("{:?} is used by an earlier rule", r.name),
            );
        }
        if r.metric.is_empty() {
            issue(key("metric"), "must not be empty".into());
        }
        if let Some(denominator) = &r.denominator {
            if let Some(problem) = metric_name_problem(denominator) {
                issue(key("denominator"), problem);
            } else if *denominator == r.metric {
                issue(
                    key("denominator"),
                    format!("{denominator:?} must differ from metric"),
                );
            }
            if r.statistic != Statistic::Sum {
                issue(
                    key("statistic"),
                    format!(
                        "must be \"sum\" in rule {:?}, which has a denominator: the \
                         datapoint is 100 × sum(metric) / sum(denominator), a rate of \
                         counts; avg, max, min or count of counters make no rate",
                        r.name
                    ),
                );
            }
        }
    }

    /// The period: a whole number of seconds, at least [`MIN_PERIOD`].
    fn period(&self, i: usize, issues: &mut Vec<RulesIssue>) -> Option<Duration> {
        let r = self;
        let mut issue = |location: String, message: String| {
            issues.push(RulesIssue { location, message });
        };
        let key = |field: &str| format!("rule[{i}].{field}");
        match duration(&r.period) {
            Ok(p) if p < MIN_PERIOD || p.subsec_nanos() != 0 => {
                issue(
                    key("period"),
                    format!(
                        "{:?} must be a whole number of seconds, at least 1s",
                        r.period
                    ),
                );
                None
            }
            Ok(p) => Some(p),
            Err(message) => {
                issue(key("period"), message);
                None
            }
        }
    }

    /// The threshold and the evaluation window (`datapoints_to_alarm` of `evaluation_periods`,
    /// within [`MAX_EVALUATION_RANGE`] of the `period`, when it is valid).
    fn check_window(&self, i: usize, period: Option<Duration>, issues: &mut Vec<RulesIssue>) {
        let r = self;
        let mut issue = |location: String, message: String| {
            issues.push(RulesIssue { location, message });
        };
        let key = |field: &str| format!("rule[{i}].{field}");
        if !r.threshold.is_finite() {
            issue(key("threshold"), "must be a finite number".into());
        }
        let (m, n) = (r.datapoints_to_alarm, r.evaluation_periods);
        if n == 0 || n > MAX_EVALUATION_PERIODS {
            issue(
                key("evaluation_periods"),
                format!("{n} must be between 1 and {MAX_EVALUATION_PERIODS}"),
            );
        }
        if m == 0 || m > n {
            issue(
                key("datapoints_to_alarm"),
                format!("{m} must be between 1 and evaluation_periods ({n})"),
            );
        }
        if let Some(p) = period
            && p.saturating_mul(n) > MAX_EVALUATION_RANGE
        {
            issue(
                key("evaluation_periods"),
                format!(
                    "period × evaluation_periods is {}, the limit is {}",
                    humantime::format_duration(p.saturating_mul(n)),
                    humantime::format_duration(MAX_EVALUATION_RANGE)
                ),
            );
        }
    }
}

impl EvaluationFile {
    /// The tick (by default `shortest`, the shortest rule period) and the delay.
    fn validate(&self, shortest: Duration, issues: &mut Vec<RulesIssue>) -> (Duration, Duration) {
        let mut issue = |location: String, message: String| {
            issues.push(RulesIssue { location, message });
        };
        let tick = match &self.tick {
            None => shortest,
            Some(text) => match duration(text) {
                Ok(t) if t < MIN_PERIOD => {
                    issue(
                        "evaluation.tick".into(),
                        format!("{text:?} must be at least 1s"),
                    );
                    shortest
                }
                Ok(t) => t,
                Err(message) => {
                    issue("evaluation.tick".into(), message);
                    shortest
                }
            },
        };
        let delay = duration(&self.delay).unwrap_or_else(|message| {
            issue("evaluation.delay".into(), message);
            Duration::ZERO
        });
        (tick, delay)
    }
}

impl NotifyFile {
    /// The webhook, when one is configured.
    fn validate(self, issues: &mut Vec<RulesIssue>) -> Option<Webhook> {
        let mut issue = |location: String, message: String| {
            issues.push(RulesIssue { location, message });
        };
        let timeout = match duration(&self.timeout) {
            Ok(t) if t.is_zero() => {
                issue("notify.timeout".into(), "must be more than 0s".into());
                Duration::from_secs(5)
            }
            Ok(t) => t,
            Err(message) => {
                issue("notify.timeout".into(), message);
                Duration::from_secs(5)
            }
        };
        let attempts = self.max_attempts;
        if attempts == 0 || attempts > MAX_ATTEMPTS {
            issue(
                "notify.max_attempts".into(),
                format!("{attempts} must be between 1 and {MAX_ATTEMPTS}"),
            );
        }
        self.webhook_url.and_then(|url| {
            match url::Url::parse(&url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    return Some(Webhook {
                        url,
                        max_attempts: attempts,
                        timeout,
                    });
                }
                Ok(_) => issue(
                    "notify.webhook_url".into(),
                    format!("{url:?} must be an http:// or https:// URL with a host"),
                ),
                Err(e) => issue(
                    "notify.webhook_url".into(),
                    format!("{url:?} is not a URL: {e}"),
                ),
            }
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared `cpu-high` fixture: average over 60 s, 3 of 5.
    static RULE: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| outpost_testkit::cpu_high_rule("avg", "60s", 3, 5));

    fn parse_str(text: &str) -> Result<Rules, RulesError> {
        parse(text, Path::new("rules.toml"))
    }

    fn error(text: &str) -> String {
        parse_str(text).unwrap_err().to_string()
    }

    #[test]
    fn the_shipped_example_parses_with_its_three_rules() {
        let text = include_str!("../../../rules.example.toml");
        let rules = parse_str(text).unwrap();
        let names: Vec<_> = rules.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["cpu-high", "memory-high", "host-silent", "error-rate-high"]
        );
        assert_eq!(rules.tick, Duration::from_secs(60));
        assert!(rules.webhook.is_none());
        let cpu = &rules.rules[0];
        assert_eq!(
            (
                cpu.datapoints_to_alarm,
                cpu.evaluation_periods,
                cpu.period_ms
            ),
            (3, 5, 60_000)
        );
        assert_eq!(rules.rules[2].missing_data, MissingData::Breaching);
        assert!(rules.rules[..3].iter().all(|r| r.denominator.is_none()));
        let rate = &rules.rules[3];
        assert_eq!(rate.metric, "log.error_lines");
        assert_eq!(rate.denominator.as_deref(), Some("log.lines"));
        assert_eq!(rate.statistic, Statistic::Sum);
        assert_eq!(
            rate.dimensions,
            BTreeMap::from([("service".to_owned(), "app".to_owned())])
        );
        assert_eq!(
            (
                rate.comparison,
                rate.threshold,
                rate.datapoints_to_alarm,
                rate.evaluation_periods,
                rate.period_ms,
                rate.missing_data,
                rate.scope
            ),
            (
                Comparison::Greater,
                5.0,
                3,
                5,
                60_000,
                MissingData::NotBreaching,
                Scope::PerHost
            )
        );
    }

    /// The shared error-rate fixture (60 s, 3 of 5), with `statistic` and `denominator` to
    /// replace.
    static RATE: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| outpost_testkit::error_rate_rule("error-rate", "60s", 3, 5));

    #[test]
    fn a_denominator_is_kept_and_is_optional() {
        let rules = parse_str(&format!("{}{}", *RULE, *RATE)).unwrap();
        assert_eq!(rules.rules[0].denominator, None);
        assert_eq!(rules.rules[1].denominator.as_deref(), Some("log.lines"));
    }

    #[test]
    fn a_denominator_needs_the_sum_statistic() {
        for statistic in ["avg", "max", "min", "count"] {
            let message = error(&RATE.replace("\"sum\"", &format!("{statistic:?}")));
            assert!(
                message.starts_with(
                    "rules.toml: rule[0].statistic: must be \"sum\" in rule \"error-rate\", \
                     which has a denominator"
                ),
                "{statistic}: {message}"
            );
        }
    }

    #[test]
    fn a_denominator_must_be_a_metric_name_other_than_the_metric() {
        let with =
            |denominator: &str| error(&RATE.replace("\"log.lines\"", &format!("{denominator:?}")));
        assert!(
            with("").contains("rules.toml: rule[0].denominator: must not be empty"),
            "{}",
            with("")
        );
        for bad in [" ", "log\nlines"] {
            let message = with(bad);
            assert!(
                message.contains("rules.toml: rule[0].denominator: ")
                    && message.contains("is not a metric name"),
                "{bad:?}: {message}"
            );
        }
        let message = with("log.error_lines");
        assert!(
            message.contains(
                "rules.toml: rule[0].denominator: \"log.error_lines\" must differ from metric"
            ),
            "{message}"
        );
        // The name limit, and one past it.
        assert!(parse_str(&RATE.replace("log.lines", &"l".repeat(MAX_METRIC_NAME_LEN))).is_ok());
        let message = with(&"l".repeat(MAX_METRIC_NAME_LEN + 1));
        assert!(message.contains("rule[0].denominator"), "{message}");
    }

    #[test]
    fn every_denominator_problem_is_reported_at_once() {
        let text = RATE
            .replace("\"sum\"", "\"avg\"")
            .replace("\"log.lines\"", "\"log.error_lines\"");
        let message = error(&text);
        assert!(message.contains("rule[0].statistic"), "{message}");
        assert!(message.contains("rule[0].denominator"), "{message}");
    }

    #[test]
    fn defaults_are_missing_per_host_and_tick_is_the_shortest_period() {
        let text = format!(
            "{}{}",
            *RULE,
            RULE.replace("cpu-high", "b").replace("60s", "10s")
        );
        let rules = parse_str(&text).unwrap();
        assert_eq!(rules.rules[0].missing_data, MissingData::Missing);
        assert_eq!(rules.rules[0].scope, Scope::PerHost);
        assert_eq!(rules.tick, Duration::from_secs(10));
        assert_eq!(rules.delay, Duration::ZERO);
    }

    #[test]
    fn an_unknown_key_names_the_file_and_line() {
        let message = error(&format!("{}colour = \"red\"\n", *RULE));
        assert!(
            message.starts_with("rules.toml: line 12, column 1: unknown field `colour`"),
            "{message}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let text = RULE
            .replace("\"60s\"", "\"soon\"")
            .replace("= 3", "= 6")
            .replace("80.0", "nan")
            + "[notify]\nwebhook_url = \"ftp://x\"\n";
        let message = error(&text);
        for key in [
            "rules.toml: rule[0].period: invalid duration \"soon\"",
            "rules.toml: rule[0].datapoints_to_alarm: 6 must be between 1 and evaluation_periods (5)",
            "rules.toml: rule[0].threshold: must be a finite number",
            "rules.toml: notify.webhook_url: \"ftp://x\" must be an http:// or https:// URL",
        ] {
            assert!(message.contains(key), "{key} not in {message}");
        }
    }

    #[test]
    fn duplicate_and_bad_names_are_refused() {
        let message = error(&format!("{}{}", *RULE, *RULE));
        assert!(message.contains("rule[1].name: \"cpu-high\" is used by an earlier rule"));
        let message = error(&RULE.replace("cpu-high", "cpu high"));
        assert!(message.contains("rule[0].name"), "{message}");
    }

    #[test]
    fn evaluation_periods_limit_is_enforced() {
        let at = |n: u32| {
            RULE.replace("= 5", &format!("= {n}"))
                .replace("\"60s\"", "\"1s\"")
        };
        assert!(parse_str(&at(MAX_EVALUATION_PERIODS)).is_ok());
        let message = error(&at(MAX_EVALUATION_PERIODS + 1));
        assert!(
            message.contains("rule[0].evaluation_periods: 101"),
            "{message}"
        );
    }

    #[test]
    fn evaluation_range_limit_is_enforced() {
        let range = MAX_EVALUATION_RANGE.as_secs();
        let at = |secs: u64| RULE.replace("\"60s\"", &format!("\"{}s\"", secs / 5));
        assert!(parse_str(&at(range)).is_ok());
        let message = error(&at(range + 5));
        assert!(message.contains("period × evaluation_periods"), "{message}");
    }

    #[test]
    fn webhook_attempts_limit_is_enforced() {
        let with = |n: u32| {
            format!(
                "{}[notify]\nwebhook_url = \"http://127.0.0.1:9/h\"\nmax_attempts = {n}\n",
                *RULE
            )
        };
        let rules = parse_str(&with(MAX_ATTEMPTS)).unwrap();
        assert_eq!(rules.webhook.unwrap().max_attempts, MAX_ATTEMPTS);
        assert!(error(&with(MAX_ATTEMPTS + 1)).contains("notify.max_attempts: 21"));
    }

    #[test]
    fn a_sub_second_period_is_refused() {
        assert!(error(&RULE.replace("\"60s\"", "\"1500ms\"")).contains("rule[0].period"));
    }

    #[test]
    fn a_missing_file_is_named() {
        let message = load(Path::new("/nonexistent/rules.toml"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("/nonexistent/rules.toml"), "{message}");
    }
}
