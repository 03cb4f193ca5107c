//! The session's writer task: outbound items (messages, pending finals and partials) in, WebSocket frames to the client out.
//!
//! Finals are awaited and sent in utterance order; a partial is sent only if
//! its utterance has no final yet. A client that does not take a frame
//! within `send_timeout` is dropped (`slow_consumer`), which bounds the memory
//! a non-reading client can hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{Sink, SinkExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use crate::metrics;
use crate::protocol::{ErrorCode, ServerMessage};
use crate::worker::JobResult;

/// What the reader hands the writer, in order.
pub enum Outbound {
    Message(ServerMessage),
    Final(PendingFinal),
    Partial(PendingPartial),
    /// Send an error (if any) after everything before it, then close.
    Close {
        error: Option<(ErrorCode, String)>,
        code: u16,
        reason: &'static str,
    },
}

pub struct PendingFinal {
    pub utterance: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    /// When the utterance's last sample reached the server.
    pub audio_end: Instant,
    /// Samples this final holds in the session's queued-audio budget.
    pub samples: usize,
    pub result: oneshot::Receiver<JobResult>,
}

pub struct PendingPartial {
    pub utterance: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    pub result: oneshot::Receiver<JobResult>,
}

/// What the writer shares with its reader.
pub struct WriterShared {
    /// Samples of utterance audio submitted but not yet transcribed.
    pub queued_samples: Arc<AtomicUsize>,
    /// Set by the reader when it submits a partial, cleared here when the
    /// result is in: a session never replaces a partial that is running.
    pub partial_in_flight: Arc<AtomicBool>,
    /// Cancelled when the writer stops, so the reader stops too.
    pub done: CancellationToken,
    /// Cancelled at the drain deadline: stop waiting for finals and close now.
    pub hard_stop: CancellationToken,
    pub send_timeout: Duration,
}

/// How the writer ended.
#[derive(Debug, PartialEq, Eq)]
pub enum WriterEnd {
    Closed { code: u16 },
    ClientGone,
    SlowConsumer,
}

pub async fn write_loop<S>(
    mut sink: S,
    mut items: mpsc::Receiver<Outbound>,
    shared: WriterShared,
) -> WriterEnd
where
    S: Sink<Message> + Unpin,
{
    let end = write_items(&mut sink, &mut items, &shared).await;
    shared.done.cancel();
    end
}

async fn write_items<S>(
    sink: &mut S,
    items: &mut mpsc::Receiver<Outbound>,
    shared: &WriterShared,
) -> WriterEnd
where
    S: Sink<Message> + Unpin,
{
    let mut last_final: Option<u32> = None;
    let mut partial: Option<PendingPartial> = None;
    loop {
        let item = tokio::select! {
            biased;
            _ = shared.hard_stop.cancelled() => {
                return close(sink, shared, None, ErrorCode::ShuttingDown.close_code(), ErrorCode::ShuttingDown.close_reason()).await;
            }
            item = items.recv() => item,
            result = async { (&mut partial.as_mut().expect("guarded by the if").result).await }, if partial.is_some() => {
                let p = partial.take().expect("guarded by the if");
                shared.partial_in_flight.store(false, Ordering::SeqCst);
                if let Ok(Ok(t)) = result {
                    let due = last_final.is_none_or(|f| p.utterance > f);
                    if due && !t.text.is_empty() {
                        let m = ServerMessage::Partial { utterance: p.utterance, text: t.text, start_ms: p.start_ms, end_ms: p.end_ms };
                        if let Err(end) = send(sink, shared, &m).await {
                            return end;
                        }
                        metrics::partial_sent();
                    }
                }
                continue;
            }
        };
        let Some(item) = item else {
            // The reader ended without a close: the client is gone.
            return WriterEnd::ClientGone;
        };
        match item {
            Outbound::Message(m) => {
                if let Err(end) = send(sink, shared, &m).await {
                    return end;
                }
            }
            Outbound::Partial(p) => partial = Some(p),
            Outbound::Final(f) => {
                let utterance = f.utterance;
                let outcome = tokio::select! {
                    biased;
                    r = f.result => r,
                    _ = shared.hard_stop.cancelled() => {
                        return close(sink, shared, None, ErrorCode::ShuttingDown.close_code(), ErrorCode::ShuttingDown.close_reason()).await;
                    }
                };
                shared.queued_samples.fetch_sub(f.samples, Ordering::SeqCst);
                if partial.as_ref().is_some_and(|p| p.utterance <= utterance) {
                    partial = None;
                    shared.partial_in_flight.store(false, Ordering::SeqCst);
                }
                last_final = Some(utterance);
                match outcome {
                    Ok(Ok(t)) => {
                        let m = ServerMessage::Final {
                            utterance,
                            text: t.text,
                            start_ms: f.start_ms,
                            end_ms: f.end_ms,
                            processing_ms: t.inference.as_millis() as u64,
                        };
                        if let Err(end) = send(sink, shared, &m).await {
                            return end;
                        }
                        metrics::final_latency(f.audio_end.elapsed().as_secs_f64());
                    }
                    Ok(Err(e)) => {
                        tracing::error!(utterance, error = %e, "final transcription failed");
                        let code = ErrorCode::Internal;
                        let msg =
                            "transcription failed for this session; please reconnect".to_string();
                        return close(
                            sink,
                            shared,
                            Some((code, msg)),
                            code.close_code(),
                            code.close_reason(),
                        )
                        .await;
                    }
                    Err(_) => {
                        // The worker pool stopped before this job ran.
                        let code = ErrorCode::ShuttingDown;
                        let msg =
                            "the server stopped before this utterance was transcribed".to_string();
                        return close(
                            sink,
                            shared,
                            Some((code, msg)),
                            code.close_code(),
                            code.close_reason(),
                        )
                        .await;
                    }
                }
            }
            Outbound::Close {
                error,
                code,
                reason,
            } => {
                return close(sink, shared, error, code, reason).await;
            }
        }
    }
}

async fn send<S>(sink: &mut S, shared: &WriterShared, m: &ServerMessage) -> Result<(), WriterEnd>
where
    S: Sink<Message> + Unpin,
{
    if let ServerMessage::Error { code, .. } = m {
        metrics::error_sent(*code);
    }
    match tokio::time::timeout(shared.send_timeout, sink.send(Message::text(m.to_json()))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(WriterEnd::ClientGone),
        Err(_) => {
            metrics::error_sent(ErrorCode::SlowConsumer);
            tracing::info!("client stopped reading; closing the session");
            Err(WriterEnd::SlowConsumer)
        }
    }
}

async fn close<S>(
    sink: &mut S,
    shared: &WriterShared,
    error: Option<(ErrorCode, String)>,
    code: u16,
    reason: &'static str,
) -> WriterEnd
where
    S: Sink<Message> + Unpin,
{
    if let Some((code, message)) = error {
        let m = ServerMessage::error(code, message);
        if let Err(end) = send(sink, shared, &m).await {
            return end;
        }
    }
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    match tokio::time::timeout(shared.send_timeout, async {
        // After a client's close frame tungstenite has queued its own reply
        // and refuses ours; the flush still sends the reply.
        let _ = sink.send(Message::Close(Some(frame))).await;
        sink.flush().await
    })
    .await
    {
        Ok(Ok(())) => WriterEnd::Closed { code },
        Ok(Err(_)) => WriterEnd::ClientGone,
        Err(_) => WriterEnd::SlowConsumer,
    }
}
