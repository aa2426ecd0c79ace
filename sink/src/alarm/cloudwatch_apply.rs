//! The I/O edge of `outpost-sink cloudwatch-alarms`: one `PutMetricAlarm` call per
//! [`AlarmDefinition`], and the host names of the sink's DynamoDB table for per-host rules.

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, Metric, MetricDataQuery, MetricStat, Statistic,
};

use crate::alarm::cloudwatch::{AlarmDefinition, AlarmDimension, AlarmMetric, MetricQuery};
use crate::backend::aws::dynamo::DynamoMetrics;
use crate::backend::aws::settings::DEFAULT_RETENTION_DAYS;
use crate::backend::aws::{remote, service};
use outpost_sink_core::error::{StorageError, chain};

/// Alarms whose `PutMetricAlarm` call failed (after the SDK's retries).
#[derive(Debug, thiserror::Error)]
#[error("{} of {total} alarms failed:{}", failures.len(), Failures(failures))]
#[non_exhaustive]
pub struct PutAlarmsError {
    /// How many alarms were put or tried.
    pub total: usize,
    /// Each failed alarm's name and error chain, in call order.
    pub failures: Vec<(String, String)>,
}

struct Failures<'a>(&'a [(String, String)]);

impl std::fmt::Display for Failures<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, error) in self.0 {
            write!(f, "\n  alarm {name}: {error}")?;
        }
        Ok(())
    }
}

fn sdk_dimensions(dimensions: &[AlarmDimension]) -> Vec<Dimension> {
    dimensions
        .iter()
        .map(|d| Dimension::builder().name(&d.name).value(&d.value).build())
        .collect()
}

fn sdk_query(query: &MetricQuery) -> MetricDataQuery {
    let stat = query.metric_stat.as_ref().map(|s| {
        let metric = Metric::builder()
            .namespace(&s.metric.namespace)
            .metric_name(&s.metric.metric_name)
            .set_dimensions(Some(sdk_dimensions(&s.metric.dimensions)))
            .build();
        MetricStat::builder()
            .metric(metric)
            .period(s.period)
            .stat(s.stat)
            .build()
    });
    MetricDataQuery::builder()
        .id(query.id)
        .set_metric_stat(stat)
        .set_expression(query.expression.clone())
        .set_label(query.label.clone())
        .return_data(query.return_data)
        .build()
}

/// Create or overwrite one alarm (`PutMetricAlarm` replaces the whole definition of an alarm
/// of that name, and keeps its state).
pub async fn put_alarm(client: &Client, alarm: &AlarmDefinition) -> Result<(), StorageError> {
    let call = client
        .put_metric_alarm()
        .alarm_name(&alarm.alarm_name)
        .alarm_description(&alarm.alarm_description);
    let mut call = match &alarm.metric {
        AlarmMetric::Single {
            namespace,
            metric_name,
            dimensions,
            statistic,
            period,
        } => call
            .namespace(namespace)
            .metric_name(metric_name)
            .set_dimensions(Some(sdk_dimensions(dimensions)))
            .statistic(Statistic::from(*statistic))
            .period(*period),
        AlarmMetric::Math { metrics } => {
            call.set_metrics(Some(metrics.iter().map(sdk_query).collect()))
        }
    }
    .evaluation_periods(alarm.evaluation_periods)
    .datapoints_to_alarm(alarm.datapoints_to_alarm)
    .threshold(alarm.threshold)
    .comparison_operator(ComparisonOperator::from(alarm.comparison_operator))
    .treat_missing_data(alarm.treat_missing_data);
    // Left out when empty: the call replaces the whole definition, so none means none.
    if !alarm.alarm_actions.is_empty() {
        call = call.set_alarm_actions(Some(alarm.alarm_actions.clone()));
    }
    if !alarm.ok_actions.is_empty() {
        call = call.set_ok_actions(Some(alarm.ok_actions.clone()));
    }
    call.send().await.map_err(|e| {
        remote(
            service::CLOUDWATCH,
            format!("PutMetricAlarm {}", alarm.alarm_name),
            e,
        )
    })?;
    Ok(())
}

/// Put every alarm, one call at a time, calling `done` after each success; a failure does not
/// stop the others. Idempotent: running it again overwrites the same alarms.
pub async fn put_alarms(
    client: &Client,
    alarms: &[AlarmDefinition],
    mut done: impl FnMut(&AlarmDefinition),
) -> Result<(), PutAlarmsError> {
    let mut failures = Vec::new();
    for alarm in alarms {
        match put_alarm(client, alarm).await {
            Ok(()) => done(alarm),
            Err(error) => failures.push((alarm.alarm_name.clone(), chain(&error))),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(PutAlarmsError {
            total: alarms.len(),
            failures,
        })
    }
}

/// The names of the hosts in `table`'s `#hosts` items (every host that sent a batch), sorted.
pub async fn table_hosts(
    client: aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Vec<String>, StorageError> {
    let store = DynamoMetrics::new(client, table.to_owned(), DEFAULT_RETENTION_DAYS);
    Ok(store.hosts().await?.into_iter().map(|h| h.host).collect())
}
