//! ggml model files: a CTranslate2 Whisper directory in, a whisper.cpp ggml file out.
//!
//! whisper.cpp (through whisper-rs) loads only its own ggml format, while the Whisper
//! weights we can fetch offline come as a CTranslate2 conversion. `import_ct2` bridges
//! the two: `ct2` parses `model.bin`, `vocab` decodes `vocabulary.txt`, `mel`
//! computes the filter bank CTranslate2 does not ship, `hparams` reads the model's
//! size off its shapes, `layout` maps CTranslate2's (partly fused) variables onto
//! whisper.cpp's tensor names, and `ggml` writes the file. `cli` is the
//! `import-ct2` command line that both `steno-model` and `steno model` take.
//!
//! Pure Rust: building this crate never builds whisper.cpp, so
//! `scripts/fetch-model.sh` converts the model before the server is built.

pub mod cli;
mod ct2;
mod error;
mod f16;
mod ggml;
mod hparams;
mod import;
mod layout;
mod mel;
mod q8;
#[cfg(test)]
mod testing;
mod vocab;

pub use error::ImportError;
pub use ggml::Hparams;
pub use import::{ImportSummary, WeightFormat, import_ct2};
