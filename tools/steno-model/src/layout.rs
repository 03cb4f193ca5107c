//! Whisper's tensor layout: hyperparameters in, whisper.cpp's tensor list (each with its CTranslate2 source) out.
//!
//! CTranslate2 fuses some projections: self-attention keeps q, k and v stacked in
//! `linear_0` (split in three along the output dim), cross-attention keeps q in
//! `linear_0` and k, v stacked in `linear_1`. whisper.cpp wants them apart, under the
//! openai checkpoint's names. Whisper has no key bias; CTranslate2 stores zeros there,
//! and even a non-zero one would not matter (it adds the same q.b to every score of a
//! query, which softmax ignores), so no key bias is written.
//!
//! Storage types follow `convert-pt-to-ggml.py`: f32 for 1-d tensors, the conv biases
//! and the positional embeddings, f16 for the rest.

use std::path::Path;

use super::ct2::Ct2Model;
use super::error::ImportError;
use super::ggml::{Hparams, TensorType};

/// One whisper.cpp tensor and its source.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSource {
    /// whisper.cpp's name, e.g. `encoder.blocks.0.attn.query.weight`.
    pub name: String,
    /// The CTranslate2 variable, e.g. `encoder/layer_0/self_attention/linear_0/weight`.
    pub variable: String,
    /// The shape the variable must have, outermost first.
    pub variable_shape: Vec<usize>,
    /// Which of `parts` equal slices along the variable's first dim this tensor is.
    pub part: usize,
    pub parts: usize,
    /// The shape written to the ggml file, outermost first.
    pub shape: Vec<usize>,
    pub ttype: TensorType,
}

/// Every tensor whisper.cpp expects for these hyperparameters, in the openai checkpoint's order.
pub fn tensors(h: &Hparams) -> Vec<TensorSource> {
    let (audio, text) = (h.n_audio_state as usize, h.n_text_state as usize);
    let mut plan = Plan(Vec::new());

    plan.whole(
        "encoder.positional_embedding",
        "encoder/position_encodings/encodings",
        &[h.n_audio_ctx as usize, audio],
    );
    plan.whole(
        "encoder.conv1.weight",
        "encoder/conv1/weight",
        &[audio, h.n_mels as usize, 3],
    );
    plan.whole("encoder.conv1.bias", "encoder/conv1/bias", &[audio]);
    plan.whole(
        "encoder.conv2.weight",
        "encoder/conv2/weight",
        &[audio, audio, 3],
    );
    plan.whole("encoder.conv2.bias", "encoder/conv2/bias", &[audio]);
    for i in 0..h.n_audio_layer {
        let (to, from) = (format!("encoder.blocks.{i}"), format!("encoder/layer_{i}"));
        plan.self_attention(&to, &from, audio);
        plan.mlp(&to, &from, audio);
    }
    plan.layer_norm("encoder.ln_post", "encoder/layer_norm", audio);

    plan.whole(
        "decoder.positional_embedding",
        "decoder/position_encodings/encodings",
        &[h.n_text_ctx as usize, text],
    );
    plan.whole(
        "decoder.token_embedding.weight",
        "decoder/embeddings/weight",
        &[h.n_vocab as usize, text],
    );
    for i in 0..h.n_text_layer {
        let (to, from) = (format!("decoder.blocks.{i}"), format!("decoder/layer_{i}"));
        plan.self_attention(&to, &from, text);
        plan.cross_attention(&to, &from, text);
        plan.mlp(&to, &from, text);
    }
    plan.layer_norm("decoder.ln", "decoder/layer_norm", text);
    plan.0
}

/// The values of one tensor: the variable checked against its expected shape,
/// widened to f32 and cut down to its part.
pub fn values(
    model: &Ct2Model<'_>,
    path: &Path,
    source: &TensorSource,
) -> Result<Vec<f32>, ImportError> {
    let name = source.variable.as_str();
    let variable = model
        .get(name)
        .ok_or_else(|| ImportError::missing(path, name))?;
    if variable.shape != source.variable_shape {
        return Err(ImportError::wrong_shape(
            path,
            name,
            &variable.shape,
            &source.variable_shape,
        ));
    }
    let mut all = variable.to_f32().ok_or_else(|| {
        let reason = format!(
            "its dtype is {:?}; quantized weights need their scales applied, so convert the model with --quantization float16 or float32",
            variable.dtype
        );
        ImportError::unsupported(path, name, reason)
    })?;
    let part_len = all.len() / source.parts;
    all.truncate((source.part + 1) * part_len);
    all.drain(..source.part * part_len);
    Ok(all)
}

struct Plan(Vec<TensorSource>);

impl Plan {
    fn part(
        &mut self,
        name: String,
        variable: String,
        variable_shape: &[usize],
        part: usize,
        parts: usize,
    ) {
        let mut shape = variable_shape.to_vec();
        shape[0] /= parts;
        // whisper.cpp adds the conv bias to a [channels, time] result, so it wants [n, 1].
        let is_conv_bias = name.starts_with("encoder.conv") && name.ends_with(".bias");
        if is_conv_bias {
            shape.push(1);
        }
        let ttype = if shape.len() < 2 || is_conv_bias || name.ends_with("positional_embedding") {
            TensorType::F32
        } else {
            TensorType::F16
        };
        let variable_shape = variable_shape.to_vec();
        self.0.push(TensorSource {
            name,
            variable,
            variable_shape,
            part,
            parts,
            shape,
            ttype,
        });
    }

    fn whole(&mut self, name: &str, variable: &str, shape: &[usize]) {
        self.part(name.into(), variable.into(), shape, 0, 1);
    }

    /// `to.weight` (and `to.bias`) from part `part` of `parts` of the rows of `from`.
    fn linear(
        &mut self,
        to: &str,
        from: &str,
        shape: [usize; 2],
        (part, parts): (usize, usize),
        bias: bool,
    ) {
        self.part(
            format!("{to}.weight"),
            format!("{from}/weight"),
            &shape,
            part,
            parts,
        );
        if bias {
            self.part(
                format!("{to}.bias"),
                format!("{from}/bias"),
                &shape[..1],
                part,
                parts,
            );
        }
    }

    fn layer_norm(&mut self, to: &str, from: &str, d: usize) {
        self.part(format!("{to}.weight"), format!("{from}/gamma"), &[d], 0, 1);
        self.part(format!("{to}.bias"), format!("{from}/beta"), &[d], 0, 1);
    }

    fn self_attention(&mut self, to: &str, from: &str, d: usize) {
        let (to, from) = (format!("{to}.attn"), format!("{from}/self_attention"));
        self.layer_norm(&format!("{to}_ln"), &format!("{from}/layer_norm"), d);
        let qkv = format!("{from}/linear_0");
        self.linear(&format!("{to}.query"), &qkv, [3 * d, d], (0, 3), true);
        self.linear(&format!("{to}.key"), &qkv, [3 * d, d], (1, 3), false);
        self.linear(&format!("{to}.value"), &qkv, [3 * d, d], (2, 3), true);
        self.linear(
            &format!("{to}.out"),
            &format!("{from}/linear_1"),
            [d, d],
            (0, 1),
            true,
        );
    }

    fn cross_attention(&mut self, to: &str, from: &str, d: usize) {
        let (to, from) = (format!("{to}.cross_attn"), format!("{from}/attention"));
        self.layer_norm(&format!("{to}_ln"), &format!("{from}/layer_norm"), d);
        self.linear(
            &format!("{to}.query"),
            &format!("{from}/linear_0"),
            [d, d],
            (0, 1),
            true,
        );
        let kv = format!("{from}/linear_1");
        self.linear(&format!("{to}.key"), &kv, [2 * d, d], (0, 2), false);
        self.linear(&format!("{to}.value"), &kv, [2 * d, d], (1, 2), true);
        self.linear(
            &format!("{to}.out"),
            &format!("{from}/linear_2"),
            [d, d],
            (0, 1),
            true,
        );
    }

    fn mlp(&mut self, to: &str, from: &str, d: usize) {
        // whisper.cpp hard-codes the 4x hidden width.
        self.layer_norm(
            &format!("{to}.mlp_ln"),
            &format!("{from}/ffn/layer_norm"),
            d,
        );
        self.linear(
            &format!("{to}.mlp.0"),
            &format!("{from}/ffn/linear_0"),
            [4 * d, d],
            (0, 1),
            true,
        );
        self.linear(
            &format!("{to}.mlp.2"),
            &format!("{from}/ffn/linear_1"),
            [d, 4 * d],
            (0, 1),
            true,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::ggml::FTYPE_MOSTLY_F16;
    use super::super::testing::tiny_whisper_model_bin;
    use super::*;

    fn tiny_en() -> Hparams {
        Hparams {
            n_vocab: 51864,
            n_audio_ctx: 1500,
            n_audio_state: 384,
            n_audio_head: 6,
            n_audio_layer: 4,
            n_text_ctx: 448,
            n_text_state: 384,
            n_text_head: 6,
            n_text_layer: 4,
            n_mels: 80,
            ftype: FTYPE_MOSTLY_F16,
        }
    }

    fn find<'a>(list: &'a [TensorSource], name: &str) -> &'a TensorSource {
        list.iter().find(|t| t.name == name).unwrap()
    }

    #[test]
    fn lists_what_whisper_cpp_allocates() {
        let list = tensors(&tiny_en());
        // whisper_model_load: 7 + 15 per encoder block + 4 + 24 per decoder block.
        assert_eq!(list.len(), 7 + 15 * 4 + 4 + 24 * 4);
        let mut names: Vec<_> = list.iter().map(|t| &t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), list.len(), "duplicate names");
        assert!(list.iter().all(|t| !t.name.contains("key.bias")));
    }

    #[test]
    fn shapes_and_storage_types_follow_the_openai_converter() {
        let list = tensors(&tiny_en());
        let check = |name: &str, shape: &[usize], ttype| {
            let t = find(&list, name);
            assert_eq!((t.shape.as_slice(), t.ttype), (shape, ttype), "{name}");
        };
        check(
            "encoder.positional_embedding",
            &[1500, 384],
            TensorType::F32,
        );
        check("encoder.conv1.weight", &[384, 80, 3], TensorType::F16);
        check("encoder.conv2.bias", &[384, 1], TensorType::F32);
        check(
            "encoder.blocks.3.attn.query.weight",
            &[384, 384],
            TensorType::F16,
        );
        check("encoder.blocks.3.attn.value.bias", &[384], TensorType::F32);
        check(
            "encoder.blocks.0.mlp.0.weight",
            &[1536, 384],
            TensorType::F16,
        );
        check("encoder.ln_post.weight", &[384], TensorType::F32);
        check(
            "decoder.token_embedding.weight",
            &[51864, 384],
            TensorType::F16,
        );
        check("decoder.positional_embedding", &[448, 384], TensorType::F32);
        check(
            "decoder.blocks.2.cross_attn.key.weight",
            &[384, 384],
            TensorType::F16,
        );
        check("decoder.ln.bias", &[384], TensorType::F32);

        let value = find(&list, "decoder.blocks.1.cross_attn.value.weight");
        assert_eq!(value.variable, "decoder/layer_1/attention/linear_1/weight");
        assert_eq!(
            (value.part, value.parts, value.variable_shape.as_slice()),
            (1, 2, &[768, 384][..])
        );
        let key = find(&list, "encoder.blocks.0.attn.key.weight");
        assert_eq!(
            key.variable,
            "encoder/layer_0/self_attention/linear_0/weight"
        );
        assert_eq!((key.part, key.parts), (1, 3));
    }

    #[test]
    fn values_take_the_right_rows_of_a_fused_projection() {
        let bytes = tiny_whisper_model_bin();
        let model = Ct2Model::parse(&bytes).unwrap();
        let list = tensors(&super::super::hparams::from_ct2(&model, Path::new("m")).unwrap());
        let path = Path::new("model.bin");
        // The synthetic projections hold their row index; width 4.
        let rows = |name| -> Vec<f32> {
            let values = values(&model, path, find(&list, name)).unwrap();
            values.chunks(values.len() / 4).map(|row| row[0]).collect()
        };
        assert_eq!(
            rows("encoder.blocks.0.attn.query.weight"),
            [0.0, 1.0, 2.0, 3.0]
        );
        assert_eq!(
            rows("encoder.blocks.0.attn.key.weight"),
            [4.0, 5.0, 6.0, 7.0]
        );
        assert_eq!(
            rows("decoder.blocks.0.attn.value.bias"),
            [8.0, 9.0, 10.0, 11.0]
        );
        assert_eq!(
            rows("decoder.blocks.0.cross_attn.key.weight"),
            [0.0, 1.0, 2.0, 3.0]
        );
        assert_eq!(
            rows("decoder.blocks.0.cross_attn.value.bias"),
            [4.0, 5.0, 6.0, 7.0]
        );
    }

    #[test]
    fn a_wrong_shape_names_the_variable() {
        let bytes = tiny_whisper_model_bin();
        let model = Ct2Model::parse(&bytes).unwrap();
        let mut h = super::super::hparams::from_ct2(&model, Path::new("m")).unwrap();
        h.n_text_ctx = 7;
        let list = tensors(&h);
        let err = values(
            &model,
            Path::new("model.bin"),
            find(&list, "decoder.positional_embedding"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(
                "`decoder/position_encodings/encodings` has shape [5, 4], expected [7, 4]"
            ),
            "{text}"
        );
    }
}
