//! Packing finals: the utterances of several sessions that wait for a worker in, laid end to end with silence between for one encoder pass; the words of that one decode out, split back by time so that each job gets exactly its own, or is run again alone.
//!
//! Every final pays for a whole encoder window (`model.min_audio_ctx`, 768
//! frames: 14 s of audio before the margin) whatever its length, and most
//! utterances are 2 to 8 s. When finals queue up, the worker that takes
//! one also takes the finals already waiting that fit in that window
//! (`workers.pack_max_s`), with `workers.pack_gap_ms` of silence between
//! them, and decodes them at once with word times. A lone final never waits
//! for company.
//!
//! The split is by each word's time. A job's words must lie within its own
//! stretch (give or take a quarter of the gap) and come in order; a word in
//! a gap, or outside every stretch, or going back to an earlier one, or with
//! no duration (whisper's times collapsed, or the word lies in silence),
//! makes the stretches around it unclear; a stretch that got no word is unclear
//! too (whisper sometimes skips a short utterance between two others), and
//! so is one whose words start more than [`LEAD_MS`] into it or stop more
//! than [`TAIL_MS`] before its end (whisper sometimes ends a decode before
//! the last utterance's last words, or puts them all at the end of the
//! audio; an utterance's audio has only 200 ms of pre-roll and tail, and
//! whisper's times after a gap were seen up to 0.9 s late).
//! Unclear jobs are transcribed again alone: a session may get its words
//! late, never another session's.

use super::Word;

/// Most time before a stretch's first word before its words count as
/// cut short.
pub const LEAD_MS: u64 = 1200;
/// Most time after a stretch's last word before its words count as cut
/// short (seen: at most 0.45 s when nothing was missing).
pub const TAIL_MS: u64 = 800;

/// How finals are packed (`[workers]` `pack_*`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PackLimits {
    /// Silence between two packed utterances, in samples.
    pub gap: usize,
    /// Most samples in one pack, gaps included.
    pub max: usize,
}

/// Utterances laid end to end.
#[derive(Debug)]
pub struct Packed {
    pub audio: Vec<f32>,
    /// Each utterance's stretch in `audio`, in ms: (start, end).
    pub spans: Vec<(u64, u64)>,
}

fn ms(samples: usize) -> u64 {
    samples as u64 * 1000 / 16_000
}

/// `parts` with `gap` samples of silence between them.
pub fn pack(parts: &[&[f32]], gap: usize) -> Packed {
    let total = parts.iter().map(|p| p.len()).sum::<usize>() + gap * parts.len().saturating_sub(1);
    let mut audio = Vec::with_capacity(total);
    let mut spans = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            audio.resize(audio.len() + gap, 0.0);
        }
        let start = audio.len();
        audio.extend_from_slice(part);
        spans.push((ms(start), ms(audio.len())));
    }
    Packed { audio, spans }
}

/// The words of one decode over packed audio, handed back per stretch,
/// with times from the start of that stretch; None where the split is
/// unclear (see the module).
pub fn split(words: &[Word], spans: &[(u64, u64)], gap_ms: u64) -> Vec<Option<Vec<Word>>> {
    let tolerance = gap_ms / 4;
    let mut out: Vec<Option<Vec<Word>>> = vec![Some(Vec::new()); spans.len()];
    let mut unclear = vec![false; spans.len()];
    let mut last = 0;
    for w in words {
        let home = spans.iter().position(|&(start, end)| {
            w.start_ms + tolerance >= start && w.end_ms <= end + tolerance
        });
        // A word with no time of its own: whisper's times collapsed (seen
        // over long packs: whole sentences at one instant, a previous
        // stretch's last word at the next one's start), or the word lies
        // wholly in silence (`edges` shrinks those to nothing).
        let home = home.filter(|_| w.end_ms > w.start_ms);
        match home {
            Some(i) if i >= last => {
                last = i;
                if let Some(mine) = &mut out[i] {
                    let start = spans[i].0;
                    mine.push(Word {
                        text: w.text.clone(),
                        start_ms: w.start_ms.saturating_sub(start),
                        end_ms: w.end_ms.saturating_sub(start),
                        probability: w.probability,
                    });
                }
            }
            _ => {
                // Between stretches, across one's end, or back in time: the
                // stretches it lies between cannot be told apart.
                let mid = (w.start_ms + w.end_ms) / 2;
                let after = spans.iter().position(|&(start, _)| start > mid);
                let before = match after {
                    Some(0) => None,
                    Some(a) => Some(a - 1),
                    None => Some(spans.len() - 1),
                };
                for i in [before, after].into_iter().flatten() {
                    unclear[i] = true;
                }
                unclear[last] = true;
            }
        }
    }
    for (i, part) in out.iter_mut().enumerate() {
        let (start, end) = spans[i];
        let cut_short = part
            .as_ref()
            .is_none_or(|words| match (words.first(), words.last()) {
                (Some(first), Some(last)) => {
                    first.start_ms > LEAD_MS || last.end_ms + TAIL_MS < end - start
                }
                _ => true,
            });
        if unclear[i] || cut_short {
            *part = None;
        }
    }
    out
}

/// A stretch's text: its words, as whisper spelled them.
pub fn text(words: &[Word]) -> String {
    words
        .iter()
        .map(|w| w.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, start_ms: u64, end_ms: u64) -> Word {
        Word::heard(text, start_ms, end_ms)
    }

    #[test]
    fn parts_are_laid_out_with_gaps() {
        let a = vec![0.5; 16_000];
        let b = vec![0.25; 8_000];
        let p = pack(&[&a, &b], 16_000);
        assert_eq!(p.audio.len(), 40_000);
        assert_eq!(p.spans, [(0, 1000), (2000, 2500)]);
        assert!(p.audio[16_000..32_000].iter().all(|&s| s == 0.0));
        assert_eq!(p.audio[32_000], 0.25);
    }

    #[test]
    fn each_stretch_gets_its_own_words_rebased() {
        let spans = [(0, 2000), (3000, 5000)];
        let words = [
            word("Hello", 100, 500),
            word("there.", 500, 1900),
            word("Good", 3100, 3400),
            word("morning.", 3400, 5100),
        ];
        let parts = split(&words, &spans, 1000);
        let a = parts[0].as_ref().unwrap();
        let b = parts[1].as_ref().unwrap();
        assert_eq!(text(a), "Hello there.");
        assert_eq!(text(b), "Good morning.");
        assert_eq!((b[0].start_ms, b[1].end_ms), (100, 2100));
    }

    #[test]
    fn a_word_in_a_gap_makes_both_neighbours_unclear() {
        let spans = [(0, 2000), (3000, 5000), (6000, 8000)];
        let words = [
            word("one", 100, 1500),
            word("stray", 2300, 2700),
            word("two", 3100, 4500),
            word("three", 6100, 7500),
        ];
        let parts = split(&words, &spans, 1000);
        assert!(parts[0].is_none() && parts[1].is_none());
        assert_eq!(text(parts[2].as_ref().unwrap()), "three");
    }

    #[test]
    fn words_without_duration_make_their_neighbours_unclear() {
        // Seen with the real model over a 13 s pack: the first stretch's
        // last word at the second's start, the third's words all at one
        // instant.
        let spans = [(0, 4040), (5040, 9080), (10080, 13540)];
        let words = [
            word("meeting", 2970, 3670),
            word("afternoon.", 5170, 5170),
            word("Thank", 6910, 7200),
            word("Good", 13530, 13530),
            word("morning.", 13530, 13530),
        ];
        assert!(split(&words, &spans, 1000).iter().all(Option::is_none));
    }

    #[test]
    fn a_skipped_stretch_or_a_word_back_in_time_is_unclear() {
        let spans = [(0, 2000), (3000, 5000), (6000, 8000)];
        // Whisper gave the middle utterance nothing.
        let parts = split(
            &[word("one", 100, 1500), word("three", 6100, 7500)],
            &spans,
            1000,
        );
        assert!(parts[0].is_some() && parts[1].is_none() && parts[2].is_some());
        // A word timed back inside an earlier stretch.
        let parts = split(
            &[
                word("one", 100, 1500),
                word("two", 3100, 4500),
                word("again", 600, 900),
            ],
            &spans,
            1000,
        );
        assert!(parts[0].is_none() && parts[1].is_none());
        // The last words missing: the stretch's words stop 1.5 s early.
        let parts = split(
            &[word("one", 100, 1900), word("two", 3100, 3500)],
            &spans,
            1000,
        );
        assert!(parts[0].is_some() && parts[1].is_none() && parts[2].is_none());
        // Nothing at all: every stretch runs alone.
        assert!(split(&[], &spans, 1000).iter().all(Option::is_none));
    }
}
