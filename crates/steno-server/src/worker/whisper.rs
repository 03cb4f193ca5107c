//! The Whisper transcriber: a ggml model file in (loaded once, shared), one `WhisperState` per worker out.

use std::ffi::c_void;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use super::remainder::RemainderGuard;
use super::{
    DecodeOptions, Decoded, JobKind, LoadError, ModelConfig, Segment, Transcriber,
    TranscriberFactory, WorkerError, text,
};

/// Encoder frames per second of audio (whisper's mel hop is 10 ms, the
/// encoder halves it).
const FRAMES_PER_S: f32 = 50.0;
/// Whisper's full window: 30 s.
pub const FULL_AUDIO_CTX: u32 = 1500;
/// whisper.cpp skips input under 100 ms; pad short audio to this many samples.
const MIN_SAMPLES: usize = 16_000;

/// The shared model and the decoding policy every worker uses.
pub struct WhisperModel {
    context: Arc<WhisperContext>,
    policy: DecodePolicy,
}

/// How an utterance is decoded: chosen by measurement, see docs/accuracy.md.
#[derive(Clone, Debug)]
pub struct DecodePolicy {
    pub language: String,
    pub threads: usize,
    pub min_audio_ctx: u32,
    pub max_tokens_per_s: f32,
}

impl DecodePolicy {
    /// Encoder window for `samples` of 16 kHz audio: the audio plus a margin,
    /// never under `min_audio_ctx` (short windows make tiny models loop).
    pub fn audio_ctx(&self, samples: usize) -> u32 {
        self.audio_ctx_with_floor(samples, self.min_audio_ctx)
    }

    /// The same with another floor (a degraded final's, see `Degrade`).
    pub fn audio_ctx_with_floor(&self, samples: usize, floor: u32) -> u32 {
        let seconds = samples as f32 / 16_000.0;
        let needed = (seconds * FRAMES_PER_S).ceil() as u32 + 64;
        needed.clamp(floor.min(FULL_AUDIO_CTX), FULL_AUDIO_CTX)
    }

    /// Token budget for an utterance: enough for fast speech, not for a loop.
    pub fn max_tokens(&self, samples: usize) -> u32 {
        let seconds = samples as f32 / 16_000.0;
        16 + (seconds * self.max_tokens_per_s).ceil() as u32
    }
}

impl WhisperModel {
    /// Loads the ggml file. Blocking: seconds for large models.
    pub fn load(config: &ModelConfig, threads: usize) -> Result<Self, WorkerError> {
        Self::load_path(&config.path, config, threads)
    }

    pub fn load_path(
        path: &Path,
        config: &ModelConfig,
        threads: usize,
    ) -> Result<Self, WorkerError> {
        // whisper.cpp logs to stderr by default; route it through tracing.
        static LOG_HOOKS: std::sync::Once = std::sync::Once::new();
        LOG_HOOKS.call_once(|| {
            whisper_rs::install_logging_hooks();
            super::whisper_log::install();
        });
        if !path.is_file() {
            return Err(LoadError::Missing { path: path.into() }.into());
        }
        let params = WhisperContextParameters {
            flash_attn: config.flash_attn,
            ..WhisperContextParameters::default()
        };
        let path_str = path
            .to_str()
            .ok_or_else(|| LoadError::NotUtf8 { path: path.into() })?;
        let context = WhisperContext::new_with_params(path_str, params).map_err(|source| {
            LoadError::Whisper {
                path: path.into(),
                source,
            }
        })?;
        Ok(Self {
            context: Arc::new(context),
            policy: DecodePolicy {
                language: config.language.clone(),
                threads,
                min_audio_ctx: config.min_audio_ctx,
                max_tokens_per_s: config.max_tokens_per_s,
            },
        })
    }

    pub fn policy(&self) -> &DecodePolicy {
        &self.policy
    }

    /// A transcriber with its own state, outside any pool (offline tools).
    pub fn transcriber(&self) -> Result<WhisperTranscriber, WorkerError> {
        let state = self.context.create_state().map_err(LoadError::State)?;
        Ok(WhisperTranscriber {
            state,
            threads: self.policy.threads,
            policy: self.policy.clone(),
            padded: Vec::new(),
            abort: None,
            eot: self.context.token_eot(),
        })
    }
}

impl TranscriberFactory for WhisperModel {
    fn create(&self) -> Result<Box<dyn Transcriber>, WorkerError> {
        Ok(Box::new(self.transcriber()?))
    }

    fn threads_per_worker(&self) -> usize {
        self.policy.threads
    }
}

/// whisper.cpp's abort callback: `data` points at the worker's abort flag.
unsafe extern "C" fn abort_requested(data: *mut c_void) -> bool {
    // SAFETY: `data` is `Arc::as_ptr` of the flag the transcriber holds for
    // as long as any `full` call it makes can run.
    unsafe { (*data.cast::<AtomicBool>()).load(Ordering::Relaxed) }
}

/// One final's time by phase ([`WhisperTranscriber::phases`]).
#[derive(Clone, Copy, Debug)]
pub struct Phases {
    pub total: Duration,
    pub mel: Duration,
    pub encoder: Duration,
}

pub struct WhisperTranscriber {
    state: WhisperState,
    policy: DecodePolicy,
    /// Scratch buffer for audio padded to whisper's minimum.
    padded: Vec<f32>,
    /// Threads for the next call (the pool may lend more than the policy's).
    threads: usize,
    /// Set by the pool to stop a running partial.
    abort: Option<Arc<AtomicBool>>,
    /// The first special token id: tokens from here on are not text.
    eot: i32,
}

impl WhisperTranscriber {
    /// Transcribes with an explicit encoder window (benchmarks, evaluation).
    pub fn transcribe_with_ctx(
        &mut self,
        audio: &[f32],
        audio_ctx: u32,
    ) -> Result<String, WorkerError> {
        Ok(self
            .decode(audio, audio_ctx, &DecodeOptions::default())?
            .text)
    }

    /// Where one final's time goes (benchmarks): the whole `whisper_full`
    /// call, then its log-mel spectrogram and its encoder pass alone; the
    /// rest is the decoder, sampling and copies.
    pub fn phases(&mut self, audio: &[f32], audio_ctx: u32) -> Result<Phases, WorkerError> {
        let inference = |e| WorkerError::Inference(Box::new(e));
        let start = Instant::now();
        // Also leaves the state's encoder window at `audio_ctx`.
        self.decode(audio, audio_ctx, &DecodeOptions::default())?;
        let total = start.elapsed();
        let start = Instant::now();
        self.state
            .pcm_to_mel(audio, self.threads)
            .map_err(inference)?;
        let mel = start.elapsed();
        let start = Instant::now();
        self.state.encode(0, self.threads).map_err(inference)?;
        let encoder = start.elapsed();
        Ok(Phases {
            total,
            mel,
            encoder,
        })
    }

    /// One `whisper_full` call over `audio` with the window `audio_ctx`.
    fn decode(
        &mut self,
        audio: &[f32],
        audio_ctx: u32,
        options: &DecodeOptions,
    ) -> Result<Decoded, WorkerError> {
        let audio = if audio.len() < MIN_SAMPLES {
            self.padded.clear();
            self.padded.extend_from_slice(audio);
            self.padded.resize(MIN_SAMPLES, 0.0);
            &self.padded[..]
        } else {
            audio
        };
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(self.threads as i32);
        if let Some(flag) = &self.abort {
            // SAFETY: the callback only reads the flag, which `self.abort`
            // keeps alive until after `full` returns.
            unsafe {
                params.set_abort_callback(Some(abort_requested));
                params.set_abort_callback_user_data(Arc::as_ptr(flag).cast_mut().cast());
            }
        }
        params.set_language(Some(&self.policy.language));
        // States are shared by every session: never carry one user's words
        // into another's prompt. A job's own prompt is given explicitly.
        params.set_no_context(true);
        if let Some(prompt) = options.prompt.as_deref().filter(|p| !p.is_empty()) {
            params.set_initial_prompt(prompt);
        }
        params.set_temperature(options.temperature.max(0.0));
        // Live jobs are one utterance: one segment, no timestamp tokens
        // (faster, and what the accuracy figures were measured with). Word
        // times and file windows need the timestamps.
        let timed = options.words || options.long_form;
        params.set_single_segment(!options.long_form);
        params.set_no_timestamps(!timed);
        params.set_token_timestamps(options.words);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        params.set_audio_ctx(audio_ctx as i32);
        params.set_max_tokens(self.policy.max_tokens(audio.len()) as i32);
        // Long-form decodes seek on after their last timestamp; a pass over
        // the hangover alone costs a whole encoder window (remainder.rs).
        let guard = RemainderGuard::new(audio.len());
        if options.long_form {
            // SAFETY: `guard` outlives the `full` call below.
            unsafe { guard.install(&mut params) };
        }
        let outcome = self.state.full(params, audio);
        if self
            .abort
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
        {
            return Err(WorkerError::Aborted);
        }
        outcome.map_err(|e| WorkerError::Inference(Box::new(e)))?;
        let eot = self.eot;
        let mut raw = String::new();
        let mut segments = Vec::new();
        for segment in self.state.as_iter() {
            let text = segment
                .to_str_lossy()
                .map_err(|e| WorkerError::Inference(Box::new(e)))?;
            raw.push_str(&text);
            if !timed {
                continue;
            }
            let words = if options.words {
                let tokens = (0..segment.n_tokens()).filter_map(|i| {
                    let token = segment.get_token(i)?;
                    let data = token.token_data();
                    // Special tokens (timestamps, end of text) are not words.
                    if data.id >= eot {
                        return None;
                    }
                    let piece = token.to_str_lossy().ok()?.into_owned();
                    Some(text::TimedToken {
                        text: piece,
                        start_ms: centis_to_ms(data.t0),
                        end_ms: centis_to_ms(data.t1),
                        probability: data.p,
                    })
                });
                let mut words = text::words(tokens);
                super::edges::snap_to_silence(&mut words, audio);
                words
            } else {
                Vec::new()
            };
            let clean = text::clean(&text);
            if clean.is_empty() {
                continue;
            }
            segments.push(Segment {
                text: clean,
                start_ms: centis_to_ms(segment.start_timestamp()),
                end_ms: centis_to_ms(segment.end_timestamp()),
                words,
            });
        }
        Ok(Decoded {
            text: text::clean(&raw),
            segments,
        })
    }
}

/// whisper.cpp's times are in centiseconds.
fn centis_to_ms(t: i64) -> u64 {
    t.max(0) as u64 * 10
}

impl Transcriber for WhisperTranscriber {
    fn transcribe(
        &mut self,
        audio: &[f32],
        _kind: JobKind,
        options: &DecodeOptions,
    ) -> Result<Decoded, WorkerError> {
        let floor = options.min_audio_ctx.unwrap_or(self.policy.min_audio_ctx);
        let ctx = self
            .policy
            .audio_ctx_with_floor(audio.len().max(MIN_SAMPLES), floor);
        self.decode(audio, ctx, options)
    }

    fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    fn set_abort_flag(&mut self, flag: Arc<AtomicBool>) {
        self.abort = Some(flag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min: u32) -> DecodePolicy {
        DecodePolicy {
            language: "en".into(),
            threads: 1,
            min_audio_ctx: min,
            max_tokens_per_s: 8.0,
        }
    }

    #[test]
    fn audio_ctx_grows_with_audio_between_floor_and_full() {
        let p = policy(512);
        assert_eq!(p.audio_ctx(16_000), 512);
        assert_eq!(p.audio_ctx(16_000 * 10), 564);
        assert_eq!(p.audio_ctx(16_000 * 29), FULL_AUDIO_CTX);
        assert_eq!(p.audio_ctx(16_000 * 60), FULL_AUDIO_CTX);
        assert_eq!(policy(1500).audio_ctx(16_000), FULL_AUDIO_CTX);
    }

    #[test]
    fn a_lower_floor_shrinks_short_windows_only() {
        let p = policy(768);
        assert_eq!(p.audio_ctx_with_floor(16_000 * 3, 512), 512);
        // 12 s needs 664 frames whatever the floor.
        assert_eq!(p.audio_ctx_with_floor(16_000 * 12, 512), 664);
        assert_eq!(p.audio_ctx_with_floor(16_000 * 12, 768), 768);
    }

    #[test]
    fn token_budget_scales_with_duration() {
        let p = policy(512);
        assert_eq!(p.max_tokens(0), 16);
        assert_eq!(p.max_tokens(16_000 * 5), 56);
    }
}
