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
//! [`LambdaFront::handle`] does the I/O.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use tower::ServiceExt;

use crate::backend::aws::AwsBackend;
use crate::backend::aws::s3::dead_letter_key;
use crate::error::{self, IngestError};
use crate::front::server::router;
use crate::handler;
use crate::timestamp;

/// Largest response body read back from the router (replies are small JSON documents; a
/// `GET /v1/metrics` over a long range is the largest). Lambda's own response limit is 6 MB.
const MAX_RESPONSE: usize = 6 * 1024 * 1024;

/// Content type of a dead letter.
const DEAD_LETTER_CONTENT_TYPE: &str = "application/vnd.outpost.frame";

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

/// `source` of an EventBridge schedule's event.
pub const SCHEDULE_SOURCE: &str = "aws.events";
/// `detail-type` of an EventBridge schedule's event.
pub const SCHEDULE_DETAIL_TYPE: &str = "Scheduled Event";
/// The member and value of a manual health-check event: `{"outpost": "health-check"}`.
pub const HEALTH_CHECK_EVENT: (&str, &str) = ("outpost", "health-check");

impl Event {
    /// Tell the sources apart by shape: Kinesis batches have `Records` from `aws:kinesis`,
    /// Function URL requests have `requestContext.http`, a schedule's events have `source`
    /// [`SCHEDULE_SOURCE`] and `detail-type` [`SCHEDULE_DETAIL_TYPE`], and a manual health
    /// check is [`HEALTH_CHECK_EVENT`].
    pub fn parse(value: Value) -> Result<Self, LambdaError> {
        let member = |key: &str| value.get(key).and_then(Value::as_str);
        let scheduled = member("source") == Some(SCHEDULE_SOURCE)
            && member("detail-type") == Some(SCHEDULE_DETAIL_TYPE);
        if scheduled || member(HEALTH_CHECK_EVENT.0) == Some(HEALTH_CHECK_EVENT.1) {
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

/// Turn a Function URL request into an HTTP request for the router.
pub fn to_http(event: &LambdaFunctionUrlRequest) -> Result<Request<Body>, LambdaError> {
    let malformed = |message: String| LambdaError::Malformed {
        kind: "Function URL",
        message,
    };
    let http = &event.request_context.http;
    let method = http
        .method
        .as_deref()
        .unwrap_or("GET")
        .parse::<Method>()
        .map_err(|e| malformed(format!("method: {e}")))?;
    let path = event.raw_path.as_deref().unwrap_or("/");
    let uri = match event.raw_query_string.as_deref() {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    };
    let body = match (&event.body, event.is_base64_encoded) {
        (None, _) => Vec::new(),
        (Some(b), true) => BASE64
            .decode(b)
            .map_err(|e| malformed(format!("base64 body: {e}")))?,
        (Some(b), false) => b.clone().into_bytes(),
    };
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(headers) = request.headers_mut() {
        headers.extend(event.headers.clone());
        // The body is whole here: its length is exact whatever the client declared.
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        headers.remove(header::TRANSFER_ENCODING);
    }
    request
        .body(Body::from(body))
        .map_err(|e| malformed(format!("request: {e}")))
}

/// What a Kinesis batch came to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KinesisOutcome {
    /// Records stored.
    pub stored: usize,
    /// Poison records written to the dead-letter prefix.
    pub dead_lettered: usize,
    /// Sequence numbers of the records that failed for a retryable reason.
    pub failed: Vec<String>,
}

impl KinesisOutcome {
    /// The `ReportBatchItemFailures` response.
    pub fn response(&self) -> KinesisEventResponse {
        let mut response = KinesisEventResponse::default();
        response.batch_item_failures = self
            .failed
            .iter()
            .map(|seq| {
                let mut failure = KinesisBatchItemFailure::default();
                failure.item_identifier = Some(seq.clone());
                failure
            })
            .collect();
        response
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
            Event::HealthCheck => {
                let report = self
                    .backend
                    .health_check(timestamp::now_ms())
                    .await
                    .map_err(|e| LambdaError::HealthCheck(error::chain(&e)))?;
                Ok(serde_json::json!({ "health_check": report }))
            }
        };
        response.map_err(|e| LambdaError::Malformed {
            kind: "response",
            message: e.to_string(),
        })
    }

    /// Answer a Function URL request with the HTTP router.
    pub async fn function_url(
        &self,
        event: &LambdaFunctionUrlRequest,
    ) -> Result<LambdaFunctionUrlResponse, LambdaError> {
        let request = to_http(event)?;
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, MAX_RESPONSE)
            .await
            .map_err(|e| LambdaError::Malformed {
                kind: "response",
                message: e.to_string(),
            })?;
        let mut out = LambdaFunctionUrlResponse::default();
        out.status_code = i64::from(parts.status.as_u16());
        out.headers = parts.headers;
        match String::from_utf8(body.to_vec()) {
            Ok(text) => out.body = Some(text),
            Err(_) => {
                out.body = Some(BASE64.encode(&body));
                out.is_base64_encoded = true;
            }
        }
        Ok(out)
    }

    /// Store every record of a Kinesis batch; see the module doc for the outcomes.
    pub async fn kinesis(&self, batch: &KinesisEvent) -> KinesisOutcome {
        let mut outcome = KinesisOutcome::default();
        for record in &batch.records {
            let seq = record.kinesis.sequence_number.clone();
            match self.kinesis_record(record).await {
                Ok(Stored::Batch) => outcome.stored += 1,
                Ok(Stored::DeadLetter) => outcome.dead_lettered += 1,
                Err(error) => {
                    tracing::error!(sequence_number = %seq, %error, "Kinesis record failed; Lambda will retry it");
                    outcome.failed.push(seq);
                }
            }
        }
        outcome
    }

    async fn kinesis_record(&self, record: &KinesisEventRecord) -> Result<Stored, String> {
        let frame = record.kinesis.data.0.clone();
        let now_ms = timestamp::now_ms();
        let prepared = tokio::task::spawn_blocking(move || {
            let prepared = handler::prepare(&frame, now_ms);
            (prepared, frame)
        })
        .await
        .map_err(|e| format!("ingest task failed: {e}"))?;
        match prepared {
            (Ok(prepared), _) => {
                handler::store(prepared, self.backend.as_ref())
                    .await
                    .map_err(|e| error::chain(&e))?;
                Ok(Stored::Batch)
            }
            (Err(e @ (IngestError::Decode(_) | IngestError::Invalid(_))), frame) => {
                let reason = error::chain(&e);
                self.dead_letter(record, frame, &reason).await?;
                Ok(Stored::DeadLetter)
            }
            (Err(e), _) => Err(error::chain(&e)),
        }
    }

    async fn dead_letter(
        &self,
        record: &KinesisEventRecord,
        frame: Vec<u8>,
        reason: &str,
    ) -> Result<(), String> {
        let id = record
            .event_id
            .clone()
            .unwrap_or_else(|| record.kinesis.sequence_number.clone());
        let (date, _) = timestamp::format_ms(timestamp::now_ms())
            .split_once('T')
            .map(|(d, t)| (d.to_owned(), t.to_owned()))
            .unwrap_or_default();
        let key = dead_letter_key(&date, "kinesis", &id);
        self.backend
            .logs()
            .put_with_reason(&key, frame, DEAD_LETTER_CONTENT_TYPE, reason)
            .await
            .map_err(|e| error::chain(&e))?;
        self.dead_letters.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            key,
            sequence_number = %record.kinesis.sequence_number,
            partition_key = %record.kinesis.partition_key,
            reason,
            "poison Kinesis record kept as a dead letter"
        );
        Ok(())
    }
}

enum Stored {
    Batch,
    DeadLetter,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn url_event(method: &str, path: &str, query: &str, body: Option<&str>, b64: bool) -> Value {
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

    #[test]
    fn schedules_and_the_manual_event_are_health_checks() {
        let scheduled = json!({
            "version": "0",
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2026-11-24T09:00:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/outpost-health"],
            "detail": {}
        });
        assert!(matches!(Event::parse(scheduled), Ok(Event::HealthCheck)));
        assert!(matches!(
            Event::parse(json!({"outpost": "health-check"})),
            Ok(Event::HealthCheck)
        ));
        for other in [
            json!({"source": "aws.events", "detail-type": "EC2 Instance State-change Notification"}),
            json!({"source": "aws.s3", "detail-type": "Scheduled Event"}),
            json!({"outpost": "health"}),
        ] {
            assert!(
                matches!(
                    Event::parse(other.clone()),
                    Err(LambdaError::Unsupported(_))
                ),
                "{other}"
            );
        }
    }

    #[test]
    fn a_base64_body_becomes_the_exact_bytes_with_their_length() {
        let Ok(Event::FunctionUrl(event)) = Event::parse(url_event(
            "POST",
            "/v1/batches",
            "",
            Some(&BASE64.encode([0u8, 159, 146, 150])),
            true,
        )) else {
            panic!("not a URL event")
        };
        let request = to_http(&event).unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "/v1/batches");
        assert_eq!(request.headers()[header::CONTENT_LENGTH], "4");
        let Ok(Event::FunctionUrl(event)) = Event::parse(url_event(
            "GET",
            "/v1/metrics",
            "host=web-1&name=cpu",
            None,
            false,
        )) else {
            panic!("not a URL event")
        };
        assert_eq!(
            to_http(&event).unwrap().uri(),
            "/v1/metrics?host=web-1&name=cpu"
        );
        let Ok(Event::FunctionUrl(event)) =
            Event::parse(url_event("POST", "/v1/batches", "", Some("%%%"), true))
        else {
            panic!("not a URL event")
        };
        assert!(matches!(
            to_http(&event),
            Err(LambdaError::Malformed { .. })
        ));
    }

    #[test]
    fn only_retryable_failures_are_reported() {
        let outcome = KinesisOutcome {
            stored: 3,
            dead_lettered: 1,
            failed: vec!["49590".into(), "49591".into()],
        };
        let response = serde_json::to_value(outcome.response()).unwrap();
        assert_eq!(
            response,
            json!({"batchItemFailures": [{"itemIdentifier": "49590"}, {"itemIdentifier": "49591"}]})
        );
        let none = serde_json::to_value(KinesisOutcome::default().response()).unwrap();
        assert_eq!(none, json!({"batchItemFailures": []}));
    }
}
