//! The AWS backends' settings, read from the environment the way the Lambda function is
//! configured: `OUTPOST_BUCKET`, `OUTPOST_TABLE`, `OUTPOST_METRICS_NAMESPACE`,
//! `OUTPOST_CLOUDWATCH_MODE`, `OUTPOST_CLOUDWATCH_SCOPE`, `OUTPOST_CLOUDWATCH_METRICS`,
//! `OUTPOST_METRICS_RETENTION_DAYS`, `OUTPOST_S3_SSE`, `OUTPOST_S3_KMS_KEY_ID`, and the health
//! check's thresholds `OUTPOST_SILENT_AFTER_MINUTES`, `OUTPOST_CPU_THRESHOLD`,
//! `OUTPOST_MEMORY_THRESHOLD`. Credentials, region and endpoints come from the standard AWS
//! variables through `aws-config`. Pure: [`AwsSettings::from_lookup`] takes the variables as a
//! function, so tests need no process environment.

use crate::backend::aws::cloudwatch::{CloudWatchMode, CloudWatchScope, MetricSelection};
use crate::error::ConfigError;
use outpost_sink_core::health::Thresholds;

/// Bucket for log objects and dead letters.
pub const ENV_BUCKET: &str = "OUTPOST_BUCKET";
/// DynamoDB table for metric points and host summaries.
pub const ENV_TABLE: &str = "OUTPOST_TABLE";
/// CloudWatch namespace of the published metrics.
pub const ENV_NAMESPACE: &str = "OUTPOST_METRICS_NAMESPACE";
/// `emf`, `put_metric_data` or `off`.
pub const ENV_CLOUDWATCH_MODE: &str = "OUTPOST_CLOUDWATCH_MODE";
/// `per_host` or `fleet`: whether CloudWatch series carry the `Host` dimension.
pub const ENV_CLOUDWATCH_SCOPE: &str = "OUTPOST_CLOUDWATCH_SCOPE";
/// `*` or a comma-separated list of `name` / `name{key=value,...}`: the series published to
/// CloudWatch (see [`MetricSelection`]).
pub const ENV_CLOUDWATCH_METRICS: &str = "OUTPOST_CLOUDWATCH_METRICS";
/// Minutes without a batch after which the health check counts a host as silent.
pub const ENV_SILENT_AFTER_MINUTES: &str = "OUTPOST_SILENT_AFTER_MINUTES";
/// CPU utilization (percent) above which the health check counts a host as over CPU.
pub const ENV_CPU_THRESHOLD: &str = "OUTPOST_CPU_THRESHOLD";
/// Memory utilization (percent) above which the health check counts a host as over memory.
pub const ENV_MEMORY_THRESHOLD: &str = "OUTPOST_MEMORY_THRESHOLD";
/// Days a metric point is kept in DynamoDB (its TTL).
pub const ENV_RETENTION_DAYS: &str = "OUTPOST_METRICS_RETENTION_DAYS";
/// Server-side encryption of log objects: `AES256` (SSE-S3) or `aws:kms`.
pub const ENV_S3_SSE: &str = "OUTPOST_S3_SSE";
/// KMS key for `aws:kms` (the bucket's default key when unset).
pub const ENV_S3_KMS_KEY_ID: &str = "OUTPOST_S3_KMS_KEY_ID";
/// Set by the Lambda runtime: its presence makes EMF the default CloudWatch mode.
pub const ENV_LAMBDA_FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";

/// Default CloudWatch namespace.
pub const DEFAULT_NAMESPACE: &str = "Outpost";
/// Default retention of metric points in DynamoDB, days.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// Server-side encryption requested for every log object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3 (`AES256`).
    S3Managed,
    /// SSE-KMS, with this key or the bucket's default AWS-managed key.
    Kms {
        /// Key id or ARN.
        key_id: Option<String>,
    },
}

/// Everything the AWS backends need besides the SDK's own configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsSettings {
    /// `OUTPOST_BUCKET`.
    pub bucket: String,
    /// `OUTPOST_TABLE`.
    pub table: String,
    /// `OUTPOST_METRICS_NAMESPACE`.
    pub namespace: String,
    /// `OUTPOST_CLOUDWATCH_MODE`.
    pub cloudwatch: CloudWatchMode,
    /// `OUTPOST_CLOUDWATCH_SCOPE`.
    pub scope: CloudWatchScope,
    /// `OUTPOST_CLOUDWATCH_METRICS`: every series when unset or `*`.
    pub selection: MetricSelection,
    /// `OUTPOST_METRICS_RETENTION_DAYS`.
    pub retention_days: u32,
    /// `OUTPOST_S3_SSE` and `OUTPOST_S3_KMS_KEY_ID`.
    pub encryption: Encryption,
    /// `OUTPOST_SILENT_AFTER_MINUTES`, `OUTPOST_CPU_THRESHOLD` and `OUTPOST_MEMORY_THRESHOLD`.
    pub health: Thresholds,
}

impl AwsSettings {
    /// Read the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read the settings through `var` (a variable's value, `None` when unset). Empty values
    /// count as unset.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &'static str, what: &str| {
            get(name).ok_or_else(|| ConfigError::Env {
                var: name,
                message: format!("is not set; it names the {what}"),
            })
        };
        // In this order: the first problem found is the one reported.
        Ok(Self {
            bucket: required(ENV_BUCKET, "S3 bucket for the logs")?,
            table: required(ENV_TABLE, "DynamoDB table for the metrics")?,
            namespace: namespace(&get)?,
            cloudwatch: cloudwatch_mode(&get)?,
            scope: cloudwatch_scope(&get)?,
            selection: selection(&get)?,
            retention_days: retention_days(&get)?,
            encryption: encryption(&get)?,
            health: health_thresholds(&get)?,
        })
    }
}

/// A variable's trimmed value, `None` when unset or empty.
type Get<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// `OUTPOST_METRICS_NAMESPACE`: a custom CloudWatch namespace.
fn namespace(get: &Get<'_>) -> Result<String, ConfigError> {
    let namespace = get(ENV_NAMESPACE).unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    if namespace.len() > 255 || namespace.starts_with(':') || namespace.starts_with("AWS/") {
        return Err(ConfigError::Env {
            var: ENV_NAMESPACE,
            message: format!(
                "`{namespace}` is not a custom namespace (1 to 255 characters, not `AWS/...`)"
            ),
        });
    }
    Ok(namespace)
}

/// `OUTPOST_CLOUDWATCH_MODE`: EMF by default in Lambda, `PutMetricData` elsewhere.
fn cloudwatch_mode(get: &Get<'_>) -> Result<CloudWatchMode, ConfigError> {
    Ok(match get(ENV_CLOUDWATCH_MODE).as_deref() {
        None if get(ENV_LAMBDA_FUNCTION_NAME).is_some() => CloudWatchMode::Emf,
        None => CloudWatchMode::PutMetricData,
        Some("emf") => CloudWatchMode::Emf,
        Some("put_metric_data") => CloudWatchMode::PutMetricData,
        Some("off") => CloudWatchMode::Off,
        Some(other) => {
            return Err(ConfigError::Env {
                var: ENV_CLOUDWATCH_MODE,
                message: format!("`{other}` is not one of emf, put_metric_data, off"),
            });
        }
    })
}

/// `OUTPOST_CLOUDWATCH_SCOPE`: per host by default.
fn cloudwatch_scope(get: &Get<'_>) -> Result<CloudWatchScope, ConfigError> {
    Ok(match get(ENV_CLOUDWATCH_SCOPE).as_deref() {
        None | Some("per_host") => CloudWatchScope::PerHost,
        Some("fleet") => CloudWatchScope::Fleet,
        Some(other) => {
            return Err(ConfigError::Env {
                var: ENV_CLOUDWATCH_SCOPE,
                message: format!("`{other}` is not one of per_host, fleet"),
            });
        }
    })
}

/// `OUTPOST_CLOUDWATCH_METRICS`: every series when unset.
fn selection(get: &Get<'_>) -> Result<MetricSelection, ConfigError> {
    Ok(match get(ENV_CLOUDWATCH_METRICS) {
        None => MetricSelection::all(),
        Some(v) => MetricSelection::parse(&v).map_err(|error| ConfigError::Env {
            var: ENV_CLOUDWATCH_METRICS,
            message: error.to_string(),
        })?,
    })
}

/// `OUTPOST_METRICS_RETENTION_DAYS`.
fn retention_days(get: &Get<'_>) -> Result<u32, ConfigError> {
    Ok(match get(ENV_RETENTION_DAYS) {
        None => DEFAULT_RETENTION_DAYS,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=36_500).contains(d))
            .ok_or_else(|| ConfigError::Env {
                var: ENV_RETENTION_DAYS,
                message: format!("`{v}` is not a number of days from 1 to 36500"),
            })?,
    })
}

/// `OUTPOST_S3_SSE` and `OUTPOST_S3_KMS_KEY_ID`.
fn encryption(get: &Get<'_>) -> Result<Encryption, ConfigError> {
    Ok(match get(ENV_S3_SSE).as_deref() {
        None | Some("AES256") => {
            if get(ENV_S3_KMS_KEY_ID).is_some() {
                return Err(ConfigError::Env {
                    var: ENV_S3_KMS_KEY_ID,
                    message: format!("is set but {ENV_S3_SSE} is not `aws:kms`"),
                });
            }
            Encryption::S3Managed
        }
        Some("aws:kms") => Encryption::Kms {
            key_id: get(ENV_S3_KMS_KEY_ID),
        },
        Some(other) => {
            return Err(ConfigError::Env {
                var: ENV_S3_SSE,
                message: format!("`{other}` is not one of AES256, aws:kms"),
            });
        }
    })
}

/// The health check's thresholds: `OUTPOST_SILENT_AFTER_MINUTES`, `OUTPOST_CPU_THRESHOLD` and
/// `OUTPOST_MEMORY_THRESHOLD`.
fn health_thresholds(get: &Get<'_>) -> Result<Thresholds, ConfigError> {
    let defaults = Thresholds::default();
    let silent_after_minutes = match get(ENV_SILENT_AFTER_MINUTES) {
        None => defaults.silent_after_minutes,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|m| (1..=MAX_SILENT_AFTER_MINUTES).contains(m))
            .ok_or_else(|| ConfigError::Env {
                var: ENV_SILENT_AFTER_MINUTES,
                message: format!(
                    "`{v}` is not a number of minutes from 1 to {MAX_SILENT_AFTER_MINUTES}"
                ),
            })?,
    };
    let percent = |var: &'static str, default: f64| match get(var) {
        None => Ok(default),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=100.0).contains(p))
            .ok_or_else(|| ConfigError::Env {
                var,
                message: format!("`{v}` is not a percentage from 0 to 100"),
            }),
    };
    Ok(Thresholds {
        silent_after_minutes,
        cpu_percent: percent(ENV_CPU_THRESHOLD, defaults.cpu_percent)?,
        memory_percent: percent(ENV_MEMORY_THRESHOLD, defaults.memory_percent)?,
    })
}

/// Largest `OUTPOST_SILENT_AFTER_MINUTES`: a week.
pub const MAX_SILENT_AFTER_MINUTES: u32 = 7 * 24 * 60;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<AwsSettings, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        AwsSettings::from_lookup(|name| vars.get(name).cloned())
    }

    const BASE: [(&str, &str); 2] = [(ENV_BUCKET, "logs-bucket"), (ENV_TABLE, "metrics")];

    #[test]
    fn defaults_outside_and_inside_lambda() {
        let s = settings(&BASE).unwrap();
        assert_eq!(s.namespace, "Outpost");
        assert_eq!(s.cloudwatch, CloudWatchMode::PutMetricData);
        assert_eq!(s.retention_days, 30);
        assert_eq!(s.encryption, Encryption::S3Managed);
        assert_eq!(s.scope, CloudWatchScope::PerHost);
        assert!(s.selection.is_all());
        assert_eq!(s.health, Thresholds::default());
        let mut vars = BASE.to_vec();
        vars.push((ENV_LAMBDA_FUNCTION_NAME, "outpost-sink"));
        assert_eq!(settings(&vars).unwrap().cloudwatch, CloudWatchMode::Emf);
        vars.push((ENV_CLOUDWATCH_MODE, "put_metric_data"));
        assert_eq!(
            settings(&vars).unwrap().cloudwatch,
            CloudWatchMode::PutMetricData
        );
    }

    #[test]
    fn each_bad_variable_is_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[(ENV_BUCKET, "")], ENV_BUCKET),
            (&[(ENV_BUCKET, "b"), (ENV_TABLE, "  ")], ENV_TABLE),
            (&[(ENV_CLOUDWATCH_MODE, "statsd")], ENV_CLOUDWATCH_MODE),
            (&[(ENV_CLOUDWATCH_SCOPE, "per-host")], ENV_CLOUDWATCH_SCOPE),
            (&[(ENV_CLOUDWATCH_SCOPE, "Fleet")], ENV_CLOUDWATCH_SCOPE),
            (
                &[(ENV_CLOUDWATCH_METRICS, "cpu{cpu=total")],
                ENV_CLOUDWATCH_METRICS,
            ),
            (&[(ENV_CLOUDWATCH_METRICS, "a,,b")], ENV_CLOUDWATCH_METRICS),
            (&[(ENV_SILENT_AFTER_MINUTES, "0")], ENV_SILENT_AFTER_MINUTES),
            (
                &[(ENV_SILENT_AFTER_MINUTES, "10081")],
                ENV_SILENT_AFTER_MINUTES,
            ),
            (
                &[(ENV_SILENT_AFTER_MINUTES, "2.5")],
                ENV_SILENT_AFTER_MINUTES,
            ),
            (&[(ENV_CPU_THRESHOLD, "101")], ENV_CPU_THRESHOLD),
            (&[(ENV_CPU_THRESHOLD, "NaN")], ENV_CPU_THRESHOLD),
            (&[(ENV_MEMORY_THRESHOLD, "-1")], ENV_MEMORY_THRESHOLD),
            (&[(ENV_MEMORY_THRESHOLD, "85%")], ENV_MEMORY_THRESHOLD),
            (&[(ENV_RETENTION_DAYS, "0")], ENV_RETENTION_DAYS),
            (&[(ENV_RETENTION_DAYS, "a week")], ENV_RETENTION_DAYS),
            (&[(ENV_NAMESPACE, "AWS/EC2")], ENV_NAMESPACE),
            (&[(ENV_S3_SSE, "none")], ENV_S3_SSE),
            (&[(ENV_S3_KMS_KEY_ID, "k")], ENV_S3_KMS_KEY_ID),
        ];
        for (extra, var) in cases {
            let mut vars = BASE.to_vec();
            vars.extend_from_slice(extra);
            let vars: Vec<_> =
                vars.into_iter()
                    .rev()
                    .fold(Vec::new(), |mut acc: Vec<(&str, &str)>, kv| {
                        if !acc.iter().any(|(k, _)| *k == kv.0) {
                            acc.push(kv);
                        }
                        acc
                    });
            let error = settings(&vars).unwrap_err();
            assert!(error.to_string().starts_with(var), "{var}: {error}");
        }
    }

    #[test]
    fn scope_and_health_thresholds() {
        let mut vars = BASE.to_vec();
        vars.push((ENV_CLOUDWATCH_SCOPE, "fleet"));
        vars.push((ENV_SILENT_AFTER_MINUTES, "10080"));
        vars.push((ENV_CPU_THRESHOLD, "92.5"));
        vars.push((ENV_MEMORY_THRESHOLD, " 0 "));
        let s = settings(&vars).unwrap();
        assert_eq!(s.scope, CloudWatchScope::Fleet);
        assert_eq!(s.scope.as_str(), "fleet");
        assert_eq!(
            s.health,
            Thresholds {
                silent_after_minutes: 10_080,
                cpu_percent: 92.5,
                memory_percent: 0.0,
            }
        );
        let mut vars = BASE.to_vec();
        vars.push((ENV_CLOUDWATCH_SCOPE, "per_host"));
        assert_eq!(settings(&vars).unwrap().scope, CloudWatchScope::PerHost);
    }

    #[test]
    fn metric_selection() {
        let mut vars = BASE.to_vec();
        vars.push((ENV_CLOUDWATCH_METRICS, " * "));
        assert!(settings(&vars).unwrap().selection.is_all());
        let mut vars = BASE.to_vec();
        vars.push((
            ENV_CLOUDWATCH_METRICS,
            "cpu.utilization{cpu=total},memory.utilization",
        ));
        let s = settings(&vars).unwrap();
        assert!(s.selection.selects("cpu.utilization", r#"{"cpu":"total"}"#));
        assert!(!s.selection.selects("cpu.utilization", r#"{"cpu":"0"}"#));
        assert!(s.selection.selects("memory.utilization", "{}"));
        let mut vars = BASE.to_vec();
        vars.push((ENV_CLOUDWATCH_METRICS, "cpu.utilization{Host=web-1}"));
        let error = settings(&vars).unwrap_err().to_string();
        assert!(
            error.starts_with("OUTPOST_CLOUDWATCH_METRICS item `cpu.utilization{Host=web-1}`"),
            "{error}"
        );
    }

    #[test]
    fn kms_with_and_without_a_key() {
        let mut vars = BASE.to_vec();
        vars.push((ENV_S3_SSE, "aws:kms"));
        assert_eq!(
            settings(&vars).unwrap().encryption,
            Encryption::Kms { key_id: None }
        );
        vars.push((ENV_S3_KMS_KEY_ID, "alias/outpost"));
        assert_eq!(
            settings(&vars).unwrap().encryption,
            Encryption::Kms {
                key_id: Some("alias/outpost".into())
            }
        );
    }
}
