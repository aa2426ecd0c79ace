//! The Lambda front: one function, two event sources and a schedule.
//!
//! - **Function URL** requests (`AuthType AWS_IAM`: AWS has checked the agent's SigV4 signature
//!   before the function runs) are turned into HTTP requests and answered by the very router of
//!   `outpost-sink serve` (same routes, statuses and JSON), without a bearer token.
//! - **Kinesis** event-source-mapping batches: one frame per record. Records that fail for a
//!   retryable reason (a storage error) are named in a `ReportBatchItemFailures` response, by
//!   sequence number, so Lambda retries from the first of them. A malformed frame (a poison
//!   record: retrying cannot help) is written to the dead-letter prefix in S3, counted, and
//!   reported as processed, so it never blocks the shard.
//! - The **health check** ([`crate::health`]): an EventBridge schedule's event (`"source":
//!   "aws.events"`, `"detail-type": "Scheduled Event"`) or the literal
//!   `{"outpost": "health-check"}` (for a manual `aws lambda invoke`). The response is the
//!   report as JSON: `{"health_check": {...}}`.
//!
//! Pure where it can be: [`Event::parse`] and the conversions are functions of their input;
//! [`LambdaFront::handle`] does the I/O. One file per source: [`url`], [`kinesis`], [`health`];
//! every frame goes through the same ingest call as `serve`'s route (`front::ingest`).

mod health;
mod kinesis;
mod url;

pub use health::{HEALTH_CHECK_EVENT, SCHEDULE_DETAIL_TYPE, SCHEDULE_SOURCE};
pub use kinesis::KinesisOutcome;
pub use url::to_http;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use axum::Router;
use serde_json::Value;

use crate::backend::aws::AwsBackend;
use crate::front::server::router;

/// Why an event could not be handled at all (the invocation fails; Lambda retries or reports).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LambdaError {
    /// The event is neither a Function URL request, a Kinesis batch nor a health check.
    #[error("unsupported event: {0}")]
    Unsupported(String),
    /// The health check could not read the hosts (retryable).
    #[error("health check failed: {0}")]
    HealthCheck(String),
    /// The event has the right shape but a field could not be read.
    #[error("malformed {kind} event: {message}")]
    Malformed {
        /// `Function URL` or `Kinesis`.
        kind: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// An invocation's event, by source.
#[derive(Debug)]
pub enum Event {
    /// A Function URL request.
    FunctionUrl(Box<LambdaFunctionUrlRequest>),
    /// A Kinesis batch.
    Kinesis(KinesisEvent),
    /// A scheduled (or manual) health check.
    HealthCheck,
}

impl Event {
    /// Tell the sources apart by shape: Kinesis batches have `Records` from `aws:kinesis`,
    /// Function URL requests have `requestContext.http`, and health checks are what
    /// [`health::is_health_check`] says.
    pub fn parse(value: Value) -> Result<Self, LambdaError> {
        if health::is_health_check(&value) {
            return Ok(Event::HealthCheck);
        }
        if let Some(records) = value.get("Records").and_then(Value::as_array) {
            let all_kinesis = records
                .iter()
                .all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:kinesis"));
            if !all_kinesis {
                return Err(LambdaError::Unsupported(
                    "records that are not from aws:kinesis".into(),
                ));
            }
            return serde_json::from_value(value)
                .map(Event::Kinesis)
                .map_err(|e| LambdaError::Malformed {
                    kind: "Kinesis",
                    message: e.to_string(),
                });
        }
        if value
            .get("requestContext")
            .and_then(|c| c.get("http"))
            .is_some()
        {
            return serde_json::from_value(value)
                .map(|r| Event::FunctionUrl(Box::new(r)))
                .map_err(|e| LambdaError::Malformed {
                    kind: "Function URL",
                    message: e.to_string(),
                });
        }
        let keys: Vec<&str> = value
            .as_object()
            .map(|o| o.keys().map(String::as_str).take(8).collect())
            .unwrap_or_default();
        Err(LambdaError::Unsupported(format!("top-level keys {keys:?}")))
    }
}

/// The function's state: built once per container (clients included) and reused by every
/// invocation.
#[derive(Debug)]
pub struct LambdaFront {
    backend: Arc<AwsBackend>,
    router: Router,
    dead_letters: AtomicU64,
}

impl LambdaFront {
    /// A front over `backend`.
    pub fn new(backend: AwsBackend) -> Self {
        let backend = Arc::new(backend);
        Self {
            router: router(Arc::clone(&backend), None),
            backend,
            dead_letters: AtomicU64::new(0),
        }
    }

    /// Poison records dead-lettered since the container started.
    pub fn dead_letters(&self) -> u64 {
        self.dead_letters.load(Ordering::Relaxed)
    }

    /// Handle one invocation's event (JSON), returning the JSON response.
    pub async fn handle(&self, event: Value) -> Result<Value, LambdaError> {
        let response = match Event::parse(event)? {
            Event::FunctionUrl(request) => serde_json::to_value(self.function_url(&request).await?),
            Event::Kinesis(batch) => {
                let outcome = self.kinesis(&batch).await;
                tracing::info!(
                    records = batch.records.len(),
                    stored = outcome.stored,
                    dead_lettered = outcome.dead_lettered,
                    failed = outcome.failed.len(),
                    "Kinesis batch"
                );
                serde_json::to_value(outcome.response())
            }
            Event::HealthCheck => Ok(self.health_check().await?),
        };
        response.map_err(|e| LambdaError::Malformed {
            kind: "response",
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn url_event(
        method: &str,
        path: &str,
        query: &str,
        body: Option<&str>,
        b64: bool,
    ) -> Value {
        json!({
            "version": "2.0",
            "rawPath": path,
            "rawQueryString": query,
            "headers": {"content-type": "application/vnd.outpost.frame", "content-length": "999"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc",
                "domainName": "abc.lambda-url.us-east-1.on.aws",
                "domainPrefix": "abc",
                "requestId": "r1",
                "time": "24/Nov/2026:09:00:00 +0000",
                "timeEpoch": 1_795_510_800_000_i64,
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "198.51.100.7", "userAgent": "outpost-agent/0.1.0"}
            },
            "body": body,
            "isBase64Encoded": b64
        })
    }

    #[test]
    fn events_are_told_apart_by_shape() {
        let url = url_event("GET", "/healthz", "", None, false);
        assert!(matches!(Event::parse(url), Ok(Event::FunctionUrl(_))));
        let kinesis = json!({"Records": [{
            "eventSource": "aws:kinesis", "eventID": "shardId-000000000000:1",
            "kinesis": {"approximateArrivalTimestamp": 1.0, "data": "AAEC",
                        "partitionKey": "agent-1", "sequenceNumber": "1",
                        "kinesisSchemaVersion": "1.0"}
        }]});
        let Ok(Event::Kinesis(k)) = Event::parse(kinesis) else {
            panic!("not Kinesis")
        };
        assert_eq!(k.records[0].kinesis.data.0, [0, 1, 2]);
        let sqs = json!({"Records": [{"eventSource": "aws:sqs"}]});
        assert!(matches!(
            Event::parse(sqs),
            Err(LambdaError::Unsupported(_))
        ));
        assert!(matches!(
            Event::parse(json!({"hello": 1})),
            Err(LambdaError::Unsupported(_))
        ));
    }
}
