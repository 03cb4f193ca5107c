//! Load: the audio of closed utterances and the live inferences in; `steno_load_ratio`, speech offered per second over what the pool transcribes per second, out.
//!
//! For a load balancer or an autoscaler: 1.0 means the pool transcribes
//! exactly as fast as the users speak; above it, finals queue and latency
//! grows. Sampled once a second over the last [`WINDOW`]. The pool's rate
//! is what its live inferences (finals, early finals) achieved in the same
//! window, times the number of workers; partials and file windows also use
//! the workers, so the ratio understates the load beside them. A lone final
//! that borrowed the idle cores runs faster than it would under load, so a
//! quiet server's ratio is an underestimate too; under load it is close.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How far back the ratio looks.
pub const WINDOW: Duration = Duration::from_secs(30);

static OFFERED_MS: AtomicU64 = AtomicU64::new(0);
static SERVED_AUDIO_MS: AtomicU64 = AtomicU64::new(0);
static SERVED_BUSY_US: AtomicU64 = AtomicU64::new(0);

/// An utterance of `samples` (16 kHz) was closed and sent for its final.
pub fn offered(samples: usize) {
    OFFERED_MS.fetch_add(samples as u64 / 16, Ordering::Relaxed);
}

/// A live inference covered `audio_s` of audio in `busy_s` of one worker.
pub fn served(audio_s: f64, busy_s: f64) {
    SERVED_AUDIO_MS.fetch_add((audio_s * 1000.0) as u64, Ordering::Relaxed);
    SERVED_BUSY_US.fetch_add((busy_s * 1e6) as u64, Ordering::Relaxed);
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub at: Instant,
    pub offered_ms: u64,
    pub served_audio_ms: u64,
    pub served_busy_us: u64,
}

impl Sample {
    pub fn now() -> Self {
        Self {
            at: Instant::now(),
            offered_ms: OFFERED_MS.load(Ordering::Relaxed),
            served_audio_ms: SERVED_AUDIO_MS.load(Ordering::Relaxed),
            served_busy_us: SERVED_BUSY_US.load(Ordering::Relaxed),
        }
    }
}

/// The samples of the last `span`, and the pool's last known speed.
#[derive(Debug)]
pub struct Window {
    span: Duration,
    samples: VecDeque<Sample>,
    /// Seconds of audio one worker transcribes per second, from the last
    /// window that had inferences; kept through quiet spells.
    speed: Option<f64>,
}

impl Window {
    pub fn new(span: Duration) -> Self {
        Self {
            span,
            samples: VecDeque::new(),
            speed: None,
        }
    }

    /// Adds a sample; forgets those older than the span.
    pub fn push(&mut self, sample: Sample) {
        self.samples.push_back(sample);
        while self
            .samples
            .front()
            .is_some_and(|s| sample.at.duration_since(s.at) > self.span)
        {
            self.samples.pop_front();
        }
        let (first, last) = (self.samples[0], sample);
        let busy_us = last.served_busy_us - first.served_busy_us;
        if busy_us > 0 {
            let audio_ms = last.served_audio_ms - first.served_audio_ms;
            self.speed = Some(audio_ms as f64 * 1000.0 / busy_us as f64);
        }
    }

    /// Speech offered per second over what `workers` transcribe per second;
    /// 0 until the window spans a second or before the first inference.
    pub fn ratio(&self, workers: usize) -> f64 {
        let (Some(first), Some(last)) = (self.samples.front(), self.samples.back()) else {
            return 0.0;
        };
        let elapsed = last.at.duration_since(first.at).as_secs_f64();
        let Some(speed) = self.speed else {
            return 0.0;
        };
        if elapsed < 1.0 || speed <= 0.0 || workers == 0 {
            return 0.0;
        }
        let offered_per_s = (last.offered_ms - first.offered_ms) as f64 / 1000.0 / elapsed;
        offered_per_s / (speed * workers as f64)
    }
}

/// Samples once a second and publishes the ratio until `stop`.
pub async fn run(workers: usize, stop: CancellationToken) {
    let mut window = Window::new(WINDOW);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                window.push(Sample::now());
                crate::metrics::load_ratio(window.ratio(workers));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, s: u64, offered_ms: u64, audio_ms: u64, busy_ms: u64) -> Sample {
        Sample {
            at: start + Duration::from_secs(s),
            offered_ms,
            served_audio_ms: audio_ms,
            served_busy_us: busy_ms * 1000,
        }
    }

    #[test]
    fn ratio_is_offered_speech_over_the_pools_speed() {
        let t = Instant::now();
        let mut w = Window::new(Duration::from_secs(30));
        w.push(at(t, 0, 0, 0, 0));
        // 10 s: 20 s of speech offered (2 s/s); each worker did 10 s of audio
        // in 1 s of work (10x), two workers: 20 s/s. Ratio 0.1.
        w.push(at(t, 10, 20_000, 10_000, 1_000));
        assert!((w.ratio(2) - 0.1).abs() < 1e-9, "{}", w.ratio(2));
        assert!((w.ratio(1) - 0.2).abs() < 1e-9);
    }

    #[test]
    fn quiet_spells_keep_the_last_speed_and_old_samples_leave() {
        let t = Instant::now();
        let mut w = Window::new(Duration::from_secs(5));
        assert_eq!(w.ratio(1), 0.0);
        w.push(at(t, 0, 0, 0, 0));
        w.push(at(t, 4, 8_000, 4_000, 1_000));
        // No inference in the window after this, but speech offered: the
        // speed of 4x stays.
        w.push(at(t, 10, 48_000, 4_000, 1_000));
        w.push(at(t, 12, 56_000, 4_000, 1_000));
        // The window now holds t+10 and t+12 only: 8 s offered in 2 s.
        assert!((w.ratio(1) - 1.0).abs() < 1e-9, "{}", w.ratio(1));
    }

    #[test]
    fn no_ratio_before_the_first_inference() {
        let t = Instant::now();
        let mut w = Window::new(Duration::from_secs(30));
        w.push(at(t, 0, 0, 0, 0));
        w.push(at(t, 5, 10_000, 0, 0));
        assert_eq!(w.ratio(2), 0.0);
    }
}
