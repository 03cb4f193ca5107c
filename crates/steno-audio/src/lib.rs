//! steno's audio front end: client audio in, utterances of 16 kHz mono speech out.
//!
//! # Layout
//!
//! ```text
//! codec   Opus packets or PCM chunks in, 16 kHz mono i16 samples out
//!   |
//! vad     webrtc-vad + a structure check: samples in, utterance events
//!         (speech started, paused, ended with its audio) out
//!   |
//! ring    the fixed-capacity ring buffer holding an open utterance's audio
//!
//! file    recordings in any container (WAV, FLAC, MP3, Ogg, WebM, MP4) in,
//!         16 kHz mono samples out as a stream (file transcription)
//! wav     16 kHz WAV files in, samples out (tools, tests, benches)
//! ```
//!
//! Everything here is synchronous and allocation-bounded; the server's
//! pipeline drives it from the async runtime (decoding one message or one
//! VAD frame is microseconds). The fuzz targets and the front-end bench use
//! this crate directly, without the server.

pub mod codec;
pub mod file;
pub mod ring;
pub mod vad;
pub mod wav;

pub use steno_protocol::{Encoding, OUTPUT_SAMPLE_RATE_HZ};
