//! Protocol v1 wire types: client query strings and JSON text in, typed requests out; typed server messages in, JSON out.
//!
//! The one place where an error becomes a client-visible code, message and
//! WebSocket close code (`ErrorCode`). See docs/protocol.md.

use serde::{Deserialize, Serialize};

use crate::codec::Encoding;

/// Options a client chooses in the `/v1/listen` query string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenParams {
    pub encoding: Encoding,
    /// Sample rate of PCM input; Opus is always decoded at 16 kHz.
    pub sample_rate_hz: u32,
    pub partials: bool,
    pub language: String,
}

impl Default for ListenParams {
    fn default() -> Self {
        Self {
            encoding: Encoding::Opus,
            sample_rate_hz: 16_000,
            partials: true,
            language: "en".to_string(),
        }
    }
}

impl ListenParams {
    /// Parses `encoding=..&sample_rate=..&partials=..&language=..`; other keys
    /// (such as `token`) are left to the layers that use them.
    pub fn from_query(query: Option<&str>) -> Result<Self, String> {
        let mut params = Self::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "encoding" => {
                    params.encoding = match value {
                        "opus" => Encoding::Opus,
                        "pcm_s16le" => Encoding::PcmS16le,
                        _ => {
                            return Err(format!(
                                "encoding must be opus or pcm_s16le, got {value:?}"
                            ));
                        }
                    }
                }
                "sample_rate" => {
                    params.sample_rate_hz = match value.parse::<u32>() {
                        Ok(rate @ (8000 | 16000 | 24000 | 48000)) => rate,
                        _ => {
                            return Err(format!(
                                "sample_rate must be 8000, 16000, 24000 or 48000, got {value:?}"
                            ));
                        }
                    }
                }
                "partials" => {
                    params.partials = match value {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(format!("partials must be true or false, got {value:?}")),
                    }
                }
                "language" => {
                    if value != "en" {
                        return Err(format!(
                            "language {value:?} is not served: this model speaks en"
                        ));
                    }
                    params.language = value.to_string();
                }
                _ => {}
            }
        }
        if params.encoding == Encoding::Opus {
            params.sample_rate_hz = crate::codec::OUTPUT_SAMPLE_RATE_HZ;
        }
        Ok(params)
    }
}

/// A control message from the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientMessage {
    /// Close the open utterance now and transcribe it.
    Finalize,
    /// Flush everything, send the last finals, then the end summary, then close.
    End,
    /// Nothing but a sign of life.
    Keepalive,
}

/// The one shape a control message may have: an object whose only key is
/// `type`. (An internally tagged enum would also take `["end"]` and ignore
/// extra fields.)
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlFrame {
    r#type: ClientMessage,
}

impl ClientMessage {
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str::<serde_json::Value>(text)
            .and_then(|v| {
                if v.is_object() {
                    ControlFrame::deserialize(v)
                } else {
                    Err(serde::de::Error::custom("a control message is a JSON object"))
                }
            })
            .map(|f| f.r#type)
            .map_err(|e| {
                let detail = e.to_string();
                // serde's text can name the input; keep only its first clause.
                let short = detail.split(" at line").next().unwrap_or(&detail);
                let short: String = short.chars().take(120).collect();
                format!(
                    "bad control message: {short}; expected {{\"type\":\"finalize\"|\"end\"|\"keepalive\"}}"
                )
            })
    }
}

/// A message the server sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Ready {
        session_id: String,
        encoding: Encoding,
        sample_rate_hz: u32,
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

/// Every error a client can see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    BadAudio,
    MessageTooLarge,
    OverCapacity,
    IdleTimeout,
    MaxDuration,
    AudioOverflow,
    SlowConsumer,
    ShuttingDown,
    NotReady,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::BadAudio => "bad_audio",
            Self::MessageTooLarge => "message_too_large",
            Self::OverCapacity => "over_capacity",
            Self::IdleTimeout => "idle_timeout",
            Self::MaxDuration => "max_duration",
            Self::AudioOverflow => "audio_overflow",
            Self::SlowConsumer => "slow_consumer",
            Self::ShuttingDown => "shutting_down",
            Self::NotReady => "not_ready",
            Self::Internal => "internal",
        }
    }

    /// The WebSocket close code (RFC 6455 section 7.4) a session that ends
    /// with this error closes with.
    pub fn close_code(self) -> u16 {
        match self {
            Self::BadRequest => 1008,
            Self::BadAudio => 1007,
            Self::MessageTooLarge => 1009,
            Self::OverCapacity | Self::NotReady => 1013,
            Self::IdleTimeout | Self::MaxDuration | Self::AudioOverflow | Self::SlowConsumer => {
                1008
            }
            Self::ShuttingDown => 1001,
            Self::Internal => 1011,
        }
    }

    /// The short close reason sent with the close frame (at most 123 bytes).
    pub fn close_reason(self) -> &'static str {
        match self {
            Self::BadRequest => "bad request",
            Self::BadAudio => "too many undecodable audio messages",
            Self::MessageTooLarge => "message too large",
            Self::OverCapacity => "over capacity",
            Self::IdleTimeout => "idle timeout",
            Self::MaxDuration => "maximum session duration reached",
            Self::AudioOverflow => "too much audio queued",
            Self::SlowConsumer => "client not reading",
            Self::ShuttingDown => "server shutting down",
            Self::NotReady => "model still loading",
            Self::Internal => "internal error",
        }
    }

    pub const ALL: [ErrorCode; 11] = [
        Self::BadRequest,
        Self::BadAudio,
        Self::MessageTooLarge,
        Self::OverCapacity,
        Self::IdleTimeout,
        Self::MaxDuration,
        Self::AudioOverflow,
        Self::SlowConsumer,
        Self::ShuttingDown,
        Self::NotReady,
        Self::Internal,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_defaults_and_choices() {
        assert_eq!(
            ListenParams::from_query(None).unwrap(),
            ListenParams::default()
        );
        let p = ListenParams::from_query(Some(
            "encoding=pcm_s16le&sample_rate=48000&partials=false&token=x",
        ))
        .unwrap();
        assert_eq!(p.encoding, Encoding::PcmS16le);
        assert_eq!(p.sample_rate_hz, 48_000);
        assert!(!p.partials);
        // Opus is always decoded at 16 kHz whatever the query says.
        let p = ListenParams::from_query(Some("encoding=opus&sample_rate=48000")).unwrap();
        assert_eq!(p.sample_rate_hz, 16_000);
    }

    #[test]
    fn query_errors_name_the_parameter() {
        for q in [
            "encoding=mp3",
            "sample_rate=44100",
            "partials=maybe",
            "language=fr",
        ] {
            let err = ListenParams::from_query(Some(q)).unwrap_err();
            let key = q.split('=').next().unwrap();
            assert!(err.contains(key), "{q}: {err}");
        }
    }

    #[test]
    fn control_messages_parse() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"end"}"#).unwrap(),
            ClientMessage::End
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"finalize"}"#).unwrap(),
            ClientMessage::Finalize
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"keepalive"}"#).unwrap(),
            ClientMessage::Keepalive
        );
        for bad in [
            r#"{"type":"dance"}"#,
            "not json",
            r#"{"kind":"end"}"#,
            "[]",
            "",
        ] {
            assert!(ClientMessage::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_messages_have_the_documented_shape() {
        let m = ServerMessage::Final {
            utterance: 2,
            text: "hello".into(),
            start_ms: 10,
            end_ms: 900,
            processing_ms: 40,
        };
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["type"], "final");
        assert_eq!(v["utterance"], 2);
        assert_eq!(v["processing_ms"], 40);
        let e = ServerMessage::error(ErrorCode::BadAudio, "x").to_json();
        assert_eq!(e, r#"{"type":"error","code":"bad_audio","message":"x"}"#);
    }

    #[test]
    fn error_codes_serialize_as_their_names() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert!(code.close_reason().len() <= 123);
            assert!((1000..5000).contains(&code.close_code()));
        }
    }
}
