//! State-change notifications: a structured log line for each, and, when the rules file sets
//! `[notify] webhook_url`, an HTTP POST of a JSON body from a separate task, retried with
//! jittered exponential backoff (`crate::backoff`) a bounded number of times. Sending never waits: a full queue drops the
//! notification and counts it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use outpost_sink_core::alarm::book::Transition;
use outpost_sink_core::alarm::eval::AlarmState;
use outpost_sink_core::alarm::rules::Webhook;
use outpost_sink_core::timestamp;

use crate::backoff::Backoff;

/// Notifications waiting for delivery; more are dropped (and counted).
pub const QUEUE_LEN: usize = 1024;

/// Delay before the second attempt; doubled for each further attempt.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The longest delay between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Delivery counters, shown by `GET /v1/alarms`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Notifications delivered (2xx reply).
    pub delivered: AtomicU64,
    /// Notifications given up on after the last attempt.
    pub failed: AtomicU64,
    /// Notifications dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// The webhook's JSON body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookBody<'a> {
    /// The rule's name.
    pub alarm: &'a str,
    /// The host; `null` for a fleet alarm.
    pub host: Option<&'a str>,
    /// The state before.
    pub old_state: AlarmState,
    /// The state after.
    pub new_state: AlarmState,
    /// Why.
    pub reason: &'a str,
    /// When, RFC 3339 UTC.
    pub time: String,
    /// When, unix milliseconds.
    pub time_ms: i64,
}

impl<'a> From<&'a Transition> for WebhookBody<'a> {
    fn from(t: &'a Transition) -> Self {
        Self {
            alarm: &t.alarm,
            host: t.host.as_deref(),
            old_state: t.old_state,
            new_state: t.new_state,
            reason: &t.reason,
            time: timestamp::format_ms(t.time_ms),
            time_ms: t.time_ms,
        }
    }
}

/// Where transitions go: the log, and the webhook queue if there is one.
#[derive(Debug, Clone)]
pub struct Notifier {
    queue: Option<mpsc::Sender<Transition>>,
    counters: Arc<Counters>,
}

impl Notifier {
    /// A notifier; with a webhook, spawns its delivery task (call within a tokio runtime).
    pub fn start(webhook: Option<Webhook>) -> Self {
        let counters = Arc::new(Counters::default());
        let queue = webhook.map(|webhook| {
            // Building fails only when the TLS backend cannot start; then every delivery
            // fails with that error, logged and counted, rather than the sink refusing to start.
            let client = reqwest::Client::builder()
                .timeout(webhook.timeout)
                .build()
                .map_err(|e| format!("building the HTTP client: {e}"));
            let (tx, rx) = mpsc::channel(QUEUE_LEN);
            tokio::spawn(deliver(client, webhook, rx, Arc::clone(&counters)));
            tx
        });
        Self { queue, counters }
    }

    /// The delivery counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Log `transition` and queue it for the webhook, without waiting.
    pub fn notify(&self, transition: Transition) {
        tracing::warn!(
            alarm = %transition.alarm,
            host = transition.host.as_deref().unwrap_or("(fleet)"),
            old_state = %transition.old_state,
            new_state = %transition.new_state,
            reason = %transition.reason,
            "alarm state changed"
        );
        if let Some(queue) = &self.queue
            && queue.try_send(transition).is_err()
        {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!("alarm notification dropped: the webhook queue is full");
        }
    }
}

/// The retry schedule of a webhook delivery: [`FIRST_BACKOFF`] doubled up to [`MAX_BACKOFF`],
/// jittered.
pub const BACKOFF: Backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);

async fn deliver(
    client: Result<reqwest::Client, String>,
    webhook: Webhook,
    mut queue: mpsc::Receiver<Transition>,
    counters: Arc<Counters>,
) {
    while let Some(transition) = queue.recv().await {
        let body = match serde_json::to_vec(&WebhookBody::from(&transition)) {
            Ok(body) => body,
            Err(error) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "alarm webhook body not encoded");
                continue;
            }
        };
        let mut attempt = 1;
        loop {
            let sent = match &client {
                Ok(client) => {
                    client
                        .post(&webhook.url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                }
                Err(error) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%error, url = %webhook.url, "alarm webhook delivery failed");
                    break;
                }
            };
            let error = match sent {
                Ok(reply) if reply.status().is_success() => {
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(reply) => format!("HTTP status {}", reply.status()),
                Err(e) => e.to_string(),
            };
            if attempt >= webhook.max_attempts {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    %error,
                    url = %webhook.url,
                    alarm = %transition.alarm,
                    attempts = attempt,
                    "alarm webhook delivery failed, giving up"
                );
                break;
            }
            let delay = BACKOFF.delay(attempt);
            attempt += 1;
            tracing::warn!(%error, url = %webhook.url, retry_in = ?delay, "alarm webhook delivery failed");
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        // Retry 1 is attempt 2.
        assert_eq!(BACKOFF.base(1), FIRST_BACKOFF);
        assert_eq!(BACKOFF.base(2), FIRST_BACKOFF * 2);
        assert_eq!(BACKOFF.base(3), FIRST_BACKOFF * 4);
        assert_eq!(BACKOFF.base(19), MAX_BACKOFF);
    }

    #[test]
    fn the_body_has_the_documented_fields() {
        let t = Transition {
            alarm: "cpu-high".into(),
            host: None,
            old_state: AlarmState::Ok,
            new_state: AlarmState::Alarm,
            reason: "r".into(),
            time_ms: 1_795_474_678_123,
        };
        let json = serde_json::to_value(WebhookBody::from(&t)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "alarm": "cpu-high", "host": null, "old_state": "OK", "new_state": "ALARM",
                "reason": "r", "time": "2026-11-23T22:57:58.123Z", "time_ms": 1_795_474_678_123i64
            })
        );
    }

    // Real time (tokio's test-util is not enabled): one backoff of about FIRST_BACKOFF.
    #[tokio::test]
    async fn a_failing_webhook_is_retried_then_counted_as_failed() {
        // Nothing listens on port 9 of 127.0.0.1 (discard): every attempt is refused.
        let webhook = Webhook::new("http://127.0.0.1:9/hook", 2, Duration::from_secs(1));
        let notifier = Notifier::start(Some(webhook));
        notifier.notify(Transition {
            alarm: "a".into(),
            host: Some("h".into()),
            old_state: AlarmState::Ok,
            new_state: AlarmState::Alarm,
            reason: "r".into(),
            time_ms: 0,
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while notifier.counters().failed.load(Ordering::Relaxed) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "never gave up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(notifier.counters().delivered.load(Ordering::Relaxed), 0);
    }
}
