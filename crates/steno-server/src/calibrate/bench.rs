//! The inference bench: the model, a worker layout and speech in, the measured cost of one final (alone on the machine, and with every worker busy) out.
//!
//! Each cost is a line, `fixed + per_audio x seconds of audio`, fitted
//! through the medians of a short (2 s) and a long (8 s) utterance: the
//! encoder window makes the fixed part most of it (docs/capacity.md).

use std::time::Instant;

use super::CalibrateError;
use crate::worker::whisper::WhisperModel;
use crate::worker::{DecodeOptions, JobKind, ModelConfig, Transcriber};

const SAMPLE_RATE_HZ: usize = 16_000;
/// The two utterance lengths the line goes through.
pub const SHORT_S: f64 = 2.0;
pub const LONG_S: f64 = 8.0;
/// Timed runs per length (after one warm-up).
const RUNS: usize = 3;

/// How many workers, of how many threads each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub workers: usize,
    pub threads: usize,
}

impl Layout {
    /// The layouts that use every core: 1, 2, 4... threads per worker.
    pub fn candidates(cores: usize) -> Vec<Layout> {
        let cores = cores.max(1);
        let mut out = Vec::new();
        let mut threads = 1;
        while threads <= cores && threads <= 8 {
            out.push(Layout {
                workers: cores / threads,
                threads,
            });
            threads *= 2;
        }
        out
    }
}

/// Seconds of model time for one final: `fixed_s + per_audio_s x audio`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    pub fixed_s: f64,
    pub per_audio_s: f64,
}

impl Cost {
    pub fn of(&self, audio_s: f64) -> f64 {
        self.fixed_s + self.per_audio_s * audio_s.max(0.0)
    }

    /// The line through (SHORT_S, short) and (LONG_S, long).
    fn through(short: f64, long: f64) -> Cost {
        let per_audio_s = ((long - short) / (LONG_S - SHORT_S)).max(0.0);
        Cost {
            fixed_s: (short - per_audio_s * SHORT_S).max(0.0),
            per_audio_s,
        }
    }
}

/// What one layout costs per final.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayoutCosts {
    pub layout: Layout,
    /// A final with the rest of the pool idle: it borrows their cores.
    pub lone: Cost,
    /// A final while every worker runs one.
    pub busy: Cost,
}

/// Measures `layout` on this machine with `speech` (16 kHz, at least
/// [`LONG_S`] long).
pub fn measure(
    model: &ModelConfig,
    layout: Layout,
    speech: &[f32],
) -> Result<LayoutCosts, CalibrateError> {
    let long = (LONG_S as usize * SAMPLE_RATE_HZ).min(speech.len());
    let clips = [
        &speech[..SHORT_S as usize * SAMPLE_RATE_HZ],
        &speech[..long],
    ];
    let whisper = WhisperModel::load(model, layout.threads)?;
    let mut transcribers = (0..layout.workers)
        .map(|_| whisper.transcriber())
        .collect::<Result<Vec<_>, _>>()?;

    // Alone: the first worker with every core's threads.
    let first = &mut transcribers[0];
    first.set_threads(layout.workers * layout.threads);
    once(first, clips[0])?;
    let lone = [median(first, clips[0])?, median(first, clips[1])?];
    first.set_threads(layout.threads);

    // Busy: every worker at once, short and long back to back.
    let timings = std::thread::scope(|scope| {
        let handles: Vec<_> = transcribers
            .iter_mut()
            .map(|t| {
                scope.spawn(move || {
                    let mut out = [0.0; 2];
                    for _ in 0..RUNS.min(2) {
                        for (k, clip) in clips.iter().enumerate() {
                            out[k] += once(t, clip)? / RUNS.min(2) as f64;
                        }
                    }
                    Ok::<_, CalibrateError>(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| CalibrateError::Panicked)?)
            .collect::<Result<Vec<_>, _>>()
    })?;
    let mean = |k: usize| timings.iter().map(|t| t[k]).sum::<f64>() / timings.len() as f64;
    Ok(LayoutCosts {
        layout,
        lone: Cost::through(lone[0], lone[1]),
        busy: Cost::through(mean(0), mean(1)),
    })
}

/// Seconds one final of `clip` takes.
fn once(t: &mut dyn Transcriber, clip: &[f32]) -> Result<f64, CalibrateError> {
    let start = Instant::now();
    t.transcribe(clip, JobKind::Final, &DecodeOptions::default())?;
    Ok(start.elapsed().as_secs_f64())
}

fn median(t: &mut dyn Transcriber, clip: &[f32]) -> Result<f64, CalibrateError> {
    let mut runs = (0..RUNS)
        .map(|_| once(t, clip))
        .collect::<Result<Vec<_>, _>>()?;
    runs.sort_by(f64::total_cmp);
    Ok(runs[RUNS / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_use_every_core() {
        assert_eq!(
            Layout::candidates(2),
            vec![
                Layout {
                    workers: 2,
                    threads: 1
                },
                Layout {
                    workers: 1,
                    threads: 2
                }
            ]
        );
        assert_eq!(Layout::candidates(1).len(), 1);
        assert!(
            Layout::candidates(16)
                .iter()
                .all(|l| l.workers * l.threads == 16)
        );
    }

    #[test]
    fn the_cost_line_goes_through_both_points() {
        let c = Cost::through(0.5, 0.56);
        assert!((c.of(SHORT_S) - 0.5).abs() < 1e-9);
        assert!((c.of(LONG_S) - 0.56).abs() < 1e-9);
        // A long clip measured faster than a short one is noise: flat.
        assert_eq!(Cost::through(0.5, 0.4).per_audio_s, 0.0);
    }
}
