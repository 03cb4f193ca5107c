//! Test fixtures: synthetic CTranslate2 `model.bin` bytes and vocabularies in, ggml files read back out.
//!
//! The writer side mirrors CTranslate2's Python `model_spec.py`; the reader side walks
//! a ggml file the way whisper.cpp's `whisper_model_load` does.

use super::f16::{f16_to_f32, f32_to_f16};

/// Builds `model.bin` bytes (binary version 6).
pub struct ModelBinBuilder {
    bytes: Vec<u8>,
    variables: Vec<u8>,
    count: u32,
    aliases: Vec<(String, String)>,
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

impl ModelBinBuilder {
    pub fn new(spec: &str, revision: u32) -> Self {
        let mut bytes = 6u32.to_le_bytes().to_vec();
        put_string(&mut bytes, spec);
        bytes.extend_from_slice(&revision.to_le_bytes());
        ModelBinBuilder {
            bytes,
            variables: Vec::new(),
            count: 0,
            aliases: Vec::new(),
        }
    }

    pub fn raw(mut self, name: &str, shape: &[u32], dtype_id: u8, data: &[u8]) -> Self {
        put_string(&mut self.variables, name);
        self.variables.push(shape.len() as u8);
        for d in shape {
            self.variables.extend_from_slice(&d.to_le_bytes());
        }
        self.variables.push(dtype_id);
        self.variables
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.variables.extend_from_slice(data);
        self.count += 1;
        self
    }

    /// An f16 variable holding `values` (each exactly representable in f16).
    pub fn f16(self, name: &str, shape: &[u32], values: &[f32]) -> Self {
        let data: Vec<u8> = values
            .iter()
            .flat_map(|&v| f32_to_f16(v).to_le_bytes())
            .collect();
        self.raw(name, shape, 4, &data)
    }

    pub fn int16(self, name: &str, value: i16) -> Self {
        self.raw(name, &[], 2, &value.to_le_bytes())
    }

    pub fn alias(mut self, alias: &str, target: &str) -> Self {
        self.aliases.push((alias.into(), target.into()));
        self
    }

    pub fn build(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&self.count.to_le_bytes());
        self.bytes.extend_from_slice(&self.variables);
        self.bytes
            .extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
        for (alias, target) in &self.aliases {
            put_string(&mut self.bytes, alias);
            put_string(&mut self.bytes, target);
        }
        self.bytes
    }
}

/// Width of the synthetic Whisper.
pub const TINY_STATE: u32 = 4;
/// tiny.en's vocabulary size, so whisper.cpp's special-token ids apply.
pub const TINY_VOCAB: usize = 51864;

/// A Whisper with one encoder and one decoder block of width 4, 80 mels, 6 audio and
/// 5 text positions. Fused projections hold their row index, so a test can tell which
/// rows a split took.
pub fn tiny_whisper_model_bin() -> Vec<u8> {
    const D: u32 = TINY_STATE;
    let rows =
        |n: u32, width: u32| -> Vec<f32> { (0..n * width).map(|i| (i / width) as f32).collect() };
    let ones = |n: u32| vec![1.0; n as usize];
    let norm = |b: ModelBinBuilder, p: &str| {
        b.f16(&format!("{p}/gamma"), &[D], &ones(D))
            .f16(&format!("{p}/beta"), &[D], &ones(D))
    };
    // A linear layer with `outs` x D outputs.
    let linear = |b: ModelBinBuilder, p: &str, outs: u32, ins: u32| {
        b.f16(
            &format!("{p}/weight"),
            &[outs * D, ins],
            &rows(outs * D, ins),
        )
        .f16(&format!("{p}/bias"), &[outs * D], &rows(outs * D, 1))
    };

    let mut b = ModelBinBuilder::new("WhisperSpec", 3)
        .int16("encoder/num_heads", 2)
        .int16("decoder/num_heads", 2)
        .f16("encoder/conv1/weight", &[D, 80, 3], &ones(D * 240))
        .f16("encoder/conv1/bias", &[D], &[1.0, 2.0, 3.0, 4.0])
        .f16("encoder/conv2/weight", &[D, D, 3], &ones(D * D * 3))
        .f16("encoder/conv2/bias", &[D], &ones(D))
        .f16("encoder/position_encodings/encodings", &[6, D], &rows(6, D))
        .f16(
            "decoder/embeddings/weight",
            &[TINY_VOCAB as u32, D],
            &vec![0.5; TINY_VOCAB * 4],
        )
        .f16("decoder/position_encodings/encodings", &[5, D], &rows(5, D))
        .alias("decoder/projection/weight", "decoder/embeddings/weight");
    b = norm(b, "encoder/layer_norm");
    b = norm(b, "decoder/layer_norm");
    for side in ["encoder", "decoder"] {
        let p = format!("{side}/layer_0");
        b = norm(b, &format!("{p}/self_attention/layer_norm"));
        b = linear(b, &format!("{p}/self_attention/linear_0"), 3, D);
        b = linear(b, &format!("{p}/self_attention/linear_1"), 1, D);
        b = norm(b, &format!("{p}/ffn/layer_norm"));
        b = linear(b, &format!("{p}/ffn/linear_0"), 4, D);
        b = linear(b, &format!("{p}/ffn/linear_1"), 1, 4 * D);
    }
    b = norm(b, "decoder/layer_0/attention/layer_norm");
    b = linear(b, "decoder/layer_0/attention/linear_0", 1, D);
    b = linear(b, "decoder/layer_0/attention/linear_1", 2, D);
    b = linear(b, "decoder/layer_0/attention/linear_2", 1, D);
    b.build()
}

/// An English-only vocabulary: 50256 regular tokens (`Ġt0`, `Ġt1`, ...), then specials.
pub fn tiny_whisper_vocabulary() -> String {
    let mut text: String = (0..50256).map(|i| format!("Ġt{i}\n")).collect();
    text.push_str("<|endoftext|>\n");
    text.extend((50257..TINY_VOCAB).map(|i| format!("<|s{i}|>\n")));
    text
}

/// One tensor record of a ggml file.
pub struct GgmlRecord {
    pub name: String,
    /// Outermost first, like the source shapes.
    pub shape: Vec<usize>,
    pub ttype: i32,
    pub data: Vec<u8>,
}

impl GgmlRecord {
    pub fn values(&self) -> Vec<f32> {
        match self.ttype {
            0 => self
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            _ => self
                .data
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
        }
    }
}

/// A ggml file's sections.
pub struct GgmlFile {
    pub hparams: Vec<i32>,
    pub mel_shape: (usize, usize),
    pub tokens: Vec<Vec<u8>>,
    pub tensors: Vec<GgmlRecord>,
}

impl GgmlFile {
    pub fn parse(bytes: &[u8]) -> GgmlFile {
        let mut c = Cursor { bytes, at: 0 };
        assert_eq!(c.i32() as u32, 0x6767_6d6c, "bad magic");
        let hparams: Vec<i32> = (0..11).map(|_| c.i32()).collect();
        let mel_shape = (c.i32() as usize, c.i32() as usize);
        c.take(mel_shape.0 * mel_shape.1 * 4);
        let token_count = c.i32();
        let tokens = (0..token_count)
            .map(|_| {
                let len = c.i32() as usize;
                c.take(len).to_vec()
            })
            .collect();
        let mut tensors = Vec::new();
        while c.at < bytes.len() {
            let (n_dims, name_len, ttype) = (c.i32(), c.i32() as usize, c.i32());
            let mut shape: Vec<usize> = (0..n_dims).map(|_| c.i32() as usize).collect();
            shape.reverse();
            let name = String::from_utf8(c.take(name_len).to_vec()).unwrap();
            let len = shape.iter().product::<usize>() * if ttype == 0 { 4 } else { 2 };
            let data = c.take(len).to_vec();
            tensors.push(GgmlRecord {
                name,
                shape,
                ttype,
                data,
            });
        }
        GgmlFile {
            hparams,
            mel_shape,
            tokens,
            tensors,
        }
    }

    pub fn tensor(&self, name: &str) -> &GgmlRecord {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tensor {name}"))
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        self.at += n;
        &self.bytes[self.at - n..self.at]
    }

    fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.take(4).try_into().unwrap())
    }
}
