//! One live session: a WebSocket message stream in (protocol v1), transcription jobs to the worker pool and JSON messages back out.
//!
//! The reader (this module) owns the decoder and segmenter and turns client
//! messages into jobs; the writer (`writer`) awaits results and sends them in
//! order. Generic over `Sink`/`Stream`, so tests drive it with channels.
//!
//! Early finals: when the segmenter announces a pause (`SegmentEvent::Paused`,
//! 200 ms after the last voiced frame) the reader queues the utterance's
//! audio up to there on the partial lane, where it runs only on a worker
//! nobody else needs. If the utterance then ends with those same bounds, that
//! job *is* its final: taken back and requeued as a final if it is still
//! waiting, awaited if it runs, used if it is done. If speech goes on, the
//! job is dropped (a waiting one is skipped, a running one's result thrown
//! away). Same audio, same model, so the text is the one a final would give.

mod clock;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{Sink, Stream, StreamExt};
use tokio::sync::oneshot::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::admission::SessionPermit;
use crate::codec::{AudioDecoder, OUTPUT_SAMPLE_RATE_HZ};
use crate::config::SessionConfig;
use crate::metrics::{self, JobKind};
use crate::protocol::{ClientMessage, ErrorCode, ListenParams, ServerMessage};
use crate::vad::{SegmentEvent, Segmenter, SegmenterConfig, Utterance};
use crate::worker::{Job, JobQueue, JobResult, WorkerError};
use clock::ArrivalClock;
pub use writer::WriterEnd;
use writer::{Outbound, PendingFinal, PendingPartial, WriterShared, write_loop};

/// What every session shares with the server.
#[derive(Clone)]
pub struct SessionContext {
    pub session: SessionConfig,
    pub vad: SegmenterConfig,
    pub queue: Arc<JobQueue>,
    /// Phase 1 of shutdown: finish the current utterance, then close (1001).
    pub draining: CancellationToken,
    /// Phase 2 of shutdown (drain deadline): close now.
    pub hard_stop: CancellationToken,
}

/// How a session ended, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client sent `end` and got everything.
    Completed,
    /// Closed by the server with this error code.
    Error(ErrorCode),
    /// Closed because the server is shutting down.
    Shutdown,
    /// The client sent a close frame without `end`; the close is answered.
    ClientClosed,
    /// The client vanished without `end` or a close frame.
    ClientGone,
}

fn ms(samples: u64) -> u64 {
    samples * 1000 / OUTPUT_SAMPLE_RATE_HZ as u64
}

/// Runs one session to its end. The permit is held until this returns.
pub async fn run<S>(
    ws: S,
    params: ListenParams,
    permit: SessionPermit,
    ctx: SessionContext,
) -> SessionEnd
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Sink<Message> + Send + Unpin + 'static,
{
    let id: u64 = rand::random();
    let session_id = format!("{id:016x}");
    let span = tracing::info_span!("session", id = %session_id, encoding = ?params.encoding);
    async move {
        let started = Instant::now();
        let end = run_inner(ws, params, id, session_id, &ctx).await;
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

async fn run_inner<S>(
    ws: S,
    params: ListenParams,
    id: u64,
    session_id: String,
    ctx: &SessionContext,
) -> SessionEnd
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Sink<Message> + Send + Unpin + 'static,
{
    let (sink, stream) = ws.split();
    let (out_tx, out_rx) = mpsc::channel(ctx.session.outbound_queue);
    let queued_samples = Arc::new(AtomicUsize::new(0));
    let partial_in_flight = Arc::new(AtomicBool::new(false));
    let writer_done = CancellationToken::new();
    let writer = tokio::spawn(
        write_loop(
            sink,
            out_rx,
            WriterShared {
                queued_samples: queued_samples.clone(),
                partial_in_flight: partial_in_flight.clone(),
                done: writer_done.clone(),
                hard_stop: ctx.hard_stop.clone(),
                send_timeout: Duration::from_secs_f32(ctx.session.send_timeout_s),
            },
        )
        .in_current_span(),
    );
    let mut reader = match Reader::new(id, &params, ctx, out_tx, queued_samples, partial_in_flight)
    {
        Ok(r) => r,
        Err(end) => {
            let _ = writer.await;
            return end;
        }
    };
    let ready = ServerMessage::Ready {
        session_id,
        encoding: params.encoding,
        sample_rate_hz: params.sample_rate_hz,
    };
    tracing::info!("session started");
    let end = if reader.emit(Outbound::Message(ready)).await {
        reader.read(stream, &writer_done).await
    } else {
        SessionEnd::ClientGone
    };
    drop(reader);
    if end == SessionEnd::ClientGone {
        // Nobody will read what the writer holds: dropping it now drops the
        // reply channels of queued finals, so workers skip them, and frees
        // the slot without waiting for a job already running.
        writer.abort();
    }
    match writer.await {
        Ok(WriterEnd::Closed { .. }) => end,
        Ok(WriterEnd::SlowConsumer) => SessionEnd::Error(ErrorCode::SlowConsumer),
        Ok(WriterEnd::ClientGone) | Err(_) => match end {
            SessionEnd::Completed => SessionEnd::ClientGone,
            other => other,
        },
    }
}

struct Reader<'a> {
    id: u64,
    ctx: &'a SessionContext,
    partials: bool,
    decoder: AudioDecoder,
    segmenter: Segmenter,
    out: mpsc::Sender<Outbound>,
    queued_samples: Arc<AtomicUsize>,
    partial_in_flight: Arc<AtomicBool>,
    clock: ArrivalClock,
    samples: Vec<i16>,
    events: Vec<SegmentEvent>,
    bad_run: u32,
    finals: u32,
    /// Open-utterance audio length at the last partial, to skip repeats.
    last_partial_end: u64,
    /// The open utterance's early final, while its pause lasts.
    early: Option<Early>,
}

/// A final started at a pause, before the utterance ended.
struct Early {
    utterance: u32,
    start_sample: u64,
    end_sample: u64,
    result: oneshot::Receiver<JobResult>,
}

impl<'a> Reader<'a> {
    fn new(
        id: u64,
        params: &ListenParams,
        ctx: &'a SessionContext,
        out: mpsc::Sender<Outbound>,
        queued_samples: Arc<AtomicUsize>,
        partial_in_flight: Arc<AtomicBool>,
    ) -> Result<Self, SessionEnd> {
        let fail = |what: String| {
            tracing::error!(error = %what, "cannot set up the audio front end");
            let _ = out.try_send(Outbound::Close {
                error: Some((
                    ErrorCode::Internal,
                    "the server could not start this session".into(),
                )),
                code: ErrorCode::Internal.close_code(),
                reason: ErrorCode::Internal.close_reason(),
            });
            SessionEnd::Error(ErrorCode::Internal)
        };
        let decoder = AudioDecoder::new(params.encoding, params.sample_rate_hz)
            .map_err(|e| fail(e.to_string()))?;
        let segmenter = Segmenter::new(&ctx.vad).map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            id,
            ctx,
            partials: params.partials && ctx.session.partial_interval_ms > 0,
            decoder,
            segmenter,
            out: out.clone(),
            queued_samples,
            partial_in_flight,
            clock: ArrivalClock::default(),
            samples: Vec::with_capacity(8192),
            events: Vec::new(),
            bad_run: 0,
            finals: 0,
            last_partial_end: 0,
            early: None,
        })
    }

    /// Hands an item to the writer; false if the writer is gone.
    async fn emit(&mut self, item: Outbound) -> bool {
        self.out.send(item).await.is_ok()
    }

    async fn read<St>(&mut self, mut stream: St, writer_done: &CancellationToken) -> SessionEnd
    where
        St: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
    {
        let cfg = &self.ctx.session;
        let idle = Duration::from_secs_f32(cfg.idle_timeout_s);
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f32(cfg.max_duration_s);
        let mut idle_deadline = tokio::time::Instant::now() + idle;
        let partial_every = Duration::from_millis(cfg.partial_interval_ms.max(1));
        let mut partial_tick = tokio::time::interval(partial_every);
        partial_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut draining = false;
        loop {
            if draining && !self.segmenter.in_speech() {
                return self.finish(ErrorCode::ShuttingDown).await;
            }
            let message = tokio::select! {
                biased;
                _ = writer_done.cancelled() => return SessionEnd::ClientGone,
                _ = self.ctx.hard_stop.cancelled() => return self.finish(ErrorCode::ShuttingDown).await,
                _ = self.ctx.draining.cancelled(), if !draining => {
                    draining = true;
                    continue;
                }
                _ = sleep_until(deadline) => return self.finish(ErrorCode::MaxDuration).await,
                _ = sleep_until(idle_deadline) => return self.finish(ErrorCode::IdleTimeout).await,
                _ = partial_tick.tick(), if self.partials => {
                    self.submit_partial().await;
                    continue;
                }
                m = stream.next() => m,
            };
            let message = match message {
                None => return SessionEnd::ClientGone,
                Some(Ok(m)) => m,
                Some(Err(e)) => return self.stream_error(e).await,
            };
            match message {
                Message::Binary(bytes) => {
                    if let Some(end) = self.audio(&bytes).await {
                        return end;
                    }
                    // Restarted after the message is handled: time spent
                    // waiting for room in the worker queue (back-pressure)
                    // is the server's, not the client's idleness.
                    idle_deadline = tokio::time::Instant::now() + idle;
                }
                Message::Text(text) => match ClientMessage::parse(text.as_str()) {
                    Ok(ClientMessage::Keepalive) => {
                        idle_deadline = tokio::time::Instant::now() + idle
                    }
                    Ok(ClientMessage::Finalize) => {
                        let open = self.segmenter.finalize();
                        if let Some(end) = self.submit_open(open).await {
                            return end;
                        }
                        idle_deadline = tokio::time::Instant::now() + idle;
                    }
                    Ok(ClientMessage::End) => return self.end().await,
                    Err(message) => {
                        let error = ServerMessage::error(ErrorCode::BadRequest, message);
                        if !self.emit(Outbound::Message(error)).await {
                            return SessionEnd::ClientGone;
                        }
                    }
                },
                Message::Close(_) => {
                    // Answer the close handshake after whatever is due; the
                    // client wants no more transcripts.
                    let close = Outbound::Close {
                        error: None,
                        code: 1000,
                        reason: "closed by client",
                    };
                    return if self.emit(close).await {
                        SessionEnd::ClientClosed
                    } else {
                        SessionEnd::ClientGone
                    };
                }
                // Pings are answered by tungstenite itself.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Decodes one audio message and feeds the segmenter; Some(end) when the
    /// session must stop.
    async fn audio(&mut self, bytes: &[u8]) -> Option<SessionEnd> {
        self.samples.clear();
        match self.decoder.decode(bytes, &mut self.samples) {
            Ok(_) => self.bad_run = 0,
            Err(e) => {
                self.bad_run += 1;
                if self.bad_run >= self.ctx.session.max_bad_packets {
                    let message = format!(
                        "{} undecodable audio messages in a row; last: {e}",
                        self.bad_run
                    );
                    return Some(self.close_with(ErrorCode::BadAudio, message).await);
                }
                let error = ServerMessage::error(
                    ErrorCode::BadAudio,
                    format!("audio message ignored: {e}"),
                );
                return (!self.emit(Outbound::Message(error)).await)
                    .then_some(SessionEnd::ClientGone);
            }
        }
        metrics::audio_received(self.samples.len());
        let samples = std::mem::take(&mut self.samples);
        let mut events = std::mem::take(&mut self.events);
        self.segmenter.push(&samples, &mut events);
        self.clock
            .mark(self.segmenter.samples_seen(), Instant::now());
        self.samples = samples;
        let mut end = None;
        for event in events.drain(..) {
            if end.is_some() {
                break;
            }
            end = self.event(event).await;
        }
        self.events = events;
        // Speech went on after the pause: the early final is stale. Dropping
        // its reply makes the queue skip it, or discards its result.
        if self
            .early
            .as_ref()
            .is_some_and(|e| self.segmenter.pause_end() != Some(e.end_sample))
        {
            self.early = None;
        }
        end
    }

    async fn event(&mut self, event: SegmentEvent) -> Option<SessionEnd> {
        match event {
            SegmentEvent::SpeechStarted {
                utterance,
                start_sample,
            } => {
                self.last_partial_end = 0;
                let m = ServerMessage::SpeechStarted {
                    utterance,
                    start_ms: ms(start_sample),
                };
                (!self.emit(Outbound::Message(m)).await).then_some(SessionEnd::ClientGone)
            }
            SegmentEvent::Paused {
                utterance,
                start_sample,
                end_sample,
            } => {
                self.submit_early(utterance, start_sample, end_sample);
                None
            }
            SegmentEvent::UtteranceEnded(u) => self.submit_final(u).await,
        }
    }

    /// Queues the open utterance up to its pause as an early final, on the
    /// partial lane (replacing a waiting partial: it covers more audio).
    fn submit_early(&mut self, utterance: u32, start_sample: u64, end_sample: u64) {
        self.early = None;
        // Later frames of the same message may have ended the pause already.
        if !self.ctx.session.early_finals || self.segmenter.pause_end() != Some(end_sample) {
            return;
        }
        let mut audio = Vec::new();
        match self.segmenter.open_audio(&mut audio) {
            Some((open, start, end))
                if open == utterance && start == start_sample && end >= end_sample => {}
            _ => return,
        }
        audio.truncate((end_sample - start_sample) as usize);
        let (reply, result) = oneshot::channel();
        let job = Job {
            kind: JobKind::Early,
            session: self.id,
            audio,
            reply,
            enqueued_at: Instant::now(),
            // Never stale by age: the session takes it back or drops it.
            stale_after: Duration::MAX,
        };
        if self.ctx.queue.push_partial(job).is_ok() {
            self.early = Some(Early {
                utterance,
                start_sample,
                end_sample,
                result,
            });
        }
    }

    /// The result of `u`'s final if its early final can stand in for it:
    /// requeued as a final if still waiting, else running or done. `None`
    /// when there is none with these bounds, or it was shed.
    async fn take_early(
        &mut self,
        u: &Utterance,
    ) -> Option<Result<oneshot::Receiver<JobResult>, ()>> {
        let mut early = self.early.take()?;
        if (early.utterance, early.start_sample, early.end_sample)
            != (u.index, u.start_sample, u.end_sample)
        {
            return None;
        }
        if let Some(mut job) = self.ctx.queue.take_partial(self.id) {
            debug_assert_eq!(
                job.audio.len(),
                u.audio.len(),
                "the waiting partial is the early final"
            );
            job.kind = JobKind::Final;
            let pushed = tokio::select! {
                r = self.ctx.queue.push_final(job) => r.is_ok(),
                _ = self.ctx.hard_stop.cancelled() => false,
            };
            return Some(if pushed { Ok(early.result) } else { Err(()) });
        }
        match early.result.try_recv() {
            Err(TryRecvError::Empty) => Some(Ok(early.result)),
            // Shed from the partial lane before it ran, or stopped (only
            // partials are, but never hand on an abort): transcribe again.
            Ok(Err(WorkerError::Aborted)) | Err(TryRecvError::Closed) => None,
            // Done, or failed: the same audio would fail the same way (a
            // panic would take a second worker state down), so it stands.
            Ok(result) => {
                let (reply, done) = oneshot::channel();
                let _ = reply.send(result);
                Some(Ok(done))
            }
        }
    }

    /// Submits the utterance that `finalize`/`flush` closed, if there was one.
    async fn submit_open(&mut self, open: Option<Utterance>) -> Option<SessionEnd> {
        match open {
            Some(u) => self.submit_final(u).await,
            None => None,
        }
    }

    async fn submit_final(&mut self, u: Utterance) -> Option<SessionEnd> {
        let samples = u.audio.len();
        let queued = self.queued_samples.fetch_add(samples, Ordering::SeqCst) + samples;
        let cap = (self.ctx.session.max_queued_audio_s * OUTPUT_SAMPLE_RATE_HZ as f32) as usize;
        if queued > cap {
            let message = format!(
                "more than {} s of audio waiting for transcription; stream in real time",
                self.ctx.session.max_queued_audio_s
            );
            return Some(self.close_with(ErrorCode::AudioOverflow, message).await);
        }
        metrics::utterance_closed();
        let audio_end = self.clock.arrival_of(u.end_sample, Instant::now());
        self.clock.forget_before(u.end_sample);
        let result = match self.take_early(&u).await {
            Some(Ok(result)) => {
                metrics::early_final_used();
                result
            }
            Some(Err(())) => return Some(SessionEnd::Shutdown),
            None => {
                let (reply, result) = oneshot::channel();
                let job = Job {
                    kind: JobKind::Final,
                    session: self.id,
                    audio: u.audio,
                    reply,
                    enqueued_at: Instant::now(),
                    stale_after: Duration::MAX,
                };
                let pushed = tokio::select! {
                    r = self.ctx.queue.push_final(job) => r.is_ok(),
                    _ = self.ctx.hard_stop.cancelled() => false,
                };
                if !pushed {
                    return Some(SessionEnd::Shutdown);
                }
                result
            }
        };
        self.finals += 1;
        let pending = PendingFinal {
            utterance: u.index,
            start_ms: ms(u.start_sample),
            end_ms: ms(u.end_sample),
            audio_end,
            samples,
            result,
        };
        (!self.emit(Outbound::Final(pending)).await).then_some(SessionEnd::ClientGone)
    }

    async fn submit_partial(&mut self) {
        // An early final already covers the utterance up to its pause.
        if self.partial_in_flight.load(Ordering::SeqCst) || self.early.is_some() {
            return;
        }
        let mut audio = Vec::new();
        let Some((utterance, start, end)) = self.segmenter.open_audio(&mut audio) else {
            return;
        };
        // Too little new audio since the last partial to change the text.
        if end < self.last_partial_end + OUTPUT_SAMPLE_RATE_HZ as u64 / 4 || audio.len() < 8000 {
            return;
        }
        self.last_partial_end = end;
        let (reply, result) = oneshot::channel();
        let job = Job {
            kind: JobKind::Partial,
            session: self.id,
            audio,
            reply,
            enqueued_at: Instant::now(),
            stale_after: Duration::from_millis(self.ctx.session.partial_interval_ms.max(250) * 2),
        };
        if self.ctx.queue.push_partial(job).is_ok() {
            self.partial_in_flight.store(true, Ordering::SeqCst);
            let p = PendingPartial {
                utterance,
                start_ms: ms(start),
                end_ms: ms(end),
                result,
            };
            let _ = self.emit(Outbound::Partial(p)).await;
        }
    }

    /// `end` from the client: flush, send the summary, close 1000.
    async fn end(&mut self) -> SessionEnd {
        let open = self.segmenter.flush();
        if let Some(end) = self.submit_open(open).await {
            return end;
        }
        let summary = ServerMessage::End {
            utterances: self.finals,
            audio_ms: ms(self.segmenter.samples_seen()),
        };
        let close = Outbound::Close {
            error: None,
            code: 1000,
            reason: "end of stream",
        };
        if self.emit(Outbound::Message(summary)).await && self.emit(close).await {
            SessionEnd::Completed
        } else {
            SessionEnd::ClientGone
        }
    }

    /// Ends the session for `code` after transcribing the open utterance.
    async fn finish(&mut self, code: ErrorCode) -> SessionEnd {
        if !self.ctx.hard_stop.is_cancelled() {
            let open = self.segmenter.flush();
            if let Some(end) = self.submit_open(open).await {
                return end;
            }
        }
        let message = match code {
            ErrorCode::IdleTimeout => format!(
                "no audio or keepalive for {} s",
                self.ctx.session.idle_timeout_s
            ),
            ErrorCode::MaxDuration => format!(
                "sessions last at most {} s; reconnect to go on",
                self.ctx.session.max_duration_s
            ),
            ErrorCode::ShuttingDown => "the server is shutting down; reconnect shortly".to_string(),
            other => other.close_reason().to_string(),
        };
        let end = self.close_with(code, message).await;
        if code == ErrorCode::ShuttingDown {
            SessionEnd::Shutdown
        } else {
            end
        }
    }

    async fn close_with(&mut self, code: ErrorCode, message: String) -> SessionEnd {
        let close = Outbound::Close {
            error: Some((code, message)),
            code: code.close_code(),
            reason: code.close_reason(),
        };
        if self.emit(close).await {
            SessionEnd::Error(code)
        } else {
            SessionEnd::ClientGone
        }
    }

    async fn stream_error(&mut self, e: tungstenite::Error) -> SessionEnd {
        use tungstenite::Error as E;
        match e {
            E::Capacity(detail) => {
                let message = format!(
                    "message too large ({detail}); the limit is {} bytes",
                    self.ctx.session.max_message_bytes
                );
                self.close_with(ErrorCode::MessageTooLarge, message).await
            }
            E::Utf8(_) => {
                let message = "text message is not valid UTF-8".to_string();
                let close = Outbound::Close {
                    error: Some((ErrorCode::BadRequest, message)),
                    code: 1007,
                    reason: "invalid UTF-8",
                };
                if self.emit(close).await {
                    SessionEnd::Error(ErrorCode::BadRequest)
                } else {
                    SessionEnd::ClientGone
                }
            }
            E::Protocol(p) => {
                tracing::info!(error = %p, "WebSocket protocol error");
                let close = Outbound::Close {
                    error: None,
                    code: 1002,
                    reason: "protocol error",
                };
                let _ = self.emit(close).await;
                SessionEnd::Error(ErrorCode::BadRequest)
            }
            other => {
                tracing::debug!(error = %other, "connection lost");
                SessionEnd::ClientGone
            }
        }
    }
}
