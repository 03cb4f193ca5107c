//! Word error rate: a reference and a hypothesis transcript in, edit counts out, after the
//! normalisation the shared speech set's README asks for: lower case, punctuation
//! dropped, "mister" = "mr", digits as words.
//!
//! Used by the black-box tests (`tests/common`) and the load generator, so both
//! score the same way.

/// The words of `text` as they are compared: lower case, no punctuation,
/// numbers spelled out.
pub fn normalise(text: &str) -> Vec<String> {
    const DIGITS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let lower = text.to_lowercase().replace(['-', '—'], " ");
    let mut words = Vec::new();
    for raw in lower.split_whitespace() {
        let w: String = raw
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '\'')
            .collect();
        let w = w.trim_matches('\'').to_string();
        if w.is_empty() {
            continue;
        }
        if w.chars().all(|c| c.is_ascii_digit()) {
            match w.parse::<usize>() {
                // Short numbers are said as numbers ("ten"), long ones are
                // digit strings ("one zero zero zero one").
                Ok(n) if n < 100 && !w.starts_with('0') => words.extend(number_words(n)),
                _ => words.extend(
                    w.chars()
                        .map(|c| DIGITS[c as usize - '0' as usize].to_string()),
                ),
            }
            continue;
        }
        words.push(match w.as_str() {
            "mister" => "mr".to_string(),
            "oh" => "zero".to_string(),
            _ => w,
        });
    }
    words
}

fn number_words(n: usize) -> Vec<String> {
    const SMALL: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = [
        "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    if n < 20 {
        return vec![SMALL[n].to_string()];
    }
    let mut v = vec![TENS[n / 10].to_string()];
    if !n.is_multiple_of(10) {
        v.push(SMALL[n % 10].to_string());
    }
    v
}

/// (edits, reference words).
pub fn edits(reference: &str, hypothesis: &str) -> (usize, usize) {
    let r = normalise(reference);
    let h = normalise(hypothesis);
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for i in 1..=r.len() {
        let mut cur = vec![i; h.len() + 1];
        for j in 1..=h.len() {
            let sub = prev[j - 1] + usize::from(r[i - 1] != h[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        prev = cur;
    }
    (prev[h.len()], r.len())
}

/// Edits per reference word.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (e, n) = edits(reference, hypothesis);
    e as f64 / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wer_counts_edits_after_normalising() {
        assert_eq!(wer("Mister Quilter, is here.", "mr quilter is here"), 0.0);
        assert_eq!(wer("go forward ten meters", "go forward 10 meters"), 0.0);
        assert_eq!(wer("twenty one", "21"), 0.0);
        assert_eq!(wer("one oh two", "1 0 2"), 0.0);
        assert_eq!(wer("a b c d", "a x c"), 0.5);
    }
}
