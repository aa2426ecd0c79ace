//! The pure part of `sd_notify`: what to send, where to, and how often to ping the watchdog.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `READY=1`: started, or done reloading.
    Ready,
    /// `RELOADING=1` with `MONOTONIC_USEC=` (when the clock could be read).
    Reloading {
        /// `CLOCK_MONOTONIC` in microseconds when the reload began.
        monotonic_usec: Option<u64>,
    },
    /// `STOPPING=1`: shutdown has begun.
    Stopping,
    /// `WATCHDOG=1`: still alive.
    Watchdog,
    /// `STATUS=...`: one line for `systemctl status`.
    Status(String),
}

/// The datagram for `messages`: one `KEY=VALUE` line each. A status is kept to one line.
pub fn format(messages: &[Message]) -> String {
    let mut out = String::new();
    for m in messages {
        match m {
            Message::Ready => out += "READY=1\n",
            Message::Reloading { monotonic_usec } => {
                out += "RELOADING=1\n";
                if let Some(us) = monotonic_usec {
                    out += &format!("MONOTONIC_USEC={us}\n");
                }
            }
            Message::Stopping => out += "STOPPING=1\n",
            Message::Watchdog => out += "WATCHDOG=1\n",
            Message::Status(s) => {
                let line: String = s
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                out += &format!("STATUS={line}\n");
            }
        }
    }
    out
}

/// Where `NOTIFY_SOCKET` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A socket file (an absolute path).
    Path(std::path::PathBuf),
    /// A Linux abstract socket: the name after the leading `@`.
    Abstract(Vec<u8>),
}

/// Parse `NOTIFY_SOCKET`: `/path` or `@abstract-name`. `None` for anything else (unset,
/// empty, relative, or a kind this agent does not speak, such as `vsock:`).
pub fn target(notify_socket: Option<&OsStr>) -> Option<Target> {
    let bytes = notify_socket?.as_bytes();
    match bytes.first()? {
        b'/' => Some(Target::Path(OsStr::from_bytes(bytes).into())),
        b'@' if bytes.len() > 1 => Some(Target::Abstract(bytes[1..].to_vec())),
        _ => None,
    }
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, as systemd advises, when it is set
/// to a positive number and `WATCHDOG_PID` is unset or names `pid` (the variables may have been
/// inherited by a process the service manager does not watch).
pub fn watchdog_interval(
    usec: Option<&OsStr>,
    watchdog_pid: Option<&OsStr>,
    pid: u32,
) -> Option<Duration> {
    let number = |v: &OsStr| {
        std::str::from_utf8(v.as_bytes())
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    };
    if let Some(p) = watchdog_pid
        && number(p) != Some(u64::from(pid))
    {
        return None;
    }
    let usec = number(usec?).filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// `CLOCK_MONOTONIC` in microseconds, as systemd wants it in `MONOTONIC_USEC` (read with
/// rustix's safe `clock_gettime`; `Instant` does not expose its value).
pub fn monotonic_usec() -> Option<u64> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(t.tv_sec).ok()?;
    let nanos = u64::try_from(t.tv_nsec).ok()?;
    secs.checked_mul(1_000_000)?.checked_add(nanos / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn messages_are_key_value_lines() {
        assert_eq!(format(&[Message::Ready]), "READY=1\n");
        assert_eq!(
            format(&[
                Message::Reloading {
                    monotonic_usec: Some(1_234_567)
                },
                Message::Status("reloading\nthe config".into())
            ]),
            "RELOADING=1\nMONOTONIC_USEC=1234567\nSTATUS=reloading the config\n"
        );
        assert_eq!(
            format(&[Message::Reloading {
                monotonic_usec: None
            }]),
            "RELOADING=1\n"
        );
        assert_eq!(
            format(&[Message::Stopping, Message::Watchdog]),
            "STOPPING=1\nWATCHDOG=1\n"
        );
    }

    #[test]
    fn notify_socket_paths_and_abstract_names() {
        assert_eq!(
            target(os("/run/systemd/notify")),
            Some(Target::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            target(os("@/org/freedesktop/systemd1/notify/42")),
            Some(Target::Abstract(
                b"/org/freedesktop/systemd1/notify/42".to_vec()
            ))
        );
        for unusable in ["", "@", "relative/sock", "vsock:2:1234"] {
            assert_eq!(target(os(unusable)), None, "{unusable:?}");
        }
        assert_eq!(target(None), None);
    }

    #[test]
    fn the_watchdog_pings_at_half_its_timeout_for_the_right_pid() {
        let half = Some(Duration::from_secs(15));
        assert_eq!(watchdog_interval(os("30000000"), None, 7), half);
        assert_eq!(watchdog_interval(os("30000000"), os("7"), 7), half);
        assert_eq!(watchdog_interval(os("30000000"), os("8"), 7), None);
        assert_eq!(watchdog_interval(os("30000000"), os("x"), 7), None);
        assert_eq!(
            watchdog_interval(os("200000"), None, 7),
            Some(Duration::from_millis(100))
        );
        for bad in ["0", "", "-5", "soon"] {
            assert_eq!(watchdog_interval(os(bad), None, 7), None, "{bad:?}");
        }
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    #[test]
    fn the_clock_is_monotonic_not_wall_time() {
        // CLOCK_MONOTONIC counts from boot and never passes CLOCK_BOOTTIME (/proc/uptime),
        // while the wall clock (CLOCK_REALTIME) is decades of microseconds ahead of both.
        let us = monotonic_usec().unwrap();
        let uptime = std::fs::read_to_string("/proc/uptime").unwrap();
        let boot_s: f64 = uptime.split_whitespace().next().unwrap().parse().unwrap();
        assert!(us > 0);
        assert!(
            (us as f64) <= (boot_s + 1.0) * 1e6,
            "{us} µs, uptime {boot_s} s"
        );
        assert!(monotonic_usec().unwrap() >= us);
    }
}
