//! Transcript clean-up: raw Whisper segment text in, the text a user should see out.
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
}
