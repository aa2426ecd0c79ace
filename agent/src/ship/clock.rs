//! The clock AWS requests are signed with: the local clock plus an offset learnt from the
//! server's `Date` when AWS rejects a signature as expired or not yet current (SigV4 accepts
//! ±5 minutes, and the AWS SDK for Rust does not correct a skewed clock when it signs).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

/// Local time plus a correction, shared by every request of a transport.
#[derive(Debug, Default)]
pub struct SkewClock {
    /// Server time minus local time, in milliseconds.
    offset_ms: AtomicI64,
}

impl SkewClock {
    /// The corrected time.
    pub fn now(&self) -> SystemTime {
        shift(SystemTime::now(), self.offset_ms())
    }

    /// The correction in force: server time minus local time, in milliseconds.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Learn the correction from a server's time `server` read from an answer received at
    /// local time `local`; logs it (one line). Returns the new offset in milliseconds.
    pub fn correct(&self, server: SystemTime, local: SystemTime) -> i64 {
        let offset = match server.duration_since(local) {
            Ok(ahead) => i64::try_from(ahead.as_millis()).unwrap_or(i64::MAX),
            Err(behind) => -i64::try_from(behind.duration().as_millis()).unwrap_or(i64::MAX),
        };
        self.offset_ms.store(offset, Ordering::Relaxed);
        let seconds = (offset as f64 / 1000.0).round() as i64;
        tracing::warn!(
            offset_ms = offset,
            "clock skew of {seconds:+} s against AWS; signing with the server's time"
        );
        offset
    }
}

/// `t` moved by `ms` milliseconds.
fn shift(t: SystemTime, ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 { t + d } else { t - d }
}

/// Parse an HTTP `Date` header (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    let t =
        time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc2822)
            .ok()?;
    Some(SystemTime::from(t))
}

/// A [`SkewClock`] as the AWS SDK's time source (what its signer reads).
#[derive(Debug, Clone)]
pub struct SdkClock(pub Arc<SkewClock>);

impl aws_smithy_async::time::TimeSource for SdkClock {
    fn now(&self) -> SystemTime {
        self.0.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn http_dates_parse() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 784_111_777);
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn the_correction_follows_the_server_both_ways() {
        let clock = SkewClock::default();
        assert_eq!(clock.offset_ms(), 0);
        let local = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            clock.correct(local + Duration::from_secs(412), local),
            412_000
        );
        let ahead = clock.now().duration_since(SystemTime::now()).unwrap();
        assert!(ahead > Duration::from_secs(411) && ahead < Duration::from_secs(413));
        assert_eq!(
            clock.correct(local - Duration::from_secs(90), local),
            -90_000
        );
        let behind = SystemTime::now().duration_since(clock.now()).unwrap();
        assert!(behind > Duration::from_secs(89) && behind < Duration::from_secs(91));
    }
}
