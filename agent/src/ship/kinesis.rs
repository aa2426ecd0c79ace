//! The Kinesis transport (the only file that imports aws-sdk-kinesis): `PutRecords` of up to
//! 500 frames and 5 MiB a call, one frame per record, the agent id as partition key (so one
//! agent's records keep their order on one shard). Entries that failed are reported one by one
//! (by their `ErrorCode`) so that only they are sent again.

use super::classify::{Class, classify_aws, classify_record};
use super::clock::{SkewClock, parse_http_date};
use super::transport::{Failed, GroupLimits, SendError, SetupError};
use crate::config::KinesisStream;
use crate::config::limits::{
    KINESIS_MAX_CALL_BYTES, KINESIS_MAX_PARTITION_KEY_BYTES, KINESIS_MAX_RECORD_BYTES,
    KINESIS_MAX_RECORDS_PER_CALL,
};
use aws_config::SdkConfig;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::put_records::{PutRecordsError, PutRecordsOutput};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use bytes::Bytes;
use std::sync::Arc;
use std::time::SystemTime;

/// Sends frames to a Kinesis data stream.
pub struct KinesisSender {
    client: Client,
    stream: KinesisStream,
    partition_key: String,
    clock: Arc<SkewClock>,
}

impl KinesisSender {
    /// A sender for `stream` with the SDK configuration `sdk` (signed with `clock`), the agent
    /// id `agent_id` as partition key.
    pub fn new(
        sdk: &SdkConfig,
        stream: KinesisStream,
        agent_id: &str,
        clock: Arc<SkewClock>,
    ) -> Result<Self, SetupError> {
        if agent_id.is_empty() || agent_id.len() > KINESIS_MAX_PARTITION_KEY_BYTES {
            return Err(SetupError {
                key: "kind",
                message: format!(
                    "the agent id {agent_id:?} cannot be a Kinesis partition key (1 to 128 characters)"
                ),
            });
        }
        Ok(Self {
            client: Client::new(sdk),
            stream,
            partition_key: agent_id.to_owned(),
            clock,
        })
    }

    /// Up to 500 records and 5 MiB (data and partition keys) a call.
    pub fn limits(&self) -> GroupLimits {
        GroupLimits {
            max_entries: KINESIS_MAX_RECORDS_PER_CALL,
            max_bytes: KINESIS_MAX_CALL_BYTES,
            entry_overhead: self.partition_key.len(),
        }
    }

    /// Why a frame can never be a record: with the partition key it exceeds 1 MiB. (Only a
    /// frame spooled under an HTTP sink's larger limit, before the config changed, can.)
    pub fn refuse(&self, frame: &[u8]) -> Option<String> {
        let len = frame.len() + self.partition_key.len();
        (len > KINESIS_MAX_RECORD_BYTES).then(|| {
            format!(
                "a frame of {} bytes with its partition key exceeds a Kinesis record's {KINESIS_MAX_RECORD_BYTES} bytes",
                frame.len()
            )
        })
    }

    /// One `PutRecords` call (once more at once with the server's time after a clock skew
    /// rejection). `Ok` with the records that failed; `Err` when the call failed as a whole.
    pub async fn send(&mut self, frames: &[Bytes]) -> Result<Vec<Failed>, SendError> {
        let mut corrected = false;
        loop {
            let records = frames
                .iter()
                .map(|f| {
                    PutRecordsRequestEntry::builder()
                        .data(Blob::new(f.to_vec()))
                        .partition_key(&self.partition_key)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SendError::Retryable(format!("building PutRecords: {e}")))?;
            let call = self.client.put_records().set_records(Some(records));
            let call = match &self.stream {
                KinesisStream::Name(n) => call.stream_name(n),
                KinesisStream::Arn(a) => call.stream_arn(a),
            };
            match call.send().await {
                Ok(out) => return Ok(retry_entries(&out, frames.len())),
                Err(err) => {
                    let received = SystemTime::now();
                    let failure = describe(&err);
                    if !corrected
                        && failure.class == Class::ClockSkew
                        && let Some(server) = failure.date.as_deref().and_then(parse_http_date)
                    {
                        self.clock.correct(server, received);
                        corrected = true;
                        continue;
                    }
                    return Err(SendError::from_class(
                        failure.class,
                        failure.status,
                        failure.reason,
                    ));
                }
            }
        }
    }
}

/// The records of a `PutRecords` call of `sent` records that Kinesis did not take, by their
/// index in the call (the results come in the order of the records). Every one is retried
/// (throttling, `InternalFailure`) or waits for an operator (KMS key problems): none is
/// dead-lettered.
pub fn retry_entries(out: &PutRecordsOutput, sent: usize) -> Vec<Failed> {
    let results = out.records();
    if results.len() != sent {
        // Cannot tell which were taken: send them all again (the sink stores a frame once).
        let error = SendError::Retryable(format!(
            "PutRecords answered {} results for {sent} records",
            results.len()
        ));
        return (0..sent)
            .map(|index| Failed {
                index,
                error: error.clone(),
            })
            .collect();
    }
    results
        .iter()
        .enumerate()
        .filter_map(|(index, r)| {
            let code = r.error_code()?;
            let reason = format!("{code}: {}", r.error_message().unwrap_or_default());
            Some(Failed {
                index,
                error: SendError::from_class(classify_record(code), 200, reason),
            })
        })
        .collect()
}

/// A failed call, classified.
struct Failure {
    class: Class,
    status: u16,
    reason: String,
    date: Option<String>,
}

fn describe(err: &SdkError<PutRecordsError>) -> Failure {
    let reason = format!("Kinesis PutRecords: {}", DisplayErrorContext(err));
    match err {
        SdkError::ServiceError(ctx) => {
            let raw = ctx.raw();
            let status = raw.status().as_u16();
            let e = ctx.err();
            Failure {
                class: classify_aws(status, e.code(), e.message().unwrap_or_default()),
                status,
                reason: format!(
                    "Kinesis {} (HTTP {status}): {}",
                    e.code().unwrap_or("error"),
                    e.message().unwrap_or_default()
                ),
                date: raw.headers().get("date").map(str::to_owned),
            }
        }
        SdkError::ConstructionFailure(_) => Failure {
            class: Class::Misconfigured,
            status: 0,
            reason,
            date: None,
        },
        SdkError::DispatchFailure(d)
            if d.as_connector_error().is_some_and(|c| c.is_user())
                || reason.contains("credentials") =>
        {
            Failure {
                class: Class::Misconfigured,
                status: 0,
                reason,
                date: None,
            }
        }
        _ => Failure {
            class: Class::Retry,
            status: err.raw_response().map_or(0, |r| r.status().as_u16()),
            reason,
            date: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::types::PutRecordsResultEntry;

    fn ok(seq: &str) -> PutRecordsResultEntry {
        PutRecordsResultEntry::builder()
            .sequence_number(seq)
            .shard_id("shardId-000000000000")
            .build()
    }

    fn failed(code: &str) -> PutRecordsResultEntry {
        PutRecordsResultEntry::builder()
            .error_code(code)
            .error_message("m")
            .build()
    }

    fn output(records: Vec<PutRecordsResultEntry>) -> PutRecordsOutput {
        let failed = records.iter().filter(|r| r.error_code().is_some()).count();
        PutRecordsOutput::builder()
            .failed_record_count(failed as i32)
            .set_records(Some(records))
            .build()
            .unwrap()
    }

    #[test]
    fn only_the_failed_entries_are_retried() {
        let out = output(vec![
            ok("1"),
            failed("ProvisionedThroughputExceededException"),
            ok("2"),
            failed("InternalFailure"),
            failed("KMSAccessDeniedException"),
        ]);
        let retry = retry_entries(&out, 5);
        assert_eq!(retry.iter().map(|f| f.index).collect::<Vec<_>>(), [1, 3, 4]);
        assert!(
            matches!(retry[0].error, SendError::Retryable(ref r) if r.starts_with("ProvisionedThroughputExceededException"))
        );
        assert!(matches!(retry[1].error, SendError::Retryable(_)));
        assert!(matches!(retry[2].error, SendError::Misconfigured(_)));
        assert!(retry_entries(&output(vec![ok("1"), ok("2")]), 2).is_empty());
    }

    #[test]
    fn results_that_do_not_match_the_call_retry_everything() {
        let retry = retry_entries(&output(vec![ok("1")]), 3);
        assert_eq!(retry.iter().map(|f| f.index).collect::<Vec<_>>(), [0, 1, 2]);
    }
}
