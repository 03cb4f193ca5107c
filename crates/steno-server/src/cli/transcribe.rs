//! `steno transcribe FILE...`: files in, transcripts out (next to each file, in a folder, or on stdout), through the same file pipeline as `/v1/jobs` on a pool of this machine's cores, with a progress line on stderr.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use steno_server::config::Config;
use steno_server::files::format::{ResponseFormat, render};
use steno_server::files::transcribe::NoStore;
use steno_server::files::{self, FileOptions, Progress, transcribe_file};
use steno_server::worker::{JobQueue, WorkerPool};

/// `steno transcribe`'s arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct TranscribeArgs {
    /// The recordings.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Config file (default: ./config.toml if present).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// What to write: txt, srt, vtt, json (verbose_json, with segments).
    #[arg(long, default_value = "txt")]
    pub format: String,
    /// Where to write: a folder, or `-` for stdout; default: next to each file.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Word times in the json output.
    #[arg(long)]
    pub words: bool,
    /// Text to condition the start on (names, spellings).
    #[arg(long)]
    pub prompt: Option<String>,
}

/// Runs `steno transcribe`.
pub fn transcribe(config: Config, args: &TranscribeArgs) -> Result<()> {
    let format = match args.format.as_str() {
        "json" => ResponseFormat::VerboseJson,
        other => ResponseFormat::parse(other)
            .with_context(|| format!("--format takes txt, srt, vtt or json, got {other:?}"))?,
    };
    for f in &args.files {
        if !f.is_file() {
            bail!("{} is not a file", f.display());
        }
    }
    let workers = config.workers.resolved_count();
    let queue = Arc::new(JobQueue::new(config.workers.lane_capacities()));
    let factory = steno_server::server::whisper_loader(&config)()?;
    let pool = WorkerPool::start(factory, workers, queue.clone())?;
    let plan = files::plan(&config.files, &config.vad, &config.model.language, workers);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("steno-io")
        .build()?;
    let options = FileOptions {
        prompt: args.prompt.clone(),
        temperature: 0.0,
        words: args.words,
    };
    let mut failed = 0;
    for file in &args.files {
        let started = Instant::now();
        let name = file.display().to_string();
        let mut bar = ProgressBar::new(&name);
        let outcome = runtime.block_on(transcribe_file(
            &queue,
            rand::random(),
            file,
            &plan,
            &options,
            &mut NoStore,
            |_, p| bar.show(p, started),
            &tokio_util::sync::CancellationToken::new(),
        ));
        bar.done();
        match outcome {
            Ok(t) => {
                let took = started.elapsed().as_secs_f64();
                let text = render(&t, format, args.words);
                let written = write_output(file, args.output.as_deref(), format, &text)?;
                eprintln!(
                    "{name}: {:.1} min of audio in {:.1} s ({:.0}x real time){}",
                    t.duration_s / 60.0,
                    took,
                    t.duration_s / took.max(1e-3),
                    written
                        .map(|p| format!(" -> {}", p.display()))
                        .unwrap_or_default()
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("{name}: {e}");
            }
        }
    }
    drop(runtime);
    pool.shutdown();
    if failed > 0 {
        bail!("{failed} of {} files failed", args.files.len());
    }
    Ok(())
}

/// Writes next to `file`, into `output` (a folder), or to stdout (`-`);
/// the path written, if any.
fn write_output(
    file: &Path,
    output: Option<&Path>,
    format: ResponseFormat,
    text: &str,
) -> Result<Option<PathBuf>> {
    if output == Some(Path::new("-")) {
        std::io::stdout().write_all(text.as_bytes())?;
        return Ok(None);
    }
    let name = file
        .file_stem()
        .map(|s| format!("{}.{}", s.to_string_lossy(), format.extension()))
        .context("the file has no name")?;
    let path = match output {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.join(name)
        }
        None => file.with_file_name(name),
    };
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(path))
}

/// One progress line on stderr, redrawn in place on a terminal and every
/// 10 % otherwise.
struct ProgressBar {
    name: String,
    tty: bool,
    last_tenth: i64,
}

impl ProgressBar {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            tty: std::io::stderr().is_terminal(),
            last_tenth: -1,
        }
    }

    fn show(&mut self, p: Progress, started: Instant) {
        let Some(total) = p.total_s.filter(|t| *t > 0.0) else {
            return;
        };
        let fraction = (p.done_s / total).clamp(0.0, 1.0);
        let elapsed = started.elapsed().as_secs_f64();
        let eta = if fraction > 0.0 {
            elapsed * (1.0 - fraction) / fraction
        } else {
            0.0
        };
        let width = 30;
        let filled = (fraction * width as f64) as usize;
        let line = format!(
            "{}: [{}{}] {:>3.0}%  {:.1}/{:.1} min  ETA {:.0} s",
            self.name,
            "#".repeat(filled),
            "-".repeat(width - filled),
            fraction * 100.0,
            p.done_s / 60.0,
            total / 60.0,
            eta
        );
        let tenth = (fraction * 10.0) as i64;
        if self.tty {
            eprint!("\r{line}");
        } else if tenth > self.last_tenth {
            eprintln!("{line}");
        }
        self.last_tenth = tenth;
    }

    fn done(&mut self) {
        if self.tty && self.last_tenth >= 0 {
            eprintln!();
        }
    }
}
