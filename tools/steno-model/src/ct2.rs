//! CTranslate2 `model.bin` reader: the file's bytes in, named variables (shape, dtype, data) out.
//!
//! Layout (little endian, see CTranslate2's `model_spec.py` and `models/model.cc`):
//! `u32` binary version, spec name, `u32` spec revision, `u32` variable count, then per
//! variable its name, `u8` rank, rank x `u32` dims, `u8` dtype id, `u32` byte count and the
//! raw bytes; then `u32` alias count and (alias, target) name pairs. A string is a `u16`
//! length that counts a trailing NUL, then the bytes including that NUL.

use std::collections::BTreeMap;

use super::f16::f16_to_f32;

/// Binary versions whose variable records look as above (v4 added the dtype id byte).
const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 4..=6;

/// A parse failure, with the byte offset where it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatError {
    pub offset: usize,
    pub reason: String,
}

/// CTranslate2's `DataType` ids as written to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_id(id: u8) -> Option<DType> {
        Some(match id {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    pub fn size_bytes(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// One stored variable; `data` borrows the file's bytes.
#[derive(Debug)]
pub struct Variable<'a> {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub data: &'a [u8],
}

impl Variable<'_> {
    /// The values as f32, or `None` for integer dtypes (quantized weights need their
    /// scales, which this converter does not apply).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let words = self.data.chunks_exact(self.dtype.size_bytes());
        match self.dtype {
            DType::F32 => Some(
                words
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            DType::F16 => Some(
                words
                    .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                    .collect(),
            ),
            // bfloat16 is the top half of an f32.
            DType::BF16 => Some(
                words
                    .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))
                    .collect(),
            ),
            DType::I8 | DType::I16 | DType::I32 => None,
        }
    }

    /// The value of a rank-0 integer variable (CTranslate2 keeps settings such as
    /// `num_heads` this way).
    pub fn as_scalar_int(&self) -> Option<i64> {
        if !self.shape.is_empty() {
            return None;
        }
        let b = self.data;
        match self.dtype {
            DType::I8 => Some(i64::from(b[0] as i8)),
            DType::I16 => Some(i64::from(i16::from_le_bytes([b[0], b[1]]))),
            DType::I32 => Some(i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
            _ => None,
        }
    }
}

/// A parsed `model.bin`: its spec and every variable, aliases resolved.
#[derive(Debug)]
pub struct Ct2Model<'a> {
    pub spec: String,
    pub variables: BTreeMap<String, Variable<'a>>,
    /// alias name -> the variable it points at, as stored.
    pub aliases: BTreeMap<String, String>,
}

impl<'a> Ct2Model<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Ct2Model<'a>, FormatError> {
        let mut r = Reader { bytes, pos: 0 };
        let binary_version = r.u32()?;
        if !SUPPORTED_VERSIONS.contains(&binary_version) {
            return Err(r.error_at(
                0,
                format!(
                    "binary version {binary_version} is not supported (expected {}..={})",
                    SUPPORTED_VERSIONS.start(),
                    SUPPORTED_VERSIONS.end()
                ),
            ));
        }
        let spec = r.string()?;
        // The spec revision only matters to CTranslate2's own loader: the variables
        // this converter needs are checked by name and shape instead.
        let _revision = r.u32()?;

        let count = r.u32()?;
        let mut variables = BTreeMap::new();
        for _ in 0..count {
            let start = r.pos;
            let (name, variable) = r.variable()?;
            if variables.insert(name.clone(), variable).is_some() {
                return Err(r.error_at(start, format!("variable `{name}` appears twice")));
            }
        }

        let count = r.u32()?;
        let mut aliases = BTreeMap::new();
        for _ in 0..count {
            let alias = r.string()?;
            let target = r.string()?;
            aliases.insert(alias, target);
        }
        if r.pos != bytes.len() {
            return Err(r.error(format!(
                "{} unexpected bytes after the aliases",
                bytes.len() - r.pos
            )));
        }
        Ok(Ct2Model {
            spec,
            variables,
            aliases,
        })
    }

    /// A variable by name, following an alias if the name is one.
    pub fn get(&self, name: &str) -> Option<&Variable<'a>> {
        self.variables
            .get(name)
            .or_else(|| self.variables.get(self.aliases.get(name)?))
    }

    /// The name `name` resolves to: itself, or an alias's target.
    pub fn resolve<'n>(&'n self, name: &'n str) -> &'n str {
        self.aliases.get(name).map_or(name, String::as_str)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, reason: String) -> FormatError {
        self.error_at(self.pos, reason)
    }

    fn error_at(&self, offset: usize, reason: String) -> FormatError {
        FormatError { offset, reason }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FormatError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.error(format!(
                "file ends inside {what} ({n} bytes wanted, {} left)",
                self.bytes.len() - self.pos
            )));
        };
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1, "a u8")?[0])
    }

    fn u16(&mut self) -> Result<u16, FormatError> {
        let b = self.take(2, "a u16")?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.take(4, "a u32")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<String, FormatError> {
        let start = self.pos;
        let len = usize::from(self.u16()?);
        let raw = self.take(len, "a string")?;
        // The stored length counts a NUL terminator; CTranslate2 reads up to it.
        let text = raw.split(|&b| b == 0).next().unwrap_or_default();
        String::from_utf8(text.to_vec())
            .map_err(|_| self.error_at(start, "a name is not valid UTF-8".into()))
    }

    fn variable(&mut self) -> Result<(String, Variable<'a>), FormatError> {
        let name = self.string()?;
        let rank = self.u8()?;
        let shape = (0..rank)
            .map(|_| self.u32().map(|d| d as usize))
            .collect::<Result<Vec<_>, _>>()?;
        let dtype_at = self.pos;
        let id = self.u8()?;
        let dtype = DType::from_id(id).ok_or_else(|| {
            self.error_at(
                dtype_at,
                format!("variable `{name}` has unknown dtype id {id}"),
            )
        })?;
        let byte_count = self.u32()? as usize;
        let expected = shape
            .iter()
            .try_fold(dtype.size_bytes(), |acc, &d| acc.checked_mul(d));
        if expected != Some(byte_count) {
            return Err(self.error(format!(
                "variable `{name}` holds {byte_count} bytes, which does not fit shape {shape:?} of {dtype:?}"
            )));
        }
        let data = self.take(byte_count, &format!("the data of `{name}`"))?;
        Ok((name, Variable { shape, dtype, data }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::ModelBinBuilder;
    use super::*;

    fn sample() -> Vec<u8> {
        ModelBinBuilder::new("WhisperSpec", 3)
            .raw("decoder/activation", &[], 1, &[3])
            .int16("decoder/num_heads", 6)
            .f16(
                "decoder/embeddings/weight",
                &[2, 3],
                &[1.0, -2.0, 0.5, 0.0, 4.0, -0.25],
            )
            .raw(
                "encoder/conv1/bias",
                &[2],
                0,
                &[0, 0, 128, 63, 0, 0, 0, 192],
            )
            .alias("decoder/projection/weight", "decoder/embeddings/weight")
            .build()
    }

    #[test]
    fn parses_header_variables_and_aliases() {
        let bytes = sample();
        let model = Ct2Model::parse(&bytes).unwrap();
        assert_eq!(model.spec, "WhisperSpec");
        assert_eq!(model.variables.len(), 4);

        let emb = model.get("decoder/embeddings/weight").unwrap();
        assert_eq!(emb.shape, vec![2, 3]);
        assert_eq!(emb.dtype, DType::F16);
        assert_eq!(emb.to_f32().unwrap(), vec![1.0, -2.0, 0.5, 0.0, 4.0, -0.25]);

        let bias = model.get("encoder/conv1/bias").unwrap();
        assert_eq!(bias.dtype, DType::F32);
        assert_eq!(bias.to_f32().unwrap(), vec![1.0, -2.0]);

        let heads = model.get("decoder/num_heads").unwrap();
        assert_eq!(heads.as_scalar_int(), Some(6));
        assert_eq!(
            model.get("decoder/activation").unwrap().as_scalar_int(),
            Some(3)
        );
        assert_eq!(heads.to_f32(), None);
    }

    #[test]
    fn aliases_resolve_to_their_target() {
        let bytes = sample();
        let model = Ct2Model::parse(&bytes).unwrap();
        let projection = model.get("decoder/projection/weight").unwrap();
        assert_eq!(projection.shape, vec![2, 3]);
        assert_eq!(
            model.resolve("decoder/projection/weight"),
            "decoder/embeddings/weight"
        );
        assert_eq!(model.resolve("encoder/conv1/bias"), "encoder/conv1/bias");
        assert!(model.get("decoder/nothing").is_none());
    }

    #[test]
    fn a_truncated_file_names_what_was_cut() {
        let bytes = sample();
        let err = Ct2Model::parse(&bytes[..bytes.len() - 40]).unwrap_err();
        assert!(err.reason.contains("file ends inside"), "{err:?}");
    }

    #[test]
    fn byte_count_must_match_the_shape() {
        let bytes = ModelBinBuilder::new("WhisperSpec", 3)
            .raw("encoder/conv1/bias", &[3], 4, &[0; 4])
            .build();
        let err = Ct2Model::parse(&bytes).unwrap_err();
        assert!(
            err.reason.contains("`encoder/conv1/bias` holds 4 bytes"),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_versions_and_dtypes_are_refused() {
        let mut bytes = sample();
        bytes[0] = 9;
        let err = Ct2Model::parse(&bytes).unwrap_err();
        assert!(err.reason.contains("binary version 9"), "{err:?}");

        let bytes = ModelBinBuilder::new("WhisperSpec", 3)
            .raw("x", &[1], 42, &[0])
            .build();
        let err = Ct2Model::parse(&bytes).unwrap_err();
        assert!(err.reason.contains("unknown dtype id 42"), "{err:?}");
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = sample();
        bytes.push(0);
        assert!(Ct2Model::parse(&bytes).is_err());
    }
}
