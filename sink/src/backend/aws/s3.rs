//! Log objects in S3, under the same keys as the local backend's files
//! (`logs/host=H/dt=YYYY-MM-DD/hour=HH/<agent_id>-<seq>.ndjson.zst`), so a re-sent batch
//! overwrites its own object and Athena reads both layouts alike. Every object is written with
//! server-side encryption requested. Dead letters (frames that can never be stored) go under
//! [`DEAD_LETTER_PREFIX`].

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use crate::backend::aws::settings::Encryption;
use crate::backend::aws::{remote, service};
use outpost_sink_core::error::StorageError;
use outpost_sink_core::key::LogObjectKey;
use outpost_sink_core::ports::LogStore;

/// Key prefix of dead letters: frames the sink rejected as malformed and could not hand back
/// to their sender (Kinesis records).
pub const DEAD_LETTER_PREFIX: &str = "dead-letter";

/// Content type of a log object: zstd-compressed NDJSON.
pub const LOG_CONTENT_TYPE: &str = "application/zstd";

/// The S3 log store: one client, one bucket.
#[derive(Debug, Clone)]
pub struct S3Logs {
    client: Client,
    bucket: String,
    encryption: Encryption,
}

impl S3Logs {
    /// A store writing to `bucket` with `encryption` requested on every object.
    pub fn new(client: Client, bucket: String, encryption: Encryption) -> Self {
        Self {
            client,
            bucket,
            encryption,
        }
    }

    /// The bucket written to.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Write `body` under `key`, replacing any object there.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.put_object(key, body, content_type, None).await
    }

    /// Write a dead letter: `body` under `key`, with why it was refused in the object's
    /// `x-amz-meta-reason` (ASCII, at most 1 KB: S3 user metadata).
    pub async fn put_with_reason(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        reason: &str,
    ) -> Result<(), StorageError> {
        let reason: String = reason
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .take(1024)
            .collect();
        self.put_object(key, body, content_type, Some(reason)).await
    }

    async fn put_object(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        reason: Option<String>,
    ) -> Result<(), StorageError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body));
        if let Some(reason) = reason {
            request = request.metadata("reason", reason);
        }
        request = match &self.encryption {
            Encryption::S3Managed => request.server_side_encryption(ServerSideEncryption::Aes256),
            Encryption::Kms { key_id } => request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .set_ssekms_key_id(key_id.clone()),
        };
        request.send().await.map_err(|e| {
            remote(
                service::S3,
                format!("PutObject s3://{}/{key}", self.bucket),
                e,
            )
        })?;
        Ok(())
    }
}

impl LogStore for S3Logs {
    async fn put_log_object(&self, key: &LogObjectKey, body: Vec<u8>) -> Result<(), StorageError> {
        self.put(&key.to_string(), body, LOG_CONTENT_TYPE).await
    }
}

/// The key of a dead letter: `dead-letter/dt=YYYY-MM-DD/<source>/<id>.bin`, where `source`
/// says where it came from (e.g. `kinesis`) and `id` identifies it there (e.g. the shard and
/// sequence number), so a retried dead letter overwrites itself.
pub fn dead_letter_key(date: &str, source: &str, id: &str) -> String {
    format!(
        "{DEAD_LETTER_PREFIX}/dt={date}/{}/{}.bin",
        outpost_sink_core::names::sanitize(source),
        outpost_sink_core::names::sanitize(id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_keys_are_safe_and_stable() {
        assert_eq!(
            dead_letter_key("2026-11-24", "kinesis", "shardId-000000000000/4959/../x"),
            "dead-letter/dt=2026-11-24/kinesis/shardId-000000000000_4959_.__x.bin"
        );
    }
}
