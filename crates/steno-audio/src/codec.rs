//! Audio decoding: client binary messages (Opus packets or PCM chunks) in, 16 kHz mono i16 samples out.
//!
//! The session hands every binary WebSocket message to one [`AudioDecoder`],
//! made for the encoding the client announced. Whatever the client sends, the
//! rest of the pipeline (vad, ring, whisper) only ever sees 16 kHz mono:
//!
//! - **Opus** ([`Encoding::Opus`]): one raw Opus packet per message; libopus
//!   decodes it straight to 16 kHz mono, downmixing and resampling internally.
//! - **PCM** ([`Encoding::PcmS16le`]): little-endian 16-bit mono samples at 8,
//!   16, 24 or 48 kHz; other rates than 16 kHz go through a streaming
//!   polyphase resampler ([`resample`]).
//!
//! A message that cannot be decoded is rejected whole with a [`CodecError`]
//! and leaves the decoder ready for the next message.

mod opus_packet;
mod pcm;
pub(crate) mod resample;

#[cfg(test)]
mod tests;

use opus_packet::OpusPacketDecoder;
use pcm::PcmDecoder;

/// How the client encodes the audio in its binary messages (a wire type).
pub use steno_protocol::Encoding;
/// The sample rate of everything the decoder hands on: what whisper and
/// webrtc-vad both take.
pub use steno_protocol::OUTPUT_SAMPLE_RATE_HZ;

/// Why a message could not be decoded, or a decoder not made.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// An empty binary message. libopus would read it as a lost packet and
    /// invent 120 ms of concealment audio, so it is refused instead.
    #[error("empty audio message")]
    EmptyPacket,
    /// libopus refused the packet (malformed, or longer than 120 ms).
    #[error("invalid Opus packet")]
    InvalidOpus(#[source] opus::Error),
    /// PCM s16le carries two bytes per sample; the whole message is refused.
    #[error("PCM s16le message has an odd byte count ({len})")]
    OddByteCount {
        /// The message length in bytes.
        len: usize,
    },
    /// A PCM rate the resampler does not handle.
    #[error(
        "unsupported PCM sample rate {sample_rate_hz} Hz (expected 8000, 16000, 24000 or 48000)"
    )]
    UnsupportedSampleRate {
        /// The rate the client asked for.
        sample_rate_hz: u32,
    },
    /// libopus could not create a decoder (out of memory).
    #[error("could not create the Opus decoder")]
    OpusInit(#[source] opus::Error),
}

/// Turns one session's binary messages into 16 kHz mono samples.
///
/// Holds stream state (libopus's decoder, the resampler's history), so a
/// session keeps one for its whole life. It is `Send`, so the session task can
/// move between runtime threads.
pub struct AudioDecoder {
    /// The decoder for the encoding the client announced.
    inner: Inner,
}

/// One variant per encoding; each keeps its own stream state.
enum Inner {
    Opus(OpusPacketDecoder),
    Pcm(PcmDecoder),
}

impl AudioDecoder {
    /// Makes a decoder for one client stream.
    ///
    /// `sample_rate_hz`: for [`Encoding::PcmS16le`] one of 8000, 16000, 24000
    /// or 48000; ignored for [`Encoding::Opus`] (an Opus packet says its own
    /// layout, and libopus decodes any of them to 16 kHz).
    pub fn new(encoding: Encoding, sample_rate_hz: u32) -> Result<Self, CodecError> {
        let inner = match encoding {
            Encoding::Opus => Inner::Opus(OpusPacketDecoder::new()?),
            Encoding::PcmS16le => Inner::Pcm(PcmDecoder::new(sample_rate_hz)?),
        };
        Ok(Self { inner })
    }

    /// Decodes one client binary WebSocket message and appends 16 kHz mono
    /// samples to `out`; returns how many were appended.
    ///
    /// On error nothing is appended and the decoder stays usable for the next
    /// message.
    pub fn decode(&mut self, message: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        if message.is_empty() {
            return Err(CodecError::EmptyPacket);
        }
        match &mut self.inner {
            Inner::Opus(decoder) => decoder.decode(message, out),
            Inner::Pcm(decoder) => decoder.decode(message, out),
        }
    }
}
