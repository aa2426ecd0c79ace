//! Metric points and the hosts table in SQLite (`DIR/metrics.db`). Blocking: call from a
//! blocking thread. The schema is documented in `docs/sink.md`; never edit a shipped version,
//! add a migration and bump [`SCHEMA_VERSION`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, params};

use outpost_sink_core::error::StorageError;
use outpost_sink_core::ports::{
    HostSummary, LatestValue, MetricWrite, PointQuery, Samples, SeriesQuery, StoredPoint,
};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "metrics.db";

/// `PRAGMA user_version` of the schema this build writes.
pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA_V1: &str = "
CREATE TABLE points (
    host       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    dimensions TEXT    NOT NULL,
    ts_ms      INTEGER NOT NULL,
    value      REAL,
    unit       TEXT    NOT NULL,
    agent_id   TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (host, name, dimensions, ts_ms)
) WITHOUT ROWID;
CREATE INDEX points_by_time ON points (host, name, ts_ms);
CREATE TABLE hosts (
    host          TEXT    NOT NULL PRIMARY KEY,
    agent_id      TEXT    NOT NULL,
    agent_version TEXT    NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    last_seq      INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Version 2: the newest point of each series, for `GET /v1/hosts`; filled from `points` when
/// an older database is migrated.
const SCHEMA_V2: &str = "
CREATE TABLE latest (
    host       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    dimensions TEXT    NOT NULL,
    ts_ms      INTEGER NOT NULL,
    value      REAL,
    unit       TEXT    NOT NULL,
    PRIMARY KEY (host, name, dimensions)
) WITHOUT ROWID;
INSERT INTO latest (host, name, dimensions, ts_ms, value, unit)
    SELECT host, name, dimensions, max(ts_ms), value, unit FROM points
    GROUP BY host, name, dimensions;
";

/// The metrics database: one connection behind a mutex (SQLite allows one writer anyway).
#[derive(Debug)]
pub struct MetricsDb {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl MetricsDb {
    /// Open (creating and migrating if needed) `data_dir/metrics.db`: WAL journal,
    /// `synchronous=FULL` (a batch acknowledged is a batch that survives power loss).
    pub fn open(data_dir: &Path) -> Result<Self, StorageError> {
        let path = data_dir.join(DB_FILE);
        let db_error = |context| {
            let path = path.clone();
            move |source: rusqlite::Error| StorageError::Database {
                path,
                context,
                source: Box::new(source),
            }
        };
        let mut conn = Connection::open(&path).map_err(db_error("opening"))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(db_error("setting busy_timeout"))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(db_error("enabling WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(db_error("enabling WAL")(
                rusqlite::Error::InvalidParameterName(format!("journal_mode is {mode}")),
            ));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_error("setting synchronous=FULL"))?;

        let tx = conn.transaction().map_err(db_error("migrating"))?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(db_error("reading user_version"))?;
        match version {
            0..SCHEMA_VERSION => {
                if version < 1 {
                    tx.execute_batch(SCHEMA_V1)
                        .map_err(db_error("creating schema version 1"))?;
                }
                // (SQLite returns the other columns of the max(ts_ms) row.)
                tx.execute_batch(SCHEMA_V2)
                    .map_err(db_error("migrating to schema version 2"))?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(db_error("setting user_version"))?;
            }
            SCHEMA_VERSION => {}
            found => {
                return Err(StorageError::SchemaVersion {
                    path: path.clone(),
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
        }
        tx.commit().map_err(db_error("migrating"))?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, context: &'static str) -> impl FnOnce(rusqlite::Error) -> StorageError + '_ {
        move |source| StorageError::Database {
            path: self.path.clone(),
            context,
            source: Box::new(source),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic mid-transaction dropped the transaction, which rolled it back: the connection
        // is consistent, so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Insert or replace a batch's points and upsert its host row, in one transaction.
    pub fn put(&self, write: &MetricWrite) -> Result<(), StorageError> {
        let seq = i64::try_from(write.seq).map_err(|_| StorageError::Database {
            path: self.path.clone(),
            context: "storing seq",
            source: format!("seq {} does not fit INTEGER", write.seq).into(),
        })?;
        let mut conn = self.lock();
        let tx = conn
            .transaction()
            .map_err(self.error("beginning a batch"))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO points
                     (host, name, dimensions, ts_ms, value, unit, agent_id, seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(self.error("preparing the point insert"))?;
            let mut latest = tx
                .prepare_cached(
                    "INSERT INTO latest (host, name, dimensions, ts_ms, value, unit)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (host, name, dimensions) DO UPDATE SET
                         ts_ms = excluded.ts_ms, value = excluded.value, unit = excluded.unit
                     WHERE excluded.ts_ms >= latest.ts_ms",
                )
                .map_err(self.error("preparing the latest upsert"))?;
            for p in &write.points {
                insert
                    .execute(params![
                        write.host,
                        p.name,
                        p.dimensions,
                        p.ts_ms,
                        p.value,
                        p.unit,
                        write.agent_id,
                        seq
                    ])
                    .map_err(self.error("inserting a point"))?;
                latest
                    .execute(params![
                        write.host,
                        p.name,
                        p.dimensions,
                        p.ts_ms,
                        p.value,
                        p.unit
                    ])
                    .map_err(self.error("updating a latest value"))?;
            }
            tx.prepare_cached(
                "INSERT INTO hosts (host, agent_id, agent_version, last_seen_ms, last_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (host) DO UPDATE SET
                     agent_id = excluded.agent_id,
                     agent_version = excluded.agent_version,
                     last_seen_ms = excluded.last_seen_ms,
                     last_seq = excluded.last_seq",
            )
            .and_then(|mut upsert| {
                upsert.execute(params![
                    write.host,
                    write.agent_id,
                    write.agent_version,
                    write.received_ms,
                    seq
                ])
            })
            .map_err(self.error("updating the host"))?;
        }
        tx.commit().map_err(self.error("committing a batch"))
    }

    /// The points of `query.host`/`query.name` at or after `query.since_ms`, by time.
    pub fn query(&self, query: &PointQuery) -> Result<Vec<StoredPoint>, StorageError> {
        let conn = self.lock();
        let mut select = conn
            .prepare_cached(
                "SELECT ts_ms, value, unit, dimensions FROM points
                 WHERE host = ?1 AND name = ?2 AND ts_ms >= ?3
                 ORDER BY ts_ms, dimensions",
            )
            .map_err(self.error("preparing the point query"))?;
        let rows = select
            .query_map(params![query.host, query.name, query.since_ms], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Option<f64>>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .map_err(self.error("querying points"))?;
        let mut points = Vec::new();
        for row in rows {
            let (ts_ms, value, unit, dimensions) = row.map_err(self.error("reading a point"))?;
            let dimensions = self.parse_dimensions(&dimensions)?;
            points.push(StoredPoint {
                ts_ms,
                value,
                unit,
                dimensions,
            });
        }
        Ok(points)
    }

    /// For each query, the `(ts_ms, value)` of one series (host, name, exact canonical
    /// dimensions) in `from_ms..to_ms`, by time; one read transaction for all (the alarms read
    /// this way, through the primary key).
    pub fn series(&self, queries: &[SeriesQuery]) -> Result<Vec<Samples>, StorageError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction()
            .map_err(self.error("starting a series read"))?;
        let mut out = Vec::with_capacity(queries.len());
        {
            let mut select = tx
                .prepare_cached(
                    "SELECT ts_ms, value FROM points
                     WHERE host = ?1 AND name = ?2 AND dimensions = ?3
                       AND ts_ms >= ?4 AND ts_ms < ?5
                     ORDER BY ts_ms",
                )
                .map_err(self.error("preparing the series query"))?;
            for q in queries {
                let rows = select
                    .query_map(
                        params![q.host, q.name, q.dimensions, q.from_ms, q.to_ms],
                        |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Option<f64>>(1)?)),
                    )
                    .map_err(self.error("querying a series"))?;
                out.push(
                    rows.collect::<Result<Vec<_>, _>>()
                        .map_err(self.error("reading a series point"))?,
                );
            }
        }
        tx.commit().map_err(self.error("ending a series read"))?;
        Ok(out)
    }

    /// Every host row, by host name.
    pub fn hosts(&self) -> Result<Vec<HostSummary>, StorageError> {
        let conn = self.lock();
        let mut select = conn
            .prepare_cached(
                "SELECT host, agent_id, agent_version, last_seen_ms, last_seq
                 FROM hosts ORDER BY host",
            )
            .map_err(self.error("preparing the hosts query"))?;
        let rows = select
            .query_map([], |row| {
                Ok(HostSummary {
                    host: row.get(0)?,
                    agent_id: row.get(1)?,
                    agent_version: row.get(2)?,
                    last_seen_ms: row.get(3)?,
                    // Stored from a u64 validated to fit i64; a negative value means a
                    // hand-edited row, shown as 0.
                    last_seq: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
                    latest: Vec::new(),
                })
            })
            .map_err(self.error("querying hosts"))?;
        let mut hosts: Vec<HostSummary> = rows
            .collect::<Result<_, _>>()
            .map_err(self.error("reading a host"))?;
        let mut select = conn
            .prepare_cached(
                "SELECT host, name, dimensions, ts_ms, value, unit FROM latest
                 ORDER BY host, name, dimensions",
            )
            .map_err(self.error("preparing the latest query"))?;
        let rows = select
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, Option<f64>>(4)?,
                    row.get::<_, String>(5)?,
                ))
            })
            .map_err(self.error("querying latest values"))?;
        // Both queries are ordered by host: merge.
        let mut index = 0;
        for row in rows {
            let (host, name, dimensions, ts_ms, value, unit) =
                row.map_err(self.error("reading a latest value"))?;
            while index < hosts.len() && hosts[index].host < host {
                index += 1;
            }
            let Some(summary) = hosts.get_mut(index).filter(|h| h.host == host) else {
                continue;
            };
            summary.latest.push(LatestValue {
                name,
                dimensions: self.parse_dimensions(&dimensions)?,
                ts_ms,
                value,
                unit,
            });
        }
        for host in &mut hosts {
            // By name, then dimensions as a map (not as JSON text), as every backend orders.
            host.latest
                .sort_by(|a, b| (&a.name, &a.dimensions).cmp(&(&b.name, &b.dimensions)));
        }
        Ok(hosts)
    }

    fn parse_dimensions(&self, json: &str) -> Result<BTreeMap<String, String>, StorageError> {
        serde_json::from_str(json).map_err(|e| StorageError::Database {
            path: self.path.clone(),
            context: "parsing stored dimensions",
            source: Box::new(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_sink_core::ports::PointRow;

    fn count(db: &MetricsDb, table: &str) -> i64 {
        db.lock()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .unwrap()
    }

    fn write(seq: u64, received_ms: i64, points: &[(i64, f64, &str)]) -> MetricWrite {
        MetricWrite {
            host: "web-1".into(),
            agent_id: "agent".into(),
            agent_version: "0.1.0".into(),
            seq,
            received_ms,
            points: points
                .iter()
                .map(|&(ts_ms, value, dimensions)| PointRow {
                    name: "cpu.utilization".into(),
                    dimensions: dimensions.into(),
                    ts_ms,
                    value: Some(value),
                    unit: "Percent",
                })
                .collect(),
        }
    }

    fn all(host: &str) -> PointQuery {
        PointQuery {
            host: host.into(),
            name: "cpu.utilization".into(),
            since_ms: i64::MIN,
        }
    }

    #[test]
    fn schema_version_wal_and_synchronous_are_set() {
        let tmp = tempfile::tempdir().unwrap();
        let db = MetricsDb::open(tmp.path()).unwrap();
        let synchronous: i64 = db
            .lock()
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(synchronous, 2, "FULL");
        drop(db);
        let conn = Connection::open(tmp.path().join(DB_FILE)).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!((version, mode.as_str()), (SCHEMA_VERSION, "wal"));
        // Reopening an existing database keeps it.
        MetricsDb::open(tmp.path()).unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let conn = Connection::open(tmp.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 3).unwrap();
        drop(conn);
        let error = MetricsDb::open(tmp.path()).unwrap_err();
        assert!(matches!(
            error,
            StorageError::SchemaVersion {
                found: 3,
                supported: 2,
                ..
            }
        ));
    }

    #[test]
    fn rows_are_readable_and_a_resent_batch_does_not_duplicate() {
        let tmp = tempfile::tempdir().unwrap();
        let db = MetricsDb::open(tmp.path()).unwrap();
        let batch = write(
            3,
            100,
            &[(2_000, 2.0, "{}"), (1_000, 1.0, r#"{"cpu":"0"}"#)],
        );
        db.put(&batch).unwrap();
        db.put(&batch).unwrap();
        assert_eq!(count(&db, "points"), 2);
        let points = db.query(&all("web-1")).unwrap();
        assert_eq!(
            points,
            [
                StoredPoint {
                    ts_ms: 1_000,
                    value: Some(1.0),
                    unit: "Percent".into(),
                    dimensions: [("cpu".to_string(), "0".to_string())].into(),
                },
                StoredPoint {
                    ts_ms: 2_000,
                    value: Some(2.0),
                    unit: "Percent".into(),
                    dimensions: BTreeMap::new(),
                },
            ]
        );
        assert!(db.query(&all("web-2")).unwrap().is_empty());
    }

    #[test]
    fn series_reads_one_exact_dimension_set_in_a_half_open_range() {
        let tmp = tempfile::tempdir().unwrap();
        let db = MetricsDb::open(tmp.path()).unwrap();
        db.put(&write(
            1,
            0,
            &[
                (999, 0.0, "{}"),
                (1_000, 1.0, "{}"),
                (1_500, 9.0, r#"{"cpu":"0"}"#),
                (1_999, 2.0, "{}"),
                (2_000, 3.0, "{}"),
            ],
        ))
        .unwrap();
        let query = |host: &str, dimensions: &str| SeriesQuery {
            host: host.into(),
            name: "cpu.utilization".into(),
            dimensions: dimensions.into(),
            from_ms: 1_000,
            to_ms: 2_000,
        };
        let got = db
            .series(&[
                query("web-1", "{}"),
                query("web-1", r#"{"cpu":"0"}"#),
                query("web-2", "{}"),
            ])
            .unwrap();
        assert_eq!(
            got,
            [
                vec![(1_000, Some(1.0)), (1_999, Some(2.0))],
                vec![(1_500, Some(9.0))],
                vec![]
            ]
        );
    }

    #[test]
    fn query_with_since_is_inclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let db = MetricsDb::open(tmp.path()).unwrap();
        db.put(&write(
            1,
            0,
            &[(1_000, 1.0, "{}"), (2_000, 2.0, "{}"), (3_000, 3.0, "{}")],
        ))
        .unwrap();
        let since = |since_ms| -> Vec<i64> {
            let query = PointQuery {
                since_ms,
                ..all("web-1")
            };
            db.query(&query).unwrap().iter().map(|p| p.ts_ms).collect()
        };
        assert_eq!(since(2_000), [2_000, 3_000]);
        assert_eq!(since(2_001), [3_000]);
        assert_eq!(since(3_001), Vec::<i64>::new());
    }

    #[test]
    fn non_finite_values_round_trip_as_null() {
        let tmp = tempfile::tempdir().unwrap();
        let db = MetricsDb::open(tmp.path()).unwrap();
        let mut batch = write(1, 0, &[(1, 0.0, "{}")]);
        batch.points[0].value = None;
        db.put(&batch).unwrap();
        assert_eq!(db.query(&all("web-1")).unwrap()[0].value, None);
    }

    #[test]
    fn the_host_row_follows_the_last_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let db = MetricsDb::open(tmp.path()).unwrap();
        db.put(&write(1, 100, &[])).unwrap();
        let mut later = write(2, 200, &[]);
        later.agent_version = "0.2.0".into();
        db.put(&later).unwrap();
        assert_eq!(
            db.hosts().unwrap(),
            [HostSummary {
                host: "web-1".into(),
                agent_id: "agent".into(),
                agent_version: "0.2.0".into(),
                last_seen_ms: 200,
                last_seq: 2,
                latest: Vec::new(),
            }]
        );
        assert_eq!(count(&db, "hosts"), 1);
    }

    fn latest(db: &MetricsDb) -> Vec<(String, i64, Option<f64>)> {
        db.hosts()
            .unwrap()
            .into_iter()
            .flat_map(|h| h.latest)
            .map(|l| {
                let dims = serde_json::to_string(&l.dimensions).unwrap();
                (format!("{}{dims}", l.name), l.ts_ms, l.value)
            })
            .collect()
    }

    #[test]
    fn latest_values_keep_the_newest_point_of_each_series() {
        let tmp = tempfile::tempdir().unwrap();
        let db = MetricsDb::open(tmp.path()).unwrap();
        db.put(&write(
            1,
            100,
            &[(2_000, 2.0, "{}"), (1_000, 1.0, r#"{"cpu":"0"}"#)],
        ))
        .unwrap();
        // An older point arriving later (a re-sent old batch) does not replace a newer one.
        db.put(&write(
            2,
            200,
            &[(1_500, 9.0, "{}"), (3_000, 3.0, r#"{"cpu":"0"}"#)],
        ))
        .unwrap();
        assert_eq!(
            latest(&db),
            [
                ("cpu.utilization{}".to_owned(), 2_000, Some(2.0)),
                (
                    "cpu.utilization{\"cpu\":\"0\"}".to_owned(),
                    3_000,
                    Some(3.0)
                ),
            ]
        );
    }

    #[test]
    fn a_version_1_database_is_migrated_with_its_latest_values() {
        let tmp = tempfile::tempdir().unwrap();
        let conn = Connection::open(tmp.path().join(DB_FILE)).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO points VALUES ('web-1', 'load', '{}', 1000, 1.0, 'None', 'a', 1);
             INSERT INTO points VALUES ('web-1', 'load', '{}', 3000, 3.0, 'None', 'a', 2);
             INSERT INTO points VALUES ('web-1', 'load', '{}', 2000, 2.0, 'None', 'a', 3);
             INSERT INTO hosts VALUES ('web-1', 'a', '0.1.0', 5, 3);",
        )
        .unwrap();
        drop(conn);
        let db = MetricsDb::open(tmp.path()).unwrap();
        assert_eq!(latest(&db), [("load{}".to_owned(), 3_000, Some(3.0))]);
        assert_eq!(count(&db, "points"), 3);
    }
}
