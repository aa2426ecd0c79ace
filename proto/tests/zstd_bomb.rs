//! Decompression bombs and memory amplification: hostile frames are rejected, and rejecting
//! them costs memory bounded by the declared (and capped) sizes, not by what the body expands to.
//!
//! How memory is measured. The workspace forbids `unsafe_code` (as `forbid`, which no `allow`
//! can lift), and a counting `#[global_allocator]` needs an `unsafe impl GlobalAlloc`, so these
//! tests measure the process's peak resident set instead: write `5` to `/proc/self/clear_refs`
//! to reset the high-water mark (`VmHWM`) to the current RSS, run the decode, and read `VmHWM`
//! again. Resident memory is what a bomb costs: the decompressor writes every output byte, so
//! expanding 1 GiB would raise the peak by 1 GiB, far above the thresholds used here. Every
//! measured test holds one lock for its whole run (fixture building included), so the tests of
//! this binary, which run on parallel threads, never inflate each other's peak; the other test
//! binaries are separate processes. Linux only, which is where CI and the Lambda run.
#![cfg(target_os = "linux")]

mod common;

use std::io::Write;
use std::sync::{Mutex, MutexGuard};

use common::frame_around;
use outpost_proto::limits::MAX_DECOMPRESSED_LEN;
use outpost_proto::{DecodeError, decode};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
/// Growth of the peak RSS that the decoder's own work (contexts, small buffers, the test
/// harness) can explain. A bomb that was expanded would overshoot it by orders of magnitude.
const SLACK: u64 = 32 * MIB;

static MEASURE: Mutex<()> = Mutex::new(());

/// Holds the measuring lock; reports how far the peak RSS rose since [`Measure::start`].
struct Measure {
    _serial: MutexGuard<'static, ()>,
    start_kib: u64,
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    line.trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmHWM is a number of kB")
}

impl Measure {
    fn lock() -> MutexGuard<'static, ()> {
        MEASURE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reset the high-water mark to the current RSS. Without the reset the measurement would be
    /// unsound (an earlier peak would hide the decode's), so failing to reset fails the test.
    fn start(serial: MutexGuard<'static, ()>) -> Self {
        std::fs::write("/proc/self/clear_refs", "5")
            .expect("reset VmHWM via /proc/self/clear_refs");
        Self {
            _serial: serial,
            start_kib: vm_hwm_kib(),
        }
    }

    fn growth_bytes(&self) -> u64 {
        let growth_kib = vm_hwm_kib().saturating_sub(self.start_kib);
        eprintln!("peak RSS grew by {growth_kib} KiB");
        growth_kib * 1024
    }
}

/// What the zstd frame header says about the content size.
#[derive(Clone, Copy)]
enum ContentSize {
    Omitted,
    Declared(u64),
}

/// A zstd frame of `total` zero bytes, hand-built from RLE blocks: each block is a 3-byte header
/// plus the one byte it repeats, and covers up to 128 KiB, so 1 GiB of output costs 32 KiB of
/// frame and no memory to build. The content-size field says whatever `size` says, true or not.
///
/// Layout (RFC 8878): magic `28 B5 2F FD`; frame header descriptor (bits 7-6: size of the
/// content-size field, bit 5 single-segment = 0, no checksum, no dictionary); window descriptor
/// `0x38` (2^(10+7) = 128 KiB); the content-size field; then blocks whose 24-bit little-endian
/// header is `size << 3 | type << 1 | last`, type 1 = RLE.
fn rle_zero_frame(total: u64, size: ContentSize) -> Vec<u8> {
    const BLOCK: u64 = 128 * 1024;
    let mut f = vec![0x28, 0xB5, 0x2F, 0xFD];
    match size {
        ContentSize::Omitted => f.extend_from_slice(&[0x00, 0x38]),
        ContentSize::Declared(n) => match u32::try_from(n) {
            Ok(n32) => {
                f.extend_from_slice(&[0b10 << 6, 0x38]);
                f.extend_from_slice(&n32.to_le_bytes());
            }
            Err(_) => {
                f.extend_from_slice(&[0b11 << 6, 0x38]);
                f.extend_from_slice(&n.to_le_bytes());
            }
        },
    }
    let mut left = total;
    while left > 0 {
        let n = left.min(BLOCK);
        left -= n;
        let header = (n << 3) | (1 << 1) | u64::from(left == 0);
        f.extend_from_slice(&header.to_le_bytes()[..3]);
        f.push(0x00);
    }
    f
}

/// Counts what a streaming decoder writes, keeping none of it.
#[derive(Default)]
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Expand a zstd frame with bounded memory (a streaming decoder into a counting sink) and
/// return its real output size: proves a crafted bomb really is one.
fn expanded_len(zstd_frame: &[u8]) -> u64 {
    let mut decoder =
        zstd::stream::write::Decoder::new(CountingSink::default()).expect("zstd decoder");
    decoder.write_all(zstd_frame).expect("a valid zstd frame");
    decoder.flush().expect("a complete zstd frame");
    decoder.into_inner().0
}

#[test]
fn the_hand_built_rle_frame_is_valid_zstd() {
    let frame = rle_zero_frame(300_000, ContentSize::Declared(300_000));
    assert_eq!(
        zstd::zstd_safe::get_frame_content_size(&frame).ok(),
        Some(Some(300_000))
    );
    assert_eq!(
        zstd::bulk::decompress(&frame, 300_000).unwrap(),
        vec![0u8; 300_000]
    );
    let omitted = rle_zero_frame(5, ContentSize::Omitted);
    assert_eq!(
        zstd::zstd_safe::get_frame_content_size(&omitted).ok(),
        Some(None)
    );
    assert_eq!(expanded_len(&omitted), 5);
}

/// (a) Header and zstd frame both claim 1000 bytes; the blocks expand to 1 GiB.
#[test]
fn a_bomb_that_lies_about_its_size_is_rejected_without_expanding() {
    let serial = Measure::lock();
    let honest = rle_zero_frame(GIB, ContentSize::Declared(GIB));
    assert_eq!(expanded_len(&honest), GIB, "the bomb must really expand");
    let bomb = rle_zero_frame(GIB, ContentSize::Declared(1000));
    assert!(bomb.len() < 40 * 1024, "bomb is {} bytes", bomb.len());
    let frame = frame_around(1, 1000, &bomb);

    let measure = Measure::start(serial);
    let result = decode(&frame);
    let growth = measure.growth_bytes();

    assert!(
        matches!(result, Err(DecodeError::Decompress(_))),
        "{result:?}"
    );
    assert!(
        growth < SLACK,
        "decoding a {}-byte bomb raised the peak RSS by {} MiB",
        frame.len(),
        growth / MIB
    );
}

/// (a) The worst a frame can ask for: both sizes at the 64 MiB limit, blocks expanding to
/// 1 GiB. The decoder may spend the declared 64 MiB, and no more.
#[test]
fn a_bomb_declaring_the_largest_allowed_size_costs_at_most_that_size() {
    let serial = Measure::lock();
    let declared = MAX_DECOMPRESSED_LEN;
    let bomb = rle_zero_frame(GIB, ContentSize::Declared(u64::from(declared)));
    let frame = frame_around(1, declared, &bomb);

    let measure = Measure::start(serial);
    let result = decode(&frame);
    let growth = measure.growth_bytes();

    assert!(
        matches!(result, Err(DecodeError::Decompress(_))),
        "{result:?}"
    );
    assert!(
        growth < u64::from(declared) + SLACK,
        "peak RSS rose by {} MiB for a frame declaring {} MiB",
        growth / MIB,
        u64::from(declared) / MIB
    );
}

/// (b) Over the limit: rejected by the header alone. The body is not even checked: its CRC is
/// wrong on purpose, and the error is still the size limit, so no zstd work was done.
#[test]
fn a_declared_size_over_the_limit_is_rejected_before_any_zstd_work() {
    let bomb = rle_zero_frame(GIB, ContentSize::Declared(GIB));
    let mut frame = frame_around(1, MAX_DECOMPRESSED_LEN + 1, &bomb);
    frame[20] ^= 0xFF; // break the CRC
    assert_eq!(
        decode(&frame),
        Err(DecodeError::DecompressedTooLarge {
            declared: MAX_DECOMPRESSED_LEN + 1,
            limit: MAX_DECOMPRESSED_LEN,
        })
    );
}

/// (c) The zstd frame's content size disagrees with the header, or is absent.
#[test]
fn a_zstd_content_size_that_disagrees_with_the_header_is_a_size_mismatch() {
    let honest = rle_zero_frame(GIB, ContentSize::Declared(GIB));
    assert_eq!(
        decode(&frame_around(1, 1000, &honest)),
        Err(DecodeError::SizeMismatch {
            declared: 1000,
            zstd: Some(GIB),
        })
    );

    let unsized_bomb = rle_zero_frame(GIB, ContentSize::Omitted);
    assert_eq!(
        decode(&frame_around(1, 1000, &unsized_bomb)),
        Err(DecodeError::SizeMismatch {
            declared: 1000,
            zstd: None,
        })
    );

    // Off by one, in both directions.
    let small = rle_zero_frame(1000, ContentSize::Declared(1000));
    for declared in [999, 1001] {
        assert_eq!(
            decode(&frame_around(1, declared, &small)),
            Err(DecodeError::SizeMismatch {
                declared,
                zstd: Some(1000),
            })
        );
    }
}

/// Regression: the header's record count must bound the records the decoder builds. A 60 MB
/// body of 6 million 10-byte log records (each one is ten `0x01` bytes: Log, ts -1, source
/// "\x01", service "\x01", line [1], Some(Debug)) compresses to a few KiB; decoding it into
/// `Vec<Record>` before comparing the count with the header took about 1.4 GB of memory.
#[test]
fn a_body_with_more_records_than_the_header_is_rejected_before_building_them() {
    const RECORDS: u64 = 6_000_000;
    let serial = Measure::lock();
    // Prefix: agent ("", "", ""), seq 0, created_ms 0, then the varint record count.
    let mut prefix = vec![0u8, 0, 0, 0, 0];
    let mut n = RECORDS;
    while n >= 0x80 {
        prefix.push((n as u8) | 0x80);
        n >>= 7;
    }
    prefix.push(n as u8);
    let plain_len = prefix.len() as u64 + 10 * RECORDS;
    assert!(plain_len <= u64::from(MAX_DECOMPRESSED_LEN));

    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    encoder.set_pledged_src_size(Some(plain_len)).unwrap();
    encoder.include_contentsize(true).unwrap();
    encoder.write_all(&prefix).unwrap();
    let chunk = [0x01u8; 10 * 6_000];
    for _ in 0..RECORDS / 6_000 {
        encoder.write_all(&chunk).unwrap();
    }
    let body = encoder.finish().unwrap();
    let declared = u32::try_from(plain_len).unwrap();
    let frame = frame_around(1, declared, &body);

    let measure = Measure::start(serial);
    let result = decode(&frame);
    let growth = measure.growth_bytes();

    assert_eq!(
        result,
        Err(DecodeError::RecordCountMismatch {
            declared: 1,
            actual: RECORDS as usize,
        })
    );
    assert!(
        growth < u64::from(declared) + SLACK,
        "a {}-byte frame raised the peak RSS by {} MiB",
        frame.len(),
        growth / MIB
    );
}

/// Regression: dimensions had no cap, and an empty dimension is 2 bytes of body but 48 bytes in
/// memory. A 2 KiB frame holding one metric with 33 million empty dimensions decoded "fine",
/// after 3.7 s and a 1.6 GB peak. Now the decoder stops at `MAX_DIMENSIONS + 1`.
#[test]
fn a_metric_with_millions_of_dimensions_is_rejected_before_building_them() {
    const DIMENSIONS: u64 = 33_000_000;
    let serial = Measure::lock();
    // agent ("", "", ""), seq 0, created_ms 0, 1 record: Metric, name "", ts 0, value 1.0,
    // unit None, then the varint dimension count and that many ("", "") pairs.
    let mut prefix = vec![0u8, 0, 0, 0, 0, 1, 0, 0, 0];
    prefix.extend_from_slice(&1.0f64.to_le_bytes());
    prefix.push(0);
    let mut n = DIMENSIONS;
    while n >= 0x80 {
        prefix.push((n as u8) | 0x80);
        n >>= 7;
    }
    prefix.push(n as u8);
    let plain_len = prefix.len() as u64 + 2 * DIMENSIONS;
    assert!(plain_len <= u64::from(MAX_DECOMPRESSED_LEN));

    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    encoder.set_pledged_src_size(Some(plain_len)).unwrap();
    encoder.include_contentsize(true).unwrap();
    encoder.write_all(&prefix).unwrap();
    let chunk = [0u8; 2 * 10_000];
    for _ in 0..DIMENSIONS / 10_000 {
        encoder.write_all(&chunk).unwrap();
    }
    let body = encoder.finish().unwrap();
    let declared = u32::try_from(plain_len).unwrap();
    let frame = frame_around(1, declared, &body);

    let measure = Measure::start(serial);
    let result = decode(&frame);
    let growth = measure.growth_bytes();

    assert!(matches!(result, Err(DecodeError::Body(_))), "{result:?}");
    assert!(
        growth < u64::from(declared) + SLACK,
        "a {}-byte frame raised the peak RSS by {} MiB",
        frame.len(),
        growth / MIB
    );
}
