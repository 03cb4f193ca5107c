//! steno: a real-time speech-to-text server.
//!
//! # Layout
//!
//! Audio flows through the modules in this order:
//!
//! ```text
//! transport  HTTP + WebSocket on hyper/tokio-tungstenite; /v1/listen, /health, /ready, /metrics
//!    |
//! session    one task pair per client: reads protocol v1, drives the pipeline, writes JSON back
//!    |
//! codec      Opus packets or PCM chunks in, 16 kHz mono i16 samples out
//!    |
//! vad        webrtc-vad + structure check: samples in, utterance events (start, pause, end + audio) out
//!    |
//! ring       the fixed-capacity ring buffer holding an open utterance's audio
//!    |
//! worker     fixed pool of named OS threads, one shared Whisper model, one state each;
//!            transcription jobs (final, early final, partial) in, text out; idle
//!            cores lent to a lone final
//!    |
//! protocol   the JSON messages a session sends back (ready, speech_started, partial, final, error)
//! ```
//!
//! Around the pipeline: `admission` (the session limit), `config` (one typed
//! struct from config.toml + environment), `metrics` (Prometheus series),
//! `model` (ggml model files: import from CTranslate2), `heap` (live heap
//! bytes, counted by the `steno` binary's allocator), `server` (the run loop
//! and graceful shutdown), `wer` (word error rate, for tests and the load
//! generator).

pub mod admission;
pub mod codec;
pub mod config;
pub mod heap;
pub mod metrics;
pub mod model;
pub mod protocol;
pub mod ring;
pub mod server;
pub mod session;
pub mod vad;
pub mod wav;
pub mod wer;
pub mod worker;
