//! JSON error replies, and which HTTP status each error of the core becomes.

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::WWW_AUTHENTICATE;
use axum::response::{IntoResponse, Response};
use outpost_proto::DecodeError;
use serde_json::json;

use outpost_sink_core::error::{IngestError, StorageError, chain};

/// An error reply: `status` with body `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// The `error` field.
    pub message: String,
}

impl ApiError {
    /// An error reply with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 413 Payload Too Large.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 500 Internal Server Error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<&IngestError> for ApiError {
    /// Client errors are 400, or 413 when a declared size or count is over a limit; storage
    /// failures are 503 (retry later); the sink's own failures are 500. Agents retry any 5xx.
    fn from(e: &IngestError) -> Self {
        let status = match e {
            IngestError::Decode(
                DecodeError::CompressedTooLarge { .. }
                | DecodeError::DecompressedTooLarge { .. }
                | DecodeError::TooManyRecords { .. },
            ) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Decode(_) | IngestError::Invalid(_) => StatusCode::BAD_REQUEST,
            IngestError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, chain(e))
    }
}

impl From<&StorageError> for ApiError {
    /// 503: the storage may recover.
    fn from(e: &StorageError) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, chain(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.message }));
        if self.status == StatusCode::UNAUTHORIZED {
            (self.status, [(WWW_AUTHENTICATE, "Bearer")], body).into_response()
        } else {
            (self.status, body).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_sink_core::error::InvalidBatch;

    fn status(e: IngestError) -> StatusCode {
        ApiError::from(&e).status
    }

    #[test]
    fn size_limits_are_413_other_decode_errors_400() {
        let limit = |declared| DecodeError::DecompressedTooLarge { declared, limit: 1 };
        assert_eq!(status(limit(2).into()), StatusCode::PAYLOAD_TOO_LARGE);
        let records = DecodeError::TooManyRecords {
            declared: 2,
            limit: 1,
        };
        assert_eq!(status(records.into()), StatusCode::PAYLOAD_TOO_LARGE);
        let compressed = DecodeError::CompressedTooLarge {
            declared: 2,
            limit: 1,
        };
        assert_eq!(status(compressed.into()), StatusCode::PAYLOAD_TOO_LARGE);
        let checksum = DecodeError::ChecksumMismatch {
            expected: 1,
            actual: 2,
        };
        assert_eq!(status(checksum.into()), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(InvalidBatch::SeqTooLarge(u64::MAX).into()),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn storage_is_503_and_encoding_500() {
        let storage = StorageError::Worker("x".into());
        assert_eq!(status(storage.into()), StatusCode::SERVICE_UNAVAILABLE);
        let encode = IngestError::Encode {
            what: "x",
            message: "y".into(),
        };
        assert_eq!(status(encode), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn the_message_is_the_decode_error_display() {
        let e = IngestError::from(DecodeError::UnsupportedVersion(9));
        assert_eq!(ApiError::from(&e).message, "unsupported format version 9");
    }
}
