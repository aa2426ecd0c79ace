//! The core's ports: the storage traits the ingest core writes through and the alarm engine
//! reads through, and the rows they exchange.
//!
//! The core only knows these traits; the sink's adapters implement them (local files + SQLite;
//! S3, DynamoDB and CloudWatch). Methods return `Send` futures so an HTTP server's handlers
//! are `Send`. Every write must be an idempotent overwrite keyed by the batch, because a client
//! re-sends a batch whose acknowledgement it did not receive.

use std::collections::BTreeMap;
use std::future::Future;

use crate::error::StorageError;
use crate::key::LogObjectKey;

/// Where log objects go.
pub trait LogStore {
    /// Store `body` (a zstd-compressed NDJSON object) under `key`, replacing any object already
    /// there. When the future resolves `Ok`, the object is durable and fully visible; on error,
    /// no partial object is visible.
    fn put_log_object(
        &self,
        key: &LogObjectKey,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// Where metric points and the per-host summary go.
pub trait MetricStore {
    /// Store one batch's points and update its host's row, atomically: all or nothing. A point
    /// with the same host, name, dimensions and timestamp as a stored one replaces it.
    fn put_metrics(
        &self,
        write: MetricWrite,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The points of one series family (`host`, `name`, any dimensions) at or after `since_ms`,
    /// ordered by time, then by dimensions.
    fn query_points(
        &self,
        query: PointQuery,
    ) -> impl Future<Output = Result<Vec<StoredPoint>, StorageError>> + Send;

    /// Every host that ever sent a batch, ordered by host name.
    fn hosts(&self) -> impl Future<Output = Result<Vec<HostSummary>, StorageError>> + Send;
}

/// A shared store is a store (the Lambda front's router and its Kinesis handler share one).
impl<T: LogStore + Send + Sync + ?Sized> LogStore for std::sync::Arc<T> {
    fn put_log_object(
        &self,
        key: &LogObjectKey,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        (**self).put_log_object(key, body)
    }
}

impl<T: MetricStore + Send + Sync + ?Sized> MetricStore for std::sync::Arc<T> {
    fn put_metrics(
        &self,
        write: MetricWrite,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        (**self).put_metrics(write)
    }

    fn query_points(
        &self,
        query: PointQuery,
    ) -> impl Future<Output = Result<Vec<StoredPoint>, StorageError>> + Send {
        (**self).query_points(query)
    }

    fn hosts(&self) -> impl Future<Output = Result<Vec<HostSummary>, StorageError>> + Send {
        (**self).hosts()
    }
}

/// Everything the ingest core needs: a [`LogStore`] and a [`MetricStore`] that can be shared
/// between concurrent requests.
pub trait Storage: LogStore + MetricStore + Send + Sync {}

impl<T: LogStore + MetricStore + Send + Sync> Storage for T {}

/// One batch's metric rows and host update, written in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricWrite {
    /// The host the batch came from, as the agent reported it.
    pub host: String,
    /// The sending agent.
    pub agent_id: String,
    /// The agent's version string.
    pub agent_version: String,
    /// The batch's sequence number (validated to fit `i64`).
    pub seq: u64,
    /// When the sink received the batch, unix milliseconds.
    pub received_ms: i64,
    /// The points, in batch order.
    pub points: Vec<PointRow>,
}

/// One metric point as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRow {
    /// Metric name, e.g. `cpu.utilization`.
    pub name: String,
    /// Canonical JSON object of the dimensions, keys sorted, e.g. `{"cpu":"total"}`.
    pub dimensions: String,
    /// Sample time, unix milliseconds.
    pub ts_ms: i64,
    /// The value; `None` when the agent sent NaN or an infinity, which JSON cannot carry.
    pub value: Option<f64>,
    /// CloudWatch unit name, e.g. `Percent`.
    pub unit: &'static str,
}

/// A query for [`MetricStore::query_points`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointQuery {
    /// Host name, exactly as the agent reported it.
    pub host: String,
    /// Metric name.
    pub name: String,
    /// Only points with `ts_ms >= since_ms`; `i64::MIN` for all.
    pub since_ms: i64,
}

/// One point returned by [`MetricStore::query_points`].
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    /// Sample time, unix milliseconds.
    pub ts_ms: i64,
    /// The value, `None` when not finite.
    pub value: Option<f64>,
    /// CloudWatch unit name.
    pub unit: String,
    /// The dimensions.
    pub dimensions: BTreeMap<String, String>,
}

/// What the sink knows of one host: the last batch it received from it, and its latest values.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSummary {
    /// Host name, as the agent reported it.
    pub host: String,
    /// Agent id of the last batch.
    pub agent_id: String,
    /// Agent version of the last batch.
    pub agent_version: String,
    /// When the sink received the last batch, unix milliseconds.
    pub last_seen_ms: i64,
    /// Sequence number of the last batch received (a re-sent old batch sets it back).
    pub last_seq: u64,
    /// The newest point of each of the host's series, ordered by name, then dimensions.
    pub latest: Vec<LatestValue>,
}

/// The newest point of one series (metric name and dimensions) of a host.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestValue {
    /// Metric name.
    pub name: String,
    /// The dimensions.
    pub dimensions: BTreeMap<String, String>,
    /// Sample time, unix milliseconds.
    pub ts_ms: i64,
    /// The value, `None` when not finite.
    pub value: Option<f64>,
    /// CloudWatch unit name.
    pub unit: String,
}

/// Reads exact series over a time range: what the alarm engine evaluates
/// ([`crate::alarm::engine`]).
pub trait SeriesReader {
    /// The samples of each query, in query order, each ordered by time.
    fn series(
        &self,
        queries: Vec<SeriesQuery>,
    ) -> impl Future<Output = Result<Vec<Samples>, StorageError>> + Send;
}

/// The `(ts_ms, value)` samples of one series, by time (`value` `None` when not finite).
pub type Samples = Vec<(i64, Option<f64>)>;

/// One series read by [`SeriesReader::series`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesQuery {
    /// Host name.
    pub host: String,
    /// Metric name.
    pub name: String,
    /// Canonical JSON of the exact dimension set, as stored (`{}` for none).
    pub dimensions: String,
    /// First millisecond, inclusive.
    pub from_ms: i64,
    /// Last millisecond, exclusive.
    pub to_ms: i64,
}
