//! `PutMetricData`: one statistic-set datum per set, grouped into calls within the API's limits.

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    Dimension, MetricDatum, StandardUnit, StatisticSet as SdkStatisticSet,
};

use super::aggregate::StatisticSet;

/// Datums in one `PutMetricData` call (the API's limit).
pub const PUT_MAX_DATUMS: usize = 1000;
/// Size of one `PutMetricData` request (the API's limit is 1 MB; read as 10^6 bytes).
pub const PUT_MAX_REQUEST_BYTES: usize = 1_000_000;
/// Reserved in each request for `Action`, `Version` and the namespace (255 characters, each
/// percent-encoded to at most 3 bytes).
pub const PUT_REQUEST_BASE_BYTES: usize = 1024;

/// Bytes allowed for one query-protocol key such as `&MetricData.member.1000.Dimensions.member.30.Value=`
/// (51 bytes; the longest, `...StatisticValues.SampleCount=`, is 52).
const QUERY_KEY_BYTES: usize = 64;
/// Bytes allowed for one number (the shortest round-trip form of an `f64` has at most 24).
const QUERY_NUMBER_BYTES: usize = 32;
/// Bytes allowed for the percent-encoded timestamp (`2025-01-01T00%3A00%3A00Z` is 24).
const QUERY_TIMESTAMP_BYTES: usize = 64;
/// Fields of a datum besides its dimensions: name, timestamp, unit and four statistics.
const QUERY_FIXED_FIELDS: usize = 7;

/// An upper bound of the bytes `set` adds to a `PutMetricData` request body.
///
/// The SDK speaks CloudWatch's query protocol: a form-encoded body of
/// `&MetricData.member.N.<field>=<value>` pairs. The bound counts 64 bytes for
/// each key (seven fixed fields plus a name and a value per dimension; the longest key is 52
/// bytes), 32 bytes for each of the four statistics, 64 for the timestamp, and three bytes
/// (a percent-encoded byte) for every byte of the metric name, unit and dimensions. The SDK
/// may gzip the body, which only makes it smaller.
pub fn estimated_request_bytes(set: &StatisticSet) -> usize {
    let strings = set.name.len()
        + set.unit.len()
        + set
            .dimensions
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    QUERY_KEY_BYTES * (QUERY_FIXED_FIELDS + 2 * set.dimensions.len())
        + 4 * QUERY_NUMBER_BYTES
        + QUERY_TIMESTAMP_BYTES
        + 3 * strings
}

fn datum(set: &StatisticSet) -> MetricDatum {
    let dimensions = set
        .dimensions
        .iter()
        .map(|(k, v)| Dimension::builder().name(k).value(v).build())
        .collect();
    let statistics = SdkStatisticSet::builder()
        .sample_count(set.sample_count as f64)
        .sum(set.sum)
        .minimum(set.min)
        .maximum(set.max)
        .build();
    MetricDatum::builder()
        .metric_name(&set.name)
        .set_dimensions(Some(dimensions))
        .timestamp(DateTime::from_millis(set.minute_ms))
        .unit(StandardUnit::from(set.unit))
        .statistic_values(statistics)
        .build()
}

/// The `PutMetricData` calls that carry `sets`, in order: one statistic-set datum per set, at
/// most [`PUT_MAX_DATUMS`] a call, and at most [`PUT_MAX_REQUEST_BYTES`] a call by
/// [`estimated_request_bytes`] (after [`PUT_REQUEST_BASE_BYTES`]). A set that alone exceeds the
/// estimate (impossible within CloudWatch's name limits) still gets a call of its own.
pub fn metric_data_calls(sets: &[StatisticSet]) -> Vec<Vec<MetricDatum>> {
    let budget = PUT_MAX_REQUEST_BYTES - PUT_REQUEST_BASE_BYTES;
    let mut calls = Vec::new();
    let mut call = Vec::new();
    let mut bytes = 0;
    for set in sets {
        let size = estimated_request_bytes(set);
        if !call.is_empty() && (call.len() == PUT_MAX_DATUMS || bytes + size > budget) {
            calls.push(std::mem::take(&mut call));
            bytes = 0;
        }
        call.push(datum(set));
        bytes += size;
    }
    if !call.is_empty() {
        calls.push(call);
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::aws::cloudwatch::test_support::{T0, set};

    #[test]
    fn put_metric_data_datums() {
        let s = set(
            "disk.used",
            &[("Host", "h"), ("mount", "/")],
            T0,
            vec![1.0, 5.0],
        );
        let calls = metric_data_calls(std::slice::from_ref(&s));
        assert_eq!(calls.len(), 1);
        let d = &calls[0][0];
        assert_eq!(d.metric_name(), Some("disk.used"));
        assert_eq!(d.timestamp(), Some(&DateTime::from_millis(T0)));
        assert_eq!(d.unit(), Some(&StandardUnit::Count));
        let dims: Vec<_> = d
            .dimensions()
            .iter()
            .map(|d| (d.name().unwrap(), d.value().unwrap()))
            .collect();
        assert_eq!(dims, [("Host", "h"), ("mount", "/")]);
        let stats = d.statistic_values().unwrap();
        assert_eq!(
            (
                stats.sample_count(),
                stats.sum(),
                stats.minimum(),
                stats.maximum()
            ),
            (Some(2.0), Some(6.0), Some(1.0), Some(5.0))
        );
        assert_eq!(d.value(), None);
        assert!(d.values().is_empty());
    }

    #[test]
    fn put_metric_data_splits_at_1000_datums() {
        let sets: Vec<_> = (0..2500)
            .map(|i| set(&format!("m{i}"), &[("Host", "h")], T0, vec![1.0]))
            .collect();
        let calls = metric_data_calls(&sets);
        let sizes: Vec<_> = calls.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        assert_eq!(calls[2][499].metric_name(), Some("m2499"));
        assert!(metric_data_calls(&[]).is_empty());
    }

    #[test]
    fn put_metric_data_splits_at_1_mb() {
        // 29 long dimensions: about 105 KB each by the estimate, so 9 fit in a call.
        let dims: Vec<(String, String)> = std::iter::once(("Host".to_owned(), "h".to_owned()))
            .chain((0..29).map(|i| (format!("{i:02}{}", "k".repeat(198)), "v".repeat(1000))))
            .collect();
        let dims: Vec<(&str, &str)> = dims.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let sets: Vec<_> = (0..30)
            .map(|i| set(&format!("m{i}"), &dims, T0, vec![1.0]))
            .collect();
        let each = estimated_request_bytes(&sets[0]);
        assert!(each > 100_000, "{each}");
        let calls = metric_data_calls(&sets);
        assert!(calls.len() > 1);
        let per_call = (PUT_MAX_REQUEST_BYTES - PUT_REQUEST_BASE_BYTES) / each;
        let sizes: Vec<_> = calls.iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 30);
        assert!(sizes.iter().all(|n| *n <= per_call), "{sizes:?}");
        assert_eq!(sizes[0], per_call);
    }

    #[test]
    fn estimate_bounds_the_query_encoding() {
        // The real encoding of the worst-case datum, key by key, stays under the estimate.
        let s = set(
            &"é".repeat(127),
            &[
                ("Host", &"%".repeat(1024)),
                (&"+".repeat(255), &"&".repeat(1024)),
            ],
            T0,
            vec![-1.234_567_890_123_456_7e-300, 1.0],
        );
        let prefix = "&MetricData.member.1000.";
        let mut real = 0;
        let field = |key: &str, value_bytes: usize| prefix.len() + key.len() + 1 + value_bytes;
        real += field("MetricName", 3 * s.name.len());
        real += field("Timestamp", "2023-11-14T22%3A14%3A00Z".len());
        real += field("Unit", 3 * s.unit.len());
        for stat in ["SampleCount", "Sum", "Minimum", "Maximum"] {
            real += field(&format!("StatisticValues.{stat}"), 24);
        }
        for (i, (k, v)) in s.dimensions.iter().enumerate() {
            real += field(&format!("Dimensions.member.{}.Name", i + 21), 3 * k.len());
            real += field(&format!("Dimensions.member.{}.Value", i + 21), 3 * v.len());
        }
        assert!(real <= estimated_request_bytes(&s), "{real}");
    }
}
