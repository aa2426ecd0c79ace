//! How the publisher is configured: where metrics go ([`CloudWatchMode`]) and which series
//! they are published as ([`CloudWatchScope`]); set from the environment by `settings`.

/// How metrics reach CloudWatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudWatchMode {
    /// Embedded Metric Format lines on stdout: CloudWatch Logs extracts the metrics. No API
    /// calls, no throttling; the default inside Lambda.
    Emf,
    /// `PutMetricData` calls: for a sink outside Lambda (`serve --backend aws`).
    PutMetricData,
    /// No CloudWatch metrics (DynamoDB still has every point).
    Off,
}

impl CloudWatchMode {
    /// The value of `OUTPOST_CLOUDWATCH_MODE` that selects this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Emf => "emf",
            Self::PutMetricData => "put_metric_data",
            Self::Off => "off",
        }
    }
}

/// Which series the CloudWatch metrics are published as.
///
/// In both scopes the dimensionless fleet totals `log.lines`, `log.error_lines` (summed over
/// services) and `agent.heartbeat` are published as well.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CloudWatchScope {
    /// Every metric with the dimension `Host` before its own: per-host graphs and alarms; the
    /// bill grows with hosts × series.
    #[default]
    PerHost,
    /// The `Host` dimension dropped, own dimensions kept: the values of all hosts meet in one
    /// series, so CloudWatch's Maximum or p95 over a minute is the fleet's. Per-host detail
    /// stays in DynamoDB.
    Fleet,
}

impl CloudWatchScope {
    /// The value of `OUTPOST_CLOUDWATCH_SCOPE` that selects this scope.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerHost => "per_host",
            Self::Fleet => "fleet",
        }
    }
}
