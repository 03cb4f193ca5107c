//! Everything one connection saw: events in, the finals, partials, errors and close code out.

use steno_protocol::ServerMessage;

use crate::{CloseInfo, Event};

#[derive(Clone, Debug, Default)]
pub struct Transcript {
    pub messages: Vec<ServerMessage>,
    pub close: Option<CloseInfo>,
}

impl Transcript {
    pub fn push(&mut self, event: Event) {
        match event {
            Event::Message(m) => self.messages.push(m),
            Event::Closed(c) => self.close = c,
        }
    }

    /// (utterance, text, start_ms, end_ms) of every final, in order.
    pub fn finals(&self) -> Vec<(u32, String, u64, u64)> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                ServerMessage::Final {
                    utterance,
                    text,
                    start_ms,
                    end_ms,
                    ..
                } => Some((*utterance, text.clone(), *start_ms, *end_ms)),
                _ => None,
            })
            .collect()
    }

    /// The finals' texts joined by spaces.
    pub fn final_text(&self) -> String {
        self.finals()
            .into_iter()
            .map(|f| f.1)
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn partials(&self) -> Vec<(u32, String)> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                ServerMessage::Partial {
                    utterance, text, ..
                } => Some((*utterance, text.clone())),
                _ => None,
            })
            .collect()
    }

    /// The codes of every error message, as their names.
    pub fn errors(&self) -> Vec<String> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                ServerMessage::Error { code, .. } => Some(code.as_str().to_string()),
                _ => None,
            })
            .collect()
    }

    pub fn close_code(&self) -> Option<u16> {
        self.close.as_ref().map(|c| c.code)
    }
}
