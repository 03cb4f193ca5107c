//! Voice activity segmentation: 16 kHz samples in, utterance events (speech started, utterance ended with its audio) out.
//!
//! The session feeds every decoded chunk to its [`Segmenter`]. It cuts the
//! samples into 10/20/30 ms frames, asks webrtc-vad whether each is voiced
//! and checks voiced frames for the spectral structure of speech
//! (`structure`), smooths those decisions (`gate`), and keeps the audio in an
//! [`AudioRing`](crate::ring::AudioRing) so that an ended utterance comes out
//! whole, as the f32 samples whisper takes.
//!
//! # How an utterance is cut
//!
//! - It **starts** once `min_speech_ms` of mostly voiced frames (80 %, and
//!   40 % with structure: broadband noise never starts one) have come; shorter bursts are never utterances, and `SpeechStarted` is only
//!   sent once speech is confirmed. Its audio begins `pre_roll_ms` before the
//!   first voiced frame (never before the stream, nor before the previous
//!   utterance's end) so whisper hears the onset.
//! - It **ends** ([`EndReason::Silence`]) once `hangover_ms` of mostly
//!   unvoiced frames (90 %) have passed; its audio stops [`END_TAIL_MS`]
//!   after the last voiced frame rather than carrying the whole hangover.
//!   Once that tail has passed, [`SegmentEvent::Paused`] announces those
//!   bounds ahead of the end, so a final can be started early.
//! - At **`max_utterance_s`** (pre-roll included) it is cut
//!   ([`EndReason::MaxLength`]); if speech goes on, the next utterance starts
//!   at the cut with no gap.
//! - [`Segmenter::finalize`] and [`Segmenter::flush`] close it on request.
//! - A [`Segmenter::manual`] one hears every frame as speech: an utterance
//!   is whatever the client sent between two `finalize` calls (cut at
//!   `max_utterance_s` all the same).
//!
//! Sample positions count from the session's first sample. Utterance indices
//! count from 0 without gaps; utterances never overlap, and
//! `audio.len() == end_sample - start_sample`.

mod config;
mod gate;
mod segmenter;
mod structure;

#[cfg(test)]
mod tests;

pub use config::SegmenterConfig;
pub use segmenter::{END_TAIL_MS, FrameClassifier, Voicing};

use segmenter::SegmenterCore;
use webrtc_vad::{SampleRate, Vad, VadMode};

/// Why a segmenter could not be made.
#[derive(Debug, thiserror::Error)]
pub enum VadError {
    /// The configuration failed [`SegmenterConfig::validate`]; the message
    /// names the bad key.
    #[error("invalid VAD configuration: {0}")]
    InvalidConfig(String),
}

/// Why an utterance ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// `hangover_ms` of silence followed the speech.
    Silence,
    /// The utterance reached `max_utterance_s`.
    MaxLength,
    /// The client asked for it ([`Segmenter::finalize`]).
    Finalize,
    /// The stream ended ([`Segmenter::flush`]).
    Flush,
}

/// What the segmenter found in the samples it was given.
#[derive(Debug)]
pub enum SegmentEvent {
    /// Speech is confirmed: utterance number `utterance` has begun at
    /// `start_sample` (pre-roll included).
    SpeechStarted { utterance: u32, start_sample: u64 },
    /// The open utterance has had [`END_TAIL_MS`] of silence: if no voiced
    /// frame comes before the hangover ends, it will end with exactly these
    /// bounds (`end_sample` is its last voiced frame plus the tail). Lets the
    /// session start transcribing during the hangover; speech that goes on
    /// just makes the bounds stale.
    Paused {
        utterance: u32,
        start_sample: u64,
        end_sample: u64,
    },
    /// An utterance is complete, with its audio.
    UtteranceEnded(Utterance),
}

/// One finished stretch of speech.
#[derive(Debug)]
pub struct Utterance {
    /// Counts from 0 in the session; the same number as its `SpeechStarted`.
    pub index: u32,
    /// First sample, counted from the session's first sample.
    pub start_sample: u64,
    /// One past the last sample.
    pub end_sample: u64,
    /// The 16 kHz mono samples `[start_sample, end_sample)` in [-1, 1).
    pub audio: Vec<f32>,
    /// What closed it.
    pub reason: EndReason,
}

/// Voiced frames with less linear-prediction gain than this are flat
/// ([`Voicing::Flat`]). Measured through Opus at 24 kbit/s: white noise at
/// any level gains at most 1.3 dB, while the median voiced frame of the
/// shared recordings gains 21 dB and 96 % of them gain 3 dB or more.
const MIN_STRUCTURE_DB: f32 = 3.0;

/// webrtc-vad (libfvad) plus the structure check behind the classifier
/// interface.
struct WebRtcClassifier(Vad);

// SAFETY: `Vad` is only `!Send` because it holds a raw pointer to its libfvad
// instance. That instance is plain heap memory owned by this wrapper alone
// (freed in `Vad`'s `Drop`); libfvad keeps no thread-local or global state and
// has no thread affinity, and every call goes through `&mut self`, so moving
// it to another thread is sound. It is not `Sync`, and needs not be.
unsafe impl Send for WebRtcClassifier {}

impl FrameClassifier for WebRtcClassifier {
    fn classify(&mut self, frame: &[i16]) -> Voicing {
        // Frames are always 10, 20 or 30 ms (validated), the only lengths
        // libfvad refuses are others; count a refusal as silence.
        if !self.0.is_voice_segment(frame).unwrap_or(false) {
            Voicing::Silent
        } else if structure::prediction_gain_db(frame) < MIN_STRUCTURE_DB {
            Voicing::Flat
        } else {
            Voicing::Speech
        }
    }
}

/// Cuts one session's 16 kHz stream into utterances.
pub struct Segmenter {
    core: SegmenterCore<Box<dyn FrameClassifier>>,
}

/// A classifier by loudness alone: frames whose peak reaches `threshold`
/// are speech, others silence. For tests of what drives a segmenter (the
/// server's pipeline), where a tone is speech and zeros are a pause.
pub struct LoudnessClassifier {
    pub threshold: i16,
}

impl FrameClassifier for LoudnessClassifier {
    fn classify(&mut self, frame: &[i16]) -> Voicing {
        let peak = frame.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        if peak >= self.threshold.unsigned_abs() {
            Voicing::Speech
        } else {
            Voicing::Silent
        }
    }
}

/// Hears speech in every frame ([`Segmenter::manual`]).
struct EveryFrameSpeech;

impl FrameClassifier for EveryFrameSpeech {
    fn classify(&mut self, _frame: &[i16]) -> Voicing {
        Voicing::Speech
    }
}

impl Segmenter {
    /// Makes a segmenter for one stream; fails if `config` is not valid.
    pub fn new(config: &SegmenterConfig) -> Result<Self, VadError> {
        let mode = match config.aggressiveness {
            0 => VadMode::Quality,
            1 => VadMode::LowBitrate,
            2 => VadMode::Aggressive,
            _ => VadMode::VeryAggressive,
        };
        let vad = Vad::new_with_rate_and_mode(SampleRate::Rate16kHz, mode);
        Self::with_classifier(config, Box::new(WebRtcClassifier(vad)))
    }

    /// A segmenter without voice detection, for clients that say where
    /// utterances end (the Realtime door's manual commits): every frame is
    /// speech, two frames confirm it, only [`Segmenter::finalize`],
    /// [`Segmenter::flush`] and `max_utterance_s` end an utterance.
    pub fn manual(config: &SegmenterConfig) -> Result<Self, VadError> {
        let config = SegmenterConfig {
            min_speech_ms: 2 * config.frame_ms,
            ..config.clone()
        };
        Self::with_classifier(&config, Box::new(EveryFrameSpeech))
    }

    /// A segmenter that asks `classifier` instead of webrtc-vad (tests of
    /// what drives a segmenter; see [`LoudnessClassifier`]).
    pub fn with_classifier(
        config: &SegmenterConfig,
        classifier: Box<dyn FrameClassifier>,
    ) -> Result<Self, VadError> {
        config.validate().map_err(VadError::InvalidConfig)?;
        Ok(Self {
            core: SegmenterCore::new(config, classifier),
        })
    }

    /// Feeds 16 kHz mono samples (any count: a partial frame waits for the
    /// next call) and appends what happened to `events`, in order.
    pub fn push(&mut self, samples: &[i16], events: &mut Vec<SegmentEvent>) {
        self.core.push(samples, events);
    }

    /// Closes the open utterance now (the client sent "finalize"), with all
    /// audio received so far; `None` if no speech is open. The next speech
    /// must be confirmed afresh.
    pub fn finalize(&mut self) -> Option<Utterance> {
        self.core.finalize(EndReason::Finalize)
    }

    /// Closes everything at the end of the stream ([`EndReason::Flush`]),
    /// the partial frame left over included; `None` if no speech is open (an
    /// unconfirmed burst is dropped).
    pub fn flush(&mut self) -> Option<Utterance> {
        self.core.flush()
    }

    /// For live partial results: replaces `out` with the open utterance's
    /// audio so far and returns `(utterance, start_sample, end_sample)`;
    /// `None` (and `out` untouched) when idle. The partial frame still
    /// waiting for its VAD decision is not included.
    pub fn open_audio(&self, out: &mut Vec<f32>) -> Option<(u32, u64, u64)> {
        self.core.open_audio(out)
    }

    /// How many samples the segmenter has been given.
    pub fn samples_seen(&self) -> u64 {
        self.core.samples_seen()
    }

    /// Whether an utterance is open.
    pub fn in_speech(&self) -> bool {
        self.core.in_speech()
    }

    /// Where the open utterance would end if it ended in a pause now (its
    /// last voiced frame plus the tail); `None` when idle.
    pub fn pause_end(&self) -> Option<u64> {
        self.core.pause_end()
    }
}
