//! Hard limits of the wire format, checked by both encoder and decoder.

/// Largest compressed body a frame may carry: 4 MiB.
///
/// A Lambda Function URL accepts a 6 MB buffered request and binary bodies arrive base64-encoded
/// (×4/3), so 4 MiB plus the header is the largest frame that fits with room to spare.
pub const MAX_COMPRESSED_LEN: u32 = 4 * 1024 * 1024;

/// Largest decompressed (postcard) body a frame may declare: 64 MiB.
pub const MAX_DECOMPRESSED_LEN: u32 = 64 * 1024 * 1024;

/// Largest number of records a single batch may carry.
pub const MAX_RECORDS: u32 = 100_000;

/// Largest number of dimensions one metric point may carry: 30, CloudWatch's limit per metric.
///
/// It also bounds what decoding costs: an empty dimension is 2 bytes of body but 48 bytes in
/// memory, so without a cap a frame of a few KiB (a 64 MiB body of empty dimensions compresses
/// that well) made the decoder build 1.6 GB of them.
pub const MAX_DIMENSIONS: u32 = 30;

/// Largest frame on the wire: header plus the largest compressed body.
pub const MAX_FRAME_LEN: usize = crate::header::HEADER_LEN + MAX_COMPRESSED_LEN as usize;
