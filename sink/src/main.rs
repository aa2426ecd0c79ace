//! `outpost-sink`: command-line glue over the `outpost_sink` library.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use outpost_sink::alarm::cloudwatch::{AlarmOptions, DEFAULT_PREFIX, alarm_definitions};
use outpost_sink::alarm::cloudwatch_apply::{put_alarms, table_hosts};
use outpost_sink::backend::aws::settings::{DEFAULT_NAMESPACE, ENV_TABLE};
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
    /// Create or update a CloudWatch metric alarm for each rule of a rules file (one per host
    /// for `per_host` rules), over the metrics the sink publishes (see docs/alarms.md).
    CloudwatchAlarms(CloudWatchAlarmsArgs),
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

#[derive(Debug, clap::Args)]
struct CloudWatchAlarmsArgs {
    /// The rules file (TOML, as for `serve --rules`); its `[evaluation]` and `[notify]` are
    /// not used.
    #[arg(long, value_name = "FILE")]
    rules: PathBuf,
    /// Namespace of the metrics: the sink's OUTPOST_METRICS_NAMESPACE.
    #[arg(long, value_name = "NS", default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// SNS topic notified when an alarm enters ALARM and when it returns to OK.
    #[arg(long, value_name = "ARN")]
    topic_arn: Option<String>,
    /// Prepended to every alarm name.
    #[arg(long, value_name = "P", default_value = DEFAULT_PREFIX)]
    prefix: String,
    /// A host to make the `per_host` rules' alarms for; repeat for more hosts.
    #[arg(long = "host", value_name = "NAME")]
    hosts: Vec<String>,
    /// Also every host that sent a batch: the `#hosts` items of the DynamoDB table named by
    /// OUTPOST_TABLE.
    #[arg(long)]
    hosts_from_table: bool,
    /// Print the PutMetricAlarm parameters as JSON and create nothing (--hosts-from-table
    /// still reads the table).
    #[arg(long)]
    dry_run: bool,
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
    // Colours only on a terminal: journald and log files get plain text.
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::CloudwatchAlarms(args) => cloudwatch_alarms(args),
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
        (Some(path), Backend::Local) => Some(outpost_sink_core::alarm::rules::load(path)?),
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

fn cloudwatch_alarms(args: CloudWatchAlarmsArgs) -> anyhow::Result<()> {
    let rules = outpost_sink_core::alarm::rules::load(&args.rules)?;
    let options = AlarmOptions {
        namespace: args.namespace,
        prefix: args.prefix,
        topic_arn: args.topic_arn,
    };
    let table = if args.hosts_from_table {
        let table = std::env::var(ENV_TABLE).unwrap_or_default();
        anyhow::ensure!(
            !table.trim().is_empty(),
            "--hosts-from-table reads the DynamoDB table named by {ENV_TABLE}, which is not set"
        );
        Some(table)
    } else {
        None
    };
    if args.dry_run && table.is_none() {
        let alarms = alarm_definitions(&rules, &args.hosts, &options)?;
        return print_json(&alarms);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        let sdk = aws::load_sdk_config().await;
        let mut hosts = args.hosts;
        if let Some(table) = table {
            let found = table_hosts(aws_sdk_dynamodb::Client::new(&sdk), &table).await?;
            if found.is_empty() {
                tracing::warn!(table, "no hosts in the table: no host has sent a batch yet");
            }
            hosts.extend(found);
        }
        let alarms = alarm_definitions(&rules, &hosts, &options)?;
        if args.dry_run {
            return print_json(&alarms);
        }
        tracing::info!(alarms = alarms.len(), region = ?sdk.region(), "putting CloudWatch alarms");
        let client = aws_sdk_cloudwatch::Client::new(&sdk);
        let mut stdout = std::io::stdout().lock();
        put_alarms(&client, &alarms, |alarm| {
            // A closed stdout must not stop the calls; the exit status reports failures.
            let _ = writeln!(stdout, "put alarm {}", alarm.alarm_name);
        })
        .await?;
        Ok(())
    })
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("encoding the alarms as JSON")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .context("writing to stdout")
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
