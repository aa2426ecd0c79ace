//! The fixed frame header: its magic, version, flags and length, and the fields it carries.
//!
//! Only the layout lives here; [`crate::parse_header`] reads and checks a header, and
//! [`crate::FrameEncoder`] writes one.

/// The four bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"OPST";
/// The format version this crate writes and the only one it reads.
pub const FORMAT_VERSION: u8 = 1;
/// Flag bit: the body is zstd-compressed. Mandatory in version 1.
pub const FLAG_ZSTD: u8 = 0b0000_0001;
/// Length of the fixed header in bytes.
pub const HEADER_LEN: usize = 24;

/// The fixed 24-byte frame header. All integers are little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version (byte 4).
    pub version: u8,
    /// Flags (byte 5).
    pub flags: u8,
    /// Number of records in the batch (bytes 8..12).
    pub record_count: u32,
    /// Length of the compressed body that follows the header (bytes 12..16).
    pub compressed_len: u32,
    /// Length of the body once decompressed (bytes 16..20).
    pub decompressed_len: u32,
    /// CRC32C (Castagnoli) of the compressed body (bytes 20..24).
    pub crc32c: u32,
}
