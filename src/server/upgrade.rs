//! The `/v1/listen` upgrade: an HTTP request in, a WebSocket session (or a clear refusal over WebSocket) out.
//!
//! Refusals (over capacity, model loading, bad query) are sent after the
//! upgrade as a protocol error message plus a close code, because browsers
//! cannot read the body of a failed upgrade.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::SinkExt;
use hyper::body::Incoming;
use hyper::header::{
    AUTHORIZATION, CONNECTION, CONTENT_TYPE, HeaderMap, HeaderValue, ORIGIN, SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE, WWW_AUTHENTICATE,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use super::AppState;
use super::http::{Body, json};
use crate::admission::AdmissionError;
use crate::config::{AuthConfig, SessionConfig};
use crate::metrics;
use crate::protocol::{ErrorCode, ListenParams, ServerMessage};

/// The `Sec-WebSocket-Accept` value answering a WebSocket (version 13)
/// upgrade request, or None when `headers` ask for no such upgrade.
pub fn websocket_accept_key(headers: &HeaderMap) -> Option<String> {
    let is_upgrade = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = headers
        .get(SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()));
    let version_ok = headers
        .get(SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    key.filter(|_| is_upgrade && version_ok)
}

/// The answer to a request that is not a WebSocket (version 13) upgrade.
pub fn upgrade_required() -> Response<Body> {
    json(
        StatusCode::UPGRADE_REQUIRED,
        serde_json::json!({"error": "this endpoint speaks WebSocket (version 13) only"}),
    )
}

/// The answer that completes the handshake; no extensions are offered, so no
/// permessage-deflate.
pub fn switching_protocols(accept: String) -> Response<Body> {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(CONNECTION, HeaderValue::from_static("upgrade"))
        .header(UPGRADE, HeaderValue::from_static("websocket"))
        .header(SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::default())
        .expect("static headers are valid")
}

/// The limits of every session's socket: messages and frames up to
/// `session.max_message_bytes` (larger ones close it with 1009), at most
/// 4 MiB waiting to be written.
pub fn websocket_config(session: &SessionConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(session.max_message_bytes))
        .max_frame_size(Some(session.max_message_bytes))
        .max_write_buffer_size(4 << 20)
}

pub fn listen(state: Arc<AppState>, req: Request<Incoming>) -> Response<Body> {
    let Some(accept) = websocket_accept_key(req.headers()) else {
        return upgrade_required();
    };

    if let Err(refusal) = check_access(&state.config.auth, &req) {
        return *refusal;
    }
    let params = ListenParams::from_query(req.uri().query());
    let admitted = if !state.model_ready.load(Ordering::SeqCst) {
        Err((
            ErrorCode::NotReady,
            "the model is still loading; retry in a few seconds".to_string(),
            Some(state.config.admission.retry_after_s),
        ))
    } else {
        match &params {
            Err(message) => Err((ErrorCode::BadRequest, message.clone(), None)),
            Ok(_) => state.admission.try_admit().map_err(|e| match e {
                AdmissionError::OverCapacity { .. } => (
                    ErrorCode::OverCapacity,
                    e.to_string(),
                    Some(state.config.admission.retry_after_s),
                ),
                AdmissionError::Closed => (
                    ErrorCode::ShuttingDown,
                    "the server is shutting down".to_string(),
                    None,
                ),
            }),
        }
    };

    let ws_config = websocket_config(&state.config.session);
    let tracker = state.tracker.clone();
    tracker.spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(ws_config))
                .await;
        match admitted {
            Ok(permit) => {
                let params = params.expect("admitted only with valid params");
                crate::session::run(ws, params, permit, state.sessions.clone()).await;
            }
            Err((code, message, retry_after_s)) => refuse(ws, code, message, retry_after_s).await,
        }
    });

    switching_protocols(accept)
}

/// Token and Origin checks, answered with plain HTTP before any upgrade.
fn check_access(auth: &AuthConfig, req: &Request<Incoming>) -> Result<(), Box<Response<Body>>> {
    let origin = req
        .headers()
        .get(ORIGIN)
        .filter(|_| !auth.allowed_origins.is_empty());
    if let Some(origin) = origin {
        let allowed = origin.to_str().is_ok_and(|o| {
            auth.allowed_origins
                .iter()
                .any(|a| a.eq_ignore_ascii_case(o))
        });
        if !allowed {
            metrics::http_refused("forbidden_origin");
            return Err(Box::new(json(
                StatusCode::FORBIDDEN,
                serde_json::json!({"error": "this origin may not open sessions"}),
            )));
        }
    }
    if !auth.token.is_empty() {
        let bearer = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let query = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("token=")));
        let presented = bearer.or(query).unwrap_or("");
        if !constant_time_eq(presented.as_bytes(), auth.token.as_bytes()) {
            metrics::http_refused("unauthorized");
            return Err(Box::new(
                Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .header(WWW_AUTHENTICATE, "Bearer")
                    .header(CONTENT_TYPE, "application/json")
                    .body(Body::from(r#"{"error":"missing or wrong token"}"#))
                    .expect("static headers are valid"),
            ));
        }
    }
    Ok(())
}

/// Compares without an early exit, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, y) in b.iter().enumerate() {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ y);
    }
    diff == 0
}

async fn refuse<S>(
    mut ws: WebSocketStream<S>,
    code: ErrorCode,
    message: String,
    retry_after_s: Option<u32>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    metrics::error_sent(code);
    let m = ServerMessage::Error {
        code,
        message,
        retry_after_s,
    };
    let frame = CloseFrame {
        code: CloseCode::from(code.close_code()),
        reason: code.close_reason().into(),
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        ws.send(Message::text(m.to_json())).await?;
        ws.close(Some(frame)).await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"secretx", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(!constant_time_eq(b"Secret", b"secret"));
    }
}
