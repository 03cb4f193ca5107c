//! Packing speech into windows: utterances of a file (from the VAD) in, windows of up to `max_s` of speech out, each with the map from its own time back to file time.
//!
//! Whisper reads at most 30 s at once. A window holds whole utterances
//! (cut at pauses, so never inside a word), each followed by `gap_ms` of
//! silence instead of the pause that followed it in the file: silence is
//! skipped, not transcribed. An utterance the VAD had to cut at its maximum
//! length (speech with no pause) is cut again at its quietest 30 ms in its
//! last seconds, and the rest goes on into the next utterance, so that a
//! window boundary falls between words as nearly as the audio allows.

use steno_audio::vad::{EndReason, Utterance};

const SAMPLES_PER_MS: u64 = 16;
/// How far back from a forced cut the quietest point is looked for.
const SPLIT_SEARCH_MS: u64 = 4_000;
/// The length of the stretch whose energy picks the split point.
const SPLIT_FRAME_MS: u64 = 30;
/// How far before the end of a piece a span that runs into the next piece
/// may start and still be taken as starting with the next piece.
const SNAP_MS: u64 = 600;

/// One run of file audio inside a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Where it starts in the window, in samples.
    pub window_start: u64,
    /// Where it starts in the file, in samples.
    pub file_start: u64,
    pub samples: u64,
}

/// The audio of one whisper call, and where it came from.
#[derive(Debug)]
pub struct Window {
    /// Counts from 0 in the file; the same file always gives the same windows.
    pub index: u32,
    pub audio: Vec<f32>,
    pub pieces: Vec<Piece>,
}

impl Window {
    /// The file time (ms) of window time `ms` where something ends; a time
    /// in an inserted gap maps to the end of the speech before it.
    pub fn file_ms(&self, ms: u64) -> u64 {
        let sample = ms * SAMPLES_PER_MS;
        let piece = self
            .pieces
            .iter()
            .rev()
            .find(|p| p.window_start <= sample)
            .or(self.pieces.first());
        match piece {
            Some(p) => {
                let into = sample.saturating_sub(p.window_start).min(p.samples);
                (p.file_start + into) / SAMPLES_PER_MS
            }
            None => ms,
        }
    }

    /// The file time (ms) of window time `ms` where something starts: a
    /// time in an inserted gap maps to the start of the speech after it
    /// (whisper puts a segment's start where the one before ended).
    pub fn file_start_ms(&self, ms: u64) -> u64 {
        let sample = ms * SAMPLES_PER_MS;
        let in_gap_before = self
            .pieces
            .iter()
            .find(|p| p.window_start > sample)
            .filter(|_| {
                !self
                    .pieces
                    .iter()
                    .any(|p| p.window_start <= sample && sample < p.window_start + p.samples)
            });
        match in_gap_before {
            Some(next) => next.file_start / SAMPLES_PER_MS,
            None => self.file_ms(ms),
        }
    }

    /// The file times (ms) of a span of window time: a segment or a word.
    /// Whisper often starts a span a little before the speech it holds,
    /// where the speech before it ended: a span that starts in the last
    /// [`SNAP_MS`] of one piece (or the gap after it) and ends in a later
    /// piece starts where that later piece starts.
    pub fn file_span_ms(&self, start_ms: u64, end_ms: u64) -> (u64, u64) {
        let (start, end) = (start_ms * SAMPLES_PER_MS, end_ms * SAMPLES_PER_MS);
        let next = self
            .pieces
            .iter()
            .find(|p| p.window_start > start && p.window_start < end);
        let start_file = match next {
            Some(p)
                if p.window_start - start <= SNAP_MS * SAMPLES_PER_MS + self.gap_after(start) =>
            {
                p.file_start / SAMPLES_PER_MS
            }
            _ => self.file_start_ms(start_ms),
        };
        (start_file, self.file_ms(end_ms).max(start_file))
    }

    /// The samples of inserted silence between the piece holding `sample`
    /// and the next piece (0 without a next piece).
    fn gap_after(&self, sample: u64) -> u64 {
        let i = self.pieces.iter().rposition(|p| p.window_start <= sample);
        match i {
            Some(i) if i + 1 < self.pieces.len() => {
                let p = self.pieces[i];
                self.pieces[i + 1].window_start - (p.window_start + p.samples)
            }
            _ => 0,
        }
    }

    /// Seconds of file speech this window covers.
    pub fn speech_s(&self) -> f64 {
        self.pieces.iter().map(|p| p.samples).sum::<u64>() as f64 / 16_000.0
    }
}

/// Turns a file's utterances into windows, in order.
pub struct Packer {
    max_samples: usize,
    gap_samples: usize,
    current: Option<Window>,
    next_index: u32,
    /// The rest of an utterance cut without a pause: (file start, audio).
    carry: Option<(u64, Vec<f32>)>,
}

impl Packer {
    pub fn new(max_s: f32, gap_ms: u32) -> Self {
        Self {
            max_samples: (max_s * 16_000.0) as usize,
            gap_samples: gap_ms as usize * SAMPLES_PER_MS as usize,
            current: None,
            next_index: 0,
            carry: None,
        }
    }

    /// Adds an utterance; returns the windows it completed (at most two).
    pub fn push(&mut self, u: Utterance) -> Vec<Window> {
        let mut start = u.start_sample;
        let mut audio = u.audio;
        let mut done = Vec::new();
        if let Some((carry_start, mut carried)) = self.carry.take() {
            if carry_start + carried.len() as u64 == start {
                carried.extend_from_slice(&audio);
                start = carry_start;
                audio = carried;
            } else {
                done.extend(self.add(carry_start, carried));
            }
        }
        if u.reason == EndReason::MaxLength {
            let cut = quietest_cut(&audio);
            let rest = audio.split_off(cut);
            if !rest.is_empty() {
                self.carry = Some((start + cut as u64, rest));
            }
        }
        done.extend(self.add(start, audio));
        done
    }

    /// The last window, once the file has ended.
    pub fn finish(&mut self) -> Vec<Window> {
        let mut done = Vec::new();
        if let Some((start, audio)) = self.carry.take() {
            done.extend(self.add(start, audio));
        }
        done.extend(self.current.take());
        done
    }

    fn add(&mut self, file_start: u64, audio: Vec<f32>) -> Option<Window> {
        if audio.is_empty() {
            return None;
        }
        let fits = self
            .current
            .as_ref()
            .is_none_or(|w| w.audio.len() + audio.len() <= self.max_samples);
        let full = if fits { None } else { self.current.take() };
        let index = &mut self.next_index;
        let window = self.current.get_or_insert_with(|| {
            let w = Window {
                index: *index,
                audio: Vec::new(),
                pieces: Vec::new(),
            };
            *index += 1;
            w
        });
        window.pieces.push(Piece {
            window_start: window.audio.len() as u64,
            file_start,
            samples: audio.len() as u64,
        });
        window.audio.extend_from_slice(&audio);
        // The pause after it, shortened, so words stay apart.
        if window.audio.len() + self.gap_samples <= self.max_samples {
            window
                .audio
                .resize(window.audio.len() + self.gap_samples, 0.0);
        }
        full
    }
}

/// Where to cut speech that had no pause: the quietest stretch in its last
/// seconds (the sample index to cut at).
fn quietest_cut(audio: &[f32]) -> usize {
    let frame = (SPLIT_FRAME_MS * SAMPLES_PER_MS) as usize;
    let search = (SPLIT_SEARCH_MS * SAMPLES_PER_MS) as usize;
    if audio.len() <= search + frame {
        return audio.len();
    }
    let from = audio.len() - search;
    (from..audio.len() - frame)
        .step_by(frame / 3)
        .min_by(|&a, &b| {
            let energy = |at: usize| audio[at..at + frame].iter().map(|s| s * s).sum::<f32>();
            energy(a).total_cmp(&energy(b))
        })
        .map_or(audio.len(), |at| at + frame / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utterance(index: u32, start_s: f64, len_s: f64, reason: EndReason) -> Utterance {
        let start = (start_s * 16_000.0) as u64;
        let len = (len_s * 16_000.0) as usize;
        Utterance {
            index,
            start_sample: start,
            end_sample: start + len as u64,
            audio: vec![0.5; len],
            reason,
        }
    }

    #[test]
    fn utterances_fill_windows_up_to_the_limit_and_map_back_to_file_time() {
        let mut p = Packer::new(10.0, 300);
        let mut windows = Vec::new();
        for (i, (start, len)) in [(1.0, 4.0), (8.0, 4.0), (20.0, 4.0)]
            .into_iter()
            .enumerate()
        {
            windows.extend(p.push(utterance(i as u32, start, len, EndReason::Silence)));
        }
        windows.extend(p.finish());
        assert_eq!(windows.len(), 2);
        let w = &windows[0];
        assert_eq!(w.index, 0);
        assert_eq!(w.pieces.len(), 2, "4 + 0.3 + 4 fits in 10 s");
        // 1 s into the second piece (window 5.3 s) is file 9 s.
        assert_eq!(w.file_ms(5_300), 9_000 - 1_000 + 1_000);
        assert_eq!(w.file_ms(500), 1_500);
        // In the inserted gap: the end of the speech before it, or for a
        // start, the start of the speech after it.
        assert_eq!(w.file_ms(4_100), 5_000);
        assert_eq!(w.file_start_ms(4_100), 8_000);
        assert_eq!(w.file_start_ms(500), 1_500);
        assert_eq!(windows[1].file_ms(0), 20_000);
        assert!((w.speech_s() - 8.0).abs() < 1e-9);
        // A segment that starts 0.2 s before the first piece ends (window
        // 3.8 s) and runs into the second starts with the second.
        assert_eq!(w.file_span_ms(3_800, 6_000), (8_000, 9_700));
        // One that starts well inside the first keeps its start.
        assert_eq!(w.file_span_ms(2_000, 6_000), (3_000, 9_700));
        // One that ends inside the piece it starts in keeps its start.
        assert_eq!(w.file_span_ms(3_800, 3_900), (4_800, 4_900));
    }

    #[test]
    fn speech_without_a_pause_is_cut_at_its_quietest_point_and_carried_on() {
        let mut p = Packer::new(30.0, 300);
        let mut long = utterance(0, 0.0, 20.0, EndReason::MaxLength);
        // A quiet spot 2 s before the forced cut.
        let quiet = 18 * 16_000;
        long.audio[quiet..quiet + 800]
            .iter_mut()
            .for_each(|s| *s = 0.0);
        assert!(p.push(long).is_empty());
        let next = utterance(1, 20.0, 3.0, EndReason::Silence);
        assert!(p.push(next).is_empty());
        let w = p.finish();
        assert_eq!(w.len(), 1);
        let pieces = &w[0].pieces;
        assert_eq!(pieces.len(), 2);
        let cut = pieces[1].file_start as usize;
        assert!(
            (quiet..quiet + 800).contains(&cut),
            "cut at {cut}, the quiet stretch is at {quiet}"
        );
        assert_eq!(
            pieces[1].samples as usize,
            23 * 16_000 - cut,
            "the rest joined the next utterance"
        );
    }
}
