//! Kinesis event-source-mapping batches: one frame per record, each through the same ingest
//! call as `serve`'s route. Records that fail for a retryable reason (a storage error) are named
//! in a `ReportBatchItemFailures` response, by sequence number, so Lambda retries from the
//! first of them. A malformed frame (a poison record: retrying cannot help) is written to the
//! dead-letter prefix in S3, counted, and reported as processed, so it never blocks the shard.

use std::sync::atomic::Ordering;

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use axum::body::Bytes;
use outpost_sink_core::error::{IngestError, chain};
use outpost_sink_core::timestamp;

use super::LambdaFront;
use crate::backend::aws::s3::dead_letter_key;
use crate::front::ingest::{IngestFailure, ingest_frame};

/// Content type of a dead letter.
const DEAD_LETTER_CONTENT_TYPE: &str = "application/vnd.outpost.frame";

/// What a Kinesis batch came to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KinesisOutcome {
    /// Records stored.
    pub stored: usize,
    /// Poison records written to the dead-letter prefix.
    pub dead_lettered: usize,
    /// Sequence numbers of the records that failed for a retryable reason.
    pub failed: Vec<String>,
}

impl KinesisOutcome {
    /// The `ReportBatchItemFailures` response.
    pub fn response(&self) -> KinesisEventResponse {
        let mut response = KinesisEventResponse::default();
        response.batch_item_failures = self
            .failed
            .iter()
            .map(|seq| {
                let mut failure = KinesisBatchItemFailure::default();
                failure.item_identifier = Some(seq.clone());
                failure
            })
            .collect();
        response
    }
}

impl LambdaFront {
    /// Store every record of a Kinesis batch; see the module doc for the outcomes.
    pub async fn kinesis(&self, batch: &KinesisEvent) -> KinesisOutcome {
        let mut outcome = KinesisOutcome::default();
        for record in &batch.records {
            let seq = record.kinesis.sequence_number.clone();
            match self.kinesis_record(record).await {
                Ok(Stored::Batch) => outcome.stored += 1,
                Ok(Stored::DeadLetter) => outcome.dead_lettered += 1,
                Err(error) => {
                    tracing::error!(sequence_number = %seq, %error, "Kinesis record failed; Lambda will retry it");
                    outcome.failed.push(seq);
                }
            }
        }
        outcome
    }

    async fn kinesis_record(&self, record: &KinesisEventRecord) -> Result<Stored, String> {
        let frame = Bytes::from(record.kinesis.data.0.clone());
        match ingest_frame(frame.clone(), self.backend.as_ref(), timestamp::now_ms()).await {
            Ok(_) => Ok(Stored::Batch),
            Err(IngestFailure::Ingest(e @ (IngestError::Decode(_) | IngestError::Invalid(_)))) => {
                let reason = chain(&e);
                self.dead_letter(record, Vec::from(frame), &reason).await?;
                Ok(Stored::DeadLetter)
            }
            Err(IngestFailure::Ingest(e)) => Err(chain(&e)),
            Err(worker @ IngestFailure::Worker(_)) => Err(worker.to_string()),
        }
    }

    async fn dead_letter(
        &self,
        record: &KinesisEventRecord,
        frame: Vec<u8>,
        reason: &str,
    ) -> Result<(), String> {
        let id = record
            .event_id
            .clone()
            .unwrap_or_else(|| record.kinesis.sequence_number.clone());
        let (date, _) = timestamp::format_ms(timestamp::now_ms())
            .split_once('T')
            .map(|(d, t)| (d.to_owned(), t.to_owned()))
            .unwrap_or_default();
        let key = dead_letter_key(&date, "kinesis", &id);
        self.backend
            .logs()
            .put_with_reason(&key, frame, DEAD_LETTER_CONTENT_TYPE, reason)
            .await
            .map_err(|e| chain(&e))?;
        self.dead_letters.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            key,
            sequence_number = %record.kinesis.sequence_number,
            partition_key = %record.kinesis.partition_key,
            reason,
            "poison Kinesis record kept as a dead letter"
        );
        Ok(())
    }
}

enum Stored {
    Batch,
    DeadLetter,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_retryable_failures_are_reported() {
        let outcome = KinesisOutcome {
            stored: 3,
            dead_lettered: 1,
            failed: vec!["49590".into(), "49591".into()],
        };
        let response = serde_json::to_value(outcome.response()).unwrap();
        assert_eq!(
            response,
            json!({"batchItemFailures": [{"itemIdentifier": "49590"}, {"itemIdentifier": "49591"}]})
        );
        let none = serde_json::to_value(KinesisOutcome::default().response()).unwrap();
        assert_eq!(none, json!({"batchItemFailures": []}));
    }
}
