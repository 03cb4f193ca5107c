//! The segmenter proper: 16 kHz samples in any chunking in, frames judged by a classifier, utterances with their audio out.

use crate::ring::AudioRing;

pub use super::gate::Voicing;
use super::gate::{SpeechGate, Transition};
use super::{EndReason, SegmentEvent, SegmenterConfig, Utterance};

/// Samples per millisecond at 16 kHz.
const SAMPLES_PER_MS: u64 = 16;

/// How much audio after the last voiced frame an utterance keeps when a
/// pause ends it: enough for a trailing fricative or a fading vowel that the
/// VAD already called silence, without handing whisper the whole hangover
/// (long silence invites hallucinated words).
pub const END_TAIL_MS: u32 = 200;

/// Decides whether one frame of 16 kHz audio holds speech.
pub trait FrameClassifier: Send {
    fn classify(&mut self, frame: &[i16]) -> Voicing;
}

impl FrameClassifier for Box<dyn FrameClassifier> {
    fn classify(&mut self, frame: &[i16]) -> Voicing {
        (**self).classify(frame)
    }
}

/// The open utterance.
#[derive(Clone, Copy, Debug)]
struct Open {
    index: u32,
    start_sample: u64,
}

/// Framing, the ring buffer and the sample bookkeeping around a [`SpeechGate`],
/// generic over the classifier so tests can script the decisions.
pub(super) struct SegmenterCore<C> {
    classifier: C,
    gate: SpeechGate,
    frame_samples: usize,
    /// Audio kept while idle: the pre-roll plus the start window, since a
    /// start reaches back to the first voiced frame of that window.
    lookback_samples: usize,
    pre_roll_samples: u64,
    tail_samples: u64,
    max_utterance_samples: usize,
    /// Holds the samples `[framed_end - ring.len(), framed_end)`: the open
    /// utterance from its start, or while idle the newest `lookback_samples`
    /// (trimmed after every frame). Its capacity is `max_utterance_samples`,
    /// and an utterance is cut before it would outgrow it, so a push during
    /// speech never loses audio.
    ring: AudioRing,
    /// The partial frame at the end of the input; shorter than one frame, and
    /// its capacity is one frame.
    pending: Vec<i16>,
    /// Samples already framed (or taken whole by finalize): the stream
    /// position just after the ring's newest sample.
    framed_end: u64,
    open: Option<Open>,
    next_index: u32,
    /// End of the previous utterance: a pre-roll never reaches before it, so
    /// utterances never overlap.
    previous_end: u64,
}

impl<C: FrameClassifier> SegmenterCore<C> {
    /// `config` must be valid.
    pub(super) fn new(config: &SegmenterConfig, classifier: C) -> Self {
        let gate = SpeechGate::new(config);
        let frame_samples = (u64::from(config.frame_ms) * SAMPLES_PER_MS) as usize;
        let pre_roll_samples = u64::from(config.pre_roll_ms) * SAMPLES_PER_MS;
        let lookback_samples =
            pre_roll_samples as usize + gate.start_window_frames() * frame_samples;
        let max_utterance_samples = (f64::from(config.max_utterance_s) * 16_000.0) as usize;
        Self {
            classifier,
            gate,
            frame_samples,
            lookback_samples,
            pre_roll_samples,
            tail_samples: u64::from(END_TAIL_MS) * SAMPLES_PER_MS,
            max_utterance_samples,
            ring: AudioRing::with_capacity(max_utterance_samples),
            pending: Vec::with_capacity(frame_samples),
            framed_end: 0,
            open: None,
            next_index: 0,
            previous_end: 0,
        }
    }

    pub(super) fn push(&mut self, mut samples: &[i16], events: &mut Vec<SegmentEvent>) {
        if !self.pending.is_empty() {
            let needed = self.frame_samples - self.pending.len();
            let (head, rest) = samples.split_at(needed.min(samples.len()));
            self.pending.extend_from_slice(head);
            samples = rest;
            if self.pending.len() < self.frame_samples {
                return;
            }
            let frame = std::mem::take(&mut self.pending);
            self.process_frame(&frame, events);
            self.pending = frame;
            self.pending.clear();
        }
        let mut frames = samples.chunks_exact(self.frame_samples);
        for frame in &mut frames {
            self.process_frame(frame, events);
        }
        self.pending.extend_from_slice(frames.remainder());
    }

    fn process_frame(&mut self, frame: &[i16], events: &mut Vec<SegmentEvent>) {
        let voicing = self.classifier.classify(frame);
        let voiced = voicing != Voicing::Silent;
        let frame_start = self.framed_end;
        let frame_end = frame_start + frame.len() as u64;

        if let Some(open) = self.open
            && (frame_end - open.start_sample) as usize > self.max_utterance_samples
        {
            // Cut before the ring would overflow: mid-word at this frame if
            // it is voiced, otherwise where the speech stopped.
            let end = match self.gate.last_voiced_end() {
                Some(last_voiced_end) if !voiced => self.silence_end(last_voiced_end, frame_start),
                _ => frame_start,
            };
            events.push(SegmentEvent::UtteranceEnded(
                self.close(end, EndReason::MaxLength),
            ));
            // Keeping the history lets speech that goes on start a new
            // utterance right at this frame.
            self.gate.stop();
        }

        let taken = self.ring.push(frame);
        debug_assert_eq!(
            taken,
            frame.len(),
            "the max-length cut keeps the ring from filling"
        );
        self.framed_end = frame_end;

        match self.gate.on_frame(frame_start, voicing) {
            Transition::None => {
                // The tail after the last voiced frame is complete in this
                // frame: announce the bounds a pause would give.
                if let (Some(open), Some(end)) = (self.open, self.pause_end())
                    && frame_start < end
                    && end <= frame_end
                {
                    events.push(SegmentEvent::Paused {
                        utterance: open.index,
                        start_sample: open.start_sample,
                        end_sample: end,
                    });
                }
            }
            Transition::Started {
                first_voiced_sample,
            } => {
                let wanted = first_voiced_sample
                    .saturating_sub(self.pre_roll_samples)
                    .max(self.previous_end);
                // The idle ring holds the whole look-back, so `wanted` is in
                // it; clamping only guards the bookkeeping in release builds.
                debug_assert!(
                    wanted >= self.ring_start(),
                    "the idle ring holds the pre-roll"
                );
                let start_sample = wanted.max(self.ring_start());
                self.ring
                    .discard_oldest((start_sample - self.ring_start()) as usize);
                let index = self.next_index;
                self.next_index += 1;
                self.open = Some(Open {
                    index,
                    start_sample,
                });
                events.push(SegmentEvent::SpeechStarted {
                    utterance: index,
                    start_sample,
                });
            }
            Transition::Ended { last_voiced_end } => {
                let end = self.silence_end(last_voiced_end, frame_end);
                events.push(SegmentEvent::UtteranceEnded(
                    self.close(end, EndReason::Silence),
                ));
            }
        }

        debug_assert_eq!(self.open.is_some(), self.gate.in_speech());
        if self.open.is_none() {
            let excess = self.ring.len().saturating_sub(self.lookback_samples);
            self.ring.discard_oldest(excess);
        }
    }

    /// Where an utterance ending in a pause stops: a short tail after the
    /// last voiced frame, but not past `limit`.
    fn silence_end(&self, last_voiced_end: u64, limit: u64) -> u64 {
        (last_voiced_end + self.tail_samples).min(limit)
    }

    /// Stream position of the ring's oldest sample.
    fn ring_start(&self) -> u64 {
        self.framed_end - self.ring.len() as u64
    }

    /// Hands on the open utterance's audio up to `end` and keeps what comes
    /// after it (the idle history).
    fn close(&mut self, end: u64, reason: EndReason) -> Utterance {
        let open = self.open.take().expect("close needs an open utterance");
        debug_assert_eq!(open.start_sample, self.ring_start());
        let len = (end - open.start_sample) as usize;
        let mut audio = Vec::with_capacity(len);
        self.ring.copy_range_to_f32(0..len, &mut audio);
        self.ring.discard_oldest(len);
        self.previous_end = end;
        Utterance {
            index: open.index,
            start_sample: open.start_sample,
            end_sample: end,
            audio,
            reason,
        }
    }

    /// Closes the open utterance with everything received so far, the
    /// partial frame included as far as the maximum length allows.
    pub(super) fn finalize(&mut self, reason: EndReason) -> Option<Utterance> {
        self.open?;
        let room = self.max_utterance_samples - self.ring.len();
        let taken = self
            .ring
            .push(&self.pending[..self.pending.len().min(room)]);
        self.pending.drain(..taken);
        self.framed_end += taken as u64;
        let end = self.framed_end;
        let utterance = self.close(end, reason);
        self.gate.reset();
        Some(utterance)
    }

    /// Closes everything at the end of the stream: the open utterance, and
    /// a burst too short to be confirmed (dropped).
    pub(super) fn flush(&mut self) -> Option<Utterance> {
        let utterance = self.finalize(EndReason::Flush);
        self.framed_end += self.pending.len() as u64;
        self.pending.clear();
        self.ring.clear();
        self.gate.reset();
        self.previous_end = self.framed_end;
        utterance
    }

    pub(super) fn open_audio(&self, out: &mut Vec<f32>) -> Option<(u32, u64, u64)> {
        let open = self.open?;
        out.clear();
        self.ring.copy_to_f32(out);
        Some((open.index, open.start_sample, self.framed_end))
    }

    pub(super) fn samples_seen(&self) -> u64 {
        self.framed_end + self.pending.len() as u64
    }

    pub(super) fn in_speech(&self) -> bool {
        self.open.is_some()
    }

    pub(super) fn pause_end(&self) -> Option<u64> {
        self.open?;
        Some(self.gate.last_voiced_end()? + self.tail_samples)
    }
}
