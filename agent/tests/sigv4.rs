//! The Lambda Function URL transport against a local server: requests are signed with SigV4,
//! a clock skew is corrected from the server's `Date`, and answers are classified (a 403 is a
//! configuration problem, a 400 a dead letter).
#![allow(clippy::unwrap_used)]

mod fake_function_url;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use bytes::Bytes;
use fake_function_url::{FakeFunctionUrl, Reply, amz_date};
use outpost_agent::ship::SendError;
use outpost_agent::ship::clock::SkewClock;
use outpost_agent::ship::sigv4::SigV4Sender;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const AHEAD: Duration = Duration::from_secs(600);

fn sender(server: &FakeFunctionUrl) -> SigV4Sender {
    let url = url::Url::parse(&format!("{}/v1/batches", server.url)).unwrap();
    let credentials = Credentials::new("AKIDTEST", "secret", Some("TOKEN".into()), None, "test");
    SigV4Sender::new(
        &url,
        "us-east-1".to_owned(),
        SharedCredentialsProvider::new(credentials),
        Duration::from_secs(5),
        Arc::new(SkewClock::default()),
    )
    .unwrap()
}

/// `a` and `b` are at most `within` apart.
fn near(a: SystemTime, b: SystemTime, within: Duration) -> bool {
    a.duration_since(b)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap()
        <= within
}

#[tokio::test]
async fn an_expired_signature_is_signed_again_at_once_with_the_servers_time() {
    let server = FakeFunctionUrl::start(|n, _| {
        if n == 0 {
            Reply::signature_expired(AHEAD)
        } else {
            Reply::status(200, "")
        }
    });
    let mut s = sender(&server);
    s.send(&Bytes::from_static(b"frame one")).await.unwrap();
    {
        let seen = server.seen();
        assert_eq!(seen.len(), 2, "one rejection, one retry at once");
        let first = amz_date(seen[0].header("x-amz-date").unwrap());
        let retried = amz_date(seen[1].header("x-amz-date").unwrap());
        let now = SystemTime::now();
        assert!(near(first, now, Duration::from_secs(5)));
        assert!(
            near(retried, now + AHEAD, Duration::from_secs(5)),
            "the retry is signed with the server's time"
        );
        for r in seen.iter() {
            let auth = r.header("authorization").unwrap();
            assert!(
                auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
                    && auth.contains("/us-east-1/lambda/aws4_request"),
                "{auth}"
            );
            assert_eq!(r.header("x-amz-content-sha256").map(str::len), Some(64));
            assert_eq!(r.header("x-amz-security-token"), Some("TOKEN"));
            assert_eq!(
                r.header("content-type"),
                Some("application/vnd.outpost.frame")
            );
        }
    }
    let offset = s.clock().offset_ms();
    assert!((598_000..=602_000).contains(&offset), "{offset}");

    // Later requests are signed with the corrected clock from the start.
    s.send(&Bytes::from_static(b"frame two")).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    let later = amz_date(seen[2].header("x-amz-date").unwrap());
    assert!(near(
        later,
        SystemTime::now() + AHEAD,
        Duration::from_secs(5)
    ));
}

#[tokio::test]
async fn a_skew_that_the_correction_does_not_cure_is_retried_with_backoff() {
    let server = FakeFunctionUrl::start(|_, _| Reply::signature_expired(AHEAD));
    let mut s = sender(&server);
    let err = s.send(&Bytes::from_static(b"frame")).await.unwrap_err();
    assert!(
        matches!(err, SendError::Retryable(ref r) if r.contains("Signature expired")),
        "{err}"
    );
    assert_eq!(server.seen().len(), 2, "corrected once, not in a loop");
}

#[tokio::test]
async fn access_denied_is_a_configuration_problem_and_a_400_a_dead_letter() {
    let server = FakeFunctionUrl::start(|n, _| match n {
        0 => Reply::status(403, r#"{"Message":"Forbidden"}"#),
        _ => Reply::status(400, r#"{"error":"bad frame"}"#),
    });
    let mut s = sender(&server);
    let frame = Bytes::from_static(b"frame");
    assert!(matches!(
        s.send(&frame).await,
        Err(SendError::Misconfigured(_))
    ));
    assert_eq!(
        s.send(&frame).await,
        Err(SendError::Rejected {
            status: 400,
            reason: r#"HTTP 400: {"error":"bad frame"}"#.to_owned()
        })
    );
    assert_eq!(s.clock().offset_ms(), 0, "no skew correction for either");
}
