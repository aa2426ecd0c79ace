//! The HTTP transport (the only file that imports reqwest): POST a frame to `/v1/batches` with
//! an optional bearer token, and classify the answer.

use crate::config::{SinkConfig, read_secret};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use std::path::PathBuf;

/// Content type of a frame on the wire.
pub const FRAME_CONTENT_TYPE: &str = "application/vnd.outpost.frame";

/// How a send failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// Worth retrying: connection errors, timeouts, 429, 5xx, 401 (token may be rotating).
    #[error("retryable: {0}")]
    Retryable(String),
    /// The sink refused the batch for good (400, 413, other 4xx): retrying cannot help.
    #[error("rejected with {status}: {reason}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The sink's reason.
        reason: String,
    },
}

/// Classify a response status: `None` for success.
pub fn classify(status: u16, body: &str) -> Option<SendError> {
    let reason = || {
        let t = body.trim();
        if t.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {}", t.chars().take(500).collect::<String>())
        }
    };
    match status {
        200..=299 => None,
        401 | 408 | 429 | 500..=599 => Some(SendError::Retryable(reason())),
        _ => Some(SendError::Rejected {
            status,
            reason: reason(),
        }),
    }
}

/// Sends frames to an `outpost-sink` over HTTP(S).
pub struct HttpSender {
    client: reqwest::Client,
    url: reqwest::Url,
    token_file: Option<PathBuf>,
    token: Option<String>,
}

/// The HTTP client could not be built or the token could not be read.
#[derive(Debug, thiserror::Error)]
#[error("sink.{key}: {message}")]
pub struct SetupError {
    key: &'static str,
    message: String,
}

impl HttpSender {
    /// Build the client and read the token.
    pub fn new(cfg: &SinkConfig) -> Result<Self, SetupError> {
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .user_agent(concat!("outpost-agent/", env!("CARGO_PKG_VERSION")));
        if cfg.batches_url.scheme() == "http" {
            // A plain-HTTP sink (the local one) needs no trust store: do not load the system's
            // certificates (memory and start-up work an idle agent would keep for nothing).
            builder = builder.tls_certs_only(std::iter::empty());
        }
        let client = builder.build().map_err(|e| SetupError {
            key: "url",
            message: format!("cannot build HTTP client: {e}"),
        })?;
        let token = match &cfg.token_file {
            Some(p) => Some(read_secret(p).map_err(|message| SetupError {
                key: "token_file",
                message,
            })?),
            None => None,
        };
        Ok(Self {
            client,
            url: cfg.batches_url.clone(),
            token_file: cfg.token_file.clone(),
            token,
        })
    }

    /// Re-read the token file (after a 401: the token may have been rotated).
    pub fn reload_token(&mut self) {
        if let Some(p) = &self.token_file {
            match read_secret(p) {
                Ok(t) => self.token = Some(t),
                Err(error) => tracing::warn!(%error, "cannot re-read the sink token"),
            }
        }
    }

    /// POST one frame.
    pub async fn send(&self, frame: &bytes::Bytes) -> Result<(), SendError> {
        let mut req = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, FRAME_CONTENT_TYPE)
            // A reference-counted handle, not a copy (retries send it again).
            .body(frame.clone());
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| SendError::Retryable(format!("{}: {e}", self.url)))?;
        let status = resp.status();
        if status == StatusCode::OK {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        match classify(status.as_u16(), &body) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(200, ""), None);
        assert!(matches!(classify(503, "x"), Some(SendError::Retryable(_))));
        assert!(matches!(classify(429, ""), Some(SendError::Retryable(_))));
        assert!(matches!(classify(401, ""), Some(SendError::Retryable(_))));
        assert_eq!(
            classify(400, "{\"error\":\"bad magic\"}"),
            Some(SendError::Rejected {
                status: 400,
                reason: "HTTP 400: {\"error\":\"bad magic\"}".into()
            })
        );
        assert!(matches!(
            classify(413, ""),
            Some(SendError::Rejected { status: 413, .. })
        ));
    }
}
