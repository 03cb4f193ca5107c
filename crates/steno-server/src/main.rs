//! The `steno` command: parses the CLI, loads config, sets up logging and metrics, and hands over to the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod cli;

/// Counts live heap bytes for `steno_heap_live_bytes` (the soak checks it).
#[global_allocator]
static ALLOCATOR: steno_server::heap::CountingAllocator = steno_server::heap::CountingAllocator;

#[derive(Parser)]
#[command(
    name = "steno",
    version,
    about = "Real-time speech-to-text server (Opus over WebSocket, Whisper)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve protocol v1 on /v1/listen until SIGTERM or Ctrl-C.
    Serve {
        /// Config file (default: ./config.toml if present).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address, overriding server.listen.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Model file tools.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Transcribe recordings (WAV, FLAC, MP3, Ogg, WebM, MP4/M4A/MOV; any
    /// length) with the configured model, on this machine, as the server's
    /// file API does.
    Transcribe(cli::TranscribeArgs),
    /// Stream a recording to a server's /v1/listen as a live user would (in
    /// real time, or --fast) and print its partials and finals.
    Listen(cli::ListenArgs),
    /// Measure this machine (an inference bench and a simulated load) and
    /// print the recommended workers.count, workers.threads_per_worker and
    /// admission.max_sessions for a latency target.
    Calibrate(cli::CalibrateArgs),
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Convert a CTranslate2 Whisper directory (model.bin, vocabulary.txt, config.json) to a whisper.cpp ggml file.
    ImportCt2(steno_model::cli::ImportCt2Args),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load and validate the configuration (file + environment), then print it.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Serve { config, listen } => serve(config.as_deref(), listen),
        Command::Model {
            command: ModelCommand::ImportCt2(args),
        } => {
            println!("{}", steno_model::cli::run(&args)?);
            Ok(())
        }
        Command::Transcribe(args) => {
            let config = load_config(args.config.as_deref())?;
            cli::transcribe(config, &args)
        }
        Command::Listen(args) => cli::listen(&args),
        Command::Calibrate(args) => {
            let config = load_config(args.config.as_deref())?;
            cli::calibrate(config, &args)
        }
        Command::Config {
            command: ConfigCommand::Check { config },
        } => {
            let config = load_config(config.as_deref())?;
            println!("{config:#?}");
            println!("configuration is valid");
            Ok(())
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STENO_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,whisper_rs=warn,symphonia=error")
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

fn load_config(path: Option<&Path>) -> Result<steno_server::config::Config> {
    let default = Path::new("config.toml");
    let path = path.or_else(|| default.is_file().then_some(default));
    Ok(steno_server::config::Config::load(path, std::env::vars())?)
}

fn serve(config_path: Option<&Path>, listen: Option<SocketAddr>) -> Result<()> {
    let mut config = load_config(config_path)?;
    if let Some(addr) = listen {
        config.server.listen = addr;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("steno-io")
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let loader = steno_server::server::whisper_loader(&config);
        steno_server::server::run(listener, config, loader, shutdown_signal()).await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("can install a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received");
}
