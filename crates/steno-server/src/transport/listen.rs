//! `/v1/listen`, protocol v1 over WebSocket: an upgrade request in, a session (or a clear refusal over the socket) out; client frames to session input, pipeline events to protocol v1 JSON.
//!
//! Refusals (over capacity, model loading, bad query) are sent after the
//! upgrade as a protocol error message plus a close code, because browsers
//! cannot read the body of a failed upgrade. Token and Origin checks come
//! first, as plain HTTP.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, UPGRADE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use steno_audio::codec::AudioDecoder;
use steno_protocol::{
    ApiError, ClientMessage, Close, ErrorCode, ListenParams, Resume, ServerMessage, WordTiming,
};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tracing::Instrument;

use super::AppState;
use super::http::ApiResponse;
use super::resume::{Parking, Returned, ServerSocket};
use super::socket::{self, Outgoing, Read, websocket_accept_key, websocket_config};
use crate::admission::{AdmissionError, SessionPermit};
use crate::metrics;
use crate::pipeline::Event;
use crate::session::registry::format_id;
use crate::session::{Input, Session, SessionEnd};

/// The answer to a request that is not a WebSocket (version 13) upgrade.
pub fn upgrade_required() -> Response {
    ApiResponse(ApiError::new(
        ErrorCode::BadRequest,
        "this endpoint speaks WebSocket (version 13) only",
    ))
    .into_response_with(StatusCode::UPGRADE_REQUIRED)
}

/// The answer that completes the handshake.
pub fn switching_protocols(accept: String) -> Response {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(CONNECTION, HeaderValue::from_static("upgrade"))
        .header(UPGRADE, HeaderValue::from_static("websocket"))
        .header(SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .expect("static headers are valid")
}

/// Completes an upgrade on the runtime and hands the socket to `serve`;
/// answers 101 now. Shared by the WebSocket doors.
pub fn upgrade<F, Fut>(state: &AppState, mut req: Request, serve: F) -> Response
where
    F: FnOnce(WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(accept) = websocket_accept_key(req.headers()) else {
        return upgrade_required();
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return upgrade_required();
    };
    let ws_config = websocket_config(&state.config.session);
    state.tracker.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(ws_config))
                .await;
        serve(ws).await;
    });
    switching_protocols(accept)
}

/// A refusal before a session starts: the error and when to retry.
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_s: Option<u32>,
}

/// Takes a session slot, or says why not.
pub fn admit(state: &AppState) -> Result<SessionPermit, Refusal> {
    if !state.model_ready.load(Ordering::SeqCst) {
        return Err(Refusal {
            code: ErrorCode::NotReady,
            message: "the model is still loading; retry in a few seconds".to_string(),
            retry_after_s: Some(state.config.admission.retry_after_s),
        });
    }
    if let Some(waited) = super::http::overload(state) {
        metrics::session_refused_overload();
        return Err(Refusal {
            code: ErrorCode::OverCapacity,
            message: format!(
                "over capacity: finals are waiting {:.1} s for a worker (admission.max_final_wait_s is {} s), retry later",
                waited.as_secs_f32(),
                state.config.admission.max_final_wait_s
            ),
            retry_after_s: Some(state.config.admission.retry_after_s),
        });
    }
    state.admission.try_admit().map_err(|e| match e {
        AdmissionError::OverCapacity { .. } => Refusal {
            code: ErrorCode::OverCapacity,
            message: e.to_string(),
            retry_after_s: Some(state.config.admission.retry_after_s),
        },
        AdmissionError::Closed => Refusal {
            code: ErrorCode::ShuttingDown,
            message: "the server is shutting down".to_string(),
            retry_after_s: None,
        },
    })
}

/// `GET /v1/listen`.
pub async fn listen(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if let Err(refusal) = state.config.auth.check(req.headers(), req.uri().query()) {
        return ApiResponse(refusal).into_response();
    }
    let resume = Resume::from_query(req.uri().query());
    if let Ok(Some(resume)) = resume {
        return resume_session(&state, req, resume);
    }
    let params = resume
        .and_then(|_| ListenParams::from_query(req.uri().query()))
        .and_then(|p| p.check_language(&state.config.model.language).map(|()| p));
    let admitted = match params {
        Err(e) => Err(Refusal {
            code: ErrorCode::BadRequest,
            message: e.to_string(),
            retry_after_s: None,
        }),
        Ok(params) => admit(&state).map(|permit| (params, permit)),
    };
    let app = state.clone();
    upgrade(&state, req, move |ws| async move {
        match admitted {
            Ok((params, permit)) => {
                serve_v1(ws, params, permit, &app).await;
            }
            Err(r) => {
                metrics::error_sent(r.code);
                let m = ServerMessage::Error {
                    code: r.code,
                    message: r.message,
                    retry_after_s: r.retry_after_s,
                };
                socket::refuse(ws, m.to_json(), Close::Error(r.code)).await;
            }
        }
    })
}

/// `GET /v1/listen?resume=TOKEN&finals=N`: hands the new socket to the
/// session parked under the token, or refuses it.
fn resume_session(state: &Arc<AppState>, req: Request, resume: Resume) -> Response {
    let app = state.clone();
    upgrade(state, req, move |ws| async move {
        let refusal = if app.sessions.draining.is_cancelled() {
            (
                ErrorCode::ShuttingDown,
                ws,
                "the server is shutting down; start a new session elsewhere".to_string(),
            )
        } else {
            let back = Returned {
                ws,
                finals: resume.finals,
            };
            match app.parking.hand_over(&resume.token, back).await {
                Ok(()) => return,
                Err(back) => (
                    ErrorCode::BadRequest,
                    back.ws,
                    format!(
                        "this resume token is unknown, already used or past its grace period (session.resume_grace_s = {} s); start a new session",
                        app.config.session.resume_grace_s
                    ),
                ),
            }
        };
        let (code, ws, message) = refusal;
        metrics::resume_refused();
        metrics::error_sent(code);
        let m = ServerMessage::error(code, message);
        socket::refuse(ws, m.to_json(), Close::Error(code)).await;
    })
}

/// Runs one protocol v1 session on an upgraded socket, and on the sockets
/// of its client's resumes. The permit is held until this returns.
async fn serve_v1(
    ws: ServerSocket,
    params: ListenParams,
    permit: SessionPermit,
    state: &AppState,
) -> SessionEnd {
    let ctx = &state.sessions;
    let opened = AudioDecoder::new(params.encoding, params.sample_rate_hz)
        .map_err(|e| e.to_string())
        .and_then(|decoder| {
            Session::open("v1", decoder, params.partials, ctx).map_err(|e| e.to_string())
        });
    let (mut session, outbox) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            tracing::error!(%error, "cannot set up the audio front end");
            let m = ServerMessage::error(
                ErrorCode::Internal,
                "the server could not start this session",
            );
            socket::refuse(ws, m.to_json(), Close::Error(ErrorCode::Internal)).await;
            return SessionEnd::Error(ErrorCode::Internal);
        }
    };
    session.want_words(params.words);
    let session_id = format_id(session.id());
    let span = tracing::info_span!("session", id = %session_id, encoding = ?params.encoding);
    let grace = std::time::Duration::from_secs_f32(ctx.session.resume_grace_s);
    let ready = move |resume_token: Option<String>, received_ms: Option<u64>| {
        ServerMessage::Ready {
            session_id: session_id.clone(),
            encoding: params.encoding,
            sample_rate_hz: params.sample_rate_hz,
            resume_token,
            received_ms,
        }
        .to_json()
    };
    let serve = async move {
        let mut token = (!grace.is_zero()).then(Parking::new_token);
        let mut first = vec![ready(token.clone(), None)];
        let mut ws = ws;
        let mut out = Outgoing::new(outbox);
        loop {
            // A resume that comes while this connection looks open ends it.
            let kick = match &token {
                Some(t) => state.parking.live(t),
                None => tokio_util::sync::CancellationToken::new(),
            };
            let (end, kept) = socket::serve(
                ws.take_until(Box::pin(kick.cancelled_owned())),
                &mut session,
                out,
                first,
                input,
                |event| message(event).map(|m| m.to_json()).into_iter().collect(),
                &ctx.session,
            )
            .await;
            let Some(parked_as) = token.take() else {
                return end;
            };
            let Some(mut kept) = kept else {
                state.parking.forget(&parked_as);
                return end;
            };
            metrics::session_parked();
            tracing::info!(
                grace_s = grace.as_secs_f32(),
                "connection dropped; waiting for a resume"
            );
            let Some(back) = state.parking.wait(&parked_as, grace, &ctx.draining).await else {
                tracing::info!("no resume within the grace period");
                return end;
            };
            metrics::session_resumed();
            tracing::info!(
                finals = back.finals,
                audio_ms = session.audio_ms(),
                "resumed"
            );
            token = Some(Parking::new_token());
            first = vec![ready(token.clone(), Some(session.audio_ms()))];
            first.extend(kept.catch_up(back.finals));
            ws = back.ws;
            out = kept;
        }
    };
    logged(span, permit, serve).await
}

/// Runs a session's `serve` in its `span`, logs its start and end, and
/// holds its slot (`permit`) until it ends. Shared by the WebSocket doors.
pub async fn logged(
    span: tracing::Span,
    permit: SessionPermit,
    serve: impl Future<Output = SessionEnd>,
) -> SessionEnd {
    let started = std::time::Instant::now();
    async move {
        tracing::info!("session started");
        let end = serve.await;
        tracing::info!(
            ?end,
            duration_ms = started.elapsed().as_millis() as u64,
            "session ended"
        );
        drop(permit);
        end
    }
    .instrument(span)
    .await
}

/// A client frame as protocol v1 reads it.
fn input(read: Read) -> Input {
    match read {
        Read::Binary(bytes) => Input::Audio(bytes),
        Read::Text(text) => match ClientMessage::parse(text.as_str()) {
            Ok(m) => Input::Control(m),
            Err(e) => Input::Rejected(ErrorCode::BadRequest, e.to_string()),
        },
        Read::Closed => Input::ClientClosed,
        Read::Broken { close, message } => Input::Broken { close, message },
    }
}

/// A pipeline event as protocol v1 says it; None for the close (the writer
/// sends the frame).
fn message(event: Event) -> Option<ServerMessage> {
    Some(match event {
        Event::SpeechStarted {
            utterance,
            start_ms,
        } => ServerMessage::SpeechStarted {
            utterance,
            start_ms,
        },
        Event::Partial {
            utterance,
            text,
            start_ms,
            end_ms,
        } => ServerMessage::Partial {
            utterance,
            text,
            start_ms,
            end_ms,
        },
        Event::Final {
            utterance,
            text,
            start_ms,
            end_ms,
            processing_ms,
            words,
            degraded,
        } => ServerMessage::Final {
            utterance,
            text,
            start_ms,
            end_ms,
            processing_ms,
            words: words
                .into_iter()
                .map(|w| WordTiming {
                    word: w.text,
                    start_ms: w.start_ms,
                    end_ms: w.end_ms,
                    probability: w.probability,
                })
                .collect(),
            degraded,
        },
        Event::End {
            utterances,
            audio_ms,
        } => ServerMessage::End {
            utterances,
            audio_ms,
        },
        Event::Error { code, message } => ServerMessage::error(code, message),
        // Protocol v1 has no message for these: a final follows the end of
        // speech, and v1 clients cannot configure or clear.
        Event::SpeechEnded { .. } | Event::Discarded { .. } | Event::Reply(_) => return None,
        Event::Close(_) => return None,
    })
}
