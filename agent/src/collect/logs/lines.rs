//! Splitting a byte stream into lines: a trailing `\n` or `\r\n` removed, over-long lines
//! truncated (and flagged), partial last lines held until their newline arrives.

/// A complete line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The bytes, without the terminator; at most the configured maximum.
    pub bytes: Vec<u8>,
    /// The line was longer than the maximum and was cut.
    pub truncated: bool,
}

/// Incremental line splitter. Memory is bounded by the maximum line length.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
    truncated: bool,
    /// Bytes of the current partial line, counting those cut by truncation.
    partial: u64,
}

impl LineSplitter {
    /// A splitter that keeps at most `max` bytes of a line.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max: max.max(1),
            truncated: false,
            partial: 0,
        }
    }

    /// Feed bytes; complete lines are appended to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<Line>) {
        while !chunk.is_empty() {
            match memchr_newline(chunk) {
                Some(i) => {
                    self.take(&chunk[..i]);
                    out.push(self.finish());
                    chunk = &chunk[i + 1..];
                }
                None => {
                    self.take(chunk);
                    break;
                }
            }
        }
    }

    /// Like [`push`](Self::push), and give each complete line the stream offset just past its
    /// terminator. `end_offset` is the offset just past the last byte of `chunk`.
    pub fn push_at(&mut self, mut chunk: &[u8], end_offset: u64, out: &mut Vec<(Line, u64)>) {
        let mut at = end_offset - chunk.len() as u64;
        while !chunk.is_empty() {
            match memchr_newline(chunk) {
                Some(i) => {
                    self.take(&chunk[..i]);
                    at += i as u64 + 1;
                    out.push((self.finish(), at));
                    chunk = &chunk[i + 1..];
                }
                None => {
                    self.take(chunk);
                    break;
                }
            }
        }
    }

    /// Bytes of the stream that belong to a line with no newline yet (including bytes already
    /// cut by truncation). `offset read so far - pending()` is where the last complete line ends.
    pub fn pending(&self) -> u64 {
        self.partial
    }

    /// Emit the partial line, if any (the file ended for good: deleted, rotated, truncated).
    pub fn flush(&mut self) -> Option<Line> {
        (!self.buf.is_empty() || self.truncated).then(|| self.finish())
    }

    fn take(&mut self, bytes: &[u8]) {
        self.partial += bytes.len() as u64;
        // Keep one byte beyond max so a `\r` at the cut can still be recognised as part of `\r\n`.
        let room = (self.max + 1).saturating_sub(self.buf.len());
        if bytes.len() > room {
            self.truncated = true;
        }
        self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn finish(&mut self) -> Line {
        self.partial = 0;
        let mut bytes = std::mem::take(&mut self.buf);
        let mut truncated = std::mem::take(&mut self.truncated);
        if !truncated && bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        if bytes.len() > self.max {
            bytes.truncate(self.max);
            truncated = true;
        }
        Line { bytes, truncated }
    }
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    // SIMD search: this runs over every byte the agent reads.
    memchr::memchr(b'\n', b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(max: usize, chunks: &[&[u8]]) -> (Vec<Line>, Option<Line>) {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        (out, s.flush())
    }

    #[test]
    fn terminators_are_removed() {
        let (lines, rest) = split(100, &[b"a\nb\r\nc\r\r\n\nd"]);
        let got: Vec<&[u8]> = lines.iter().map(|l| l.bytes.as_slice()).collect();
        assert_eq!(got, [&b"a"[..], b"b", b"c\r", b""]);
        assert_eq!(rest.unwrap().bytes, b"d");
    }

    #[test]
    fn lines_across_chunks_are_joined() {
        let (lines, rest) = split(100, &[b"hel", b"lo\r", b"\nwor", b"ld\n"]);
        assert_eq!(lines[0].bytes, b"hello");
        assert_eq!(lines[1].bytes, b"world");
        assert!(rest.is_none());
    }

    #[test]
    fn push_at_gives_end_offsets() {
        let mut s = LineSplitter::new(100);
        let mut out = Vec::new();
        s.push_at(b"ab\ncd", 106, &mut out);
        s.push_at(b"e\n\n", 109, &mut out);
        let ends: Vec<u64> = out.iter().map(|(_, e)| *e).collect();
        assert_eq!(ends, [104, 108, 109]);
        assert_eq!(out[1].0.bytes, b"cde");
    }

    #[test]
    fn pending_counts_every_byte_of_the_partial_line() {
        let mut s = LineSplitter::new(4);
        let mut out = Vec::new();
        s.push(b"ab\ncdefghij", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            s.pending(),
            8,
            "truncated bytes still belong to the open line"
        );
        s.push(b"k\n", &mut out);
        assert_eq!(s.pending(), 0);
        assert_eq!(
            out[1],
            Line {
                bytes: b"cdef".to_vec(),
                truncated: true
            }
        );
    }

    #[test]
    fn long_lines_are_truncated_and_flagged() {
        let (lines, _) = split(4, &[b"abcdefgh\nxy\n"]);
        assert_eq!(
            lines[0],
            Line {
                bytes: b"abcd".to_vec(),
                truncated: true
            }
        );
        assert_eq!(
            lines[1],
            Line {
                bytes: b"xy".to_vec(),
                truncated: false
            }
        );
        let (lines, _) = split(4, &[b"abcd\r\n"]);
        assert_eq!(
            lines[0],
            Line {
                bytes: b"abcd".to_vec(),
                truncated: false
            }
        );
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_lines(
            lines in proptest::collection::vec("[a-z\r]{0,20}", 0..20),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let text: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            cuts.sort();
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts { chunks.push(&text[at..c]); at = c; }
            chunks.push(&text[at..]);
            let (whole, _) = split(1000, &[&text]);
            let (pieces, rest) = split(1000, &chunks);
            prop_assert_eq!(&whole, &pieces);
            prop_assert!(rest.is_none());
            prop_assert_eq!(whole.len(), lines.len());
        }
    }
}
