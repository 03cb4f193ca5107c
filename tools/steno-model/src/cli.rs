//! The `import-ct2` command line: parsed arguments in, a converted model file out.

use std::path::PathBuf;

use crate::{ImportError, ImportSummary, WeightFormat, import_ct2};

/// Convert a CTranslate2 Whisper directory (model.bin, vocabulary.txt,
/// config.json) to a whisper.cpp ggml file.
#[derive(Clone, Debug, clap::Args)]
pub struct ImportCt2Args {
    pub dir: PathBuf,
    #[arg(short, long)]
    pub output: PathBuf,
    /// How to store the big weight matrices: f16 (exact, as shipped) or
    /// q8_0 (8-bit blocks, half the size; see docs/capacity.md).
    #[arg(long, value_enum, default_value_t = Weights::F16)]
    pub weights: Weights,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Weights {
    F16,
    #[value(name = "q8_0")]
    Q8_0,
}

impl From<Weights> for WeightFormat {
    fn from(w: Weights) -> Self {
        match w {
            Weights::F16 => WeightFormat::F16,
            Weights::Q8_0 => WeightFormat::Q8_0,
        }
    }
}

/// The conversion failed; says which directory and file.
#[derive(Debug, thiserror::Error)]
#[error("converting {} to {}: {source}", .dir.display(), .output.display())]
pub struct ImportFailed {
    pub dir: PathBuf,
    pub output: PathBuf,
    pub source: ImportError,
}

/// Runs the conversion the arguments ask for; the line to print on success.
pub fn run(args: &ImportCt2Args) -> Result<String, Box<ImportFailed>> {
    let summary: ImportSummary =
        import_ct2(&args.dir, &args.output, args.weights.into()).map_err(|source| {
            Box::new(ImportFailed {
                dir: args.dir.clone(),
                output: args.output.clone(),
                source,
            })
        })?;
    Ok(format!("wrote {} ({summary:?})", args.output.display()))
}
