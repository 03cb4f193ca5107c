//! `/v1/realtime?intent=transcription`, OpenAI's Realtime API for transcription over WebSocket: an upgrade request in, a session on the one pipeline out; client events to session input, pipeline events to OpenAI server events.
//!
//! ```text
//! settings  the transcription session object: what session.update may change, its echo
//! events    client events parsed; server events built (ids, OpenAI's error shape)
//! deltas    partials to append-only deltas (the words two partials agree on)
//! ```
//!
//! Everything below the events is `/v1/listen`'s: the same admission
//! (`listen::admit`), token and Origin checks, socket limits, session,
//! pipeline and metrics. The door adds what only this protocol has:
//! `session.update` (format, turn detection, `include`) applied through
//! `Input::Configure` before the first audio, manual commits (a
//! [`Segmenter::manual`](steno_audio::vad::Segmenter::manual) that only
//! `commit` cuts), `clear`, and its answers sent in order through
//! `Input::Reply`.

mod deltas;
mod events;
mod settings;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use steno_protocol::{ClientMessage, Close, ErrorCode};

use super::AppState;
use super::http::ApiResponse;
use super::listen::{Refusal, admit, logged, upgrade};
use super::socket::{self, Read, WebSocket};
use crate::admission::SessionPermit;
use crate::metrics;
use crate::pipeline::Event;
use crate::session::registry::format_id;
use crate::session::{Configure, Input, Session, SessionEnd};
use deltas::Deltas;
use events::{ClientEvent, Events, Refused, error_type};
use settings::Settings;

/// Less audio than this in a manual commit is refused, as OpenAI does.
const MIN_COMMIT_MS: usize = 100;

/// What the query may ask: `intent=transcription` (required), `words=true`.
#[derive(Debug)]
struct Query {
    words: bool,
}

fn query(raw: Option<&str>) -> Result<Query, String> {
    let mut intent = None;
    let mut words = false;
    for (key, value) in raw
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
    {
        match key {
            "intent" => intent = Some(value.to_string()),
            "words" => {
                words = match value {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    v => return Err(format!("words must be true or false, got {v:?}")),
                }
            }
            _ => {}
        }
    }
    match intent.as_deref() {
        Some("transcription") => Ok(Query { words }),
        Some(other) => Err(format!(
            "this server serves transcription sessions only: intent must be transcription, got {other:?}"
        )),
        None => Err(
            "this server serves transcription sessions only: connect to /v1/realtime?intent=transcription"
                .to_string(),
        ),
    }
}

/// `GET /v1/realtime`.
pub async fn realtime(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if let Err(refusal) = state.config.auth.check(req.headers(), req.uri().query()) {
        return ApiResponse(refusal).into_response();
    }
    let admitted = match query(req.uri().query()) {
        Err(message) => Err(Refusal {
            code: ErrorCode::BadRequest,
            message,
            retry_after_s: None,
        }),
        Ok(q) => admit(&state).map(|permit| (q, permit)),
    };
    let app = state.clone();
    upgrade(&state, req, move |ws| async move {
        match admitted {
            Ok((q, permit)) => {
                serve(ws, q, permit, &app).await;
            }
            Err(r) => {
                metrics::error_sent(r.code);
                let text = Events::new("refused").error(
                    error_type(r.code),
                    r.code.as_str(),
                    &r.message,
                    None,
                    None,
                    r.retry_after_s,
                );
                socket::refuse(ws, text, Close::Error(r.code)).await;
            }
        }
    })
}

/// One connection's side of the protocol, shared by its reader (client
/// events in) and its writer (server events out).
struct Door {
    settings: Settings,
    events: Events,
    session_id: String,
    expires_at: u64,
    /// Whether any audio has been appended (format and turn detection are
    /// fixed from then on).
    audio_sent: bool,
    /// Bytes appended since the last commit or clear.
    uncommitted_bytes: usize,
    /// The utterance the segmenter has open, as the writer last heard.
    open: Option<u32>,
    /// The last item committed (`previous_item_id`).
    previous: Option<u32>,
    /// Items committed and waiting for their transcript.
    waiting: VecDeque<u32>,
    /// Utterances up to this one were cleared: their partials are dropped.
    cleared_through: Option<u32>,
    deltas: Deltas,
}

impl Door {
    fn new(settings: Settings, id: &str, expires_at: u64) -> Self {
        Self {
            settings,
            events: Events::new(id),
            session_id: format!("sess_{id}"),
            expires_at,
            audio_sent: false,
            uncommitted_bytes: 0,
            open: None,
            previous: None,
            waiting: VecDeque::new(),
            cleared_through: None,
            deltas: Deltas::default(),
        }
    }

    fn session_json(&self) -> serde_json::Value {
        self.settings.json(&self.session_id, self.expires_at)
    }

    fn refuse(&mut self, event_id: Option<&str>, r: Refused) -> Input {
        metrics::error_sent(ErrorCode::BadRequest);
        Input::Reply(self.events.error(
            "invalid_request_error",
            r.code,
            &r.message,
            r.param.as_deref(),
            event_id,
            None,
        ))
    }

    /// A client frame as session input.
    fn listen(&mut self, read: Read) -> Input {
        let text = match read {
            Read::Text(text) => text,
            Read::Binary(_) => {
                return self.refuse(
                    None,
                    Refused::new(
                        "invalid_value",
                        "binary messages are not part of the Realtime API: send input_audio_buffer.append",
                    ),
                );
            }
            Read::Closed => return Input::ClientClosed,
            Read::Broken { close, message } => return Input::Broken { close, message },
        };
        let (event_id, event) = events::parse(text.as_str());
        let event_id = event_id.as_deref();
        match event {
            Err(r) => self.refuse(event_id, r),
            Ok(ClientEvent::SessionUpdate(update)) => self.update(event_id, &update),
            Ok(ClientEvent::Append(audio)) => {
                self.audio_sent = true;
                self.uncommitted_bytes += audio.len();
                Input::Audio(Bytes::from(audio))
            }
            Ok(ClientEvent::Commit) => {
                let have_ms = self.uncommitted_bytes / self.settings.format.bytes_per_ms();
                let empty = if self.settings.manual() {
                    have_ms < MIN_COMMIT_MS
                } else {
                    self.open.is_none()
                };
                if empty {
                    return self.refuse(
                        event_id,
                        Refused::new(
                            "input_audio_buffer_commit_empty",
                            format!(
                                "buffer too small: a commit needs at least {MIN_COMMIT_MS} ms of audio (speech, with server_vad), have {have_ms} ms"
                            ),
                        ),
                    );
                }
                self.uncommitted_bytes = 0;
                Input::Control(ClientMessage::Finalize)
            }
            Ok(ClientEvent::Clear) => {
                self.uncommitted_bytes = 0;
                Input::Discard
            }
        }
    }

    fn update(&mut self, event_id: Option<&str>, update: &serde_json::Value) -> Input {
        let (next, changed) = match self.settings.update(update, self.audio_sent) {
            Ok(done) => done,
            Err(invalid) => {
                return self.refuse(
                    event_id,
                    Refused {
                        param: Some(invalid.param),
                        ..Refused::new("invalid_value", invalid.message)
                    },
                );
            }
        };
        let segmenter = if changed.turn_detection {
            match next.segmenter() {
                Ok(s) => Some(s),
                Err(e) => {
                    return self.refuse(event_id, Refused::new("invalid_value", e.to_string()));
                }
            }
        } else {
            None
        };
        self.settings = next;
        let reply = self.events.session("session.updated", self.session_json());
        Input::Configure(Box::new(Configure {
            decoder: changed.format.then(|| self.settings.format.decoder()),
            segmenter,
            words: changed.include.then(|| self.settings.wants_words()),
            reply,
        }))
    }

    /// A pipeline event as server events.
    fn speak(&mut self, event: Event) -> Vec<String> {
        let vad = !self.settings.manual();
        match event {
            Event::SpeechStarted {
                utterance,
                start_ms,
            } => {
                self.open = Some(utterance);
                self.deltas = Deltas::default();
                vad.then(|| self.events.speech_started(utterance, start_ms))
                    .into_iter()
                    .collect()
            }
            Event::SpeechEnded { utterance, end_ms } => {
                self.open = None;
                let mut out = Vec::new();
                if vad {
                    out.push(self.events.speech_stopped(utterance, end_ms));
                }
                out.push(self.events.committed(utterance, self.previous));
                self.previous = Some(utterance);
                self.waiting.push_back(utterance);
                out
            }
            Event::Partial {
                utterance, text, ..
            } => {
                if self.cleared_through.is_some_and(|c| utterance <= c) {
                    return Vec::new();
                }
                self.deltas
                    .partial(&text)
                    .map(|d| self.events.delta(utterance, &d))
                    .into_iter()
                    .collect()
            }
            Event::Final {
                utterance,
                text,
                start_ms,
                end_ms,
                words,
                ..
            } => {
                self.waiting.retain(|&u| u != utterance);
                let mut out: Vec<String> = self
                    .deltas
                    .finish(&text)
                    .map(|d| self.events.delta(utterance, &d))
                    .into_iter()
                    .collect();
                let seconds = end_ms.saturating_sub(start_ms) as f64 / 1000.0;
                out.push(self.events.completed(
                    utterance,
                    text.trim(),
                    seconds,
                    self.settings.words.then_some(&words[..]),
                    self.settings.logprobs.then_some(&words[..]),
                ));
                out
            }
            Event::Discarded { utterance } => {
                if utterance.is_some() {
                    self.cleared_through = utterance;
                    self.open = None;
                }
                vec![self.events.cleared()]
            }
            Event::Error { code, message } => {
                let mut out = Vec::new();
                // A final that could not be had fails its item.
                if matches!(code, ErrorCode::Internal | ErrorCode::ShuttingDown)
                    && let Some(item) = self.waiting.pop_front()
                {
                    out.push(self.events.failed(item, code, &message));
                }
                out.push(self.events.error(
                    error_type(code),
                    code.as_str(),
                    &message,
                    None,
                    None,
                    None,
                ));
                out
            }
            Event::Reply(text) => vec![text],
            Event::End { .. } | Event::Close(_) => Vec::new(),
        }
    }
}

/// Runs one transcription session on an upgraded socket. The permit is
/// held until this returns.
async fn serve(
    ws: impl WebSocket,
    q: Query,
    permit: SessionPermit,
    state: &AppState,
) -> SessionEnd {
    let ctx = &state.sessions;
    let settings = Settings::new(
        &ctx.vad,
        &state.config.model.language,
        &super::files::model_id(&state.config),
        q.words,
    );
    let opened = Session::open("realtime", settings.format.decoder(), true, ctx);
    let (mut session, outbox) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            tracing::error!(%error, "cannot set up the audio front end");
            let text = Events::new("failed").error(
                "server_error",
                ErrorCode::Internal.as_str(),
                "the server could not start this session",
                None,
                None,
                None,
            );
            socket::refuse(ws, text, Close::Error(ErrorCode::Internal)).await;
            return SessionEnd::Error(ErrorCode::Internal);
        }
    };
    session.want_words(settings.wants_words());
    let id = format_id(session.id());
    let expires_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + ctx.session.max_duration_s as u64;
    let mut door = Door::new(settings, &id, expires_at);
    let created = door.events.session("session.created", door.session_json());
    let door = Arc::new(Mutex::new(door));
    let reader = door.clone();
    let span = tracing::info_span!("session", id = %id, door = "realtime");
    let serve = async move {
        let (end, _) = socket::serve(
            ws,
            &mut session,
            socket::Outgoing::new(outbox),
            vec![created],
            move |read| reader.lock().expect("door lock").listen(read),
            move |event| door.lock().expect("door lock").speak(event),
            &ctx.session,
        )
        .await;
        end
    };
    logged(span, permit, serve).await
}

#[cfg(test)]
mod tests;
