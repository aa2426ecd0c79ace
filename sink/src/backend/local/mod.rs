//! The local disk backend: log objects as files under `DIR/logs`, metrics in `DIR/metrics.db`.
//!
//! Both parts are blocking, so every call runs on tokio's blocking pool.

mod files;
mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use files::{LogDir, TMP_PREFIX};
pub use sqlite::{DB_FILE, MetricsDb, SCHEMA_VERSION};

use outpost_sink_core::error::StorageError;
use outpost_sink_core::key::LogObjectKey;
use outpost_sink_core::ports::{
    HostSummary, LogStore, MetricStore, MetricWrite, PointQuery, Samples, SeriesQuery,
    SeriesReader, StoredPoint,
};

/// The local backend over one data directory. Cheap to clone; clones share the database.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    data_dir: PathBuf,
    logs: Arc<LogDir>,
    metrics: Arc<MetricsDb>,
}

impl LocalBackend {
    /// Open (creating if needed) the data directory, its `logs` directory and `metrics.db`.
    /// Blocking; call at startup.
    pub fn open(data_dir: &Path) -> Result<Self, StorageError> {
        let logs = LogDir::open(data_dir)?;
        let metrics = MetricsDb::open(data_dir)?;
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            logs: Arc::new(logs),
            metrics: Arc::new(metrics),
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// The points of each series in its time range ([`MetricsDb::series`]), on the blocking pool;
/// what the local alarms read.
impl SeriesReader for LocalBackend {
    async fn series(&self, queries: Vec<SeriesQuery>) -> Result<Vec<Samples>, StorageError> {
        let metrics = Arc::clone(&self.metrics);
        blocking(move || metrics.series(&queries)).await
    }
}

/// Run `work` on the blocking pool.
async fn blocking<T, F>(work: F) -> Result<T, StorageError>
where
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StorageError::Worker(e.to_string()))?
}

impl LogStore for LocalBackend {
    async fn put_log_object(&self, key: &LogObjectKey, body: Vec<u8>) -> Result<(), StorageError> {
        let logs = Arc::clone(&self.logs);
        let key = key.clone();
        blocking(move || logs.write(&key, &body)).await
    }
}

impl MetricStore for LocalBackend {
    async fn put_metrics(&self, write: MetricWrite) -> Result<(), StorageError> {
        let metrics = Arc::clone(&self.metrics);
        blocking(move || metrics.put(&write)).await
    }

    async fn query_points(&self, query: PointQuery) -> Result<Vec<StoredPoint>, StorageError> {
        let metrics = Arc::clone(&self.metrics);
        blocking(move || metrics.query(&query)).await
    }

    async fn hosts(&self) -> Result<Vec<HostSummary>, StorageError> {
        let metrics = Arc::clone(&self.metrics);
        blocking(move || metrics.hosts()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_proto::{AgentIdentity, Batch, LogRecord, MetricPoint, Record, Unit};
    use outpost_sink_core::ingest;

    /// 2026-11-23T22:57:58.123Z
    const T: i64 = 1_795_474_678_123;

    fn frame(seq: u64) -> Vec<u8> {
        frame_from(seq, "web-1", "agent")
    }

    fn frame_from(seq: u64, hostname: &str, agent_id: &str) -> Vec<u8> {
        let batch = Batch {
            agent: AgentIdentity {
                agent_id: agent_id.into(),
                hostname: hostname.into(),
                agent_version: "0.1.0".into(),
            },
            seq,
            created_ms: T,
            records: vec![
                Record::Log(LogRecord {
                    ts_ms: T,
                    source: "/var/log/syslog".into(),
                    service: "sys".into(),
                    line: b"hello".to_vec(),
                    level: None,
                }),
                Record::Metric(MetricPoint {
                    name: "cpu.utilization".into(),
                    ts_ms: T,
                    value: 3.5,
                    unit: Unit::Percent,
                    dimensions: vec![],
                }),
            ],
        };
        outpost_proto::encode(&batch).unwrap()
    }

    fn log_files(backend: &LocalBackend) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&backend.data_dir().join("logs"), &mut out);
        out
    }

    #[tokio::test]
    async fn a_batch_lands_at_the_documented_path_and_in_the_database() {
        let tmp = tempfile::tempdir().unwrap();
        let backend = LocalBackend::open(tmp.path()).unwrap();
        ingest::handle(&frame(1), &backend, 5).await.unwrap();
        assert_eq!(
            log_files(&backend),
            [tmp.path().join(
                "logs/host=web-1/dt=2026-11-23/hour=22/agent-00000000000000000001.ndjson.zst"
            )]
        );
        let query = PointQuery {
            host: "web-1".into(),
            name: "cpu.utilization".into(),
            since_ms: T,
        };
        let points = backend.query_points(query).await.unwrap();
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].value, Some(3.5));
        let hosts = backend.hosts().await.unwrap();
        assert_eq!((hosts[0].last_seq, hosts[0].last_seen_ms), (1, 5));
    }

    #[tokio::test]
    async fn a_resent_batch_leaves_exactly_one_file_and_one_row() {
        let tmp = tempfile::tempdir().unwrap();
        let backend = LocalBackend::open(tmp.path()).unwrap();
        ingest::handle(&frame(1), &backend, 5).await.unwrap();
        ingest::handle(&frame(1), &backend, 6).await.unwrap();
        assert_eq!(log_files(&backend).len(), 1);
        let query = PointQuery {
            host: "web-1".into(),
            name: "cpu.utilization".into(),
            since_ms: i64::MIN,
        };
        assert_eq!(backend.query_points(query).await.unwrap().len(), 1);
        // A different batch is a different file.
        ingest::handle(&frame(2), &backend, 7).await.unwrap();
        assert_eq!(log_files(&backend).len(), 2);
    }

    #[tokio::test]
    async fn the_longest_accepted_names_fit_the_file_system() {
        let tmp = tempfile::tempdir().unwrap();
        let backend = LocalBackend::open(tmp.path()).unwrap();
        let host = "h".repeat(outpost_sink_core::names::MAX_NAME_LEN);
        // 200 characters, 400 bytes: sanitised to 200 underscores.
        let agent_id = "é".repeat(outpost_sink_core::names::MAX_NAME_LEN);
        ingest::handle(&frame_from(u64::MAX >> 1, &host, &agent_id), &backend, 0)
            .await
            .unwrap();
        let files = log_files(&backend);
        assert_eq!(files.len(), 1);
        let name = files[0].file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), 232);
        assert!(name.starts_with(&"_".repeat(200)));
    }
}
