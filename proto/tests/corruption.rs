//! Damaged and hostile input: every truncation, every single-bit flip and arbitrary bytes are
//! rejected with an error, never a panic, and each header field fails with its own variant.

mod common;

use common::{batch_of, frame_around, set_u32};
use outpost_proto::{
    DecodeError, HEADER_LEN, Level, LogRecord, MetricPoint, Record, Unit, decode, encode,
    parse_header,
};
use proptest::prelude::*;

/// A valid frame of a few hundred bytes with both record kinds.
fn valid_frame() -> Vec<u8> {
    let records = (0..6)
        .map(|i| {
            if i % 2 == 0 {
                Record::Metric(MetricPoint {
                    name: format!("disk.used.{i}"),
                    ts_ms: 1_700_000_000_000 + i,
                    value: 0.25 * i as f64,
                    unit: Unit::Percent,
                    dimensions: vec![],
                })
            } else {
                Record::Log(LogRecord {
                    ts_ms: 1_700_000_000_000 + i,
                    source: "/var/log/app.log".to_owned(),
                    service: "app".to_owned(),
                    line: format!("line {i}: something happened \u{2603}").into_bytes(),
                    level: Some(Level::Warn),
                })
            }
        })
        .collect();
    let frame = encode(&batch_of(records)).expect("the fixture encodes");
    assert!(
        (150..1024).contains(&frame.len()),
        "fixture is {} bytes",
        frame.len()
    );
    frame
}

#[test]
fn every_truncation_is_rejected() {
    let frame = valid_frame();
    assert!(decode(&frame).is_ok());
    for len in 0..frame.len() {
        let err = decode(&frame[..len]).expect_err("a truncated frame must not decode");
        assert_eq!(
            err,
            DecodeError::Truncated {
                needed: if len < HEADER_LEN {
                    HEADER_LEN
                } else {
                    frame.len()
                },
                got: len
            },
            "prefix of {len} bytes"
        );
    }
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let frame = valid_frame();
    let mut damaged = frame.clone();
    for byte in 0..frame.len() {
        for bit in 0..8 {
            damaged[byte] ^= 1 << bit;
            let result = decode(&damaged);
            assert!(
                result.is_err(),
                "flipping bit {bit} of byte {byte} still decodes: {result:?}"
            );
            damaged[byte] ^= 1 << bit;
        }
    }
    assert_eq!(damaged, frame);
}

#[test]
fn each_header_field_fails_with_its_own_error() {
    let frame = valid_frame();
    let header = parse_header(&frame).unwrap();
    let body_len = frame.len() - HEADER_LEN;

    let mut f = frame.clone();
    f[0] = b'X';
    assert_eq!(decode(&f), Err(DecodeError::BadMagic { found: *b"XPST" }));

    let mut f = frame.clone();
    f[4] = 2;
    assert_eq!(decode(&f), Err(DecodeError::UnsupportedVersion(2)));

    let mut f = frame.clone();
    f[5] = 0;
    assert_eq!(decode(&f), Err(DecodeError::UnsupportedFlags(0)));

    let mut f = frame.clone();
    f[7] = 1;
    assert_eq!(decode(&f), Err(DecodeError::ReservedNotZero(256)));

    let mut f = frame.clone();
    set_u32(&mut f, 8, header.record_count + 1);
    assert_eq!(
        decode(&f),
        Err(DecodeError::RecordCountMismatch {
            declared: header.record_count + 1,
            actual: header.record_count as usize,
        })
    );

    let mut f = frame.clone();
    set_u32(&mut f, 12, header.compressed_len + 1);
    assert_eq!(
        decode(&f),
        Err(DecodeError::Truncated {
            needed: frame.len() + 1,
            got: frame.len()
        })
    );

    let mut f = frame.clone();
    set_u32(&mut f, 12, header.compressed_len - 1);
    assert_eq!(decode(&f), Err(DecodeError::TrailingBytes { extra: 1 }));

    let mut f = frame.clone();
    set_u32(&mut f, 16, header.decompressed_len + 1);
    assert_eq!(
        decode(&f),
        Err(DecodeError::SizeMismatch {
            declared: header.decompressed_len + 1,
            zstd: Some(u64::from(header.decompressed_len)),
        })
    );

    let mut f = frame.clone();
    set_u32(&mut f, 20, !header.crc32c);
    assert_eq!(
        decode(&f),
        Err(DecodeError::ChecksumMismatch {
            expected: !header.crc32c,
            actual: header.crc32c
        })
    );

    // A body that is not zstd at all, with a correct CRC.
    let garbage = vec![0xAB; body_len];
    assert!(matches!(
        decode(&frame_around(
            header.record_count,
            header.decompressed_len,
            &garbage
        )),
        Err(DecodeError::Decompress(_))
    ));
}

#[test]
fn a_valid_zstd_body_that_is_not_a_batch_is_rejected() {
    let body = b"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF not postcard";
    let compressed = zstd::bulk::compress(body, 3).unwrap();
    let frame = frame_around(1, body.len() as u32, &compressed);
    assert!(matches!(decode(&frame), Err(DecodeError::Body(_))));
}

#[test]
fn bytes_after_the_batch_are_rejected() {
    let mut body = postcard::to_stdvec(&batch_of(vec![])).unwrap();
    body.push(0);
    let compressed = zstd::bulk::compress(&body, 3).unwrap();
    let frame = frame_around(0, body.len() as u32, &compressed);
    assert_eq!(
        decode(&frame),
        Err(DecodeError::Body("1 bytes after the batch".to_owned()))
    );
}

/// Regression: the body must be exactly one zstd frame. zstd's one-shot decompressor accepts
/// concatenated frames and skips "skippable" frames, so without an explicit check a body with a
/// second (empty or skippable) frame after the first decoded, and two implementations could
/// disagree on the same bytes.
#[test]
fn a_body_of_more_than_one_zstd_frame_is_rejected() {
    let plain = postcard::to_stdvec(&batch_of(vec![])).unwrap();
    let first = zstd::bulk::compress(&plain, 3).unwrap();
    let declared = plain.len() as u32;
    assert!(decode(&frame_around(0, declared, &first)).is_ok());

    let mut two_frames = first.clone();
    two_frames.extend_from_slice(&zstd::bulk::compress(&[], 3).unwrap());
    assert!(
        decode(&frame_around(0, declared, &two_frames)).is_err(),
        "an empty second zstd frame was accepted"
    );

    // A skippable frame: magic 0x184D2A50 (LE), a u32 LE length, then that many bytes.
    let mut with_skippable = first.clone();
    with_skippable.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
    with_skippable.extend_from_slice(&4u32.to_le_bytes());
    with_skippable.extend_from_slice(b"junk");
    assert!(
        decode(&frame_around(0, declared, &with_skippable)).is_err(),
        "a trailing skippable frame was accepted"
    );

    let mut trailing_garbage = first;
    trailing_garbage.push(0);
    assert!(decode(&frame_around(0, declared, &trailing_garbage)).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Raw bytes, with or without a plausible header in front.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        with_magic in any::<bool>(),
    ) {
        let mut input = bytes;
        if with_magic && input.len() >= 6 {
            input[..6].copy_from_slice(b"OPST\x01\x01");
        }
        let _ = decode(&input);
        let _ = parse_header(&input);
    }

    /// A well-formed header and CRC around an arbitrary body: reaches the zstd decoder.
    #[test]
    fn arbitrary_compressed_body_never_panics(
        body in prop::collection::vec(any::<u8>(), 0..512),
        record_count in 0u32..8,
        decompressed_len in 0u32..4096,
    ) {
        let _ = decode(&frame_around(record_count, decompressed_len, &body));
    }

    /// Arbitrary plaintext, correctly compressed and framed: reaches the postcard decoder.
    #[test]
    fn arbitrary_postcard_body_never_panics(
        plain in prop::collection::vec(any::<u8>(), 0..512),
        record_count in 0u32..8,
    ) {
        let compressed = zstd::bulk::compress(&plain, 1).unwrap();
        let frame = frame_around(record_count, plain.len() as u32, &compressed);
        if let Ok(batch) = decode(&frame) {
            // Whatever decodes must be what the header and body say.
            prop_assert_eq!(batch.records.len(), record_count as usize);
            prop_assert_eq!(postcard::to_stdvec(&batch).unwrap(), plain);
        }
    }
}
