//! Severity detection from a log line, cheap and conservative.
//!
//! Recognised, in the first 256 bytes of the line:
//! - JSON: a `"level"`, `"severity"` or `"lvl"` string field;
//! - logfmt: `level=`, `severity=`, `lvl=` (value quoted or bare);
//! - plain: the first word that is a level name in upper case (`ERROR`, `WARN`, ...), or any case
//!   inside brackets (`[error]`, as nginx writes).
//!
//! Names: trace; debug; info, notice; warn, warning; error, err; fatal, critical, crit, panic,
//! emerg, alert.

use outpost_proto::Level;

const SCAN: usize = 256;

/// Level names, matched without regard to case.
const NAMES: &[(&[u8], Level)] = &[
    (b"trace", Level::Trace),
    (b"debug", Level::Debug),
    (b"info", Level::Info),
    (b"notice", Level::Info),
    (b"warn", Level::Warn),
    (b"warning", Level::Warn),
    (b"error", Level::Error),
    (b"err", Level::Error),
    (b"fatal", Level::Fatal),
    (b"critical", Level::Fatal),
    (b"crit", Level::Fatal),
    (b"panic", Level::Fatal),
    (b"emerg", Level::Fatal),
    (b"alert", Level::Fatal),
];

/// Keys whose value names the level (matched in lower case only, as written by loggers).
const KEYS: &[&[u8]] = &[b"level", b"severity", b"lvl"];

/// Map a level name (any case) to a [`Level`].
pub fn parse_level(word: &str) -> Option<Level> {
    level_of(word.as_bytes())
}

fn level_of(word: &[u8]) -> Option<Level> {
    if !(3..=8).contains(&word.len()) {
        return None;
    }
    NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(word))
        .map(|&(_, level)| level)
}

/// Detect the level of a line, if it names one. One pass over the first [`SCAN`] bytes, no
/// allocation (this runs for every record): a keyed level anywhere in them wins over a plain
/// word; otherwise the first plain level word counts.
pub fn detect(line: &[u8]) -> Option<Level> {
    let bytes = &line[..line.len().min(SCAN)];
    let mut plain = None;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let word = &bytes[start..i];
        let before = start.checked_sub(1).map(|b| bytes[b]);
        let glued = before.is_some_and(|c| c.is_ascii_digit() || c == b'_');
        if !glued && KEYS.contains(&word) {
            if let Some(l) = keyed_value(&bytes[i..]) {
                return Some(l);
            }
            continue;
        }
        if plain.is_none() {
            let bracketed = before == Some(b'[') && bytes.get(i) == Some(&b']');
            if bracketed || word.iter().all(u8::is_ascii_uppercase) {
                plain = level_of(word);
            }
        }
    }
    plain
}

/// The level in what follows a key: `"?` then spaces, `:` or `=`, spaces, `"?`, a word.
fn keyed_value(rest: &[u8]) -> Option<Level> {
    let rest = rest.strip_prefix(b"\"").unwrap_or(rest);
    let rest = rest.trim_ascii_start();
    let rest = rest
        .strip_prefix(b":")
        .or_else(|| rest.strip_prefix(b"="))?;
    let rest = rest.trim_ascii_start();
    let rest = rest.strip_prefix(b"\"").unwrap_or(rest);
    let end = rest
        .iter()
        .position(|c| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    level_of(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_formats() {
        let cases: &[(&str, Option<Level>)] = &[
            ("2026-11-23 12:00:00 ERROR db: timeout", Some(Level::Error)),
            ("2026-11-23T12:00:00Z WARN retrying", Some(Level::Warn)),
            (
                "2026/11/23 12:00:00 [error] 42#0: upstream timed out",
                Some(Level::Error),
            ),
            (r#"{"ts":"x","level":"info","msg":"ok"}"#, Some(Level::Info)),
            (
                r#"{"severity": "CRITICAL", "msg":"down"}"#,
                Some(Level::Fatal),
            ),
            ("time=1 level=debug msg=hi", Some(Level::Debug)),
            (r#"ts=1 lvl="warning" msg=hi"#, Some(Level::Warn)),
            ("thread 'main' panicked: PANIC at x", Some(Level::Fatal)),
            (
                "127.0.0.1 - - [23/Nov/2026] \"GET / HTTP/1.1\" 200 12",
                None,
            ),
            ("an error occurred in lower case prose", None),
            ("", None),
        ];
        for (line, want) in cases {
            assert_eq!(detect(line.as_bytes()), *want, "{line}");
        }
    }

    #[test]
    fn keys_glued_to_other_words_do_not_count() {
        assert_eq!(detect(b"loglevel=error x"), None);
        assert_eq!(detect(b"_level=error x"), None);
        assert_eq!(detect(b"level_x=error INFO"), Some(Level::Info));
        assert_eq!(detect(b"INFO then level=error"), Some(Level::Error));
        assert_eq!(detect(b"GET HTTP WARN"), Some(Level::Warn));
        assert_eq!(parse_level("Warning"), Some(Level::Warn));
        assert_eq!(parse_level("informational"), None);
    }

    #[test]
    fn invalid_utf8_does_not_panic() {
        assert_eq!(detect(b"\xff\xfe ERROR \xc3"), Some(Level::Error));
    }
}
