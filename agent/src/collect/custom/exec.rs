//! Running an `[[exec]]` command: argv (no shell), standard input from `/dev/null`, in a
//! process group of its own; its standard output read up to [`MAX_OUTPUT_BYTES`], within a
//! timeout. On timeout, too much output or a stop request the whole group is killed and the
//! command reaped. The only file that spawns processes.

use super::MAX_OUTPUT_BYTES;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, Signal, kill_process_group};
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Most bytes of standard error kept for the report of a failed run.
const MAX_STDERR_KEPT: usize = 4096;
/// Longest wait between two looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// Wait between two looks at a command that closed its output but has not exited yet.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// Why a run's output was discarded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The program could not be started.
    #[error("cannot start: {0}")]
    Spawn(std::io::Error),
    /// It exited unsuccessfully.
    #[error("{status}{}", stderr_note(.stderr))]
    Failed {
        /// How it ended.
        status: ExitStatus,
        /// The first line of its standard error, if any.
        stderr: String,
    },
    /// It ran longer than its timeout and was killed.
    #[error("timed out after {}; killed", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// It printed more than [`MAX_OUTPUT_BYTES`] and was killed.
    #[error("printed more than {MAX_OUTPUT_BYTES} bytes; killed and its output discarded")]
    TooMuchOutput,
    /// Reading its output or waiting for it failed.
    #[error("{0}")]
    Io(std::io::Error),
    /// The agent is stopping; the command was killed.
    #[error("killed: the agent is stopping")]
    Stopped,
}

fn stderr_note(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("; stderr: {s}")
    }
}

/// Run `command` (program and arguments) for at most `timeout`; its standard output, or why
/// there is none. `stop` set makes it kill the command and return at once.
pub fn run(command: &[String], timeout: Duration, stop: &AtomicBool) -> Result<Vec<u8>, ExecError> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| ExecError::Spawn(std::io::Error::other("empty command")))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(ExecError::Spawn)?;
    let deadline = Instant::now() + timeout;
    let result = collect(&mut child, deadline, timeout, stop);
    match result {
        Ok((stdout, stderr)) => match wait(&mut child, deadline, timeout, stop) {
            Ok(status) if status.success() => Ok(stdout),
            Ok(status) => Err(ExecError::Failed {
                status,
                stderr: first_line(&stderr),
            }),
            Err(e) => {
                kill(&mut child);
                Err(e)
            }
        },
        Err(e) => {
            kill(&mut child);
            Err(e)
        }
    }
}

/// Read standard output and error until both are closed.
fn collect(
    child: &mut Child,
    deadline: Instant,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<(Vec<u8>, Vec<u8>), ExecError> {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while stdout.is_some() || stderr.is_some() {
        let slice = next_slice(deadline, timeout, stop)?;
        let ts = Timespec {
            tv_sec: slice.as_secs() as _,
            tv_nsec: slice.subsec_nanos() as _,
        };
        let ready = {
            let mut fds = Vec::with_capacity(2);
            if let Some(o) = &stdout {
                fds.push(PollFd::new(o, PollFlags::IN));
            }
            if let Some(e) = &stderr {
                fds.push(PollFd::new(e, PollFlags::IN));
            }
            match poll(&mut fds, Some(&ts)) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(ExecError::Io(e.into())),
            }
            let mut r = fds.iter().map(|f| !f.revents().is_empty());
            let o = stdout.is_some() && r.next().unwrap_or(false);
            let e = stderr.is_some() && r.next().unwrap_or(false);
            (o, e)
        };
        if ready.0
            && let Some(o) = &mut stdout
        {
            match o.read(&mut buf) {
                Ok(0) => stdout = None,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.len() > MAX_OUTPUT_BYTES {
                        return Err(ExecError::TooMuchOutput);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ExecError::Io(e)),
            }
        }
        if ready.1
            && let Some(e) = &mut stderr
        {
            match e.read(&mut buf) {
                Ok(0) => stderr = None,
                Ok(n) => {
                    // Kept up to a bound; the rest is read and dropped.
                    let room = MAX_STDERR_KEPT.saturating_sub(err.len());
                    err.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ExecError::Io(e)),
            }
        }
    }
    Ok((out, err))
}

/// How long to wait next: until the deadline, at most [`STOP_CHECK`]; an error once the
/// deadline has passed or a stop is requested.
fn next_slice(
    deadline: Instant,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<Duration, ExecError> {
    if stop.load(Ordering::Relaxed) {
        return Err(ExecError::Stopped);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ExecError::Timeout(timeout));
    }
    Ok(left.min(STOP_CHECK))
}

/// Wait for the command to exit (its output is closed, so this is usually at once).
fn wait(
    child: &mut Child,
    deadline: Instant,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<ExitStatus, ExecError> {
    loop {
        if let Some(status) = child.try_wait().map_err(ExecError::Io)? {
            return Ok(status);
        }
        let slice = next_slice(deadline, timeout, stop)?;
        std::thread::sleep(slice.min(EXIT_POLL));
    }
}

/// Kill the command's process group and reap the command.
fn kill(child: &mut Child) {
    let pid = Pid::from_child(child);
    if let Err(error) = kill_process_group(pid, Signal::KILL) {
        // Gone already (ESRCH); or not ours: kill the child at least.
        tracing::debug!(%error, pid = pid.as_raw_nonzero().get(), "killpg failed");
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// The first non-empty line of `bytes`, at most 200 characters.
fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }
    fn go() -> AtomicBool {
        AtomicBool::new(false)
    }
    const LONG: Duration = Duration::from_secs(30);

    #[test]
    fn output_of_a_successful_command() {
        let out = run(
            &cmd(&["/bin/sh", "-c", "echo a 1; echo b 2 >&2; echo c 3"]),
            LONG,
            &go(),
        )
        .unwrap();
        assert_eq!(out, b"a 1\nc 3\n");
    }

    #[test]
    fn a_failure_names_its_status_and_stderr() {
        let e = run(
            &cmd(&["/bin/sh", "-c", "echo out; echo 'it broke' >&2; exit 3"]),
            LONG,
            &go(),
        )
        .unwrap_err();
        assert!(matches!(e, ExecError::Failed { .. }), "{e:?}");
        let shown = e.to_string();
        assert!(
            shown.contains("exit status: 3") && shown.contains("stderr: it broke"),
            "{shown}"
        );
        let e = run(&cmd(&["false"]), LONG, &go()).unwrap_err();
        assert_eq!(e.to_string(), "exit status: 1");
    }

    #[test]
    fn a_missing_program_cannot_start() {
        let e = run(&cmd(&["/nonexistent/outpost-probe"]), LONG, &go()).unwrap_err();
        assert!(matches!(e, ExecError::Spawn(_)), "{e:?}");
        assert!(e.to_string().starts_with("cannot start: "), "{e}");
    }

    /// Whether process `pid` is running (a zombie is dead: killed, waiting for its reaper).
    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .is_some_and(|zombie| !zombie)
    }

    #[test]
    fn a_timeout_kills_the_whole_group() {
        // The shell starts a grandchild holding the pipe open; both must go.
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let e = run(
            &cmd(&["/bin/sh", "-c", &script]),
            Duration::from_secs(2),
            &go(),
        )
        .unwrap_err();
        assert!(matches!(e, ExecError::Timeout(_)), "{e:?}");
        assert_eq!(e.to_string(), "timed out after 2s; killed");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let pid = pid.trim();
        // SIGKILL is delivered at once; the orphan dies soon after.
        let start = Instant::now();
        while alive(pid) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "grandchild {pid} survived"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn too_much_output_is_discarded() {
        let e = run(&cmd(&["/bin/sh", "-c", "yes metric_line_1"]), LONG, &go()).unwrap_err();
        assert!(matches!(e, ExecError::TooMuchOutput), "{e:?}");
    }

    #[test]
    fn a_stop_request_kills_the_command() {
        let stop = AtomicBool::new(true);
        let e = run(&cmd(&["sleep", "30"]), LONG, &stop).unwrap_err();
        assert!(matches!(e, ExecError::Stopped), "{e:?}");
    }

    #[test]
    fn a_command_that_closes_its_output_early_is_still_awaited() {
        let out = run(
            &cmd(&["/bin/sh", "-c", "echo m 1; exec >&- 2>&-; sleep 0.2"]),
            LONG,
            &go(),
        )
        .unwrap();
        assert_eq!(out, b"m 1\n");
    }
}
