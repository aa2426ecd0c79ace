//! systemd's notification protocol, tested on the real binary: the test plays the service
//! manager, binding the datagram socket that `NOTIFY_SOCKET` names, and checks the agent says
//! `READY=1` when started, pings `WATCHDOG=1`, brackets a SIGHUP reload with `RELOADING=1` and
//! `READY=1`, and says `STOPPING=1` on SIGTERM.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// The service manager's end.
struct Manager {
    socket: UnixDatagram,
}

impl Manager {
    fn new(socket: UnixDatagram) -> Self {
        // Bounds each receive so the deadline below is checked; not a synchronisation.
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Self { socket }
    }

    /// Receive datagrams until one has the line `line`; return that datagram. Others (such as
    /// watchdog pings) are skipped, so the order of what is waited for is checked too.
    fn wait_for(&self, line: &str) -> String {
        let start = Instant::now();
        let mut buf = vec![0u8; 4096];
        loop {
            assert!(
                start.elapsed() < DEADLINE,
                "no {line:?} from the agent within {DEADLINE:?}"
            );
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let text = String::from_utf8(buf[..n].to_vec()).unwrap();
                    if text.lines().any(|l| l == line) {
                        return text;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("recv: {e}"),
            }
        }
    }
}

/// A config for an agent that follows nothing yet and would send to a port nobody listens on
/// (nothing is ever spooled, so nothing is sent).
fn config(env: &Env) -> std::path::PathBuf {
    env.config("http://127.0.0.1:9", "*.log", "")
}

#[test]
fn ready_watchdog_reload_and_stopping_reach_the_notify_socket() {
    let env = Env::new();
    let cfg = config(&env);
    let path = env.path("notify.sock");
    let manager = Manager::new(UnixDatagram::bind(&path).unwrap());
    let mut agent = start_agent_with_env(
        &cfg,
        &env.path("agent.log"),
        &[
            ("NOTIFY_SOCKET", path.display().to_string()),
            // 200 ms: a ping every 100 ms.
            ("WATCHDOG_USEC", "200000".to_owned()),
        ],
    );

    let ready = manager.wait_for("READY=1");
    assert!(
        ready.contains("STATUS=running: 1 log input(s)"),
        "{ready:?}"
    );
    manager.wait_for("WATCHDOG=1");
    manager.wait_for("WATCHDOG=1");

    agent.signal("-HUP");
    let reloading = manager.wait_for("RELOADING=1");
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"))
        .parse()
        .unwrap();
    // The agent's CLOCK_MONOTONIC reading came before this one.
    let now = outpost_agent::sd_notify::monotonic_usec().unwrap();
    assert!(usec > 0 && usec <= now, "{usec} > {now}");
    let reloaded = manager.wait_for("READY=1");
    assert!(reloaded.contains("configuration reloaded"), "{reloaded:?}");
    // Still pinging after the reload.
    manager.wait_for("WATCHDOG=1");

    agent.signal("-TERM");
    manager.wait_for("STOPPING=1");
    assert_eq!(agent.wait().code(), Some(0));
}

#[test]
fn an_abstract_notify_socket_and_a_rejected_reload() {
    let env = Env::new();
    let cfg = config(&env);
    let name = format!(
        "outpost-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let addr = {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes()).unwrap()
    };
    let manager = Manager::new(UnixDatagram::bind_addr(&addr).unwrap());
    let mut agent = start_agent_with_env(
        &cfg,
        &env.path("agent.log"),
        &[("NOTIFY_SOCKET", format!("@{name}"))],
    );
    manager.wait_for("READY=1");

    // A drop-in with a mistake: the reload is refused, and the agent says it is ready again
    // (with the config it runs).
    let dropins = env.path("agent.d");
    std::fs::create_dir_all(&dropins).unwrap();
    std::fs::write(
        dropins.join("10-bad.toml"),
        "[batch]\nmax_age = \"often\"\n",
    )
    .unwrap();
    agent.signal("-HUP");
    manager.wait_for("RELOADING=1");
    let ready = manager.wait_for("READY=1");
    assert!(ready.contains("rejected"), "{ready:?}");
    let log = wait_for_log(&env.path("agent.log"), "SIGHUP: config rejected");
    assert!(log.contains("10-bad.toml: batch.max_age"), "{log}");

    agent.signal("-TERM");
    manager.wait_for("STOPPING=1");
    assert_eq!(agent.wait().code(), Some(0));
}
