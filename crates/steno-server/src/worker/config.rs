//! The `[workers]` and `[model]` configuration: how many inference threads, how much may wait on each lane, which model and how it decodes; each validated here.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::LaneCapacities;
use crate::config::Invalid;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// Number of inference threads, each with its own Whisper state; 0 means
    /// one per CPU core.
    pub count: usize,
    /// whisper.cpp threads used by each worker.
    pub threads_per_worker: usize,
    /// Most final-transcript jobs waiting at once; a session that would pass
    /// it waits (it stops reading its socket) until a worker frees a place.
    pub final_queue_capacity: usize,
    /// Most partial-transcript and early-final jobs waiting at once; past it
    /// the oldest is shed.
    pub partial_queue_capacity: usize,
    /// Most file-job chunks waiting at once; a job that would pass it waits.
    pub batch_queue_capacity: usize,
    /// A worker that takes a final also takes the finals already waiting
    /// that fit in one encoder window, and transcribes them in one pass
    /// (`worker::pack`). A lone final never waits for company.
    pub pack_finals: bool,
    /// Silence between packed utterances.
    pub pack_gap_ms: u32,
    /// Most audio in one pack, gaps included: within the smallest encoder
    /// window (`model.min_audio_ctx` 768 frames hold 14 s) it costs no more
    /// encoder time than one final.
    pub pack_max_s: f32,
    /// A final that has waited this long for a worker is decoded with the
    /// smaller window `degraded_min_audio_ctx` (0: never): how open
    /// sessions degrade when more people talk than the pool serves.
    pub degrade_after_ms: u32,
    /// The encoder window's floor for such a final, in frames (the audio
    /// still gets what its length needs).
    pub degraded_min_audio_ctx: u32,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            count: 0,
            threads_per_worker: 1,
            final_queue_capacity: 64,
            partial_queue_capacity: 8,
            batch_queue_capacity: 4,
            pack_finals: false,
            pack_gap_ms: 1000,
            pack_max_s: 14.0,
            degrade_after_ms: 500,
            degraded_min_audio_ctx: 512,
        }
    }
}

impl WorkersConfig {
    /// The worker count with 0 resolved to the number of cores.
    pub fn resolved_count(&self) -> usize {
        if self.count > 0 {
            return self.count;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    pub fn lane_capacities(&self) -> LaneCapacities {
        LaneCapacities {
            finals: self.final_queue_capacity,
            speculative: self.partial_queue_capacity,
            batch: self.batch_queue_capacity,
        }
    }

    /// The packing limits, in samples; None when packing is off.
    pub fn pack_limits(&self) -> Option<super::pack::PackLimits> {
        self.pack_finals.then(|| super::pack::PackLimits {
            gap: self.pack_gap_ms as usize * 16,
            max: (self.pack_max_s * 16_000.0) as usize,
        })
    }

    /// When and how far finals degrade; None when they never do.
    pub fn degrade(&self) -> Option<super::Degrade> {
        (self.degrade_after_ms > 0).then(|| super::Degrade {
            after: Duration::from_millis(self.degrade_after_ms.into()),
            min_audio_ctx: self.degraded_min_audio_ctx,
        })
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        if self.degrade_after_ms > 60_000 {
            return Err(Invalid::new(
                "workers.degrade_after_ms",
                format!("must be 0 (never) to 60000, got {}", self.degrade_after_ms),
            ));
        }
        if !(256..=1500).contains(&self.degraded_min_audio_ctx) {
            return Err(Invalid::new(
                "workers.degraded_min_audio_ctx",
                format!(
                    "must be 256..=1500 frames, got {}",
                    self.degraded_min_audio_ctx
                ),
            ));
        }
        if !(200..=3000).contains(&self.pack_gap_ms) {
            return Err(Invalid::new(
                "workers.pack_gap_ms",
                format!("must be 200..=3000, got {}", self.pack_gap_ms),
            ));
        }
        if !(2.0..=28.0).contains(&self.pack_max_s) {
            return Err(Invalid::new(
                "workers.pack_max_s",
                format!("must be 2 to 28 seconds, got {}", self.pack_max_s),
            ));
        }
        if self.count > 256 {
            return Err(Invalid::new(
                "workers.count",
                format!("must be 0..=256, got {}", self.count),
            ));
        }
        if self.threads_per_worker == 0 || self.threads_per_worker > 64 {
            return Err(Invalid::new(
                "workers.threads_per_worker",
                format!("must be 1..=64, got {}", self.threads_per_worker),
            ));
        }
        for (key, value) in [
            ("workers.final_queue_capacity", self.final_queue_capacity),
            (
                "workers.partial_queue_capacity",
                self.partial_queue_capacity,
            ),
            ("workers.batch_queue_capacity", self.batch_queue_capacity),
        ] {
            if value == 0 {
                return Err(Invalid::new(key, "must be at least 1"));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// whisper.cpp ggml model file.
    pub path: PathBuf,
    /// Spoken language passed to Whisper; clients asking for another are
    /// refused.
    pub language: String,
    /// Smallest encoder window in frames (50 per second of audio). Whisper
    /// always encodes 1500 frames (30 s); shrinking the window to the
    /// utterance saves most of the cost, but windows much under ~8 s make
    /// tiny.en loop and drop words. 1500 disables shrinking.
    pub min_audio_ctx: u32,
    /// Most tokens decoded per second of utterance audio (plus a fixed 16):
    /// a cap on runaway repetition.
    pub max_tokens_per_s: f32,
    /// Use flash attention in whisper.cpp.
    pub flash_attn: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("models/ggml-tiny.en-q8_0.bin"),
            language: "en".to_string(),
            min_audio_ctx: 768,
            max_tokens_per_s: 8.0,
            flash_attn: false,
        }
    }
}

impl ModelConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if !(1..=1500).contains(&self.min_audio_ctx) {
            return Err(Invalid::new(
                "model.min_audio_ctx",
                format!("must be 1..=1500 frames, got {}", self.min_audio_ctx),
            ));
        }
        if self.max_tokens_per_s.is_nan() || self.max_tokens_per_s <= 0.0 {
            return Err(Invalid::new("model.max_tokens_per_s", "must be above 0"));
        }
        if self.language.is_empty() {
            return Err(Invalid::new(
                "model.language",
                "must not be empty (e.g. \"en\")",
            ));
        }
        Ok(())
    }
}
