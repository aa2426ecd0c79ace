//! Pins the worked examples of `docs/wire-format.md`: the postcard body of a tiny batch byte by
//! byte, the variant index of every enum, and the CRC32C check value. If one of these fails, the
//! layout of format version 1 changed (a bug) or the document is wrong.

use outpost_proto::{
    AgentIdentity, Batch, Dimension, HEADER_LEN, Level, LogRecord, MetricPoint, Record, Unit,
    decode, encode, parse_header,
};

/// The tiny batch of the document's worked example.
fn tiny_batch() -> Batch {
    Batch {
        agent: AgentIdentity {
            agent_id: "a1".to_owned(),
            hostname: "h".to_owned(),
            agent_version: "0.1".to_owned(),
        },
        seq: 300,
        created_ms: 1_700_000_000_000,
        records: vec![
            Record::Metric(MetricPoint {
                name: "cpu".to_owned(),
                ts_ms: -1,
                value: 0.5,
                unit: Unit::Percent,
                dimensions: vec![Dimension {
                    key: "core".to_owned(),
                    value: "0".to_owned(),
                }],
            }),
            Record::Log(LogRecord {
                ts_ms: 1,
                source: "/l".to_owned(),
                service: "s".to_owned(),
                line: b"hi\xFF".to_vec(),
                level: Some(Level::Warn),
            }),
        ],
    }
}

/// The same bytes as the document, one line of the document's table per line here.
const TINY_BODY: &[&[u8]] = &[
    &[0x02, b'a', b'1'],                               // agent.agent_id = "a1"
    &[0x01, b'h'],                                     // agent.hostname = "h"
    &[0x03, b'0', b'.', b'1'],                         // agent.agent_version = "0.1"
    &[0xAC, 0x02],                                     // seq = 300
    &[0x80, 0xA0, 0xAB, 0xFE, 0xF9, 0x62],             // created_ms = 1_700_000_000_000 (zigzag)
    &[0x02],                                           // records: 2
    &[0x00],                                           // Record::Metric
    &[0x03, b'c', b'p', b'u'],                         // name = "cpu"
    &[0x01],                                           // ts_ms = -1 (zigzag)
    &[0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xE0, 0x3F], // value = 0.5
    &[0x01],                                           // unit = Percent
    &[0x01],                                           // dimensions: 1
    &[0x04, b'c', b'o', b'r', b'e'],                   // key = "core"
    &[0x01, b'0'],                                     // value = "0"
    &[0x01],                                           // Record::Log
    &[0x02],                                           // ts_ms = 1 (zigzag)
    &[0x02, b'/', b'l'],                               // source = "/l"
    &[0x01, b's'],                                     // service = "s"
    &[0x03, b'h', b'i', 0xFF],                         // line = b"hi\xFF"
    &[0x01, 0x03],                                     // level = Some(Warn)
];

#[test]
fn the_documented_postcard_body_is_what_the_encoder_writes() {
    let batch = tiny_batch();
    let body = postcard::to_stdvec(&batch).unwrap();
    let hex: Vec<String> = body.iter().map(|b| format!("{b:02x}")).collect();
    eprintln!("tiny body ({} bytes): {}", body.len(), hex.join(" "));
    assert_eq!(body, TINY_BODY.concat());

    let frame = encode(&batch).unwrap();
    let header = parse_header(&frame).unwrap();
    assert_eq!(header.record_count, 2);
    assert_eq!(header.decompressed_len as usize, body.len());
    assert_eq!(
        zstd::bulk::decompress(&frame[HEADER_LEN..], body.len()).unwrap(),
        body
    );
    assert_eq!(decode(&frame).unwrap(), batch);
}

#[test]
fn enum_variant_indexes_are_as_documented() {
    let index = |v: &dyn erased::Ser| v.bytes();
    let units = [
        Unit::None,
        Unit::Percent,
        Unit::Bytes,
        Unit::BytesPerSecond,
        Unit::Seconds,
        Unit::Count,
        Unit::CountPerSecond,
    ];
    for (i, unit) in units.iter().enumerate() {
        assert_eq!(index(unit), vec![i as u8], "{unit:?}");
    }
    let levels = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];
    for (i, level) in levels.iter().enumerate() {
        assert_eq!(index(level), vec![i as u8], "{level:?}");
    }
    assert_eq!(index(&None::<Level>), vec![0]);
    assert_eq!(index(&Some(Level::Fatal)), vec![1, 5]);
}

#[test]
fn crc32c_is_castagnoli() {
    // The standard check value of CRC-32C (Castagnoli): reflected polynomial 0x82F63B78,
    // init and final XOR 0xFFFFFFFF.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c::crc32c(b""), 0);
}

/// postcard bytes of any serialisable value, behind a trait object so one closure serves
/// several types.
mod erased {
    pub trait Ser {
        fn bytes(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn bytes(&self) -> Vec<u8> {
            postcard::to_stdvec(self).expect("postcard serialises plain values")
        }
    }
}
