//! The content of a log object: one JSON object per log record, newline-separated, in one zstd
//! frame.

use std::borrow::Cow;

use outpost_proto::LogRecord;
use serde::Serialize;

use crate::error::IngestError;
use crate::timestamp;

/// zstd level of log objects: the library default, a good speed/ratio balance for text.
pub const ZSTD_LEVEL: i32 = 3;

/// The batch-wide fields every line repeats.
#[derive(Debug, Clone, Copy)]
pub struct LineContext<'a> {
    /// The host name as the agent reported it (not sanitised).
    pub host: &'a str,
    /// The agent id as the agent reported it (not sanitised).
    pub agent_id: &'a str,
    /// The batch's sequence number.
    pub seq: u64,
}

/// One NDJSON line. Field order is the documented order.
#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    host: &'a str,
    agent_id: &'a str,
    seq: u64,
    service: &'a str,
    source: &'a str,
    message: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    invalid_utf8: bool,
}

/// Append `record` as one JSON object and a `\n` to `out`.
///
/// The line's bytes become `message`; bytes that are not UTF-8 are replaced with U+FFFD and the
/// object then carries `"invalid_utf8": true`. `level` appears only when the agent set one.
pub fn push_line(
    out: &mut Vec<u8>,
    context: LineContext<'_>,
    record: &LogRecord,
) -> Result<(), IngestError> {
    let message = String::from_utf8_lossy(&record.line);
    let invalid_utf8 = matches!(message, Cow::Owned(_));
    let line = Line {
        ts: timestamp::format_ms(record.ts_ms),
        host: context.host,
        agent_id: context.agent_id,
        seq: context.seq,
        service: &record.service,
        source: &record.source,
        message,
        level: record.level.map(|l| l.as_str()),
        invalid_utf8,
    };
    serde_json::to_writer(&mut *out, &line).map_err(|e| IngestError::Encode {
        what: "a log line as JSON",
        message: e.to_string(),
    })?;
    out.push(b'\n');
    Ok(())
}

/// Compress NDJSON into a single zstd frame (with its content size, readable by `zstd -dc`).
pub fn compress(ndjson: &[u8]) -> Result<Vec<u8>, IngestError> {
    zstd::bulk::compress(ndjson, ZSTD_LEVEL).map_err(|e| IngestError::Encode {
        what: "a log object with zstd",
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_proto::Level;
    use serde_json::{Value, json};

    const CONTEXT: LineContext<'static> = LineContext {
        host: "web/1",
        agent_id: "agent",
        seq: 9,
    };

    fn record(line: &[u8], level: Option<Level>) -> LogRecord {
        LogRecord {
            ts_ms: 1_795_474_678_123,
            source: "/var/log/app.log".into(),
            service: "app".into(),
            line: line.to_vec(),
            level,
        }
    }

    fn one_line(record: &LogRecord) -> (String, Value) {
        let mut out = Vec::new();
        push_line(&mut out, CONTEXT, record).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with('\n'));
        assert_eq!(text.matches('\n').count(), 1);
        let value = serde_json::from_str(text.trim_end()).unwrap();
        (text, value)
    }

    #[test]
    fn line_has_the_documented_fields_in_order() {
        let (text, value) = one_line(&record(b"hello \"world\"", Some(Level::Warn)));
        assert_eq!(
            value,
            json!({
                "ts": "2026-11-23T22:57:58.123Z",
                "host": "web/1",
                "agent_id": "agent",
                "seq": 9,
                "service": "app",
                "source": "/var/log/app.log",
                "message": "hello \"world\"",
                "level": "warn",
            })
        );
        assert!(text.starts_with(r#"{"ts":"2026-11-23T22:57:58.123Z","host":"web/1","#));
    }

    #[test]
    fn level_is_absent_when_unknown() {
        let (_, value) = one_line(&record(b"x", None));
        assert!(value.get("level").is_none());
        assert!(value.get("invalid_utf8").is_none());
    }

    #[test]
    fn invalid_utf8_is_replaced_and_flagged() {
        let (_, value) = one_line(&record(b"bad \xff byte", None));
        assert_eq!(value["message"], "bad \u{fffd} byte");
        assert_eq!(value["invalid_utf8"], true);
    }

    #[test]
    fn embedded_newline_stays_inside_one_line() {
        let (_, value) = one_line(&record(b"a\nb", None));
        assert_eq!(value["message"], "a\nb");
    }

    #[test]
    fn compressed_object_is_one_zstd_frame_with_its_size() {
        let data = b"{\"a\":1}\n".repeat(100);
        let compressed = compress(&data).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&compressed).unwrap(),
            Some(data.len() as u64)
        );
        assert_eq!(
            zstd::bulk::decompress(&compressed, data.len()).unwrap(),
            data
        );
    }
}
