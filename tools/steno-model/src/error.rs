//! The import's one error type: every way a CTranslate2 directory can fail to become a ggml file.
//!
//! Each variant names the file, and where it helps the variable or line, at fault.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },

    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },

    #[error(
        "{path} is not a CTranslate2 model this converter can read (at byte {offset}): {reason}"
    )]
    Ct2Format {
        path: PathBuf,
        offset: usize,
        reason: String,
    },

    #[error(
        "{path} holds a CTranslate2 `{spec}` model; only `WhisperSpec` can become a whisper.cpp file"
    )]
    NotWhisper { path: PathBuf, spec: String },

    #[error("{path} has no variable `{name}`")]
    MissingVariable { path: PathBuf, name: String },

    #[error("{path}: variable `{name}` has shape {got:?}, expected {expected:?}")]
    WrongShape {
        path: PathBuf,
        name: String,
        got: Vec<usize>,
        expected: Vec<usize>,
    },

    #[error("{path}: variable `{name}` cannot be converted: {reason}")]
    UnsupportedVariable {
        path: PathBuf,
        name: String,
        reason: String,
    },

    #[error("{path}, line {line}: {reason}")]
    Vocabulary {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    #[error("{path} does not fit the model: {reason}")]
    VocabularyMismatch { path: PathBuf, reason: String },
}

impl ImportError {
    pub(super) fn missing(path: &Path, name: &str) -> ImportError {
        ImportError::MissingVariable {
            path: path.into(),
            name: name.into(),
        }
    }

    pub(super) fn wrong_shape(
        path: &Path,
        name: &str,
        got: &[usize],
        expected: &[usize],
    ) -> ImportError {
        ImportError::WrongShape {
            path: path.into(),
            name: name.into(),
            got: got.to_vec(),
            expected: expected.to_vec(),
        }
    }

    pub(super) fn unsupported(path: &Path, name: &str, reason: String) -> ImportError {
        ImportError::UnsupportedVariable {
            path: path.into(),
            name: name.into(),
            reason,
        }
    }
}
