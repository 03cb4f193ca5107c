//! What every WebSocket door shares: the handshake and the socket's limits, client frames in as [`Read`]s, a writer that sends with a deadline and closes with the one close-code mapping, and the run of a session between them.
//!
//! A door supplies two mappings: its client's [`Read`]s into session
//! [`Input`]s, and pipeline [`Event`]s into its text messages. Everything
//! else (the reader and writer tasks joined by the bounded outbox, send
//! timeouts, how read errors close the socket, how a vanished client frees
//! its slot) is here once. `examples/autobahn_echo.rs` serves the Autobahn
//! conformance cases with these same pieces.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use steno_protocol::{Close, ErrorCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::pipeline::{Event, Outbox};
use crate::session::{Input, Session, SessionConfig, SessionEnd};
use axum::http::HeaderMap;
use axum::http::header::{SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE};

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

/// The limits of every session's socket: messages and frames up to
/// `session.max_message_bytes` (larger ones close it with 1009), at most
/// 4 MiB waiting to be written. No extensions are offered, so no
/// permessage-deflate.
pub fn websocket_config(session: &SessionConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(session.max_message_bytes))
        .max_frame_size(Some(session.max_message_bytes))
        .max_write_buffer_size(4 << 20)
}

/// An upgraded socket as the doors take it (any stream and sink of
/// WebSocket messages: the server's, or a test's).
pub trait WebSocket:
    Stream<Item = Result<Message, tungstenite::Error>> + Sink<Message> + Send + Unpin + 'static
{
}

impl<W> WebSocket for W where
    W: Stream<Item = Result<Message, tungstenite::Error>> + Sink<Message> + Send + Unpin + 'static
{
}

/// One thing the client did, as a door sees it.
#[derive(Debug)]
pub enum Read {
    Text(Utf8Bytes),
    Binary(Bytes),
    /// A close frame.
    Closed,
    /// The stream broke in a way the client is told about.
    Broken {
        close: Close,
        message: Option<(ErrorCode, String)>,
    },
}

/// Turns a read result into a [`Read`]; None for frames tungstenite handles
/// itself (pings are answered by it) and for a vanished client, which ends
/// the stream.
fn classify(
    next: Result<Message, tungstenite::Error>,
    max_message_bytes: usize,
) -> Option<Option<Read>> {
    use tungstenite::Error as E;
    Some(Some(match next {
        Ok(Message::Text(t)) => Read::Text(t),
        Ok(Message::Binary(b)) => Read::Binary(b),
        Ok(Message::Close(_)) => Read::Closed,
        Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => return Some(None),
        Err(E::Capacity(detail)) => Read::Broken {
            close: Close::Error(ErrorCode::MessageTooLarge),
            message: Some((
                ErrorCode::MessageTooLarge,
                format!("message too large ({detail}); the limit is {max_message_bytes} bytes"),
            )),
        },
        Err(E::Utf8(_)) => Read::Broken {
            close: Close::InvalidUtf8,
            message: Some((
                ErrorCode::BadRequest,
                "text message is not valid UTF-8".to_string(),
            )),
        },
        // TCP closed without a close frame: the client vanished (a
        // network change, a killed app), not a protocol breach.
        Err(E::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake)) => {
            tracing::debug!("connection closed without a close frame");
            return None;
        }
        Err(E::Protocol(p)) => {
            tracing::info!(error = %p, "WebSocket protocol error");
            Read::Broken {
                close: Close::ProtocolError,
                message: None,
            }
        }
        Err(other) => {
            tracing::debug!(error = %other, "connection lost");
            return None;
        }
    }))
}

/// The client's side of a socket as a stream of [`Read`]s; it ends when the
/// client vanishes, and after a close frame or a broken read.
pub fn reads<St>(stream: St, max_message_bytes: usize) -> impl Stream<Item = Read> + Unpin
where
    St: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let mut ended = false;
    Box::pin(
        stream
            .map(move |next| classify(next, max_message_bytes))
            .take_while(|r| std::future::ready(r.is_some()))
            .filter_map(|r| std::future::ready(r.flatten()))
            .take_while(move |r| {
                let more = !ended;
                ended = matches!(r, Read::Closed | Read::Broken { .. });
                std::future::ready(more)
            }),
    )
}

/// How a writer ended.
#[derive(Debug, PartialEq, Eq)]
pub enum WriterEnd {
    Closed { code: u16 },
    ClientGone,
    SlowConsumer,
}

/// The server's side of a socket: every send bounded by `send_timeout`.
pub struct SocketWriter<S> {
    sink: S,
    send_timeout: Duration,
}

impl<S: Sink<Message> + Unpin> SocketWriter<S> {
    pub fn new(sink: S, send_timeout: Duration) -> Self {
        Self { sink, send_timeout }
    }

    pub async fn send(&mut self, message: Message) -> Result<(), WriterEnd> {
        match tokio::time::timeout(self.send_timeout, self.sink.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(WriterEnd::ClientGone),
            Err(_) => {
                crate::metrics::error_sent(ErrorCode::SlowConsumer);
                tracing::info!("client stopped reading; closing the session");
                Err(WriterEnd::SlowConsumer)
            }
        }
    }

    pub async fn send_text(&mut self, text: String) -> Result<(), WriterEnd> {
        self.send(Message::text(text)).await
    }

    /// Sends the close frame for `close` and flushes.
    pub async fn close(&mut self, close: Close) -> WriterEnd {
        let frame = CloseFrame {
            code: CloseCode::from(close.code()),
            reason: close.reason().into(),
        };
        let sink = &mut self.sink;
        match tokio::time::timeout(self.send_timeout, async {
            // After a client's close frame tungstenite has queued its own
            // reply and refuses ours; the flush still sends the reply.
            let _ = sink.send(Message::Close(Some(frame))).await;
            sink.flush().await
        })
        .await
        {
            Ok(Ok(())) => WriterEnd::Closed { code: close.code() },
            Ok(Err(_)) => WriterEnd::ClientGone,
            Err(_) => WriterEnd::SlowConsumer,
        }
    }
}

/// Finals a connection's writer keeps after sending them, for a resumed
/// client that missed the last ones as its connection dropped.
pub const REPLAY_FINALS: usize = 16;

/// The writer's side of a session, which outlives one connection: the
/// outbox, the last finals sent (utterance, the door's messages), and the
/// messages made after the connection broke.
pub struct Outgoing {
    pub outbox: Outbox,
    replay: VecDeque<(u32, Vec<String>)>,
    /// Held for the next connection; bounded by the session, which stops
    /// producing once it sees its connection gone.
    unsent: Vec<String>,
}

impl Outgoing {
    pub fn new(outbox: Outbox) -> Self {
        Self {
            outbox,
            replay: VecDeque::new(),
            unsent: Vec::new(),
        }
    }

    fn remember(&mut self, utterance: u32, texts: Vec<String>) {
        if self.replay.len() == REPLAY_FINALS {
            self.replay.pop_front();
        }
        self.replay.push_back((utterance, texts));
    }

    /// What a resumed client must get first: the finals it lacks (those
    /// from `utterance` on that were sent as the connection broke), then
    /// what was made after.
    pub fn catch_up(&mut self, utterance: u32) -> Vec<String> {
        let mut texts: Vec<String> = self
            .replay
            .iter()
            .filter(|(u, _)| *u >= utterance)
            .flat_map(|(_, texts)| texts.iter().cloned())
            .collect();
        texts.append(&mut self.unsent);
        texts
    }
}

/// Sends `first` (the door's greeting), then every event of the outbox as
/// the door's text messages, until the close. If the client goes, it goes
/// on taking events (the session may be waiting for room) into
/// [`Outgoing`] until `stop`, and hands that back.
async fn write_loop<S, F>(
    mut writer: SocketWriter<S>,
    first: Vec<String>,
    mut out: Outgoing,
    mut speak: F,
    done: CancellationToken,
    stop: CancellationToken,
) -> (WriterEnd, Option<Outgoing>)
where
    S: Sink<Message> + Unpin,
    F: FnMut(Event) -> Vec<String>,
{
    let end = async {
        for text in first {
            send_unless(&mut writer, text, &stop).await?;
        }
        loop {
            let event = tokio::select! {
                biased;
                _ = stop.cancelled() => return Err(WriterEnd::ClientGone),
                event = out.outbox.next() => event,
            };
            // The session ended without a close: the client is gone.
            let Some(event) = event else {
                return Err(WriterEnd::ClientGone);
            };
            if let Event::Close(close) = event {
                return Err(writer.close(close).await);
            }
            let final_of = match &event {
                Event::Final { utterance, .. } => Some(*utterance),
                _ => None,
            };
            let texts = speak(event);
            if let Some(utterance) = final_of {
                out.remember(utterance, texts.clone());
            }
            for text in texts {
                send_unless(&mut writer, text, &stop).await?;
            }
        }
    }
    .await;
    done.cancel();
    match end {
        Ok(()) | Err(WriterEnd::ClientGone) => {
            hold(&mut out, &mut speak, &stop).await;
            (WriterEnd::ClientGone, Some(out))
        }
        Err(end) => (end, None),
    }
}

/// The client is gone: takes the outbox's events as unsent messages until
/// `stop` (the session saw it too) or the session's close.
async fn hold<F: FnMut(Event) -> Vec<String>>(
    out: &mut Outgoing,
    speak: &mut F,
    stop: &CancellationToken,
) {
    loop {
        let event = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            event = out.outbox.next() => event,
        };
        match event {
            None | Some(Event::Close(_)) => return,
            Some(event) => {
                let texts = speak(event);
                out.unsent.extend(texts);
            }
        }
    }
}

async fn send_unless<S: Sink<Message> + Unpin>(
    writer: &mut SocketWriter<S>,
    text: String,
    stop: &CancellationToken,
) -> Result<(), WriterEnd> {
    tokio::select! {
        biased;
        _ = stop.cancelled() => Err(WriterEnd::ClientGone),
        sent = writer.send_text(text) => sent,
    }
}

/// Runs one session over one WebSocket connection: a writer task speaks
/// the outbox's events (after `first`), a reader task reads the client's
/// frames ahead (`read_ahead`: pings are answered while the session
/// waits), the session takes `listen`'s mapping of them. Returns how the
/// session ended, and its [`Outgoing`] when only the connection did (the
/// client vanished without `end` or a close frame): a door that resumes
/// sessions keeps it for the client's return; dropping it drops the reply
/// channels of queued finals, so workers skip them.
pub async fn serve<W, L, F>(
    ws: W,
    session: &mut Session,
    out: Outgoing,
    first: Vec<String>,
    mut listen: L,
    speak: F,
    config: &SessionConfig,
) -> (SessionEnd, Option<Outgoing>)
where
    W: WebSocket,
    L: FnMut(Read) -> Input,
    F: FnMut(Event) -> Vec<String> + Send + 'static,
{
    let (sink, stream) = ws.split::<Message>();
    let done = CancellationToken::new();
    let stop = CancellationToken::new();
    let writer = tokio::spawn(
        write_loop(
            SocketWriter::new(sink, Duration::from_secs_f32(config.send_timeout_s)),
            first,
            out,
            speak,
            done.clone(),
            stop.clone(),
        )
        .in_current_span(),
    );
    let inputs = super::read_ahead::read_ahead(
        reads(stream, config.max_message_bytes),
        config.read_ahead_bytes,
    )
    .map(&mut listen);
    let end = session.run(inputs, done).await;
    if end == SessionEnd::ClientGone {
        // Nobody reads what the writer would send: stop it now, without
        // waiting for a job already running.
        stop.cancel();
    }
    match writer.await {
        Ok((WriterEnd::Closed { .. }, _)) => (end, None),
        Ok((WriterEnd::SlowConsumer, _)) => (SessionEnd::Error(ErrorCode::SlowConsumer), None),
        Ok((WriterEnd::ClientGone, out)) => match end {
            SessionEnd::ClientGone => (end, out),
            SessionEnd::Completed => (SessionEnd::ClientGone, None),
            other => (other, None),
        },
        Err(_) => match end {
            SessionEnd::Completed => (SessionEnd::ClientGone, None),
            other => (other, None),
        },
    }
}

/// Refuses an upgraded connection: `text` (the door's error message), then
/// the close, within 5 s.
pub async fn refuse<W>(ws: W, text: String, close: Close)
where
    W: Sink<Message> + Unpin,
{
    let mut writer = SocketWriter::new(ws, Duration::from_secs(5));
    if writer.send_text(text).await.is_ok() {
        writer.close(close).await;
    }
}
