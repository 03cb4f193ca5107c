//! What steno's tests, benches and tools share, written once.
//!
//! # Layout
//!
//! ```text
//! paths       the repository, the shared speech set, the model, binaries beside a test's
//! speech      espeak-ng sentences (cached), silence, noise, the shared manifest
//! packets     16 kHz samples in, raw Opus packets or PCM chunks out
//! wer         word error rate, normalised the way the shared set's README asks
//! http        a minimal HTTP/1.1 client for /health, /ready, /metrics and JSON APIs
//! prometheus  Prometheus text in, series by name out
//! process     /proc: a process's memory and CPU, the machine's load
//! server      a `steno` binary started as a child process, stopped with SIGTERM
//! ```
//!
//! Not published: the server never depends on it. Errors are `anyhow`, as
//! in tests and tools.

pub mod http;
pub mod packets;
pub mod paths;
pub mod process;
pub mod prometheus;
pub mod server;
pub mod speech;
pub mod wer;

pub use steno_audio::wav;
