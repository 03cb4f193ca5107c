//! whisper.cpp's ggml file writer: hyperparameters, mel filters, vocabulary and tensors in, the file's bytes out.
//!
//! The layout is the one `whisper_model_load` reads and `convert-pt-to-ggml.py` writes,
//! all little endian: magic, 11 `i32` hyperparameters, the mel filter bank (`i32`
//! n_mel, `i32` n_fft, f32 rows), the vocabulary (`i32` count, then `u32` length +
//! bytes per token), then per tensor `i32` n_dims, `i32` name length, `i32` type, the
//! dims innermost first, the name and the data.

use std::io::{self, Write};

use super::f16::f32_to_f16;
use super::mel::MelFilters;
use super::q8;

/// "ggml" read as a little-endian u32.
pub const MAGIC: u32 = 0x6767_6d6c;

/// whisper.cpp's `ftype` for "big matrices in f16, the rest in f32".
pub const FTYPE_MOSTLY_F16: i32 = 1;
/// whisper.cpp's `ftype` for "big matrices in q8_0": ggml's `MOSTLY_Q8_0` (7)
/// plus its quantisation format version (2) times 1000, as whisper.cpp's
/// own quantiser writes it.
pub const FTYPE_MOSTLY_Q8_0: i32 = 2_007;

/// Whisper's hyperparameters, in the order the file stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
}

impl Hparams {
    fn as_array(&self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }
}

/// How a tensor's elements are stored; the discriminant is ggml's type id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32 = 0,
    F16 = 1,
    /// Blocks of 32 along the innermost dim (see `q8`).
    Q8_0 = 8,
}

/// Writes the sections in order; it counts the bytes so the caller can report them.
pub struct GgmlWriter<W: Write> {
    out: W,
    bytes_written: u64,
}

impl<W: Write> GgmlWriter<W> {
    pub fn new(out: W) -> Self {
        GgmlWriter {
            out,
            bytes_written: 0,
        }
    }

    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.bytes_written += bytes.len() as u64;
        Ok(())
    }

    fn put_i32(&mut self, value: i32) -> io::Result<()> {
        self.put(&value.to_le_bytes())
    }

    pub fn write_header(&mut self, hparams: &Hparams) -> io::Result<()> {
        self.put(&MAGIC.to_le_bytes())?;
        for value in hparams.as_array() {
            self.put_i32(value)?;
        }
        Ok(())
    }

    pub fn write_mel_filters(&mut self, filters: &MelFilters) -> io::Result<()> {
        self.put_i32(len_i32(filters.n_mels)?)?;
        self.put_i32(len_i32(filters.n_freqs)?)?;
        let bytes: Vec<u8> = filters
            .weights
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        self.put(&bytes)
    }

    pub fn write_vocabulary(&mut self, tokens: &[Vec<u8>]) -> io::Result<()> {
        self.put_i32(len_i32(tokens.len())?)?;
        for token in tokens {
            self.put(&(len_i32(token.len())? as u32).to_le_bytes())?;
            self.put(token)?;
        }
        Ok(())
    }

    /// One tensor. `shape` is outermost first (numpy / PyTorch order, row-major
    /// `values`); the file wants it innermost first, so it is reversed here.
    pub fn write_tensor(
        &mut self,
        name: &str,
        shape: &[usize],
        ttype: TensorType,
        values: &[f32],
    ) -> io::Result<()> {
        let count: usize = shape.iter().product();
        if count != values.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "tensor {name}: shape {shape:?} needs {count} values, got {}",
                    values.len()
                ),
            ));
        }
        self.put_i32(len_i32(shape.len())?)?;
        self.put_i32(len_i32(name.len())?)?;
        self.put_i32(ttype as i32)?;
        for &dim in shape.iter().rev() {
            self.put_i32(len_i32(dim)?)?;
        }
        self.put(name.as_bytes())?;
        let data: Vec<u8> = match ttype {
            TensorType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            TensorType::F16 => values
                .iter()
                .flat_map(|&v| f32_to_f16(v).to_le_bytes())
                .collect(),
            TensorType::Q8_0 => {
                if shape.last().is_none_or(|&row| row % q8::BLOCK != 0) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("tensor {name}: rows of {shape:?} are not whole q8_0 blocks"),
                    ));
                }
                let mut data = Vec::new();
                q8::quantize(values, &mut data);
                data
            }
        };
        self.put(&data)
    }
}

fn len_i32(n: usize) -> io::Result<i32> {
    i32::try_from(n).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{n} does not fit the format's i32"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i32_at(bytes: &[u8], at: usize) -> i32 {
        i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    fn hparams() -> Hparams {
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

    #[test]
    fn header_is_magic_then_eleven_hparams() {
        let mut w = GgmlWriter::new(Vec::new());
        w.write_header(&hparams()).unwrap();
        let bytes = w.into_inner();
        assert_eq!(bytes.len(), 48);
        assert_eq!(&bytes[..4], b"lmgg"); // 0x67676d6c little endian
        let values: Vec<i32> = (0..11).map(|i| i32_at(&bytes, 4 + 4 * i)).collect();
        assert_eq!(values, [51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1]);
    }

    #[test]
    fn mel_and_vocabulary_sections() {
        let filters = MelFilters {
            n_mels: 2,
            n_freqs: 3,
            weights: vec![0.0, 0.5, 0.0, 0.0, 0.25, 1.0],
        };
        let mut w = GgmlWriter::new(Vec::new());
        w.write_mel_filters(&filters).unwrap();
        w.write_vocabulary(&[b"a".to_vec(), b" the".to_vec(), Vec::new()])
            .unwrap();
        let written = w.bytes_written();
        let bytes = w.into_inner();
        assert_eq!(written, bytes.len() as u64);

        assert_eq!((i32_at(&bytes, 0), i32_at(&bytes, 4)), (2, 3));
        assert_eq!(f32::from_le_bytes(bytes[12..16].try_into().unwrap()), 0.5);
        let vocab = &bytes[8 + 6 * 4..];
        assert_eq!(i32_at(vocab, 0), 3);
        assert_eq!(i32_at(vocab, 4), 1);
        assert_eq!(&vocab[8..9], b"a");
        assert_eq!(i32_at(vocab, 9), 4);
        assert_eq!(&vocab[13..17], b" the");
        assert_eq!(i32_at(vocab, 17), 0);
        assert_eq!(vocab.len(), 21);
    }

    #[test]
    fn tensor_record_reverses_dims_and_converts_data() {
        let mut w = GgmlWriter::new(Vec::new());
        // A [2, 3] matrix: 2 rows (outer) of 3 (inner).
        w.write_tensor(
            "x.w",
            &[2, 3],
            TensorType::F16,
            &[1.0, 2.0, 3.0, 4.0, 5.0, -1.0],
        )
        .unwrap();
        let bytes = w.into_inner();
        assert_eq!(i32_at(&bytes, 0), 2); // n_dims
        assert_eq!(i32_at(&bytes, 4), 3); // name length
        assert_eq!(i32_at(&bytes, 8), 1); // f16
        assert_eq!((i32_at(&bytes, 12), i32_at(&bytes, 16)), (3, 2)); // ne0 = inner
        assert_eq!(&bytes[20..23], b"x.w");
        let data = &bytes[23..];
        assert_eq!(data.len(), 12);
        assert_eq!(&data[..2], &0x3c00u16.to_le_bytes()); // 1.0
        assert_eq!(&data[10..], &0xbc00u16.to_le_bytes()); // -1.0

        let mut w = GgmlWriter::new(Vec::new());
        w.write_tensor("b", &[2, 1], TensorType::F32, &[0.5, 2.0])
            .unwrap();
        let bytes = w.into_inner();
        assert_eq!(i32_at(&bytes, 8), 0);
        assert_eq!((i32_at(&bytes, 12), i32_at(&bytes, 16)), (1, 2));
        assert_eq!(f32::from_le_bytes(bytes[21..25].try_into().unwrap()), 0.5);
        assert_eq!(bytes.len(), 21 + 8);
    }

    #[test]
    fn a_value_count_that_misses_the_shape_is_refused() {
        let mut w = GgmlWriter::new(Vec::new());
        assert!(
            w.write_tensor("x", &[2, 2], TensorType::F32, &[1.0])
                .is_err()
        );
    }

    #[test]
    fn q8_0_tensors_are_blocks_along_rows() {
        let mut w = GgmlWriter::new(Vec::new());
        let values: Vec<f32> = (0..64).map(|i| i as f32 - 32.0).collect();
        w.write_tensor("m", &[2, 32], TensorType::Q8_0, &values)
            .unwrap();
        let bytes = w.into_inner();
        assert_eq!(i32_at(&bytes, 8), 8); // ggml's id for q8_0
        assert_eq!((i32_at(&bytes, 12), i32_at(&bytes, 16)), (32, 2));
        assert_eq!(bytes.len() - 21, 2 * q8::BLOCK_BYTES);

        let mut w = GgmlWriter::new(Vec::new());
        let err = w
            .write_tensor("odd", &[2, 4], TensorType::Q8_0, &[0.0; 8])
            .unwrap_err();
        assert!(err.to_string().contains("q8_0"), "{err}");
    }
}
