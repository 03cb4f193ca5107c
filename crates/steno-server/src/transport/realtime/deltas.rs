//! Partial transcripts in, append-only deltas out: a word is sent once two successive partials agree on it (and on every word before it), and the final's text completes what was sent.
//!
//! Whisper revises the end of a partial as more audio comes; the words two
//! partials in a row share are the ones it has settled. Deltas never take
//! anything back: if a partial no longer begins with what was sent, nothing
//! more is sent until the final, whose `completed` event carries the whole
//! text either way.

/// The deltas of one item (utterance).
#[derive(Debug, Default)]
pub struct Deltas {
    /// Words sent so far.
    sent: Vec<String>,
    /// The previous partial's words.
    last: Vec<String>,
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

impl Deltas {
    /// The delta a new partial allows, if any.
    pub fn partial(&mut self, text: &str) -> Option<String> {
        let now = words(text);
        let agreed = now
            .iter()
            .zip(&self.last)
            .take_while(|(a, b)| a == b)
            .count();
        self.last = now;
        self.extend(agreed)
    }

    /// What the final adds to the deltas sent (None if nothing, or if it
    /// does not begin with them); the item is done after it.
    pub fn finish(&mut self, text: &str) -> Option<String> {
        self.last = words(text);
        let delta = self.extend(self.last.len());
        *self = Self::default();
        delta
    }

    /// Sends `last[..upto]` beyond what was sent, if it begins with it.
    fn extend(&mut self, upto: usize) -> Option<String> {
        if upto <= self.sent.len() || self.last[..self.sent.len()] != self.sent[..] {
            return None;
        }
        let new = &self.last[self.sent.len()..upto];
        let mut delta = new.join(" ");
        if !self.sent.is_empty() {
            delta.insert(0, ' ');
        }
        self.sent.extend_from_slice(new);
        Some(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_go_out_once_two_partials_agree() {
        let mut d = Deltas::default();
        assert_eq!(d.partial(" Please"), None);
        assert_eq!(d.partial(" Please call"), Some("Please".into()));
        assert_eq!(d.partial(" Please call me"), Some(" call".into()));
        // A revision of the unsent tail changes nothing sent.
        assert_eq!(d.partial(" Please call you back"), None);
        assert_eq!(d.partial(" Please call you back"), Some(" you back".into()));
        assert_eq!(
            d.finish(" Please call you back tomorrow."),
            Some(" tomorrow.".into())
        );
        // The next item starts afresh.
        assert_eq!(d.partial(" Good"), None);
    }

    #[test]
    fn a_final_that_takes_words_back_adds_no_delta() {
        let mut d = Deltas::default();
        d.partial("Please call me");
        assert_eq!(d.partial("Please call me"), Some("Please call me".into()));
        assert_eq!(d.partial("Police call"), None);
        assert_eq!(d.finish("Police called me."), None);
        let mut d = Deltas::default();
        assert_eq!(d.finish("Hello there."), Some("Hello there.".into()));
    }

    #[test]
    fn the_deltas_joined_are_the_final_text() {
        let partials = [
            "And so",
            "And so my",
            "And so my fellow Americans",
            "And so my fellow Americans ask",
        ];
        let final_text = " And so my fellow Americans, ask not.";
        let mut d = Deltas::default();
        let joined: String = partials.iter().filter_map(|p| d.partial(p)).collect();
        assert_eq!(joined, "And so my fellow Americans");
        // "Americans," differs from "Americans": the rest cannot append
        // (`completed` carries the whole text).
        assert_eq!(d.finish(final_text), None);
        let mut d = Deltas::default();
        let mut joined: String = ["Ask not", "Ask not what"]
            .iter()
            .filter_map(|p| d.partial(p))
            .collect();
        joined.extend(d.finish("Ask not what your country"));
        assert_eq!(joined, "Ask not what your country");
    }
}
