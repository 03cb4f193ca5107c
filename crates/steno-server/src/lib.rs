//! steno-server: a real-time speech-to-text server, one audio pipeline behind many doors.
//!
//! # Layout
//!
//! Audio flows through the modules in this order:
//!
//! ```text
//! transport  the doors: axum routes (/v1/listen, /v1/sessions, /health, /ready,
//!            /metrics, the demo page); the WebSocket protocol v1 adapter
//!    |
//! session    one live session, whatever its door: client input in, timers,
//!            limits and shutdown, the pipeline driven; `registry` lists them
//!    |
//! pipeline   decoded audio + control in: segmenter (steno-audio), early finals,
//!            jobs on the worker lanes; transcript events out, in order (`Outbox`)
//!    |
//! worker     fixed pool of named OS threads, one shared Whisper model, one state
//!            each; lanes (final, early, partial, batch) with their policies;
//!            idle cores lent to a lone final
//! ```
//!
//! Beside the live path, `files` transcribes recordings (synchronously or as
//! durable jobs) through the same worker pool, on its batch lane.
//!
//! Around the pipeline: `admission` (the session limit), `auth` (token and
//! origin), `config` (one typed struct assembled from each component's
//! section), `metrics` (Prometheus series), `load` (the load ratio for balancers and
//! autoscalers), `heap` (live heap bytes, counted
//! by the `steno` binary's allocator), `calibrate` (this machine measured:
//! the worker layout and session limit to run with), `server` (the run loop
//! and graceful shutdown). The wire types are `steno_protocol`, the audio front end
//! (codec, vad, ring) is `steno_audio`, the model converter `steno_model`.

pub mod admission;
pub mod auth;
pub mod calibrate;
pub mod config;
pub mod files;
pub mod heap;
pub mod load;
pub mod metrics;
pub mod pipeline;
pub mod server;
pub mod session;
pub mod transport;
pub mod worker;
