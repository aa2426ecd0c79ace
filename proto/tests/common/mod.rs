//! Helpers shared by the integration tests: frame surgery, a seeded PRNG and float-aware equality.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use outpost_proto::{AgentIdentity, Batch, FLAG_ZSTD, FORMAT_VERSION, HEADER_LEN, MAGIC, Record};

/// A 24-byte header with the given fields and a valid magic, version, flags and reserved field.
pub fn header_bytes(
    record_count: u32,
    compressed_len: u32,
    decompressed_len: u32,
    crc: u32,
) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4] = FORMAT_VERSION;
    h[5] = FLAG_ZSTD;
    // 6..8 reserved, zero.
    h[8..12].copy_from_slice(&record_count.to_le_bytes());
    h[12..16].copy_from_slice(&compressed_len.to_le_bytes());
    h[16..20].copy_from_slice(&decompressed_len.to_le_bytes());
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A frame around an arbitrary (compressed) body, with a correct length and CRC32C, so that the
/// decoder gets past its header and checksum checks and has to deal with the body itself.
pub fn frame_around(record_count: u32, decompressed_len: u32, body: &[u8]) -> Vec<u8> {
    let compressed_len = u32::try_from(body.len()).expect("test body fits in u32");
    let mut frame = header_bytes(
        record_count,
        compressed_len,
        decompressed_len,
        crc32c::crc32c(body),
    )
    .to_vec();
    frame.extend_from_slice(body);
    frame
}

/// Overwrite a little-endian u32 header field at `at` and fix nothing else.
pub fn set_u32(frame: &mut [u8], at: usize, value: u32) {
    frame[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// SplitMix64: a tiny deterministic PRNG, so tests and fixtures need no `rand`.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `len` random (incompressible) bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// An agent identity for tests.
pub fn agent() -> AgentIdentity {
    AgentIdentity {
        agent_id: "0f6c2a8e4b1d4c7e9a3b5d7f1e2c4a6b".to_owned(),
        hostname: "edge-01".to_owned(),
        agent_version: "0.1.0".to_owned(),
    }
}

/// A batch of the given records from [`agent`].
pub fn batch_of(records: Vec<Record>) -> Batch {
    Batch {
        agent: agent(),
        seq: 42,
        created_ms: 1_700_000_000_000,
        records,
    }
}

/// Equality that compares metric values by their bits: `NaN != NaN` under `PartialEq`, but the
/// wire format must carry every f64 bit pattern (NaN payloads and the sign of zero included).
pub fn bitwise_eq(a: &Batch, b: &Batch) -> bool {
    a.agent == b.agent
        && a.seq == b.seq
        && a.created_ms == b.created_ms
        && a.records.len() == b.records.len()
        && a.records.iter().zip(&b.records).all(|pair| match pair {
            (Record::Metric(x), Record::Metric(y)) => {
                x.name == y.name
                    && x.ts_ms == y.ts_ms
                    && x.value.to_bits() == y.value.to_bits()
                    && x.unit == y.unit
                    && x.dimensions == y.dimensions
            }
            (Record::Log(x), Record::Log(y)) => x == y,
            _ => false,
        })
}
