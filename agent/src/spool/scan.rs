//! The pure core of recovery: walk one segment's bytes, validate the header and every entry, and
//! say where the good part ends and whether what follows looks like a torn write or corruption.
//!
//! It reads through any [`Read`] in fixed-size chunks, so a segment is never loaded whole; tests
//! pass a byte slice, recovery a buffered file.

use super::format::{
    Defect, ENTRY_HEADER_LEN, EntryHeader, HEADER_LEN, SEGMENT_MAGIC, decode_header,
};
use std::io::{self, Read};

/// Size of the buffer a scan streams payloads through.
const CHUNK: usize = 64 * 1024;

/// How a segment's bytes end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Every byte belongs to a valid entry.
    Clean,
    /// The bytes from `at` on look like an interrupted write: a partial entry, an entry running
    /// past the end of the file, a bad final entry, or zeros to the end of the file.
    Torn {
        /// Offset of the first byte not kept.
        at: u64,
        /// What was found there.
        defect: Defect,
    },
    /// A bad header, or a bad entry with more bytes after it: not something a crash during an
    /// append produces.
    Corrupt {
        /// Offset of the first byte not kept.
        at: u64,
        /// What was found there.
        defect: Defect,
    },
}

/// The result of scanning one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// The first id from a valid header; `None` when the header is bad.
    pub first_id: Option<u64>,
    /// Valid entries, in order from the header.
    pub entries: u64,
    /// Bytes of the header and the valid entries: where a repaired file ends.
    pub good_len: u64,
    /// How the bytes after the valid entries look.
    pub end: End,
}

impl Scan {
    /// One past the last valid id (the first id when there are no entries).
    pub fn next_id(&self) -> Option<u64> {
        self.first_id.map(|f| f.saturating_add(self.entries))
    }
}

/// Scan a segment of `file_len` bytes read from `reader`. Only an error of the reader is an
/// `Err`; whatever the bytes are, the answer is a [`Scan`].
pub fn scan<R: Read>(mut reader: R, file_len: u64) -> io::Result<Scan> {
    let mut header = [0u8; HEADER_LEN as usize];
    let header_len = HEADER_LEN.min(file_len) as usize;
    reader.read_exact(&mut header[..header_len])?;
    let first_id = match decode_header(&header[..header_len], SEGMENT_MAGIC) {
        Ok(0) => Err(Defect::FirstIdZero),
        other => other,
    };
    let first_id = match first_id {
        Ok(id) => id,
        Err(defect) => {
            return Ok(Scan {
                first_id: None,
                entries: 0,
                good_len: 0,
                end: End::Corrupt { at: 0, defect },
            });
        }
    };

    let mut buf = vec![0u8; CHUNK];
    let mut pos = HEADER_LEN;
    let mut entries = 0u64;
    let end = loop {
        let expected = first_id.saturating_add(entries);
        let remaining = file_len - pos;
        if remaining == 0 {
            break End::Clean;
        }
        if remaining < ENTRY_HEADER_LEN {
            break End::Torn {
                at: pos,
                defect: Defect::ShortEntry,
            };
        }
        let mut hb = [0u8; ENTRY_HEADER_LEN as usize];
        reader.read_exact(&mut hb)?;
        let h = EntryHeader::decode(&hb);
        let entry_end = pos + h.stored_len();
        let after_header = remaining - ENTRY_HEADER_LEN;
        match h.check(expected) {
            Err(defect @ Defect::TooLong(_)) => break End::Corrupt { at: pos, defect },
            _ if entry_end > file_len => {
                break End::Torn {
                    at: pos,
                    defect: Defect::Overrun,
                };
            }
            Err(defect) => {
                let torn = entry_end == file_len
                    || (hb.iter().all(|b| *b == 0)
                        && rest_is_zero(&mut reader, after_header, &mut buf)?);
                break classify(torn, pos, defect);
            }
            Ok(()) => {}
        }
        let mut crc = 0u32;
        let mut left = u64::from(h.len);
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            reader.read_exact(&mut buf[..n])?;
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            left -= n as u64;
        }
        if crc != h.crc {
            break classify(entry_end == file_len, pos, Defect::Checksum);
        }
        pos = entry_end;
        entries += 1;
    };
    Ok(Scan {
        first_id: Some(first_id),
        entries,
        good_len: pos,
        end,
    })
}

fn classify(torn: bool, at: u64, defect: Defect) -> End {
    if torn {
        End::Torn { at, defect }
    } else {
        End::Corrupt { at, defect }
    }
}

/// Whether the next `len` bytes of `reader` are all zero (what a file extended by a crash, but
/// whose data never reached the disk, reads as).
fn rest_is_zero<R: Read>(reader: &mut R, mut len: u64, buf: &mut [u8]) -> io::Result<bool> {
    while len > 0 {
        let n = len.min(buf.len() as u64) as usize;
        reader.read_exact(&mut buf[..n])?;
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        len -= n as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::format::{EntryHeader, encode_header};

    fn segment(first_id: u64, payloads: &[&[u8]]) -> (Vec<u8>, Vec<u64>) {
        let mut out = encode_header(SEGMENT_MAGIC, first_id).to_vec();
        let mut offsets = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            offsets.push(out.len() as u64);
            out.extend_from_slice(&EntryHeader::for_payload(first_id + i as u64, p).encode());
            out.extend_from_slice(p);
        }
        (out, offsets)
    }

    fn run(bytes: &[u8]) -> Scan {
        scan(bytes, bytes.len() as u64).unwrap()
    }

    #[test]
    fn clean_segment_keeps_every_entry() {
        let (b, _) = segment(5, &[b"one", b"", b"three"]);
        let s = run(&b);
        assert_eq!(s.first_id, Some(5));
        assert_eq!(s.entries, 3);
        assert_eq!(s.good_len, b.len() as u64);
        assert_eq!(s.end, End::Clean);
        assert_eq!(s.next_id(), Some(8));
    }

    #[test]
    fn header_only_segment_is_clean_and_empty() {
        let (b, _) = segment(9, &[]);
        let s = run(&b);
        assert_eq!((s.entries, s.good_len, s.end), (0, HEADER_LEN, End::Clean));
    }

    #[test]
    fn every_cut_inside_the_last_entry_is_torn_at_its_start() {
        let (b, offs) = segment(1, &[b"first", b"second entry"]);
        let last = offs[1];
        for cut in (last + 1)..(b.len() as u64) {
            let s = run(&b[..cut as usize]);
            assert_eq!(s.entries, 1, "cut at {cut}");
            assert_eq!(s.good_len, last, "cut at {cut}");
            assert!(
                matches!(s.end, End::Torn { at, .. } if at == last),
                "cut at {cut}: {:?}",
                s.end
            );
        }
    }

    #[test]
    fn zero_filled_tail_is_torn() {
        let (mut b, offs) = segment(1, &[b"a", b"b"]);
        let end = b.len() as u64;
        b.extend_from_slice(&[0u8; 100]);
        let s = run(&b);
        assert_eq!(s.entries, 2);
        assert_eq!(s.good_len, end);
        assert!(matches!(s.end, End::Torn { at, .. } if at == end));
        assert_eq!(offs.len(), 2);
    }

    #[test]
    fn flipped_payload_bit_in_the_middle_is_corrupt() {
        let (mut b, offs) = segment(1, &[b"aaaa", b"bbbb", b"cccc"]);
        b[(offs[1] + ENTRY_HEADER_LEN) as usize] ^= 0x10;
        let s = run(&b);
        assert_eq!(s.entries, 1);
        assert_eq!(s.good_len, offs[1]);
        assert_eq!(
            s.end,
            End::Corrupt {
                at: offs[1],
                defect: Defect::Checksum
            }
        );
    }

    #[test]
    fn flipped_payload_bit_in_the_final_entry_is_torn() {
        let (mut b, offs) = segment(1, &[b"aaaa", b"bbbb"]);
        let last = b.len() - 1;
        b[last] ^= 1;
        let s = run(&b);
        assert_eq!(s.entries, 1);
        assert_eq!(
            s.end,
            End::Torn {
                at: offs[1],
                defect: Defect::Checksum
            }
        );
    }

    #[test]
    fn wrong_id_in_the_middle_is_corrupt() {
        let (mut b, offs) = segment(1, &[b"aaaa", b"bbbb", b"cccc"]);
        b[(offs[1] + 8) as usize] ^= 0x40;
        let s = run(&b);
        assert_eq!(s.entries, 1);
        assert!(matches!(
            s.end,
            End::Corrupt {
                defect: Defect::IdMismatch { expected: 2, .. },
                ..
            }
        ));
    }

    #[test]
    fn oversized_length_is_corrupt_not_an_allocation() {
        let (mut b, offs) = segment(1, &[b"aaaa", b"bbbb"]);
        let at = offs[1] as usize;
        b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let s = run(&b);
        assert_eq!(s.entries, 1);
        assert_eq!(
            s.end,
            End::Corrupt {
                at: offs[1],
                defect: Defect::TooLong(u32::MAX)
            }
        );
    }

    #[test]
    fn bad_headers_keep_nothing() {
        let (b, _) = segment(1, &[b"x"]);
        let mut garbage = b.clone();
        garbage[0] = b'X';
        for (bytes, defect) in [
            (&garbage[..], Defect::BadMagic),
            (&b[..10], Defect::ShortHeader),
            (&b[..0], Defect::ShortHeader),
        ] {
            let s = run(bytes);
            assert_eq!(s.first_id, None);
            assert_eq!((s.entries, s.good_len), (0, 0));
            assert_eq!(s.end, End::Corrupt { at: 0, defect });
        }
        let (zero, _) = segment(0, &[]);
        assert_eq!(
            run(&zero).end,
            End::Corrupt {
                at: 0,
                defect: Defect::FirstIdZero
            }
        );
    }

    #[test]
    fn large_payloads_stream_through_the_chunk_buffer() {
        let big = vec![7u8; CHUNK * 2 + 3];
        let (mut b, _) = segment(1, &[&big, b"tail"]);
        assert_eq!(run(&b).entries, 2);
        b[CHUNK + 100] ^= 1;
        let s = run(&b);
        assert_eq!(s.entries, 0);
        assert!(matches!(
            s.end,
            End::Corrupt {
                defect: Defect::Checksum,
                ..
            }
        ));
    }
}
