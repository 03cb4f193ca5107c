//! An open session: audio and control messages in, typed [`Event`]s out, whole or split into a [`Sender`] and a [`Receiver`] for two tasks.

use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use steno_protocol::{ClientMessage, Encoding, ServerMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::Transcript;

/// The socket under a session.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What `ready` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    pub session_id: String,
    pub encoding: Encoding,
    pub sample_rate_hz: u32,
    /// For `?resume=` after a dropped connection (None: the server keeps
    /// no sessions for that).
    pub resume_token: Option<String>,
    /// On a resumed session: the audio the server has, in ms.
    pub received_ms: Option<u64>,
}

/// A close frame's code and reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseInfo {
    pub code: u16,
    pub reason: String,
}

pub(crate) fn close_info(frame: &CloseFrame) -> CloseInfo {
    CloseInfo {
        code: u16::from(frame.code),
        reason: frame.reason.to_string(),
    }
}

/// What the server said.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Message(ServerMessage),
    /// The server closed the session (None: a close frame without a code).
    /// Nothing follows.
    Closed(Option<CloseInfo>),
}

/// A session that broke or spoke out of protocol.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connection lost: {0}")]
    Transport(#[from] tungstenite::Error),
    #[error("the server sent text that is not a protocol v1 message: {0}")]
    BadMessage(String),
    #[error("no close from the server within {0:?}")]
    Timeout(Duration),
    /// A resuming session could not go on after its connection dropped.
    #[error("session lost: {0}")]
    Lost(String),
}

/// An open protocol v1 session.
pub struct Session {
    ws: Ws,
    ready: Ready,
    closed: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("ready", &self.ready)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(ws: Ws, ready: Ready) -> Self {
        Self {
            ws,
            ready,
            closed: false,
        }
    }

    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// One binary message: an Opus packet, or a PCM chunk.
    pub async fn send_audio(&mut self, bytes: impl Into<Vec<u8>>) -> Result<(), ClientError> {
        Ok(self.ws.send(Message::binary(bytes.into())).await?)
    }

    pub async fn send(&mut self, message: ClientMessage) -> Result<(), ClientError> {
        Ok(self.ws.send(Message::text(message.to_json())).await?)
    }

    /// `finalize`: close the open utterance now.
    pub async fn finalize(&mut self) -> Result<(), ClientError> {
        self.send(ClientMessage::Finalize).await
    }

    /// `end`: the server sends the last finals, `end`, and closes.
    pub async fn end(&mut self) -> Result<(), ClientError> {
        self.send(ClientMessage::End).await
    }

    pub async fn keepalive(&mut self) -> Result<(), ClientError> {
        self.send(ClientMessage::Keepalive).await
    }

    /// The next event; None once the session closed or the stream ended.
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        if self.closed {
            return None;
        }
        let event = next_event(&mut self.ws).await;
        if !matches!(event, Some(Ok(Event::Message(_)))) {
            self.closed = true;
        }
        event
    }

    /// Reads until the server closes, at most `limit`.
    pub async fn collect(&mut self, limit: Duration) -> Result<Transcript, ClientError> {
        let mut t = Transcript::default();
        tokio::time::timeout(limit, async {
            while let Some(event) = self.next().await {
                t.push(event?);
            }
            Ok::<_, ClientError>(())
        })
        .await
        .map_err(|_| ClientError::Timeout(limit))??;
        Ok(t)
    }

    /// Sends our close frame (the polite end after the server's).
    pub async fn close(&mut self) {
        let _ = self.ws.close(None).await;
    }

    /// The socket, for tests that must break the protocol on purpose.
    pub fn socket(&mut self) -> &mut Ws {
        &mut self.ws
    }

    pub fn into_socket(self) -> Ws {
        self.ws
    }

    /// A sender and a receiver for two tasks, as a live client runs them.
    pub fn split(self) -> (Sender, Receiver) {
        let (sink, stream) = self.ws.split();
        (
            Sender { sink },
            Receiver {
                stream,
                closed: self.closed,
            },
        )
    }
}

/// The sending half of a split [`Session`].
pub struct Sender {
    sink: SplitSink<Ws, Message>,
}

impl Sender {
    pub async fn send_audio(&mut self, bytes: impl Into<Vec<u8>>) -> Result<(), ClientError> {
        Ok(self.sink.send(Message::binary(bytes.into())).await?)
    }

    pub async fn send(&mut self, message: ClientMessage) -> Result<(), ClientError> {
        Ok(self.sink.send(Message::text(message.to_json())).await?)
    }

    /// Answers the server's close (the reader has seen it) or closes first.
    pub async fn close(&mut self) {
        let _ = self.sink.close().await;
    }
}

/// The receiving half of a split [`Session`].
pub struct Receiver {
    stream: SplitStream<Ws>,
    closed: bool,
}

impl Receiver {
    /// The next event; None once the session closed or the stream ended.
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        if self.closed {
            return None;
        }
        let event = next_event(&mut self.stream).await;
        if !matches!(event, Some(Ok(Event::Message(_)))) {
            self.closed = true;
        }
        event
    }
}

async fn next_event<S>(stream: &mut S) -> Option<Result<Event, ClientError>>
where
    S: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => {
                return Some(
                    serde_json::from_str(text.as_str())
                        .map(Event::Message)
                        .map_err(|e| ClientError::BadMessage(format!("{e}: {text}"))),
                );
            }
            Ok(Message::Close(frame)) => {
                return Some(Ok(Event::Closed(frame.as_ref().map(close_info))));
            }
            // Pings are answered by tungstenite; binary is not protocol v1.
            Ok(_) => {}
            Err(e) => return Some(Err(e.into())),
        }
    }
}
