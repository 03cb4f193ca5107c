//! The audio pipeline: 16 kHz samples and control requests in, jobs on the worker lanes, and transcript [`Event`]s out through an [`Outbox`], in order.
//!
//! One [`Pipeline`] per session owns the segmenter, the early-final
//! bookkeeping and the arrival clock, and submits jobs; its [`Outbox`]
//! awaits their results and hands events on in utterance order. Neither
//! knows which transport serves the session: a door turns its messages into
//! calls here and the outbox's events into its own messages.
//!
//! ```text
//! door --samples/finalize/flush/partial--> Pipeline --jobs--> worker lanes
//!   ^                                         | (bounded: pending items)
//!   +-------------- Event <------------------ Outbox <-- job results
//! ```
//!
//! The pending-items channel is bounded (`session.outbound_queue`): a door
//! whose client does not read fills it, and then the pipeline waits, so the
//! session stops reading its client too. Finals are never dropped; partials
//! are best-effort.
//!
//! Early finals: when the segmenter announces a pause (`SegmentEvent::Paused`,
//! 200 ms after the last voiced frame) the pipeline queues the utterance's
//! audio up to there on the early lane. If the utterance then ends with those
//! same bounds, that job *is* its final: taken back and requeued as a final
//! if it is still waiting, awaited if it runs, used if it is done. If speech
//! goes on, the job is dropped (a waiting one is skipped, a running one's
//! result thrown away). Same audio, same model, so the text is the one a
//! final would give (see `early`).

mod clock;
mod early;
mod outbox;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use steno_audio::OUTPUT_SAMPLE_RATE_HZ;
use steno_audio::vad::{SegmentEvent, Segmenter, Utterance};
use steno_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::metrics;
use crate::worker::{DecodeOptions, Job, JobKind, JobQueue, JobResult};
use clock::ArrivalClock;
use early::Early;
pub use outbox::{Event, Outbox};
use outbox::{Item, PendingFinal, PendingPartial};

/// What a pipeline needs from the server.
#[derive(Clone)]
pub struct PipelineContext {
    pub queue: Arc<JobQueue>,
    /// Phase 2 of shutdown: stop waiting for room or results.
    pub hard_stop: CancellationToken,
    /// Start finals at the pause (`session.early_finals`).
    pub early_finals: bool,
    /// Most utterance audio a session may have waiting (`session.max_queued_audio_s`).
    pub max_queued_audio_s: f32,
    /// How often partials are asked for; a partial older than twice this is stale.
    pub partial_interval_ms: u64,
    /// Pending items between the pipeline and its outbox.
    pub outbound_queue: usize,
}

/// Why the pipeline cannot go on; the session ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Close the session with this error and message.
    Error(ErrorCode, String),
    /// The server is stopping now (the drain deadline passed, or the pool closed).
    Shutdown,
    /// The outbox is gone: nobody reads the events.
    Gone,
}

/// What the pipeline and its outbox share.
#[derive(Default)]
struct Shared {
    /// Samples of utterance audio submitted but not yet transcribed.
    queued_samples: AtomicUsize,
    /// Set when a partial is submitted, cleared when its result is in: a
    /// session never replaces a partial that is running.
    partial_in_flight: AtomicBool,
}

fn ms(samples: u64) -> u64 {
    samples * 1000 / OUTPUT_SAMPLE_RATE_HZ as u64
}

/// One session's pipeline.
pub struct Pipeline {
    /// The session's id: its jobs are tagged with it.
    id: u64,
    ctx: PipelineContext,
    segmenter: Segmenter,
    out: mpsc::Sender<Item>,
    shared: Arc<Shared>,
    clock: ArrivalClock,
    /// Scratch for the segmenter's events, kept to avoid an allocation per call.
    events: Vec<SegmentEvent>,
    /// Finals submitted so far.
    finals: u32,
    /// Open-utterance audio length at the last partial, to skip repeats.
    last_partial_end: u64,
    /// The open utterance's early final, while its pause lasts.
    early: Option<Early>,
    /// What finals ask of the decoder (word times, when the client wants them).
    decode: DecodeOptions,
}

impl Pipeline {
    /// A pipeline for session `id` and the outbox its door reads.
    pub fn new(id: u64, segmenter: Segmenter, ctx: PipelineContext) -> (Self, Outbox) {
        let (out, items) = mpsc::channel(ctx.outbound_queue);
        let shared = Arc::new(Shared::default());
        let outbox = Outbox::new(items, shared.clone(), ctx.hard_stop.clone());
        let pipeline = Self {
            id,
            ctx,
            segmenter,
            out,
            shared,
            clock: ArrivalClock::default(),
            events: Vec::new(),
            finals: 0,
            last_partial_end: 0,
            early: None,
            decode: DecodeOptions::default(),
        };
        (pipeline, outbox)
    }

    /// Finals (and early finals) carry word times from now on.
    pub fn want_words(&mut self, words: bool) {
        self.decode.words = words;
    }

    /// Hands `event` to the outbox after everything before it.
    pub async fn say(&mut self, event: Event) -> Result<(), Stop> {
        self.send(Item::Event(event)).await
    }

    async fn send(&mut self, item: Item) -> Result<(), Stop> {
        self.out.send(item).await.map_err(|_| Stop::Gone)
    }

    /// Feeds decoded 16 kHz samples that arrived now.
    pub async fn push(&mut self, samples: &[i16]) -> Result<(), Stop> {
        metrics::audio_received(samples.len());
        let mut events = std::mem::take(&mut self.events);
        self.segmenter.push(samples, &mut events);
        self.clock
            .mark(self.segmenter.samples_seen(), Instant::now());
        let mut outcome = Ok(());
        for event in events.drain(..) {
            if outcome.is_err() {
                break;
            }
            outcome = self.event(event).await;
        }
        self.events = events;
        self.drop_stale_early();
        outcome
    }

    async fn event(&mut self, event: SegmentEvent) -> Result<(), Stop> {
        match event {
            SegmentEvent::SpeechStarted {
                utterance,
                start_sample,
            } => {
                self.last_partial_end = 0;
                self.say(Event::SpeechStarted {
                    utterance,
                    start_ms: ms(start_sample),
                })
                .await
            }
            SegmentEvent::Paused {
                utterance,
                start_sample,
                end_sample,
            } => {
                self.submit_early(utterance, start_sample, end_sample);
                Ok(())
            }
            SegmentEvent::UtteranceEnded(u) => self.submit_final(u).await,
        }
    }

    /// Closes the open utterance now (the client asked) and submits it.
    pub async fn finalize(&mut self) -> Result<(), Stop> {
        match self.segmenter.finalize() {
            Some(u) => self.submit_final(u).await,
            None => Ok(()),
        }
    }

    /// Closes everything at the end of the stream and submits what was open.
    pub async fn flush(&mut self) -> Result<(), Stop> {
        match self.segmenter.flush() {
            Some(u) => self.submit_final(u).await,
            None => Ok(()),
        }
    }

    /// Drops the open utterance unheard (the client cleared its buffer)
    /// and says so; no final comes for it.
    pub async fn discard(&mut self) -> Result<(), Stop> {
        self.early = None;
        let utterance = self.segmenter.finalize().map(|u| u.index);
        self.say(Event::Discarded { utterance }).await
    }

    /// Cuts utterances with `segmenter` from now on; only before any audio
    /// (sample positions count from the segmenter's first sample).
    pub fn replace_segmenter(&mut self, segmenter: Segmenter) {
        debug_assert_eq!(self.segmenter.samples_seen(), 0);
        self.segmenter = segmenter;
    }

    /// Whether an utterance is open.
    pub fn in_speech(&self) -> bool {
        self.segmenter.in_speech()
    }

    /// Audio received so far, in ms.
    pub fn audio_ms(&self) -> u64 {
        ms(self.segmenter.samples_seen())
    }

    /// Finals submitted so far.
    pub fn utterances(&self) -> u32 {
        self.finals
    }

    async fn submit_final(&mut self, u: Utterance) -> Result<(), Stop> {
        let samples = u.audio.len();
        let queued = self
            .shared
            .queued_samples
            .fetch_add(samples, Ordering::SeqCst)
            + samples;
        let cap = (self.ctx.max_queued_audio_s * OUTPUT_SAMPLE_RATE_HZ as f32) as usize;
        if queued > cap {
            return Err(Stop::Error(
                ErrorCode::AudioOverflow,
                format!(
                    "more than {} s of audio waiting for transcription; stream in real time",
                    self.ctx.max_queued_audio_s
                ),
            ));
        }
        metrics::utterance_closed(samples);
        let audio_end = self.clock.arrival_of(u.end_sample, Instant::now());
        self.clock.forget_before(u.end_sample);
        let result = match self.take_early(&u).await? {
            Some(result) => {
                metrics::early_final_used();
                result
            }
            None => {
                let (reply, result) = oneshot::channel();
                let job = Job {
                    kind: JobKind::Final,
                    session: self.id,
                    audio: u.audio,
                    reply,
                    enqueued_at: Instant::now(),
                    options: self.decode.clone(),
                    stale_after: Duration::MAX,
                };
                self.push_final(job).await?;
                result
            }
        };
        self.finals += 1;
        self.say(Event::SpeechEnded {
            utterance: u.index,
            end_ms: ms(u.end_sample),
        })
        .await?;
        let pending = PendingFinal {
            utterance: u.index,
            start_ms: ms(u.start_sample),
            end_ms: ms(u.end_sample),
            audio_end,
            samples,
            result,
        };
        self.send(Item::Final(pending)).await
    }

    /// Queues a final, waiting for room; the drain deadline stops the wait.
    async fn push_final(&mut self, job: Job) -> Result<(), Stop> {
        let pushed = tokio::select! {
            r = self.ctx.queue.push_final(job) => r.is_ok(),
            _ = self.ctx.hard_stop.cancelled() => false,
        };
        if pushed { Ok(()) } else { Err(Stop::Shutdown) }
    }

    /// Asks for a partial of the open utterance, if one is due.
    pub async fn partial(&mut self) -> Result<(), Stop> {
        // An early final already covers the utterance up to its pause.
        if self.shared.partial_in_flight.load(Ordering::SeqCst) || self.early.is_some() {
            return Ok(());
        }
        let mut audio = Vec::new();
        let Some((utterance, start, end)) = self.segmenter.open_audio(&mut audio) else {
            return Ok(());
        };
        // Too little new audio since the last partial to change the text.
        if end < self.last_partial_end + OUTPUT_SAMPLE_RATE_HZ as u64 / 4 || audio.len() < 8000 {
            return Ok(());
        }
        self.last_partial_end = end;
        let (reply, result) = oneshot::channel::<JobResult>();
        let job = Job {
            kind: JobKind::Partial,
            session: self.id,
            audio,
            reply,
            enqueued_at: Instant::now(),
            options: DecodeOptions::default(),
            stale_after: Duration::from_millis(self.ctx.partial_interval_ms.max(250) * 2),
        };
        if self.ctx.queue.push_partial(job).is_ok() {
            self.shared.partial_in_flight.store(true, Ordering::SeqCst);
            let p = PendingPartial {
                utterance,
                start_ms: ms(start),
                end_ms: ms(end),
                result,
            };
            self.send(Item::Partial(p)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
