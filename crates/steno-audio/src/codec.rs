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
//! - **G.711** ([`AudioDecoder::g711_mu`], [`AudioDecoder::g711_a`]): one
//!   µ-law or A-law byte per sample at 8 kHz (the Realtime door's
//!   `audio/pcmu` and `audio/pcma`), resampled like 8 kHz PCM.
//! - **Ogg Opus** and **WebM Opus** ([`Encoding::OggOpus`],
//!   [`Encoding::WebmOpus`]): a container byte stream cut into messages
//!   anywhere; [`ogg`] and [`webm`] take the Opus packets out of it and the
//!   Opus decoder above decodes them.
//!
//! A packet or chunk that cannot be decoded is rejected whole with a
//! [`CodecError`] and leaves the decoder ready for the next message. In a
//! container stream a message may hold good packets beside a bad one: what
//! decodes is appended all the same, and the error says what was skipped.

pub mod ogg;
mod opus_packet;
mod pcm;
pub(crate) mod resample;
pub mod webm;

#[cfg(test)]
mod tests;

use opus_packet::OpusPacketDecoder;
use pcm::{Law, PcmDecoder};

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
    /// Bytes of an Ogg stream that were not a page.
    #[error(transparent)]
    Ogg(#[from] ogg::NotOgg),
    /// A WebM stream that could not be read.
    #[error(transparent)]
    Webm(#[from] webm::NotWebm),
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
    Ogg(ogg::OggReader, OpusPacketDecoder),
    Webm(webm::WebmReader, OpusPacketDecoder),
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
            Encoding::OggOpus => Inner::Ogg(ogg::OggReader::new(), OpusPacketDecoder::new()?),
            Encoding::WebmOpus => Inner::Webm(webm::WebmReader::new(), OpusPacketDecoder::new()?),
        };
        Ok(Self { inner })
    }

    /// A decoder of G.711 µ-law bytes at 8 kHz (`audio/pcmu`).
    pub fn g711_mu() -> Self {
        Self {
            inner: Inner::Pcm(PcmDecoder::g711(Law::Mu)),
        }
    }

    /// A decoder of G.711 A-law bytes at 8 kHz (`audio/pcma`).
    pub fn g711_a() -> Self {
        Self {
            inner: Inner::Pcm(PcmDecoder::g711(Law::A)),
        }
    }

    /// Decodes one client binary WebSocket message and appends 16 kHz mono
    /// samples to `out`; returns how many were appended.
    ///
    /// On error the decoder stays usable for the next message; nothing is
    /// appended for a packet or a PCM chunk, and for a container stream the
    /// packets that did decode are (so `out` may have grown: use it).
    pub fn decode(&mut self, message: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        if message.is_empty() {
            return Err(CodecError::EmptyPacket);
        }
        match &mut self.inner {
            Inner::Opus(decoder) => decoder.decode(message, out),
            Inner::Pcm(decoder) => decoder.decode(message, out),
            Inner::Ogg(reader, decoder) => {
                let mut packets = Vec::new();
                let read = reader.push(message, &mut packets).map_err(CodecError::from);
                decode_all(decoder, &packets, out, read)
            }
            Inner::Webm(reader, decoder) => {
                let mut frames = Vec::new();
                let read = reader.push(message, &mut frames).map_err(CodecError::from);
                decode_all(decoder, &frames, out, read)
            }
        }
    }
}

/// Decodes every packet a container gave; the first error (the
/// container's, or a packet's) is returned after all the rest is decoded.
fn decode_all(
    decoder: &mut OpusPacketDecoder,
    packets: &[Vec<u8>],
    out: &mut Vec<i16>,
    read: Result<(), CodecError>,
) -> Result<usize, CodecError> {
    let mut first_error = read.err();
    let mut decoded = 0;
    for packet in packets.iter().filter(|p| !p.is_empty()) {
        match decoder.decode(packet, out) {
            Ok(n) => decoded += n,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(decoded),
    }
}
