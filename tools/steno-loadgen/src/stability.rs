//! Soak checks: the server's memory samples and the per-utterance latencies
//! in, the figures a long run must keep flat out, each with its bound from
//! the command line: memory growth after warm-up (the least-squares slope of
//! RSS, extrapolated to 10 minutes; and the growth of live heap bytes between
//! two windows of the same length, one just after the warm-up and one at the
//! end) and latency drift (end of speech to final p95 in the second half of
//! the conversation against the first half's).
//!
//! RSS climbs to the allocator's high-water mark for minutes and stays
//! there, so only a long run's slope says anything; live heap bytes follow
//! what the server holds, so the two-window comparison fails a leak in two
//! minutes while a healthy server passes it however busy the machine is.

use serde::{Deserialize, Serialize};

use crate::analysis::{Stats, UtteranceResult};
use crate::server::ResourceSample;

/// Fewest RSS samples (one a second) a slope is fitted to.
const MIN_RSS_SAMPLES: usize = 10;
/// Fewest finals in each half of the conversation a p95 is taken from.
const MIN_HALF_FINALS: usize = 5;
/// Fewest heap samples in each window of the heap check.
const MIN_HEAP_SAMPLES: usize = 5;

/// What the run was asked to hold; a bound of None is measured, not checked.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Limits {
    pub max_rss_slope_mb_per_10min: Option<f64>,
    /// Run seconds before which RSS samples do not count (the allocator and
    /// the sessions' buffers reach their working size).
    pub rss_warmup_s: f64,
    pub max_p95_drift: Option<f64>,
    /// Seconds added to the drift bound: the second half's p95 may reach
    /// `max_p95_drift x first + slack`, so a few slow finals on a shared
    /// machine do not fail a run whose latency is not growing.
    #[serde(default)]
    pub p95_drift_slack_s: f64,
    /// Most MB the median live heap of the last window may exceed the first
    /// window's by.
    #[serde(default)]
    pub max_heap_growth_mb: Option<f64>,
}

/// Live heap bytes in two windows of the same length: just after the
/// warm-up and at the end of the conversation.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HeapGrowth {
    pub first: HeapWindow,
    pub last: HeapWindow,
    /// `last.median_mb - first.median_mb`.
    pub growth_mb: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HeapWindow {
    pub from_s: f64,
    pub to_s: f64,
    pub samples: usize,
    pub median_mb: f64,
    pub peak_mb: f64,
}

/// Server RSS from the end of the warm-up to the end of the conversation.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RssTrend {
    pub from_s: f64,
    pub to_s: f64,
    pub samples: usize,
    /// The first and last sample in the window, and the highest.
    pub start_mb: f64,
    pub end_mb: f64,
    pub peak_mb: f64,
    /// Least-squares slope of RSS over run time, times 600 s.
    pub slope_mb_per_10min: f64,
}

/// End of speech to final, utterances split by when their speech ended.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LatencyDrift {
    /// Conversation start (after the ramp-up), middle and end, run seconds.
    pub from_s: f64,
    pub split_s: f64,
    pub to_s: f64,
    pub first_half: Stats,
    pub second_half: Stats,
    /// `second_half.p95 / first_half.p95`: 1.0 = stable, above = growing.
    pub p95_ratio: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stability {
    pub limits: Limits,
    /// None: too few samples (no server PID, or a window under 10 s).
    pub rss: Option<RssTrend>,
    /// None: no heap figures (the server does not count) or too few samples.
    #[serde(default)]
    pub heap: Option<HeapGrowth>,
    /// None: too few finals in a half.
    pub latency: Option<LatencyDrift>,
    /// Bounds broken or not checkable, as sentences; empty = ok.
    pub problems: Vec<String>,
}

/// Measures both figures and checks them against `limits`. The conversation
/// runs from `conversation_s.0` (after the ramp-up) to `conversation_s.1`.
pub fn assess(
    limits: Limits,
    samples: &[ResourceSample],
    results: &[UtteranceResult],
    conversation_s: (f64, f64),
) -> Stability {
    let (start, end) = conversation_s;
    let rss = rss_trend(samples, limits.rss_warmup_s, end);
    let heap = heap_growth(samples, limits.rss_warmup_s, end);
    let latency = latency_drift(results, start, end);
    let mut problems = Vec::new();
    if let Some(bound) = limits.max_heap_growth_mb {
        match &heap {
            Some(h) if h.growth_mb > bound => problems.push(format!(
                "server live heap grew {:+.1} MB: median {:.1} MB over {:.0}-{:.0} s, {:.1} MB over {:.0}-{:.0} s, above the bound of {bound} MB",
                h.growth_mb, h.first.median_mb, h.first.from_s, h.first.to_s, h.last.median_mb, h.last.from_s, h.last.to_s
            )),
            Some(_) => {}
            None => problems.push(format!(
                "cannot check heap growth: the server reported no steno_heap_live_bytes, or fewer than {MIN_HEAP_SAMPLES} samples in a window of {:.0}-{end:.0} s",
                limits.rss_warmup_s
            )),
        }
    }
    if let Some(bound) = limits.max_rss_slope_mb_per_10min {
        match &rss {
            Some(r) if r.slope_mb_per_10min > bound => problems.push(format!(
                "server RSS grew {:+.1} MB per 10 minutes after warm-up (least squares over {:.0}-{:.0} s, {:.1} -> {:.1} MB), above the bound of {bound} MB",
                r.slope_mb_per_10min, r.from_s, r.to_s, r.start_mb, r.end_mb
            )),
            Some(_) => {}
            None => problems.push(format!(
                "cannot check RSS growth: fewer than {MIN_RSS_SAMPLES} server samples between {:.0} s and {end:.0} s",
                limits.rss_warmup_s
            )),
        }
    }
    if let Some(bound) = limits.max_p95_drift {
        match &latency {
            Some(l) if l.second_half.p95 > bound * l.first_half.p95 + limits.p95_drift_slack_s => problems.push(format!(
                "end of speech to final p95 drifted from {:.2} s ({:.0}-{:.0} s) to {:.2} s ({:.0}-{:.0} s): x{:.2}, above the bound of x{bound} + {} s",
                l.first_half.p95, l.from_s, l.split_s, l.second_half.p95, l.split_s, l.to_s, l.p95_ratio, limits.p95_drift_slack_s
            )),
            Some(_) => {}
            None => problems.push(format!(
                "cannot check p95 drift: fewer than {MIN_HALF_FINALS} finals in a half of {start:.0}-{end:.0} s"
            )),
        }
    }
    Stability {
        limits,
        rss,
        heap,
        latency,
        problems,
    }
}

/// RSS over `[from_s, to_s]`, or None with fewer than `MIN_RSS_SAMPLES`.
pub fn rss_trend(samples: &[ResourceSample], from_s: f64, to_s: f64) -> Option<RssTrend> {
    let window: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.t >= from_s && s.t <= to_s)
        .map(|s| (s.t, s.rss_mb))
        .collect();
    if window.len() < MIN_RSS_SAMPLES {
        return None;
    }
    Some(RssTrend {
        from_s: window[0].0,
        to_s: window[window.len() - 1].0,
        samples: window.len(),
        start_mb: window[0].1,
        end_mb: window[window.len() - 1].1,
        peak_mb: window.iter().map(|p| p.1).fold(0.0, f64::max),
        slope_mb_per_10min: least_squares_slope(&window)? * 600.0,
    })
}

/// Live heap in the first and the last third of `[from_s, to_s]`, or None
/// without enough heap samples in either.
pub fn heap_growth(samples: &[ResourceSample], from_s: f64, to_s: f64) -> Option<HeapGrowth> {
    let third = (to_s - from_s) / 3.0;
    let window = |lo: f64, hi: f64| {
        let mut mb: Vec<f64> = samples
            .iter()
            .filter(|s| s.t >= lo && s.t <= hi)
            .filter_map(|s| s.heap_mb)
            .collect();
        if mb.len() < MIN_HEAP_SAMPLES {
            return None;
        }
        mb.sort_by(f64::total_cmp);
        Some(HeapWindow {
            from_s: lo,
            to_s: hi,
            samples: mb.len(),
            median_mb: mb[mb.len() / 2],
            peak_mb: mb[mb.len() - 1],
        })
    };
    let first = window(from_s, from_s + third)?;
    let last = window(to_s - third, to_s)?;
    Some(HeapGrowth {
        growth_mb: last.median_mb - first.median_mb,
        first,
        last,
    })
}

/// The slope of the least-squares line through `points` (x, y); None for
/// fewer than two distinct x.
pub fn least_squares_slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(sxy, sxx), (x, y)| {
        let dx = x - mean_x;
        (sxy + dx * (y - mean_y), sxx + dx * dx)
    });
    (sxx > 0.0).then(|| sxy / sxx)
}

/// p95 of the finals whose speech ended in the first half of
/// `[from_s, to_s]` against the second half's; None with fewer than
/// `MIN_HALF_FINALS` in a half.
pub fn latency_drift(results: &[UtteranceResult], from_s: f64, to_s: f64) -> Option<LatencyDrift> {
    let split_s = (from_s + to_s) / 2.0;
    let half = |lo: f64, hi: f64| {
        Stats::of(
            results
                .iter()
                .filter(|r| r.t_speech_end >= lo && r.t_speech_end < hi)
                .filter_map(|r| r.eos_to_final_s)
                .collect(),
        )
    };
    let first_half = half(from_s, split_s);
    let second_half = half(split_s, to_s);
    if first_half.n < MIN_HALF_FINALS || second_half.n < MIN_HALF_FINALS || first_half.p95 <= 0.0 {
        return None;
    }
    Some(LatencyDrift {
        from_s,
        split_s,
        to_s,
        p95_ratio: second_half.p95 / first_half.p95,
        first_half,
        second_half,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, rss_mb: f64) -> ResourceSample {
        ResourceSample {
            t,
            rss_mb,
            heap_mb: None,
            cpu_pct: 0.0,
            open_sessions: 1,
        }
    }

    fn heap_sample(t: f64, heap_mb: f64) -> ResourceSample {
        ResourceSample {
            heap_mb: Some(heap_mb),
            ..sample(t, 300.0)
        }
    }

    fn utterance(t_speech_end: f64, eos_to_final_s: f64) -> UtteranceResult {
        UtteranceResult {
            user: 0,
            clip: "c".into(),
            librispeech: false,
            t_speech_end,
            t_final: Some(t_speech_end + eos_to_final_s),
            eos_to_final_s: Some(eos_to_final_s),
            first_partial_s: None,
            finals: 1,
            degraded: false,
            text: String::new(),
            edits: 0,
            words: 0,
        }
    }

    #[test]
    fn the_slope_of_a_line_is_exact_and_of_noise_around_a_level_near_zero() {
        let line: Vec<(f64, f64)> = (0..50)
            .map(|i| (i as f64, 200.0 + 0.5 * i as f64))
            .collect();
        assert!((least_squares_slope(&line).unwrap() - 0.5).abs() < 1e-12);
        // A saw tooth of +-4 MB around 240 MB: level on average.
        let flat: Vec<(f64, f64)> = (0..80)
            .map(|i| (i as f64, 240.0 + if i % 2 == 0 { 4.0 } else { -4.0 }))
            .collect();
        assert!(least_squares_slope(&flat).unwrap().abs() < 0.01);
        assert_eq!(least_squares_slope(&[(3.0, 1.0), (3.0, 2.0)]), None);
        assert_eq!(least_squares_slope(&[(3.0, 1.0)]), None);
    }

    #[test]
    fn rss_growth_counts_only_samples_after_the_warm_up_per_10_minutes() {
        // A climb to 240 MB in the first 40 s, then 1 MB per minute.
        let samples: Vec<ResourceSample> = (0..=120)
            .map(|t| {
                let t = t as f64;
                sample(
                    t,
                    if t < 40.0 {
                        200.0 + t
                    } else {
                        240.0 + (t - 40.0) / 60.0
                    },
                )
            })
            .collect();
        let r = rss_trend(&samples, 40.0, 120.0).unwrap();
        assert_eq!((r.from_s, r.to_s, r.samples), (40.0, 120.0, 81));
        assert!((r.slope_mb_per_10min - 10.0).abs() < 1e-9, "{r:?}");
        assert!((r.end_mb - r.start_mb - 80.0 / 60.0).abs() < 1e-9);
        assert!(rss_trend(&samples, 115.0, 120.0).is_none());
    }

    #[test]
    fn p95_drift_compares_the_halves_of_the_conversation() {
        // Speech ends every second from 10 s to 129 s; the latency doubles
        // at 70 s. Utterances of the ramp-up (before 10 s) do not count.
        let mut results = vec![utterance(5.0, 30.0)];
        results.extend((10..130).map(|t| utterance(t as f64, if t < 70 { 1.0 } else { 2.0 })));
        let d = latency_drift(&results, 10.0, 130.0).unwrap();
        assert_eq!((d.split_s, d.first_half.n, d.second_half.n), (70.0, 60, 60));
        assert_eq!(
            (d.first_half.p95, d.second_half.p95, d.p95_ratio),
            (1.0, 2.0, 2.0)
        );
        assert!(latency_drift(&results[..8], 10.0, 130.0).is_none());
    }

    #[test]
    fn bounds_fail_the_run_when_broken_or_not_checkable() {
        let samples: Vec<ResourceSample> = (0..=120)
            .map(|t| sample(t as f64, 240.0 + t as f64 / 60.0))
            .collect();
        let results: Vec<UtteranceResult> = (10..130)
            .map(|t| utterance(t as f64, 1.0 + t as f64 / 100.0))
            .collect();
        let limits = |rss, p95| Limits {
            max_rss_slope_mb_per_10min: rss,
            rss_warmup_s: 40.0,
            max_p95_drift: p95,
            ..Limits::default()
        };
        let ok = assess(
            limits(Some(10.5), Some(1.5)),
            &samples,
            &results,
            (10.0, 130.0),
        );
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        let broken = assess(
            limits(Some(9.5), Some(1.2)),
            &samples,
            &results,
            (10.0, 130.0),
        );
        assert_eq!(broken.problems.len(), 2, "{:?}", broken.problems);
        assert!(broken.problems[0].contains("+10.0 MB per 10 minutes"));
        assert!(broken.problems[1].contains("x1.3"));
        // Measured but unchecked without bounds; unmeasurable with bounds fails.
        assert!(
            assess(limits(None, None), &[], &[], (10.0, 130.0))
                .problems
                .is_empty()
        );
        assert_eq!(
            assess(limits(Some(1.0), Some(2.0)), &[], &[], (10.0, 130.0))
                .problems
                .len(),
            2
        );
    }

    #[test]
    fn heap_growth_compares_the_first_and_last_thirds_and_ignores_spikes() {
        // A busy server: 40 MB with a 30 MB spike every 7 s, no growth.
        let busy: Vec<ResourceSample> = (0..=130)
            .map(|t| heap_sample(t as f64, if t % 7 == 0 { 70.0 } else { 40.0 }))
            .collect();
        let h = heap_growth(&busy, 40.0, 130.0).unwrap();
        assert_eq!((h.first.from_s, h.first.to_s), (40.0, 70.0));
        assert_eq!((h.last.from_s, h.last.to_s), (100.0, 130.0));
        assert_eq!((h.growth_mb, h.last.peak_mb), (0.0, 70.0));
        // A leak of 0.3 MB a second (every final's audio kept) on top.
        let leaking: Vec<ResourceSample> = busy
            .iter()
            .map(|s| heap_sample(s.t, s.heap_mb.unwrap() + 0.3 * s.t))
            .collect();
        let h = heap_growth(&leaking, 40.0, 130.0).unwrap();
        assert!((h.growth_mb - 18.0).abs() < 0.31, "{h:?}");
        let limits = Limits {
            max_heap_growth_mb: Some(8.0),
            rss_warmup_s: 40.0,
            ..Limits::default()
        };
        assert!(
            assess(limits, &busy, &[], (10.0, 130.0))
                .problems
                .is_empty()
        );
        let broken = assess(limits, &leaking, &[], (10.0, 130.0));
        assert!(
            broken.problems[0].contains("live heap grew +17.7 MB"),
            "{:?}",
            broken.problems
        );
        // A server that does not count its heap cannot pass the check.
        let rss_only: Vec<ResourceSample> = (0..=130).map(|t| sample(t as f64, 300.0)).collect();
        assert_eq!(
            assess(limits, &rss_only, &[], (10.0, 130.0)).problems.len(),
            1
        );
    }

    #[test]
    fn the_drift_bound_has_an_absolute_slack() {
        // p95 from 1 s to 2.2 s: over x1.5 alone, within x1.5 + 1 s.
        let mut results: Vec<UtteranceResult> =
            (10..70).map(|t| utterance(t as f64, 1.0)).collect();
        results.extend((70..130).map(|t| utterance(t as f64, 2.2)));
        let limits = |slack| Limits {
            max_p95_drift: Some(1.5),
            p95_drift_slack_s: slack,
            ..Limits::default()
        };
        assert_eq!(
            assess(limits(0.0), &[], &results, (10.0, 130.0))
                .problems
                .len(),
            1
        );
        assert!(
            assess(limits(1.0), &[], &results, (10.0, 130.0))
                .problems
                .is_empty()
        );
    }
}
