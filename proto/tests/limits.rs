//! Every limit of the wire format, at the limit (accepted) and at the limit + 1 (rejected), on
//! both the decoder side (a hand-built header: no 4 MiB allocation needed) and the encoder side.

mod common;

use common::{SplitMix64, agent, batch_of, frame_around, header_bytes};
use outpost_proto::limits::{
    MAX_COMPRESSED_LEN, MAX_DECOMPRESSED_LEN, MAX_DIMENSIONS, MAX_FRAME_LEN, MAX_RECORDS,
};
use outpost_proto::{
    Batch, DecodeError, Dimension, EncodeError, HEADER_LEN, LogRecord, MetricPoint, Record, Unit,
    decode, encode, parse_header,
};

#[test]
fn the_limits_have_their_documented_values() {
    assert_eq!(MAX_COMPRESSED_LEN, 4 * 1024 * 1024);
    assert_eq!(MAX_DECOMPRESSED_LEN, 64 * 1024 * 1024);
    assert_eq!(MAX_RECORDS, 100_000);
    assert_eq!(MAX_DIMENSIONS, 30);
    assert_eq!(MAX_FRAME_LEN, 24 + 4 * 1024 * 1024);
    // A Lambda Function URL takes 6 MB (10^6) and binary bodies arrive base64-encoded.
    assert!(MAX_FRAME_LEN.div_ceil(3) * 4 < 6_000_000);
}

#[test]
fn compressed_len_over_the_limit_is_rejected() {
    let header = header_bytes(1, MAX_COMPRESSED_LEN + 1, 100, 0);
    let want = DecodeError::CompressedTooLarge {
        declared: MAX_COMPRESSED_LEN + 1,
        limit: MAX_COMPRESSED_LEN,
    };
    assert_eq!(parse_header(&header).unwrap_err(), want);
    assert_eq!(decode(&header).unwrap_err(), want);
}

#[test]
fn decompressed_len_over_the_limit_is_rejected() {
    let header = header_bytes(1, 100, MAX_DECOMPRESSED_LEN + 1, 0);
    let want = DecodeError::DecompressedTooLarge {
        declared: MAX_DECOMPRESSED_LEN + 1,
        limit: MAX_DECOMPRESSED_LEN,
    };
    assert_eq!(parse_header(&header).unwrap_err(), want);
    assert_eq!(decode(&header).unwrap_err(), want);
}

#[test]
fn record_count_over_the_limit_is_rejected() {
    let header = header_bytes(MAX_RECORDS + 1, 100, 100, 0);
    let want = DecodeError::TooManyRecords {
        declared: MAX_RECORDS + 1,
        limit: MAX_RECORDS,
    };
    assert_eq!(parse_header(&header).unwrap_err(), want);
    assert_eq!(decode(&header).unwrap_err(), want);
}

#[test]
fn u32_max_in_every_length_field_is_rejected() {
    for (at, field) in [
        (8, "record_count"),
        (12, "compressed_len"),
        (16, "decompressed_len"),
    ] {
        let mut header = header_bytes(1, 100, 100, 0);
        header[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(
            parse_header(&header).is_err(),
            "{field} = u32::MAX accepted"
        );
    }
}

#[test]
fn values_exactly_at_the_limits_pass_the_header_check() {
    let header = header_bytes(MAX_RECORDS, MAX_COMPRESSED_LEN, MAX_DECOMPRESSED_LEN, 7);
    let parsed = parse_header(&header).unwrap();
    assert_eq!(parsed.record_count, MAX_RECORDS);
    assert_eq!(parsed.compressed_len, MAX_COMPRESSED_LEN);
    assert_eq!(parsed.decompressed_len, MAX_DECOMPRESSED_LEN);
    assert_eq!(parsed.crc32c, 7);
    // decode gets past the header and stops at the missing body, without allocating for it.
    assert_eq!(
        decode(&header),
        Err(DecodeError::Truncated {
            needed: HEADER_LEN + MAX_COMPRESSED_LEN as usize,
            got: HEADER_LEN
        })
    );
}

fn tiny_log(i: usize) -> Record {
    Record::Log(LogRecord {
        ts_ms: i as i64,
        source: String::new(),
        service: String::new(),
        line: Vec::new(),
        level: None,
    })
}

#[test]
fn the_encoder_takes_max_records_and_refuses_one_more() {
    let mut batch = batch_of((0..MAX_RECORDS as usize).map(tiny_log).collect());
    let frame = encode(&batch).unwrap();
    assert_eq!(parse_header(&frame).unwrap().record_count, MAX_RECORDS);
    assert_eq!(decode(&frame).unwrap().records.len(), MAX_RECORDS as usize);

    batch.records.push(tiny_log(0));
    assert_eq!(
        encode(&batch),
        Err(EncodeError::TooManyRecords {
            count: MAX_RECORDS as usize + 1,
            limit: MAX_RECORDS
        })
    );
}

#[test]
fn the_encoder_refuses_an_incompressible_body_over_the_compressed_limit() {
    // ~4.2 MiB of random bytes: zstd stores them raw, a little larger than they are.
    let mut rng = SplitMix64(0x5EED);
    let records = (0..42)
        .map(|i| {
            Record::Log(LogRecord {
                ts_ms: i,
                source: "/dev/urandom".to_owned(),
                service: "noise".to_owned(),
                line: rng.bytes(105 * 1024),
                level: None,
            })
        })
        .collect();
    match encode(&batch_of(records)) {
        Err(EncodeError::CompressedTooLarge { len, limit }) => {
            assert_eq!(limit, MAX_COMPRESSED_LEN);
            assert!(len > MAX_COMPRESSED_LEN as usize);
        }
        other => panic!("expected CompressedTooLarge, got {other:?}"),
    }
}

#[test]
fn the_encoder_refuses_a_body_over_the_decompressed_limit() {
    // Zeros compress to almost nothing, so only the decompressed limit can stop this batch.
    let line = vec![0u8; MAX_DECOMPRESSED_LEN as usize];
    let batch = Batch {
        agent: agent(),
        seq: 1,
        created_ms: 1,
        records: vec![Record::Log(LogRecord {
            ts_ms: 1,
            source: String::new(),
            service: String::new(),
            line,
            level: None,
        })],
    };
    match encode(&batch) {
        Err(EncodeError::DecompressedTooLarge { len, limit }) => {
            assert_eq!(limit, MAX_DECOMPRESSED_LEN);
            assert!(len > MAX_DECOMPRESSED_LEN as usize);
        }
        other => panic!("expected DecompressedTooLarge, got {other:?}"),
    }
}

fn metric_with_dimensions(n: usize) -> Record {
    Record::Metric(MetricPoint {
        name: "custom.wide".to_owned(),
        ts_ms: 1,
        value: 2.0,
        unit: Unit::Count,
        dimensions: (0..n)
            .map(|i| Dimension {
                key: format!("k{i:02}"),
                value: format!("v{i}"),
            })
            .collect(),
    })
}

#[test]
fn max_dimensions_round_trip_and_one_more_is_refused_by_the_encoder() {
    let at_limit = batch_of(vec![metric_with_dimensions(MAX_DIMENSIONS as usize)]);
    assert_eq!(decode(&encode(&at_limit).unwrap()).unwrap(), at_limit);

    let over = batch_of(vec![
        tiny_log(0),
        metric_with_dimensions(MAX_DIMENSIONS as usize + 1),
    ]);
    assert_eq!(
        encode(&over),
        Err(EncodeError::TooManyDimensions {
            count: MAX_DIMENSIONS as usize + 1,
            limit: MAX_DIMENSIONS
        })
    );
}

#[test]
fn the_decoder_refuses_a_metric_with_one_dimension_too_many() {
    // Another encoder could write it: serialise without our encoder's check, then frame it.
    for (n, ok) in [
        (MAX_DIMENSIONS as usize, true),
        (MAX_DIMENSIONS as usize + 1, false),
    ] {
        let plain = postcard::to_stdvec(&batch_of(vec![metric_with_dimensions(n)])).unwrap();
        let compressed = zstd::bulk::compress(&plain, 3).unwrap();
        let result = decode(&frame_around(1, plain.len() as u32, &compressed));
        assert_eq!(result.is_ok(), ok, "{n} dimensions: {result:?}");
        if !ok {
            assert!(matches!(result, Err(DecodeError::Body(_))), "{result:?}");
        }
    }
}
