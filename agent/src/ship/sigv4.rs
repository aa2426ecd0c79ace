//! The Lambda Function URL transport: each frame POSTed like the HTTP transport's, signed with
//! SigV4 (service `lambda`) using credentials from the AWS SDK's standard chain, with the
//! payload's SHA-256 in `x-amz-content-sha256` as Function URLs expect. A signature rejected as
//! expired or not yet current (a skewed local clock) is signed again, at once, with the
//! server's time (see [`SkewClock`]).

use super::classify::{Class, classify_http};
use super::clock::{SkewClock, parse_http_date};
use super::http::HttpClient;
use super::transport::{SendError, SetupError};
use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The signing name of Lambda (Function URLs included).
pub const SERVICE: &str = "lambda";

/// Credentials are fetched again this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// The headers that sign a POST of `body` to `url`: `authorization`, `x-amz-date`,
/// `x-amz-content-sha256` and, with session credentials, `x-amz-security-token`.
pub fn sign_headers(
    url: &str,
    body: &[u8],
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<Vec<(&'static str, String)>, String> {
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new("POST", url, std::iter::empty(), SignableBody::Bytes(body))
        .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let (headers, _params) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name(), h.value().to_owned()))
        .collect())
}

/// Sends frames to a Lambda Function URL, signed with SigV4.
pub struct SigV4Sender {
    client: HttpClient,
    region: String,
    provider: SharedCredentialsProvider,
    cached: Option<Credentials>,
    clock: Arc<SkewClock>,
}

impl SigV4Sender {
    /// A sender using the region and credentials chain of an SDK configuration.
    pub fn from_sdk(
        batches_url: &url::Url,
        sdk: &SdkConfig,
        timeout: Duration,
        clock: Arc<SkewClock>,
    ) -> Result<Self, SetupError> {
        let region = sdk.region().map(ToString::to_string).ok_or(SetupError {
            key: "region",
            message: "no AWS region: set sink.region, AWS_REGION or a profile's region".into(),
        })?;
        let provider = sdk.credentials_provider().ok_or(SetupError {
            key: "kind",
            message: "the AWS SDK configuration has no credentials provider".into(),
        })?;
        Self::new(batches_url, region, provider, timeout, clock)
    }

    /// A sender for `batches_url` signing for `region` with credentials from `provider`.
    pub fn new(
        batches_url: &url::Url,
        region: String,
        provider: SharedCredentialsProvider,
        timeout: Duration,
        clock: Arc<SkewClock>,
    ) -> Result<Self, SetupError> {
        Ok(Self {
            client: HttpClient::new(batches_url, timeout)?,
            region,
            provider,
            cached: None,
            clock,
        })
    }

    /// The clock requests are signed with.
    pub fn clock(&self) -> &Arc<SkewClock> {
        &self.clock
    }

    /// Fetch credentials afresh before the next request (after a 401 or 403).
    pub fn forget_credentials(&mut self) {
        self.cached = None;
    }

    /// Cached credentials, fetched again when missing or about to expire.
    async fn credentials(&mut self) -> Result<Credentials, SendError> {
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|e| e > self.clock.now() + REFRESH_BEFORE_EXPIRY)
        };
        if let Some(c) = self.cached.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        match self.provider.provide_credentials().await {
            Ok(c) => {
                self.cached = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                let reason = format!("AWS credentials: {}", DisplayErrorContext(&e));
                Err(match e {
                    CredentialsError::CredentialsNotLoaded(_)
                    | CredentialsError::InvalidConfiguration(_) => SendError::Misconfigured(reason),
                    _ => SendError::Retryable(reason),
                })
            }
        }
    }

    /// POST one frame, signed; once more at once with the server's time when the signature
    /// was outside the five-minute window.
    pub async fn send(&mut self, frame: &bytes::Bytes) -> Result<(), SendError> {
        let mut corrected = false;
        loop {
            let credentials = self.credentials().await?;
            let headers = sign_headers(
                self.client.url().as_str(),
                frame,
                &credentials,
                &self.region,
                self.clock.now(),
            )
            .map_err(|e| SendError::Misconfigured(format!("cannot sign the request: {e}")))?;
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let answer = self.client.post(frame, &headers).await?;
            let received = SystemTime::now();
            if matches!(answer.status, 401 | 403) {
                self.forget_credentials();
            }
            if !corrected
                && classify_http(answer.status, &answer.body) == Some(Class::ClockSkew)
                && let Some(server) = answer.date.as_deref().and_then(parse_http_date)
            {
                self.clock.correct(server, received);
                corrected = true;
                continue;
            }
            return answer.into_result();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const URL: &str = "https://abc.lambda-url.eu-west-1.on.aws/v1/batches";

    fn header<'a>(headers: &'a [(&str, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_signed_request_names_the_key_date_region_and_service() {
        // 2025-01-02T03:04:05Z
        let time = UNIX_EPOCH + Duration::from_secs(1_735_787_045);
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let h = sign_headers(URL, b"frame", &creds, "eu-west-1", time).unwrap();
        let auth = header(&h, "authorization").unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250102/eu-west-1/lambda/aws4_request, "
            ),
            "{auth}"
        );
        assert!(
            auth.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date"),
            "{auth}"
        );
        assert_eq!(header(&h, "x-amz-date"), Some("20250102T030405Z"));
        // SHA-256 of "frame" (`printf frame | sha256sum`).
        assert_eq!(
            header(&h, "x-amz-content-sha256"),
            Some("9dff50df08c635815f4b19da10f756605a34a79a48d4ba48712782502975a70e")
        );
        assert_eq!(header(&h, "x-amz-security-token"), None);

        let session = Credentials::new("ASIAEXAMPLE", "secret", Some("TOKEN".into()), None, "t");
        let h = sign_headers(URL, b"frame", &session, "eu-west-1", time).unwrap();
        assert_eq!(header(&h, "x-amz-security-token"), Some("TOKEN"));
        assert!(
            header(&h, "authorization")
                .unwrap()
                .contains("x-amz-security-token"),
            "the session token is signed"
        );
    }
}
