//! Live counters the users bump as they go, and the progress line printed
//! from them while a run lasts.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::analysis::Stats;

/// Counters shared by every user; cheap to bump from the hot path.
#[derive(Default)]
pub struct Live {
    open: AtomicUsize,
    admitted: AtomicUsize,
    refused: AtomicUsize,
    clips: AtomicUsize,
    finals: AtomicUsize,
    partials: AtomicUsize,
    errors: AtomicUsize,
    problems: AtomicUsize,
    /// End-of-speech-to-final latencies since the last progress line.
    recent: Mutex<Vec<f64>>,
}

impl Live {
    pub fn admitted(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.admitted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self, unexpected: bool) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        if unexpected {
            self.problem();
        }
    }

    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn problem(&self) {
        self.problems.fetch_add(1, Ordering::Relaxed);
    }

    pub fn clip_started(&self) {
        self.clips.fetch_add(1, Ordering::Relaxed);
    }

    pub fn final_arrived(&self, latency_s: Option<f64>) {
        self.finals.fetch_add(1, Ordering::Relaxed);
        if let Some(l) = latency_s {
            self.recent.lock().unwrap().push(l);
        }
    }

    pub fn partial_arrived(&self) {
        self.partials.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn open_sessions(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// One progress line; takes (and clears) the recent latencies.
    pub fn line(&self, t: f64, rss_mb: Option<f64>, cpu_pct: Option<f64>) -> String {
        let recent = Stats::of(std::mem::take(&mut *self.recent.lock().unwrap()));
        let load = |n: &AtomicUsize| n.load(Ordering::Relaxed);
        let mut line = format!(
            "t={t:5.0}s open {:3} admitted {:3} refused {:2} | utterances {:5} finals {:5} partials {:5} | errors {} problems {}",
            load(&self.open),
            load(&self.admitted),
            load(&self.refused),
            load(&self.clips),
            load(&self.finals),
            load(&self.partials),
            load(&self.errors),
            load(&self.problems),
        );
        if recent.n > 0 {
            line += &format!(
                " | final after {:.2}/{:.2} s (p50/max, n={})",
                recent.p50, recent.max, recent.n
            );
        }
        if let Some(rss) = rss_mb {
            line += &format!(" | server {rss:.0} MB");
        }
        if let Some(cpu) = cpu_pct {
            line += &format!(" {cpu:.0}% CPU");
        }
        line
    }
}
