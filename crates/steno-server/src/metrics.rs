//! Telemetry: typed events from the pipeline in, Prometheus series (`steno_*`) out at `GET /metrics`.
//!
//! Names are constants, described once in `describe`; labels are fixed and
//! low-cardinality (never a session id). Gauges that follow an object's life
//! are kept by `Drop` guards.

use std::sync::OnceLock;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use steno_protocol::ErrorCode;

use crate::worker::{JobKind, Lane};

pub const SESSIONS_ACTIVE: &str = "steno_sessions_active";
pub const SESSIONS_ADMITTED: &str = "steno_sessions_admitted_total";
pub const SESSIONS_REFUSED: &str = "steno_sessions_refused_total";
pub const SESSIONS_REFUSED_OVERLOAD: &str = "steno_sessions_refused_overload_total";
pub const PACKED_PASSES: &str = "steno_packed_passes_total";
pub const PACKED_FINALS: &str = "steno_packed_finals_total";
pub const PACKED_RERUNS: &str = "steno_packed_reruns_total";
pub const FINALS_DEGRADED: &str = "steno_finals_degraded_total";
pub const SESSIONS_PARKED: &str = "steno_sessions_parked_total";
pub const SESSIONS_RESUMED: &str = "steno_sessions_resumed_total";
pub const RESUMES_REFUSED: &str = "steno_resumes_refused_total";
pub const AUDIO_MS: &str = "steno_audio_received_milliseconds_total";
pub const UTTERANCES: &str = "steno_utterances_total";
pub const PARTIALS_SENT: &str = "steno_partials_sent_total";
pub const PARTIALS_SHED: &str = "steno_partials_shed_total";
pub const EARLY_FINALS_USED: &str = "steno_early_finals_used_total";
pub const QUEUE_DEPTH: &str = "steno_worker_queue_depth";
pub const WORKERS_READY: &str = "steno_workers_ready";
pub const INFERENCE_SECONDS: &str = "steno_inference_seconds";
pub const INFERENCE_AUDIO_SECONDS: &str = "steno_inference_audio_seconds";
pub const FINAL_LATENCY: &str = "steno_end_of_speech_to_final_seconds";
pub const ERRORS: &str = "steno_errors_total";
pub const WORKER_PANICS: &str = "steno_worker_panics_total";
pub const HTTP_REFUSED: &str = "steno_http_refused_total";
pub const HEAP_LIVE: &str = "steno_heap_live_bytes";
pub const AUDIO_TRANSCRIBED: &str = "steno_audio_transcribed_seconds_total";
pub const LANE_WAIT: &str = "steno_lane_wait_seconds";
pub const JOBS: &str = "steno_jobs";
pub const SESSIONS_CAPACITY: &str = "steno_sessions_capacity";
pub const LOAD_RATIO: &str = "steno_load_ratio";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its handle.
/// A second server in the same process (tests) shares the same registry.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            // Buckets around the real-time budget: a final is good under ~1 s
            // after end of speech, poor past 2 s.
            let latency = [
                0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0,
            ];
            let inference = [
                0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0, 8.0,
            ];
            let audio = [0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 30.0];
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(FINAL_LATENCY.into()), &latency)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(INFERENCE_SECONDS.into()), &inference)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(INFERENCE_AUDIO_SECONDS.into()), &audio)
                })
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(LANE_WAIT.into()), &latency))
                .expect("bucket lists are non-empty")
                .install_recorder()
                .expect("no other metrics recorder is installed in this process");
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_gauge!(SESSIONS_ACTIVE, "Sessions open now.");
    describe_counter!(SESSIONS_ADMITTED, "Sessions admitted since start.");
    describe_counter!(
        SESSIONS_REFUSED,
        "Connections refused over capacity: every session slot in use, or finals waiting past admission.max_final_wait_s."
    );
    describe_counter!(
        SESSIONS_REFUSED_OVERLOAD,
        "Of those, the ones refused by load: the oldest final had waited past admission.max_final_wait_s."
    );
    describe_counter!(
        PACKED_PASSES,
        "Encoder passes that served several waiting finals at once (workers.pack_finals)."
    );
    describe_counter!(PACKED_FINALS, "Finals that went into such a pass.");
    describe_counter!(
        FINALS_DEGRADED,
        "Finals decoded with the smaller window (workers.degraded_min_audio_ctx) because they waited past workers.degrade_after_ms."
    );
    describe_counter!(
        PACKED_RERUNS,
        "Of those, the ones run again alone because the split of the words was unclear."
    );
    describe_counter!(
        SESSIONS_PARKED,
        "Sessions whose connection dropped without end or a close frame, kept for session.resume_grace_s."
    );
    describe_counter!(
        SESSIONS_RESUMED,
        "Of those, the ones whose client came back with ?resume= in time."
    );
    describe_counter!(
        RESUMES_REFUSED,
        "Resume attempts refused: a token unknown, already used or past its grace."
    );
    describe_counter!(
        AUDIO_MS,
        "Milliseconds of client audio decoded (counters are integers)."
    );
    describe_counter!(
        UTTERANCES,
        "Utterances closed and sent for a final transcript."
    );
    describe_counter!(PARTIALS_SENT, "Partial transcripts sent to clients.");
    describe_counter!(
        EARLY_FINALS_USED,
        "Finals whose inference started at the pause, before the hangover ended."
    );
    describe_counter!(
        PARTIALS_SHED,
        "Partial jobs dropped: replaced, queue deep or stale before inference, or aborted during it for a final."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Jobs waiting for a worker, by lane (final, early, partial, batch)."
    );
    describe_gauge!(
        WORKERS_READY,
        "Inference workers loaded, warmed up and serving."
    );
    describe_histogram!(
        INFERENCE_SECONDS,
        "Wall time of one Whisper inference, by job kind."
    );
    describe_histogram!(
        INFERENCE_AUDIO_SECONDS,
        "Seconds of audio one inference covered, by job kind."
    );
    describe_histogram!(
        FINAL_LATENCY,
        "From the end of an utterance's audio to its final being sent."
    );
    describe_counter!(ERRORS, "Errors reported to clients, by code.");
    describe_counter!(
        AUDIO_TRANSCRIBED,
        "Seconds of audio transcribed, by job kind (final, early, partial, batch = file windows); counters are integers."
    );
    describe_histogram!(
        LANE_WAIT,
        "From a job's queueing to a worker taking it, by lane (the batch lane's wait shows how much room live work leaves files)."
    );
    describe_gauge!(JOBS, "File jobs known to this instance, by state.");
    describe_gauge!(
        SESSIONS_CAPACITY,
        "Sessions this instance admits at once (admission.max_sessions); with steno_sessions_active, the room left."
    );
    describe_gauge!(
        LOAD_RATIO,
        "Speech offered per second (utterances closed for a final) over what the worker pool transcribes per second, over the last 30 s; above 1, finals queue."
    );
    describe_gauge!(
        HEAP_LIVE,
        "Bytes the server's Rust code holds on the heap now (whisper.cpp's buffers not included); absent when the allocator does not count."
    );
    describe_counter!(
        WORKER_PANICS,
        "Inference jobs that panicked; the worker rebuilt its state."
    );
}

pub fn session_admitted() {
    counter!(SESSIONS_ADMITTED).increment(1);
}

pub fn session_refused() {
    counter!(SESSIONS_REFUSED).increment(1);
}

pub fn session_refused_overload() {
    counter!(SESSIONS_REFUSED).increment(1);
    counter!(SESSIONS_REFUSED_OVERLOAD).increment(1);
}

/// One pass served `finals` waiting finals.
pub fn packed_pass(finals: usize) {
    counter!(PACKED_PASSES).increment(1);
    counter!(PACKED_FINALS).increment(finals as u64);
}

/// A late final gets the smaller window.
pub fn final_degraded() {
    counter!(FINALS_DEGRADED).increment(1);
}

/// Finals of a pass run again alone.
pub fn packed_rerun(finals: usize) {
    counter!(PACKED_RERUNS).increment(finals as u64);
}

/// A session's connection dropped; it waits for a resume.
pub fn session_parked() {
    counter!(SESSIONS_PARKED).increment(1);
}

/// A parked session's client came back.
pub fn session_resumed() {
    counter!(SESSIONS_RESUMED).increment(1);
}

/// A resume found no session for its token.
pub fn resume_refused() {
    counter!(RESUMES_REFUSED).increment(1);
}

/// Counts decoded 16 kHz samples as milliseconds of audio.
pub fn audio_received(samples: usize) {
    counter!(AUDIO_MS).increment(samples as u64 / 16);
}

/// An utterance of `samples` (16 kHz) closed and sent for its final.
pub fn utterance_closed(samples: usize) {
    counter!(UTTERANCES).increment(1);
    crate::load::offered(samples);
}

pub fn partial_sent() {
    counter!(PARTIALS_SENT).increment(1);
}

pub fn early_final_used() {
    counter!(EARLY_FINALS_USED).increment(1);
}

pub fn partials_shed(n: u64) {
    counter!(PARTIALS_SHED).increment(n);
}

pub fn queue_depth(lane: Lane, depth: usize) {
    gauge!(QUEUE_DEPTH, "lane" => lane.name()).set(depth as f64);
}

pub fn inference_done(kind: JobKind, seconds: f64, audio_seconds: f64) {
    histogram!(INFERENCE_SECONDS, "kind" => kind.as_str()).record(seconds);
    histogram!(INFERENCE_AUDIO_SECONDS, "kind" => kind.as_str()).record(audio_seconds);
    counter!(AUDIO_TRANSCRIBED, "kind" => kind.as_str()).increment(audio_seconds.round() as u64);
    if matches!(kind, JobKind::Final | JobKind::Early) {
        crate::load::served(audio_seconds, seconds);
    }
}

/// The session limit, once at start.
pub fn sessions_capacity(n: usize) {
    gauge!(SESSIONS_CAPACITY).set(n as f64);
}

pub fn load_ratio(ratio: f64) {
    gauge!(LOAD_RATIO).set(ratio);
}

/// A worker took a job of `lane` that waited `seconds`.
pub fn lane_wait(lane: Lane, seconds: f64) {
    histogram!(LANE_WAIT, "lane" => lane.name()).record(seconds);
}

/// File jobs in `state` now.
pub fn jobs(state: &'static str, n: usize) {
    gauge!(JOBS, "state" => state).set(n as f64);
}

pub fn final_latency(seconds: f64) {
    histogram!(FINAL_LATENCY).record(seconds);
}

pub fn error_sent(code: ErrorCode) {
    counter!(ERRORS, "code" => code.as_str()).increment(1);
}

pub fn gauge_workers_ready(n: usize) {
    gauge!(WORKERS_READY).set(n as f64);
}

pub fn http_refused(reason: &'static str) {
    counter!(HTTP_REFUSED, "reason" => reason).increment(1);
}

pub fn worker_panicked() {
    counter!(WORKER_PANICS).increment(1);
}

/// The Prometheus text of every series, with the sampled gauges (heap)
/// brought up to date first.
pub fn render(handle: &PrometheusHandle) -> String {
    if let Some(bytes) = crate::heap::live_bytes() {
        gauge!(HEAP_LIVE).set(bytes as f64);
    }
    handle.render()
}

/// Adds one to a gauge while alive.
pub struct GaugeGuard(&'static str);

impl GaugeGuard {
    pub fn new(name: &'static str) -> Self {
        gauge!(name).increment(1.0);
        Self(name)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        gauge!(self.0).decrement(1.0);
    }
}
