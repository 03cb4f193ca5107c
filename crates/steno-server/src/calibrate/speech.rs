//! Speech for the bench: a recording (any format steno reads) or espeak-ng's reading of a paragraph in, 16 kHz mono samples of at least [`bench::LONG_S`] out.

use std::path::{Path, PathBuf};

use super::{CalibrateError, bench};

/// 16 kHz speech for the bench: `path`, or espeak-ng's rendering of a
/// paragraph.
pub fn read(path: Option<&Path>) -> Result<Vec<f32>, CalibrateError> {
    if let Some(path) = path {
        return read_speech(path);
    }
    let rendered = espeak()?;
    let read = read_speech(&rendered);
    let _ = std::fs::remove_file(&rendered);
    read
}

fn read_speech(path: &Path) -> Result<Vec<f32>, CalibrateError> {
    let mut decoder =
        steno_audio::file::FileDecoder::open(path).map_err(|source| CalibrateError::Audio {
            path: path.to_path_buf(),
            source,
        })?;
    let mut samples = Vec::new();
    while decoder
        .read(&mut samples)
        .map_err(|source| CalibrateError::Audio {
            path: path.to_path_buf(),
            source,
        })?
    {}
    let seconds = samples.len() as f64 / 16_000.0;
    if seconds < bench::LONG_S {
        return Err(CalibrateError::TooShort(
            path.to_path_buf(),
            seconds,
            bench::LONG_S,
        ));
    }
    Ok(samples.into_iter().map(|s| s as f32 / 32768.0).collect())
}

const PARAGRAPH: &str = "Whisper encodes a fixed window of audio whatever the length of the \
    utterance, so a short sentence costs nearly as much as a long one. This paragraph is \
    read aloud to measure that cost on this machine, one worker at a time and all at once.";

fn espeak() -> Result<PathBuf, CalibrateError> {
    let path = std::env::temp_dir().join(format!("steno-calibrate-{}.wav", std::process::id()));
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&path)
        .arg(PARAGRAPH)
        .status()
        .map_err(|e| CalibrateError::Espeak(e.to_string()))?;
    if !status.success() {
        return Err(CalibrateError::Espeak(status.to_string()));
    }
    Ok(path)
}
