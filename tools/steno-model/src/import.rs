//! The import itself: a CTranslate2 Whisper directory in, a whisper.cpp ggml file on disk (and a summary) out.
//!
//! Reads `model.bin` and `vocabulary.txt`, computes the mel filter bank, and writes
//! the ggml file to a temporary name beside the target, renaming it into place only
//! once it is complete, so a crash never leaves a half-written model behind.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use super::ct2::Ct2Model;
use super::error::ImportError;
use super::ggml::{FTYPE_MOSTLY_F16, FTYPE_MOSTLY_Q8_0, GgmlWriter, Hparams, TensorType};
use super::mel::MelFilters;
use super::vocab::{END_OF_TEXT, Vocabulary};
use super::{hparams, layout};

/// whisper.cpp's id for `<|endoftext|>` in English-only models; multilingual ones
/// (n_vocab >= 51865) have one more regular token, so theirs is one higher.
const ENGLISH_END_OF_TEXT_ID: usize = 50256;
const MULTILINGUAL_MIN_VOCAB: usize = 51865;

/// How the big weight matrices are stored (the rest is f32 or f16 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// As CTranslate2 ships them: exact.
    #[default]
    F16,
    /// ggml's 8-bit blocks: about half the size; whisper.cpp multiplies them
    /// as integers. See docs/capacity.md for its speed and accuracy here.
    Q8_0,
}

impl WeightFormat {
    fn ftype(self) -> i32 {
        match self {
            WeightFormat::F16 => FTYPE_MOSTLY_F16,
            WeightFormat::Q8_0 => FTYPE_MOSTLY_Q8_0,
        }
    }

    /// The stored type of a tensor the f16 layout plans as `planned`:
    /// whisper.cpp quantises exactly its 2-d f16 matrices (the conv kernels
    /// are 3-d and stay f16).
    fn storage(self, planned: TensorType, shape: &[usize]) -> TensorType {
        match self {
            WeightFormat::Q8_0 if planned == TensorType::F16 && shape.len() == 2 => {
                TensorType::Q8_0
            }
            _ => planned,
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    /// Tensors in the ggml file (whisper.cpp refuses a file missing any).
    pub tensors: usize,
    /// Size of the finished file.
    pub bytes_written: u64,
    /// Token count the model predicts over, special tokens included.
    pub n_vocab: u32,
    /// Regular BPE tokens stored in the file; whisper.cpp names the special ones itself.
    pub vocab_tokens_written: usize,
    /// Whether whisper.cpp will treat the model as multilingual (n_vocab >= 51865).
    pub multilingual: bool,
    /// Everything the ggml header says about the model.
    pub hparams: Hparams,
}

/// Converts the CTranslate2 Whisper model in `dir` to a whisper.cpp ggml file at `out`.
pub fn import_ct2(
    dir: &Path,
    out: &Path,
    weights: WeightFormat,
) -> Result<ImportSummary, ImportError> {
    let model_path = dir.join("model.bin");
    let bytes = fs::read(&model_path).map_err(|source| ImportError::Read {
        path: model_path.clone(),
        source,
    })?;
    let model = Ct2Model::parse(&bytes).map_err(|e| ImportError::Ct2Format {
        path: model_path.clone(),
        offset: e.offset,
        reason: e.reason,
    })?;
    if model.spec != "WhisperSpec" {
        return Err(ImportError::NotWhisper {
            path: model_path,
            spec: model.spec.clone(),
        });
    }
    let hparams = Hparams {
        ftype: weights.ftype(),
        ..hparams::from_ct2(&model, &model_path)?
    };

    let vocab_path = dir.join("vocabulary.txt");
    let vocab = read_vocabulary(&vocab_path, &hparams)?;
    let filters = MelFilters::whisper(hparams.n_mels as usize);
    let tensors = layout::tensors(&hparams);

    let partial = PartialFile::beside(out)?;
    let file = File::create(&partial.path).map_err(|source| write_error(&partial.path, source))?;
    let mut writer = GgmlWriter::new(BufWriter::with_capacity(1 << 20, file));
    let io = |source| write_error(&partial.path, source);
    writer.write_header(&hparams).map_err(io)?;
    writer.write_mel_filters(&filters).map_err(io)?;
    writer.write_vocabulary(&vocab.regular).map_err(io)?;
    for tensor in &tensors {
        let values = layout::values(&model, &model_path, tensor)?;
        writer
            .write_tensor(
                &tensor.name,
                &tensor.shape,
                weights.storage(tensor.ttype, &tensor.shape),
                &values,
            )
            .map_err(io)?;
    }
    let bytes_written = writer.bytes_written();
    let file = writer
        .into_inner()
        .into_inner()
        .map_err(|e| write_error(&partial.path, e.into_error()))?;
    file.sync_all().map_err(io)?;
    drop(file);
    partial.finish(out)?;

    Ok(ImportSummary {
        tensors: tensors.len(),
        bytes_written,
        n_vocab: hparams.n_vocab as u32,
        vocab_tokens_written: vocab.regular.len(),
        multilingual: hparams.n_vocab as usize >= MULTILINGUAL_MIN_VOCAB,
        hparams,
    })
}

/// Reads the vocabulary and checks that whisper.cpp's fixed special-token ids will
/// land on the same tokens as in this model.
fn read_vocabulary(path: &Path, hparams: &Hparams) -> Result<Vocabulary, ImportError> {
    let text = fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.into(),
        source,
    })?;
    let vocab = Vocabulary::parse(&text).map_err(|e| ImportError::Vocabulary {
        path: path.into(),
        line: e.line,
        reason: e.reason,
    })?;
    let n_vocab = hparams.n_vocab as usize;
    let mismatch = |reason| ImportError::VocabularyMismatch {
        path: path.into(),
        reason,
    };
    if vocab.total != n_vocab {
        return Err(mismatch(format!(
            "it lists {} tokens but the token embedding has {n_vocab} rows",
            vocab.total
        )));
    }
    let multilingual = n_vocab >= MULTILINGUAL_MIN_VOCAB;
    let expected = ENGLISH_END_OF_TEXT_ID + usize::from(multilingual);
    if vocab.regular.len() != expected {
        return Err(mismatch(format!(
            "`{END_OF_TEXT}` is token {} but whisper.cpp expects it at {expected} for a {} model",
            vocab.regular.len(),
            if multilingual {
                "multilingual"
            } else {
                "English-only"
            }
        )));
    }
    Ok(vocab)
}

/// The file being written; removed on drop unless `finish` moved it into place.
struct PartialFile {
    path: PathBuf,
    done: bool,
}

impl PartialFile {
    fn beside(out: &Path) -> Result<PartialFile, ImportError> {
        let name = out.file_name().ok_or_else(|| {
            write_error(out, std::io::Error::other("the output path names no file"))
        })?;
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|source| write_error(dir, source))?;
        }
        // Same directory as the target, so the final rename cannot cross file systems.
        let mut partial = std::ffi::OsString::from(".");
        partial.push(name);
        partial.push(format!(".partial-{}", std::process::id()));
        Ok(PartialFile {
            path: out.with_file_name(partial),
            done: false,
        })
    }

    fn finish(mut self, out: &Path) -> Result<(), ImportError> {
        fs::rename(&self.path, out).map_err(|source| write_error(out, source))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.done {
            // Best effort: the file may never have been created.
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn write_error(path: &Path, source: std::io::Error) -> ImportError {
    ImportError::Write {
        path: path.into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{GgmlFile, tiny_whisper_model_bin, tiny_whisper_vocabulary};
    use super::*;

    fn scratch_dir(test: &str) -> PathBuf {
        let name = format!("steno-import-{test}-{}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write_model(dir: &Path, model_bin: &[u8], vocabulary: &str) {
        fs::write(dir.join("model.bin"), model_bin).unwrap();
        fs::write(dir.join("vocabulary.txt"), vocabulary).unwrap();
    }

    #[test]
    fn converts_a_small_whisper_end_to_end() {
        let dir = scratch_dir("ok");
        write_model(&dir, &tiny_whisper_model_bin(), &tiny_whisper_vocabulary());
        let out = dir.join("models/ggml-test.bin");

        let summary = import_ct2(&dir, &out, WeightFormat::F16).unwrap();
        let bytes = fs::read(&out).unwrap();
        assert_eq!(summary.bytes_written, bytes.len() as u64);
        assert_eq!(summary.n_vocab, 51864);
        assert_eq!(summary.vocab_tokens_written, 50256);
        assert!(!summary.multilingual);

        let file = GgmlFile::parse(&bytes);
        assert_eq!(file.hparams, [51864, 6, 4, 2, 1, 5, 4, 2, 1, 80, 1]);
        assert_eq!(file.mel_shape, (80, 201));
        assert_eq!(file.tokens.len(), 50256);
        assert_eq!(file.tokens[7], b" t7");
        // whisper.cpp's counts: 7 + 15 per encoder block, 4 + 24 per decoder block.
        assert_eq!(file.tensors.len(), 7 + 15 + 4 + 24);
        assert_eq!(summary.tensors, file.tensors.len());
        let conv_bias = file.tensor("encoder.conv1.bias");
        assert_eq!(
            (conv_bias.shape.as_slice(), conv_bias.ttype),
            (&[4, 1][..], 0)
        );
        assert_eq!(conv_bias.values(), [1.0, 2.0, 3.0, 4.0]);
        let key = file.tensor("encoder.blocks.0.attn.key.weight");
        assert_eq!(key.values()[..5], [4.0, 4.0, 4.0, 4.0, 5.0]);

        assert_eq!(
            fs::read_dir(dir.join("models")).unwrap().count(),
            1,
            "temp file left"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_variable_is_named_and_no_file_is_left() {
        let dir = scratch_dir("missing");
        // Misspell one variable so the model lacks it.
        let mut model = tiny_whisper_model_bin();
        let needle = b"decoder/layer_0/attention/linear_2/bias";
        let at = model
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap();
        model[at + needle.len() - 1] = b'_';
        write_model(&dir, &model, &tiny_whisper_vocabulary());

        let err = import_ct2(&dir, &dir.join("out.bin"), WeightFormat::F16).unwrap_err();
        let expected = "decoder/layer_0/attention/linear_2/bias";
        assert!(
            matches!(&err, ImportError::MissingVariable { name, .. } if name == expected),
            "{err}"
        );
        assert!(err.to_string().contains("model.bin"), "{err}");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            2,
            "output or temp file left"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_vocabulary_that_disagrees_with_the_model_is_refused() {
        let dir = scratch_dir("vocab");
        let vocabulary = tiny_whisper_vocabulary();
        let short = vocabulary.split_once('\n').unwrap().1;
        write_model(&dir, &tiny_whisper_model_bin(), short);
        let err = import_ct2(&dir, &dir.join("out.bin"), WeightFormat::F16).unwrap_err();
        assert!(
            matches!(err, ImportError::VocabularyMismatch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("51863 tokens"), "{err}");

        let err = import_ct2(
            &dir.join("nowhere"),
            &dir.join("out.bin"),
            WeightFormat::F16,
        )
        .unwrap_err();
        assert!(matches!(err, ImportError::Read { .. }), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn other_specs_are_refused() {
        let dir = scratch_dir("spec");
        let model = super::super::testing::ModelBinBuilder::new("TransformerSpec", 1).build();
        write_model(&dir, &model, &tiny_whisper_vocabulary());
        let err = import_ct2(&dir, &dir.join("out.bin"), WeightFormat::F16).unwrap_err();
        assert!(err.to_string().contains("`TransformerSpec`"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
