//! The read side of the spool: a buffered position in one segment, kept between calls, so
//! delivering entries in order reads each segment once, front to back, an entry at a time.

use super::error::SpoolError;
use super::format::{
    Defect, ENTRY_HEADER_LEN, EntryHeader, HEADER_LEN, SEGMENT_MAGIC, decode_header,
};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// Read buffer of a cursor.
const READ_BUFFER: usize = 64 * 1024;

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's id: pass it to [`Spool::ack`](super::Spool::ack) once the sink has it.
    pub id: u64,
    /// The bytes given to `append`.
    pub payload: Vec<u8>,
}

/// An open segment and the id of the entry at the read position.
#[derive(Debug)]
pub(super) struct Cursor {
    first_id: u64,
    path: PathBuf,
    reader: BufReader<File>,
    next_id: u64,
}

impl Cursor {
    /// Open the segment at `path`, whose first entry is `first_id`, at its first entry.
    pub fn open(path: &Path, first_id: u64) -> Result<Self, SpoolError> {
        let file = File::open(path).map_err(|source| SpoolError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cursor = Self {
            first_id,
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(READ_BUFFER, file),
            next_id: first_id,
        };
        let mut header = [0u8; HEADER_LEN as usize];
        cursor.fill(&mut header, first_id)?;
        match decode_header(&header, SEGMENT_MAGIC) {
            Ok(id) if id == first_id => Ok(cursor),
            Ok(id) => Err(cursor.corrupt(
                first_id,
                Defect::NameMismatch {
                    header: id,
                    name: first_id,
                },
            )),
            Err(defect) => Err(cursor.corrupt(first_id, defect)),
        }
    }

    /// The first id of the segment this cursor reads.
    pub fn segment(&self) -> u64 {
        self.first_id
    }

    /// The id of the entry at the read position.
    pub fn position(&self) -> u64 {
        self.next_id
    }

    /// Read entry `id`, which must be at or after the read position, skipping the payloads of
    /// the entries before it. The caller knows `id` was written and synced.
    pub fn read(&mut self, id: u64) -> Result<Entry, SpoolError> {
        while self.next_id < id {
            let h = self.header()?;
            self.reader
                .seek_relative(i64::from(h.len))
                .map_err(|source| SpoolError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            self.next_id += 1;
        }
        let h = self.header()?;
        let mut payload = vec![0u8; h.len as usize];
        self.fill(&mut payload, h.id)?;
        if crc32c::crc32c(&payload) != h.crc {
            return Err(self.corrupt(h.id, Defect::Checksum));
        }
        self.next_id += 1;
        Ok(Entry { id: h.id, payload })
    }

    /// Read and check the entry header at the read position.
    fn header(&mut self) -> Result<EntryHeader, SpoolError> {
        let mut b = [0u8; ENTRY_HEADER_LEN as usize];
        self.fill(&mut b, self.next_id)?;
        let h = EntryHeader::decode(&b);
        h.check(self.next_id)
            .map_err(|defect| self.corrupt(self.next_id, defect))?;
        Ok(h)
    }

    fn fill(&mut self, buf: &mut [u8], id: u64) -> Result<(), SpoolError> {
        self.reader.read_exact(buf).map_err(|source| {
            if source.kind() == io::ErrorKind::UnexpectedEof {
                self.corrupt(id, Defect::Overrun)
            } else {
                SpoolError::Io {
                    path: self.path.clone(),
                    source,
                }
            }
        })
    }

    fn corrupt(&self, id: u64, defect: Defect) -> SpoolError {
        SpoolError::Corrupt {
            path: self.path.clone(),
            id,
            defect,
        }
    }
}
