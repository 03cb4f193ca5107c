//! steno's input side, compiled from steno's own source files for fuzzing:
//! `protocol` (query and control-message parsers), `codec` (Opus and PCM
//! decoding), `vad` (the segmenter) and `ring` (its buffer). The paths below
//! are the files of `steno::{protocol, codec, vad, ring}`; these modules only
//! use each other, so they build here without the rest of the server.
//!
//! Should one of them come to need another steno module, point the fuzz
//! crate at the whole library instead (`steno = { path = ".." }` in
//! fuzz/Cargo.toml, and drop this file): the targets need no change, but a
//! fresh build takes about 11 minutes instead of 3.

#[path = "../../src/codec/mod.rs"]
pub mod codec;
#[path = "../../src/protocol.rs"]
pub mod protocol;
#[path = "../../src/ring/mod.rs"]
pub mod ring;
#[path = "../../src/vad/mod.rs"]
pub mod vad;
