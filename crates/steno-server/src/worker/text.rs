//! Transcript clean-up: raw Whisper segment text (and timed tokens) in, the text (and words) a user should see out.
//!
//! Removes non-speech annotations (`[BLANK_AUDIO]`, `(music)`), collapses
//! whitespace, and cuts repetition loops that small Whisper models fall into
//! ("Experience proves this. Experience proves this. ..."), short phrases and
//! whole sentences alike.

/// Cleans one utterance's text.
pub fn clean(raw: &str) -> String {
    let stripped = strip_annotations(raw);
    let words: Vec<&str> = stripped.split_whitespace().collect();
    kept(&words)
        .into_iter()
        .map(|i| words[i])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Which of `words` are left once loops are cut (indices, in order).
fn kept(words: &[&str]) -> Vec<usize> {
    let first = collapse_repeats(words);
    let left: Vec<&str> = first.iter().map(|&i| words[i]).collect();
    collapse_sentences(&left)
        .into_iter()
        .map(|i| first[i])
        .collect()
}

/// Cuts the same loops out of timed words as [`clean`] cuts out of text,
/// so that a final's words say what its text says.
pub fn collapse_loops(words: &mut Vec<super::Word>) {
    let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
    let keep = kept(&texts);
    if keep.len() == words.len() {
        return;
    }
    let mut keep = keep.into_iter().peekable();
    let mut i = 0;
    words.retain(|_| {
        let k = keep.next_if_eq(&i).is_some();
        i += 1;
        k
    });
}

/// Drops `[...]` and `(...)` spans: Whisper's tags for sounds, not speech.
fn strip_annotations(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut depth = 0usize;
    for c in raw.chars() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// A word as loops are compared: its letters and digits, lower case.
fn key(w: &str) -> String {
    w.trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

/// Keeps one copy of any run of 2 to 8 words repeated three or more times
/// back to back, or of one word repeated five or more times. Fewer repeats
/// are left alone: people say "no, no", and digits read "one zero zero zero".
fn collapse_repeats(words: &[&str]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(words.len());
    let mut i = 0;
    'outer: while i < words.len() {
        for n in 1..=8usize {
            let min_copies = if n == 1 { 5 } else { 3 };
            if i + min_copies * n > words.len() {
                break;
            }
            let same = |a: usize, b: usize| (0..n).all(|k| key(words[a + k]) == key(words[b + k]));
            let mut end = i + n;
            while end + n <= words.len() && same(i, end) {
                end += n;
            }
            if end - i >= min_copies * n {
                out.extend(i..i + n);
                i = end;
                continue 'outer;
            }
        }
        out.push(i);
        i += 1;
    }
    out
}

/// Sentences of at least this many words repeated back to back are a loop.
const MIN_LOOPED_SENTENCE: usize = 4;

/// Keeps one copy of a sentence (words up to `.`, `?` or `!`) of at least
/// [`MIN_LOOPED_SENTENCE`] words said again right after itself, and drops a
/// cut-off start of it at the end once it was repeated. That is how tiny.en
/// loops on a short utterance in a window mostly of padding (a degraded
/// final's 512 frames): "The two stray kittens gradually make themselves at
/// home. The two stray kittens gradually make themselves at home." (seen in
/// the capacity sweep, 2026-12-06), too long for `collapse_repeats`. People
/// rarely say a sentence that long twice in one breath.
fn collapse_sentences(words: &[&str]) -> Vec<usize> {
    let ends_sentence = |w: &str| {
        w.trim_end_matches(['"', '\'', ')'])
            .ends_with(['.', '?', '!'])
    };
    // Each sentence as the range of its words.
    let mut sentences: Vec<std::ops::Range<usize>> = Vec::new();
    let mut start = 0;
    for (i, w) in words.iter().enumerate() {
        if ends_sentence(w) || i + 1 == words.len() {
            sentences.push(start..i + 1);
            start = i + 1;
        }
    }
    let same = |a: &[&str], b: &[&str]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| key(x) == key(y))
    };
    let mut out: Vec<usize> = Vec::with_capacity(words.len());
    let mut last: Option<&[&str]> = None;
    let mut looped = false;
    for (i, range) in sentences.iter().enumerate() {
        let sentence = &words[range.clone()];
        if let Some(prev) = last
            && prev.len() >= MIN_LOOPED_SENTENCE
        {
            if same(prev, sentence) {
                looped = true;
                continue;
            }
            // The loop ran out of tokens part-way through one more copy.
            let cut = i + 1 == sentences.len()
                && !ends_sentence(sentence.last().copied().unwrap_or_default())
                && sentence.len() < prev.len();
            if looped && cut && same(&prev[..sentence.len()], sentence) {
                continue;
            }
        }
        out.extend(range.clone());
        last = Some(sentence);
        looped = false;
    }
    out
}

/// One decoded token with its times (ms from the start of the audio).
pub struct TimedToken {
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub probability: f32,
}

/// Joins BPE pieces into words: a piece that starts with a space starts a
/// word, others (the rest of a word, punctuation) extend the last one.
/// Annotations (`[BLANK_AUDIO]`, `(music)`) are dropped, as in [`clean`].
pub fn words(tokens: impl Iterator<Item = TimedToken>) -> Vec<super::Word> {
    let mut out: Vec<super::Word> = Vec::new();
    // Pieces of the word being built, for the mean probability.
    let mut pieces = 0u32;
    for t in tokens {
        let starts_word = t.text.starts_with(' ') || out.is_empty();
        let piece = t.text.trim();
        if piece.is_empty() {
            continue;
        }
        if starts_word {
            if let Some(last) = out.last_mut() {
                last.probability /= pieces.max(1) as f32;
            }
            out.push(super::Word {
                text: piece.to_string(),
                start_ms: t.start_ms,
                end_ms: t.end_ms.max(t.start_ms),
                probability: t.probability,
            });
            pieces = 1;
        } else if let Some(last) = out.last_mut() {
            last.text.push_str(piece);
            last.end_ms = last.end_ms.max(t.end_ms);
            last.probability += t.probability;
            pieces += 1;
        }
    }
    if let Some(last) = out.last_mut() {
        last.probability /= pieces.max(1) as f32;
    }
    out.retain(|w| {
        let annotation = (w.text.starts_with('[') && w.text.ends_with(']'))
            || (w.text.starts_with('(') && w.text.ends_with(')'));
        !annotation && w.text.chars().any(char::is_alphanumeric)
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_and_spaces_go() {
        assert_eq!(clean(" [BLANK_AUDIO] "), "");
        assert_eq!(clean(" Hello (music)  world. "), "Hello world.");
    }

    #[test]
    fn loops_collapse_to_one_copy() {
        let looped = "Experience proves this. ".repeat(40);
        assert_eq!(clean(&looped), "Experience proves this.");
        assert_eq!(clean("the the the the the the cat"), "the cat");
        assert_eq!(clean("I said go on go on go on now"), "I said go on now");
    }

    #[test]
    fn a_long_sentence_said_again_is_a_loop() {
        // Degraded finals from the capacity sweep (2026-12-06).
        let kittens = "The two stray kittens gradually make themselves at home.";
        assert_eq!(clean(&format!("{kittens} {kittens}")), kittens);
        let hester = "Yet these thoughts affected has to print less with hope than apprehension.";
        let looped = format!("{hester} {hester} {hester} {hester} Yet these thoughts affected");
        assert_eq!(clean(&looped), hester);
        // Case and punctuation do not hide a copy.
        assert_eq!(
            clean("Please call me back tomorrow. please call me back, tomorrow!"),
            "Please call me back tomorrow."
        );
    }

    #[test]
    fn timed_words_lose_the_same_loop_as_the_text() {
        let text = "Make themselves at home. Make themselves at home. Make";
        let mut w = words(
            text.split(' ')
                .enumerate()
                .map(|(i, p)| token(&format!(" {p}"), i as u64 * 100, i as u64 * 100 + 90)),
        );
        collapse_loops(&mut w);
        let texts: Vec<_> = w.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts.join(" "), clean(text));
        assert_eq!(w.last().unwrap().end_ms, 390);
        // Nothing to cut: nothing changes.
        let mut plain = words([token(" Hello", 0, 100), token(" there.", 100, 200)].into_iter());
        collapse_loops(&mut plain);
        assert_eq!(plain.len(), 2);
    }

    #[test]
    fn different_or_short_sentences_are_kept() {
        let s = "Please call me back tomorrow. Please call me back tonight.";
        assert_eq!(clean(s), s);
        // Short ones people do repeat.
        assert_eq!(clean("Thank you. Thank you."), "Thank you. Thank you.");
        assert_eq!(
            clean("Are you there? Are you there?"),
            "Are you there? Are you there?"
        );
        // A sentence that starts like the one before is not a cut-off copy
        // unless a copy came first.
        let s = "The meeting starts at ten. The meeting";
        assert_eq!(clean(s), s);
        // Not back to back.
        let s = "We will win this. Then we rest. We will win this.";
        assert_eq!(clean(s), s);
    }

    #[test]
    fn ordinary_speech_is_untouched() {
        let s = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";
        assert_eq!(clean(s), s);
        assert_eq!(clean("no, no, I mean it"), "no, no, I mean it");
        assert_eq!(
            clean("one zero zero zero one nine"),
            "one zero zero zero one nine"
        );
        assert_eq!(clean("go go go"), "go go go");
    }

    fn token(text: &str, start_ms: u64, end_ms: u64) -> TimedToken {
        TimedToken {
            text: text.into(),
            start_ms,
            end_ms,
            probability: 0.5,
        }
    }

    #[test]
    fn pieces_join_into_words_with_their_times() {
        let w = words(
            [
                token(" Hel", 0, 200),
                token("lo", 200, 400),
                token(",", 400, 410),
                token(" world", 900, 1300),
                token(".", 1300, 1310),
                token(" [BLANK_AUDIO]", 1400, 2000),
            ]
            .into_iter(),
        );
        let texts: Vec<_> = w.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["Hello,", "world."]);
        assert_eq!((w[0].start_ms, w[0].end_ms), (0, 410));
        assert_eq!((w[1].start_ms, w[1].end_ms), (900, 1310));
        assert!((w[0].probability - 0.5).abs() < 1e-6);
    }
}
