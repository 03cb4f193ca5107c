//! Connecting: a URL, headers and timeouts in; a [`Session`] that has seen `ready`, or a [`ConnectError`] that says why not, out.

use std::time::Duration;

use futures_util::StreamExt;
use steno_protocol::{ErrorCode, ServerMessage};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::session::{CloseInfo, Ready, Session, close_info};

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL or a header is not valid.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Refused with plain HTTP before the upgrade (401 no token, 403 origin,
    /// 404 wrong path, 426 not a WebSocket).
    #[error("HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// Upgraded, then refused with a protocol error (`over_capacity`,
    /// `not_ready`, `bad_request` for a bad query) and a close code.
    #[error("refused ({}): {message}", code.as_str())]
    Refused {
        code: ErrorCode,
        message: String,
        retry_after_s: Option<u32>,
        close: Option<CloseInfo>,
    },
    /// The first message was neither `ready` nor an error.
    #[error("unexpected first message: {0}")]
    Unexpected(String),
    /// TCP or WebSocket failed.
    #[error("connection failed: {0}")]
    Transport(#[from] tungstenite::Error),
    /// Nothing within the connect or ready timeout.
    #[error("no {0} within the timeout")]
    Timeout(&'static str),
}

impl ConnectError {
    /// The protocol error code of a refusal.
    pub fn refusal(&self) -> Option<ErrorCode> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Connector {
    url: String,
    headers: Vec<(String, String)>,
    connect_timeout: Duration,
    ready_timeout: Duration,
}

impl Connector {
    /// `url`: `ws://HOST:PORT/v1/listen?QUERY`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            headers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            ready_timeout: Duration::from_secs(10),
        }
    }

    /// `Authorization: Bearer TOKEN`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// Any other header (an `Origin`, say).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Limits on the TCP + WebSocket handshake and on waiting for `ready`.
    pub fn timeouts(mut self, connect: Duration, ready: Duration) -> Self {
        self.connect_timeout = connect;
        self.ready_timeout = ready;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same connector with `query` (`key=value&...`) added to the URL.
    pub fn with_query(&self, query: &str) -> Self {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        Self {
            url: format!("{}{separator}{query}", self.url),
            ..self.clone()
        }
    }

    /// Opens the WebSocket and reads the server's first message.
    pub async fn connect(&self) -> Result<Session, ConnectError> {
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::BadRequest(e.to_string()))?;
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| ConnectError::BadRequest(e.to_string()))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| ConnectError::BadRequest(e.to_string()))?;
            request.headers_mut().insert(name, value);
        }
        let connected = tokio::time::timeout(
            self.connect_timeout,
            tokio_tungstenite::connect_async(request),
        )
        .await
        .map_err(|_| ConnectError::Timeout("upgrade"))?;
        let mut ws = match connected {
            Ok((ws, _)) => ws,
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .into_body()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                return Err(ConnectError::Http { status, body });
            }
            Err(e) => return Err(e.into()),
        };
        let first = tokio::time::timeout(self.ready_timeout, ws.next())
            .await
            .map_err(|_| ConnectError::Timeout("ready message"))?;
        let text = match first {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(other)) => return Err(ConnectError::Unexpected(format!("{other:?}"))),
            Some(Err(e)) => return Err(e.into()),
            None => return Err(ConnectError::Unexpected("the connection closed".into())),
        };
        match serde_json::from_str::<ServerMessage>(text.as_str()) {
            Ok(ServerMessage::Ready {
                session_id,
                encoding,
                sample_rate_hz,
                resume_token,
                received_ms,
            }) => Ok(Session::new(
                ws,
                Ready {
                    session_id,
                    encoding,
                    sample_rate_hz,
                    resume_token,
                    received_ms,
                },
            )),
            Ok(ServerMessage::Error {
                code,
                message,
                retry_after_s,
            }) => {
                // The close frame follows the refusal.
                let mut close = None;
                while let Ok(Some(Ok(m))) =
                    tokio::time::timeout(self.ready_timeout, ws.next()).await
                {
                    if let Message::Close(frame) = m {
                        close = frame.as_ref().map(close_info);
                        break;
                    }
                }
                Err(ConnectError::Refused {
                    code,
                    message,
                    retry_after_s,
                    close,
                })
            }
            _ => Err(ConnectError::Unexpected(text.to_string())),
        }
    }
}
