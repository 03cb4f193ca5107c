//! The pipeline's output: pending items (events, finals and partials still being transcribed) in, [`Event`]s out in the order a client must see them.
//!
//! Finals are awaited and handed on in utterance order; a partial is handed
//! on only if its utterance has no final yet, and only while nothing else
//! is due (it never holds up a final). A final that failed, or that the
//! stopping pool never ran, becomes an error and a close. At the drain
//! deadline (`hard_stop`) the outbox stops waiting and closes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use steno_protocol::{Close, ErrorCode};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::metrics;
use crate::worker::{JobResult, Word};

/// What a session's client is told, whatever the transport.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Speech is confirmed (`start_ms` includes the pre-roll).
    SpeechStarted { utterance: u32, start_ms: u64 },
    /// A provisional transcript of the open utterance.
    Partial {
        utterance: u32,
        text: String,
        start_ms: u64,
        end_ms: u64,
    },
    /// An utterance's transcript; exactly one per utterance, in order.
    Final {
        utterance: u32,
        text: String,
        start_ms: u64,
        end_ms: u64,
        processing_ms: u64,
        /// Each word with its times in session audio, when asked for.
        words: Vec<Word>,
        /// Decoded with the smaller window because it waited (see
        /// `worker::Degrade`).
        degraded: bool,
    },
    /// The utterance is closed and queued for its final (`end_ms`: where
    /// its audio stops). Its `Final` follows.
    SpeechEnded { utterance: u32, end_ms: u64 },
    /// The client's buffered audio was dropped at its request, with the
    /// open utterance if there was one (no final follows for it).
    Discarded { utterance: Option<u32> },
    /// The client's `end` has been served.
    End { utterances: u32, audio_ms: u64 },
    /// A message of the door's own (an answer to a request only that door
    /// has), sent as it is, in order with the rest.
    Reply(String),
    /// Something went wrong; `Close` follows if the session ends.
    Error { code: ErrorCode, message: String },
    /// The last event: close the transport this way.
    Close(Close),
}

/// What the pipeline hands its outbox, in order.
pub(super) enum Item {
    Event(Event),
    Final(PendingFinal),
    Partial(PendingPartial),
}

pub(super) struct PendingFinal {
    pub utterance: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    /// When the utterance's last sample reached the server.
    pub audio_end: Instant,
    /// Samples this final holds in the session's queued-audio budget.
    pub samples: usize,
    pub result: oneshot::Receiver<JobResult>,
}

pub(super) struct PendingPartial {
    pub utterance: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    pub result: oneshot::Receiver<JobResult>,
}

/// The ordered event stream of one pipeline; a door's writer reads it.
pub struct Outbox {
    items: mpsc::Receiver<Item>,
    shared: Arc<Shared>,
    hard_stop: CancellationToken,
    last_final: Option<u32>,
    /// The final being awaited: kept here, so that `next` is cancel-safe.
    waiting: Option<PendingFinal>,
    partial: Option<PendingPartial>,
    /// Events decided but not yet handed on (an error before its close).
    ready: std::collections::VecDeque<Event>,
    /// A close was handed on: nothing follows.
    done: bool,
}

impl Outbox {
    pub(super) fn new(
        items: mpsc::Receiver<Item>,
        shared: Arc<Shared>,
        hard_stop: CancellationToken,
    ) -> Self {
        Self {
            items,
            shared,
            hard_stop,
            last_final: None,
            waiting: None,
            partial: None,
            ready: Default::default(),
            done: false,
        }
    }

    /// The next event; `None` when the pipeline ended without a close (its
    /// session is gone) or after the close. Cancel-safe: a call dropped
    /// while it waits loses nothing.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                self.done = matches!(event, Event::Close(_));
                return Some(event);
            }
            if self.done {
                return None;
            }
            if let Some(f) = self.waiting.as_mut() {
                let outcome = tokio::select! {
                    biased;
                    r = &mut f.result => r,
                    _ = self.hard_stop.cancelled() => {
                        return self.close(Close::Error(ErrorCode::ShuttingDown));
                    }
                };
                let f = self.waiting.take().expect("awaited just now");
                if let Some(event) = self.resolve_final(f, outcome) {
                    return Some(event);
                }
                continue;
            }
            let item = tokio::select! {
                biased;
                _ = self.hard_stop.cancelled() => {
                    return self.close(Close::Error(ErrorCode::ShuttingDown));
                }
                item = self.items.recv() => item,
                result = async { (&mut self.partial.as_mut().expect("guarded by the if").result).await }, if self.partial.is_some() => {
                    let p = self.partial.take().expect("guarded by the if");
                    self.shared.partial_in_flight.store(false, Ordering::SeqCst);
                    if let Ok(Ok(t)) = result {
                        let due = self.last_final.is_none_or(|f| p.utterance > f);
                        if due && !t.text.is_empty() {
                            metrics::partial_sent();
                            return Some(Event::Partial { utterance: p.utterance, text: t.text, start_ms: p.start_ms, end_ms: p.end_ms });
                        }
                    }
                    continue;
                }
            };
            match item? {
                Item::Event(event) => {
                    if let Event::Error { code, .. } = &event {
                        metrics::error_sent(*code);
                    }
                    self.ready.push_back(event);
                }
                Item::Partial(p) => self.partial = Some(p),
                Item::Final(f) => self.waiting = Some(f),
            }
        }
    }

    /// A final's result as its event; None when an error and a close were
    /// queued instead.
    fn resolve_final(
        &mut self,
        f: PendingFinal,
        outcome: Result<JobResult, oneshot::error::RecvError>,
    ) -> Option<Event> {
        let utterance = f.utterance;
        self.shared
            .queued_samples
            .fetch_sub(f.samples, Ordering::SeqCst);
        if self
            .partial
            .as_ref()
            .is_some_and(|p| p.utterance <= utterance)
        {
            self.partial = None;
            self.shared.partial_in_flight.store(false, Ordering::SeqCst);
        }
        self.last_final = Some(utterance);
        let (code, message) = match outcome {
            Ok(Ok(t)) => {
                metrics::final_latency(f.audio_end.elapsed().as_secs_f64());
                // Word times are relative to the utterance's audio.
                let words = t
                    .segments
                    .into_iter()
                    .flat_map(|s| s.words)
                    .map(|w| Word {
                        start_ms: w.start_ms + f.start_ms,
                        end_ms: w.end_ms + f.start_ms,
                        ..w
                    })
                    .collect();
                return Some(Event::Final {
                    utterance,
                    text: t.text,
                    start_ms: f.start_ms,
                    end_ms: f.end_ms,
                    processing_ms: t.inference.as_millis() as u64,
                    words,
                    degraded: t.degraded,
                });
            }
            Ok(Err(e)) => {
                tracing::error!(utterance, error = %e, "final transcription failed");
                (
                    ErrorCode::Internal,
                    "transcription failed for this session; please reconnect",
                )
            }
            // The worker pool stopped before this job ran.
            Err(_) => (
                ErrorCode::ShuttingDown,
                "the server stopped before this utterance was transcribed",
            ),
        };
        metrics::error_sent(code);
        self.ready.push_back(Event::Error {
            code,
            message: message.to_string(),
        });
        self.ready.push_back(Event::Close(Close::Error(code)));
        None
    }

    fn close(&mut self, close: Close) -> Option<Event> {
        self.done = true;
        Some(Event::Close(close))
    }
}
