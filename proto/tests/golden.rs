//! The golden frame `tests/data/golden-v1.frame`: bytes written once by this crate, committed,
//! and decoded by every later build, so a change to the version 1 layout cannot go unnoticed.
//!
//! The file is `encode(&golden_batch())`. Regenerate it only for a deliberate reason (there is
//! none within format version 1; a new layout is a new version and a new golden file):
//! `OUTPOST_BLESS=1 cargo test -p outpost-proto --test golden`. Without that variable a missing
//! file fails the test. zstd's output may differ between zstd versions, so the test compares the
//! decoded batch and the decompressed postcard body, never the compressed bytes.

use std::path::PathBuf;

use outpost_proto::{
    AgentIdentity, Batch, Dimension, FLAG_ZSTD, FORMAT_VERSION, HEADER_LEN, Level, LogRecord,
    MAGIC, MetricPoint, Record, Unit, decode, encode, parse_header,
};

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-v1.frame")
}

/// The batch in the golden frame. Never edit it: the committed file must keep decoding to it.
///
/// Both record kinds; a metric with two dimensions and one without; logs with and without a
/// level; a line with bytes that are not UTF-8 (`0xFF 0xFE`, a lone continuation byte `0x80`,
/// a truncated sequence `0xE2 0x82`) and a NUL; non-ASCII strings (accents, CJK, an emoji
/// outside the BMP); negative and large integers.
fn golden_batch() -> Batch {
    Batch {
        agent: AgentIdentity {
            agent_id: "5f1b8c2d9e0a4b7c8d6e1f2a3b4c5d6e".to_owned(),
            hostname: "edge-zürich-01".to_owned(),
            agent_version: "0.1.0".to_owned(),
        },
        seq: 1_234_567_890_123,
        created_ms: 1_700_000_123_456,
        records: vec![
            Record::Metric(MetricPoint {
                name: "cpu.utilization".to_owned(),
                ts_ms: 1_700_000_120_000,
                value: 37.5,
                unit: Unit::Percent,
                dimensions: vec![
                    Dimension {
                        key: "cpu".to_owned(),
                        value: "3".to_owned(),
                    },
                    Dimension {
                        key: "mode".to_owned(),
                        value: "user".to_owned(),
                    },
                ],
            }),
            Record::Metric(MetricPoint {
                name: "net.rx".to_owned(),
                ts_ms: -1,
                value: -0.0,
                unit: Unit::BytesPerSecond,
                dimensions: vec![],
            }),
            Record::Log(LogRecord {
                ts_ms: 1_700_000_121_000,
                source: "/var/log/nginx/access.log".to_owned(),
                service: "nginx".to_owned(),
                line:
                    b"203.0.113.7 - - [14/Nov/2023:22:15:21 +0000] \"GET /health HTTP/1.1\" 200 2"
                        .to_vec(),
                level: None,
            }),
            Record::Log(LogRecord {
                ts_ms: 1_700_000_122_000,
                source: "/var/log/アプリ/app.log".to_owned(),
                service: "app-🚀".to_owned(),
                line: b"ERROR bad bytes: \xFF\xFE \x80 \xE2\x82 nul:\x00 end".to_vec(),
                level: Some(Level::Error),
            }),
        ],
    }
}

#[test]
fn golden_v1_frame_decodes_to_the_documented_batch() {
    let path = golden_path();
    let batch = golden_batch();
    if std::env::var_os("OUTPOST_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, encode(&batch).unwrap()).unwrap();
    }
    let frame = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the golden frame is committed, regenerate it only with OUTPOST_BLESS=1",
            path.display()
        )
    });

    // Header bytes, as docs/wire-format.md specifies them.
    assert_eq!(&frame[0..4], b"OPST");
    assert_eq!(frame[0..4], MAGIC);
    assert_eq!(frame[4], 1);
    assert_eq!(frame[4], FORMAT_VERSION);
    assert_eq!(frame[5], FLAG_ZSTD);
    assert_eq!(&frame[6..8], &[0, 0]);
    assert_eq!(&frame[8..12], &4u32.to_le_bytes());
    let header = parse_header(&frame).unwrap();
    assert_eq!(header.compressed_len as usize, frame.len() - HEADER_LEN);
    assert_eq!(header.crc32c, crc32c::crc32c(&frame[HEADER_LEN..]));
    // zstd magic, little-endian 0xFD2FB528.
    assert_eq!(
        &frame[HEADER_LEN..HEADER_LEN + 4],
        &[0x28, 0xB5, 0x2F, 0xFD]
    );

    // The postcard body is deterministic: it must be byte-for-byte what this build writes.
    let plain = postcard::to_stdvec(&batch).unwrap();
    assert_eq!(header.decompressed_len as usize, plain.len());
    let body = zstd::bulk::decompress(&frame[HEADER_LEN..], plain.len()).unwrap();
    assert_eq!(body, plain);

    assert_eq!(decode(&frame).unwrap(), batch);
}
