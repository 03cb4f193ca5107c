//! Calibration: this machine, the model and the session config in, the recommended `workers.count`, `workers.threads_per_worker` and `admission.max_sessions` for a latency target out, with the figures behind them.
//!
//! Map:
//! - `bench`: one final's measured cost per worker layout (the real model).
//! - `simulate`: a simulated load of N talking users on those costs.
//! - `speech`: the audio the bench times (a file, or espeak-ng).
//! - `report`: the text `steno calibrate` prints.
//!
//! [`calibrate`] measures every layout that uses all cores, simulates each
//! at 1..=`max_users` users with several seeds, and recommends the layout
//! that holds the most users within the targets, and that many users
//! less a headroom share: the simulation knows only the mix it is given,
//! leaves out what the server does besides inference, and ran under the
//! capacity sweep's p95 by 0.2 to 0.6 s between 8 and 24 users on the
//! 2-core machine (docs/capacity.md, "Calibration"). `steno calibrate` prints it;
//! `admission.max_sessions = "auto"` runs it at start-up.

pub mod bench;
mod report;
pub mod simulate;
mod speech;

use std::path::PathBuf;

pub use speech::read as speech;

use bench::{Layout, LayoutCosts};
use simulate::{Load, Mix, Outcome, Timing};

use crate::config::Config;
use crate::worker::WorkerError;

/// Why calibration could not run.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error("cannot start a calibration thread: {0}")]
    Thread(std::io::Error),
    #[error("a bench thread panicked")]
    Panicked,
    #[error(
        "cannot render speech with espeak-ng ({0}); install it (make deps) or pass --audio FILE"
    )]
    Espeak(String),
    #[error("cannot read {path}: {source}")]
    Audio {
        path: PathBuf,
        source: steno_audio::file::FileError,
    },
    #[error("{0} holds {1:.1} s of audio; calibration needs at least {2} s")]
    TooShort(PathBuf, f64, f64),
}

/// What the recommendation must hold.
#[derive(Clone, Copy, Debug)]
pub struct Targets {
    pub p95_s: f64,
    /// Also hold a median, when given.
    pub p50_s: Option<f64>,
    /// Share of the largest passing user count kept free.
    pub headroom: f64,
    pub max_users: usize,
}

impl Default for Targets {
    /// The capacity sweep's p95 target (docs/capacity.md), and the headroom
    /// that covers how far the simulation ran under the sweep on the 2-core
    /// machine (docs/capacity.md, "Calibration").
    fn default() -> Self {
        Self {
            p95_s: 1.5,
            p50_s: None,
            headroom: 0.5,
            max_users: 64,
        }
    }
}

impl Targets {
    fn hold(&self, o: &Outcome) -> bool {
        o.p95_s <= self.p95_s && self.p50_s.is_none_or(|p50| o.p50_s <= p50)
    }
}

/// One layout's result.
#[derive(Clone, Debug)]
pub struct LayoutResult {
    pub costs: LayoutCosts,
    /// The most users within the targets (0: not even one).
    pub max_users: usize,
    /// The simulated figures at each user count tried.
    pub steps: Vec<(usize, Outcome)>,
}

/// The recommendation and what it rests on.
#[derive(Clone, Debug)]
pub struct Calibration {
    pub cores: usize,
    pub mix: Mix,
    pub targets: Targets,
    pub layouts: Vec<LayoutResult>,
    pub workers: usize,
    pub threads_per_worker: usize,
    pub max_sessions: usize,
}

/// The user counts the report always shows (the sweep's steps and more).
pub(crate) const SHOWN: [usize; 9] = [1, 4, 8, 12, 16, 20, 24, 28, 32];

/// Simulated seconds of talk per seed, and the seeds per user count.
const SECONDS: f64 = 120.0;
const SEEDS: u64 = 4;
/// Fixed time outside the model between the last voiced packet leaving a
/// client and its final arriving (VAD frames, Opus packets, the session).
const OVERHEAD_S: f64 = 0.1;
/// The early final's start into the pause (`session::early`).
const EARLY_TAIL_S: f64 = 0.2;

/// Measures every layout that uses this machine's cores and recommends a
/// configuration for `mix`.
pub fn calibrate(
    config: &Config,
    speech: &[f32],
    mix: Mix,
    targets: Targets,
) -> Result<Calibration, CalibrateError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    calibrate_layouts(
        config,
        speech,
        mix,
        targets,
        cores,
        Layout::candidates(cores),
    )
}

/// `admission.max_sessions = "auto"`: the configured layout measured with
/// espeak-ng's speech, the conversational mix and the sweep's targets.
pub fn configured(config: &Config) -> Result<Calibration, CalibrateError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let layout = Layout {
        workers: config.workers.resolved_count(),
        threads: config.workers.threads_per_worker,
    };
    let speech = speech(None)?;
    calibrate_layouts(
        config,
        &speech,
        Mix::CONVERSATIONAL,
        Targets::default(),
        cores,
        vec![layout],
    )
}

fn calibrate_layouts(
    config: &Config,
    speech: &[f32],
    mix: Mix,
    targets: Targets,
    cores: usize,
    candidates: Vec<Layout>,
) -> Result<Calibration, CalibrateError> {
    let timing = Timing {
        hangover_s: config.vad.hangover_ms as f64 / 1000.0,
        early_tail_s: if config.session.early_finals {
            EARLY_TAIL_S
        } else {
            config.vad.hangover_ms as f64 / 1000.0
        },
        partial_interval_s: config.session.partial_interval_ms as f64 / 1000.0,
        overhead_s: OVERHEAD_S,
    };
    let mut layouts = Vec::new();
    for layout in candidates {
        let costs = bench::measure(&config.model, layout, speech)?;
        tracing::info!(?costs, "calibrate: measured");
        layouts.push(search(&costs, &mix, &timing, &targets));
    }
    let best = layouts
        .iter()
        .max_by_key(|l| (l.max_users, l.costs.layout.workers))
        .expect("at least one layout");
    let max_sessions = ((best.max_users as f64 * (1.0 - targets.headroom)).floor() as usize).max(1);
    Ok(Calibration {
        cores,
        mix,
        targets,
        workers: best.costs.layout.workers,
        threads_per_worker: best.costs.layout.threads,
        max_sessions,
        layouts,
    })
}

/// Simulates `costs` at a rising user count until the targets break.
fn search(costs: &LayoutCosts, mix: &Mix, timing: &Timing, targets: &Targets) -> LayoutResult {
    let mut steps = Vec::new();
    let mut max_users = 0;
    let mut broken = false;
    for users in 1..=targets.max_users {
        // Past the break, only the steps the report shows beside the sweep.
        if broken && !SHOWN.contains(&users) {
            continue;
        }
        let outcome = pooled(costs, mix, timing, users);
        if targets.hold(&outcome) && !broken {
            max_users = users;
        } else {
            broken = true;
        }
        steps.push((users, outcome));
    }
    LayoutResult {
        costs: *costs,
        max_users,
        steps,
    }
}

/// The median over seeds of each figure.
fn pooled(costs: &LayoutCosts, mix: &Mix, timing: &Timing, users: usize) -> Outcome {
    let runs: Vec<Outcome> = (1..=SEEDS)
        .map(|seed| {
            let load = Load {
                users,
                seconds: SECONDS,
                ramp_up_s: 5.0,
                seed,
            };
            simulate::simulate(costs, mix, timing, &load)
        })
        .collect();
    let median = |f: fn(&Outcome) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2.0
    };
    Outcome {
        finals: runs.iter().map(|r| r.finals).sum(),
        p50_s: median(|o| o.p50_s),
        p95_s: median(|o| o.p95_s),
        busy_on_finals: median(|o| o.busy_on_finals),
    }
}
