//! Client control messages: a JSON text message in, a typed [`ClientMessage`] (or a [`ControlError`]) out; and back to JSON for clients.

use serde::{Deserialize, Serialize};

/// A control message from the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlFrame {
    r#type: ClientMessage,
}

/// A text message that is not a control message; the text says what is
/// expected, without echoing more than a short clause of the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad control message: {detail}; expected {{\"type\":\"finalize\"|\"end\"|\"keepalive\"}}")]
pub struct ControlError {
    detail: String,
}

impl ClientMessage {
    pub fn parse(text: &str) -> Result<Self, ControlError> {
        serde_json::from_str::<serde_json::Value>(text)
            .and_then(|v| {
                if v.is_object() {
                    ControlFrame::deserialize(v)
                } else {
                    Err(serde::de::Error::custom(
                        "a control message is a JSON object",
                    ))
                }
            })
            .map(|f| f.r#type)
            .map_err(|e| {
                let detail = e.to_string();
                // serde's text can name the input; keep only its first clause.
                let short = detail.split(" at line").next().unwrap_or(&detail);
                ControlError {
                    detail: short.chars().take(120).collect(),
                }
            })
    }

    /// The JSON text a client sends.
    pub fn to_json(self) -> String {
        serde_json::to_string(&ControlFrame { r#type: self })
            .expect("control messages always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn control_messages_round_trip() {
        for m in [
            ClientMessage::Finalize,
            ClientMessage::End,
            ClientMessage::Keepalive,
        ] {
            assert_eq!(ClientMessage::parse(&m.to_json()).unwrap(), m);
        }
        assert_eq!(ClientMessage::End.to_json(), r#"{"type":"end"}"#);
    }
}
