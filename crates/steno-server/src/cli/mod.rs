//! The `steno` subcommands that are more than a call into the library.
//!
//! ```text
//! calibrate   steno calibrate: this machine measured, the worker layout and session limit to run with out
//! transcribe  steno transcribe FILE...: files in, transcripts out, on this machine
//! listen      steno listen FILE --url ws://...: a file streamed to a server as a live user, its partials and finals out
//! ```

mod calibrate;
mod listen;
mod transcribe;

pub use calibrate::{CalibrateArgs, calibrate};
pub use listen::{ListenArgs, listen};
pub use transcribe::{TranscribeArgs, transcribe};
