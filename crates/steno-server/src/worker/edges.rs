//! Word edges against the signal: decoded words (times from whisper's token timestamps) and their 16 kHz audio in, the same words with edges moved onto the silences the audio really has out.
//!
//! whisper.cpp's token timestamps (without DTW) are a heuristic: between two
//! words with a pause, it often gives the pause to one of them (a word that
//! ends where the next one starts, 200-500 ms late), and small numeric
//! differences between CPUs move that choice. Where the audio has a clear
//! silence (at least [`MIN_SILENCE_MS`], quieter than [`SILENT_RATIO`] of the
//! loudest frame) next to a boundary, the boundary goes onto it: the word
//! before ends where the silence starts, the word after starts where it ends.
//! Where the audio has none (fast speech, a noisy room), the times stay as
//! whisper gave them.

use super::Word;

/// Frame length for the energy measure.
const FRAME_MS: u64 = 10;
const FRAME: usize = 16 * FRAME_MS as usize;
/// A frame is silent below this share of the loudest frame's RMS (-30 dB).
const SILENT_RATIO: f32 = 0.03;
/// Shorter quiet runs are the closures inside words ("k", "t"), not pauses.
const MIN_SILENCE_MS: u64 = 120;
/// How far from whisper's boundary a silence may be and still be that
/// boundary's.
const REACH_MS: u64 = 300;

/// Moves each word's edges onto the silences of `audio` they are next to.
pub fn snap_to_silence(words: &mut [Word], audio: &[f32]) {
    if words.is_empty() {
        return;
    }
    let runs = silent_runs(audio);
    if runs.is_empty() {
        return;
    }
    // Between two words: the longest silence within reach of the gap
    // whisper left between them (often none) becomes the gap.
    for i in 1..words.len() {
        let (low, high) = (words[i - 1].start_ms, words[i].end_ms);
        let from = words[i - 1].end_ms.min(words[i].start_ms);
        let to = words[i - 1].end_ms.max(words[i].start_ms);
        let best = runs
            .iter()
            .filter(|r| r.1 + REACH_MS >= from && r.0 <= to + REACH_MS)
            // The silence must lie between the two words' outer edges, so
            // both keep some sound.
            .filter(|r| r.0 > low && r.1 < high)
            .max_by_key(|r| r.1 - r.0);
        if let Some(&(start, end)) = best {
            words[i - 1].end_ms = start;
            words[i].start_ms = end;
        }
    }
    // The outer edges: a word does not start or end inside a silence.
    for w in words.iter_mut() {
        if let Some(r) = runs.iter().find(|r| r.0 <= w.start_ms && w.start_ms < r.1) {
            w.start_ms = r.1.min(w.end_ms);
        }
        if let Some(r) = runs.iter().find(|r| r.0 < w.end_ms && w.end_ms <= r.1) {
            w.end_ms = r.0.max(w.start_ms);
        }
    }
}

/// The silent stretches of `audio`, as (start, end) in ms, at least
/// [`MIN_SILENCE_MS`] long.
fn silent_runs(audio: &[f32]) -> Vec<(u64, u64)> {
    let rms: Vec<f32> = audio
        .chunks(FRAME)
        .map(|f| (f.iter().map(|s| s * s).sum::<f32>() / f.len() as f32).sqrt())
        .collect();
    let peak = rms.iter().copied().fold(0.0f32, f32::max);
    if peak <= 0.0 {
        return Vec::new();
    }
    let quiet = peak * SILENT_RATIO;
    let mut runs = Vec::new();
    let mut start = None;
    for (i, &r) in rms
        .iter()
        .chain(std::iter::once(&f32::INFINITY))
        .enumerate()
    {
        match (r < quiet, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                let (s_ms, e_ms) = (s as u64 * FRAME_MS, i as u64 * FRAME_MS);
                if e_ms - s_ms >= MIN_SILENCE_MS {
                    runs.push((s_ms, e_ms));
                }
                start = None;
            }
            _ => {}
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Audio of loud (a tone) and silent spans, in ms.
    fn audio(spans: &[(u64, bool)]) -> Vec<f32> {
        let mut out = Vec::new();
        for &(ms, loud) in spans {
            for i in 0..(ms as usize * 16) {
                let s = if loud {
                    0.3 * (i as f32 * 0.2).sin()
                } else {
                    0.0
                };
                out.push(s);
            }
        }
        out
    }

    fn word(text: &str, start_ms: u64, end_ms: u64) -> Word {
        Word::heard(text, start_ms, end_ms)
    }

    fn edges(words: &[Word]) -> Vec<(u64, u64)> {
        words.iter().map(|w| (w.start_ms, w.end_ms)).collect()
    }

    #[test]
    fn a_pause_given_to_one_word_goes_back_between_them() {
        // Sound 500-1000 and 1300-1800; whisper said the first word ran
        // on to 1500, where it has the second start.
        let a = audio(&[
            (500, false),
            (500, true),
            (300, false),
            (500, true),
            (400, false),
        ]);
        let mut words = vec![word("coffee", 500, 1500), word("yellow", 1500, 1800)];
        snap_to_silence(&mut words, &a);
        assert_eq!(edges(&words), vec![(500, 1000), (1300, 1800)]);
    }

    #[test]
    fn edges_inside_silence_move_to_the_sound() {
        let a = audio(&[(500, false), (500, true), (500, false)]);
        let mut words = vec![word("morning", 300, 1200)];
        snap_to_silence(&mut words, &a);
        assert_eq!(edges(&words), vec![(500, 1000)]);
    }

    #[test]
    fn short_closures_and_unbroken_speech_keep_whispers_times() {
        // 60 ms of quiet inside a word is a stop consonant, not a pause.
        let a = audio(&[(200, true), (60, false), (600, true)]);
        let mut words = vec![word("good", 0, 420), word("day", 420, 860)];
        snap_to_silence(&mut words, &a);
        assert_eq!(edges(&words), vec![(0, 420), (420, 860)]);
    }

    #[test]
    fn a_silence_far_from_the_boundary_is_left_alone() {
        // The pause is at 1000-1300 but whisper's boundary is at 2000:
        // too far to be the same boundary.
        let a = audio(&[(1000, true), (300, false), (1500, true)]);
        let mut words = vec![word("one", 0, 2000), word("two", 2000, 2800)];
        snap_to_silence(&mut words, &a);
        assert_eq!(edges(&words), vec![(0, 2000), (2000, 2800)]);
    }

    #[test]
    fn silent_or_empty_audio_changes_nothing() {
        let mut words = vec![word("hm", 100, 200)];
        snap_to_silence(&mut words, &[0.0; 16_000]);
        snap_to_silence(&mut words, &[]);
        assert_eq!(edges(&words), vec![(100, 200)]);
    }
}
