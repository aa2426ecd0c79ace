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

/// Map a level name (any case) to a [`Level`].
pub fn parse_level(word: &str) -> Option<Level> {
    Some(match word.to_ascii_lowercase().as_str() {
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        "info" | "notice" => Level::Info,
        "warn" | "warning" => Level::Warn,
        "error" | "err" => Level::Error,
        "fatal" | "critical" | "crit" | "panic" | "emerg" | "alert" => Level::Fatal,
        _ => return None,
    })
}

/// Detect the level of a line, if it names one.
pub fn detect(line: &[u8]) -> Option<Level> {
    let head = &line[..line.len().min(SCAN)];
    let text = String::from_utf8_lossy(head);
    let text = text.as_ref();
    if let Some(l) = keyed(text) {
        return Some(l);
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let word = &text[start..i];
            let bracketed = start > 0 && bytes[start - 1] == b'[' && bytes.get(i) == Some(&b']');
            if (bracketed || word.bytes().all(|b| b.is_ascii_uppercase()))
                && let Some(l) = parse_level(word)
            {
                return Some(l);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// `"level":"x"`, `level=x`, `level="x"` and the same for `severity` and `lvl`.
fn keyed(text: &str) -> Option<Level> {
    for key in ["level", "severity", "lvl"] {
        let mut from = 0;
        while let Some(pos) = text[from..].find(key) {
            let at = from + pos;
            from = at + key.len();
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &text[at + key.len()..];
            let rest = rest.strip_prefix('"').unwrap_or(rest);
            let rest = rest.trim_start();
            let Some(rest) = rest.strip_prefix(':').or_else(|| rest.strip_prefix('=')) else {
                continue;
            };
            let rest = rest.trim_start();
            let rest = rest.strip_prefix('"').unwrap_or(rest);
            let end = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            if let Some(l) = parse_level(&rest[..end]) {
                return Some(l);
            }
        }
    }
    None
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
    fn invalid_utf8_does_not_panic() {
        assert_eq!(detect(b"\xff\xfe ERROR \xc3"), Some(Level::Error));
    }
}
