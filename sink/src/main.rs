//! `outpost-sink`: command-line glue over the `outpost_sink` library.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use outpost_sink::backend::aws::{self, AwsBackend, AwsSettings};
use outpost_sink::config::{DEFAULT_DATA_DIR, DEFAULT_LISTEN};
use outpost_sink::token::Token;
use outpost_sink::{Config, Server};
use tracing_subscriber::EnvFilter;

/// Outpost's sink: receives batches from agents; stores logs as NDJSON and metrics in SQLite, or
/// in S3, DynamoDB and CloudWatch.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API until SIGTERM or SIGINT.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address (IP:port) to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Where data goes: `local` (the data directory) or `aws` (S3, DynamoDB and CloudWatch,
    /// configured by OUTPOST_BUCKET, OUTPOST_TABLE, OUTPOST_METRICS_NAMESPACE,
    /// OUTPOST_CLOUDWATCH_MODE and the standard AWS variables).
    #[arg(long, value_enum, default_value_t = Backend::Local)]
    backend: Backend,
    /// Data directory for `logs/` and `metrics.db` (local backend); created if missing.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    data: PathBuf,
    /// File holding the bearer token clients must send; surrounding whitespace is trimmed.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Alarm rules (TOML, see docs/alarms.md) evaluated in the background; local backend only.
    /// A bad file stops the sink at start with every problem, each naming the file and key.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    /// Files and SQLite under --data.
    Local,
    /// S3, DynamoDB and CloudWatch.
    Aws,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("outpost-sink: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let token = match &args.token_file {
        Some(path) => Some(Token::from_file(path)?),
        None => None,
    };
    let rules = match (&args.rules, args.backend) {
        (None, _) => None,
        (Some(_), Backend::Aws) => {
            anyhow::bail!("--rules needs --backend local (CloudWatch evaluates alarms on AWS)")
        }
        (Some(path), Backend::Local) => Some(outpost_sink::alarm::rules::load(path)?),
    };
    let aws_settings = match args.backend {
        Backend::Aws => Some(AwsSettings::from_env()?),
        Backend::Local => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        // Install the handlers before announcing the port, so an early SIGTERM is not lost.
        let shutdown = shutdown_signal()?;
        let server = match aws_settings {
            None => {
                let mut config = Config::new(args.listen, args.data);
                config.token = token;
                config.rules = rules;
                Server::bind(config).await?
            }
            Some(settings) => {
                let sdk = aws::load_sdk_config().await;
                tracing::info!(
                    bucket = %settings.bucket,
                    table = %settings.table,
                    namespace = %settings.namespace,
                    cloudwatch = settings.cloudwatch.as_str(),
                    region = ?sdk.region(),
                    "AWS backend"
                );
                Server::bind_with(args.listen, token, AwsBackend::new(&sdk, &settings)).await?
            }
        };
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "outpost-sink listening on http://{}",
            server.local_addr()
        )
        .and_then(|()| stdout.flush())
        .context("writing the listening line to stdout")?;
        drop(stdout);
        server.run(shutdown).await?;
        Ok(())
    })
}

/// A future that resolves on the first SIGTERM or SIGINT.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down, finishing in-flight requests");
    })
}
