//! The HTTP client (the only file that imports reqwest): POST a frame to `/v1/batches` with the
//! headers a transport adds, and [`HttpSender`], the bearer-token transport of an
//! `outpost-sink`.

use super::classify::classify_http;
use super::transport::{SendError, SetupError};
use crate::config::read_secret;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, DATE};
use std::path::PathBuf;
use std::time::Duration;

/// Content type of a frame on the wire.
pub const FRAME_CONTENT_TYPE: &str = "application/vnd.outpost.frame";

/// An answer other than a transport error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The `Date` header, when the answer was not a success.
    pub date: Option<String>,
    /// The body, when the answer was not a success.
    pub body: String,
}

impl Answer {
    /// What a failed answer says: the status and the start of the body.
    pub fn reason(&self) -> String {
        let t = self.body.trim();
        if t.is_empty() {
            format!("HTTP {}", self.status)
        } else {
            format!(
                "HTTP {}: {}",
                self.status,
                t.chars().take(500).collect::<String>()
            )
        }
    }

    /// `Ok` for a success, else the error its class calls for.
    pub fn into_result(self) -> Result<(), SendError> {
        match classify_http(self.status, &self.body) {
            None => Ok(()),
            Some(class) => Err(SendError::from_class(class, self.status, self.reason())),
        }
    }
}

/// POSTs frames to one URL.
pub struct HttpClient {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl HttpClient {
    /// A client for `url` with a per-request `timeout`.
    pub fn new(url: &url::Url, timeout: Duration) -> Result<Self, SetupError> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("outpost-agent/", env!("CARGO_PKG_VERSION")));
        if url.scheme() == "http" {
            // A plain-HTTP sink (the local one) needs no trust store: do not load the system's
            // certificates (memory and start-up work an idle agent would keep for nothing).
            builder = builder.tls_certs_only(std::iter::empty());
        }
        let client = builder.build().map_err(|e| SetupError {
            key: "url",
            message: format!("cannot build HTTP client: {e}"),
        })?;
        Ok(Self {
            client,
            url: url.clone(),
        })
    }

    /// The URL frames go to.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// POST one frame with extra `headers`. A connection error or timeout is
    /// [`SendError::Retryable`]; any answer is returned.
    pub async fn post(
        &self,
        frame: &bytes::Bytes,
        headers: &[(&str, &str)],
    ) -> Result<Answer, SendError> {
        let mut req = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, FRAME_CONTENT_TYPE)
            // A reference-counted handle, not a copy (retries send it again).
            .body(frame.clone());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| SendError::Retryable(format!("{}: {e}", self.url)))?;
        let status = resp.status();
        if status == StatusCode::OK {
            return Ok(Answer {
                status: 200,
                date: None,
                body: String::new(),
            });
        }
        let date = resp
            .headers()
            .get(DATE)
            .and_then(|d| d.to_str().ok())
            .map(str::to_owned);
        let body = resp.text().await.unwrap_or_default();
        Ok(Answer {
            status: status.as_u16(),
            date,
            body,
        })
    }
}

/// Sends frames to an `outpost-sink` over HTTP(S), with an optional bearer token.
pub struct HttpSender {
    client: HttpClient,
    token_file: Option<PathBuf>,
    token: Option<String>,
}

impl HttpSender {
    /// Build the client and take the token: `token` (a value, from `OUTPOST_SINK_TOKEN`) wins;
    /// else the token file is read.
    pub fn new(
        batches_url: &url::Url,
        token: Option<String>,
        token_file: Option<PathBuf>,
        timeout: Duration,
    ) -> Result<Self, SetupError> {
        let client = HttpClient::new(batches_url, timeout)?;
        let (token, token_file) = match (token, token_file) {
            // A value given directly is not re-read after a 401: there is nothing to re-read.
            (Some(t), _) => (Some(t), None),
            (None, Some(p)) => {
                let t = read_secret(&p).map_err(|message| SetupError {
                    key: "token_file",
                    message,
                })?;
                (Some(t), Some(p))
            }
            (None, None) => (None, None),
        };
        Ok(Self {
            client,
            token_file,
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
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| (AUTHORIZATION.as_str(), b.as_str()))
            .collect();
        self.client.post(frame, &headers).await?.into_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_errors_by_class() {
        let answer = |status: u16, body: &str| Answer {
            status,
            date: None,
            body: body.into(),
        };
        assert_eq!(answer(200, "").into_result(), Ok(()));
        assert!(matches!(
            answer(503, "x").into_result(),
            Err(SendError::Retryable(_))
        ));
        assert!(matches!(
            answer(401, "").into_result(),
            Err(SendError::Unauthorized(_))
        ));
        assert!(matches!(
            answer(403, "").into_result(),
            Err(SendError::Misconfigured(_))
        ));
        assert_eq!(
            answer(400, "{\"error\":\"bad magic\"}").into_result(),
            Err(SendError::Rejected {
                status: 400,
                reason: "HTTP 400: {\"error\":\"bad magic\"}".into()
            })
        );
    }
}
