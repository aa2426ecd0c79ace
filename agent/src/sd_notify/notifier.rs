//! Sending notifications to the service manager: one unbound, non-blocking datagram socket.
//! Without `NOTIFY_SOCKET` every call is a no-op; a failed send is logged once and never stops
//! the agent.

use super::protocol::{Message, Target, format, monotonic_usec, target, watchdog_interval};
use std::ffi::OsString;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Tells systemd how the agent is doing. Cheap to clone; a disabled one does nothing.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    socket: UnixDatagram,
    addr: SocketAddr,
    watchdog: Option<Duration>,
    /// A send failed (and was logged): later failures are not.
    failed: AtomicBool,
}

impl Notifier {
    /// Every call a no-op (not run by systemd, or tests).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` as `env` gives them (the process
    /// environment in the binary). Disabled, with a warning, when the socket is unusable.
    pub fn from_env(env: &dyn Fn(&str) -> Option<OsString>) -> Self {
        let raw = env("NOTIFY_SOCKET");
        let Some(to) = target(raw.as_deref()) else {
            if raw.is_some_and(|r| !r.is_empty()) {
                tracing::warn!(
                    notify_socket = ?env("NOTIFY_SOCKET"),
                    "NOTIFY_SOCKET is not a path or an abstract socket name; not notifying systemd"
                );
            }
            return Self::disabled();
        };
        let addr = match &to {
            Target::Path(p) => SocketAddr::from_pathname(p),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name)
            }
        };
        let socket = UnixDatagram::unbound().and_then(|s| s.set_nonblocking(true).map(|()| s));
        match (addr, socket) {
            (Ok(addr), Ok(socket)) => Self {
                inner: Some(Arc::new(Inner {
                    socket,
                    addr,
                    watchdog: watchdog_interval(
                        env("WATCHDOG_USEC").as_deref(),
                        env("WATCHDOG_PID").as_deref(),
                        std::process::id(),
                    ),
                    failed: AtomicBool::new(false),
                })),
            },
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(%error, target = ?to, "cannot use NOTIFY_SOCKET; not notifying systemd");
                Self::disabled()
            }
        }
    }

    /// Whether notifications go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// How often [`Notifier::watchdog`] must be called: half of `WATCHDOG_USEC`; `None` when
    /// systemd does not watch this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.inner.as_ref()?.watchdog
    }

    /// Send `messages` in one datagram.
    pub fn send(&self, messages: &[Message]) {
        let Some(inner) = &self.inner else { return };
        let text = format(messages);
        if let Err(error) = inner.socket.send_to_addr(text.as_bytes(), &inner.addr)
            && !inner.failed.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(%error, "cannot notify systemd (logged once)");
        }
    }

    /// `READY=1`: started, or a reload is done; `status` for `systemctl status`.
    pub fn ready(&self, status: impl Into<String>) {
        self.send(&[Message::Ready, Message::Status(status.into())]);
    }

    /// `RELOADING=1` with the monotonic clock: a reload begins. Follow it with
    /// [`Notifier::ready`].
    pub fn reloading(&self) {
        if !self.is_enabled() {
            return;
        }
        self.send(&[
            Message::Reloading {
                monotonic_usec: monotonic_usec(),
            },
            Message::Status("reloading the configuration".to_owned()),
        ]);
    }

    /// `STOPPING=1`: shutdown has begun.
    pub fn stopping(&self, status: impl Into<String>) {
        self.send(&[Message::Stopping, Message::Status(status.into())]);
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) {
        self.send(&[Message::Watchdog]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_socket_nothing_is_sent_and_nothing_fails() {
        let n = Notifier::from_env(&|_| None);
        assert!(!n.is_enabled());
        assert_eq!(n.watchdog_interval(), None);
        n.ready("x");
        n.reloading();
        n.watchdog();
    }

    #[test]
    fn messages_arrive_at_a_path_socket_and_a_missing_one_is_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let env = |k: &str| match k {
            "NOTIFY_SOCKET" => Some(path.clone().into_os_string()),
            "WATCHDOG_USEC" => Some(OsString::from("2000000")),
            _ => None,
        };
        let n = Notifier::from_env(&env);
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(1)));
        n.ready("running");
        let mut buf = [0u8; 512];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=running\n");
        n.reloading();
        let len = listener.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..len]).unwrap();
        assert!(text.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{text}");

        drop(listener);
        std::fs::remove_file(&path).unwrap();
        // The socket is gone: sends fail, quietly after the first, and nothing panics.
        n.watchdog();
        n.watchdog();
        assert!(n.inner.as_ref().unwrap().failed.load(Ordering::Relaxed));
    }
}
