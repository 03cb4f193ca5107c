//! Whisper's hyperparameters: a parsed CTranslate2 model in, the ggml header's `Hparams` out.
//!
//! Nothing is hard-coded per model size: widths, context lengths and the mel count come
//! from the variables' shapes, the head counts from CTranslate2's `num_heads` scalars,
//! the block counts from the `layer_N` names.

use std::collections::BTreeSet;
use std::path::Path;

use super::ct2::Ct2Model;
use super::error::ImportError;
use super::ggml::{FTYPE_MOSTLY_F16, Hparams};

/// Reads the hyperparameters of the Whisper in `model` (parsed from `path`).
pub fn from_ct2(model: &Ct2Model<'_>, path: &Path) -> Result<Hparams, ImportError> {
    let conv1 = shape_of(model, path, "encoder/conv1/weight", 3)?;
    let (n_audio_state, n_mels) = (conv1[0], conv1[1]);
    if conv1[2] != 3 {
        let expected = [n_audio_state, n_mels, 3];
        return Err(ImportError::wrong_shape(
            path,
            "encoder/conv1/weight",
            &conv1,
            &expected,
        ));
    }
    let audio_positions = shape_of(model, path, "encoder/position_encodings/encodings", 2)?;
    let embedding = shape_of(model, path, "decoder/embeddings/weight", 2)?;
    let (n_vocab, n_text_state) = (embedding[0], embedding[1]);
    let text_positions = shape_of(model, path, "decoder/position_encodings/encodings", 2)?;
    if n_text_state != n_audio_state {
        // whisper.cpp asserts that the two widths are equal.
        let expected = [n_vocab, n_audio_state];
        return Err(ImportError::wrong_shape(
            path,
            "decoder/embeddings/weight",
            &embedding,
            &expected,
        ));
    }
    check_tied_projection(model, path)?;

    let int = |name: &str, n: usize| to_i32(path, name, n);
    Ok(Hparams {
        n_vocab: int("decoder/embeddings/weight", n_vocab)?,
        n_audio_ctx: int("encoder/position_encodings/encodings", audio_positions[0])?,
        n_audio_state: int("encoder/conv1/weight", n_audio_state)?,
        n_audio_head: head_count(model, path, "encoder/num_heads", n_audio_state)?,
        n_audio_layer: layer_count(model, path, "encoder")?,
        n_text_ctx: int("decoder/position_encodings/encodings", text_positions[0])?,
        n_text_state: int("decoder/embeddings/weight", n_text_state)?,
        n_text_head: head_count(model, path, "decoder/num_heads", n_text_state)?,
        n_text_layer: layer_count(model, path, "decoder")?,
        n_mels: int("encoder/conv1/weight", n_mels)?,
        ftype: FTYPE_MOSTLY_F16,
    })
}

fn shape_of(
    model: &Ct2Model<'_>,
    path: &Path,
    name: &str,
    rank: usize,
) -> Result<Vec<usize>, ImportError> {
    let variable = model
        .get(name)
        .ok_or_else(|| ImportError::missing(path, name))?;
    if variable.shape.len() != rank {
        let reason = format!("expected rank {rank}, found shape {:?}", variable.shape);
        return Err(ImportError::unsupported(path, name, reason));
    }
    Ok(variable.shape.clone())
}

fn head_count(
    model: &Ct2Model<'_>,
    path: &Path,
    name: &str,
    width: usize,
) -> Result<i32, ImportError> {
    let variable = model
        .get(name)
        .ok_or_else(|| ImportError::missing(path, name))?;
    match variable.as_scalar_int() {
        Some(heads) if heads > 0 && width.is_multiple_of(heads as usize) => {
            to_i32(path, name, heads as usize)
        }
        _ => Err(ImportError::unsupported(
            path,
            name,
            format!("expected a scalar integer head count dividing the width {width}"),
        )),
    }
}

/// The number of `{side}/layer_N/` blocks; they must run from 0 without a gap.
fn layer_count(model: &Ct2Model<'_>, path: &Path, side: &str) -> Result<i32, ImportError> {
    let prefix = format!("{side}/layer_");
    let indices: BTreeSet<usize> = model
        .variables
        .keys()
        .filter_map(|name| name.strip_prefix(&prefix)?.split('/').next()?.parse().ok())
        .collect();
    let first_gap = (0..).find(|i| !indices.contains(i)).unwrap_or(0);
    if first_gap == 0 || first_gap != indices.len() {
        return Err(ImportError::missing(
            path,
            &format!("{prefix}{first_gap}/..."),
        ));
    }
    to_i32(path, &format!("{prefix}*"), first_gap)
}

/// whisper.cpp computes logits with the token embedding, so a separate output
/// projection would be silently ignored: refuse one whose values differ.
fn check_tied_projection(model: &Ct2Model<'_>, path: &Path) -> Result<(), ImportError> {
    const PROJECTION: &str = "decoder/projection/weight";
    const EMBEDDING: &str = "decoder/embeddings/weight";
    let (Some(projection), Some(embedding)) = (model.get(PROJECTION), model.get(EMBEDDING)) else {
        return Ok(());
    };
    if model.resolve(PROJECTION) == EMBEDDING || projection.data == embedding.data {
        return Ok(());
    }
    let reason = "it differs from the token embedding, and whisper.cpp ties the two".into();
    Err(ImportError::unsupported(path, PROJECTION, reason))
}

fn to_i32(path: &Path, name: &str, n: usize) -> Result<i32, ImportError> {
    i32::try_from(n).map_err(|_| {
        ImportError::unsupported(
            path,
            name,
            format!("{n} does not fit the ggml header's i32"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ModelBinBuilder, tiny_whisper_model_bin};
    use super::*;

    #[test]
    fn reads_every_field_off_the_model() {
        let bytes = tiny_whisper_model_bin();
        let model = Ct2Model::parse(&bytes).unwrap();
        let h = from_ct2(&model, Path::new("model.bin")).unwrap();
        assert_eq!((h.n_vocab, h.n_mels, h.ftype), (51864, 80, 1));
        assert_eq!(
            (
                h.n_audio_ctx,
                h.n_audio_state,
                h.n_audio_head,
                h.n_audio_layer
            ),
            (6, 4, 2, 1)
        );
        assert_eq!(
            (h.n_text_ctx, h.n_text_state, h.n_text_head, h.n_text_layer),
            (5, 4, 2, 1)
        );
    }

    #[test]
    fn a_gap_in_the_blocks_names_the_missing_one() {
        let bytes = ModelBinBuilder::new("WhisperSpec", 3)
            .f16("encoder/layer_0/x", &[1], &[0.0])
            .f16("encoder/layer_2/x", &[1], &[0.0])
            .build();
        let model = Ct2Model::parse(&bytes).unwrap();
        let err = layer_count(&model, Path::new("m"), "encoder").unwrap_err();
        assert!(err.to_string().contains("`encoder/layer_1/...`"), "{err}");
        let err = layer_count(&model, Path::new("m"), "decoder").unwrap_err();
        assert!(err.to_string().contains("`decoder/layer_0/...`"), "{err}");
    }

    #[test]
    fn an_untied_projection_is_refused() {
        let bytes = ModelBinBuilder::new("WhisperSpec", 3)
            .f16("decoder/embeddings/weight", &[2], &[1.0, 2.0])
            .f16("decoder/projection/weight", &[2], &[1.0, 3.0])
            .build();
        let model = Ct2Model::parse(&bytes).unwrap();
        let err = check_tied_projection(&model, Path::new("m")).unwrap_err();
        assert!(err.to_string().contains("ties the two"), "{err}");
    }

    #[test]
    fn head_counts_must_divide_the_width() {
        let bytes = ModelBinBuilder::new("WhisperSpec", 3)
            .int16("encoder/num_heads", 5)
            .build();
        let model = Ct2Model::parse(&bytes).unwrap();
        assert!(head_count(&model, Path::new("m"), "encoder/num_heads", 384).is_err());
        assert_eq!(
            head_count(&model, Path::new("m"), "encoder/num_heads", 385).unwrap(),
            5
        );
    }
}
