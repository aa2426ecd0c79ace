//! The ingest core: frame bytes in, log objects and metric rows out through the storage traits.
//!
//! Knows neither HTTP nor Lambda nor any backend. [`prepare`] is pure (decode, validate, build
//! every object) so a bad frame is rejected before anything is written; [`store`] performs the
//! writes; [`handle`] is both. A front that must not run CPU-heavy work on its async threads can
//! call [`prepare`] on a blocking thread and then [`store`].

use std::collections::BTreeMap;

use outpost_proto::{Batch, MetricPoint, Record};
use serde::Serialize;

use crate::error::{IngestError, InvalidBatch};
use crate::key::{LogObjectKey, Partition};
use crate::names::MAX_NAME_LEN;
use crate::ndjson::{self, LineContext};
use crate::ports::{MetricWrite, PointRow, Storage};
use crate::timestamp;

/// The acknowledgement of a stored batch (the JSON body of a 200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ack {
    /// The sending agent.
    pub agent_id: String,
    /// The batch's sequence number.
    pub seq: u64,
    /// Records in the batch.
    pub records: usize,
    /// Log records among them.
    pub logs: usize,
    /// Metric points among them.
    pub metrics: usize,
}

/// One log object ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogObject {
    /// Where it goes.
    pub key: LogObjectKey,
    /// zstd-compressed NDJSON.
    pub body: Vec<u8>,
}

/// A decoded, validated batch turned into exactly what will be written.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedBatch {
    /// What to reply once stored.
    pub ack: Ack,
    /// One object per UTC hour the batch's log records fall in, in time order.
    pub log_objects: Vec<LogObject>,
    /// The metric rows and host update.
    pub metrics: MetricWrite,
}

/// Decode and store one frame; `now_ms` is when it was received (recorded as the host's
/// `last_seen`). Nothing is written unless the whole frame is valid.
pub async fn handle<S: Storage>(
    frame: &[u8],
    storage: &S,
    now_ms: i64,
) -> Result<Ack, IngestError> {
    let prepared = prepare(frame, now_ms)?;
    store(prepared, storage).await
}

/// Write a prepared batch: log objects first, then the metrics transaction. On error some log
/// objects may exist; re-sending the batch overwrites them, so the caller replies "retry".
pub async fn store<S: Storage>(prepared: PreparedBatch, storage: &S) -> Result<Ack, IngestError> {
    for object in prepared.log_objects {
        storage.put_log_object(&object.key, object.body).await?;
    }
    storage.put_metrics(prepared.metrics).await?;
    Ok(prepared.ack)
}

/// Decode, validate and build everything a frame will write. Pure: no I/O, no clock.
pub fn prepare(frame: &[u8], now_ms: i64) -> Result<PreparedBatch, IngestError> {
    let batch = outpost_proto::decode(frame)?;
    validate(&batch)?;

    let agent = &batch.agent;
    let context = LineContext {
        host: &agent.hostname,
        agent_id: &agent.agent_id,
        seq: batch.seq,
    };
    let mut by_partition: BTreeMap<Partition, Vec<u8>> = BTreeMap::new();
    let mut points = Vec::new();
    for (index, record) in batch.records.iter().enumerate() {
        match record {
            Record::Log(log) => {
                let partition = Partition::of(log.ts_ms).ok_or(out_of_range(index, log.ts_ms))?;
                ndjson::push_line(by_partition.entry(partition).or_default(), context, log)?;
            }
            Record::Metric(point) => points.push(point_row(point)?),
        }
    }

    let logs = batch.records.len() - points.len();
    let log_objects = by_partition
        .into_iter()
        .map(|(partition, ndjson)| {
            Ok(LogObject {
                key: LogObjectKey::new(&agent.hostname, &agent.agent_id, batch.seq, partition),
                body: ndjson::compress(&ndjson)?,
            })
        })
        .collect::<Result<Vec<_>, IngestError>>()?;
    let ack = Ack {
        agent_id: agent.agent_id.clone(),
        seq: batch.seq,
        records: batch.records.len(),
        logs,
        metrics: points.len(),
    };
    let metrics = MetricWrite {
        host: agent.hostname.clone(),
        agent_id: agent.agent_id.clone(),
        agent_version: agent.agent_version.clone(),
        seq: batch.seq,
        received_ms: now_ms,
        points,
    };
    Ok(PreparedBatch {
        ack,
        log_objects,
        metrics,
    })
}

/// Checks beyond the wire format's: what the storage layout needs.
fn validate(batch: &Batch) -> Result<(), InvalidBatch> {
    for (field, value) in [
        ("hostname", &batch.agent.hostname),
        ("agent_id", &batch.agent.agent_id),
    ] {
        if value.is_empty() {
            return Err(InvalidBatch::EmptyName { field });
        }
        // Sanitising maps each character to one ASCII byte, so this bounds the path component.
        let len = value.chars().count();
        if len > MAX_NAME_LEN {
            return Err(InvalidBatch::NameTooLong {
                field,
                len,
                limit: MAX_NAME_LEN,
            });
        }
    }
    if i64::try_from(batch.seq).is_err() {
        return Err(InvalidBatch::SeqTooLarge(batch.seq));
    }
    for (index, record) in batch.records.iter().enumerate() {
        let ts_ms = match record {
            Record::Log(log) => log.ts_ms,
            Record::Metric(point) => point.ts_ms,
        };
        if !timestamp::in_range(ts_ms) {
            return Err(out_of_range(index, ts_ms));
        }
    }
    Ok(())
}

fn out_of_range(index: usize, ts_ms: i64) -> InvalidBatch {
    InvalidBatch::TimestampOutOfRange { index, ts_ms }
}

/// A metric point as a row: dimensions as a canonical JSON object (keys sorted; if a key
/// repeats, its last value wins), non-finite values as `None`.
fn point_row(point: &MetricPoint) -> Result<PointRow, IngestError> {
    let dimensions: BTreeMap<&str, &str> = point
        .dimensions
        .iter()
        .map(|d| (d.key.as_str(), d.value.as_str()))
        .collect();
    let dimensions = serde_json::to_string(&dimensions).map_err(|e| IngestError::Encode {
        what: "metric dimensions as JSON",
        message: e.to_string(),
    })?;
    Ok(PointRow {
        name: point.name.clone(),
        dimensions,
        ts_ms: point.ts_ms,
        value: point.value.is_finite().then_some(point.value),
        unit: point.unit.as_str(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::error::StorageError;
    use crate::ports::{HostSummary, LogStore, MetricStore, PointQuery, StoredPoint};
    use outpost_proto::{AgentIdentity, Dimension, Level, LogRecord, Unit};
    use serde_json::{Value, json};

    /// 2026-11-23T22:59:59.000Z, one second before an hour boundary.
    const T: i64 = 1_795_474_799_000;

    /// Records every call, fails on demand.
    #[derive(Default)]
    struct FakeStore {
        logs: Mutex<Vec<(String, Vec<u8>)>>,
        metrics: Mutex<Vec<MetricWrite>>,
        fail_logs: bool,
    }

    impl LogStore for FakeStore {
        async fn put_log_object(
            &self,
            key: &LogObjectKey,
            body: Vec<u8>,
        ) -> Result<(), StorageError> {
            if self.fail_logs {
                return Err(StorageError::Worker("injected".into()));
            }
            self.logs.lock().unwrap().push((key.to_string(), body));
            Ok(())
        }
    }

    impl MetricStore for FakeStore {
        async fn put_metrics(&self, write: MetricWrite) -> Result<(), StorageError> {
            self.metrics.lock().unwrap().push(write);
            Ok(())
        }
        async fn query_points(&self, _: PointQuery) -> Result<Vec<StoredPoint>, StorageError> {
            Ok(Vec::new())
        }
        async fn hosts(&self) -> Result<Vec<HostSummary>, StorageError> {
            Ok(Vec::new())
        }
    }

    impl FakeStore {
        fn is_empty(&self) -> bool {
            self.logs.lock().unwrap().is_empty() && self.metrics.lock().unwrap().is_empty()
        }
    }

    fn log(ts_ms: i64, line: &[u8]) -> Record {
        Record::Log(LogRecord {
            ts_ms,
            source: "/var/log/app.log".into(),
            service: "app".into(),
            line: line.to_vec(),
            level: Some(Level::Info),
        })
    }

    fn metric(name: &str, ts_ms: i64, value: f64, dimensions: &[(&str, &str)]) -> Record {
        Record::Metric(MetricPoint {
            name: name.into(),
            ts_ms,
            value,
            unit: Unit::Percent,
            dimensions: dimensions
                .iter()
                .map(|(k, v)| Dimension {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
        })
    }

    fn batch(records: Vec<Record>) -> Batch {
        Batch {
            agent: AgentIdentity {
                agent_id: "agent-1".into(),
                hostname: "web-1".into(),
                agent_version: "0.1.0".into(),
            },
            seq: 5,
            created_ms: T,
            records,
        }
    }

    fn frame(batch: &Batch) -> Vec<u8> {
        outpost_proto::encode(batch).unwrap()
    }

    fn lines(body: &[u8]) -> Vec<Value> {
        let plain = zstd::bulk::decompress(body, 1 << 20).unwrap();
        String::from_utf8(plain)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn logs_spanning_an_hour_boundary_go_to_two_objects_in_batch_order() {
        let store = FakeStore::default();
        let records = vec![
            log(T, b"first"),
            log(T + 2_000, b"second, next hour"),
            log(T + 500, b"third, back in hour 22"),
        ];
        let ack = handle(&frame(&batch(records)), &store, 42).await.unwrap();
        assert_eq!(
            ack,
            Ack {
                agent_id: "agent-1".into(),
                seq: 5,
                records: 3,
                logs: 3,
                metrics: 0
            }
        );
        let logs = store.logs.lock().unwrap();
        let keys: Vec<&str> = logs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "logs/host=web-1/dt=2026-11-23/hour=22/agent-1-00000000000000000005.ndjson.zst",
                "logs/host=web-1/dt=2026-11-23/hour=23/agent-1-00000000000000000005.ndjson.zst",
            ]
        );
        let messages = |body: &[u8]| -> Vec<Value> {
            lines(body).iter().map(|l| l["message"].clone()).collect()
        };
        assert_eq!(
            messages(&logs[0].1),
            [json!("first"), json!("third, back in hour 22")]
        );
        assert_eq!(messages(&logs[1].1), [json!("second, next hour")]);
    }

    #[tokio::test]
    async fn ndjson_lines_carry_every_field() {
        let store = FakeStore::default();
        handle(&frame(&batch(vec![log(T, b"hello")])), &store, 0)
            .await
            .unwrap();
        let logs = store.logs.lock().unwrap();
        assert_eq!(
            lines(&logs[0].1),
            [json!({
                "ts": "2026-11-23T22:59:59.000Z",
                "host": "web-1",
                "agent_id": "agent-1",
                "seq": 5,
                "service": "app",
                "source": "/var/log/app.log",
                "message": "hello",
                "level": "info",
            })]
        );
    }

    #[tokio::test]
    async fn invalid_utf8_is_flagged() {
        let store = FakeStore::default();
        handle(&frame(&batch(vec![log(T, b"\xc3\x28 oops")])), &store, 0)
            .await
            .unwrap();
        let logs = store.logs.lock().unwrap();
        let line = &lines(&logs[0].1)[0];
        assert_eq!(line["invalid_utf8"], true);
        assert_eq!(line["message"], "\u{fffd}( oops");
    }

    #[tokio::test]
    async fn metric_points_become_rows_and_the_host_is_recorded() {
        let store = FakeStore::default();
        let records = vec![
            metric("cpu.utilization", T, 12.5, &[("cpu", "total")]),
            log(T, b"x"),
            metric(
                "disk.used",
                T + 1,
                f64::NAN,
                &[("mount", "/"), ("device", "sda1")],
            ),
        ];
        let ack = handle(&frame(&batch(records)), &store, 777).await.unwrap();
        assert_eq!((ack.records, ack.logs, ack.metrics), (3, 1, 2));
        let metrics = store.metrics.lock().unwrap();
        assert_eq!(
            *metrics,
            [MetricWrite {
                host: "web-1".into(),
                agent_id: "agent-1".into(),
                agent_version: "0.1.0".into(),
                seq: 5,
                received_ms: 777,
                points: vec![
                    PointRow {
                        name: "cpu.utilization".into(),
                        dimensions: r#"{"cpu":"total"}"#.into(),
                        ts_ms: T,
                        value: Some(12.5),
                        unit: "Percent",
                    },
                    PointRow {
                        name: "disk.used".into(),
                        dimensions: r#"{"device":"sda1","mount":"/"}"#.into(),
                        ts_ms: T + 1,
                        value: None,
                        unit: "Percent",
                    },
                ],
            }]
        );
        assert_eq!(store.logs.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_metrics_only_batch_writes_no_log_object() {
        let store = FakeStore::default();
        handle(&frame(&batch(vec![metric("m", T, 1.0, &[])])), &store, 0)
            .await
            .unwrap();
        assert!(store.logs.lock().unwrap().is_empty());
        assert_eq!(store.metrics.lock().unwrap()[0].points[0].dimensions, "{}");
    }

    #[tokio::test]
    async fn a_decode_error_stores_nothing() {
        let store = FakeStore::default();
        let mut bad = frame(&batch(vec![log(T, b"x"), metric("m", T, 1.0, &[])]));
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let error = handle(&bad, &store, 0).await.unwrap_err();
        assert!(matches!(
            error,
            IngestError::Decode(outpost_proto::DecodeError::ChecksumMismatch { .. })
        ));
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn an_out_of_range_timestamp_late_in_the_batch_stores_nothing() {
        let store = FakeStore::default();
        let records = vec![
            log(T, b"fine"),
            metric("m", T, 1.0, &[]),
            log(i64::MAX, b"bad"),
        ];
        let error = handle(&frame(&batch(records)), &store, 0)
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            IngestError::Invalid(InvalidBatch::TimestampOutOfRange { index: 2, .. })
        ));
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn overlong_names_and_seq_are_rejected_before_any_write() {
        let store = FakeStore::default();
        let mut long = batch(vec![log(T, b"x")]);
        long.agent.hostname = "h".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(
            handle(&frame(&long), &store, 0).await,
            Err(IngestError::Invalid(InvalidBatch::NameTooLong {
                field: "hostname",
                ..
            }))
        ));
        long.agent.hostname = "h".repeat(MAX_NAME_LEN);
        long.seq = u64::MAX;
        assert!(matches!(
            handle(&frame(&long), &store, 0).await,
            Err(IngestError::Invalid(InvalidBatch::SeqTooLarge(u64::MAX)))
        ));
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn a_failing_log_store_skips_the_metrics_write() {
        let store = FakeStore {
            fail_logs: true,
            ..FakeStore::default()
        };
        let records = vec![log(T, b"x"), metric("m", T, 1.0, &[])];
        let error = handle(&frame(&batch(records)), &store, 0)
            .await
            .unwrap_err();
        assert!(matches!(error, IngestError::Storage(_)));
        assert!(store.metrics.lock().unwrap().is_empty());
    }

    #[test]
    fn prepare_is_deterministic() {
        let frame = frame(&batch(vec![log(T, b"x"), log(T + 3_600_000, b"y")]));
        assert_eq!(prepare(&frame, 1).unwrap(), prepare(&frame, 1).unwrap());
    }
}
