//! Server messages: typed [`ServerMessage`]s in, JSON text out (and back, for clients).

use serde::{Deserialize, Serialize};

use crate::{Encoding, ErrorCode};

/// A message the server sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Ready {
        session_id: String,
        encoding: Encoding,
        sample_rate_hz: u32,
        /// Reconnect with `?resume=TOKEN` if the connection drops (absent
        /// when the server keeps no sessions for that, `resume_grace_s = 0`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_token: Option<String>,
        /// On a resumed session: how much of the client's audio the server
        /// has, in ms; the client sends on from there.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        received_ms: Option<u64>,
    },
    SpeechStarted {
        utterance: u32,
        start_ms: u64,
    },
    Partial {
        utterance: u32,
        text: String,
        start_ms: u64,
        end_ms: u64,
    },
    Final {
        utterance: u32,
        text: String,
        start_ms: u64,
        end_ms: u64,
        processing_ms: u64,
        /// With `words=true`: each word with its times in session audio.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        words: Vec<WordTiming>,
        /// The final waited past `workers.degrade_after_ms` for a worker and
        /// was decoded with the smaller encoder window (a little less
        /// accurate, sooner). Absent when false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        degraded: bool,
    },
    End {
        utterances: u32,
        audio_ms: u64,
    },
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        retry_after_s: Option<u32>,
    },
}

/// A word of a final, with its times (ms of session audio) and the
/// model's probability for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WordTiming {
    pub word: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub probability: f32,
}

impl ServerMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server messages always serialize")
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_have_the_documented_shape() {
        let m = ServerMessage::Final {
            utterance: 2,
            text: "hello".into(),
            start_ms: 10,
            end_ms: 900,
            processing_ms: 40,
            words: Vec::new(),
            degraded: false,
        };
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["type"], "final");
        assert_eq!(v["utterance"], 2);
        assert_eq!(v["processing_ms"], 40);
        assert!(v.get("words").is_none(), "words only when asked for");
        assert!(v.get("degraded").is_none(), "degraded only when true");
        let e = ServerMessage::error(ErrorCode::BadAudio, "x").to_json();
        assert_eq!(e, r#"{"type":"error","code":"bad_audio","message":"x"}"#);
        let back: ServerMessage = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(back, m);
    }
}
