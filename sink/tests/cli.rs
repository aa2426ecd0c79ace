//! The `outpost-sink` binary: the listening line, signals and startup errors.

// clippy.toml's allow-unwrap-in-tests covers #[test] functions, not these helpers.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_outpost-sink");

fn get_healthz(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serve_announces_the_bound_port_and_exits_0_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .strip_prefix("outpost-sink listening on http://")
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    assert_ne!(addr.port(), 0);

    let response = get_healthz(addr);
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with(r#"{"status":"ok"}"#), "{response}");
    assert!(data.join("metrics.db").is_file());
    assert!(data.join("logs").is_dir());

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "stdout must hold exactly one line");
}

fn failing_start(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn an_empty_or_missing_token_file_fails_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let empty = tmp.path().join("token");
    std::fs::write(&empty, " \n").unwrap();
    let empty = empty.to_str().unwrap();
    let stderr = failing_start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data,
        "--token-file",
        empty,
    ]);
    assert!(
        stderr.contains(empty) && stderr.contains("empty"),
        "{stderr}"
    );

    let missing = tmp.path().join("missing-token");
    let missing = missing.to_str().unwrap();
    let stderr = failing_start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data,
        "--token-file",
        missing,
    ]);
    assert!(stderr.contains(missing), "{stderr}");
}

#[test]
fn a_busy_address_fails_naming_the_address() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = tmp.path().join("data");
    let stderr = failing_start(&["serve", "--listen", &addr, "--data", data.to_str().unwrap()]);
    assert!(stderr.contains(&addr), "{stderr}");
}

#[test]
fn version_prints_the_crate_version() {
    let output = Command::new(BIN).arg("--version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("outpost-sink {}\n", env!("CARGO_PKG_VERSION"))
    );
}
