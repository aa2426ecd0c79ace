//! The health check's events: an EventBridge schedule's event (`"source": "aws.events"`,
//! `"detail-type": "Scheduled Event"`) or the literal `{"outpost": "health-check"}` (for a
//! manual `aws lambda invoke`); the response is the report as JSON: `{"health_check": {...}}`.

use outpost_sink_core::error::chain;
use outpost_sink_core::timestamp;
use serde_json::Value;

use super::{LambdaError, LambdaFront};

/// `source` of an EventBridge schedule's event.
pub const SCHEDULE_SOURCE: &str = "aws.events";
/// `detail-type` of an EventBridge schedule's event.
pub const SCHEDULE_DETAIL_TYPE: &str = "Scheduled Event";
/// The member and value of a manual health-check event: `{"outpost": "health-check"}`.
pub const HEALTH_CHECK_EVENT: (&str, &str) = ("outpost", "health-check");

/// Whether `event` asks for the health check: a schedule's event ([`SCHEDULE_SOURCE`] and
/// [`SCHEDULE_DETAIL_TYPE`]) or the manual [`HEALTH_CHECK_EVENT`].
pub fn is_health_check(event: &Value) -> bool {
    let member = |key: &str| event.get(key).and_then(Value::as_str);
    let scheduled = member("source") == Some(SCHEDULE_SOURCE)
        && member("detail-type") == Some(SCHEDULE_DETAIL_TYPE);
    scheduled || member(HEALTH_CHECK_EVENT.0) == Some(HEALTH_CHECK_EVENT.1)
}

impl LambdaFront {
    /// Run the health check now (`crate::health::check`); its report as the response.
    pub(super) async fn health_check(&self) -> Result<Value, LambdaError> {
        let report = crate::health::check(&self.backend, timestamp::now_ms())
            .await
            .map_err(|e| LambdaError::HealthCheck(chain(&e)))?;
        Ok(serde_json::json!({ "health_check": report }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::lambda::Event;
    use serde_json::json;

    #[test]
    fn schedules_and_the_manual_event_are_health_checks() {
        let scheduled = json!({
            "version": "0",
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2026-11-24T09:00:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/outpost-health"],
            "detail": {}
        });
        assert!(matches!(Event::parse(scheduled), Ok(Event::HealthCheck)));
        assert!(matches!(
            Event::parse(json!({"outpost": "health-check"})),
            Ok(Event::HealthCheck)
        ));
        for other in [
            json!({"source": "aws.events", "detail-type": "EC2 Instance State-change Notification"}),
            json!({"source": "aws.s3", "detail-type": "Scheduled Event"}),
            json!({"outpost": "health"}),
        ] {
            assert!(
                matches!(
                    Event::parse(other.clone()),
                    Err(LambdaError::Unsupported(_))
                ),
                "{other}"
            );
        }
    }
}
