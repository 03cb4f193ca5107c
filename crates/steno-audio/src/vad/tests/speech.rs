//! The segmenter with webrtc-vad on real audio: synthetic noise, espeak-ng sentences and human recordings in, utterance bounds checked.
//!
//! The recordings live in `../shared/data/speech` beside the checkout (never
//! copied into the repository); the tests that need them, and the espeak-ng
//! test when espeak-ng is not installed, say that they skipped and pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::super::{EndReason, SegmentEvent, Segmenter, SegmenterConfig, Utterance};

const FRAME: usize = 320;

/// Feeds `samples` in chunks of `chunk` (then flushes) and returns every
/// utterance; also checks the started/ended pairing.
fn segment(config: &SegmenterConfig, samples: &[i16], chunk: usize) -> Vec<Utterance> {
    let mut segmenter = Segmenter::new(config).unwrap();
    let mut events = Vec::new();
    for piece in samples.chunks(chunk) {
        segmenter.push(piece, &mut events);
    }
    events.extend(segmenter.flush().map(SegmentEvent::UtteranceEnded));
    let mut utterances = Vec::new();
    let mut started = None;
    let mut paused = None;
    for event in events {
        match event {
            SegmentEvent::SpeechStarted {
                utterance,
                start_sample,
            } => started = Some((utterance, start_sample)),
            SegmentEvent::Paused {
                utterance,
                start_sample,
                end_sample,
            } => paused = Some((utterance, start_sample, end_sample)),
            SegmentEvent::UtteranceEnded(u) => {
                assert_eq!(started.take(), Some((u.index, u.start_sample)));
                assert_eq!(u.audio.len() as u64, u.end_sample - u.start_sample);
                if u.reason == EndReason::Silence {
                    // Real speech ends cleanly: the pause announced the
                    // very bounds the utterance ended with.
                    assert_eq!(paused, Some((u.index, u.start_sample, u.end_sample)));
                }
                paused = None;
                utterances.push(u);
            }
        }
    }
    utterances
}

fn bounds(utterances: &[Utterance]) -> Vec<(f64, f64, EndReason)> {
    utterances
        .iter()
        .map(|u| {
            (
                u.start_sample as f64 / 16_000.0,
                u.end_sample as f64 / 16_000.0,
                u.reason,
            )
        })
        .collect()
}

/// Which 20 ms frames carry speech energy: RMS within 25 dB of the loudest
/// frame and 10 dB above the noise floor (the quietest fifth of the non-silent
/// frames). A reference independent of webrtc-vad.
fn loud_frames(samples: &[i16]) -> Vec<bool> {
    let rms: Vec<f64> = samples
        .chunks(FRAME)
        .map(|f| (f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / f.len() as f64).sqrt())
        .collect();
    let loudest = rms.iter().copied().fold(0.0, f64::max);
    let mut sounding: Vec<f64> = rms.iter().copied().filter(|&r| r > 0.0).collect();
    sounding.sort_by(f64::total_cmp);
    let floor = sounding[sounding.len() / 5];
    let threshold = (loudest * 0.056).max(floor * 3.16);
    rms.iter().map(|&r| r > threshold).collect()
}

/// Share of the loud frames that lie inside some utterance.
fn coverage(samples: &[i16], utterances: &[Utterance]) -> f64 {
    let loud = loud_frames(samples);
    let inside = |frame: usize| {
        let mid = (frame * FRAME + FRAME / 2) as u64;
        utterances
            .iter()
            .any(|u| u.start_sample <= mid && mid < u.end_sample)
    };
    let total = loud.iter().filter(|&&l| l).count();
    let covered = loud
        .iter()
        .enumerate()
        .filter(|&(i, &l)| l && inside(i))
        .count();
    covered as f64 / total as f64
}

/// First and one-past-last sample above -50 dBFS, in seconds: where
/// synthetic speech surrounded by digital silence really starts and ends.
fn sound_extent(samples: &[i16], offset: usize) -> (f64, f64) {
    let first = samples.iter().position(|s| s.unsigned_abs() > 100).unwrap();
    let last = samples
        .iter()
        .rposition(|s| s.unsigned_abs() > 100)
        .unwrap();
    let to_s = |sample: usize| (offset + sample) as f64 / 16_000.0;
    (to_s(first), to_s(last + 1))
}

fn read_wav(path: &Path) -> Vec<i16> {
    let mut reader =
        hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (16_000, 1, 16),
        "{}",
        path.display()
    );
    reader.samples::<i16>().map(Result::unwrap).collect()
}

/// Speaks `text` with espeak-ng and returns it at 16 kHz; `None` (after
/// saying so) when espeak-ng is not installed.
fn espeak(text: &str, name: &str) -> Option<Vec<i16>> {
    let dir = std::env::temp_dir();
    let raw = dir.join(format!("steno-vad-{}-{name}-22k.wav", std::process::id()));
    let resampled = dir.join(format!("steno-vad-{}-{name}-16k.wav", std::process::id()));
    match Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "160", "-w"])
        .arg(&raw)
        .arg(text)
        .status()
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "SKIPPED: espeak-ng is not installed, so there is no synthetic speech to test with"
            );
            return None;
        }
        result => assert!(result.unwrap().success(), "espeak-ng failed"),
    }
    let status = Command::new("sox")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(&resampled)
        .status()
        .expect("sox is needed to resample espeak-ng output");
    assert!(status.success(), "sox failed");
    let samples = read_wav(&resampled);
    let _ = std::fs::remove_file(raw);
    let _ = std::fs::remove_file(resampled);
    Some(samples)
}

fn silence(seconds: f64) -> Vec<i16> {
    vec![0; (seconds * 16_000.0) as usize]
}

/// Roughly Gaussian white noise at `rms` (sum of four uniforms), from a fixed seed.
fn white_noise(seconds: f64, rms: f64) -> Vec<i16> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    // Four uniforms on [-0.5, 0.5) sum to variance 1/3.
    let scale = rms * 3.0_f64.sqrt();
    (0..(seconds * 16_000.0) as usize)
        .map(|_| ((uniform() + uniform() + uniform() + uniform()) * scale).round() as i16)
        .collect()
}

#[test]
fn digital_silence_gives_no_events() {
    let mut segmenter = Segmenter::new(&SegmenterConfig::default()).unwrap();
    let mut events = Vec::new();
    segmenter.push(&silence(10.0), &mut events);
    assert!(events.is_empty(), "{events:?}");
    assert!(segmenter.flush().is_none());
    assert_eq!(segmenter.samples_seen(), 160_000);
}

#[test]
fn white_noise_is_not_speech() {
    // -50 dBFS (a quiet room) to -10 dBFS (far louder than any fan), alone
    // and after digital silence: webrtc-vad alone takes the onset after
    // silence, and anything from -24 dBFS up, for speech; the structure
    // check refuses it all.
    for rms in [100.0, 300.0, 1_000.0, 3_000.0, 10_000.0] {
        let mut after_silence = silence(3.0);
        after_silence.extend(white_noise(3.0, rms));
        after_silence.extend(silence(1.0));
        for (name, audio) in [
            ("alone", white_noise(10.0, rms)),
            ("after silence", after_silence),
        ] {
            let utterances = segment(&SegmenterConfig::default(), &audio, 960);
            assert!(
                utterances.is_empty(),
                "noise {name} at RMS {rms}: {:?}",
                bounds(&utterances)
            );
        }
    }
}

#[test]
fn two_espeak_sentences_give_two_utterances() {
    let Some(first) = espeak("The quick brown fox jumps over the lazy dog.", "first") else {
        return;
    };
    let Some(second) = espeak(
        "Please call Stella and ask her to bring these things.",
        "second",
    ) else {
        return;
    };
    let mut stream = silence(0.5);
    let first_offset = stream.len();
    stream.extend(&first);
    stream.extend(silence(1.5));
    let second_offset = stream.len();
    stream.extend(&second);
    stream.extend(silence(1.0));

    let utterances = segment(&SegmenterConfig::default(), &stream, 517);
    let found = bounds(&utterances);
    eprintln!("utterances (s): {found:?}");
    assert_eq!(utterances.len(), 2, "{found:?}");
    for (utterance, (speech, offset)) in utterances
        .iter()
        .zip([(&first, first_offset), (&second, second_offset)])
    {
        let (onset_s, offset_s) = sound_extent(speech, offset);
        let start_s = utterance.start_sample as f64 / 16_000.0;
        let end_s = utterance.end_sample as f64 / 16_000.0;
        eprintln!("speech {onset_s:.3}..{offset_s:.3} s, utterance {start_s:.3}..{end_s:.3} s");
        assert_eq!(utterance.reason, EndReason::Silence);
        // Pre-roll before the onset, but not much more than the pre-roll.
        assert!(
            (onset_s - 0.3..=onset_s).contains(&start_s),
            "start {start_s} vs onset {onset_s}"
        );
        // Past the end of the sound, but short of carrying the whole hangover.
        assert!(
            (offset_s..=offset_s + 0.4).contains(&end_s),
            "end {end_s} vs offset {offset_s}"
        );
    }
    assert!(coverage(&stream, &utterances) > 0.99);
}

fn shared_speech_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/speech");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: no recordings at {} (see shared/data/speech/README.md)",
            dir.display()
        );
        None
    }
}

#[test]
fn real_recordings_give_utterances_covering_the_speech() {
    let Some(dir) = shared_speech_dir() else {
        return;
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "wav"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 20,
        "expected the 27 recordings in {}",
        dir.display()
    );
    for path in &paths {
        let mut samples = read_wav(path);
        samples.extend(silence(1.0));
        let utterances = segment(&SegmenterConfig::default(), &samples, 320);
        let covered = coverage(&samples, &utterances);
        let name = path.file_name().unwrap().to_string_lossy();
        eprintln!(
            "{name}: {} utterance(s), {:.1} % of loud frames covered",
            utterances.len(),
            covered * 100.0
        );
        assert!(!utterances.is_empty(), "{name}: no utterance");
        assert!(
            covered >= 0.95,
            "{name}: only {:.1} % covered: {:?}",
            covered * 100.0,
            bounds(&utterances)
        );
    }
}
