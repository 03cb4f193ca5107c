//! The test file: three shared recordings (trimmed to their speech) laid out
//! with known offsets, written as 16 kHz WAV and converted by ffmpeg to
//! every format steno reads; and the checks of what came back.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{shared_speech_dir, speech, wer};

/// Speech the model hears the same way every time (measured, see
/// docs/files.md), and where it starts in the test file.
const CLIPS: [(&str, f64); 3] = [
    ("jfk_inaugural.wav", 1.0),
    ("ls_test-clean_1089-134686-0002.wav", 14.5),
    ("cmu_arctic_a0024.wav", 24.0),
];
/// What the whole file may miss, over its 40 words. Measured over ten
/// runs of every format: 0 to 0.05 (a word of the JFK clip).
const MAX_WER: f64 = 0.15;
/// How far a cue or a first word may start from its clip's known start.
const MAX_START_ERROR_S: f64 = 0.5;

pub struct Clips {
    /// (16 kHz samples, start in the file in s, reference).
    clips: Vec<(Vec<i16>, f64, String)>,
    total_s: f64,
}

impl Clips {
    /// The clips, or None (SKIPPED) without the shared speech set.
    pub fn load() -> Option<Self> {
        let dir = shared_speech_dir()?;
        let manifest = speech::manifest(&dir).unwrap();
        let clips: Vec<_> = CLIPS
            .iter()
            .map(|(name, at)| {
                let r = manifest.iter().find(|r| r.name == *name).unwrap();
                let samples = steno_testkit::wav::read_i16(&r.path).unwrap();
                (trim(&samples).to_vec(), *at, r.transcript.clone())
            })
            .collect();
        let last = clips.last().unwrap();
        let total_s = last.1 + last.0.len() as f64 / 16_000.0 + 2.0;
        Some(Self { clips, total_s })
    }

    pub fn duration_s(&self) -> f64 {
        self.total_s
    }

    pub fn reference(&self) -> String {
        self.clips
            .iter()
            .map(|c| c.2.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The layout as a 16 kHz mono WAV.
    pub fn write_wav(&self, path: &Path) -> PathBuf {
        let mut samples = vec![0i16; (self.total_s * 16_000.0) as usize];
        for (audio, at, _) in &self.clips {
            let start = (at * 16_000.0) as usize;
            samples[start..start + audio.len()].copy_from_slice(audio);
        }
        speech::write_wav(path, &samples, 16_000);
        path.to_path_buf()
    }

    pub fn check_text(&self, what: &str, text: &str) {
        let error = wer::wer(&self.reference(), text);
        println!("{what}: WER {error:.2}: {text}");
        assert!(
            error <= MAX_WER,
            "{what}: WER {error:.2} > {MAX_WER}: {text:?}"
        );
    }

    /// An event stream: deltas, then `transcript.text.done` with the words,
    /// the deltas adding up to that text.
    pub fn check_stream(&self, what: &str, events: &[serde_json::Value]) {
        let n = events.len();
        assert!(n >= 2, "{what}: {events:?}");
        let (deltas, done) = events.split_at(n - 1);
        assert!(
            deltas.iter().all(|e| e["type"] == "transcript.text.delta"),
            "{what}: {events:?}"
        );
        assert_eq!(done[0]["type"], "transcript.text.done", "{what}");
        let text = done[0]["text"].as_str().unwrap();
        self.check_text(what, text);
        let joined: String = deltas
            .iter()
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(
            wer::wer(text, &joined),
            0.0,
            "{what}: the deltas add up to the text"
        );
    }

    /// The words, and a cue starting near each clip's start.
    pub fn check(&self, what: &str, cues: &[(f64, f64, String)]) {
        let text: Vec<&str> = cues.iter().map(|c| c.2.as_str()).collect();
        self.check_text(what, &text.join(" "));
        for (_, at, _) in &self.clips {
            let nearest = cues
                .iter()
                .map(|c| (c.0 - at).abs())
                .fold(f64::MAX, f64::min);
            assert!(
                nearest <= MAX_START_ERROR_S,
                "{what}: no cue starts within {MAX_START_ERROR_S} s of {at} s: {cues:?}"
            );
        }
        for c in cues {
            assert!(c.0 <= c.1 && c.1 <= self.total_s + 0.5, "{what}: cue {c:?}");
        }
        assert!(
            cues.windows(2).all(|w| w[0].0 <= w[1].0),
            "{what}: cues in order: {cues:?}"
        );
    }

    /// Word times: in order, inside the file, and each clip's first word
    /// near its start.
    pub fn check_words(&self, words: &[serde_json::Value]) {
        let times: Vec<(f64, f64, &str)> = words
            .iter()
            .map(|w| {
                (
                    w["start"].as_f64().unwrap(),
                    w["end"].as_f64().unwrap(),
                    w["word"].as_str().unwrap(),
                )
            })
            .collect();
        let text: Vec<&str> = times.iter().map(|t| t.2).collect();
        self.check_text("words", &text.join(" "));
        assert!(times.windows(2).all(|w| w[0].0 <= w[1].0), "{times:?}");
        for (_, at, _) in &self.clips {
            let nearest = times
                .iter()
                .map(|t| (t.0 - at).abs())
                .fold(f64::MAX, f64::min);
            assert!(
                nearest <= MAX_START_ERROR_S,
                "no word starts near {at} s: {times:?}"
            );
        }
    }
}

/// The recording without its leading and trailing silence (an energy gate
/// on 10 ms frames, 35 dB under the loudest).
fn trim(samples: &[i16]) -> &[i16] {
    let level = |f: &[i16]| f.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / f.len() as f64;
    let frames: Vec<f64> = samples.chunks(160).map(level).collect();
    let peak = frames.iter().copied().fold(0.0, f64::max);
    let loud = |l: &f64| *l > peak / 3162.0;
    let first = frames.iter().position(loud).unwrap_or(0);
    let last = frames.iter().rposition(loud).unwrap_or(frames.len() - 1);
    &samples[first * 160..((last + 1) * 160).min(samples.len())]
}

/// One target format: a name, the extension, ffmpeg's arguments.
pub struct Format {
    pub name: &'static str,
    ext: &'static str,
    args: &'static [&'static str],
    /// A video file: ffmpeg adds a picture track.
    video: bool,
}

pub const FORMATS: &[Format] = &[
    Format {
        name: "wav 44.1 kHz stereo 24-bit",
        ext: "wav",
        args: &["-ar", "44100", "-ac", "2", "-c:a", "pcm_s24le"],
        video: false,
    },
    Format {
        name: "wav 48 kHz float",
        ext: "wav",
        args: &["-ar", "48000", "-c:a", "pcm_f32le"],
        video: false,
    },
    Format {
        name: "wav 22.05 kHz 8-bit",
        ext: "wav",
        args: &["-ar", "22050", "-c:a", "pcm_u8"],
        video: false,
    },
    Format {
        name: "wav 32-bit int",
        ext: "wav",
        args: &["-c:a", "pcm_s32le"],
        video: false,
    },
    Format {
        name: "flac",
        ext: "flac",
        args: &["-c:a", "flac"],
        video: false,
    },
    Format {
        name: "mp3",
        ext: "mp3",
        args: &["-ar", "44100", "-c:a", "libmp3lame", "-b:a", "64k"],
        video: false,
    },
    Format {
        name: "ogg vorbis",
        ext: "ogg",
        args: &["-c:a", "libvorbis"],
        video: false,
    },
    Format {
        name: "ogg opus",
        ext: "opus",
        args: &["-c:a", "libopus", "-b:a", "32k"],
        video: false,
    },
    Format {
        name: "webm opus",
        ext: "webm",
        args: &["-c:a", "libopus", "-b:a", "32k"],
        video: false,
    },
    Format {
        name: "webm vorbis",
        ext: "webm",
        args: &["-c:a", "libvorbis"],
        video: false,
    },
    Format {
        name: "mkv opus stereo",
        ext: "mkv",
        args: &["-ac", "2", "-c:a", "libopus"],
        video: false,
    },
    Format {
        name: "m4a aac",
        ext: "m4a",
        args: &["-c:a", "aac", "-b:a", "64k"],
        video: false,
    },
    Format {
        name: "mp4 video with aac",
        ext: "mp4",
        args: &["-c:v", "mpeg4", "-c:a", "aac"],
        video: true,
    },
    Format {
        name: "mov video with aac",
        ext: "mov",
        args: &["-c:v", "mpeg4", "-c:a", "aac"],
        video: true,
    },
];

/// `wav` as `format`, in `dir`.
pub fn convert(wav: &Path, dir: &Path, format: &Format) -> PathBuf {
    let out = dir.join(format!(
        "{}.{}",
        format.name.replace([' ', '.'], "_"),
        format.ext
    ));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-loglevel", "error", "-y"]);
    if format.video {
        cmd.args(["-f", "lavfi", "-i", "color=c=black:s=160x120:r=10"]);
    }
    cmd.arg("-i").arg(wav);
    if format.video {
        cmd.arg("-shortest");
    }
    cmd.args(format.args).arg(&out);
    let status = cmd
        .status()
        .expect("ffmpeg is installed (scripts/install-deps.sh)");
    assert!(status.success(), "ffmpeg could not make {}", format.name);
    out
}

/// (start s, end s, text) of each SRT cue.
pub fn parse_srt(srt: &str) -> Vec<(f64, f64, String)> {
    let time = |t: &str| {
        let (hms, ms) = t.trim().split_once(',').unwrap();
        let p: Vec<f64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
        p[0] * 3600.0 + p[1] * 60.0 + p[2] + ms.parse::<f64>().unwrap() / 1000.0
    };
    srt.split("\n\n")
        .filter_map(|cue| {
            let lines: Vec<&str> = cue.lines().collect();
            let at = lines.iter().position(|l| l.contains(" --> "))?;
            let (a, b) = lines[at].split_once(" --> ")?;
            Some((time(a), time(b), lines[at + 1..].join(" ")))
        })
        .collect()
}
