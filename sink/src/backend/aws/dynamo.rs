//! Metric points and host summaries in one DynamoDB table.
//!
//! Key schema (a contract: the SAM template and users' queries depend on it): partition key
//! `pk` (string), sort key `ts` (number).
//!
//! - A metric item: `pk` = `<host>#<metric name>`, `ts` = the points' time in unix ms, `host`,
//!   `name`, `points` (a map from the canonical dimensions JSON, e.g. `{"mount":"/"}`, to
//!   `{v: number or NULL, u: unit}`), `agent_id`, `seq`, and `expires_at` (unix seconds, the
//!   table's TTL attribute). All the points of one metric at one time in a batch share an item,
//!   so a series with dimensions costs one write per sample, not one per dimension set; a
//!   re-sent batch puts the same items again.
//! - A host item (the fleet's `latest` items): `pk` = [`HOSTS_PK`], `ts` = [`host_sort_key`]
//!   of the host name, `host`, `agent_id`, `agent_version`, `last_seen_ms`, `last_seq`, and one
//!   attribute per series, `latest:<name><dimensions JSON>`, holding the newest point of that
//!   series in the last batch that carried it: `{n: name, d: dimensions JSON, ts, v, u}`.
//!   `GET /v1/hosts` is one Query of [`HOSTS_PK`]; no Scan anywhere.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

use crate::backend::aws::{remote, service};
use crate::backoff::Backoff;
use outpost_sink_core::error::StorageError;
use outpost_sink_core::ports::{HostSummary, LatestValue, MetricWrite, PointQuery, StoredPoint};

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const TS: &str = "ts";
/// TTL attribute (unix seconds); enable TTL on it.
pub const EXPIRES_AT: &str = "expires_at";
/// Partition of the host items.
pub const HOSTS_PK: &str = "#hosts";
/// Prefix of a host item's latest-value attributes.
pub const LATEST_PREFIX: &str = "latest:";
/// Items per `BatchWriteItem` call (the API's limit).
pub const BATCH_WRITE_MAX: usize = 25;
/// Attributes set per `UpdateItem` of a host item (keeps the expression far below 4 KB).
const UPDATE_SETS_MAX: usize = 100;
/// Rounds of `UnprocessedItems` resent before giving up (the batch is then retried whole).
const UNPROCESSED_ROUNDS: u32 = 8;
/// The wait before each resend of unprocessed items: 50 ms doubled up to 2 s, jittered.
const UNPROCESSED_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(50), Duration::from_secs(2));

/// One DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// The partition key of a metric's items.
pub fn metric_pk(host: &str, name: &str) -> String {
    format!("{host}#{name}")
}

/// The sort key of a host's item in [`HOSTS_PK`]: the 64-bit FNV-1a hash of the host name,
/// cut to 52 bits so that it is exact in every JSON reader. Stable across releases (it is
/// stored); two hosts collide with negligible probability (about 10^-8 for 10,000 hosts).
pub fn host_sort_key(host: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in host.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // 52 bits: fits i64 and f64 exactly.
    (hash >> 12) as i64
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn value_attr(value: Option<f64>) -> AttributeValue {
    // `{}` of an f64 is the shortest string that reads back to the same value.
    value.map_or(AttributeValue::Null(true), n)
}

/// A metric and time's points: dimensions JSON to value and unit.
type PointsAt<'a> = BTreeMap<&'a str, (Option<f64>, &'a str)>;

/// The metric items of one batch, one per metric and time; `expires_at` in unix seconds.
/// Points repeating a series and time keep the last value (as the local backend does).
pub fn metric_items(write: &MetricWrite, expires_at: i64) -> Vec<Item> {
    let mut groups: BTreeMap<(&str, i64), PointsAt<'_>> = BTreeMap::new();
    for p in &write.points {
        groups
            .entry((p.name.as_str(), p.ts_ms))
            .or_default()
            .insert(p.dimensions.as_str(), (p.value, p.unit));
    }
    groups
        .into_iter()
        .map(|((name, ts_ms), points)| {
            let points = points
                .into_iter()
                .map(|(dims, (value, unit))| {
                    let point = HashMap::from([
                        ("v".to_owned(), value_attr(value)),
                        ("u".to_owned(), s(unit)),
                    ]);
                    (dims.to_owned(), AttributeValue::M(point))
                })
                .collect();
            HashMap::from([
                (PK.to_owned(), s(metric_pk(&write.host, name))),
                (TS.to_owned(), n(ts_ms)),
                ("host".to_owned(), s(&write.host)),
                ("name".to_owned(), s(name)),
                ("points".to_owned(), AttributeValue::M(points)),
                ("agent_id".to_owned(), s(&write.agent_id)),
                ("seq".to_owned(), n(write.seq)),
                (EXPIRES_AT.to_owned(), n(expires_at)),
            ])
        })
        .collect()
}

/// One `UpdateItem` of a host item: `SET` these attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct HostUpdate {
    /// The attributes and their values.
    pub sets: Vec<(String, AttributeValue)>,
}

/// The updates of a batch's host item: its summary, then the newest point of each series the
/// batch carries, at most `UPDATE_SETS_MAX` (100) attributes per update.
pub fn host_updates(write: &MetricWrite) -> Vec<HostUpdate> {
    let mut sets = vec![
        ("host".to_owned(), s(&write.host)),
        ("agent_id".to_owned(), s(&write.agent_id)),
        ("agent_version".to_owned(), s(&write.agent_version)),
        ("last_seen_ms".to_owned(), n(write.received_ms)),
        ("last_seq".to_owned(), n(write.seq)),
    ];
    let mut newest: BTreeMap<(&str, &str), &outpost_sink_core::ports::PointRow> = BTreeMap::new();
    for p in &write.points {
        let slot = newest
            .entry((p.name.as_str(), p.dimensions.as_str()))
            .or_insert(p);
        if p.ts_ms >= slot.ts_ms {
            *slot = p;
        }
    }
    for ((name, dims), p) in newest {
        let attr = if dims == "{}" {
            format!("{LATEST_PREFIX}{name}")
        } else {
            format!("{LATEST_PREFIX}{name}{dims}")
        };
        let value = HashMap::from([
            ("n".to_owned(), s(name)),
            ("d".to_owned(), s(dims)),
            ("ts".to_owned(), n(p.ts_ms)),
            ("v".to_owned(), value_attr(p.value)),
            ("u".to_owned(), s(p.unit)),
        ]);
        sets.push((attr, AttributeValue::M(value)));
    }
    sets.chunks(UPDATE_SETS_MAX)
        .map(|c| HostUpdate { sets: c.to_vec() })
        .collect()
}

fn bad_item(what: &str) -> StorageError {
    StorageError::Remote {
        service: service::DYNAMODB,
        op: "reading an item".to_owned(),
        source: format!("unexpected item: {what}").into(),
    }
}

fn get_s<'a>(item: &'a Item, key: &str) -> Result<&'a str, StorageError> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(bad_item(&format!("`{key}` is not a string"))),
    }
}

fn get_i64(item: &Item, key: &str) -> Result<i64, StorageError> {
    match item.get(key) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| bad_item(&format!("`{key}` = {v} is not an integer"))),
        _ => Err(bad_item(&format!("`{key}` is not a number"))),
    }
}

fn get_value(item: &Item, key: &str) -> Result<Option<f64>, StorageError> {
    match item.get(key) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| bad_item(&format!("`{key}` = {v} is not a number"))),
        Some(AttributeValue::Null(_)) | None => Ok(None),
        _ => Err(bad_item(&format!("`{key}` is neither a number nor NULL"))),
    }
}

fn dimensions(json: &str) -> Result<BTreeMap<String, String>, StorageError> {
    serde_json::from_str(json).map_err(|e| bad_item(&format!("dimensions {json}: {e}")))
}

/// The points of metric items (as a Query returns them), ordered by time, then dimensions.
pub fn points_of(items: &[Item]) -> Result<Vec<StoredPoint>, StorageError> {
    let mut out = Vec::new();
    for item in items {
        let ts_ms = get_i64(item, TS)?;
        let Some(AttributeValue::M(points)) = item.get("points") else {
            return Err(bad_item("`points` is not a map"));
        };
        let mut sorted: Vec<_> = points.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (dims, point) in sorted {
            let AttributeValue::M(point) = point else {
                return Err(bad_item("a point is not a map"));
            };
            out.push(StoredPoint {
                ts_ms,
                value: get_value(point, "v")?,
                unit: get_s(point, "u")?.to_owned(),
                dimensions: dimensions(dims)?,
            });
        }
    }
    out.sort_by(|a, b| (a.ts_ms, &a.dimensions).cmp(&(b.ts_ms, &b.dimensions)));
    Ok(out)
}

/// A host item as a summary, latest values ordered by name, then dimensions.
pub fn host_of(item: &Item) -> Result<HostSummary, StorageError> {
    let mut latest = Vec::new();
    for (key, value) in item {
        if !key.starts_with(LATEST_PREFIX) {
            continue;
        }
        let AttributeValue::M(v) = value else {
            return Err(bad_item(&format!("`{key}` is not a map")));
        };
        latest.push(LatestValue {
            name: get_s(v, "n")?.to_owned(),
            dimensions: dimensions(get_s(v, "d")?)?,
            ts_ms: get_i64(v, "ts")?,
            value: get_value(v, "v")?,
            unit: get_s(v, "u")?.to_owned(),
        });
    }
    latest.sort_by(|a, b| (&a.name, &a.dimensions).cmp(&(&b.name, &b.dimensions)));
    Ok(HostSummary {
        host: get_s(item, "host")?.to_owned(),
        agent_id: get_s(item, "agent_id")?.to_owned(),
        agent_version: get_s(item, "agent_version")?.to_owned(),
        last_seen_ms: get_i64(item, "last_seen_ms")?,
        last_seq: u64::try_from(get_i64(item, "last_seq")?).unwrap_or(0),
        latest,
    })
}

/// The DynamoDB metric store: one client, one table.
#[derive(Debug, Clone)]
pub struct DynamoMetrics {
    client: Client,
    table: String,
    retention: Duration,
}

impl DynamoMetrics {
    /// A store over `table`, keeping points for `retention_days`.
    pub fn new(client: Client, table: String, retention_days: u32) -> Self {
        Self {
            client,
            table,
            retention: Duration::from_secs(u64::from(retention_days) * 86_400),
        }
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Write a batch: its metric items with `BatchWriteItem` (25 a call, unprocessed items
    /// resent with backoff), then its host item. Idempotent: a re-sent batch writes the same.
    pub async fn put(&self, write: &MetricWrite) -> Result<(), StorageError> {
        let retention = i64::try_from(self.retention.as_secs()).unwrap_or(i64::MAX);
        let expires_at = (write.received_ms / 1000).saturating_add(retention);
        let items = metric_items(write, expires_at);
        for chunk in items.chunks(BATCH_WRITE_MAX) {
            self.batch_write(chunk).await?;
        }
        for update in host_updates(write) {
            self.update_host(&write.host, update).await?;
        }
        Ok(())
    }

    async fn batch_write(&self, items: &[Item]) -> Result<(), StorageError> {
        let mut requests: Vec<WriteRequest> = items
            .iter()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<_, _>>()
            .map_err(|e| remote(service::DYNAMODB, "building a PutRequest".to_owned(), e))?;
        for round in 0..=UNPROCESSED_ROUNDS {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|e| {
                    remote(
                        service::DYNAMODB,
                        format!("BatchWriteItem on {}", self.table),
                        e,
                    )
                })?;
            requests = out
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.table))
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            if round < UNPROCESSED_ROUNDS {
                tracing::debug!(
                    unprocessed = requests.len(),
                    "DynamoDB left items unprocessed; resending"
                );
                tokio::time::sleep(UNPROCESSED_BACKOFF.delay(round + 1)).await;
            }
        }
        Err(StorageError::Remote {
            service: service::DYNAMODB,
            op: format!("BatchWriteItem on {}", self.table),
            source: format!(
                "{} items still unprocessed after {UNPROCESSED_ROUNDS} resends",
                requests.len()
            )
            .into(),
        })
    }

    async fn update_host(&self, host: &str, update: HostUpdate) -> Result<(), StorageError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(HOSTS_PK))
            .key(TS, n(host_sort_key(host)));
        let mut expression = String::from("SET ");
        for (i, (name, value)) in update.sets.into_iter().enumerate() {
            if i > 0 {
                expression.push_str(", ");
            }
            expression.push_str(&format!("#a{i} = :v{i}"));
            request = request
                .expression_attribute_names(format!("#a{i}"), name)
                .expression_attribute_values(format!(":v{i}"), value);
        }
        request
            .update_expression(expression)
            .send()
            .await
            .map_err(|e| {
                remote(
                    service::DYNAMODB,
                    format!("UpdateItem of host {host} on {}", self.table),
                    e,
                )
            })?;
        Ok(())
    }

    /// The items of one Query, all pages: `pk = :pk` and, when given, `ts >= :since`.
    async fn query_all(&self, pk: &str, since_ms: Option<i64>) -> Result<Vec<Item>, StorageError> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(pk));
        request = match since_ms {
            Some(since) => request
                .key_condition_expression("#pk = :pk AND #ts >= :since")
                .expression_attribute_names("#ts", TS)
                .expression_attribute_values(":since", n(since)),
            None => request.key_condition_expression("#pk = :pk"),
        };
        let mut pages = request.into_paginator().items().send();
        let mut items = Vec::new();
        while let Some(item) = pages.next().await {
            items.push(item.map_err(|e| {
                remote(
                    service::DYNAMODB,
                    format!("Query {pk} on {}", self.table),
                    e,
                )
            })?);
        }
        Ok(items)
    }

    /// The points of one metric of one host at or after `since_ms`.
    pub async fn query_points(&self, query: &PointQuery) -> Result<Vec<StoredPoint>, StorageError> {
        let items = self
            .query_all(&metric_pk(&query.host, &query.name), Some(query.since_ms))
            .await?;
        points_of(&items)
    }

    /// Every host item, by host name.
    pub async fn hosts(&self) -> Result<Vec<HostSummary>, StorageError> {
        let items = self.query_all(HOSTS_PK, None).await?;
        let mut hosts = items.iter().map(host_of).collect::<Result<Vec<_>, _>>()?;
        hosts.sort_by(|a, b| a.host.cmp(&b.host));
        Ok(hosts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_sink_core::ports::PointRow;

    fn write(points: &[(&str, &str, i64, Option<f64>)]) -> MetricWrite {
        MetricWrite {
            host: "web-1".into(),
            agent_id: "a1".into(),
            agent_version: "0.1.0".into(),
            seq: 7,
            received_ms: 1_000_000,
            points: points
                .iter()
                .map(|(name, dims, ts_ms, value)| PointRow {
                    name: (*name).into(),
                    dimensions: (*dims).into(),
                    ts_ms: *ts_ms,
                    value: *value,
                    unit: "Percent",
                })
                .collect(),
        }
    }

    #[test]
    fn points_of_one_metric_and_time_share_an_item_and_read_back() {
        let w = write(&[
            ("disk.used", r#"{"mount":"/"}"#, 10, Some(1.5)),
            ("disk.used", r#"{"mount":"/boot"}"#, 10, Some(2.0)),
            ("disk.used", r#"{"mount":"/"}"#, 20, None),
            ("cpu", "{}", 10, Some(0.1)),
            // A repeat of a series and time: the last value wins.
            ("cpu", "{}", 10, Some(0.2)),
        ]);
        let items = metric_items(&w, 99);
        assert_eq!(items.len(), 3);
        let disk: Vec<Item> = items
            .iter()
            .filter(|i| i[PK] == s("web-1#disk.used"))
            .cloned()
            .collect();
        assert_eq!(disk.len(), 2);
        assert!(
            disk.iter()
                .all(|i| i[EXPIRES_AT] == n(99) && i["seq"] == n(7))
        );
        let points = points_of(&disk).unwrap();
        let got: Vec<_> = points
            .iter()
            .map(|p| (p.ts_ms, p.dimensions["mount"].as_str(), p.value))
            .collect();
        assert_eq!(
            got,
            [
                (10, "/", Some(1.5)),
                (10, "/boot", Some(2.0)),
                (20, "/", None)
            ]
        );
        let cpu: Vec<Item> = items
            .into_iter()
            .filter(|i| i[PK] == s("web-1#cpu"))
            .collect();
        let cpu = points_of(&cpu).unwrap();
        assert_eq!(cpu.len(), 1);
        assert_eq!(cpu[0].value, Some(0.2));
        assert!(cpu[0].dimensions.is_empty());
    }

    #[test]
    fn host_updates_carry_the_newest_point_of_each_series() {
        let w = write(&[
            ("cpu", "{}", 20, Some(0.5)),
            ("cpu", "{}", 10, Some(0.9)),
            ("disk.used", r#"{"mount":"/"}"#, 10, Some(3.0)),
        ]);
        let updates = host_updates(&w);
        assert_eq!(updates.len(), 1);
        let item: Item = updates[0].sets.iter().cloned().collect();
        let host = host_of(&item).unwrap();
        assert_eq!(
            (host.host.as_str(), host.last_seq, host.last_seen_ms),
            ("web-1", 7, 1_000_000)
        );
        let latest: Vec<_> = host
            .latest
            .iter()
            .map(|l| (l.name.as_str(), l.ts_ms, l.value))
            .collect();
        assert_eq!(
            latest,
            [("cpu", 20, Some(0.5)), ("disk.used", 10, Some(3.0))]
        );
        assert!(item.contains_key("latest:disk.used{\"mount\":\"/\"}"));
    }

    #[test]
    fn many_series_split_into_bounded_updates() {
        let names: Vec<String> = (0..250).map(|i| format!("m{i:03}")).collect();
        let points: Vec<_> = names
            .iter()
            .map(|n| (n.as_str(), "{}", 1, Some(1.0)))
            .collect();
        let updates = host_updates(&write(&points));
        assert_eq!(updates.len(), 3);
        assert!(updates.iter().all(|u| u.sets.len() <= UPDATE_SETS_MAX));
        assert_eq!(updates.iter().map(|u| u.sets.len()).sum::<usize>(), 255);
    }

    #[test]
    fn host_sort_keys_are_stable_and_exact_in_json() {
        // Stored: these values must never change.
        assert_eq!(
            host_sort_key(""),
            0xcbf2_9ce4_8422_2325_u64 as i64 >> 12 & ((1 << 52) - 1)
        );
        let k = host_sort_key("web-1");
        assert!((0..1 << 52).contains(&k));
        assert_ne!(k, host_sort_key("web-2"));
    }
}
