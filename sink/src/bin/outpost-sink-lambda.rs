//! `outpost-sink-lambda`: the sink as an AWS Lambda function (`provided.al2023`; packaged as
//! `bootstrap` by `cargo lambda build`). Function URL requests, Kinesis batches and the
//! scheduled health check, over S3, DynamoDB and CloudWatch, configured by environment
//! (docs/aws.md).

use std::time::Instant;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use outpost_sink::backend::aws::{self, AwsBackend, AwsSettings};
use outpost_sink::front::lambda::LambdaFront;
use serde_json::Value;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let started = Instant::now();
    // Logs on stderr (CloudWatch Logs takes both streams); stdout carries the EMF lines.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time() // CloudWatch Logs stamps every line
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let settings = AwsSettings::from_env()?;
    let sdk = aws::load_sdk_config().await;
    let front = LambdaFront::new(AwsBackend::new(&sdk, &settings));
    tracing::info!(
        init_ms = started.elapsed().as_secs_f64() * 1000.0,
        bucket = %settings.bucket,
        table = %settings.table,
        cloudwatch = settings.cloudwatch.as_str(),
        scope = settings.scope.as_str(),
        "outpost-sink-lambda ready"
    );
    let front = &front;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Boxed: a shallower future type (the handler's is deep), and the error boxed for the
        // runtime, which reports it as the invocation's error.
        Box::pin(front.handle(event.payload))
            .await
            .map_err(Error::from)
    }))
    .await
}
