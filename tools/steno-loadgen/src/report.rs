//! The run's report: user outcomes, server samples and metrics in; the JSON
//! report and the summary table on stdout out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use steno_protocol::ServerMessage;

use crate::analysis::{self, Score, Stats, UtteranceResult};
use crate::server::{Metrics, ResourceSample};
use crate::stability::{self, Stability};
use crate::user::{Role, UserOutcome};

/// What was asked for, echoed so a report stands on its own.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    pub target: String,
    pub users: usize,
    pub extra_users: usize,
    pub idle_users: usize,
    pub duration_s: f64,
    pub ramp_up_s: f64,
    pub pause_s: (f64, f64),
    /// Only clips with at most this much speech (`--max-clip-s`).
    #[serde(default)]
    pub max_clip_s: Option<f64>,
    pub pace: f64,
    pub partials: bool,
    pub seed: u64,
    pub clips: usize,
    /// STENO_* variables the load generator saw (passed on to a spawned server).
    pub server_env: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sessions {
    pub planned: usize,
    pub admitted: usize,
    /// Refusals of speakers and idle users, by error code.
    pub refused: BTreeMap<String, usize>,
    pub extra_planned: usize,
    /// Extra users refused as expected (`over_capacity`).
    pub extra_refused: usize,
    /// Extra users let in: the server had more room than the run filled.
    pub extra_admitted: usize,
    pub connect_errors: usize,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UtteranceCounts {
    /// Clips whose speech was sent to the end.
    pub sent: usize,
    pub with_final: usize,
    pub without_final: usize,
    /// Clips the server cut into more than one final.
    pub split: usize,
    /// Finals that matched no clip (text in the silence).
    pub unmatched_finals: usize,
    /// Clips with a final the server marked degraded (it waited past
    /// `workers.degrade_after_ms` and got the smaller window).
    #[serde(default)]
    pub degraded: usize,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Throughput {
    /// Seconds of clip audio sent per second of conversation (ramp-up + duration).
    pub speech_sent_per_s: f64,
    /// `steno_inference_audio_seconds_sum` of kinds `final` and `early`
    /// gained per wall second of the whole run (drain included).
    pub final_audio_per_s: f64,
    /// Model time (finals + partials) per wall second per worker: 1.0 = saturated.
    pub worker_busy_fraction: f64,
    pub workers: f64,
    /// Seconds of final audio per second of model time, times workers: what
    /// the pool can transcribe when saturated, partials off.
    pub final_capacity_per_s: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServerStats {
    pub pid: Option<u32>,
    pub peak_rss_mb: f64,
    pub last_rss_mb: f64,
    /// Mean over the samples taken while sessions were open.
    pub mean_cpu_pct: f64,
    pub peak_cpu_pct: f64,
    pub samples: Vec<ResourceSample>,
    /// How a spawned server exited after SIGTERM.
    pub exit: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// End of the bucket (run seconds).
    pub t: f64,
    pub eos_to_final_s: Stats,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub settings: Settings,
    pub wall_s: f64,
    /// The run hit its hard time limit.
    pub timed_out: bool,
    /// No errors, no unexpected closes, no connection failures, some finals,
    /// and the stability bounds asked for held.
    pub ok: bool,
    pub sessions: Sessions,
    /// Error messages received on admitted sessions, by code.
    pub errors_by_code: BTreeMap<String, usize>,
    pub unexpected_closes: usize,
    /// The first problems, as sentences.
    pub problems: Vec<String>,
    pub utterances: UtteranceCounts,
    pub eos_to_final_s: Stats,
    pub first_partial_s: Stats,
    pub wer_all: Score,
    pub wer_librispeech: Score,
    pub throughput: Throughput,
    pub server: ServerStats,
    /// The load generator's own CPU (it shares the machine).
    pub loadgen_cpu_pct: f64,
    /// CPU used by everything else on the machine during the run (other
    /// builds and tests): above a few % the latency figures are noisy.
    #[serde(default)]
    pub other_cpu_pct: f64,
    /// The 1-minute load average when the run started.
    #[serde(default)]
    pub load_average_at_start: f64,
    pub timeline: Vec<TimelinePoint>,
    /// Memory growth after warm-up and p95 drift, with their bounds.
    #[serde(default)]
    pub stability: Stability,
    pub metrics_end: Metrics,
    pub utterance_results: Vec<UtteranceResult>,
}

/// Inputs beyond the user outcomes.
pub struct RunFacts {
    pub settings: Settings,
    pub wall_s: f64,
    pub timed_out: bool,
    pub samples: Vec<ResourceSample>,
    pub pid: Option<u32>,
    pub metrics_start: Option<Metrics>,
    pub metrics_end: Option<Metrics>,
    pub loadgen_cpu_pct: f64,
    /// The whole machine's CPU during the run, % of one core.
    pub machine_cpu_pct: f64,
    pub load_average_at_start: f64,
    pub bucket_s: f64,
    pub limits: stability::Limits,
}

pub fn build(outcomes: &[UserOutcome], facts: RunFacts) -> Report {
    let mut sessions = Sessions::default();
    let mut errors_by_code = BTreeMap::new();
    let mut unexpected = 0;
    let mut problems = Vec::new();
    let mut results = Vec::new();
    let mut counts = UtteranceCounts::default();
    let mut speech_sent_s = 0.0;
    for u in outcomes {
        if u.role == Role::Extra {
            sessions.extra_planned += 1;
        } else {
            sessions.planned += 1;
        }
        let mut problem = |what: String| problems.push(format!("user {}: {what}", u.id));
        if let Some(e) = &u.connect_error {
            sessions.connect_errors += 1;
            problem(format!("could not connect: {e}"));
            continue;
        }
        if let Some(code) = &u.refusal {
            match u.role {
                Role::Extra => sessions.extra_refused += 1,
                _ => *sessions.refused.entry(code.clone()).or_insert(0) += 1,
            }
            if u.close_code != Some(1013) {
                unexpected += 1;
                problem(format!(
                    "refused ({code}) but closed with {:?}",
                    u.close_code
                ));
            }
            continue;
        }
        if u.admitted {
            match u.role {
                Role::Extra => sessions.extra_admitted += 1,
                _ => sessions.admitted += 1,
            }
        }
        for e in &u.events {
            if let ServerMessage::Error { code, message, .. } = &e.msg {
                *errors_by_code.entry(code.as_str().to_string()).or_insert(0) += 1;
                problem(format!(
                    "error {} at {:.1} s: {message}",
                    code.as_str(),
                    e.t
                ));
            }
        }
        if u.problem.is_some() || u.close_code != Some(1000) || !u.got_end {
            unexpected += 1;
            problem(format!(
                "session ended badly: close {:?}, end summary {}, {}",
                u.close_code,
                if u.got_end { "received" } else { "missing" },
                u.problem.as_deref().unwrap_or("no client-side problem")
            ));
        }
        let (r, unmatched) = analysis::utterances(u);
        counts.unmatched_finals += unmatched;
        speech_sent_s += u
            .clips
            .iter()
            .filter(|c| c.t_speech_end.is_some())
            .map(|c| c.clip.duration_ms() as f64 / 1000.0)
            .sum::<f64>();
        results.extend(r);
    }
    counts.sent = results.len();
    counts.with_final = results.iter().filter(|r| r.finals > 0).count();
    counts.without_final = counts.sent - counts.with_final;
    counts.split = results.iter().filter(|r| r.finals > 1).count();
    counts.degraded = results.iter().filter(|r| r.degraded).count();
    results.sort_by(|a, b| a.t_speech_end.total_cmp(&b.t_speech_end));

    let latencies = |rs: &mut dyn Iterator<Item = &UtteranceResult>| {
        Stats::of(rs.filter_map(|r| r.eos_to_final_s).collect())
    };
    let mut timeline = Vec::new();
    let last_final = results.iter().filter_map(|r| r.t_final).fold(0.0, f64::max);
    let mut end = facts.bucket_s;
    while end < last_final + facts.bucket_s {
        let start = end - facts.bucket_s;
        let stats = latencies(
            &mut results
                .iter()
                .filter(|r| r.t_final.is_some_and(|t| t >= start && t < end)),
        );
        if stats.n > 0 {
            timeline.push(TimelinePoint {
                t: end,
                eos_to_final_s: stats,
            });
        }
        end += facts.bucket_s;
    }

    let conversation_s = (
        facts.settings.ramp_up_s,
        facts.settings.ramp_up_s + facts.settings.duration_s,
    );
    let stability = stability::assess(facts.limits, &facts.samples, &results, conversation_s);
    let throughput = throughput(&facts, speech_sent_s);
    let open: Vec<&ResourceSample> = facts
        .samples
        .iter()
        .filter(|s| s.open_sessions > 0)
        .collect();
    let server = ServerStats {
        pid: facts.pid,
        peak_rss_mb: facts.samples.iter().map(|s| s.rss_mb).fold(0.0, f64::max),
        last_rss_mb: facts.samples.last().map_or(0.0, |s| s.rss_mb),
        mean_cpu_pct: open.iter().map(|s| s.cpu_pct).sum::<f64>() / open.len().max(1) as f64,
        peak_cpu_pct: facts.samples.iter().map(|s| s.cpu_pct).fold(0.0, f64::max),
        samples: facts.samples,
        exit: None,
    };
    // The first sample has no interval behind it.
    let server_run_cpu = server
        .samples
        .iter()
        .skip(1)
        .map(|s| s.cpu_pct)
        .sum::<f64>()
        / server.samples.len().saturating_sub(1).max(1) as f64;
    let other_cpu_pct = (facts.machine_cpu_pct - server_run_cpu - facts.loadgen_cpu_pct).max(0.0);
    // Run-wide problems first: the per-user list is cut at 20.
    let problems: Vec<String> = stability
        .problems
        .iter()
        .cloned()
        .chain(problems)
        .take(20)
        .collect();
    let ok = errors_by_code.is_empty()
        && unexpected == 0
        && sessions.connect_errors == 0
        && !facts.timed_out
        // A run of idle sessions only (memory per session) has no finals.
        && (facts.settings.users == 0 || counts.with_final > 0)
        && stability.problems.is_empty();
    Report {
        settings: facts.settings,
        wall_s: facts.wall_s,
        timed_out: facts.timed_out,
        ok,
        sessions,
        errors_by_code,
        unexpected_closes: unexpected,
        problems,
        utterances: counts,
        eos_to_final_s: latencies(&mut results.iter()),
        first_partial_s: Stats::of(results.iter().filter_map(|r| r.first_partial_s).collect()),
        wer_all: Score::of(results.iter()),
        wer_librispeech: Score::of(results.iter().filter(|r| r.librispeech)),
        throughput,
        server,
        loadgen_cpu_pct: facts.loadgen_cpu_pct,
        other_cpu_pct,
        load_average_at_start: facts.load_average_at_start,
        timeline,
        stability,
        metrics_end: facts.metrics_end.unwrap_or_default(),
        utterance_results: results,
    }
}

fn throughput(facts: &RunFacts, speech_sent_s: f64) -> Throughput {
    let wall = facts.wall_s.max(1e-9);
    // Offered load over the conversation itself, not the drain after it.
    let talking_s = (facts.settings.ramp_up_s + facts.settings.duration_s).min(wall);
    let mut t = Throughput {
        speech_sent_per_s: speech_sent_s / talking_s,
        ..Throughput::default()
    };
    if let (Some(a), Some(b)) = (&facts.metrics_start, &facts.metrics_end) {
        let delta = |key: &str| b.value(key) - a.value(key);
        // Early finals (started at a pause) are finals' work too; the few
        // dropped because speech went on are counted as well.
        let final_audio = delta("steno_inference_audio_seconds_sum{kind=\"final\"}")
            + delta("steno_inference_audio_seconds_sum{kind=\"early\"}");
        let final_model = delta("steno_inference_seconds_sum{kind=\"final\"}")
            + delta("steno_inference_seconds_sum{kind=\"early\"}");
        let all_model = b.sum("steno_inference_seconds_sum") - a.sum("steno_inference_seconds_sum");
        t.workers = b.sum("steno_workers_ready");
        t.final_audio_per_s = final_audio / wall;
        t.worker_busy_fraction = all_model / wall / t.workers.max(1.0);
        if final_model > 0.0 {
            t.final_capacity_per_s = final_audio / final_model * t.workers;
        }
    }
    t
}
