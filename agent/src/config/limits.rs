//! Limits the transports impose on frames and calls (Kinesis's), named here, below both users:
//! config validation checks batch sizes against them, and `ship` enforces them again where frames
//! are encoded and sent.

/// Largest Kinesis record: data plus partition key, 1 MiB (`PutRecords`).
pub const KINESIS_MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Most records in one `PutRecords` call.
pub const KINESIS_MAX_RECORDS_PER_CALL: usize = 500;

/// Most bytes (data plus partition keys) in one `PutRecords` call: 5 MiB.
pub const KINESIS_MAX_CALL_BYTES: usize = 5 * 1024 * 1024;

/// Longest partition key in bytes: the agent id (at most 128 characters, `agent.id`) in UTF-8.
pub const KINESIS_MAX_PARTITION_KEY_BYTES: usize = 128 * 4;

/// Largest frame sent to Kinesis: a record less the longest partition key.
pub const KINESIS_MAX_FRAME_LEN: usize = KINESIS_MAX_RECORD_BYTES - KINESIS_MAX_PARTITION_KEY_BYTES;

/// Largest `batch.max_bytes` (and `max_line_bytes`) with `sink.kind = "kinesis"`: with zstd's
/// worst-case expansion (1/256 of the input), the batch header and the frame's 24-byte header,
/// a frame of a batch this large stays under [`KINESIS_MAX_FRAME_LEN`].
pub const KINESIS_MAX_BATCH_BYTES: u64 = 1000 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_kinesis_batch_fits_a_record_even_incompressible() {
        // The batch head (agent identity, ≤ 128 + 253 characters, and varints) and one record's
        // overhead beyond its size hint (a source path of up to 4 KiB) on top of the batch.
        let plain = KINESIS_MAX_BATCH_BYTES as usize + 4 * (128 + 253 + 64) + 4096;
        let frame = zstd::zstd_safe::compress_bound(plain) + outpost_proto::HEADER_LEN;
        assert!(
            frame <= KINESIS_MAX_FRAME_LEN,
            "{frame} > {KINESIS_MAX_FRAME_LEN}"
        );
    }
}
