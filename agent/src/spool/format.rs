//! The spool's on-disk layout, version 1: segment and `acked` file headers, entry headers and
//! segment file names, and the [`Defect`]s their bytes can have. Pure encoding and decoding;
//! `docs/spool.md` specifies it byte by byte.

/// Format version written in every segment header and in the `acked` file.
pub const VERSION: u32 = 1;

/// Magic at the start of every segment file: ASCII `OPSPOOL` and a NUL byte.
pub const SEGMENT_MAGIC: [u8; 8] = *b"OPSPOOL\0";

/// Magic at the start of the `acked` file: ASCII `OPSPACK` and a NUL byte.
pub const ACKED_MAGIC: [u8; 8] = *b"OPSPACK\0";

/// Length of a segment header and of the `acked` file: magic (8), version (4), value (8),
/// CRC-32C of the first 20 bytes (4).
pub const HEADER_LEN: u64 = 24;

/// Length of an entry header: payload length (4), CRC-32C of the payload (4), entry id (8).
pub const ENTRY_HEADER_LEN: u64 = 16;

/// Suffix of segment files.
pub const SEGMENT_SUFFIX: &str = ".seg";

/// Suffix appended to a segment's name when it is set aside.
pub const CORRUPT_SUFFIX: &str = ".corrupt";

/// Name of the file holding the acknowledged watermark.
pub const ACKED_FILE: &str = "acked";

/// Name of the lock file that keeps two processes out of one spool.
pub const LOCK_FILE: &str = "lock";

/// Largest payload an entry may carry: one wire frame.
pub const MAX_PAYLOAD_LEN: usize = outpost_proto::limits::MAX_FRAME_LEN;

/// What is wrong with a segment, a header or an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Defect {
    /// The file is shorter than a header.
    #[error("shorter than the {HEADER_LEN}-byte header")]
    ShortHeader,
    /// The header does not start with the expected magic.
    #[error("bad magic")]
    BadMagic,
    /// The header's checksum does not match its bytes.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// The header names a format version this build does not read.
    #[error("unsupported format version {0}")]
    Version(u32),
    /// The header names entry id 0, which is never used.
    #[error("header names first id 0")]
    FirstIdZero,
    /// The header's first id differs from the one in the file name.
    #[error("header names first id {header}, the file name {name}")]
    NameMismatch {
        /// Id in the header.
        header: u64,
        /// Id in the file name.
        name: u64,
    },
    /// The segment's ids do not come after the previous segment's.
    #[error("first id {first} is not after the previous segment's last id {previous}")]
    Overlap {
        /// This segment's first id.
        first: u64,
        /// The previous segment's last id.
        previous: u64,
    },
    /// Fewer bytes than an entry header remain.
    #[error("partial entry header")]
    ShortEntry,
    /// An entry declares a payload longer than a frame may be.
    #[error("entry length {0} exceeds the frame limit")]
    TooLong(u32),
    /// An entry's payload runs past the end of the file.
    #[error("entry runs past the end of the file")]
    Overrun,
    /// An entry carries an id other than the next one.
    #[error("entry id {found} where {expected} was expected")]
    IdMismatch {
        /// The id that should follow.
        expected: u64,
        /// The id found.
        found: u64,
    },
    /// An entry's payload does not match its checksum.
    #[error("payload checksum mismatch")]
    Checksum,
}

/// Encode a 24-byte header (segment header or `acked` file) carrying `value`.
pub fn encode_header(magic: [u8; 8], value: u64) -> [u8; HEADER_LEN as usize] {
    let mut out = [0u8; HEADER_LEN as usize];
    out[0..8].copy_from_slice(&magic);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out[12..20].copy_from_slice(&value.to_le_bytes());
    let crc = crc32c::crc32c(&out[0..20]);
    out[20..24].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decode a 24-byte header written by [`encode_header`] with the same `magic`; returns its value.
pub fn decode_header(bytes: &[u8], magic: [u8; 8]) -> Result<u64, Defect> {
    let Some(bytes) = bytes.get(..HEADER_LEN as usize) else {
        return Err(Defect::ShortHeader);
    };
    if bytes[0..8] != magic {
        return Err(Defect::BadMagic);
    }
    if crc32c::crc32c(&bytes[0..20]) != le_u32(&bytes[20..24]) {
        return Err(Defect::HeaderChecksum);
    }
    let version = le_u32(&bytes[8..12]);
    if version != VERSION {
        return Err(Defect::Version(version));
    }
    Ok(le_u64(&bytes[12..20]))
}

/// The fixed part in front of every payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHeader {
    /// Payload length in bytes.
    pub len: u32,
    /// CRC-32C of the payload.
    pub crc: u32,
    /// Entry id.
    pub id: u64,
}

impl EntryHeader {
    /// The header for `payload` stored as entry `id`. `payload` must not exceed
    /// [`MAX_PAYLOAD_LEN`] (callers check; a longer one is clamped and would fail its check).
    pub fn for_payload(id: u64, payload: &[u8]) -> Self {
        Self {
            len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            crc: crc32c::crc32c(payload),
            id,
        }
    }

    /// The 16 header bytes.
    pub fn encode(&self) -> [u8; ENTRY_HEADER_LEN as usize] {
        let mut out = [0u8; ENTRY_HEADER_LEN as usize];
        out[0..4].copy_from_slice(&self.len.to_le_bytes());
        out[4..8].copy_from_slice(&self.crc.to_le_bytes());
        out[8..16].copy_from_slice(&self.id.to_le_bytes());
        out
    }

    /// Parse 16 header bytes (no validation: see [`EntryHeader::check`]).
    pub fn decode(bytes: &[u8; ENTRY_HEADER_LEN as usize]) -> Self {
        Self {
            len: le_u32(&bytes[0..4]),
            crc: le_u32(&bytes[4..8]),
            id: le_u64(&bytes[8..16]),
        }
    }

    /// The checks that need no payload: the id is the one expected and the length is within
    /// the frame limit.
    pub fn check(&self, expected_id: u64) -> Result<(), Defect> {
        if self.len as usize > MAX_PAYLOAD_LEN {
            return Err(Defect::TooLong(self.len));
        }
        if self.id != expected_id {
            return Err(Defect::IdMismatch {
                expected: expected_id,
                found: self.id,
            });
        }
        Ok(())
    }

    /// Bytes this entry takes in a segment, header included.
    pub fn stored_len(&self) -> u64 {
        ENTRY_HEADER_LEN + u64::from(self.len)
    }
}

/// Bytes an entry with a payload of `len` bytes takes in a segment, header included.
pub fn stored_len(len: usize) -> u64 {
    ENTRY_HEADER_LEN + len as u64
}

/// File name of the segment whose first entry is `first_id`: 20 zero-padded digits + `.seg`.
pub fn segment_name(first_id: u64) -> String {
    format!("{first_id:020}{SEGMENT_SUFFIX}")
}

/// The first id named by a segment file name, if `name` is one (exactly 20 digits + `.seg`).
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_each_defect() {
        let h = encode_header(SEGMENT_MAGIC, 42);
        assert_eq!(&h[0..8], b"OPSPOOL\0");
        assert_eq!(decode_header(&h, SEGMENT_MAGIC), Ok(42));
        assert_eq!(decode_header(&h, ACKED_MAGIC), Err(Defect::BadMagic));
        assert_eq!(
            decode_header(&h[..23], SEGMENT_MAGIC),
            Err(Defect::ShortHeader)
        );
        let mut flipped = h;
        flipped[13] ^= 1;
        assert_eq!(
            decode_header(&flipped, SEGMENT_MAGIC),
            Err(Defect::HeaderChecksum)
        );
        // A future version with a valid checksum is refused by version, not by checksum.
        let mut v2 = h;
        v2[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32c::crc32c(&v2[0..20]);
        v2[20..24].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_header(&v2, SEGMENT_MAGIC), Err(Defect::Version(2)));
    }

    #[test]
    fn entry_header_layout_is_little_endian_len_crc_id() {
        let h = EntryHeader::for_payload(0x0102_0304_0506_0708, b"123456789");
        let b = h.encode();
        assert_eq!(&b[0..4], &9u32.to_le_bytes());
        assert_eq!(&b[4..8], &0xE306_9283u32.to_le_bytes());
        assert_eq!(&b[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(EntryHeader::decode(&b), h);
        assert_eq!(h.stored_len(), 25);
    }

    #[test]
    fn segment_names_are_twenty_digits() {
        assert_eq!(segment_name(7), "00000000000000000007.seg");
        assert_eq!(parse_segment_name("00000000000000000007.seg"), Some(7));
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_name("7.seg"), None);
        assert_eq!(parse_segment_name("00000000000000000007.seg.corrupt"), None);
        assert_eq!(parse_segment_name("99999999999999999999.seg"), None);
        assert_eq!(parse_segment_name("0000000000000000000x.seg"), None);
    }
}
