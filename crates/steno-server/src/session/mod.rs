//! One live session, whatever its door: client input (audio, control, close) in, the pipeline driven, its events out through the outbox; timers, limits and shutdown enforced here.
//!
//! A door (the WebSocket v1 transport, the OpenAI Realtime one) turns its
//! client's messages into [`Input`]s and its writer reads the [`Outbox`].
//! The session owns the decoder the door chose, the [`Pipeline`], the idle
//! and maximum-duration timers, the partial ticker and the two phases of
//! shutdown: on `draining` it finishes the utterance in progress, then
//! closes (1001); on `hard_stop` it closes now.

mod config;
pub mod registry;

#[cfg(test)]
mod tests;

use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use steno_audio::codec::AudioDecoder;
use steno_audio::vad::{Segmenter, SegmenterConfig, VadError};
use steno_protocol::{ClientMessage, Close, ErrorCode};
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

pub use config::SessionConfig;
use registry::{SessionEntry, SessionRegistry};

use crate::pipeline::{Event, Outbox, Pipeline, PipelineContext, Stop};
use crate::worker::{JobQueue, LiveGuard};

/// What every session shares with the server.
#[derive(Clone)]
pub struct SessionContext {
    pub session: SessionConfig,
    pub vad: SegmenterConfig,
    pub queue: std::sync::Arc<JobQueue>,
    /// Live sessions, for listings and the drain's log.
    pub registry: SessionRegistry,
    /// Phase 1 of shutdown: finish the current utterance, then close (1001).
    pub draining: CancellationToken,
    /// Phase 2 of shutdown (drain deadline): close now.
    pub hard_stop: CancellationToken,
}

impl SessionContext {
    fn pipeline(&self) -> PipelineContext {
        PipelineContext {
            queue: self.queue.clone(),
            hard_stop: self.hard_stop.clone(),
            early_finals: self.session.early_finals,
            max_queued_audio_s: self.session.max_queued_audio_s,
            partial_interval_ms: self.session.partial_interval_ms,
            outbound_queue: self.session.outbound_queue,
        }
    }
}

/// What a door hands the session, in the order its client sent it.
#[derive(Debug)]
pub enum Input {
    /// One binary message of audio in the session's encoding.
    Audio(Bytes),
    Control(ClientMessage),
    /// A message the door could not take; the client is told, the session
    /// goes on.
    Rejected(ErrorCode, String),
    /// New settings from the client, before any audio (the Realtime
    /// door's `session.update`); `reply` is sent once they apply.
    Configure(Box<Configure>),
    /// Drop the audio of the open utterance (the Realtime door's
    /// `input_audio_buffer.clear`).
    Discard,
    /// A message of the door's own for its client (an answer only that
    /// door gives), sent in order with the session's events.
    Reply(String),
    /// The client sent a close frame: answer it, send nothing more.
    ClientClosed,
    /// The client's stream broke in a way the door names: tell the client
    /// (if `message`), close this way.
    Broken {
        close: Close,
        message: Option<(ErrorCode, String)>,
    },
}

/// What a door's client changed; `None` leaves a setting as it is.
pub struct Configure {
    /// Decodes the client's audio from now on.
    pub decoder: Option<AudioDecoder>,
    /// Cuts utterances from now on; only before any audio.
    pub segmenter: Option<Segmenter>,
    /// Finals carry word times.
    pub words: Option<bool>,
    /// The door's answer, sent in order once the change applies.
    pub reply: String,
}

impl std::fmt::Debug for Configure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Configure")
            .field("decoder", &self.decoder.is_some())
            .field("segmenter", &self.segmenter.is_some())
            .field("words", &self.words)
            .finish_non_exhaustive()
    }
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

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot make the segmenter: {0}")]
    Vad(#[from] VadError),
}

/// A session before it runs: built by a door, which then starts its writer
/// on the outbox and calls [`Session::run`].
pub struct Session {
    ctx: SessionContext,
    decoder: AudioDecoder,
    pipeline: Pipeline,
    partials: bool,
    /// Scratch for decoded samples, kept to avoid an allocation per message.
    samples: Vec<i16>,
    /// Undecodable audio messages in a row.
    bad_run: u32,
    /// This session's line in the registry; removed when the session drops.
    entry: SessionEntry,
    /// Counts this session as live for the batch lane's start rule.
    _live: LiveGuard,
    /// `session.max_duration_s` after the start, over all its connections.
    deadline: tokio::time::Instant,
}

impl Session {
    /// A session for a client of `door` whose audio `decoder` decodes.
    pub fn open(
        door: &'static str,
        decoder: AudioDecoder,
        partials: bool,
        ctx: &SessionContext,
    ) -> Result<(Self, Outbox), SessionError> {
        let segmenter = Segmenter::new(&ctx.vad)?;
        Ok(Self::with_segmenter(
            door, decoder, segmenter, partials, ctx,
        ))
    }

    /// Like [`Session::open`] with a segmenter of the caller's (unit tests
    /// script speech with a loudness classifier).
    pub fn with_segmenter(
        door: &'static str,
        decoder: AudioDecoder,
        segmenter: Segmenter,
        partials: bool,
        ctx: &SessionContext,
    ) -> (Self, Outbox) {
        let entry = ctx.registry.register(door);
        let (pipeline, outbox) = Pipeline::new(entry.id(), segmenter, ctx.pipeline());
        let session = Self {
            ctx: ctx.clone(),
            decoder,
            pipeline,
            partials: partials && ctx.session.partial_interval_ms > 0,
            samples: Vec::with_capacity(8192),
            bad_run: 0,
            entry,
            _live: ctx.queue.live_session(),
            deadline: tokio::time::Instant::now()
                + Duration::from_secs_f32(ctx.session.max_duration_s),
        };
        (session, outbox)
    }

    /// Finals carry word times from now on.
    pub fn want_words(&mut self, words: bool) {
        self.pipeline.want_words(words);
    }

    /// The id the registry and the logs know this session by.
    pub fn id(&self) -> u64 {
        self.entry.id()
    }

    /// Audio received so far, in ms (what a resumed client sends on from).
    pub fn audio_ms(&self) -> u64 {
        self.pipeline.audio_ms()
    }

    /// Runs until the session ends, or its connection does. `writer_done`
    /// is cancelled by the door when its writer stops (the client is gone
    /// or too slow). After [`SessionEnd::ClientGone`] a door may run the
    /// session again on a new connection (a resume): it goes on where it
    /// was.
    pub async fn run<I>(&mut self, mut input: I, writer_done: CancellationToken) -> SessionEnd
    where
        I: Stream<Item = Input> + Unpin,
    {
        let cfg = self.ctx.session.clone();
        let idle = Duration::from_secs_f32(cfg.idle_timeout_s);
        let deadline = self.deadline;
        let mut idle_deadline = tokio::time::Instant::now() + idle;
        let partial_every = Duration::from_millis(cfg.partial_interval_ms.max(1));
        let mut partial_tick = tokio::time::interval(partial_every);
        partial_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut draining = false;
        loop {
            if draining && !self.pipeline.in_speech() {
                return self.finish(ErrorCode::ShuttingDown).await;
            }
            let next = tokio::select! {
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
                    if let Err(stop) = self.pipeline.partial().await {
                        return self.stopped(stop).await;
                    }
                    continue;
                }
                next = input.next() => next,
            };
            let outcome = match next {
                None => return SessionEnd::ClientGone,
                Some(Input::Audio(bytes)) => self.audio(&bytes).await,
                Some(Input::Control(ClientMessage::Keepalive)) => Ok(()),
                Some(Input::Control(ClientMessage::Finalize)) => self.pipeline.finalize().await,
                Some(Input::Control(ClientMessage::End)) => return self.end().await,
                Some(Input::Configure(change)) => self.configure(*change).await,
                Some(Input::Discard) => self.pipeline.discard().await,
                Some(Input::Reply(text)) => self.pipeline.say(Event::Reply(text)).await,
                Some(Input::Rejected(code, message)) => {
                    self.pipeline.say(Event::Error { code, message }).await
                }
                Some(Input::ClientClosed) => {
                    // The close is answered after whatever is due; the
                    // client wants no more transcripts.
                    return match self.pipeline.say(Event::Close(Close::ClientClosed)).await {
                        Ok(()) => SessionEnd::ClientClosed,
                        Err(_) => SessionEnd::ClientGone,
                    };
                }
                Some(Input::Broken { close, message }) => return self.broken(close, message).await,
            };
            if let Err(stop) = outcome {
                return self.stopped(stop).await;
            }
            // Restarted after the input is handled: time spent waiting for
            // room in the worker queue (back-pressure) is the server's, not
            // the client's idleness.
            idle_deadline = tokio::time::Instant::now() + idle;
        }
    }

    /// Applies a client's new settings, then sends the door's reply. A
    /// segmenter after audio is refused (its positions would not match).
    async fn configure(&mut self, change: Configure) -> Result<(), Stop> {
        if change.segmenter.is_some() && self.pipeline.audio_ms() > 0 {
            return self
                .pipeline
                .say(Event::Error {
                    code: ErrorCode::BadRequest,
                    message: "turn detection cannot change once audio has been sent".to_string(),
                })
                .await;
        }
        if let Some(decoder) = change.decoder {
            self.decoder = decoder;
        }
        if let Some(segmenter) = change.segmenter {
            self.pipeline.replace_segmenter(segmenter);
        }
        if let Some(words) = change.words {
            self.pipeline.want_words(words);
        }
        self.pipeline.say(Event::Reply(change.reply)).await
    }

    /// Decodes one audio message and feeds the pipeline.
    async fn audio(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        self.samples.clear();
        let decoded = self.decoder.decode(bytes, &mut self.samples);
        // A container stream's message can hold good packets beside the
        // bad one: what decoded goes on (a packet codec appends nothing on
        // error).
        if !self.samples.is_empty() {
            self.push_samples().await?;
        }
        match decoded {
            Ok(_) => {
                self.bad_run = 0;
                Ok(())
            }
            Err(e) => {
                self.bad_run += 1;
                if self.bad_run >= self.ctx.session.max_bad_packets {
                    return Err(Stop::Error(
                        ErrorCode::BadAudio,
                        format!(
                            "{} undecodable audio messages in a row; last: {e}",
                            self.bad_run
                        ),
                    ));
                }
                self.pipeline
                    .say(Event::Error {
                        code: ErrorCode::BadAudio,
                        message: format!("audio skipped: {e}"),
                    })
                    .await
            }
        }
    }

    /// Feeds the decoded samples to the pipeline.
    async fn push_samples(&mut self) -> Result<(), Stop> {
        let samples = std::mem::take(&mut self.samples);
        let outcome = self.pipeline.push(&samples).await;
        self.samples = samples;
        self.entry
            .update(self.pipeline.audio_ms(), self.pipeline.utterances());
        outcome
    }

    /// `end` from the client: flush, send the summary, close 1000.
    async fn end(&mut self) -> SessionEnd {
        if let Err(stop) = self.pipeline.flush().await {
            return self.stopped(stop).await;
        }
        let summary = Event::End {
            utterances: self.pipeline.utterances(),
            audio_ms: self.pipeline.audio_ms(),
        };
        match self.pipeline.say(summary).await {
            Ok(()) => {}
            Err(_) => return SessionEnd::ClientGone,
        }
        match self.pipeline.say(Event::Close(Close::EndOfStream)).await {
            Ok(()) => SessionEnd::Completed,
            Err(_) => SessionEnd::ClientGone,
        }
    }

    /// Ends the session for `code` after transcribing the open utterance.
    async fn finish(&mut self, code: ErrorCode) -> SessionEnd {
        if !self.ctx.hard_stop.is_cancelled()
            && let Err(stop) = self.pipeline.flush().await
        {
            return self.stopped(stop).await;
        }
        let cfg = &self.ctx.session;
        let message = match code {
            ErrorCode::IdleTimeout => format!("no audio or keepalive for {} s", cfg.idle_timeout_s),
            ErrorCode::MaxDuration => format!(
                "sessions last at most {} s; reconnect to go on",
                cfg.max_duration_s
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

    /// The pipeline cannot go on.
    async fn stopped(&mut self, stop: Stop) -> SessionEnd {
        match stop {
            Stop::Error(code, message) => self.close_with(code, message).await,
            Stop::Shutdown => SessionEnd::Shutdown,
            Stop::Gone => SessionEnd::ClientGone,
        }
    }

    async fn broken(&mut self, close: Close, message: Option<(ErrorCode, String)>) -> SessionEnd {
        let code = match (close, &message) {
            (Close::Error(code), _) => code,
            (_, Some((code, _))) => *code,
            _ => ErrorCode::BadRequest,
        };
        if let Some((code, message)) = message
            && self
                .pipeline
                .say(Event::Error { code, message })
                .await
                .is_err()
        {
            return SessionEnd::ClientGone;
        }
        match self.pipeline.say(Event::Close(close)).await {
            // A protocol violation gets no answer worth waiting for; the
            // session ended with bad_request either way.
            Ok(()) => SessionEnd::Error(code),
            Err(_) if close == Close::ProtocolError => SessionEnd::Error(code),
            Err(_) => SessionEnd::ClientGone,
        }
    }

    async fn close_with(&mut self, code: ErrorCode, message: String) -> SessionEnd {
        let told = self.pipeline.say(Event::Error { code, message }).await;
        let closed = self.pipeline.say(Event::Close(Close::Error(code))).await;
        if told.is_ok() && closed.is_ok() {
            SessionEnd::Error(code)
        } else {
            SessionEnd::ClientGone
        }
    }
}
