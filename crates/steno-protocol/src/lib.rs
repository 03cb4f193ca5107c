//! steno's wire types: what a client and the server say to each other, and nothing else.
//!
//! # Layout
//!
//! ```text
//! listen    the /v1/listen query string  -> ListenParams (or a ParamError naming the key)
//! control   a client's JSON text message -> ClientMessage
//! messages  ServerMessage                <-> JSON text (serde both ways)
//! error     ErrorCode: the one mapping to WebSocket close codes and HTTP statuses;
//!           Close: every way the server closes a socket; ApiError: the HTTP error body
//! encoding  Encoding: how a client's binary messages carry audio
//! ```
//!
//! No C dependencies and no runtime: the client crate, the fuzz targets and
//! any other program can depend on it. docs/protocol.md describes the
//! protocol these types implement.

mod control;
mod encoding;
mod error;
mod listen;
mod messages;

pub use control::{ClientMessage, ControlError};
pub use encoding::Encoding;
pub use error::{ApiError, ApiErrorBody, Close, ErrorCode};
pub use listen::{ListenParams, OUTPUT_SAMPLE_RATE_HZ, PCM_SAMPLE_RATES_HZ, ParamError, Resume};
pub use messages::{ServerMessage, WordTiming};
