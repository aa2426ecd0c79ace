//! `outpost-agent`: thin CLI glue over the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use outpost_agent::collect::host::HostSampler;
use outpost_agent::{config, run, unix_ms};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Outpost's host agent: ships host metrics and log lines to an Outpost sink.
#[derive(Parser)]
#[command(name = "outpost-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent until SIGTERM or SIGINT.
    Run {
        /// The config file.
        #[arg(long, short, default_value = "/etc/outpost/agent.toml")]
        config: PathBuf,
    },
    /// Check a config file: exit 0, or print every problem with its key and exit 1.
    CheckConfig {
        /// The config file.
        #[arg(long, short, default_value = "/etc/outpost/agent.toml")]
        config: PathBuf,
    },
    /// Print one host sample as JSON on stdout.
    Sample,
    /// Show what the state directory says: file positions and lag, spool size, last
    /// acknowledged delivery, dead letters. Safe while the agent runs.
    Status {
        /// The config file (for `agent.state_dir`).
        #[arg(long, short, default_value = "/etc/outpost/agent.toml")]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match config::load(&config) {
            Ok(_) => {
                eprintln!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Sample => report(sample()),
        Command::Status { config, json } => report(status(&config, json)),
        Command::Run { config } => report(run_agent(config)),
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outpost-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

fn status(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let config = config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let s = outpost_agent::status::read(&config.agent.state_dir);
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &s)?;
        writeln!(out)?;
    } else {
        let now = u64::try_from(unix_ms()).unwrap_or(0);
        write!(out, "{}", outpost_agent::status::render(&s, now))?;
    }
    Ok(())
}

fn sample() -> anyhow::Result<()> {
    let mut sampler = HostSampler::new()?;
    // CPU usage and rates need two readings some time apart.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let points = sampler.sample(unix_ms());
    let json: Vec<serde_json::Value> = points
        .iter()
        .map(|p| {
            let dims: serde_json::Map<String, serde_json::Value> = p
                .dimensions
                .iter()
                .map(|d| (d.key.clone(), d.value.clone().into()))
                .collect();
            serde_json::json!({
                "name": p.name, "ts_ms": p.ts_ms, "value": p.value,
                "unit": p.unit.as_str(), "dimensions": dims,
            })
        })
        .collect();
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &json)?;
    writeln!(out)?;
    Ok(())
}

fn run_agent(path: PathBuf) -> anyhow::Result<()> {
    let config = config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        let reload = reload_on_sighup(path)?;
        run(config, shutdown, reload).await?;
        Ok(())
    })
}

/// On each SIGHUP, load the config file again; a valid one is handed to the agent, an invalid
/// one is logged with every problem and the running config stays.
fn reload_on_sighup(path: PathBuf) -> anyhow::Result<tokio::sync::mpsc::Receiver<config::Config>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match config::load(&path) {
                Ok(c) => {
                    tracing::info!(path = %path.display(), "SIGHUP: config reloaded");
                    if tx.send(c).await.is_err() {
                        break;
                    }
                }
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "SIGHUP: config rejected; keeping the running one");
                }
            }
        }
    });
    Ok(rx)
}

/// Resolves on the first SIGTERM or SIGINT.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}
