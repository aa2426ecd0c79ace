//! The one ingest call of every front (the HTTP route, the Function URL through it, and each
//! Kinesis record): prepare the frame on the blocking pool, then store it through the ports.

use axum::body::Bytes;
use outpost_sink_core::error::IngestError;
use outpost_sink_core::ingest::{self, Ack};
use outpost_sink_core::ports::Storage;

/// Why a frame was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestFailure {
    /// The blocking task that prepares the frame panicked or was cancelled.
    #[error("ingest task failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
    /// The core refused the frame or the storage failed.
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// Prepare `frame` (received at `now_ms`) and store it. Decompressing and re-encoding a frame
/// is CPU work of up to tens of milliseconds, so it runs off the async worker threads; nothing
/// is written unless the whole frame is valid.
pub async fn ingest_frame<S: Storage>(
    frame: Bytes,
    storage: &S,
    now_ms: i64,
) -> Result<Ack, IngestFailure> {
    let prepared = tokio::task::spawn_blocking(move || ingest::prepare(&frame, now_ms)).await??;
    Ok(ingest::store(prepared, storage).await?)
}
