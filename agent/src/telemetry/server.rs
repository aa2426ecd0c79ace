//! The local Prometheus endpoint (`telemetry.listen`): `GET /metrics` (the counters in the text
//! exposition format) and `GET /healthz` (200 while the agent runs, 503 once it stops; a JSON
//! body either way). A deliberately small HTTP/1.1 responder: one request per connection,
//! request head capped at [`MAX_REQUEST_BYTES`] and read within [`REQUEST_TIMEOUT`], at most
//! [`MAX_CONNECTIONS`] at once, so a misbehaving client cannot make the agent hold memory.

use super::counters::Counters;
use super::prometheus::{CONTENT_TYPE, render};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Longest request head read.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 8;
/// A request must arrive (and its answer leave) within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What `/healthz` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// HTTP status: 200 running, 503 stopping.
    pub status: u16,
    /// JSON body.
    pub body: String,
}

impl Health {
    /// The health of an agent with these counters.
    pub fn of(counters: &Counters, version: &str) -> Self {
        let s = counters.snapshot();
        let stopping = counters.stopping();
        let body = serde_json::json!({
            "status": if stopping { "stopping" } else { "ok" },
            "version": version,
            "spool_bytes": s.spool_bytes,
            "files_watched": s.files_watched,
            "batches_sent": s.batches_sent,
            "batches_failed": s.batches_failed,
            "last_sent_ms": s.last_sent_ms,
        })
        .to_string();
        Self {
            status: if stopping { 503 } else { 200 },
            body,
        }
    }
}

/// Serve until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, counters: Arc<Counters>, version: &'static str) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, say: wait a little rather than spin.
                tracing::warn!(%error, "telemetry endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let counters = counters.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &counters, version)).await;
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, counters: &Counters, version: &str) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_REQUEST_BYTES {
            let body = "request head too large\n";
            return respond(&mut stream, 431, "text/plain", body, body.len()).await;
        }
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => (200, CONTENT_TYPE, render(&counters.snapshot(), version)),
        ("GET" | "HEAD", "/healthz") => {
            let h = Health::of(counters, version);
            (h.status, "application/json", h.body)
        }
        (_, "/metrics" | "/healthz") => (405, "text/plain", "only GET or HEAD\n".to_owned()),
        _ => (
            404,
            "text/plain",
            "not found: try /metrics or /healthz\n".to_owned(),
        ),
    };
    // A HEAD answer has the GET answer's head, without its body.
    let length = body.len();
    let body = if method == "HEAD" { "" } else { &body };
    respond(&mut stream, status, content_type, body, length).await
}

/// Write the answer: status line, headers (`Content-Length: length`), `body`, then close.
async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &str,
    length: usize,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: std::net::SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_health_and_refuses_the_rest() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        counters.set_spool_bytes(77);
        let task = tokio::spawn(serve(listener, counters.clone(), "0.1.0"));

        let metrics = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
        assert!(metrics.contains("\noutpost_agent_spool_bytes 77\n"));

        let health = get(addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
        assert!(health.contains("\"status\":\"ok\""));

        assert!(
            get(addr, "POST /metrics HTTP/1.1\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 405")
        );
        let head = get(addr, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
        let (head, body) = head.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(body.is_empty(), "{body}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(length > 100, "{head}");
        assert!(
            get(addr, "GET / HTTP/1.1\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 404")
        );

        counters.set_stopping();
        let health = get(addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(health.starts_with("HTTP/1.1 503"), "{health}");
        assert!(health.contains("\"status\":\"stopping\""));
        task.abort();
    }
}
