//! The command line: what a run may ask for, and the hard limits that keep
//! every run bounded in size and time and on this machine.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Result, ensure};
use clap::{Args, Parser, Subcommand};

/// Hard limits: a run is always bounded in size and time.
const MAX_USERS: usize = 256;
const MAX_IDLE_USERS: usize = 512;
const MAX_EXTRA_USERS: usize = 64;
pub const MAX_DURATION_S: f64 = 3600.0;

#[derive(Parser)]
#[command(
    name = "steno-loadgen",
    version,
    about = "Load generator for steno: simulated live users over WebSocket"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Simulate users against a steno server on loopback and report.
    Run(Box<RunArgs>),
    /// Print the markdown capacity table for several JSON reports.
    Table { reports: Vec<PathBuf> },
    /// Word error rate of a transcript against a reference (text files; a
    /// JSON file's "text" field is read), normalised as the tests score.
    Wer {
        reference: PathBuf,
        hypothesis: PathBuf,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// The server (loopback only). Ignored with --spawn-server.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Start `steno serve --listen 127.0.0.1:0` for this run and stop it after (STENO_* passes through).
    #[arg(long)]
    pub spawn_server: bool,
    /// The steno binary for --spawn-server (default: `steno` next to this binary).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Config file for --spawn-server.
    #[arg(long)]
    pub server_config: Option<PathBuf>,
    /// PID of a server started elsewhere, to sample its memory and CPU.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Folder with manifest.tsv (file, duration_s, transcript, ...) and 16 kHz mono WAVs.
    #[arg(long, default_value = "../shared/data/speech")]
    pub corpus: PathBuf,
    /// Do not read --corpus (use --espeak sentences only).
    #[arg(long)]
    pub no_corpus: bool,
    /// Also say this many espeak-ng sentences (rendered into a temporary folder).
    #[arg(long, default_value_t = 0)]
    pub espeak: usize,
    /// Say only clips whose speech is at most this long, seconds (0: any).
    /// With `--espeak 12 --pause-min 1 --pause-max 3 --max-clip-s 5`: the
    /// short-turn mix (docs/capacity.md).
    #[arg(long, default_value_t = 0.0)]
    pub max_clip_s: f64,
    /// Concurrent speaking users.
    #[arg(long, default_value_t = 4)]
    pub users: usize,
    /// Users that keep a session open streaming silence.
    #[arg(long, default_value_t = 0)]
    pub idle_users: usize,
    /// Users arriving once the others are in, expecting `over_capacity`.
    #[arg(long, default_value_t = 0)]
    pub extra_users: usize,
    /// Seconds of conversation after the ramp-up.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Seconds over which users arrive (evenly).
    #[arg(long, default_value_t = 0.0)]
    pub ramp_up: f64,
    /// Shortest pause between utterances, seconds (a user listening).
    #[arg(long, default_value_t = 2.0)]
    pub pause_min: f64,
    /// Longest pause between utterances, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub pause_max: f64,
    /// Silence always sent after an utterance: more than vad.hangover_ms.
    #[arg(long, default_value_t = 1000)]
    pub min_tail_ms: u64,
    /// Sending speed, 1 = real time; more saturates the server (latency is then meaningless).
    #[arg(long, default_value_t = 1.0)]
    pub pace: f64,
    /// Ask for no partials (`partials=false`).
    #[arg(long)]
    pub no_partials: bool,
    /// Seed for clip choice and pauses.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seconds a user waits after `end` for its last finals and the close.
    #[arg(long, default_value_t = 30.0)]
    pub drain: f64,
    /// Hard limit on the whole run, seconds (default: ramp-up + duration + drain + 30).
    #[arg(long)]
    pub max_run_s: Option<f64>,
    /// Output prefix: PREFIX.json, PREFIX.svg (and PREFIX.server.log with --spawn-server).
    #[arg(long, default_value = "artifacts/loadgen/run")]
    pub out: PathBuf,
    /// Seconds between progress lines on stderr.
    #[arg(long, default_value_t = 2.0)]
    pub progress_s: f64,
    /// Exit with status 1 unless the report is ok.
    #[arg(long)]
    pub check: bool,
    /// Not ok if the server's RSS grows faster than this after --rss-warmup-s:
    /// the least-squares slope of its samples, in MB per 10 minutes.
    #[arg(long)]
    pub max_rss_slope_mb_per_10min: Option<f64>,
    /// Run seconds before RSS samples count toward the slope.
    #[arg(long, default_value_t = 40.0)]
    pub rss_warmup_s: f64,
    /// Not ok if the end of speech to final p95 of the second half of the
    /// conversation (after the ramp-up) is more than this times the first half's.
    #[arg(long)]
    pub max_p95_drift: Option<f64>,
    /// Seconds of slack on the drift bound: not ok only if the second half's
    /// p95 is above --max-p95-drift x the first half's plus this.
    #[arg(long, default_value_t = 0.0)]
    pub p95_drift_slack_s: f64,
    /// Not ok if the server's median live heap (`steno_heap_live_bytes`) in
    /// the last third of the time after --rss-warmup-s is more than this many
    /// MB above the first third's.
    #[arg(long)]
    pub max_heap_growth_mb: Option<f64>,
}

pub fn validate(a: &RunArgs) -> Result<()> {
    ensure!(
        a.users <= MAX_USERS && a.idle_users <= MAX_IDLE_USERS && a.extra_users <= MAX_EXTRA_USERS,
        "at most {MAX_USERS} users, {MAX_IDLE_USERS} idle users and {MAX_EXTRA_USERS} extra users"
    );
    ensure!(
        a.users + a.idle_users + a.extra_users > 0,
        "no users to simulate"
    );
    ensure!(
        a.duration > 0.0 && a.duration <= MAX_DURATION_S,
        "--duration must be in (0, {MAX_DURATION_S}]"
    );
    ensure!(
        a.ramp_up >= 0.0 && a.ramp_up <= MAX_DURATION_S,
        "--ramp-up must be in [0, {MAX_DURATION_S}]"
    );
    ensure!(
        0.0 <= a.pause_min && a.pause_min <= a.pause_max && a.pause_max <= 60.0,
        "need 0 <= --pause-min <= --pause-max <= 60"
    );
    ensure!(
        (0.0..=600.0).contains(&a.max_clip_s),
        "--max-clip-s must be in [0, 600] (0: any length)"
    );
    ensure!(
        (0.1..=50.0).contains(&a.pace),
        "--pace must be in [0.1, 50]"
    );
    ensure!(
        (0.0..=600.0).contains(&a.drain),
        "--drain must be in [0, 600]"
    );
    for (name, bound) in [
        ("--max-rss-slope-mb-per-10min", a.max_rss_slope_mb_per_10min),
        ("--max-p95-drift", a.max_p95_drift),
        ("--max-heap-growth-mb", a.max_heap_growth_mb),
    ] {
        ensure!(
            bound.is_none_or(|b| b.is_finite() && b > 0.0),
            "{name} must be a positive number"
        );
    }
    ensure!(
        a.p95_drift_slack_s.is_finite() && a.p95_drift_slack_s >= 0.0,
        "--p95-drift-slack-s must be 0 or more"
    );
    if a.max_rss_slope_mb_per_10min.is_some() || a.max_heap_growth_mb.is_some() {
        ensure!(
            (0.0..a.ramp_up + a.duration).contains(&a.rss_warmup_s),
            "--rss-warmup-s must be in [0, ramp-up + duration)"
        );
        ensure!(
            a.spawn_server || a.server_pid.is_some(),
            "--max-rss-slope-mb-per-10min and --max-heap-growth-mb need the server's memory: --spawn-server or --server-pid"
        );
    }
    // Loopback only: this tool opens hundreds of sessions at real-time pace.
    ensure!(
        a.spawn_server || a.addr.ip().is_loopback(),
        "{} is not a loopback address: steno-loadgen only loads servers on this machine",
        a.addr
    );
    Ok(())
}
