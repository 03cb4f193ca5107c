//! Transcript clean-up: raw Whisper segment text (and timed tokens) in, the text (and words) a user should see out.
//!
//! Removes non-speech annotations (`[BLANK_AUDIO]`, `(music)`), collapses
//! whitespace, and cuts repetition loops that small Whisper models fall into
//! ("Experience proves this. Experience proves this. ...").

/// Cleans one utterance's text.
pub fn clean(raw: &str) -> String {
    let stripped = strip_annotations(raw);
    let words: Vec<&str> = stripped.split_whitespace().collect();
    collapse_repeats(&words).join(" ")
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

/// Keeps one copy of any run of 2 to 8 words repeated three or more times
/// back to back, or of one word repeated five or more times. Fewer repeats
/// are left alone: people say "no, no", and digits read "one zero zero zero".
fn collapse_repeats<'a>(words: &[&'a str]) -> Vec<&'a str> {
    let key = |w: &str| {
        w.trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
    };
    let mut out: Vec<&'a str> = Vec::with_capacity(words.len());
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
                out.extend_from_slice(&words[i..i + n]);
                i = end;
                continue 'outer;
            }
        }
        out.push(words[i]);
        i += 1;
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
