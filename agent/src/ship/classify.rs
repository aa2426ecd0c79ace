//! Which failures are retried and which frames are dead-lettered: one table for every transport,
//! as pure functions of what the sink answered (docs/configuration.md shows the same table).

/// What to do about a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Retry with backoff and jitter: connection errors, timeouts, 408, 429, 5xx, throttling,
    /// expired credentials, a per-record `InternalFailure`.
    Retry,
    /// A 401 from an `outpost-sink`: re-read the token file (it may have been rotated), then
    /// retry with backoff.
    ReloadToken,
    /// The signature fell outside SigV4's five-minute window: correct the clock from the
    /// server's `Date` and retry at once (then as [`Class::Retry`]).
    ClockSkew,
    /// The sink refuses the agent, not the data (403 access denied, a missing stream or
    /// endpoint, no credentials): retry with backoff, log at error every time, never
    /// dead-letter. Nothing is lost while an operator fixes IAM or the config.
    Misconfigured,
    /// The frame itself can never be accepted (400, 413, `ValidationException`): keep it as a
    /// dead letter and go on.
    DeadLetter,
}

/// Error codes of throttling: retried with backoff.
const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "ProvisionedThroughputExceededException",
    "KMSThrottlingException",
    "LimitExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
];

/// Error codes of transient failures on the service's side, or of credentials that expired
/// (a fresh set is fetched before the retry): retried with backoff.
const TRANSIENT: &[&str] = &[
    "InternalFailure",
    "InternalServerError",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ResourceInUseException",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Error codes of a clock outside the signature's window.
const SKEW: &[&str] = &["RequestTimeTooSkewed", "RequestExpired"];

/// Error codes of problems only an operator can fix (IAM, a missing stream, KMS key state).
const MISCONFIGURED: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "ResourceNotFoundException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "NotAuthorized",
    "OptInRequired",
    "KMSAccessDeniedException",
    "KMSDisabledException",
    "KMSNotFoundException",
    "KMSInvalidStateException",
    "KMSOptInRequired",
];

/// Error codes that are about the data of the request.
const DATA: &[&str] = &[
    "ValidationException",
    "InvalidArgumentException",
    "SerializationException",
];

/// Whether a message says the signature is outside SigV4's window (too old or too new).
pub fn is_skew_message(text: &str) -> bool {
    [
        "Signature expired",
        "Signature not yet current",
        "RequestTimeTooSkewed",
    ]
    .iter()
    .any(|m| text.contains(m))
}

/// Whether a message says the credentials (session token) expired.
fn is_expired_token_message(text: &str) -> bool {
    text.contains("security token included in the request is expired")
        || text.contains("ExpiredToken")
}

/// An HTTP answer from an `outpost-sink` or a Lambda Function URL; `None` for success.
pub fn classify_http(status: u16, body: &str) -> Option<Class> {
    Some(match status {
        200..=299 => return None,
        401 => Class::ReloadToken,
        403 if is_skew_message(body) => Class::ClockSkew,
        403 if is_expired_token_message(body) => Class::Retry,
        // 403: IAM refuses the caller; 404: no sink at that URL; 3xx: a URL that moved.
        300..=399 | 403 | 404 => Class::Misconfigured,
        408 | 429 | 500..=599 => Class::Retry,
        400..=499 => Class::DeadLetter,
        _ => Class::Retry,
    })
}

/// A failed AWS API call (a whole `PutRecords`), by HTTP status and error code.
pub fn classify_aws(status: u16, code: Option<&str>, message: &str) -> Class {
    let is = |list: &[&str]| code.is_some_and(|c| list.contains(&c));
    if is(THROTTLING) {
        Class::Retry
    } else if is(SKEW) || ((status == 400 || status == 403) && is_skew_message(message)) {
        Class::ClockSkew
    } else if is(TRANSIENT) || is_expired_token_message(message) {
        Class::Retry
    } else if is(MISCONFIGURED) {
        Class::Misconfigured
    } else if is(DATA) {
        Class::DeadLetter
    } else {
        match status {
            401 | 403 | 404 => Class::Misconfigured,
            408 | 429 | 500..=599 => Class::Retry,
            400..=499 => Class::DeadLetter,
            _ => Class::Retry,
        }
    }
}

/// One record that `PutRecords` did not take, by its `ErrorCode`. Never dead-lettered: the
/// codes AWS documents are throttling, `InternalFailure` and KMS key problems.
pub fn classify_record(code: &str) -> Class {
    if MISCONFIGURED.contains(&code) {
        Class::Misconfigured
    } else {
        Class::Retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Class::*;

    #[test]
    fn http_answers() {
        let table: &[(u16, &str, Option<Class>)] = &[
            (200, "", None),
            (204, "", None),
            (401, "", Some(ReloadToken)),
            (403, r#"{"Message":"Forbidden"}"#, Some(Misconfigured)),
            (
                403,
                r#"{"message":"Signature expired: 20250101T000000Z is now earlier than 20250101T001000Z (20250101T001500Z - 5 min.)"}"#,
                Some(ClockSkew),
            ),
            (
                403,
                r#"{"message":"Signature not yet current: 20250101T002000Z is still later than 20250101T001500Z (20250101T001000Z + 5 min.)"}"#,
                Some(ClockSkew),
            ),
            (
                403,
                r#"{"message":"The security token included in the request is expired"}"#,
                Some(Retry),
            ),
            (404, "", Some(Misconfigured)),
            (301, "", Some(Misconfigured)),
            (408, "", Some(Retry)),
            (429, "", Some(Retry)),
            (500, "", Some(Retry)),
            (502, "", Some(Retry)),
            (503, "", Some(Retry)),
            (400, r#"{"error":"bad magic"}"#, Some(DeadLetter)),
            (413, "", Some(DeadLetter)),
            (422, "", Some(DeadLetter)),
        ];
        for &(status, body, want) in table {
            assert_eq!(classify_http(status, body), want, "{status} {body}");
        }
    }

    #[test]
    fn aws_errors() {
        let table: &[(u16, Option<&str>, &str, Class)] = &[
            (
                400,
                Some("ProvisionedThroughputExceededException"),
                "",
                Retry,
            ),
            (400, Some("ThrottlingException"), "", Retry),
            (400, Some("KMSThrottlingException"), "", Retry),
            (400, Some("LimitExceededException"), "", Retry),
            (500, Some("InternalFailure"), "", Retry),
            (503, None, "", Retry),
            (400, Some("ExpiredTokenException"), "", Retry),
            (
                400,
                Some("ResourceInUseException"),
                "stream is UPDATING",
                Retry,
            ),
            (
                400,
                Some("InvalidSignatureException"),
                "Signature expired: 20250101T000000Z is now earlier than ...",
                ClockSkew,
            ),
            (403, Some("RequestTimeTooSkewed"), "", ClockSkew),
            (
                400,
                Some("InvalidSignatureException"),
                "wrong secret",
                Misconfigured,
            ),
            (400, Some("AccessDeniedException"), "", Misconfigured),
            (
                400,
                Some("ResourceNotFoundException"),
                "Stream x not found",
                Misconfigured,
            ),
            (400, Some("UnrecognizedClientException"), "", Misconfigured),
            (400, Some("KMSAccessDeniedException"), "", Misconfigured),
            (403, None, "", Misconfigured),
            (
                400,
                Some("ValidationException"),
                "Member must have length <= 1048576",
                DeadLetter,
            ),
            (400, Some("InvalidArgumentException"), "", DeadLetter),
            (413, None, "", DeadLetter),
            (400, Some("SomethingNew"), "", DeadLetter),
            (0, None, "", Retry),
        ];
        for &(status, code, message, want) in table {
            assert_eq!(
                classify_aws(status, code, message),
                want,
                "{status} {code:?}"
            );
        }
    }

    #[test]
    fn failed_records_are_never_dead_lettered() {
        assert_eq!(
            classify_record("ProvisionedThroughputExceededException"),
            Retry
        );
        assert_eq!(classify_record("InternalFailure"), Retry);
        assert_eq!(classify_record("KMSThrottlingException"), Retry);
        assert_eq!(classify_record("KMSAccessDeniedException"), Misconfigured);
        assert_eq!(classify_record("KMSDisabledException"), Misconfigured);
        assert_eq!(classify_record("NewCode"), Retry);
    }
}
