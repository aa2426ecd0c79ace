//! Frame encoding and bounded decoding: header, CRC32C, zstd and postcard.

use crate::builder::{FrameBuilder, FrameEncoder};
use crate::error::{DecodeError, EncodeError};
use crate::header::{FLAG_ZSTD, FORMAT_VERSION, HEADER_LEN, Header, MAGIC};
use crate::limits::{MAX_COMPRESSED_LEN, MAX_DECOMPRESSED_LEN, MAX_DIMENSIONS, MAX_RECORDS};
use crate::types::{AgentIdentity, Batch, Record};

/// zstd level the agent uses unless configured otherwise.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parse and check the header: magic, version, flags, reserved field and every limit.
///
/// Needs only the first [`HEADER_LEN`] bytes, so a server can reject a frame before it reads the
/// body.
pub fn parse_header(frame: &[u8]) -> Result<Header, DecodeError> {
    if frame.len() < HEADER_LEN {
        return Err(DecodeError::Truncated {
            needed: HEADER_LEN,
            got: frame.len(),
        });
    }
    let found = [frame[0], frame[1], frame[2], frame[3]];
    if found != MAGIC {
        return Err(DecodeError::BadMagic { found });
    }
    let version = frame[4];
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let flags = frame[5];
    if flags != FLAG_ZSTD {
        return Err(DecodeError::UnsupportedFlags(flags));
    }
    let reserved = u16::from_le_bytes([frame[6], frame[7]]);
    if reserved != 0 {
        return Err(DecodeError::ReservedNotZero(reserved));
    }
    let header = Header {
        version,
        flags,
        record_count: le_u32(frame, 8),
        compressed_len: le_u32(frame, 12),
        decompressed_len: le_u32(frame, 16),
        crc32c: le_u32(frame, 20),
    };
    if header.compressed_len > MAX_COMPRESSED_LEN {
        return Err(DecodeError::CompressedTooLarge {
            declared: header.compressed_len,
            limit: MAX_COMPRESSED_LEN,
        });
    }
    if header.decompressed_len > MAX_DECOMPRESSED_LEN {
        return Err(DecodeError::DecompressedTooLarge {
            declared: header.decompressed_len,
            limit: MAX_DECOMPRESSED_LEN,
        });
    }
    if header.record_count > MAX_RECORDS {
        return Err(DecodeError::TooManyRecords {
            declared: header.record_count,
            limit: MAX_RECORDS,
        });
    }
    Ok(header)
}

/// Decode a frame into a batch.
///
/// Checks, in order: header (see [`parse_header`]), exact frame length, CRC32C, that the body is
/// exactly one zstd frame, the zstd frame's declared content size against the header, then
/// decompresses into a buffer of exactly the declared (and bounded) size, so no input can make
/// it allocate more than [`MAX_DECOMPRESSED_LEN`](crate::limits::MAX_DECOMPRESSED_LEN) there;
/// then the record count the body declares against the header, before any record is built;
/// then the postcard body itself, which must end exactly where the decompressed bytes end.
pub fn decode(frame: &[u8]) -> Result<Batch, DecodeError> {
    let header = parse_header(frame)?;
    let needed = HEADER_LEN + header.compressed_len as usize;
    if frame.len() < needed {
        return Err(DecodeError::Truncated {
            needed,
            got: frame.len(),
        });
    }
    if frame.len() > needed {
        return Err(DecodeError::TrailingBytes {
            extra: frame.len() - needed,
        });
    }
    let body = &frame[HEADER_LEN..];
    let actual = crc32c::crc32c(body);
    if actual != header.crc32c {
        return Err(DecodeError::ChecksumMismatch {
            expected: header.crc32c,
            actual,
        });
    }
    // Exactly one zstd frame: the one-shot decompressor below would also accept concatenated and
    // skippable frames after the first, so two implementations could disagree on the same bytes.
    match zstd::zstd_safe::find_frame_compressed_size(body) {
        Ok(len) if len == body.len() => {}
        Ok(len) => {
            return Err(DecodeError::Decompress(format!(
                "body is not exactly one zstd frame: {} bytes after the first frame",
                body.len().saturating_sub(len)
            )));
        }
        Err(_) => return Err(DecodeError::Decompress("not a zstd frame".to_owned())),
    }
    let zstd_size = zstd::zstd_safe::get_frame_content_size(body)
        .map_err(|_| DecodeError::Decompress("not a zstd frame".to_owned()))?;
    if zstd_size != Some(u64::from(header.decompressed_len)) {
        return Err(DecodeError::SizeMismatch {
            declared: header.decompressed_len,
            zstd: zstd_size,
        });
    }
    let mut plain = Vec::with_capacity(header.decompressed_len as usize);
    let mut decompressor =
        zstd::bulk::Decompressor::new().map_err(|e| DecodeError::Decompress(e.to_string()))?;
    decompressor
        .decompress_to_buffer(body, &mut plain)
        .map_err(|e| DecodeError::Decompress(e.to_string()))?;
    if plain.len() != header.decompressed_len as usize {
        return Err(DecodeError::SizeMismatch {
            declared: header.decompressed_len,
            zstd: Some(plain.len() as u64),
        });
    }
    // The record count the body declares, checked before any record is built: a body of tiny
    // records that compresses to a few KiB would otherwise cost ~100 bytes of `Record` per few
    // bytes of body before the count could be compared.
    let body_records = body_record_count(&plain)?;
    if body_records != header.record_count as usize {
        return Err(DecodeError::RecordCountMismatch {
            declared: header.record_count,
            actual: body_records,
        });
    }
    let (batch, rest): (Batch, &[u8]) =
        postcard::take_from_bytes(&plain).map_err(|e| DecodeError::Body(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Body(format!(
            "{} bytes after the batch",
            rest.len()
        )));
    }
    if batch.records.len() != header.record_count as usize {
        return Err(DecodeError::RecordCountMismatch {
            declared: header.record_count,
            actual: batch.records.len(),
        });
    }
    Ok(batch)
}

/// The length prefix of `Batch::records` in a postcard body, read without building the batch.
///
/// postcard writes a struct's fields in declaration order and a `Vec` as a varint length then
/// its elements, so the fields before `records` followed by a `usize` is exactly the start of a
/// [`Batch`]; this must follow `Batch`'s field order, which is frozen within a format version.
fn body_record_count(plain: &[u8]) -> Result<usize, DecodeError> {
    type BatchPrefix = (AgentIdentity, u64, i64, usize);
    let ((_agent, _seq, _created_ms, records), _rest): (BatchPrefix, &[u8]) =
        postcard::take_from_bytes(plain).map_err(|e| DecodeError::Body(e.to_string()))?;
    Ok(records)
}

/// Encode a batch at [`DEFAULT_ZSTD_LEVEL`].
pub fn encode(batch: &Batch) -> Result<Vec<u8>, EncodeError> {
    encode_with_level(batch, DEFAULT_ZSTD_LEVEL)
}

/// Encode a batch at the given zstd level. Fails, without a partial frame, when a limit would be
/// exceeded; the caller then splits the batch.
pub fn encode_with_level(batch: &Batch, level: i32) -> Result<Vec<u8>, EncodeError> {
    if batch.records.len() > MAX_RECORDS as usize {
        return Err(EncodeError::TooManyRecords {
            count: batch.records.len(),
            limit: MAX_RECORDS,
        });
    }
    let widest = batch
        .records
        .iter()
        .filter_map(|record| match record {
            Record::Metric(m) => Some(m.dimensions.len()),
            Record::Log(_) => None,
        })
        .max();
    if let Some(count) = widest.filter(|&count| count > MAX_DIMENSIONS as usize) {
        return Err(EncodeError::TooManyDimensions {
            count,
            limit: MAX_DIMENSIONS,
        });
    }
    let mut records = FrameBuilder::new();
    for record in &batch.records {
        records.push(record)?;
    }
    FrameEncoder::new(level).encode(&batch.agent, batch.seq, batch.created_ms, &records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{AgentIdentity, LogRecord, Record};

    fn small() -> Batch {
        Batch {
            agent: AgentIdentity {
                agent_id: "a".into(),
                hostname: "h".into(),
                agent_version: "0".into(),
            },
            seq: 7,
            created_ms: 1,
            records: vec![Record::Log(LogRecord {
                ts_ms: 1,
                source: "/x".into(),
                service: "s".into(),
                line: b"hello".to_vec(),
                level: None,
            })],
        }
    }

    #[test]
    fn header_layout_is_as_documented() {
        let frame = encode(&small()).unwrap();
        assert_eq!(&frame[0..4], b"OPST");
        assert_eq!(frame[4], 1);
        assert_eq!(frame[5], FLAG_ZSTD);
        assert_eq!(&frame[6..8], &[0, 0]);
        let h = parse_header(&frame).unwrap();
        assert_eq!(h.record_count, 1);
        assert_eq!(h.compressed_len as usize, frame.len() - HEADER_LEN);
        assert_eq!(h.crc32c, crc32c::crc32c(&frame[HEADER_LEN..]));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut frame = encode(&small()).unwrap();
        frame.push(0);
        assert_eq!(decode(&frame), Err(DecodeError::TrailingBytes { extra: 1 }));
    }

    #[test]
    fn unknown_flags_are_rejected() {
        let mut frame = encode(&small()).unwrap();
        frame[5] |= 0b10;
        assert_eq!(decode(&frame), Err(DecodeError::UnsupportedFlags(0b11)));
    }
}
