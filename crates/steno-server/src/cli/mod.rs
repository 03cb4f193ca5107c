//! The `steno` subcommands that are more than a call into the library.
//!
//! ```text
//! transcribe  steno transcribe FILE...: files in, transcripts out, on this machine
//! listen      steno listen FILE --url ws://...: a file streamed to a server as a live user, its partials and finals out
//! ```

mod listen;
mod transcribe;

pub use listen::{ListenArgs, listen};
pub use transcribe::{TranscribeArgs, transcribe};
