//! PCM: little-endian 16-bit mono bytes at 8/16/24/48 kHz, or G.711 µ-law / A-law bytes at 8 kHz, in; 16 kHz mono samples out.

use super::resample::Resampler;
use super::{CodecError, OUTPUT_SAMPLE_RATE_HZ};

/// How a message's bytes become samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Law {
    /// Two bytes per sample, little-endian.
    Linear,
    /// One G.711 µ-law byte per sample (ITU-T G.711, the North American and Japanese telephone law).
    Mu,
    /// One G.711 A-law byte per sample (the European telephone law).
    A,
}

/// Parses PCM messages and, for rates other than 16 kHz, resamples them.
pub(super) struct PcmDecoder {
    law: Law,
    /// `None` at 16 kHz: samples pass through untouched.
    resampler: Option<Resampler>,
    /// The parsed samples of one message before resampling; reused so a
    /// steady stream does not allocate.
    scratch: Vec<i16>,
}

impl PcmDecoder {
    pub(super) fn new(sample_rate_hz: u32) -> Result<Self, CodecError> {
        Self::with_law(Law::Linear, sample_rate_hz)
    }

    /// G.711 bytes (`law` Mu or A) at 8 kHz, the telephone rate.
    pub(super) fn g711(law: Law) -> Self {
        Self::with_law(law, 8_000).expect("8 kHz is resampled")
    }

    fn with_law(law: Law, sample_rate_hz: u32) -> Result<Self, CodecError> {
        let resampler = match sample_rate_hz {
            OUTPUT_SAMPLE_RATE_HZ => None,
            8_000 | 24_000 | 48_000 => Some(Resampler::new(sample_rate_hz, OUTPUT_SAMPLE_RATE_HZ)),
            _ => return Err(CodecError::UnsupportedSampleRate { sample_rate_hz }),
        };
        Ok(Self {
            law,
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
        if self.law == Law::Linear && !message.len().is_multiple_of(2) {
            return Err(CodecError::OddByteCount { len: message.len() });
        }
        self.scratch.clear();
        match self.law {
            Law::Linear => self.scratch.extend(
                message
                    .chunks_exact(2)
                    .map(|pair| i16::from_le_bytes([pair[0], pair[1]])),
            ),
            Law::Mu => self.scratch.extend(message.iter().map(|&b| mu_law(b))),
            Law::A => self.scratch.extend(message.iter().map(|&b| a_law(b))),
        }
        let before = out.len();
        match &mut self.resampler {
            None => out.extend_from_slice(&self.scratch),
            Some(resampler) => resampler.process(&self.scratch, out),
        }
        Ok(out.len() - before)
    }
}

/// One G.711 µ-law byte as a 16-bit sample (ITU-T G.711: bits inverted,
/// then sign, 3-bit exponent, 4-bit mantissa, bias 0x84).
pub(super) fn mu_law(byte: u8) -> i16 {
    let b = !byte;
    let exponent = (b >> 4) & 0x07;
    let mantissa = i32::from(b & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if b & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

/// One G.711 A-law byte as a 16-bit sample (ITU-T G.711: even bits
/// inverted, then sign, 3-bit exponent, 4-bit mantissa).
pub(super) fn a_law(byte: u8) -> i16 {
    let b = byte ^ 0x55;
    let exponent = (b >> 4) & 0x07;
    let mantissa = i32::from(b & 0x0F);
    let magnitude = match exponent {
        0 => (mantissa << 4) + 8,
        e => ((mantissa << 4) + 0x108) << (e - 1),
    };
    (if b & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}
