//! The speech the simulated users say: a manifest folder of 16 kHz mono WAVs
//! (and optionally espeak-ng sentences) in, clips pre-encoded as 20 ms Opus
//! packets with their reference text and where the speech starts and ends out.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use steno_testkit::packets::{opus_packets, opus_silence_packet};
use steno_testkit::speech::{manifest, try_espeak_at};
use steno_testkit::wav;

/// Milliseconds of audio in one Opus packet.
pub const PACKET_MS: u64 = 20;
const SAMPLES_PER_PACKET: usize = 16 * PACKET_MS as usize;

/// One utterance a user can say.
#[derive(Debug)]
pub struct Clip {
    /// File name (or `espeak-N`), for the report.
    pub name: String,
    pub reference: String,
    /// LibriSpeech files are scored on their own too (the accuracy target).
    pub librispeech: bool,
    /// The whole file as raw Opus packets of `PACKET_MS`.
    pub packets: Vec<Vec<u8>>,
    /// Packet holding the first voiced frame: "speech start" for time to first partial.
    pub speech_start_packet: usize,
    /// Packet holding the last voiced frame: "end of speech" for final latency.
    /// Files may carry trailing silence; timing from the file's end would hide
    /// part of the VAD hangover.
    pub speech_end_packet: usize,
}

impl Clip {
    pub fn duration_ms(&self) -> u64 {
        self.packets.len() as u64 * PACKET_MS
    }

    /// From the first voiced packet to the end of the last.
    pub fn speech_ms(&self) -> u64 {
        (self.speech_end_packet + 1 - self.speech_start_packet) as u64 * PACKET_MS
    }
}

/// The clips plus the packet a user sends while silent.
pub struct Corpus {
    pub clips: Vec<Arc<Clip>>,
    pub silence_packet: Vec<u8>,
}

impl Corpus {
    /// Loads `dir/manifest.tsv` (when `dir` is given) and renders `espeak`
    /// sentences with espeak-ng (cached under target/test-speech).
    pub fn load(dir: Option<&Path>, espeak: usize) -> Result<Self> {
        let mut clips = Vec::new();
        if let Some(dir) = dir {
            let manifest = dir.join("manifest.tsv");
            if manifest.is_file() {
                clips.extend(load_manifest(dir)?);
            } else if espeak == 0 {
                bail!(
                    "{} not found: pass --corpus DIR (a folder with manifest.tsv) or --espeak N",
                    manifest.display()
                );
            } else {
                eprintln!(
                    "note: {} not found; using espeak-ng sentences only",
                    manifest.display()
                );
            }
        }
        if espeak > 0 {
            clips.extend(render_espeak(espeak)?);
        }
        ensure!(!clips.is_empty(), "no speech to send");
        Ok(Self {
            clips: clips.into_iter().map(Arc::new).collect(),
            silence_packet: opus_silence_packet(),
        })
    }
}

impl Corpus {
    /// Drops the clips with more than `seconds` of speech (the short-turn
    /// mix); fails when none is left.
    pub fn keep_speech_up_to(&mut self, seconds: f64) -> Result<()> {
        let before = self.clips.len();
        self.clips
            .retain(|c| c.speech_ms() as f64 <= seconds * 1000.0);
        ensure!(
            !self.clips.is_empty(),
            "no clip of the {before} has at most {seconds} s of speech (--max-clip-s)"
        );
        eprintln!(
            "{} of {before} clips have at most {seconds} s of speech",
            self.clips.len()
        );
        Ok(())
    }
}

fn load_manifest(dir: &Path) -> Result<Vec<Clip>> {
    manifest(dir)?
        .into_iter()
        .map(|r| {
            let samples = wav::read_i16(&r.path)?;
            make_clip(r.name, r.transcript, &samples)
        })
        .collect()
}

/// Sentences for `--espeak`: plain, varied, a few seconds each.
const SENTENCES: [&str; 12] = [
    "The weather is nice today, so we will walk to the station.",
    "Please send me the report before the meeting on Friday.",
    "I think the new design is much easier to read.",
    "Can you call me back when you get home tonight?",
    "The train was late again this morning.",
    "We should order more paper for the printer.",
    "My brother lives in a small town near the sea.",
    "Turn left at the next corner and park behind the shop.",
    "She has been learning to play the piano for two years.",
    "The museum opens at nine and closes at five.",
    "Remember to water the plants while I am away.",
    "Our team finished the project a week early.",
];

fn render_espeak(n: usize) -> Result<Vec<Clip>> {
    ensure!(
        n <= SENTENCES.len(),
        "--espeak takes at most {} sentences",
        SENTENCES.len()
    );
    SENTENCES[..n]
        .iter()
        .enumerate()
        .map(|(i, text)| {
            // espeak-ng at 150 words a minute, 16 kHz mono: the integration
            // tests' recipe (and cache).
            let samples = try_espeak_at(text, 16_000)?;
            make_clip(format!("espeak-{i}"), text.to_string(), &samples)
        })
        .collect()
}

fn make_clip(name: String, reference: String, samples: &[i16]) -> Result<Clip> {
    let (speech_start_packet, speech_end_packet) =
        voiced_span(samples).with_context(|| format!("{name}: no speech found (silent file?)"))?;
    Ok(Clip {
        librispeech: name.starts_with("ls_"),
        name,
        reference,
        packets: opus_packets(samples, PACKET_MS as usize),
        speech_start_packet,
        speech_end_packet,
    })
}

/// First and last 20 ms frame whose level is within 35 dB of the loudest
/// frame and above -50 dBFS: a plain energy gate, enough to find where a
/// clean recording's speech begins and ends.
fn voiced_span(samples: &[i16]) -> Option<(usize, usize)> {
    let levels: Vec<f64> = samples
        .chunks(SAMPLES_PER_PACKET)
        .map(|frame| {
            let power = frame.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / frame.len() as f64;
            10.0 * (power.max(1e-9) / (32768.0f64 * 32768.0)).log10()
        })
        .collect();
    let peak = levels.iter().copied().fold(f64::MIN, f64::max);
    let threshold = (peak - 35.0).max(-50.0);
    let first = levels.iter().position(|&l| l > threshold)?;
    let last = levels.iter().rposition(|&l| l > threshold)?;
    Some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voiced_span_skips_leading_and_trailing_silence() {
        let mut samples = vec![0i16; 16 * 500];
        samples.extend((0..16 * 1000).map(|i| ((i as f64 * 0.05).sin() * 8000.0) as i16));
        samples.extend(vec![3i16; 16 * 700]);
        let (first, last) = voiced_span(&samples).unwrap();
        assert_eq!(first, 25);
        assert_eq!(last, 74);
    }

    #[test]
    fn silence_has_no_voiced_span() {
        assert!(voiced_span(&[0i16; 16_000]).is_none());
    }
}
