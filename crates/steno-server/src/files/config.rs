//! The `[files]` configuration: where uploads and jobs live, how large and how many may come, how long results stay, and how files are cut into windows; validated here.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesConfig {
    /// Serve `/v1/audio/transcriptions` and `/v1/jobs`.
    pub enabled: bool,
    /// Folder for uploads, job records and results (relative to the working
    /// directory); it must survive restarts for jobs to resume.
    pub spool_dir: PathBuf,
    /// Largest upload accepted; a larger one gets 413.
    pub max_upload_bytes: u64,
    /// Most bytes the spool may hold; an upload that would pass it gets 507.
    pub max_spool_bytes: u64,
    /// Jobs queued or running at once; the next `POST /v1/jobs` gets 429.
    pub max_queued_jobs: usize,
    /// `POST /v1/audio/transcriptions` requests in flight at once; the next
    /// gets 429.
    pub max_sync_requests: usize,
    /// How long a finished job's result is kept before it is removed.
    pub result_ttl_s: u64,
    /// Longest window of speech one inference reads (Whisper: at most 30).
    pub window_s: f32,
    /// Silence put between two utterances of a window, instead of their pause.
    pub gap_ms: u32,
    /// Condition each window on the text of the one before. Off by
    /// default: it serialises the windows and, measured, does not help
    /// tiny.en (docs/files.md).
    pub prompt_previous: bool,
    /// Seconds a client is told to wait after a 429.
    pub retry_after_s: u32,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            spool_dir: PathBuf::from("spool"),
            max_upload_bytes: 1 << 30,
            max_spool_bytes: 20 << 30,
            max_queued_jobs: 100,
            max_sync_requests: 2,
            result_ttl_s: 7 * 24 * 3600,
            window_s: 20.0,
            gap_ms: 100,
            prompt_previous: false,
            retry_after_s: 30,
        }
    }
}

impl FilesConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.max_upload_bytes == 0 {
            return Err(Invalid::new("files.max_upload_bytes", "must be above 0"));
        }
        if self.max_spool_bytes < self.max_upload_bytes {
            return Err(Invalid::new(
                "files.max_spool_bytes",
                format!(
                    "must be at least files.max_upload_bytes ({})",
                    self.max_upload_bytes
                ),
            ));
        }
        if self.max_queued_jobs == 0 {
            return Err(Invalid::new("files.max_queued_jobs", "must be at least 1"));
        }
        if self.max_sync_requests == 0 {
            return Err(Invalid::new(
                "files.max_sync_requests",
                "must be at least 1",
            ));
        }
        if !(self.window_s >= 5.0 && self.window_s <= 30.0) {
            return Err(Invalid::new(
                "files.window_s",
                format!("must be 5..=30 seconds, got {}", self.window_s),
            ));
        }
        if self.gap_ms > 2_000 {
            return Err(Invalid::new(
                "files.gap_ms",
                format!("must be at most 2000, got {}", self.gap_ms),
            ));
        }
        Ok(())
    }
}
