//! The `steno-model` command: converts a CTranslate2 Whisper model for whisper.cpp without building whisper.cpp (`scripts/fetch-model.sh` runs it).

use anyhow::Result;
use clap::{Parser, Subcommand};
use steno_model::cli::ImportCt2Args;

#[derive(Parser)]
#[command(name = "steno-model", version, about = "steno's model file tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a CTranslate2 Whisper directory to a whisper.cpp ggml file.
    ImportCt2(ImportCt2Args),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::ImportCt2(args) => {
            println!("{}", steno_model::cli::run(&args)?);
            Ok(())
        }
    }
}
