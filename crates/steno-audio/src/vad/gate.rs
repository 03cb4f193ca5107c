//! The speech gate: one voiced/unvoiced decision per frame in, "speech started" and "speech ended" transitions out.
//!
//! Kept apart from webrtc-vad and from the audio so the state machine can be
//! tested on made-up decision sequences. It smooths the raw decisions with
//! two sliding windows:
//!
//! - idle, speech starts when at least 80 % of the last `min_speech_ms` worth
//!   of frames are voiced and at least 40 % are voiced *and* structured
//!   ([`Voicing::Speech`]): webrtc-vad alone takes faint broadband noise
//!   after silence for speech, and such noise is never structured;
//! - in speech, it ends when at most 10 % of the last `hangover_ms` worth of
//!   frames (all since the start) are voiced.
//!
//! So neither one stray voiced frame in silence nor one unvoiced frame
//! inside a word flips the state.

use std::collections::VecDeque;

use super::SegmenterConfig;

/// Share of the start window that must be voiced (rounded up).
const START_VOICED_PERCENT: usize = 80;
/// Share of the start window that must be voiced and structured (rounded
/// up). Lower than [`START_VOICED_PERCENT`]: fricatives ("sixty six
/// sisters") are voiced but flat, and a start must not wait for a vowel-rich
/// window.
const START_STRUCTURED_PERCENT: usize = 40;
/// Share of the end window that may still be voiced (rounded down).
const END_VOICED_PERCENT: usize = 10;

/// What the classifier made of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Voicing {
    /// No speech.
    Silent,
    /// webrtc-vad hears speech, but the spectrum is flat: broadband noise,
    /// or a fricative. Counts as voiced, but cannot start speech alone.
    Flat,
    /// Voiced, with the spectral structure of speech.
    Speech,
}

impl Voicing {
    fn voiced(self) -> bool {
        self != Voicing::Silent
    }
}

/// One frame's decision, where it sits in the stream.
#[derive(Clone, Copy, Debug)]
struct Frame {
    start_sample: u64,
    voicing: Voicing,
}

impl Frame {
    fn voiced(&self) -> bool {
        self.voicing.voiced()
    }
}

/// What a frame changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Transition {
    None,
    /// Speech is confirmed. `first_voiced_sample` starts the oldest voiced
    /// frame in the start window: where the speech began.
    Started {
        first_voiced_sample: u64,
    },
    /// The hangover passed. `last_voiced_end` ends the last voiced frame.
    Ended {
        last_voiced_end: u64,
    },
}

#[derive(Clone, Copy, Debug)]
enum State {
    Idle,
    Speech {
        /// Frames seen since speech was confirmed; the end window only looks
        /// at these.
        frames_since_start: usize,
        /// End of the newest voiced frame.
        last_voiced_end: u64,
    },
}

pub(super) struct SpeechGate {
    frame_samples: u64,
    start_window_frames: usize,
    start_min_voiced: usize,
    start_min_structured: usize,
    end_window_frames: usize,
    end_max_voiced: usize,
    /// The newest decisions, at most `history_frames` (the larger window):
    /// the oldest is dropped as a new one comes.
    recent: VecDeque<Frame>,
    history_frames: usize,
    state: State,
}

impl SpeechGate {
    /// `config` must be valid (two frames or more for both windows).
    pub(super) fn new(config: &SegmenterConfig) -> Self {
        let start_window_frames = config.min_speech_ms.div_ceil(config.frame_ms) as usize;
        let end_window_frames = config.hangover_ms.div_ceil(config.frame_ms) as usize;
        let history_frames = start_window_frames.max(end_window_frames);
        Self {
            frame_samples: u64::from(config.frame_ms) * 16,
            start_window_frames,
            start_min_voiced: (start_window_frames * START_VOICED_PERCENT).div_ceil(100),
            start_min_structured: (start_window_frames * START_STRUCTURED_PERCENT).div_ceil(100),
            end_window_frames,
            end_max_voiced: end_window_frames * END_VOICED_PERCENT / 100,
            recent: VecDeque::with_capacity(history_frames),
            history_frames,
            state: State::Idle,
        }
    }

    /// How many frames of history a start can reach back over.
    pub(super) fn start_window_frames(&self) -> usize {
        self.start_window_frames
    }

    pub(super) fn in_speech(&self) -> bool {
        matches!(self.state, State::Speech { .. })
    }

    /// End of the newest voiced frame of the open speech.
    pub(super) fn last_voiced_end(&self) -> Option<u64> {
        match self.state {
            State::Idle => None,
            State::Speech {
                last_voiced_end, ..
            } => Some(last_voiced_end),
        }
    }

    /// Goes idle but keeps the history, so speech that goes on is confirmed
    /// again at once (an utterance cut at its maximum length).
    pub(super) fn stop(&mut self) {
        self.state = State::Idle;
    }

    /// Goes idle and forgets the history: the next speech must earn its start
    /// (after "finalize", or at the end of a stream).
    pub(super) fn reset(&mut self) {
        self.state = State::Idle;
        self.recent.clear();
    }

    /// Takes the decision for the frame starting at `start_sample`; frames
    /// come in stream order.
    pub(super) fn on_frame(&mut self, start_sample: u64, voicing: Voicing) -> Transition {
        if self.recent.len() == self.history_frames {
            self.recent.pop_front();
        }
        self.recent.push_back(Frame {
            start_sample,
            voicing,
        });
        let voiced = voicing.voiced();
        let frame_end = start_sample + self.frame_samples;

        match self.state {
            State::Idle => {
                let window = self.newest(self.start_window_frames);
                let voiced_count = window.clone().filter(|f| f.voiced()).count();
                let structured_count = window
                    .clone()
                    .filter(|f| f.voicing == Voicing::Speech)
                    .count();
                // The counts only grow when a voiced frame comes in, so a
                // start always lands on a voiced frame.
                if voiced_count < self.start_min_voiced
                    || structured_count < self.start_min_structured
                {
                    return Transition::None;
                }
                let first_voiced_sample = window
                    .filter(|f| f.voiced())
                    .map(|f| f.start_sample)
                    .min()
                    .expect("the window holds voiced frames");
                self.state = State::Speech {
                    frames_since_start: 0,
                    last_voiced_end: frame_end,
                };
                Transition::Started {
                    first_voiced_sample,
                }
            }
            State::Speech {
                frames_since_start,
                last_voiced_end,
            } => {
                let frames_since_start = frames_since_start + 1;
                let last_voiced_end = if voiced { frame_end } else { last_voiced_end };
                if frames_since_start >= self.end_window_frames {
                    let voiced_count = self
                        .newest(self.end_window_frames)
                        .filter(|f| f.voiced())
                        .count();
                    if voiced_count <= self.end_max_voiced {
                        self.state = State::Idle;
                        return Transition::Ended { last_voiced_end };
                    }
                }
                self.state = State::Speech {
                    frames_since_start,
                    last_voiced_end,
                };
                Transition::None
            }
        }
    }

    /// The newest `count` decisions (fewer at the start of a stream).
    fn newest(&self, count: usize) -> impl Iterator<Item = &Frame> + Clone {
        self.recent
            .iter()
            .skip(self.recent.len().saturating_sub(count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voicing(c: char) -> Voicing {
        match c {
            '#' => Voicing::Speech,
            '~' => Voicing::Flat,
            _ => Voicing::Silent,
        }
    }

    /// Runs a pattern like "..###.#~" ('#' voiced speech, '~' voiced but
    /// flat) through a gate with 20 ms frames and returns the transitions
    /// with their frame numbers.
    fn run(min_speech_ms: u32, hangover_ms: u32, pattern: &str) -> Vec<(usize, Transition)> {
        let config = SegmenterConfig {
            min_speech_ms,
            hangover_ms,
            ..SegmenterConfig::default()
        };
        let mut gate = SpeechGate::new(&config);
        pattern
            .chars()
            .enumerate()
            .map(|(i, c)| (i, gate.on_frame(i as u64 * 320, voicing(c))))
            .filter(|(_, t)| *t != Transition::None)
            .collect()
    }

    #[test]
    fn one_voiced_frame_does_not_start_speech() {
        assert_eq!(run(100, 100, "...#....#...#.#...."), []);
    }

    #[test]
    fn mostly_voiced_window_starts_at_its_first_voiced_frame() {
        // Window of 5 frames needs 4 voiced; the gap does not reset it.
        let transitions = run(100, 100, "..##.##.....");
        assert_eq!(
            transitions[0],
            (
                6,
                Transition::Started {
                    first_voiced_sample: 2 * 320
                }
            )
        );
    }

    #[test]
    fn flat_voiced_frames_alone_never_start_speech() {
        assert_eq!(run(100, 100, &"~".repeat(50)), []);
        // Window of 5 frames: 4 voiced, 2 of them structured, starts.
        assert_eq!(run(100, 100, "~~~#.#")[0].0, 5);
        assert_eq!(
            run(100, 100, "~~~##"),
            [(
                4,
                Transition::Started {
                    first_voiced_sample: 0
                }
            )]
        );
        assert_eq!(run(100, 100, "~~~~.~#"), []);
    }

    #[test]
    fn flat_frames_keep_open_speech_going() {
        let transitions = run(60, 100, "###~~~~~~~~.....");
        assert_eq!(
            transitions[1],
            (
                15,
                Transition::Ended {
                    last_voiced_end: 11 * 320
                }
            )
        );
    }

    #[test]
    fn one_unvoiced_frame_does_not_end_speech_but_the_hangover_does() {
        // Hangover of 5 frames, none may be voiced.
        let transitions = run(60, 100, "###.###.....##");
        assert_eq!(
            transitions,
            [
                (
                    2,
                    Transition::Started {
                        first_voiced_sample: 0
                    }
                ),
                (
                    11,
                    Transition::Ended {
                        last_voiced_end: 7 * 320
                    }
                ),
            ]
        );
    }

    #[test]
    fn long_hangover_tolerates_a_stray_voiced_frame() {
        // Hangover of 20 frames tolerates 2 voiced ones.
        let silence_with_blips = format!("{}#{}#{}", ".".repeat(5), ".".repeat(7), ".".repeat(6));
        let transitions = run(60, 400, &format!("###{silence_with_blips}"));
        assert_eq!(transitions.len(), 2);
        assert_eq!(transitions[1].0, 2 + 20);
    }

    #[test]
    fn stop_keeps_history_and_reset_forgets_it() {
        let config = SegmenterConfig {
            min_speech_ms: 60,
            ..SegmenterConfig::default()
        };
        let mut gate = SpeechGate::new(&config);
        for i in 0..3 {
            gate.on_frame(i * 320, Voicing::Speech);
        }
        assert!(gate.in_speech());
        gate.stop();
        assert!(matches!(
            gate.on_frame(3 * 320, Voicing::Speech),
            Transition::Started { .. }
        ));
        gate.reset();
        assert_eq!(gate.on_frame(4 * 320, Voicing::Speech), Transition::None);
        assert!(!gate.in_speech());
    }
}
