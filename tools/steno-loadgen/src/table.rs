//! Reports as text: one run's summary table on stdout, and the markdown
//! capacity table with a sizing hint for several runs (one per sweep step;
//! docs/capacity.md is written from it).

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};

use crate::analysis::Stats;
use crate::report::Report;
use crate::stability::Stability;

/// Targets a step must meet to count as within capacity.
const P50_TARGET_S: f64 = 0.8;
const P95_TARGET_S: f64 = 1.5;

pub fn print(paths: &[PathBuf]) -> Result<()> {
    ensure!(!paths.is_empty(), "give one or more JSON reports");
    let mut reports = paths
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str::<Report>(&text)
                .with_context(|| format!("parsing {}", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    reports.sort_by_key(|r| r.settings.users);
    println!(
        "| users | admitted | refused | errors | unexpected closes | utterances | degraded | EoS->final p50 | p95 | p99 | first partial p50 | p95 | WER all | WER LibriSpeech | speech in (s/s) | workers busy | server CPU | peak RSS | loadgen CPU | others' CPU |"
    );
    println!("|{}", "---:|".repeat(20));
    for r in &reports {
        let refused: usize = r.sessions.refused.values().sum::<usize>() + r.sessions.extra_refused;
        let errors: usize = r.errors_by_code.values().sum();
        let l = &r.eos_to_final_s;
        let p = &r.first_partial_s;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.1}% | {:.1}% | {:.1} | {:.0}% | {:.0}% | {:.0} MB | {:.0}% | {:.0}% |",
            r.settings.users,
            r.sessions.admitted,
            refused,
            errors,
            r.unexpected_closes,
            r.utterances.sent,
            r.utterances.degraded,
            l.p50,
            l.p95,
            l.p99,
            p.p50,
            p.p95,
            r.wer_all.wer * 100.0,
            r.wer_librispeech.wer * 100.0,
            r.throughput.speech_sent_per_s,
            r.throughput.worker_busy_fraction * 100.0,
            r.server.mean_cpu_pct,
            r.server.peak_rss_mb,
            r.loadgen_cpu_pct,
            r.other_cpu_pct,
        );
    }
    println!();
    let within: Vec<&Report> = reports
        .iter()
        .filter(|r| {
            r.ok && r.eos_to_final_s.p50 <= P50_TARGET_S && r.eos_to_final_s.p95 <= P95_TARGET_S
        })
        .collect();
    match within.last() {
        Some(best) => println!(
            "Largest step within the targets (no errors, p50 <= {P50_TARGET_S} s, p95 <= {P95_TARGET_S} s): **{} users** (p95 {:.2} s, workers busy {:.0}%).",
            best.settings.users,
            best.eos_to_final_s.p95,
            best.throughput.worker_busy_fraction * 100.0
        ),
        None => println!(
            "No step met the targets (no errors, p50 <= {P50_TARGET_S} s, p95 <= {P95_TARGET_S} s)."
        ),
    }
    let (speech, users) = reports.iter().fold((0.0, 0), |(s, u), r| {
        (s + r.throughput.speech_sent_per_s, u + r.settings.users)
    });
    if users > 0 {
        println!(
            "A simulated user spoke {:.0}% of the time (seconds of speech per wall second per user).",
            speech / users as f64 * 100.0
        );
    }
    if let (Some(first), Some(last)) = (reports.first(), reports.last()) {
        let users = (last.settings.users + last.settings.idle_users)
            .saturating_sub(first.settings.users + first.settings.idle_users);
        if users > 0 {
            println!(
                "Peak RSS: {:.0} MB at {} users, {:.0} MB at {}: {:.1} MB per added user, audio waiting for a worker included.",
                first.server.peak_rss_mb,
                first.settings.users,
                last.server.peak_rss_mb,
                last.settings.users,
                (last.server.peak_rss_mb - first.server.peak_rss_mb) / users as f64,
            );
        }
    }
    Ok(())
}

/// The short table printed at the end of a run.
pub fn print_summary(r: &Report) {
    let s = &r.settings;
    let refused: Vec<String> = r
        .sessions
        .refused
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    let errors: Vec<String> = r
        .errors_by_code
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    let stat = |x: &Stats| {
        format!(
            "p50 {:.3} s  p95 {:.3} s  p99 {:.3} s  max {:.3} s  (n={})",
            x.p50, x.p95, x.p99, x.max, x.n
        )
    };
    println!(
        "steno-loadgen: {} users + {} idle + {} extra for {:.0} s (ramp-up {:.0} s, pace {}) against {}",
        s.users, s.idle_users, s.extra_users, s.duration_s, s.ramp_up_s, s.pace, s.target
    );
    println!(
        "{:<24}{}",
        "result",
        if r.ok {
            "OK"
        } else {
            "PROBLEMS (see problems in the JSON report)"
        }
    );
    println!(
        "{:<24}admitted {}, refused [{}], extra refused {}/{} (admitted {}), connect errors {}",
        "sessions",
        r.sessions.admitted,
        refused.join(", "),
        r.sessions.extra_refused,
        r.sessions.extra_planned,
        r.sessions.extra_admitted,
        r.sessions.connect_errors
    );
    println!(
        "{:<24}[{}], unexpected closes {}{}",
        "errors",
        errors.join(", "),
        r.unexpected_closes,
        if r.timed_out {
            ", HIT THE HARD TIME LIMIT"
        } else {
            ""
        }
    );
    let u = &r.utterances;
    println!(
        "{:<24}{} spoken, {} with a final, {} without, {} split, {} finals in silence, \
         {} degraded",
        "utterances",
        u.sent,
        u.with_final,
        u.without_final,
        u.split,
        u.unmatched_finals,
        u.degraded
    );
    println!(
        "{:<24}{}",
        "end of speech -> final",
        stat(&r.eos_to_final_s)
    );
    println!(
        "{:<24}{}",
        "speech -> 1st partial",
        stat(&r.first_partial_s)
    );
    println!(
        "{:<24}all {:.2}% ({} words), LibriSpeech {:.2}% ({} words)",
        "WER",
        r.wer_all.wer * 100.0,
        r.wer_all.words,
        r.wer_librispeech.wer * 100.0,
        r.wer_librispeech.words
    );
    let t = &r.throughput;
    println!(
        "{:<24}speech sent {:.1} s/s, finals transcribed {:.1} s/s, workers busy {:.0}% ({} workers), final capacity {:.1} s/s",
        "throughput",
        t.speech_sent_per_s,
        t.final_audio_per_s,
        t.worker_busy_fraction * 100.0,
        t.workers,
        t.final_capacity_per_s
    );
    println!(
        "{:<24}peak RSS {:.0} MB, mean CPU {:.0}% (peak {:.0}%)",
        "server", r.server.peak_rss_mb, r.server.mean_cpu_pct, r.server.peak_cpu_pct,
    );
    println!(
        "{:<24}load generator {:.0}% CPU, everything else {:.0}% CPU, load average {:.2} at start",
        "machine", r.loadgen_cpu_pct, r.other_cpu_pct, r.load_average_at_start
    );
    print_stability(&r.stability);
}

/// The soak figures, each with its bound and verdict.
fn print_stability(s: &Stability) {
    let verdict = |bound: Option<f64>, value: f64| match bound {
        Some(b) if value > b => format!(" (bound {b}: FAILED)"),
        Some(b) => format!(" (bound {b}: ok)"),
        None => " (not checked)".to_string(),
    };
    match &s.rss {
        Some(m) => println!(
            "{:<24}{:+.1} MB per 10 min (least squares over {:.0}-{:.0} s, {} samples: {:.1} -> {:.1} MB, peak {:.1} MB){}",
            "RSS after warm-up",
            m.slope_mb_per_10min,
            m.from_s,
            m.to_s,
            m.samples,
            m.start_mb,
            m.end_mb,
            m.peak_mb,
            verdict(s.limits.max_rss_slope_mb_per_10min, m.slope_mb_per_10min)
        ),
        None => println!("{:<24}too few server samples", "RSS after warm-up"),
    }
    match &s.heap {
        Some(h) => println!(
            "{:<24}{:+.1} MB (median {:.1} MB over {:.0}-{:.0} s, n={} -> {:.1} MB over {:.0}-{:.0} s, n={}; peak {:.1} MB){}",
            "live heap growth",
            h.growth_mb,
            h.first.median_mb,
            h.first.from_s,
            h.first.to_s,
            h.first.samples,
            h.last.median_mb,
            h.last.from_s,
            h.last.to_s,
            h.last.samples,
            h.first.peak_mb.max(h.last.peak_mb),
            verdict(s.limits.max_heap_growth_mb, h.growth_mb)
        ),
        None => println!("{:<24}not reported by the server", "live heap growth"),
    }
    match &s.latency {
        Some(l) => println!(
            "{:<24}p95 {:.2} s ({:.0}-{:.0} s, n={}) -> {:.2} s ({:.0}-{:.0} s, n={}): x{:.2}{}",
            "EoS->final p95 drift",
            l.first_half.p95,
            l.from_s,
            l.split_s,
            l.first_half.n,
            l.second_half.p95,
            l.split_s,
            l.to_s,
            l.second_half.n,
            l.p95_ratio,
            match s.limits.max_p95_drift {
                Some(b) => {
                    let bound = b * l.first_half.p95 + s.limits.p95_drift_slack_s;
                    let ok = if l.second_half.p95 > bound {
                        "FAILED"
                    } else {
                        "ok"
                    };
                    format!(
                        " (bound x{b} + {} s = {bound:.2} s: {ok})",
                        s.limits.p95_drift_slack_s
                    )
                }
                None => " (not checked)".to_string(),
            }
        ),
        None => println!("{:<24}too few finals in a half", "EoS->final p95 drift"),
    }
    for p in &s.problems {
        println!("{:<24}{p}", "stability problem");
    }
}
