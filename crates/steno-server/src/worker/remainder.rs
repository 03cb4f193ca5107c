//! Skipping whisper.cpp's pass over a window's last second: the progress of one `whisper_full` call in, whether the next encoder pass may run out.
//!
//! When a decode ends on a pair of timestamp tokens, whisper.cpp seeks to
//! the last one and encodes again from there, a whole `audio_ctx` for what
//! is left. In a file window of packed utterances what is left is nearly
//! always the VAD's hangover after the last word: measured on the 60-minute
//! benchmark (docs/files.md), 48 of 182 windows paid that second pass, and
//! skipping the ones with under 1.5 s left took the wall time from 140 s to
//! 118 s with the same 427 word errors. Skipping every second pass lost
//! words (WER 5.70% -> 7.76%): a longer remainder still holds speech.

use std::ffi::c_void;
use std::sync::atomic::{AtomicI32, Ordering};

use whisper_rs::{FullParams, WhisperSysContext, WhisperSysState};

/// A later pass over less audio than this is not run.
pub const MIN_REMAINDER_S: f32 = 1.5;

/// Follows one `whisper_full` call: lives on the caller's stack until the
/// call returns.
pub struct RemainderGuard {
    audio_s: f32,
    /// whisper.cpp's last progress report: percent of the audio behind the
    /// seek point, before each pass.
    progress: AtomicI32,
}

impl RemainderGuard {
    pub fn new(samples: usize) -> Self {
        Self {
            audio_s: samples as f32 / 16_000.0,
            progress: AtomicI32::new(0),
        }
    }

    /// Whether a pass starting at `progress` percent may run: the first
    /// always, a later one only over at least [`MIN_REMAINDER_S`].
    pub fn allows(&self, progress: i32) -> bool {
        let left_s = self.audio_s * (100 - progress.clamp(0, 100)) as f32 / 100.0;
        progress == 0 || left_s >= MIN_REMAINDER_S
    }

    /// Hooks the guard into `params`.
    ///
    /// # Safety
    /// `self` must stay where it is until the `full` call given `params`
    /// has returned.
    pub unsafe fn install(&self, params: &mut FullParams) {
        let data = (self as *const Self).cast_mut().cast::<c_void>();
        // SAFETY: both callbacks only read `self` through `data`, which the
        // caller keeps alive for the call.
        unsafe {
            params.set_progress_callback(Some(on_progress));
            params.set_progress_callback_user_data(data);
            params.set_start_encoder_callback(Some(on_encoder_begin));
            params.set_start_encoder_callback_user_data(data);
        }
    }
}

unsafe extern "C" fn on_progress(
    _: *mut WhisperSysContext,
    _: *mut WhisperSysState,
    progress: i32,
    data: *mut c_void,
) {
    // SAFETY: `data` is the guard `install` was called on, still alive.
    let guard = unsafe { &*data.cast::<RemainderGuard>() };
    guard.progress.store(progress, Ordering::Relaxed);
}

/// Returning false ends the call with what is decoded so far.
unsafe extern "C" fn on_encoder_begin(
    _: *mut WhisperSysContext,
    _: *mut WhisperSysState,
    data: *mut c_void,
) -> bool {
    // SAFETY: as in `on_progress`.
    let guard = unsafe { &*data.cast::<RemainderGuard>() };
    guard.allows(guard.progress.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_pass_always_runs_and_a_short_remainder_never() {
        let guard = RemainderGuard::new(16_000 * 20);
        assert!(guard.allows(0));
        assert!(guard.allows(50), "10 s left");
        assert!(guard.allows(92), "1.6 s left");
        assert!(!guard.allows(93), "1.4 s left");
        assert!(!guard.allows(100));
        let short = RemainderGuard::new(16_000);
        assert!(short.allows(0), "a 1 s window is still transcribed");
        assert!(!short.allows(10));
    }
}
