//! Fixed-capacity ring buffer of 16 kHz samples: the audio of the open utterance (plus pre-roll) in, windows of it out.
//!
//! The segmenter keeps one [`AudioRing`] per session, allocated once at its
//! largest size (a whole utterance), so a session never allocates audio
//! memory while it streams. The ring never grows. What happens when it is
//! full depends on the call, and each use picks the one it needs:
//!
//! - [`AudioRing::push`] refuses what does not fit and reports how many
//!   samples it took. The segmenter uses it during speech, where losing audio
//!   would be a bug: it cuts an utterance at `max_utterance_s` before the
//!   ring can fill.
//! - [`AudioRing::push_overwrite`] drops the oldest samples to make room, for
//!   history where only the newest audio matters.
//! - [`AudioRing::discard_oldest`] drops the oldest samples on purpose: the
//!   segmenter trims its idle history to the pre-roll it may need, and drops
//!   an utterance's audio once it has handed it on.
//!
//! Windows come out as f32 in [-1, 1), the format whisper takes.

use std::ops::Range;

use ringbuf::HeapRb;
use ringbuf::traits::{Consumer, Observer, Producer, RingBuffer};

/// Scale from i16 to f32 in [-1, 1), as whisper.cpp expects.
const I16_TO_F32: f32 = 1.0 / 32_768.0;

/// A fixed-capacity FIFO of i16 samples, oldest first.
pub struct AudioRing {
    /// Owned whole (never split into producer and consumer halves): one
    /// session task both writes and reads it.
    samples: HeapRb<i16>,
}

impl AudioRing {
    /// Makes a ring that holds at most `capacity_samples` samples.
    ///
    /// # Panics
    ///
    /// If `capacity_samples` is zero.
    pub fn with_capacity(capacity_samples: usize) -> Self {
        assert!(
            capacity_samples > 0,
            "an audio ring needs room for at least one sample"
        );
        Self {
            samples: HeapRb::new(capacity_samples),
        }
    }

    /// The most samples the ring holds.
    pub fn capacity(&self) -> usize {
        self.samples.capacity().get()
    }

    /// How many samples the ring holds now.
    pub fn len(&self) -> usize {
        self.samples.occupied_len()
    }

    /// Whether the ring holds no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Appends as many of `samples` as fit, in order; returns how many it
    /// took. What does not fit is refused, and the ring keeps what it had.
    pub fn push(&mut self, samples: &[i16]) -> usize {
        self.samples.push_slice(samples)
    }

    /// Appends all of `samples`, dropping the oldest ones to make room;
    /// returns how many samples were dropped (from the ring's old contents or,
    /// when `samples` alone is longer than the capacity, from its start).
    pub fn push_overwrite(&mut self, samples: &[i16]) -> usize {
        let dropped = (self.len() + samples.len()).saturating_sub(self.capacity());
        self.samples.push_slice_overwrite(samples);
        dropped
    }

    /// Drops up to `count` of the oldest samples; returns how many it dropped.
    pub fn discard_oldest(&mut self, count: usize) -> usize {
        self.samples.skip(count)
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// Appends every sample, oldest first, to `out` as f32 in [-1, 1).
    pub fn copy_to_f32(&self, out: &mut Vec<f32>) {
        self.copy_range_to_f32(0..self.len(), out);
    }

    /// Appends the samples at positions `range` (0 is the oldest) to `out` as
    /// f32 in [-1, 1).
    ///
    /// # Panics
    ///
    /// If `range` reaches past [`AudioRing::len`].
    pub fn copy_range_to_f32(&self, range: Range<usize>, out: &mut Vec<f32>) {
        assert!(
            range.start <= range.end && range.end <= self.len(),
            "range {range:?} outside a ring of {} samples",
            self.len()
        );
        // The contents sit in at most two slices (before and after the wrap).
        let (head, tail) = self.samples.as_slices();
        let head_range = range.start.min(head.len())..range.end.min(head.len());
        let tail_range =
            range.start.saturating_sub(head.len())..range.end.saturating_sub(head.len());
        out.reserve(range.len());
        out.extend(head[head_range].iter().map(|&s| f32::from(s) * I16_TO_F32));
        out.extend(tail[tail_range].iter().map(|&s| f32::from(s) * I16_TO_F32));
    }
}

impl std::fmt::Debug for AudioRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioRing")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    fn contents(ring: &AudioRing) -> Vec<f32> {
        let mut out = Vec::new();
        ring.copy_to_f32(&mut out);
        out
    }

    fn as_f32(samples: impl IntoIterator<Item = i16>) -> Vec<f32> {
        samples
            .into_iter()
            .map(|s| f32::from(s) / 32_768.0)
            .collect()
    }

    #[test]
    fn push_refuses_beyond_capacity() {
        let mut ring = AudioRing::with_capacity(4);
        assert_eq!(ring.push(&[1, 2, 3]), 3);
        assert_eq!(ring.push(&[4, 5, 6]), 1);
        assert_eq!(ring.len(), 4);
        assert_eq!(contents(&ring), as_f32([1, 2, 3, 4]));
        assert_eq!(ring.push(&[7]), 0);
    }

    #[test]
    fn push_overwrite_drops_the_oldest() {
        let mut ring = AudioRing::with_capacity(4);
        assert_eq!(ring.push_overwrite(&[1, 2, 3]), 0);
        assert_eq!(ring.push_overwrite(&[4, 5]), 1);
        assert_eq!(contents(&ring), as_f32([2, 3, 4, 5]));
        // Longer than the whole ring: only its newest samples stay.
        assert_eq!(ring.push_overwrite(&[6, 7, 8, 9, 10, 11]), 6);
        assert_eq!(contents(&ring), as_f32([8, 9, 10, 11]));
    }

    #[test]
    fn f32_conversion_spans_minus_one_to_just_below_one() {
        let mut ring = AudioRing::with_capacity(3);
        ring.push(&[i16::MIN, 0, i16::MAX]);
        let out = contents(&ring);
        assert_eq!(out[0], -1.0);
        assert_eq!(out[1], 0.0);
        assert!(out[2] < 1.0 && out[2] > 0.9999);
    }

    #[test]
    fn copy_range_reads_across_the_wrap() {
        let mut ring = AudioRing::with_capacity(5);
        ring.push(&[1, 2, 3, 4, 5]);
        ring.discard_oldest(3);
        ring.push(&[6, 7, 8]);
        let mut out = Vec::new();
        ring.copy_range_to_f32(1..4, &mut out);
        assert_eq!(out, as_f32([5, 6, 7]));
    }

    #[test]
    #[should_panic(expected = "outside a ring")]
    fn copy_range_past_the_end_panics() {
        let mut ring = AudioRing::with_capacity(5);
        ring.push(&[1, 2]);
        ring.copy_range_to_f32(0..3, &mut Vec::new());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push(Vec<i16>),
        PushOverwrite(Vec<i16>),
        Discard(usize),
        Clear,
        CopyRange(usize, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let samples = || prop::collection::vec(any::<i16>(), 0..40);
        prop_oneof![
            samples().prop_map(Op::Push),
            samples().prop_map(Op::PushOverwrite),
            (0usize..40).prop_map(Op::Discard),
            Just(Op::Clear),
            (0usize..40, 0usize..40).prop_map(|(a, b)| Op::CopyRange(a.min(b), a.max(b))),
        ]
    }

    proptest! {
        /// The ring behaves like a bounded VecDeque and never holds more than its capacity.
        #[test]
        fn ring_matches_a_bounded_model(capacity in 1usize..32, ops in prop::collection::vec(op(), 0..60)) {
            let mut ring = AudioRing::with_capacity(capacity);
            let mut model: VecDeque<i16> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(samples) => {
                        let fits = samples.len().min(capacity - model.len());
                        prop_assert_eq!(ring.push(&samples), fits);
                        model.extend(&samples[..fits]);
                    }
                    Op::PushOverwrite(samples) => {
                        let mut dropped = 0;
                        for s in samples.iter().copied() {
                            if model.len() == capacity {
                                model.pop_front();
                                dropped += 1;
                            }
                            model.push_back(s);
                        }
                        prop_assert_eq!(ring.push_overwrite(&samples), dropped);
                    }
                    Op::Discard(count) => {
                        let dropped = count.min(model.len());
                        model.drain(..dropped);
                        prop_assert_eq!(ring.discard_oldest(count), dropped);
                    }
                    Op::Clear => {
                        model.clear();
                        ring.clear();
                    }
                    Op::CopyRange(start, end) => {
                        if end <= model.len() {
                            let mut out = vec![0.5];
                            ring.copy_range_to_f32(start..end, &mut out);
                            let mut expected = vec![0.5];
                            expected.extend(as_f32(model.range(start..end).copied()));
                            prop_assert_eq!(out, expected);
                        }
                    }
                }
                prop_assert!(ring.len() <= capacity);
                prop_assert_eq!(ring.len(), model.len());
                prop_assert_eq!(ring.is_empty(), model.is_empty());
                prop_assert_eq!(contents(&ring), as_f32(model.iter().copied()));
            }
        }
    }
}
