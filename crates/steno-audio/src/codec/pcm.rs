//! PCM s16le: little-endian 16-bit mono bytes at 8/16/24/48 kHz in, 16 kHz mono samples out.

use super::resample::Resampler;
use super::{CodecError, OUTPUT_SAMPLE_RATE_HZ};

/// Parses PCM messages and, for rates other than 16 kHz, resamples them.
pub(super) struct PcmDecoder {
    /// `None` at 16 kHz: samples pass through untouched.
    resampler: Option<Resampler>,
    /// The parsed samples of one message before resampling; reused so a
    /// steady stream does not allocate.
    scratch: Vec<i16>,
}

impl PcmDecoder {
    pub(super) fn new(sample_rate_hz: u32) -> Result<Self, CodecError> {
        let resampler = match sample_rate_hz {
            OUTPUT_SAMPLE_RATE_HZ => None,
            8_000 | 24_000 | 48_000 => Some(Resampler::new(sample_rate_hz, OUTPUT_SAMPLE_RATE_HZ)),
            _ => return Err(CodecError::UnsupportedSampleRate { sample_rate_hz }),
        };
        Ok(Self {
            resampler,
            scratch: Vec::new(),
        })
    }

    /// Decodes one non-empty message. An odd byte count refuses the whole
    /// message: half a sample means the client framed its stream wrongly, and
    /// guessing would shift every later sample by a byte.
    pub(super) fn decode(
        &mut self,
        message: &[u8],
        out: &mut Vec<i16>,
    ) -> Result<usize, CodecError> {
        if !message.len().is_multiple_of(2) {
            return Err(CodecError::OddByteCount { len: message.len() });
        }
        let samples = message
            .chunks_exact(2)
            .map(|pair| i16::from_le_bytes([pair[0], pair[1]]));
        let before = out.len();
        match &mut self.resampler {
            None => out.extend(samples),
            Some(resampler) => {
                self.scratch.clear();
                self.scratch.extend(samples);
                resampler.process(&self.scratch, out);
            }
        }
        Ok(out.len() - before)
    }
}
