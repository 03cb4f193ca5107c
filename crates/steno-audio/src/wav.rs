//! WAV files: a path in, 16 kHz mono samples out (for `steno transcribe`, tests, benches and the load generator).

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: hound::Error },
    #[error(
        "{path} is {rate} Hz, {channels} channel(s), {bits}-bit: steno tools take 16 kHz mono 16-bit WAV (convert with `sox IN -r 16000 -c 1 -b 16 OUT`)"
    )]
    Format {
        path: String,
        rate: u32,
        channels: u16,
        bits: u16,
    },
}

/// Reads a 16 kHz mono 16-bit WAV file as i16 samples.
pub fn read_i16(path: &Path) -> Result<Vec<i16>, WavError> {
    let name = path.display().to_string();
    let reader = hound::WavReader::open(path).map_err(|source| WavError::Read {
        path: name.clone(),
        source,
    })?;
    let spec = reader.spec();
    if spec.sample_rate != 16_000
        || spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(WavError::Format {
            path: name,
            rate: spec.sample_rate,
            channels: spec.channels,
            bits: spec.bits_per_sample,
        });
    }
    reader
        .into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| WavError::Read { path: name, source })
}

/// Reads a 16 kHz mono 16-bit WAV file as f32 samples in [-1, 1).
pub fn read_f32(path: &Path) -> Result<Vec<f32>, WavError> {
    Ok(read_i16(path)?
        .into_iter()
        .map(|s| s as f32 / 32768.0)
        .collect())
}
