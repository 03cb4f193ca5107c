//! Opus: one raw Opus packet in, its 16 kHz mono samples out (libopus does the downmix and resampling).

use opus::{Channels, Decoder};

use super::{CodecError, OUTPUT_SAMPLE_RATE_HZ};

/// The longest packet Opus allows (several frames of up to 60 ms each, at
/// most 120 ms in all), in output samples: 1920 at 16 kHz.
const MAX_PACKET_SAMPLES: usize = (OUTPUT_SAMPLE_RATE_HZ as usize) * 120 / 1000;

/// A libopus decoder fixed at 16 kHz mono, plus the scratch buffer it decodes into.
pub(super) struct OpusPacketDecoder {
    /// Keeps the inter-packet state (SILK/CELT history) that makes the next
    /// packet's start sound right.
    decoder: Decoder,
    /// Sized for the longest legal packet, so libopus never reports a buffer
    /// too small for a valid packet and no message allocates.
    scratch: Box<[i16; MAX_PACKET_SAMPLES]>,
}

impl OpusPacketDecoder {
    pub(super) fn new() -> Result<Self, CodecError> {
        let decoder =
            Decoder::new(OUTPUT_SAMPLE_RATE_HZ, Channels::Mono).map_err(CodecError::OpusInit)?;
        Ok(Self {
            decoder,
            scratch: Box::new([0; MAX_PACKET_SAMPLES]),
        })
    }

    /// Decodes one non-empty packet (the caller refuses empty ones: libopus
    /// would take them for packet loss).
    ///
    /// Opus has no checksum: bytes that happen to parse as a valid packet
    /// decode to noise rather than an error. What libopus can tell is
    /// malformed (bad frame lengths or counts, more than 120 ms) is an error,
    /// and libopus checks the whole packet before it touches the decoder
    /// state, so a refused packet does not disturb the next one.
    pub(super) fn decode(
        &mut self,
        packet: &[u8],
        out: &mut Vec<i16>,
    ) -> Result<usize, CodecError> {
        debug_assert!(!packet.is_empty(), "the caller refuses empty packets");
        let decoded = self
            .decoder
            .decode(packet, &mut self.scratch[..], false)
            .map_err(CodecError::InvalidOpus)?;
        out.extend_from_slice(&self.scratch[..decoded]);
        Ok(decoded)
    }
}
