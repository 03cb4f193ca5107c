//! Jobs and their results: what a submitter hands the pool (audio, kind, decoding options, a reply channel) and what comes back (text, and timed segments and words when asked).

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::WorkerError;

/// Kind of inference job: picks its lane, and the only label on worker series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    Final,
    Partial,
    /// A final started at a pause, on the early lane (see `pipeline`);
    /// requeued as `Final` if the utterance ends before it runs.
    Early,
    /// A window of a file job.
    Batch,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Final => "final",
            JobKind::Partial => "partial",
            JobKind::Early => "early",
            JobKind::Batch => "batch",
        }
    }
}

/// What a job asks of the decoder beyond plain text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecodeOptions {
    /// Per-word start, end and probability (whisper's token timestamps).
    pub words: bool,
    /// A window of a file: several segments, each with its times.
    pub long_form: bool,
    /// Text the decoder is conditioned on (OpenAI's `prompt`).
    pub prompt: Option<String>,
    /// Sampling temperature; 0 is greedy.
    pub temperature: f32,
    /// A smaller floor for the encoder window than `model.min_audio_ctx`:
    /// set on a final that waited past `workers.degrade_after_ms`.
    pub min_audio_ctx: Option<u32>,
}

/// One unit of model work.
pub struct Job {
    pub kind: JobKind,
    /// The submitting session (or file job), so its older partial can be
    /// replaced.
    pub session: u64,
    /// 16 kHz mono samples in [-1, 1].
    pub audio: Vec<f32>,
    pub options: DecodeOptions,
    /// Where the result goes; a dropped receiver means nobody wants it.
    pub reply: oneshot::Sender<JobResult>,
    pub enqueued_at: Instant,
    /// A partial that waited longer than this is shed (finals ignore it).
    pub stale_after: Duration,
}

/// A word with its times, in ms from the start of the job's audio.
#[derive(Clone, Debug, PartialEq)]
pub struct Word {
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// The mean probability of its tokens.
    pub probability: f32,
}

#[cfg(test)]
impl Word {
    /// A word heard with probability 0.9, for tests of what follows decoding.
    pub fn heard(text: &str, start_ms: u64, end_ms: u64) -> Word {
        Word {
            text: text.into(),
            start_ms,
            end_ms,
            probability: 0.9,
        }
    }
}

/// A stretch of text with its times, in ms from the start of the job's audio.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Empty unless the job asked for words.
    pub words: Vec<Word>,
}

/// What a transcriber makes of one job's audio.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    pub text: String,
    /// Live jobs: empty, or one segment when words were asked for; file
    /// windows: one per whisper segment.
    pub segments: Vec<Segment>,
}

impl Decoded {
    /// Text alone.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            segments: Vec::new(),
        }
    }
}

pub type JobResult = Result<Transcript, WorkerError>;

/// A job's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Transcript {
    pub text: String,
    pub segments: Vec<Segment>,
    /// Wall time of the inference alone.
    pub inference: Duration,
    /// Decoded with a degraded final's smaller window (see `Degrade`).
    pub degraded: bool,
}
