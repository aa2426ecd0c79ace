//! Errors of encoding and decoding frames: one variant per thing a caller may act on.

use thiserror::Error;

/// Why a frame could not be decoded. Every variant means "reject this input"; none is retryable.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the header, or fewer than the header's declared body length.
    #[error("frame truncated: need {needed} bytes, got {got}")]
    Truncated {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// More bytes than the header declares.
    #[error("frame has {extra} trailing bytes after the declared body")]
    TrailingBytes {
        /// Bytes past the declared end.
        extra: usize,
    },
    /// The first four bytes are not the Outpost magic.
    #[error("bad magic {found:02x?}: not an Outpost frame")]
    BadMagic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// A format version this decoder does not know.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// Flag bits this decoder does not know, or a missing mandatory flag.
    #[error("unsupported flags {0:#04x}")]
    UnsupportedFlags(u8),
    /// The reserved header field is not zero.
    #[error("reserved header field is {0}, must be 0")]
    ReservedNotZero(u16),
    /// The declared compressed length exceeds [`crate::limits::MAX_COMPRESSED_LEN`].
    #[error("compressed body of {declared} bytes exceeds the limit of {limit}")]
    CompressedTooLarge {
        /// Declared length.
        declared: u32,
        /// The limit.
        limit: u32,
    },
    /// The declared decompressed length exceeds [`crate::limits::MAX_DECOMPRESSED_LEN`].
    #[error("decompressed body of {declared} bytes exceeds the limit of {limit}")]
    DecompressedTooLarge {
        /// Declared length.
        declared: u32,
        /// The limit.
        limit: u32,
    },
    /// The declared record count exceeds [`crate::limits::MAX_RECORDS`].
    #[error("{declared} records exceed the limit of {limit}")]
    TooManyRecords {
        /// Declared count.
        declared: u32,
        /// The limit.
        limit: u32,
    },
    /// The CRC32C of the compressed body does not match the header.
    #[error("checksum mismatch: header says {expected:#010x}, body has {actual:#010x}")]
    ChecksumMismatch {
        /// CRC32C in the header.
        expected: u32,
        /// CRC32C of the body.
        actual: u32,
    },
    /// The zstd frame declares a content size other than the header's decompressed length.
    #[error("zstd content size {zstd:?} disagrees with the declared {declared} bytes")]
    SizeMismatch {
        /// The header's decompressed length.
        declared: u32,
        /// What the zstd frame header says (None when absent).
        zstd: Option<u64>,
    },
    /// zstd failed, including when the output would exceed the declared length.
    #[error("zstd decompression failed: {0}")]
    Decompress(String),
    /// The decompressed body is not a valid postcard `Batch`.
    #[error("body is not a valid batch: {0}")]
    Body(String),
    /// The body decoded but its record count differs from the header's.
    #[error("header declares {declared} records, body has {actual}")]
    RecordCountMismatch {
        /// Count in the header.
        declared: u32,
        /// Count in the body.
        actual: usize,
    },
}

/// Why a batch could not be encoded into a frame. The caller should split the batch and retry.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// More records than [`crate::limits::MAX_RECORDS`].
    #[error("{count} records exceed the limit of {limit}")]
    TooManyRecords {
        /// Records in the batch.
        count: usize,
        /// The limit.
        limit: u32,
    },
    /// A metric point has more dimensions than [`crate::limits::MAX_DIMENSIONS`].
    #[error("a metric has {count} dimensions, more than the limit of {limit}")]
    TooManyDimensions {
        /// Dimensions of the offending metric point.
        count: usize,
        /// The limit.
        limit: u32,
    },
    /// The serialised body exceeds [`crate::limits::MAX_DECOMPRESSED_LEN`].
    #[error("serialised body of {len} bytes exceeds the limit of {limit}")]
    DecompressedTooLarge {
        /// Body length.
        len: usize,
        /// The limit.
        limit: u32,
    },
    /// The compressed body exceeds [`crate::limits::MAX_COMPRESSED_LEN`].
    #[error("compressed body of {len} bytes exceeds the limit of {limit}")]
    CompressedTooLarge {
        /// Compressed length.
        len: usize,
        /// The limit.
        limit: u32,
    },
    /// postcard failed to serialise (should not happen for these types).
    #[error("serialisation failed: {0}")]
    Serialize(String),
    /// zstd failed to compress.
    #[error("zstd compression failed: {0}")]
    Compress(String),
}
