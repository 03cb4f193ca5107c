//! The transcription session object: a `session.update`'s `session` in, the settings it leaves (audio format, turn detection, what finals include) and the object `session.created`/`session.updated` echo out.
//!
//! Read as JSON by hand rather than one serde type, so that a refusal can
//! name the field (`param`, as OpenAI's errors do) and fields steno does
//! not use (`noise_reduction`, `idle_timeout_ms`, a `prompt`) are taken
//! without fuss. What can change: the input format and turn detection
//! until the first audio, the language (the model's only), `include`.

use serde_json::{Value, json};
use steno_audio::codec::AudioDecoder;
use steno_audio::vad::{Segmenter, SegmenterConfig};

/// `include` value that adds log probabilities to each completed transcript.
pub const INCLUDE_LOGPROBS: &str = "item.input_audio_transcription.logprobs";
/// `include` value (steno's own) that adds word times to each completed transcript.
pub const INCLUDE_WORDS: &str = "item.input_audio_transcription.words";

/// The input audio format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `audio/pcm`: 16-bit little-endian mono at 24 kHz.
    Pcm24k,
    /// `audio/pcmu`: G.711 µ-law at 8 kHz.
    Pcmu,
    /// `audio/pcma`: G.711 A-law at 8 kHz.
    Pcma,
}

impl Format {
    fn parse(v: &Value) -> Result<Self, Invalid> {
        let param = "session.audio.input.format";
        match v.get("type").and_then(Value::as_str) {
            Some("audio/pcm") => match v.get("rate") {
                None | Some(Value::Null) => Ok(Self::Pcm24k),
                Some(rate) if rate.as_u64() == Some(24_000) => Ok(Self::Pcm24k),
                Some(rate) => Err(Invalid::new(
                    "session.audio.input.format.rate",
                    format!("audio/pcm is 24000 Hz only, got {rate}"),
                )),
            },
            Some("audio/pcmu") => Ok(Self::Pcmu),
            Some("audio/pcma") => Ok(Self::Pcma),
            Some(other) => Err(Invalid::new(
                param,
                format!("unsupported format {other:?}: use audio/pcm, audio/pcmu or audio/pcma"),
            )),
            None => Err(Invalid::new(param, "format needs a type")),
        }
    }

    fn json(self) -> Value {
        match self {
            Self::Pcm24k => json!({"type": "audio/pcm", "rate": 24_000}),
            Self::Pcmu => json!({"type": "audio/pcmu"}),
            Self::Pcma => json!({"type": "audio/pcma"}),
        }
    }

    /// A decoder of this format to 16 kHz.
    pub fn decoder(self) -> AudioDecoder {
        match self {
            Self::Pcm24k => AudioDecoder::new(steno_audio::codec::Encoding::PcmS16le, 24_000)
                .expect("24 kHz PCM is supported"),
            Self::Pcmu => AudioDecoder::g711_mu(),
            Self::Pcma => AudioDecoder::g711_a(),
        }
    }

    /// Bytes of audio per millisecond.
    pub fn bytes_per_ms(self) -> usize {
        match self {
            Self::Pcm24k => 48,
            Self::Pcmu | Self::Pcma => 8,
        }
    }
}

/// `turn_detection` of type `server_vad`, as the client gave it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServerVad {
    /// 0 to 1: how sure a frame must be to count as speech.
    pub threshold: f64,
    pub prefix_padding_ms: u32,
    pub silence_duration_ms: u32,
}

impl ServerVad {
    /// The server's own VAD settings in OpenAI's terms.
    fn from_config(vad: &SegmenterConfig) -> Self {
        Self {
            threshold: match vad.aggressiveness {
                0 => 0.2,
                1 => 0.4,
                2 => 0.5,
                _ => 0.8,
            },
            prefix_padding_ms: vad.pre_roll_ms,
            silence_duration_ms: vad.hangover_ms,
        }
    }

    /// These settings on top of `base`: the threshold picks webrtc-vad's
    /// mode (below 0.3: 0, below 0.45: 1, below 0.65: 2, else 3), the
    /// padding is the pre-roll, the silence the hangover.
    fn segmenter_config(self, base: &SegmenterConfig) -> SegmenterConfig {
        SegmenterConfig {
            aggressiveness: match self.threshold {
                t if t < 0.3 => 0,
                t if t < 0.45 => 1,
                t if t < 0.65 => 2,
                _ => 3,
            },
            pre_roll_ms: self.prefix_padding_ms,
            hangover_ms: self.silence_duration_ms,
            ..base.clone()
        }
    }

    fn parse(v: &Value, current: Self, base: &SegmenterConfig) -> Result<Self, Invalid> {
        let param = "session.audio.input.turn_detection";
        match v.get("type").and_then(Value::as_str) {
            Some("server_vad") => {}
            Some("semantic_vad") => {
                return Err(Invalid::new(
                    format!("{param}.type"),
                    "semantic_vad is not supported: use server_vad, or null to commit by hand",
                ));
            }
            _ => {
                return Err(Invalid::new(
                    format!("{param}.type"),
                    "turn_detection needs type server_vad (or is null)",
                ));
            }
        }
        let ms = |key: &str, now: u32| -> Result<u32, Invalid> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(now),
                Some(n) => n
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        Invalid::new(format!("{param}.{key}"), "must be a whole number of ms")
                    }),
            }
        };
        let threshold = match v.get("threshold") {
            None | Some(Value::Null) => current.threshold,
            Some(t) => t
                .as_f64()
                .filter(|t| (0.0..=1.0).contains(t))
                .ok_or_else(|| Invalid::new(format!("{param}.threshold"), "must be 0 to 1"))?,
        };
        let vad = Self {
            threshold,
            prefix_padding_ms: ms("prefix_padding_ms", current.prefix_padding_ms)?,
            silence_duration_ms: ms("silence_duration_ms", current.silence_duration_ms)?,
        };
        vad.segmenter_config(base).validate().map_err(|e| {
            // The VAD names its own keys; say which of the client's it was.
            let key = if e.starts_with("vad.hangover_ms") {
                "silence_duration_ms"
            } else if e.starts_with("vad.pre_roll_ms") {
                "prefix_padding_ms"
            } else {
                "type"
            };
            Invalid::new(format!("{param}.{key}"), format!("out of range ({e})"))
        })?;
        Ok(vad)
    }

    fn json(self) -> Value {
        json!({
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
        })
    }
}

/// A refused setting: which one (`param`) and why.
#[derive(Debug, PartialEq)]
pub struct Invalid {
    pub param: String,
    pub message: String,
}

impl Invalid {
    fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            param: param.into(),
            message: message.into(),
        }
    }
}

/// One transcription session's settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub format: Format,
    /// None: the client commits each utterance itself.
    pub turn_detection: Option<ServerVad>,
    pub logprobs: bool,
    pub words: bool,
    /// The model's language (config `model.language`).
    language: String,
    /// The model's name, as `/v1/models` lists it.
    model: String,
    /// The server's `[vad]`, under the client's changes.
    base: SegmenterConfig,
}

/// What an update changed, for the session to apply.
#[derive(Debug, Default, PartialEq)]
pub struct Changed {
    pub format: bool,
    pub turn_detection: bool,
    pub include: bool,
}

impl Settings {
    /// The defaults: 24 kHz PCM, the server's VAD, nothing included.
    pub fn new(vad: &SegmenterConfig, language: &str, model: &str, words: bool) -> Self {
        Self {
            format: Format::Pcm24k,
            turn_detection: Some(ServerVad::from_config(vad)),
            logprobs: false,
            words,
            language: language.to_string(),
            model: model.to_string(),
            base: vad.clone(),
        }
    }

    /// The settings after `session` (a `session.update`'s object);
    /// `audio_sent`: format and turn detection are fixed once audio came.
    pub fn update(&self, session: &Value, audio_sent: bool) -> Result<(Self, Changed), Invalid> {
        let mut next = self.clone();
        if !session.is_object() {
            return Err(Invalid::new("session", "session must be an object"));
        }
        match session.get("type").and_then(Value::as_str) {
            None | Some("transcription") => {}
            Some(other) => {
                return Err(Invalid::new(
                    "session.type",
                    format!(
                        "this server transcribes only: session type must be transcription, got {other:?}"
                    ),
                ));
            }
        }
        let input = session.pointer("/audio/input");
        if let Some(format) = input.and_then(|i| i.get("format")) {
            next.format = Format::parse(format)?;
        }
        if let Some(turn) = input.and_then(|i| i.get("turn_detection")) {
            next.turn_detection = match turn {
                Value::Null => None,
                v => Some(ServerVad::parse(
                    v,
                    self.turn_detection
                        .unwrap_or_else(|| ServerVad::from_config(&self.base)),
                    &self.base,
                )?),
            };
        }
        if let Some(language) = input
            .and_then(|i| i.pointer("/transcription/language"))
            .and_then(Value::as_str)
            && language != self.language
        {
            return Err(Invalid::new(
                "session.audio.input.transcription.language",
                format!(
                    "this server's model transcribes {:?} only, not {language:?}",
                    self.language
                ),
            ));
        }
        if let Some(include) = session.get("include") {
            let values = include
                .as_array()
                .ok_or_else(|| Invalid::new("session.include", "include must be a list"))?;
            next.logprobs = false;
            next.words = false;
            for v in values {
                match v.as_str() {
                    Some(INCLUDE_LOGPROBS) => next.logprobs = true,
                    Some(INCLUDE_WORDS) => next.words = true,
                    _ => {
                        return Err(Invalid::new(
                            "session.include",
                            format!(
                                "unknown include {v}: use {INCLUDE_LOGPROBS:?} or {INCLUDE_WORDS:?}"
                            ),
                        ));
                    }
                }
            }
        }
        let changed = Changed {
            format: next.format != self.format,
            turn_detection: next.turn_detection != self.turn_detection,
            include: (next.logprobs, next.words) != (self.logprobs, self.words),
        };
        if audio_sent && (changed.format || changed.turn_detection) {
            let param = if changed.format {
                "session.audio.input.format"
            } else {
                "session.audio.input.turn_detection"
            };
            return Err(Invalid::new(
                param,
                "the input format and turn detection cannot change once audio has been appended",
            ));
        }
        Ok((next, changed))
    }

    /// Whether the client commits utterances itself.
    pub fn manual(&self) -> bool {
        self.turn_detection.is_none()
    }

    /// The segmenter these settings ask for.
    pub fn segmenter(&self) -> Result<Segmenter, steno_audio::vad::VadError> {
        match self.turn_detection {
            Some(vad) => Segmenter::new(&vad.segmenter_config(&self.base)),
            None => Segmenter::manual(&self.base),
        }
    }

    /// Whether finals must carry word times (for words or logprobs).
    pub fn wants_words(&self) -> bool {
        self.words || self.logprobs
    }

    /// The session object, as `session.created` and `session.updated` carry it.
    pub fn json(&self, id: &str, expires_at: u64) -> Value {
        let mut include = Vec::new();
        if self.logprobs {
            include.push(INCLUDE_LOGPROBS);
        }
        if self.words {
            include.push(INCLUDE_WORDS);
        }
        json!({
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": id,
            "expires_at": expires_at,
            "audio": {"input": {
                "format": self.format.json(),
                "transcription": {"model": self.model, "language": self.language},
                "turn_detection": self.turn_detection.map(ServerVad::json),
                "noise_reduction": null,
            }},
            "include": include,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::new(&SegmenterConfig::default(), "en", "tiny.en-q8_0", false)
    }

    #[test]
    fn defaults_echo_the_servers_vad() {
        let s = settings().json("sess_1", 0);
        assert_eq!(s["audio"]["input"]["format"]["rate"], 24_000);
        let td = &s["audio"]["input"]["turn_detection"];
        assert_eq!(td["type"], "server_vad");
        assert_eq!(td["silence_duration_ms"], 400);
        assert_eq!(td["prefix_padding_ms"], 200);
        assert_eq!(td["threshold"], 0.5);
    }

    #[test]
    fn an_update_maps_onto_the_vad() {
        let update = json!({"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcmu"},
            "turn_detection": {"type": "server_vad", "threshold": 0.9, "silence_duration_ms": 700, "prefix_padding_ms": 300},
        }}, "include": [INCLUDE_WORDS]});
        let (next, changed) = settings().update(&update, false).unwrap();
        assert_eq!(
            changed,
            Changed {
                format: true,
                turn_detection: true,
                include: true
            }
        );
        assert_eq!(next.format, Format::Pcmu);
        let vad = next.turn_detection.unwrap().segmenter_config(&next.base);
        assert_eq!(
            (vad.aggressiveness, vad.hangover_ms, vad.pre_roll_ms),
            (3, 700, 300)
        );
        assert!(next.words && !next.logprobs);
        // Null turn detection: manual commits.
        let manual = json!({"audio": {"input": {"turn_detection": null}}});
        assert!(next.update(&manual, false).unwrap().0.manual());
    }

    #[test]
    fn bad_settings_name_their_field() {
        let s = settings();
        let cases = [
            (json!({"type": "realtime"}), "session.type"),
            (
                json!({"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}),
                "session.audio.input.format.rate",
            ),
            (
                json!({"audio": {"input": {"format": {"type": "audio/flac"}}}}),
                "session.audio.input.format",
            ),
            (
                json!({"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}}),
                "session.audio.input.turn_detection.type",
            ),
            (
                json!({"audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 60000}}}}),
                "session.audio.input.turn_detection.silence_duration_ms",
            ),
            (
                json!({"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}}),
                "session.audio.input.turn_detection.threshold",
            ),
            (
                json!({"audio": {"input": {"transcription": {"language": "de"}}}}),
                "session.audio.input.transcription.language",
            ),
            (json!({"include": ["nope"]}), "session.include"),
        ];
        for (update, param) in cases {
            let err = s.update(&update, false).unwrap_err();
            assert_eq!(err.param, param, "{update}: {}", err.message);
        }
    }

    #[test]
    fn format_and_turn_detection_are_fixed_once_audio_came() {
        let s = settings();
        let same = json!({"audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"language": "en"}}}});
        assert!(s.update(&same, true).is_ok(), "repeating a setting is fine");
        let other = json!({"audio": {"input": {"format": {"type": "audio/pcma"}}}});
        assert!(s.update(&other, false).is_ok());
        let err = s.update(&other, true).unwrap_err();
        assert!(err.message.contains("once audio"), "{}", err.message);
        let include = json!({"include": [INCLUDE_LOGPROBS]});
        assert!(s.update(&include, true).unwrap().0.logprobs);
    }
}
