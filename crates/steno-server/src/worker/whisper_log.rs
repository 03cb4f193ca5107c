//! whisper.cpp's log lines in, tracing events out (target `whisper_rs`, as whisper-rs's own hook writes them), without the line each skipped remainder pass would log as an error.
//!
//! `remainder.rs` ends a long-form call by returning false from the encoder
//! callback, which whisper.cpp reports at error level; here that is what
//! steno asked for, not a fault. ggml's own lines keep whisper-rs's hook.

use std::borrow::Cow;
use std::ffi::{CStr, c_char, c_void};

use whisper_rs::GGMLLogLevel;

/// whisper.cpp's line when the encoder callback declines a pass.
const DECLINED_PASS: &str = "encoder_begin_callback returned false";

/// ggml's log level as the C API passes it (whisper-rs's `GGMLLogLevel`
/// uses the same rule).
#[cfg(any(not(windows), target_env = "gnu"))]
type RawLevel = u32;
#[cfg(all(windows, not(target_env = "gnu")))]
type RawLevel = i32;

/// Routes whisper.cpp's log through [`forward`]. Call once, after
/// `whisper_rs::install_logging_hooks`.
pub fn install() {
    // SAFETY: `on_log` does not unwind and keeps nothing of `text`.
    unsafe { whisper_rs::set_log_callback(Some(on_log), std::ptr::null_mut()) };
}

unsafe extern "C" fn on_log(level: RawLevel, text: *const c_char, _: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: whisper.cpp passes a NUL-terminated string, valid for the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    forward(GGMLLogLevel::from(level), text);
}

fn forward(level: GGMLLogLevel, text: Cow<str>) {
    let Some(text) = kept(&text) else {
        return;
    };
    match level {
        GGMLLogLevel::Error => tracing::error!(target: "whisper_rs", "{text}"),
        GGMLLogLevel::Warn => tracing::warn!(target: "whisper_rs", "{text}"),
        GGMLLogLevel::Info => tracing::info!(target: "whisper_rs", "{text}"),
        _ => tracing::debug!(target: "whisper_rs", "{text}"),
    }
}

/// The line to log, trimmed; None for blank lines and declined passes.
fn kept(text: &str) -> Option<&str> {
    let text = text.trim();
    (!text.is_empty() && !text.contains(DECLINED_PASS)).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::kept;

    #[test]
    fn a_declined_pass_is_not_logged_and_a_real_error_is() {
        assert_eq!(
            kept("whisper_full_with_state: encoder_begin_callback returned false - aborting\n"),
            None
        );
        assert_eq!(kept("  \n"), None);
        assert_eq!(
            kept("whisper_full_with_state: failed to encode\n"),
            Some("whisper_full_with_state: failed to encode")
        );
    }
}
