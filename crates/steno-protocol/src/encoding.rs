//! Audio encodings: the `encoding` query value in, the decoder a session builds out.

use serde::{Deserialize, Serialize};

/// How the client encodes the audio in its binary messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// One raw Opus packet per message (libopus or browser WebCodecs), mono or
    /// stereo, 2.5 to 120 ms.
    Opus,
    /// Little-endian signed 16-bit mono samples.
    PcmS16le,
    /// An Ogg Opus stream, in slices of any size (a file, or what a
    /// `MediaRecorder` emits).
    OggOpus,
    /// A WebM stream with an Opus track, in slices of any size (what a
    /// `MediaRecorder` emits in Chrome).
    WebmOpus,
}

impl Encoding {
    /// The name used in queries and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opus => "opus",
            Self::PcmS16le => "pcm_s16le",
            Self::OggOpus => "ogg_opus",
            Self::WebmOpus => "webm_opus",
        }
    }

    /// Parses a query value.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Opus, Self::PcmS16le, Self::OggOpus, Self::WebmOpus]
            .into_iter()
            .find(|e| e.as_str() == name)
    }
}
