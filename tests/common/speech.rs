//! Test speech: espeak-ng sentences rendered to 16 kHz mono, Opus encoding,
//! and the shared recordings with their references.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Renders `text` with espeak-ng and converts it with sox to 16 kHz mono
/// 16-bit; cached under target/ by content.
pub fn espeak(text: &str) -> Vec<i16> {
    espeak_at(text, 16_000)
}

/// Like `espeak`, at another sample rate (for PCM input tests).
pub fn espeak_at(text: &str, rate_hz: u32) -> Vec<i16> {
    let dir = super::repo_root().join("target/test-speech");
    std::fs::create_dir_all(&dir).unwrap();
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
            .expect("espeak-ng is installed (scripts/install-deps.sh)");
        assert!(status.success(), "espeak-ng failed");
        let tmp = dir.join(format!("{hash:016x}-{rate_hz}-{unique}.tmp.wav"));
        let status = Command::new("sox")
            .arg(&raw)
            .args(["-r", &rate_hz.to_string(), "-c", "1", "-b", "16"])
            .arg(&tmp)
            .status()
            .expect("sox is installed (scripts/install-deps.sh)");
        assert!(status.success(), "sox failed");
        std::fs::rename(&tmp, &out).unwrap();
        let _ = std::fs::remove_file(raw);
    }
    let reader = hound::WavReader::open(&out).unwrap();
    assert_eq!(reader.spec().sample_rate, rate_hz);
    reader.into_samples::<i16>().map(Result::unwrap).collect()
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

/// Encodes 16 kHz mono audio as raw Opus packets of `frame_ms`.
pub fn opus_packets(samples: &[i16], frame_ms: usize) -> Vec<Vec<u8>> {
    let mut enc =
        opus::Encoder::new(16_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    enc.set_bitrate(opus::Bitrate::Bits(24_000)).unwrap();
    let frame = 16 * frame_ms;
    let mut out = Vec::new();
    for chunk in samples.chunks(frame) {
        let mut buf = chunk.to_vec();
        buf.resize(frame, 0);
        out.push(enc.encode_vec(&buf, 4000).unwrap());
    }
    out
}

/// PCM s16le chunks of `chunk_ms`.
pub fn pcm_chunks(samples: &[i16], chunk_ms: usize, rate_hz: usize) -> Vec<Vec<u8>> {
    samples
        .chunks(rate_hz / 1000 * chunk_ms)
        .map(|c| c.iter().flat_map(|s| s.to_le_bytes()).collect())
        .collect()
}

/// One entry of the shared speech manifest.
pub struct Recording {
    pub path: PathBuf,
    pub duration_s: f64,
    pub transcript: String,
}

pub fn manifest(dir: &Path) -> Vec<Recording> {
    let text = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            Recording {
                path: dir.join(cols[0]),
                duration_s: cols[1].parse().unwrap(),
                transcript: cols[2].to_string(),
            }
        })
        .collect()
}
