//! Fuzzes the audio front end as a session drives it: client binary messages
//! -> `AudioDecoder` (Opus or PCM) -> `Segmenter` (real webrtc-vad), with the
//! session's control calls (`finalize`, `open_audio`, `flush`) in between.
//!
//! # Input layout
//!
//! - byte 0: bit 0 the encoding (0 Opus, 1 PCM s16le), bits 1-2 the PCM rate
//!   (8, 16, 24, 48 kHz), bits 3-4 `vad.frame_ms` (10, 20, 30, 20), bits 5-6
//!   `vad.aggressiveness`;
//! - byte 1: `vad.max_utterance_s`, from the shortest valid value up to 20 s;
//! - byte 2: low nibble `vad.hangover_ms`, high nibble `vad.min_speech_ms`
//!   (in frames);
//! - then operations, one byte each:
//!   `0x00..=0xEF` a message of that many bytes plus one (cut short at the
//!   end of the input), `0xF0..=0xF7` the last message again 4 to 32 times
//!   (so a short input can carry seconds of speech), `0xF8` finalize,
//!   `0xF9` open_audio, `0xFA` flush, `0xFB..` an empty message.
//!
//! # What must hold
//!
//! - The decoder never panics; a refused message appends nothing; a
//!   decoded one appends what it reports: for Opus a whole number of 2.5 ms
//!   frames, at most 120 ms; for PCM exactly `ceil(bytes/2 * 16000 / rate)`
//!   samples over the stream so far.
//! - Every utterance's audio is exactly the decoded stream's samples
//!   `[start, end)`, so `audio.len() == end - start`; utterances are numbered
//!   from 0 without gaps, never overlap (bounds only move forward), never
//!   end past the samples seen, and are never longer than
//!   `max_utterance_s`. `SpeechStarted` and `UtteranceEnded` alternate.
//! - `in_speech`, `samples_seen` and `open_audio` agree with the events.

#![no_main]

use libfuzzer_sys::fuzz_target;
use steno_audio::codec::{AudioDecoder, Encoding};
use steno_audio::vad::{EndReason, SegmentEvent, Segmenter, SegmenterConfig, Utterance};

const PCM_RATES: [u32; 4] = [8_000, 16_000, 24_000, 48_000];
const FRAME_MS: [u32; 4] = [10, 20, 30, 20];
/// Bounds the work of one input: 30 s of 16 kHz audio, more than the
/// longest utterance (20 s), so every way an utterance ends stays reachable.
const MAX_STREAM_SAMPLES: usize = 16_000 * 30;
/// The longest Opus packet, 120 ms, at 16 kHz.
const MAX_OPUS_SAMPLES: usize = 1_920;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (encoding, rate) = if data[0] & 1 == 0 {
        (Encoding::Opus, 16_000)
    } else {
        (Encoding::PcmS16le, PCM_RATES[usize::from(data[0] >> 1 & 3)])
    };
    let config = vad_config(data[0], data[1], data[2]);
    config.validate().expect("the fuzz config is valid");
    let mut decoder = AudioDecoder::new(encoding, rate).expect("valid encoding and rate");
    let segmenter = Segmenter::new(&config).expect("valid VAD config");
    let mut run = Run {
        segmenter,
        checker: Checker::new(&config),
        stream: Vec::new(),
    };
    let mut pcm_bytes = 0u64;
    let mut last: &[u8] = &[];
    let mut ops = &data[3..];
    while let Some((&op, rest)) = ops.split_first() {
        ops = rest;
        if run.stream.len() > MAX_STREAM_SAMPLES {
            break;
        }
        match op {
            0x00..=0xEF => {
                let len = (usize::from(op) + 1).min(ops.len());
                let (message, rest) = ops.split_at(len);
                ops = rest;
                last = message;
                run.message(&mut decoder, encoding, rate, &mut pcm_bytes, message);
            }
            0xF0..=0xF7 => {
                for _ in 0..(usize::from(op - 0xEF) * 4) {
                    run.message(&mut decoder, encoding, rate, &mut pcm_bytes, last);
                }
            }
            0xF8 => {
                let u = run.segmenter.finalize();
                run.checker
                    .closed_on_request(u, EndReason::Finalize, &run.stream);
            }
            0xF9 => run.check_open_audio(),
            0xFA => {
                let u = run.segmenter.flush();
                run.checker
                    .closed_on_request(u, EndReason::Flush, &run.stream);
            }
            _ => run.message(&mut decoder, encoding, rate, &mut pcm_bytes, &[]),
        }
        run.check_state();
    }
    let u = run.segmenter.flush();
    run.checker
        .closed_on_request(u, EndReason::Flush, &run.stream);
    run.check_state();
});

fn vad_config(b0: u8, b1: u8, b2: u8) -> SegmenterConfig {
    let frame_ms = FRAME_MS[usize::from(b0 >> 3 & 3)];
    let mut c = SegmenterConfig {
        aggressiveness: b0 >> 5 & 3,
        frame_ms,
        hangover_ms: frame_ms * (2 + u32::from(b2 & 0x0F) * 2),
        min_speech_ms: frame_ms * (2 + u32::from(b2 >> 4)),
        ..SegmenterConfig::default()
    };
    let shortest_s = 2.0 * (c.pre_roll_ms + c.min_speech_ms + c.frame_ms) as f32 / 1000.0;
    c.max_utterance_s = (f32::from(b1) / 255.0 * 20.0).max(shortest_s);
    c
}

struct Run {
    segmenter: Segmenter,
    checker: Checker,
    /// Every sample decoded so far: what utterances must be slices of.
    stream: Vec<i16>,
}

impl Run {
    fn message(
        &mut self,
        decoder: &mut AudioDecoder,
        encoding: Encoding,
        rate: u32,
        pcm_bytes: &mut u64,
        message: &[u8],
    ) {
        let mut out = vec![7_i16; 3];
        let result = decoder.decode(message, &mut out);
        let appended = &out[3..];
        match result {
            Err(_) => assert!(appended.is_empty(), "a refused message appended samples"),
            Ok(n) => {
                assert_eq!(n, appended.len(), "decode reported {n}");
                match encoding {
                    Encoding::Opus => {
                        assert!(n <= MAX_OPUS_SAMPLES, "{n} samples from one Opus packet");
                        assert_eq!(n % 40, 0, "{n} is not a whole number of 2.5 ms frames");
                    }
                    Encoding::PcmS16le => {
                        *pcm_bytes += message.len() as u64;
                        let input = *pcm_bytes / 2;
                        let expected = (input * 16_000).div_ceil(u64::from(rate));
                        let total = (self.stream.len() + n) as u64;
                        assert_eq!(total, expected, "{input} samples at {rate} Hz");
                    }
                    // Fuzzed by the `containers` target.
                    Encoding::OggOpus | Encoding::WebmOpus => unreachable!(),
                }
            }
        }
        self.stream.extend_from_slice(appended);
        let mut events = Vec::new();
        self.segmenter.push(appended, &mut events);
        for event in events {
            self.checker.event(event, &self.stream);
        }
    }

    fn check_open_audio(&mut self) {
        let mut audio = vec![9.0_f32; 5];
        match self.segmenter.open_audio(&mut audio) {
            None => {
                assert!(
                    self.checker.open.is_none(),
                    "open_audio says idle mid-utterance"
                );
                assert_eq!(audio, vec![9.0; 5], "open_audio touched `out` while idle");
            }
            Some((index, start, end)) => {
                assert_eq!(
                    self.checker.open,
                    Some((index, start)),
                    "open_audio names another utterance"
                );
                assert!(end <= self.stream.len() as u64);
                assert_eq!(audio.len() as u64, end - start, "open audio length");
                assert_slice(&audio, &self.stream, start, end);
            }
        }
    }

    fn check_state(&self) {
        assert_eq!(self.segmenter.in_speech(), self.checker.open.is_some());
        assert_eq!(self.segmenter.samples_seen(), self.stream.len() as u64);
    }
}

/// Follows the events and checks each against the stream.
struct Checker {
    max_utterance_samples: u64,
    open: Option<(u32, u64)>,
    next_index: u32,
    previous_end: u64,
}

impl Checker {
    fn new(config: &SegmenterConfig) -> Self {
        Self {
            max_utterance_samples: (f64::from(config.max_utterance_s) * 16_000.0) as u64,
            open: None,
            next_index: 0,
            previous_end: 0,
        }
    }

    fn event(&mut self, event: SegmentEvent, stream: &[i16]) {
        match event {
            SegmentEvent::SpeechStarted {
                utterance,
                start_sample,
            } => {
                assert!(self.open.is_none(), "speech started twice");
                assert_eq!(utterance, self.next_index, "utterance numbers have a gap");
                assert!(start_sample >= self.previous_end, "utterances overlap");
                assert!(start_sample <= stream.len() as u64, "start past the stream");
                self.open = Some((utterance, start_sample));
            }
            SegmentEvent::Paused {
                utterance,
                start_sample,
                end_sample,
            } => {
                assert_eq!(
                    self.open,
                    Some((utterance, start_sample)),
                    "pause outside its utterance"
                );
                assert!(start_sample < end_sample, "empty pause bounds");
                assert!(end_sample <= stream.len() as u64, "pause past the stream");
            }
            SegmentEvent::UtteranceEnded(u) => {
                assert!(
                    matches!(u.reason, EndReason::Silence | EndReason::MaxLength),
                    "push ended an utterance for {:?}",
                    u.reason
                );
                self.ended(u, stream);
            }
        }
    }

    fn closed_on_request(&mut self, u: Option<Utterance>, reason: EndReason, stream: &[i16]) {
        match u {
            None => assert!(self.open.is_none(), "{reason:?} lost the open utterance"),
            Some(u) => {
                assert_eq!(u.reason, reason);
                self.ended(u, stream);
            }
        }
    }

    fn ended(&mut self, u: Utterance, stream: &[i16]) {
        assert_eq!(
            self.open,
            Some((u.index, u.start_sample)),
            "ended an utterance never started"
        );
        assert!(u.start_sample <= u.end_sample, "end before start");
        assert!(u.end_sample <= stream.len() as u64, "end past the stream");
        assert_eq!(
            u.audio.len() as u64,
            u.end_sample - u.start_sample,
            "audio length"
        );
        assert!(
            u.end_sample - u.start_sample <= self.max_utterance_samples,
            "utterance longer than max_utterance_s"
        );
        assert_slice(&u.audio, stream, u.start_sample, u.end_sample);
        self.open = None;
        self.next_index += 1;
        self.previous_end = u.end_sample;
    }
}

/// `audio` is exactly `stream[start..end]` as f32.
fn assert_slice(audio: &[f32], stream: &[i16], start: u64, end: u64) {
    let expected = &stream[start as usize..end as usize];
    let same = audio
        .iter()
        .zip(expected)
        .all(|(&a, &s)| a == f32::from(s) / 32_768.0);
    assert!(same, "audio is not the stream's samples {start}..{end}");
}
