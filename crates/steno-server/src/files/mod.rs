//! File transcription, beside live sessions: a recording in (any length, any format steno reads), its timed transcript out; synchronously for a request, or as a durable job.
//!
//! ```text
//! upload (spool/tmp) --> transcribe: FileDecoder -> VAD -> Packer --> windows
//!                                                                      | batch lane
//!                        Transcription <-- results in order <----------+ (worker pool)
//!                          | format: json, text, srt, vtt, verbose_json
//! jobs: the same, one job after another, each window kept on disk as it finishes
//! ```
//!
//! `transport::files` is the HTTP door (OpenAI's `/v1/audio/transcriptions`,
//! `/v1/jobs`); `steno transcribe` runs the same code on a local pool.

mod config;
pub mod format;
pub mod jobs;
pub mod spool;
pub mod transcribe;
pub mod window;

use std::sync::Arc;

pub use config::FilesConfig;
use steno_audio::vad::SegmenterConfig;
use tokio::sync::Semaphore;
pub use transcribe::{FileJobError, FileOptions, Plan, Progress, probe, transcribe_file};

use crate::worker::JobQueue;

/// The VAD for files: the live one with utterances allowed up to the
/// window's length, so a window is filled by whole utterances.
pub fn file_vad(live: &SegmenterConfig, window_s: f32) -> SegmenterConfig {
    SegmenterConfig {
        max_utterance_s: (window_s - 1.0).clamp(5.0, 29.0),
        ..live.clone()
    }
}

/// The plan for a pool of `workers`.
pub fn plan(
    config: &FilesConfig,
    live_vad: &SegmenterConfig,
    language: &str,
    workers: usize,
) -> Plan {
    Plan {
        vad: file_vad(live_vad, config.window_s),
        window_s: config.window_s,
        gap_ms: config.gap_ms,
        in_flight: workers + 1,
        prompt_previous: config.prompt_previous,
        language: language.to_string(),
    }
}

/// What the file routes share.
pub struct FileService {
    pub config: FilesConfig,
    pub plan: Plan,
    pub queue: Arc<JobQueue>,
    pub jobs: Arc<jobs::Jobs>,
    /// Synchronous requests in flight (`files.max_sync_requests`).
    pub sync_slots: Arc<Semaphore>,
}
