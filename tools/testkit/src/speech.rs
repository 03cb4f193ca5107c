//! Test speech: espeak-ng sentences rendered to 16 kHz mono (cached by content), silence, noise, and the shared recordings with their references.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

/// Renders `text` with espeak-ng and converts it with sox to 16 kHz mono
/// 16-bit; cached under target/test-speech by content.
pub fn espeak(text: &str) -> Vec<i16> {
    espeak_at(text, 16_000)
}

/// Like [`espeak`], at another sample rate (for PCM input tests).
pub fn espeak_at(text: &str, rate_hz: u32) -> Vec<i16> {
    try_espeak_at(text, rate_hz).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Like [`espeak_at`], with an error instead of a panic (tools).
pub fn try_espeak_at(text: &str, rate_hz: u32) -> Result<Vec<i16>> {
    let dir = super::paths::repo_root().join("target/test-speech");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(60)
        .collect::<String>();
    let hash = text.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    });
    let out = dir.join(format!("{key}-{hash:016x}-{rate_hz}.wav"));
    if !out.is_file() {
        // Tests run in parallel and may render the same sentence: work in
        // unique files, then rename into place atomically.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let unique = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let raw = dir.join(format!("{hash:016x}-{rate_hz}-{unique}.raw.wav"));
        let status = Command::new("espeak-ng")
            .args(["-v", "en-us", "-s", "150", "-w"])
            .arg(&raw)
            .arg(text)
            .status()
            .context("running espeak-ng (scripts/install-deps.sh installs it)")?;
        ensure!(status.success(), "espeak-ng failed on {text:?}");
        let tmp = dir.join(format!("{hash:016x}-{rate_hz}-{unique}.tmp.wav"));
        resample(&raw, rate_hz, &tmp)?;
        std::fs::rename(&tmp, &out)?;
        let _ = std::fs::remove_file(raw);
    }
    let reader = hound::WavReader::open(&out)?;
    ensure!(
        reader.spec().sample_rate == rate_hz,
        "{} is not {rate_hz} Hz",
        out.display()
    );
    Ok(reader.into_samples::<i16>().collect::<Result<_, _>>()?)
}

/// Converts any file sox reads to mono 16-bit WAV at `rate_hz`.
pub fn resample(input: &Path, rate_hz: u32, output: &Path) -> Result<()> {
    let status = Command::new("sox")
        .arg(input)
        .args(["-r", &rate_hz.to_string(), "-c", "1", "-b", "16"])
        .arg(output)
        .status()
        .context("running sox (scripts/install-deps.sh installs it)")?;
    ensure!(
        status.success(),
        "sox could not convert {}",
        input.display()
    );
    Ok(())
}

/// Writes `samples` as a mono 16-bit WAV at `rate_hz` (a test's input file).
pub fn write_wav(path: &Path, samples: &[i16], rate_hz: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate_hz,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    for s in samples {
        w.write_sample(*s).unwrap();
    }
    w.finalize().unwrap();
}

pub fn silence(ms: usize) -> Vec<i16> {
    vec![0; ms * 16]
}

/// Deterministic white noise at the given peak amplitude.
pub fn noise(ms: usize, amplitude: i16) -> Vec<i16> {
    let mut x: u32 = 0x1234_5678;
    (0..ms * 16)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ((x % (2 * amplitude as u32 + 1)) as i32 - amplitude as i32) as i16
        })
        .collect()
}

/// One entry of the shared speech manifest.
#[derive(Clone, Debug)]
pub struct Recording {
    /// The file name, as in the manifest.
    pub name: String,
    pub path: PathBuf,
    pub duration_s: f64,
    pub transcript: String,
}

/// The recordings of `dir/manifest.tsv` (file, duration_s, transcript, ...).
pub fn manifest(dir: &Path) -> Result<Vec<Recording>> {
    let path = dir.join("manifest.tsv");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        ensure!(
            cols.len() >= 3,
            "{} line {}: expected file, duration_s, transcript columns",
            path.display(),
            n + 1
        );
        out.push(Recording {
            name: cols[0].to_string(),
            path: dir.join(cols[0]),
            duration_s: cols[1]
                .parse()
                .with_context(|| format!("{} line {}: duration_s", path.display(), n + 1))?,
            transcript: cols[2].to_string(),
        });
    }
    Ok(out)
}
