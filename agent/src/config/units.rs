//! Human-friendly durations ("500ms", "10s", "5m") and sizes ("512KiB", "1MiB").

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A size as written in the config: a bare integer (bytes) or a string with a unit.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SizeValue {
    /// Bytes.
    Bytes(u64),
    /// A string such as `"1MiB"`.
    Text(String),
}

impl SizeValue {
    /// Resolve to bytes, or explain why not.
    pub fn bytes(&self) -> Result<u64, String> {
        match self {
            SizeValue::Bytes(b) => Ok(*b),
            SizeValue::Text(s) => parse_size(s),
        }
    }
}

/// Parse a size: an integer followed by an optional unit `B`, `KB`, `MB`, `GB` (powers of 1000)
/// or `KiB`, `MiB`, `GiB` (powers of 1024). Spaces between number and unit are allowed.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "invalid size {text:?}: expected a number and a unit such as \"512KiB\" or \"1MiB\""
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {text:?}: number out of range"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size {text:?}: unknown unit {other:?} (use B, KB, MB, GB, KiB, MiB or GiB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {text:?}: out of range"))
}

/// Parse a duration such as `"500ms"`, `"10s"`, `"5m"`, `"1h 30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?}: {e} (use a number and a unit, e.g. \"500ms\", \"10s\", \"5m\")")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1024 * 1024));
        assert_eq!(parse_size("1 MB"), Ok(1_000_000));
        assert_eq!(parse_size("42"), Ok(42));
        assert_eq!(parse_size("42B"), Ok(42));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("1 mib").is_err());
        assert!(parse_size("-1KiB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
        assert!(parse_size("18446744073709551615GiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn size_value_accepts_integers_and_strings() {
        assert_eq!(SizeValue::Bytes(7).bytes(), Ok(7));
        assert_eq!(SizeValue::Text("2KiB".into()).bytes(), Ok(2048));
    }
}
