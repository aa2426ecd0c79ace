//! `outpost-agent`: thin CLI glue over the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use outpost_agent::collect::host::HostSampler;
use outpost_agent::sd_notify::Notifier;
use outpost_agent::{config, run, unix_ms};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Outpost's host agent: ships host metrics and log lines to an Outpost sink.
#[derive(Parser)]
#[command(name = "outpost-agent", version = outpost_agent::version::LONG, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent until SIGTERM or SIGINT (SIGHUP: reload the config).
    Run {
        /// The config file; drop-ins are read from `agent.d/*.toml` beside it, then `OUTPOST_*`
        /// environment variables apply.
        #[arg(long, short, default_value = "/etc/outpost/agent.toml")]
        config: PathBuf,
    },
    /// Check the config (the file, its `agent.d/` drop-ins and the environment): exit 0, or
    /// print every problem with its file or variable and key, and exit 1.
    CheckConfig {
        /// The config file; drop-ins are read from `agent.d/*.toml` beside it.
        #[arg(long, short, default_value = "/etc/outpost/agent.toml")]
        config: PathBuf,
        /// Also print the effective config (merged, defaults filled in, secrets redacted) as
        /// TOML on stdout.
        #[arg(long)]
        print: bool,
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
        Command::CheckConfig { config, print } => match config::load_layered(&config, &env) {
            Ok(loaded) => {
                for line in loaded.summary() {
                    eprintln!("{line}");
                }
                if print && let Err(e) = print_effective(&loaded) {
                    return report(Err(e));
                }
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

/// The process environment, for config overrides and `NOTIFY_SOCKET`.
fn env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

fn load(path: &std::path::Path) -> anyhow::Result<config::Loaded> {
    config::load_layered(path, &env).map_err(|e| anyhow::anyhow!("{e}"))
}

fn print_effective(loaded: &config::Loaded) -> anyhow::Result<()> {
    let text = loaded.effective_toml()?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
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
    use std::io::IsTerminal;
    // Colours only on a terminal: journald and log files get plain text.
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

fn status(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let config = load(path)?.config;
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
    let loaded = load(&path)?;
    init_tracing();
    tracing::info!(files = ?loaded.files, environment = ?loaded.env_vars(), "configuration loaded");
    let notifier = Notifier::from_env(&env);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        let reload = reload_on_sighup(path, notifier.clone())?;
        run(loaded.config, shutdown, reload, notifier).await?;
        Ok(())
    })
}

/// On each SIGHUP, load the config again (the file, its drop-ins, the environment); a valid
/// one is handed to the agent (which tells systemd `READY=1` once applied), an invalid one is
/// logged with every problem and the running config stays.
fn reload_on_sighup(
    path: PathBuf,
    notifier: Notifier,
) -> anyhow::Result<tokio::sync::mpsc::Receiver<config::Config>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            notifier.reloading();
            match config::load_layered(&path, &env) {
                Ok(loaded) => {
                    tracing::info!(path = %path.display(), files = ?loaded.files, "SIGHUP: config reloaded");
                    if tx.send(loaded.config).await.is_err() {
                        break;
                    }
                }
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "SIGHUP: config rejected; keeping the running one");
                    notifier
                        .ready("running; the reloaded configuration was rejected (see the log)");
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
