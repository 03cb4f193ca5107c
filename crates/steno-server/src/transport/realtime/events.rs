//! The wire events of OpenAI's Realtime API, as far as transcription goes: client event text in as [`ClientEvent`]s (or a [`Refused`] saying why not); server events out as JSON text, each with its own `event_id`.

use base64::Engine;
use serde_json::{Value, json};
use steno_protocol::ErrorCode;

use crate::worker::Word;

/// A client event steno takes.
#[derive(Debug)]
pub enum ClientEvent {
    /// `session.update`, with its `session` object.
    SessionUpdate(Value),
    /// `input_audio_buffer.append`, its audio decoded from base64.
    Append(Vec<u8>),
    /// `input_audio_buffer.commit`.
    Commit,
    /// `input_audio_buffer.clear`.
    Clear,
}

/// A client event refused, in the terms of an OpenAI `error`.
#[derive(Debug)]
pub struct Refused {
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
}

impl Refused {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            param: None,
        }
    }
}

/// Client events of the Realtime API that a transcription session has no use for.
const CONVERSATION_EVENTS: [&str; 8] = [
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
    "transcription_session.update",
];

/// Parses one client text message: its `event_id` (if any) and the event.
pub fn parse(text: &str) -> (Option<String>, Result<ClientEvent, Refused>) {
    let value: Value = match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return (
                None,
                Err(Refused::new(
                    "invalid_json",
                    "an event must be a JSON object",
                )),
            );
        }
        Err(e) => {
            return (
                None,
                Err(Refused::new("invalid_json", format!("not JSON: {e}"))),
            );
        }
    };
    let event_id = value
        .get("event_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let event = match value.get("type").and_then(Value::as_str) {
        Some("session.update") => match value.get("session") {
            Some(s) => Ok(ClientEvent::SessionUpdate(s.clone())),
            None => Err(Refused {
                param: Some("session".into()),
                ..Refused::new(
                    "missing_required_parameter",
                    "session.update needs a session",
                )
            }),
        },
        Some("input_audio_buffer.append") => match value.get("audio").and_then(Value::as_str) {
            Some(audio) => base64::engine::general_purpose::STANDARD
                .decode(audio)
                .map(ClientEvent::Append)
                .map_err(|e| Refused {
                    param: Some("audio".into()),
                    ..Refused::new("invalid_value", format!("audio is not base64: {e}"))
                }),
            None => Err(Refused {
                param: Some("audio".into()),
                ..Refused::new("missing_required_parameter", "append needs audio (base64)")
            }),
        },
        Some("input_audio_buffer.commit") => Ok(ClientEvent::Commit),
        Some("input_audio_buffer.clear") => Ok(ClientEvent::Clear),
        Some(t) if CONVERSATION_EVENTS.contains(&t) => Err(Refused::new(
            "unsupported_event",
            format!("{t} is not available: this is a transcription session"),
        )),
        Some(t) => Err(Refused::new(
            "unknown_event",
            format!("unknown event type {t:?}"),
        )),
        None => Err(Refused {
            param: Some("type".into()),
            ..Refused::new("missing_required_parameter", "an event needs a type")
        }),
    };
    (event_id, event)
}

/// OpenAI's error `type` for one of steno's codes.
pub fn error_type(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadRequest
        | ErrorCode::BadAudio
        | ErrorCode::MessageTooLarge
        | ErrorCode::AudioOverflow
        | ErrorCode::IdleTimeout
        | ErrorCode::MaxDuration
        | ErrorCode::SlowConsumer
        | ErrorCode::Unauthorized
        | ErrorCode::Forbidden
        | ErrorCode::NotFound
        | ErrorCode::MethodNotAllowed => "invalid_request_error",
        ErrorCode::OverCapacity
        | ErrorCode::NotReady
        | ErrorCode::ShuttingDown
        | ErrorCode::Internal => "server_error",
    }
}

/// Makes one session's server events; ids count up within the session.
pub struct Events {
    session: String,
    sent: u64,
}

impl Events {
    pub fn new(session: &str) -> Self {
        Self {
            session: session.to_string(),
            sent: 0,
        }
    }

    /// The id of utterance `utterance` as a conversation item.
    pub fn item_id(&self, utterance: u32) -> String {
        format!("item_{}_{utterance}", self.session)
    }

    fn event(&mut self, kind: &str, mut body: Value) -> String {
        self.sent += 1;
        body["type"] = kind.into();
        body["event_id"] = format!("event_{}_{}", self.session, self.sent).into();
        body.to_string()
    }

    pub fn session(&mut self, kind: &str, session: Value) -> String {
        self.event(kind, json!({"session": session}))
    }

    pub fn speech_started(&mut self, utterance: u32, audio_start_ms: u64) -> String {
        let item_id = self.item_id(utterance);
        self.event(
            "input_audio_buffer.speech_started",
            json!({"audio_start_ms": audio_start_ms, "item_id": item_id}),
        )
    }

    pub fn speech_stopped(&mut self, utterance: u32, audio_end_ms: u64) -> String {
        let item_id = self.item_id(utterance);
        self.event(
            "input_audio_buffer.speech_stopped",
            json!({"audio_end_ms": audio_end_ms, "item_id": item_id}),
        )
    }

    pub fn committed(&mut self, utterance: u32, previous: Option<u32>) -> String {
        let item_id = self.item_id(utterance);
        let previous_item_id = previous.map(|p| self.item_id(p));
        self.event(
            "input_audio_buffer.committed",
            json!({"item_id": item_id, "previous_item_id": previous_item_id}),
        )
    }

    pub fn cleared(&mut self) -> String {
        self.event("input_audio_buffer.cleared", json!({}))
    }

    pub fn delta(&mut self, utterance: u32, delta: &str) -> String {
        let item_id = self.item_id(utterance);
        self.event(
            "conversation.item.input_audio_transcription.delta",
            json!({"item_id": item_id, "content_index": 0, "delta": delta}),
        )
    }

    /// `completed`: the final text, the audio's length as usage, and the
    /// words or their log probabilities when the session includes them.
    pub fn completed(
        &mut self,
        utterance: u32,
        transcript: &str,
        seconds: f64,
        words: Option<&[Word]>,
        logprobs: Option<&[Word]>,
    ) -> String {
        let item_id = self.item_id(utterance);
        let mut body = json!({
            "item_id": item_id,
            "content_index": 0,
            "transcript": transcript,
            "usage": {"type": "duration", "seconds": seconds},
        });
        if let Some(words) = words {
            body["words"] = words
                .iter()
                .map(|w| {
                    json!({"word": w.text, "start_ms": w.start_ms, "end_ms": w.end_ms, "probability": w.probability})
                })
                .collect();
        }
        if let Some(words) = logprobs {
            body["logprobs"] = words
                .iter()
                .map(|w| {
                    json!({
                        "token": w.text,
                        "logprob": f64::from(w.probability.max(1e-6)).ln(),
                        "bytes": w.text.as_bytes(),
                    })
                })
                .collect();
        }
        self.event(
            "conversation.item.input_audio_transcription.completed",
            body,
        )
    }

    pub fn failed(&mut self, utterance: u32, code: ErrorCode, message: &str) -> String {
        let item_id = self.item_id(utterance);
        self.event(
            "conversation.item.input_audio_transcription.failed",
            json!({
                "item_id": item_id,
                "content_index": 0,
                "error": {"type": error_type(code), "code": code.as_str(), "message": message, "param": null},
            }),
        )
    }

    /// An `error` event: OpenAI's `type`, `code`, `message`, `param` and
    /// the client's `event_id` it answers, plus steno's `retry_after_s`
    /// on a refusal that will pass.
    pub fn error(
        &mut self,
        kind: &str,
        code: &str,
        message: &str,
        param: Option<&str>,
        client_event: Option<&str>,
        retry_after_s: Option<u32>,
    ) -> String {
        let mut error = json!({
            "type": kind,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event,
        });
        if let Some(s) = retry_after_s {
            error["retry_after_s"] = s.into();
        }
        self.event("error", json!({"error": error}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_events_parse_or_say_why_not() {
        let (id, e) =
            parse(r#"{"type":"input_audio_buffer.append","event_id":"e1","audio":"AAEC"}"#);
        assert_eq!(id.as_deref(), Some("e1"));
        assert!(matches!(e, Ok(ClientEvent::Append(a)) if a == [0, 1, 2]));
        assert!(matches!(
            parse(r#"{"type":"input_audio_buffer.commit"}"#).1,
            Ok(ClientEvent::Commit)
        ));
        for (text, code) in [
            ("nope", "invalid_json"),
            ("[1]", "invalid_json"),
            (r#"{"event_id":"x"}"#, "missing_required_parameter"),
            (
                r#"{"type":"input_audio_buffer.append","audio":"%%%"}"#,
                "invalid_value",
            ),
            (
                r#"{"type":"input_audio_buffer.append"}"#,
                "missing_required_parameter",
            ),
            (r#"{"type":"response.create"}"#, "unsupported_event"),
            (r#"{"type":"what.ever"}"#, "unknown_event"),
        ] {
            let refused = parse(text).1.unwrap_err();
            assert_eq!(refused.code, code, "{text}: {}", refused.message);
        }
    }

    #[test]
    fn server_events_carry_type_and_a_fresh_id() {
        let mut events = Events::new("s1");
        let a: Value = serde_json::from_str(&events.committed(2, Some(1))).unwrap();
        let b: Value = serde_json::from_str(&events.cleared()).unwrap();
        assert_eq!(a["type"], "input_audio_buffer.committed");
        assert_eq!(a["item_id"], "item_s1_2");
        assert_eq!(a["previous_item_id"], "item_s1_1");
        assert_ne!(a["event_id"], b["event_id"]);
        let e: Value = serde_json::from_str(&events.error(
            "server_error",
            "over_capacity",
            "full",
            None,
            Some("c7"),
            Some(2),
        ))
        .unwrap();
        assert_eq!(e["error"]["code"], "over_capacity");
        assert_eq!(e["error"]["event_id"], "c7");
        assert_eq!(e["error"]["retry_after_s"], 2);
    }
}
