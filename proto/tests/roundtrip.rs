//! Round-trip properties of the codec: `decode(encode(batch)) == batch` for arbitrary batches,
//! frames never exceed `MAX_FRAME_LEN`, `Record::size_hint` is an upper bound, and edge cases.

mod common;

use common::{SplitMix64, batch_of, bitwise_eq};
use outpost_proto::limits::{MAX_COMPRESSED_LEN, MAX_FRAME_LEN};
use outpost_proto::{
    AgentIdentity, Batch, Dimension, EncodeError, Level, LogRecord, MetricPoint, Record, Unit,
    decode, encode, encode_with_level,
};
use proptest::prelude::*;

const ALL_UNITS: [Unit; 7] = [
    Unit::None,
    Unit::Percent,
    Unit::Bytes,
    Unit::BytesPerSecond,
    Unit::Seconds,
    Unit::Count,
    Unit::CountPerSecond,
];

const ALL_LEVELS: [Level; 6] = [
    Level::Trace,
    Level::Debug,
    Level::Info,
    Level::Warn,
    Level::Error,
    Level::Fatal,
];

/// Any string: every `char` is possible, control characters and astral planes included.
fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter),
        "[a-z./_=-]{0,16}",
    ]
}

/// Any f64: the edge classes (zeros, subnormals, infinities, quiet and signalling NaN) and
/// every bit pattern, NaN payloads included.
fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::num::f64::ANY | prop::num::f64::SIGNALING_NAN,
        any::<u64>().prop_map(f64::from_bits),
    ]
}

fn arb_unit() -> impl Strategy<Value = Unit> {
    prop::sample::select(ALL_UNITS.to_vec())
}

fn arb_level() -> impl Strategy<Value = Level> {
    prop::sample::select(ALL_LEVELS.to_vec())
}

fn arb_record() -> impl Strategy<Value = Record> {
    let dimension = (arb_string(), arb_string()).prop_map(|(key, value)| Dimension { key, value });
    let metric = (
        arb_string(),
        any::<i64>(),
        arb_f64(),
        arb_unit(),
        prop::collection::vec(dimension, 0..5),
    )
        .prop_map(|(name, ts_ms, value, unit, dimensions)| {
            Record::Metric(MetricPoint {
                name,
                ts_ms,
                value,
                unit,
                dimensions,
            })
        });
    let log = (
        any::<i64>(),
        arb_string(),
        arb_string(),
        // Arbitrary bytes: most such lines are not valid UTF-8.
        prop::collection::vec(any::<u8>(), 0..300),
        prop::option::of(arb_level()),
    )
        .prop_map(|(ts_ms, source, service, line, level)| {
            Record::Log(LogRecord {
                ts_ms,
                source,
                service,
                line,
                level,
            })
        });
    prop_oneof![metric, log]
}

fn arb_batch() -> impl Strategy<Value = Batch> {
    (
        (arb_string(), arb_string(), arb_string()),
        any::<u64>(),
        any::<i64>(),
        prop::collection::vec(arb_record(), 0..24),
    )
        .prop_map(
            |((agent_id, hostname, agent_version), seq, created_ms, records)| Batch {
                agent: AgentIdentity {
                    agent_id,
                    hostname,
                    agent_version,
                },
                seq,
                created_ms,
                records,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_is_identity(batch in arb_batch()) {
        let frame = encode(&batch).unwrap();
        let back = decode(&frame).unwrap();
        prop_assert!(bitwise_eq(&batch, &back), "{batch:?}\n!=\n{back:?}");
    }

    #[test]
    fn every_zstd_level_decodes(batch in arb_batch(), level in 1i32..=19) {
        let frame = encode_with_level(&batch, level).unwrap();
        prop_assert!(frame.len() <= MAX_FRAME_LEN);
        prop_assert!(bitwise_eq(&batch, &decode(&frame).unwrap()));
    }

    #[test]
    fn size_hint_bounds_the_postcard_size(record in arb_record()) {
        let exact = postcard::to_stdvec(&record).unwrap().len();
        prop_assert!(
            record.size_hint() >= exact,
            "size_hint {} < postcard size {exact}",
            record.size_hint()
        );
    }
}

proptest! {
    // Each case compresses about 4 MiB of random bytes: few cases.
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// Near the compressed limit the encoder either produces a frame that fits or refuses; it
    /// never emits an oversized frame.
    #[test]
    fn frames_never_exceed_max_frame_len(
        seed in any::<u64>(),
        total in (MAX_COMPRESSED_LEN as usize - 200_000)..(MAX_COMPRESSED_LEN as usize + 200_000),
        pieces in 1usize..6,
    ) {
        let mut rng = SplitMix64(seed);
        let per_line = total / pieces;
        let records = (0..pieces)
            .map(|i| {
                Record::Log(LogRecord {
                    ts_ms: i as i64,
                    source: "/dev/urandom".to_owned(),
                    service: "noise".to_owned(),
                    line: rng.bytes(per_line),
                    level: None,
                })
            })
            .collect();
        match encode(&batch_of(records)) {
            Ok(frame) => prop_assert!(frame.len() <= MAX_FRAME_LEN, "frame of {}", frame.len()),
            Err(EncodeError::CompressedTooLarge { len, limit }) => {
                prop_assert_eq!(limit, MAX_COMPRESSED_LEN);
                prop_assert!(len > MAX_COMPRESSED_LEN as usize);
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }
}

#[test]
fn nan_values_survive_bit_for_bit() {
    let nans = [
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7FF0_0000_0000_0001), // signalling NaN, smallest payload
        f64::from_bits(0x7FF8_DEAD_BEEF_0042), // quiet NaN with a payload
        f64::from_bits(0xFFFF_FFFF_FFFF_FFFF),
    ];
    let records = nans
        .iter()
        .map(|&value| {
            Record::Metric(MetricPoint {
                name: "nan".to_owned(),
                ts_ms: 0,
                value,
                unit: Unit::None,
                dimensions: vec![],
            })
        })
        .collect();
    let batch = batch_of(records);
    let back = decode(&encode(&batch).unwrap()).unwrap();
    // PartialEq says a NaN batch differs from itself: that is why the property uses bitwise_eq.
    assert_ne!(batch, back);
    assert!(bitwise_eq(&batch, &back));
    for (record, want) in back.records.iter().zip(nans) {
        let Record::Metric(m) = record else {
            panic!("expected a metric, got {record:?}");
        };
        assert_eq!(m.value.to_bits(), want.to_bits());
    }
}

#[test]
fn signed_zero_and_infinities_survive() {
    let values = [
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE / 2.0,
    ];
    let records = values
        .iter()
        .map(|&value| {
            Record::Metric(MetricPoint {
                name: "edge".to_owned(),
                ts_ms: 0,
                value,
                unit: Unit::Count,
                dimensions: vec![],
            })
        })
        .collect();
    let batch = batch_of(records);
    assert!(bitwise_eq(
        &batch,
        &decode(&encode(&batch).unwrap()).unwrap()
    ));
}

#[test]
fn empty_batch_round_trips() {
    let batch = batch_of(vec![]);
    let frame = encode(&batch).unwrap();
    assert_eq!(&frame[8..12], &0u32.to_le_bytes(), "record_count");
    assert_eq!(decode(&frame).unwrap(), batch);
}

#[test]
fn empty_strings_and_empty_line_round_trip() {
    let batch = Batch {
        agent: AgentIdentity {
            agent_id: String::new(),
            hostname: String::new(),
            agent_version: String::new(),
        },
        seq: 0,
        created_ms: 0,
        records: vec![
            Record::Log(LogRecord {
                ts_ms: 0,
                source: String::new(),
                service: String::new(),
                line: Vec::new(),
                level: None,
            }),
            Record::Metric(MetricPoint {
                name: String::new(),
                ts_ms: 0,
                value: 0.0,
                unit: Unit::None,
                dimensions: vec![Dimension {
                    key: String::new(),
                    value: String::new(),
                }],
            }),
        ],
    };
    assert_eq!(decode(&encode(&batch).unwrap()).unwrap(), batch);
}

#[test]
fn integer_extremes_round_trip() {
    let mut batch = batch_of(vec![
        Record::Log(LogRecord {
            ts_ms: i64::MIN,
            source: "/a".to_owned(),
            service: "s".to_owned(),
            line: vec![0xFF; 3],
            level: Some(Level::Fatal),
        }),
        Record::Metric(MetricPoint {
            name: "m".to_owned(),
            ts_ms: i64::MAX,
            value: f64::MAX,
            unit: Unit::CountPerSecond,
            dimensions: vec![],
        }),
    ]);
    batch.seq = u64::MAX;
    batch.created_ms = i64::MIN;
    assert_eq!(decode(&encode(&batch).unwrap()).unwrap(), batch);
}

#[test]
fn every_unit_and_level_round_trips() {
    let mut records: Vec<Record> = ALL_UNITS
        .iter()
        .map(|&unit| {
            Record::Metric(MetricPoint {
                name: unit.as_str().to_owned(),
                ts_ms: 1,
                value: 1.5,
                unit,
                dimensions: vec![],
            })
        })
        .collect();
    records.extend(ALL_LEVELS.iter().map(|&level| {
        Record::Log(LogRecord {
            ts_ms: 1,
            source: "/var/log/x".to_owned(),
            service: level.as_str().to_owned(),
            line: level.as_str().as_bytes().to_vec(),
            level: Some(level),
        })
    }));
    let batch = batch_of(records);
    assert_eq!(decode(&encode(&batch).unwrap()).unwrap(), batch);
}
