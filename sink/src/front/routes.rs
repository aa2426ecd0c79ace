//! The HTTP routes: request parsing and JSON replies around the ingest core and the queries.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::Uri;
use axum::http::header::CONTENT_LENGTH;
use outpost_proto::limits::MAX_FRAME_LEN;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::alarm::Alarms;
use crate::front::ingest::{IngestFailure, ingest_frame};
use crate::front::response::ApiError;
use outpost_sink_core::alarm::eval::Datapoint;
use outpost_sink_core::alarm::{AlarmRecord, AlarmState, Transition};
use outpost_sink_core::error::IngestError;
use outpost_sink_core::ingest::Ack;
use outpost_sink_core::ports::{HostSummary, PointQuery, Storage, StoredPoint};
use outpost_sink_core::timestamp;

/// What every route shares.
#[derive(Debug)]
pub struct AppState<S> {
    /// The backend.
    pub storage: S,
    /// The local alarms, when `serve --rules` gave any.
    pub alarms: Option<Alarms>,
}

/// `GET /healthz`: `{"status":"ok"}`, no token required.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Any unknown route: 404 `{"error": ...}`.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        format!("no route for {}", uri.path()),
    )
}

/// `POST /v1/batches`: one frame in, an [`Ack`] out once it is durably stored.
pub async fn post_batch<S: Storage + 'static>(
    State(state): State<Arc<AppState<S>>>,
    request: Request,
) -> Result<Json<Ack>, ApiError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(declared) = declared.filter(|&d| d > MAX_FRAME_LEN as u64) {
        return Err(rejected(ApiError::too_large(format!(
            "body of {declared} bytes exceeds the frame limit of {MAX_FRAME_LEN}"
        ))));
    }
    // The router caps bodies at MAX_FRAME_LEN (DefaultBodyLimit), also without Content-Length.
    let body = Bytes::from_request(request, &())
        .await
        .map_err(|rejection| {
            rejected(
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large(format!("body exceeds the frame limit of {MAX_FRAME_LEN}"))
                } else {
                    ApiError::bad_request(rejection.body_text())
                },
            )
        })?;

    let ack = ingest_frame(body, &state.storage, timestamp::now_ms())
        .await
        .map_err(|failure| match failure {
            worker @ IngestFailure::Worker(_) => rejected(ApiError::internal(worker.to_string())),
            IngestFailure::Ingest(e) => ingest_failed(&e),
        })?;
    tracing::info!(
        agent_id = %ack.agent_id,
        seq = ack.seq,
        logs = ack.logs,
        metrics = ack.metrics,
        "batch stored"
    );
    Ok(Json(ack))
}

fn ingest_failed(error: &IngestError) -> ApiError {
    rejected(ApiError::from(error))
}

/// Log a refused request: client errors at warn, server errors at error.
fn rejected(reply: ApiError) -> ApiError {
    let error = &reply.message;
    if reply.status.is_server_error() {
        tracing::error!(status = reply.status.as_u16(), %error, "batch not stored");
    } else {
        tracing::warn!(status = reply.status.as_u16(), %error, "batch rejected");
    }
    reply
}

/// Query string of `GET /v1/metrics`.
#[derive(Debug, Deserialize)]
pub struct MetricsParams {
    host: Option<String>,
    name: Option<String>,
    since: Option<String>,
}

/// Reply of `GET /v1/metrics`.
#[derive(Debug, Serialize)]
pub struct MetricsReply {
    host: String,
    name: String,
    points: Vec<PointJson>,
}

#[derive(Debug, Serialize)]
struct PointJson {
    ts: String,
    ts_ms: i64,
    value: Option<f64>,
    unit: String,
    dimensions: BTreeMap<String, String>,
}

impl From<StoredPoint> for PointJson {
    fn from(p: StoredPoint) -> Self {
        Self {
            ts: timestamp::format_ms(p.ts_ms),
            ts_ms: p.ts_ms,
            value: p.value,
            unit: p.unit,
            dimensions: p.dimensions,
        }
    }
}

/// `GET /v1/metrics?host=H&name=N[&since=RFC3339]`: the points of one metric of one host.
pub async fn get_metrics<S: Storage + 'static>(
    State(state): State<Arc<AppState<S>>>,
    params: Result<Query<MetricsParams>, QueryRejection>,
) -> Result<Json<MetricsReply>, ApiError> {
    let Query(params) = params.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let required = |value: Option<String>, field: &str| {
        value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("query parameter `{field}` is required")))
    };
    let host = required(params.host, "host")?;
    let name = required(params.name, "name")?;
    let since_ms = match params.since {
        None => i64::MIN,
        Some(since) => timestamp::parse_rfc3339_ms(&since).map_err(|e| {
            ApiError::bad_request(format!("`since` is not an RFC 3339 timestamp: {e}"))
        })?,
    };
    let query = PointQuery {
        host: host.clone(),
        name: name.clone(),
        since_ms,
    };
    let points = state
        .storage
        .query_points(query)
        .await
        .map_err(|e| ApiError::from(&e))?;
    Ok(Json(MetricsReply {
        host,
        name,
        points: points.into_iter().map(PointJson::from).collect(),
    }))
}

/// Reply of `GET /v1/hosts`.
#[derive(Debug, Serialize)]
pub struct HostsReply {
    hosts: Vec<HostJson>,
}

#[derive(Debug, Serialize)]
struct HostJson {
    host: String,
    agent_id: String,
    agent_version: String,
    last_seen: String,
    last_seen_ms: i64,
    last_seq: u64,
    latest: Vec<LatestJson>,
}

#[derive(Debug, Serialize)]
struct LatestJson {
    name: String,
    dimensions: BTreeMap<String, String>,
    ts: String,
    ts_ms: i64,
    value: Option<f64>,
    unit: String,
}

impl From<HostSummary> for HostJson {
    fn from(h: HostSummary) -> Self {
        Self {
            last_seen: timestamp::format_ms(h.last_seen_ms),
            host: h.host,
            agent_id: h.agent_id,
            agent_version: h.agent_version,
            last_seen_ms: h.last_seen_ms,
            last_seq: h.last_seq,
            latest: h
                .latest
                .into_iter()
                .map(|l| LatestJson {
                    ts: timestamp::format_ms(l.ts_ms),
                    name: l.name,
                    dimensions: l.dimensions,
                    ts_ms: l.ts_ms,
                    value: l.value,
                    unit: l.unit,
                })
                .collect(),
        }
    }
}

/// `GET /v1/hosts`: every host that sent a batch, with its last batch and latest values.
pub async fn get_hosts<S: Storage + 'static>(
    State(state): State<Arc<AppState<S>>>,
) -> Result<Json<HostsReply>, ApiError> {
    let hosts = state
        .storage
        .hosts()
        .await
        .map_err(|e| ApiError::from(&e))?;
    Ok(Json(HostsReply {
        hosts: hosts.into_iter().map(HostJson::from).collect(),
    }))
}

/// Reply of `GET /v1/alarms`.
#[derive(Debug, Serialize)]
pub struct AlarmsReply {
    rules_file: String,
    alarms: Vec<AlarmJson>,
    notifications: NotificationsJson,
}

#[derive(Debug, Serialize)]
struct NotificationsJson {
    webhook: bool,
    delivered: u64,
    failed: u64,
    dropped: u64,
}

#[derive(Debug, Serialize)]
struct AlarmJson {
    name: String,
    host: Option<String>,
    scope: &'static str,
    metric: String,
    /// The rule's denominator: the datapoints are `100 × metric / denominator`.
    denominator: Option<String>,
    state: AlarmState,
    since: String,
    since_ms: i64,
    reason: String,
    evaluated: String,
    evaluated_ms: i64,
    datapoints: Vec<DatapointJson>,
    history: Vec<TransitionJson>,
}

#[derive(Debug, Serialize)]
struct DatapointJson {
    start: String,
    start_ms: i64,
    value: Option<f64>,
}

#[derive(Debug, Serialize)]
struct TransitionJson {
    time: String,
    time_ms: i64,
    old_state: AlarmState,
    new_state: AlarmState,
    reason: String,
}

impl From<Datapoint> for DatapointJson {
    fn from(d: Datapoint) -> Self {
        Self {
            start: timestamp::format_ms(d.start_ms),
            start_ms: d.start_ms,
            value: d.value,
        }
    }
}

impl From<Transition> for TransitionJson {
    fn from(t: Transition) -> Self {
        Self {
            time: timestamp::format_ms(t.time_ms),
            time_ms: t.time_ms,
            old_state: t.old_state,
            new_state: t.new_state,
            reason: t.reason,
        }
    }
}

/// `GET /v1/alarms`: every local alarm with its state, reason, datapoints and history (newest
/// transition last); 404 when the sink runs without `--rules`.
pub async fn get_alarms<S: Storage + 'static>(
    State(state): State<Arc<AppState<S>>>,
) -> Result<Json<AlarmsReply>, ApiError> {
    use std::sync::atomic::Ordering::Relaxed;
    let Some(alarms) = &state.alarms else {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "alarms are off: start `outpost-sink serve` with `--rules FILE`",
        ));
    };
    let rules = alarms.rules();
    let json = |r: AlarmRecord| {
        let rule = rules.rules.iter().find(|rule| rule.name == r.alarm);
        AlarmJson {
            scope: if r.host.is_some() {
                "per_host"
            } else {
                "fleet"
            },
            metric: rule.map(|rule| rule.metric.clone()).unwrap_or_default(),
            denominator: rule.and_then(|rule| rule.denominator.clone()),
            name: r.alarm,
            host: r.host,
            state: r.state,
            since: timestamp::format_ms(r.since_ms),
            since_ms: r.since_ms,
            reason: r.reason,
            evaluated: timestamp::format_ms(r.evaluated_ms),
            evaluated_ms: r.evaluated_ms,
            datapoints: r.datapoints.into_iter().map(DatapointJson::from).collect(),
            history: r.history.into_iter().map(TransitionJson::from).collect(),
        }
    };
    let counters = alarms.counters();
    Ok(Json(AlarmsReply {
        rules_file: rules.source.display().to_string(),
        alarms: alarms.records().into_iter().map(json).collect(),
        notifications: NotificationsJson {
            webhook: rules.webhook.is_some(),
            delivered: counters.delivered.load(Relaxed),
            failed: counters.failed.load(Relaxed),
            dropped: counters.dropped.load(Relaxed),
        },
    }))
}
