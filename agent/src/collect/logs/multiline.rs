//! Joining continuation lines (stack traces, tracebacks) into one record: a pure state machine
//! fed lines and the time, with no clock or I/O of its own.
//!
//! Rules:
//! - A line the start pattern matches opens a new record; the open one, if any, is emitted.
//! - Any other line is appended to the open record, after a `\n`. With no record open (the first
//!   line read is a continuation, e.g. reading began mid-trace), it opens a record of its own,
//!   which the continuation lines after it join.
//! - A record is emitted when the next start line arrives, when no line was added to it for
//!   `flush_timeout` ([`Multiline::poll`], and checked again by [`Multiline::push`] before it
//!   looks at a line, so the result does not depend on how often the caller polls), or on
//!   [`Multiline::flush`] (end of file, rotation, shutdown).
//! - A record keeps at most its first `max_bytes` bytes. Past that it is flagged truncated and the
//!   rest of its continuation lines are discarded and counted: a record is never dropped.
//!
//! Each line comes with the file offset just past it, and a [`Joined`] record carries the end
//! offset of its last line. A checkpoint may only advance to the `end_offset` of a record that has
//! been handed on: the lines of the open record are not emitted yet.

use super::lines::Line;
use regex::bytes::Regex;
use std::time::{Duration, Instant};

/// One record made of one or more physical lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The lines joined with `\n`; at most `max_bytes`.
    pub bytes: Vec<u8>,
    /// Bytes were lost: a line was cut by the line splitter, or the record by `max_bytes`.
    pub truncated: bool,
    /// Physical lines that went into the record, including discarded ones.
    pub lines: u32,
    /// Continuation lines dropped whole because the record was already at `max_bytes`.
    pub discarded_lines: u32,
    /// The end offset given with the record's last line (discarded lines included).
    pub end_offset: u64,
}

#[derive(Debug)]
struct Open {
    record: Joined,
    last_line_at: Instant,
}

/// The multiline joiner of one file.
#[derive(Debug)]
pub struct Multiline {
    start: Regex,
    max_bytes: usize,
    flush_timeout: Duration,
    open: Option<Open>,
}

impl Multiline {
    /// A joiner where a line matching `start_pattern` begins a record. The pattern is searched
    /// anywhere in the line's bytes (lines need not be UTF-8): anchor it with `^`. Records keep
    /// at most `max_bytes` bytes (at least 1); an open record is emitted after `flush_timeout`
    /// without a new line.
    pub fn new(start_pattern: Regex, max_bytes: usize, flush_timeout: Duration) -> Self {
        Self {
            start: start_pattern,
            max_bytes: max_bytes.max(1),
            flush_timeout,
            open: None,
        }
    }

    /// Feed one line that ends at file offset `end_offset`, read at `now`. Records completed by
    /// it (by timeout or by this line starting a new one) are appended to `out`, oldest first.
    pub fn push(&mut self, line: Line, end_offset: u64, now: Instant, out: &mut Vec<Joined>) {
        out.extend(self.poll(now));
        let starts = self.start.is_match(&line.bytes);
        match &mut self.open {
            Some(open) if !starts => {
                append(&mut open.record, line, self.max_bytes);
                open.record.end_offset = end_offset;
                open.last_line_at = now;
            }
            _ => {
                out.extend(self.flush());
                self.open = Some(Open {
                    record: first_line(line, end_offset, self.max_bytes),
                    last_line_at: now,
                });
            }
        }
    }

    /// Emit the open record if no line was added to it for `flush_timeout` as of `now`.
    pub fn poll(&mut self, now: Instant) -> Option<Joined> {
        let deadline = self.deadline()?;
        if now >= deadline { self.flush() } else { None }
    }

    /// When [`poll`](Self::poll) will emit the open record, if one is open: for the caller's
    /// timer.
    pub fn deadline(&self) -> Option<Instant> {
        let open = self.open.as_ref()?;
        // An unrepresentable deadline (a huge timeout) is never reached.
        open.last_line_at.checked_add(self.flush_timeout)
    }

    /// Count `now` as activity of the open record, if one is open: the caller knows its next
    /// lines are already written and only waiting to be read (the reader was held back), so
    /// the record must not time out meanwhile.
    pub fn touch(&mut self, now: Instant) {
        if let Some(open) = &mut self.open {
            open.last_line_at = open.last_line_at.max(now);
        }
    }

    /// How long an open record waits for its next line.
    pub fn flush_timeout(&self) -> Duration {
        self.flush_timeout
    }

    /// Emit the open record now (end of file, rotation, truncation, shutdown).
    pub fn flush(&mut self) -> Option<Joined> {
        self.open.take().map(|open| open.record)
    }

    /// Physical lines held in the open record (not emitted yet).
    pub fn pending_lines(&self) -> u32 {
        self.open.as_ref().map_or(0, |o| o.record.lines)
    }
}

fn first_line(line: Line, end_offset: u64, max_bytes: usize) -> Joined {
    let mut bytes = line.bytes;
    let cut = bytes.len() > max_bytes;
    bytes.truncate(max_bytes);
    Joined {
        bytes,
        truncated: line.truncated || cut,
        lines: 1,
        discarded_lines: 0,
        end_offset,
    }
}

fn append(record: &mut Joined, line: Line, max_bytes: usize) {
    record.lines = record.lines.saturating_add(1);
    let room = max_bytes.saturating_sub(record.bytes.len());
    if room == 0 {
        record.truncated = true;
        record.discarded_lines = record.discarded_lines.saturating_add(1);
        return;
    }
    record.bytes.push(b'\n');
    let keep = line.bytes.len().min(room - 1);
    record.bytes.extend_from_slice(&line.bytes[..keep]);
    record.truncated |= line.truncated || keep < line.bytes.len();
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(s: &str) -> Line {
        Line {
            bytes: s.as_bytes().to_vec(),
            truncated: false,
        }
    }

    /// Push `lines` at one instant (offsets 1, 2, ...), then flush.
    fn join(pattern: &str, max: usize, lines: &[&str]) -> Vec<Joined> {
        let mut m = Multiline::new(Regex::new(pattern).unwrap(), max, Duration::from_secs(5));
        let now = Instant::now();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            m.push(line(l), i as u64 + 1, now, &mut out);
        }
        out.extend(m.flush());
        out
    }

    fn text(j: &Joined) -> &str {
        std::str::from_utf8(&j.bytes).unwrap()
    }

    #[test]
    fn java_stack_trace_is_one_record() {
        let lines = [
            "2026-11-23 10:00:00 INFO starting",
            "2026-11-23 10:00:01 ERROR request failed",
            "java.lang.IllegalStateException: boom",
            "\tat com.example.Foo.bar(Foo.java:10)",
            "\tat com.example.Main.main(Main.java:5)",
            "Caused by: java.io.IOException: disk",
            "\t... 2 more",
            "2026-11-23 10:00:02 INFO recovered",
        ];
        let out = join(r"^\d{4}-\d{2}-\d{2} ", 1 << 20, &lines);
        assert_eq!(out.len(), 3);
        assert_eq!(text(&out[0]), lines[0]);
        assert_eq!(text(&out[1]), lines[1..7].join("\n"));
        assert_eq!(out[1].lines, 6);
        assert_eq!(out[1].end_offset, 7);
        assert!(!out[1].truncated);
        assert_eq!(text(&out[2]), lines[7]);
        assert_eq!(out[2].end_offset, 8);
    }

    #[test]
    fn python_traceback_with_a_non_whitespace_start_pattern() {
        let lines = [
            "Traceback (most recent call last):",
            "  File \"app.py\", line 3, in <module>",
            "    main()",
            "ValueError: bad input",
            "next message",
        ];
        // `^\S`: indented lines are continuations. The exception line starts with a letter, so
        // it begins a record of its own; a timestamp pattern keeps it with its traceback.
        let out = join(r"^\S", 1 << 20, &lines);
        let got: Vec<&str> = out.iter().map(text).collect();
        assert_eq!(
            got,
            [
                lines[..3].join("\n").as_str(),
                "ValueError: bad input",
                "next message"
            ]
        );
        let logged = [
            "2026-11-23 10:00:01,123 ERROR crashed",
            lines[0],
            lines[1],
            lines[2],
            lines[3],
        ];
        let out = join(r"^\d{4}-\d{2}-\d{2} ", 1 << 20, &logged);
        assert_eq!(out.len(), 1);
        assert_eq!(text(&out[0]), logged.join("\n"));
    }

    #[test]
    fn a_continuation_with_nothing_open_starts_a_record_the_next_ones_join() {
        let out = join(r"^\S", 1 << 20, &["\tat a", "\tat b", "new", "\tat c"]);
        let got: Vec<&str> = out.iter().map(text).collect();
        assert_eq!(got, ["\tat a\n\tat b", "new\n\tat c"]);
        assert_eq!(out[0].end_offset, 2);
    }

    #[test]
    fn open_record_is_emitted_after_the_timeout_on_a_paused_clock() {
        let t0 = Instant::now();
        let timeout = Duration::from_millis(500);
        let mut m = Multiline::new(Regex::new(r"^\S").unwrap(), 1024, timeout);
        let mut out = Vec::new();
        m.push(line("start"), 6, t0, &mut out);
        m.push(line(" more"), 12, t0 + Duration::from_millis(400), &mut out);
        assert!(out.is_empty());
        assert_eq!(m.deadline(), Some(t0 + Duration::from_millis(900)));
        assert_eq!(m.poll(t0 + Duration::from_millis(899)), None);
        let j = m.poll(t0 + Duration::from_millis(900)).unwrap();
        assert_eq!(
            (j.bytes.as_slice(), j.lines, j.end_offset),
            (&b"start\n more"[..], 2, 12)
        );
        assert_eq!(m.poll(t0 + Duration::from_secs(10)), None);
        assert_eq!(m.deadline(), None);

        // A late continuation after the timeout, without a poll in between, is not joined.
        m.push(line("a"), 14, t0, &mut out);
        m.push(line(" late"), 20, t0 + timeout, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes, b"a");
        assert_eq!(m.flush().unwrap().bytes, b" late");
    }

    #[test]
    fn max_bytes_truncates_and_counts_but_keeps_the_record() {
        let out = join(
            r"^\S",
            10,
            &["abcdef", " gh", " ijklmn", " op", " qr", "next"],
        );
        assert_eq!(out.len(), 2);
        // "abcdef\n gh" is exactly 10 bytes: the rest is discarded whole.
        assert_eq!(out[0].bytes, b"abcdef\n gh");
        assert!(out[0].truncated);
        assert_eq!(out[0].lines, 5);
        assert_eq!(out[0].discarded_lines, 3);
        assert_eq!(out[0].end_offset, 5, "discarded lines are consumed too");
        assert_eq!(out[1].bytes, b"next");
        assert!(!out[1].truncated);

        // A line cut in the middle keeps the first max_bytes bytes of the record.
        let out = join(r"^\S", 8, &["abcd", " efgh"]);
        assert_eq!(out[0].bytes, b"abcd\n ef");
        assert_eq!((out[0].truncated, out[0].discarded_lines), (true, 0));

        // A first line over the limit, and a line the splitter had already cut.
        let out = join(r"^\S", 4, &["abcdefgh"]);
        assert_eq!(
            (out[0].bytes.as_slice(), out[0].truncated),
            (&b"abcd"[..], true)
        );
        let mut m = Multiline::new(Regex::new(r"^\S").unwrap(), 100, Duration::from_secs(1));
        let mut out = Vec::new();
        let cut = Line {
            bytes: b" cut".to_vec(),
            truncated: true,
        };
        m.push(line("a"), 2, Instant::now(), &mut out);
        m.push(cut, 7, Instant::now(), &mut out);
        assert!(m.flush().unwrap().truncated);
    }

    #[test]
    fn start_pattern_works_on_lines_that_are_not_utf8() {
        let mut m = Multiline::new(Regex::new(r"^\S").unwrap(), 100, Duration::from_secs(1));
        let now = Instant::now();
        let mut out = Vec::new();
        let raw = |b: &[u8]| Line {
            bytes: b.to_vec(),
            truncated: false,
        };
        m.push(raw(b"\xff\xfe start"), 1, now, &mut out);
        m.push(raw(b" \xff cont"), 2, now, &mut out);
        m.push(raw(b"next"), 3, now, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes, b"\xff\xfe start\n \xff cont");
    }

    #[derive(Debug, Clone)]
    enum Step {
        Line(String),
        Wait(u64),
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        proptest::collection::vec(
            prop_oneof![
                4 => "[A-Z ][a-z ]{0,8}".prop_map(Step::Line),
                1 => (0u64..1500).prop_map(Step::Wait),
            ],
            0..60,
        )
    }

    /// Run the steps (polling after each wait); returns records and the lines pushed.
    fn run(steps: &[Step], max: usize) -> (Vec<Joined>, Vec<String>) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut m = Multiline::new(
            Regex::new("^[A-Z]").unwrap(),
            max,
            Duration::from_millis(1000),
        );
        let (mut out, mut pushed, mut offset) = (Vec::new(), Vec::new(), 0u64);
        for step in steps {
            match step {
                Step::Line(l) => {
                    offset += l.len() as u64 + 1;
                    m.push(line(l), offset, now, &mut out);
                    pushed.push(l.clone());
                }
                Step::Wait(ms) => {
                    now += Duration::from_millis(*ms);
                    out.extend(m.poll(now));
                }
            }
        }
        out.extend(m.flush());
        (out, pushed)
    }

    proptest! {
        #[test]
        fn joining_never_loses_or_reorders_bytes(steps in steps()) {
            let (out, pushed) = run(&steps, usize::MAX);
            let records: Vec<&[u8]> = out.iter().map(|j| j.bytes.as_slice()).collect();
            prop_assert_eq!(records.join(&b'\n'), pushed.join("\n").into_bytes());
            prop_assert!(out.iter().all(|j| !j.truncated && j.discarded_lines == 0));
            let lines: u32 = out.iter().map(|j| j.lines).sum();
            prop_assert_eq!(lines as usize, pushed.len());
            // End offsets grow, and the last one covers every line pushed.
            prop_assert!(out.windows(2).all(|w| w[0].end_offset < w[1].end_offset));
            let total: u64 = pushed.iter().map(|l| l.len() as u64 + 1).sum();
            prop_assert_eq!(out.last().map_or(0, |j| j.end_offset), total);
        }

        #[test]
        fn truncation_bounds_records_and_keeps_every_line_counted(
            steps in steps(),
            max in 1usize..30,
        ) {
            let (out, pushed) = run(&steps, max);
            prop_assert!(out.iter().all(|j| j.bytes.len() <= max));
            let lines: u32 = out.iter().map(|j| j.lines).sum();
            prop_assert_eq!(lines as usize, pushed.len());
            // Each record is a prefix of what it would have been without a limit.
            let (whole, _) = run(&steps, usize::MAX);
            prop_assert_eq!(whole.len(), out.len());
            for (w, j) in whole.iter().zip(&out) {
                prop_assert!(w.bytes.starts_with(&j.bytes));
                prop_assert_eq!(j.truncated, w.bytes.len() > max);
                prop_assert_eq!(w.end_offset, j.end_offset);
            }
        }
    }
}
