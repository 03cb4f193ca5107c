//! The segmenter's bookkeeping under scripted decisions: samples in, utterances that are exact slices of the input out.
//!
//! The test audio carries its own voiced/unvoiced label in each sample's
//! lowest bit, and a classifier reads the label back (majority of the
//! frame), so any decision pattern can be scripted while the rest of every
//! sample makes the audio distinct enough to catch a lost or doubled sample.

use proptest::prelude::*;

use super::super::segmenter::{FrameClassifier, SegmenterCore, Voicing};
use super::super::{END_TAIL_MS, EndReason, SegmentEvent, SegmenterConfig, Utterance};

/// The tail kept after the last voiced frame, in samples.
const TAIL: u64 = END_TAIL_MS as u64 * 16;

struct LabelClassifier;

impl FrameClassifier for LabelClassifier {
    fn classify(&mut self, frame: &[i16]) -> Voicing {
        if 2 * frame.iter().filter(|&&s| s & 1 == 1).count() > frame.len() {
            Voicing::Speech
        } else {
            Voicing::Silent
        }
    }
}

/// Audio made of `(length, voiced)` regions, labels in the lowest bit.
fn labelled_audio(regions: &[(usize, bool)]) -> Vec<i16> {
    let mut audio = Vec::new();
    for &(len, voiced) in regions {
        for _ in 0..len {
            let n = audio.len() as u64;
            let body = (n.wrapping_mul(2_654_435_761) >> 7) % 16_384;
            audio.push((body as i16 - 8_192) * 2 + i16::from(voiced));
        }
    }
    audio
}

fn as_f32(samples: &[i16]) -> Vec<f32> {
    samples.iter().map(|&s| f32::from(s) / 32_768.0).collect()
}

/// Follows the event stream and checks every invariant as it goes.
struct Checker<'a> {
    input: &'a [i16],
    max_utterance_samples: u64,
    open: Option<(u32, u64)>,
    /// End announced by the open utterance's latest `Paused`.
    paused_end: Option<u64>,
    next_index: u32,
    previous_end: u64,
    utterances: Vec<(u64, u64, EndReason)>,
}

impl<'a> Checker<'a> {
    fn new(input: &'a [i16], config: &SegmenterConfig) -> Self {
        Self {
            input,
            max_utterance_samples: (f64::from(config.max_utterance_s) * 16_000.0) as u64,
            open: None,
            paused_end: None,
            next_index: 0,
            previous_end: 0,
            utterances: Vec::new(),
        }
    }

    fn paused(&mut self, utterance: u32, start_sample: u64, end_sample: u64, seen: u64) {
        assert_eq!(
            self.open,
            Some((utterance, start_sample)),
            "a pause outside its utterance"
        );
        assert!(start_sample < end_sample && end_sample <= seen);
        assert!(
            self.paused_end.is_none_or(|p| p < end_sample),
            "pauses move forward"
        );
        self.paused_end = Some(end_sample);
    }

    fn started(&mut self, utterance: u32, start_sample: u64, seen: u64) {
        assert!(
            self.open.is_none(),
            "started {utterance} while {:?} is open",
            self.open
        );
        assert_eq!(utterance, self.next_index, "indices count up without gaps");
        assert!(start_sample >= self.previous_end, "utterances overlap");
        assert!(start_sample < seen);
        self.open = Some((utterance, start_sample));
    }

    fn ended(&mut self, utterance: &Utterance, seen: u64) {
        let (index, start) = self
            .open
            .take()
            .expect("an utterance ended that never started");
        assert_eq!((utterance.index, utterance.start_sample), (index, start));
        if let Some(paused) = self.paused_end.take()
            && utterance.reason == EndReason::Silence
        {
            // Voiced frames after a pause can only move the end later.
            assert!(utterance.end_sample >= paused, "ended before its pause");
        }
        assert!(utterance.end_sample > start, "empty utterance");
        assert!(utterance.end_sample <= seen);
        let len = utterance.end_sample - start;
        assert!(
            len <= self.max_utterance_samples,
            "{len} samples is over the maximum"
        );
        assert_eq!(utterance.audio.len() as u64, len);
        assert!(
            utterance.audio == as_f32(&self.input[start as usize..utterance.end_sample as usize]),
            "utterance {index} audio is not the input slice [{start}, {})",
            utterance.end_sample
        );
        self.next_index += 1;
        self.previous_end = utterance.end_sample;
        self.utterances
            .push((start, utterance.end_sample, utterance.reason));
    }

    fn events(&mut self, events: &[SegmentEvent], seen: u64) {
        for event in events {
            match event {
                SegmentEvent::SpeechStarted {
                    utterance,
                    start_sample,
                } => self.started(*utterance, *start_sample, seen),
                SegmentEvent::Paused {
                    utterance,
                    start_sample,
                    end_sample,
                } => self.paused(*utterance, *start_sample, *end_sample, seen),
                SegmentEvent::UtteranceEnded(utterance) => self.ended(utterance, seen),
            }
        }
    }

    fn open_audio(&self, core: &SegmenterCore<LabelClassifier>) {
        let mut audio = vec![9.0];
        match (core.open_audio(&mut audio), self.open) {
            (None, None) => assert!(!core.in_speech()),
            (Some((index, start, end)), Some(open)) => {
                assert!(core.in_speech());
                assert_eq!((index, start), open);
                assert!(end <= core.samples_seen());
                assert!(audio == as_f32(&self.input[start as usize..end as usize]));
            }
            (got, expected) => panic!("open_audio says {got:?}, events say {expected:?}"),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Push(usize),
    Finalize,
}

fn config() -> impl Strategy<Value = SegmenterConfig> {
    (
        prop::sample::select(vec![10u32, 20, 30]),
        0u32..400,
        0u32..400,
        0u32..400,
        0.0f32..2.0,
    )
        .prop_map(
            |(frame_ms, min_speech_extra, hangover_extra, pre_roll_ms, max_extra_s)| {
                let min_speech_ms = 2 * frame_ms + min_speech_extra;
                let shortest_s = 2.0 * (pre_roll_ms + min_speech_ms + frame_ms) as f32 / 1000.0;
                SegmenterConfig {
                    aggressiveness: 2,
                    frame_ms,
                    min_speech_ms,
                    hangover_ms: 2 * frame_ms + hangover_extra,
                    pre_roll_ms,
                    max_utterance_s: shortest_s + max_extra_s,
                }
            },
        )
}

fn regions() -> impl Strategy<Value = Vec<(usize, bool)>> {
    prop::collection::vec((1usize..40_000, any::<bool>()), 1..24)
}

/// Runs `ops` (cycled until the input is used up), then flushes.
fn run(config: &SegmenterConfig, input: &[i16], ops: &[Op]) -> Vec<(u64, u64, EndReason)> {
    config.validate().unwrap();
    let mut core = SegmenterCore::new(config, LabelClassifier);
    let mut checker = Checker::new(input, config);
    let mut events = Vec::new();
    let mut fed = 0;
    // A script of finalizes alone (shrinking makes them) would never feed
    // the input: push it whole after them instead.
    let whole = [ops, &[Op::Push(input.len())]].concat();
    let ops = if ops.iter().any(|op| matches!(op, Op::Push(_))) {
        ops
    } else {
        &whole[..]
    };
    for op in ops.iter().cycle() {
        if fed == input.len() {
            break;
        }
        match op {
            Op::Push(len) => {
                let chunk = &input[fed..(fed + len).min(input.len())];
                fed += chunk.len();
                events.clear();
                core.push(chunk, &mut events);
                assert_eq!(core.samples_seen(), fed as u64);
                checker.events(&events, fed as u64);
            }
            Op::Finalize => {
                let was_open = checker.open.is_some();
                let utterance = core.finalize(EndReason::Finalize);
                assert_eq!(utterance.is_some(), was_open);
                if let Some(utterance) = utterance {
                    assert_eq!(utterance.reason, EndReason::Finalize);
                    let len = utterance.end_sample - utterance.start_sample;
                    assert!(
                        utterance.end_sample == fed as u64 || len == checker.max_utterance_samples
                    );
                    checker.ended(&utterance, fed as u64);
                }
            }
        }
        checker.open_audio(&core);
    }
    if let Some(utterance) = core.flush() {
        assert_eq!(utterance.reason, EndReason::Flush);
        checker.ended(&utterance, fed as u64);
    }
    assert!(checker.open.is_none(), "flush leaves nothing open");
    assert!(!core.in_speech());
    assert_eq!(core.samples_seen(), input.len() as u64);
    checker.utterances
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any chunking, any decisions, finalize at any point: every utterance is
    /// an exact, in-order, non-overlapping slice of the input, at most
    /// `max_utterance_s` long, with consecutive indices.
    #[test]
    fn utterances_are_exact_slices_of_the_input(
        config in config(),
        regions in regions(),
        ops in prop::collection::vec(
            prop_oneof![9 => (1usize..5_000).prop_map(Op::Push), 1 => Just(Op::Finalize)],
            1..30,
        ),
    ) {
        let input = labelled_audio(&regions);
        run(&config, &input, &ops);
    }

    /// Without finalize, every voiced stretch long enough to hold the start
    /// window plus two frames lands in some utterance.
    #[test]
    fn every_long_voiced_stretch_is_found(
        config in config(),
        regions in regions(),
        chunks in prop::collection::vec((1usize..5_000).prop_map(Op::Push), 1..30),
    ) {
        let input = labelled_audio(&regions);
        let utterances = run(&config, &input, &chunks);
        let frame = config.frame_ms as usize * 16;
        let needed = (config.min_speech_ms.div_ceil(config.frame_ms) as usize + 2) * frame;
        let mut region_start = 0;
        for &(len, voiced) in &regions {
            let region_end = region_start + len;
            if voiced && len >= needed {
                prop_assert!(
                    utterances.iter().any(|&(s, e, _)| s < region_end as u64 && e > region_start as u64),
                    "voiced [{region_start}, {region_end}) is in no utterance: {utterances:?}"
                );
            }
            region_start = region_end;
        }
    }
}

fn default_run(regions: &[(usize, bool)]) -> Vec<(u64, u64, EndReason)> {
    run(
        &SegmenterConfig::default(),
        &labelled_audio(regions),
        &[Op::Push(517)],
    )
}

#[test]
fn silence_gives_nothing() {
    assert_eq!(default_run(&[(160_000, false)]), []);
}

#[test]
fn short_burst_is_not_an_utterance() {
    // 140 ms of voice: under min_speech_ms (200 ms).
    assert_eq!(
        default_run(&[(16_000, false), (2_240, true), (16_000, false)]),
        []
    );
}

#[test]
fn utterance_has_pre_roll_and_a_short_tail() {
    // Voice over [1 s, 2 s): starts 200 ms early, ends a tail late.
    let utterances = default_run(&[(16_000, false), (16_000, true), (16_000, false)]);
    assert_eq!(utterances, [(12_800, 32_000 + TAIL, EndReason::Silence)]);
}

#[test]
fn pre_roll_stops_at_the_start_of_the_stream() {
    let utterances = default_run(&[(1_600, false), (16_000, true), (16_000, false)]);
    assert_eq!(utterances, [(0, 17_600 + TAIL, EndReason::Silence)]);
}

#[test]
fn long_speech_is_cut_into_contiguous_pieces() {
    let config = SegmenterConfig {
        max_utterance_s: 2.0,
        ..SegmenterConfig::default()
    };
    let input = labelled_audio(&[(16_000, false), (16_000 * 5, true), (16_000, false)]);
    let utterances = run(&config, &input, &[Op::Push(320)]);
    let reasons: Vec<EndReason> = utterances.iter().map(|u| u.2).collect();
    use EndReason::{MaxLength, Silence};
    assert_eq!(reasons, [MaxLength, MaxLength, Silence]);
    assert_eq!(utterances[0].0, 12_800);
    for pair in utterances.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "no gap between the pieces");
    }
    assert_eq!(utterances[2].1, 16_000 * 6 + TAIL);
}

#[test]
fn flush_includes_the_partial_frame() {
    let mut core = SegmenterCore::new(&SegmenterConfig::default(), LabelClassifier);
    let input = labelled_audio(&[(16_000, true), (100, true)]);
    let mut events = Vec::new();
    core.push(&input, &mut events);
    assert!(matches!(
        events[..],
        [SegmentEvent::SpeechStarted {
            utterance: 0,
            start_sample: 0
        }]
    ));
    let utterance = core.flush().unwrap();
    assert_eq!((utterance.start_sample, utterance.end_sample), (0, 16_100));
    assert_eq!(core.flush().map(|u| u.index), None);
}
