//! `steno calibrate`: this machine measured in, the recommended worker layout and session limit (and the figures behind them) out on stdout.

use std::path::PathBuf;

use anyhow::{Result, bail};

use steno_server::calibrate::{self, Targets, simulate::Mix};
use steno_server::config::Config;

/// `steno calibrate`'s arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct CalibrateArgs {
    /// Config file (default: ./config.toml if present): the model, the VAD
    /// hangover and the session timing are taken from it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Speech to time the model on (any format `steno transcribe` reads, at
    /// least 8 s); default: espeak-ng reads a paragraph.
    #[arg(long)]
    pub audio: Option<PathBuf>,
    /// How the users talk: conversational (the load generator's mix) or
    /// short-turns (1-5 s turns, 1-3 s pauses).
    #[arg(long, default_value = "conversational")]
    pub mix: String,
    /// Target p95, end of speech to final, in seconds.
    #[arg(long, default_value_t = Targets::default().p95_s)]
    pub p95: f64,
    /// Also a target p50, end of speech to final, in seconds.
    #[arg(long)]
    pub p50: Option<f64>,
    /// Share of the most users within the targets kept free.
    #[arg(long, default_value_t = Targets::default().headroom)]
    pub headroom: f64,
}

/// Runs `steno calibrate`.
pub fn calibrate(config: Config, args: &CalibrateArgs) -> Result<()> {
    let mix = match args.mix.as_str() {
        "conversational" => Mix::CONVERSATIONAL,
        "short-turns" => Mix::SHORT_TURNS,
        other => bail!("--mix takes conversational or short-turns, got {other:?}"),
    };
    if !(0.0..1.0).contains(&args.headroom) {
        bail!("--headroom must be in 0..1, got {}", args.headroom);
    }
    let targets = Targets {
        p50_s: args.p50,
        p95_s: args.p95,
        headroom: args.headroom,
        ..Targets::default()
    };
    let speech = calibrate::speech(args.audio.as_deref())?;
    eprintln!("calibrate: timing the model on every worker layout (about 20 s per layout)");
    let result = calibrate::calibrate(&config, &speech, mix, targets)?;
    print!("{}", result.report());
    Ok(())
}
