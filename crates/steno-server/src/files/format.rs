//! Response formats: a file's transcription in, the bytes of `json`, `text`, `srt`, `vtt` or `verbose_json` out (OpenAI's shapes), with the content type each is served as.

use serde::{Deserialize, Serialize};

/// A file's transcript with its times, in file seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcription {
    pub text: String,
    /// Length of the audio, seconds.
    pub duration_s: f64,
    pub language: String,
    pub segments: Vec<TimedSegment>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimedSegment {
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<TimedWord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimedWord {
    pub word: String,
    pub start_s: f64,
    pub end_s: f64,
}

/// What `response_format` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormat {
    #[default]
    Json,
    Text,
    Srt,
    Vtt,
    VerboseJson,
}

impl ResponseFormat {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "json" => Self::Json,
            "text" | "txt" => Self::Text,
            "srt" => Self::Srt,
            "vtt" => Self::Vtt,
            "verbose_json" => Self::VerboseJson,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json | Self::VerboseJson => "application/json",
            Self::Text => "text/plain; charset=utf-8",
            Self::Srt => "application/x-subrip; charset=utf-8",
            Self::Vtt => "text/vtt; charset=utf-8",
        }
    }

    /// The file extension a CLI writes.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Json | Self::VerboseJson => "json",
            Self::Text => "txt",
            Self::Srt => "srt",
            Self::Vtt => "vtt",
        }
    }
}

/// Renders `t`; `words` adds the word list to `verbose_json`.
pub fn render(t: &Transcription, format: ResponseFormat, words: bool) -> String {
    match format {
        ResponseFormat::Json => serde_json::json!({ "text": t.text }).to_string(),
        ResponseFormat::Text => format!("{}\n", t.text),
        ResponseFormat::Srt => subtitles(t, false),
        ResponseFormat::Vtt => subtitles(t, true),
        ResponseFormat::VerboseJson => verbose(t, words).to_string(),
    }
}

/// OpenAI's `verbose_json`: the fields its SDKs read.
fn verbose(t: &Transcription, words: bool) -> serde_json::Value {
    let segments: Vec<serde_json::Value> = t
        .segments
        .iter()
        .enumerate()
        .map(|(id, s)| {
            serde_json::json!({
                "id": id,
                "seek": 0,
                "start": round_ms(s.start_s),
                "end": round_ms(s.end_s),
                "text": format!(" {}", s.text),
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": 0.0,
                "compression_ratio": 0.0,
                "no_speech_prob": 0.0,
            })
        })
        .collect();
    let mut v = serde_json::json!({
        "task": "transcribe",
        "language": language_name(&t.language),
        "duration": round_ms(t.duration_s),
        "text": t.text,
        "segments": segments,
    });
    if words {
        v["words"] = t
            .segments
            .iter()
            .flat_map(|s| &s.words)
            .map(|w| {
                serde_json::json!({"word": w.word, "start": round_ms(w.start_s), "end": round_ms(w.end_s)})
            })
            .collect();
    }
    v
}

fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// OpenAI names the language in words in `verbose_json`.
fn language_name(code: &str) -> &str {
    match code {
        "en" => "english",
        other => other,
    }
}

fn subtitles(t: &Transcription, vtt: bool) -> String {
    let mut out = String::new();
    if vtt {
        out.push_str("WEBVTT\n\n");
    }
    for (i, s) in t.segments.iter().enumerate() {
        if !vtt {
            out.push_str(&format!("{}\n", i + 1));
        }
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            timestamp(s.start_s, vtt),
            timestamp(s.end_s, vtt),
            s.text
        ));
    }
    out
}

/// `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (WebVTT).
fn timestamp(s: f64, vtt: bool) -> String {
    let ms = (s * 1000.0).round().max(0.0) as u64;
    let (h, m, sec, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let sep = if vtt { '.' } else { ',' };
    format!("{h:02}:{m:02}:{sec:02}{sep}{milli:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Transcription {
        Transcription {
            text: "Hello there. General Kenobi.".into(),
            duration_s: 3723.5,
            language: "en".into(),
            segments: vec![
                TimedSegment {
                    start_s: 0.5,
                    end_s: 1.25,
                    text: "Hello there.".into(),
                    words: vec![TimedWord {
                        word: "Hello".into(),
                        start_s: 0.5,
                        end_s: 0.8,
                    }],
                },
                TimedSegment {
                    start_s: 3722.0,
                    end_s: 3723.4567,
                    text: "General Kenobi.".into(),
                    words: vec![],
                },
            ],
        }
    }

    #[test]
    fn srt_and_vtt_have_their_cue_shapes() {
        let srt = render(&sample(), ResponseFormat::Srt, false);
        assert!(
            srt.starts_with("1\n00:00:00,500 --> 00:00:01,250\nHello there.\n\n2\n"),
            "{srt}"
        );
        assert!(
            srt.contains("01:02:02,000 --> 01:02:03,457\nGeneral Kenobi."),
            "{srt}"
        );
        let vtt = render(&sample(), ResponseFormat::Vtt, false);
        assert!(
            vtt.starts_with("WEBVTT\n\n00:00:00.500 --> 00:00:01.250\n"),
            "{vtt}"
        );
    }

    #[test]
    fn json_shapes_follow_openai() {
        let v: serde_json::Value =
            serde_json::from_str(&render(&sample(), ResponseFormat::Json, false)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"text": "Hello there. General Kenobi."})
        );
        let v: serde_json::Value =
            serde_json::from_str(&render(&sample(), ResponseFormat::VerboseJson, true)).unwrap();
        assert_eq!(v["language"], "english");
        assert_eq!(v["segments"][1]["start"], 3722.0);
        assert_eq!(v["words"][0]["word"], "Hello");
        assert!(v["segments"][0]["avg_logprob"].is_number());
        let plain: serde_json::Value =
            serde_json::from_str(&render(&sample(), ResponseFormat::VerboseJson, false)).unwrap();
        assert!(plain.get("words").is_none());
        assert_eq!(
            render(&sample(), ResponseFormat::Text, false),
            "Hello there. General Kenobi.\n"
        );
    }
}
