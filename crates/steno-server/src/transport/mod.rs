//! The doors: HTTP requests and WebSocket connections in, sessions on the one pipeline and HTTP answers out.
//!
//! ```text
//! http    the axum router: /health, /ready, /metrics, /v1/sessions, the demo page,
//!         and the routes of every door below; one mapping from errors to statuses
//! listen  /v1/listen: protocol v1 over WebSocket (a thin adapter over `session`)
//! realtime  /v1/realtime?intent=transcription: OpenAI's Realtime API for
//!         transcription (a thin adapter over `session`, like listen)
//! files   /v1/audio/transcriptions, /v1/models, /v1/jobs: OpenAI-compatible files
//! socket  what every WebSocket door shares: handshake, limits, reads, a writer
//!         with deadlines, the close codes
//! read_ahead  the socket read on while a session waits (pings answered),
//!         up to session.read_ahead_bytes
//! resume  /v1/listen sessions whose connection dropped, waiting for
//!         ?resume=TOKEN for session.resume_grace_s
//! ```
//!
//! A new door plugs in as a route in `http::router` and a module here that
//! maps its messages to `session::Input` and `pipeline::Event`s to its own.

pub mod files;
pub mod http;
pub mod listen;
pub mod read_ahead;
pub mod realtime;
pub mod resume;
pub mod socket;

pub use http::{AppState, router};
