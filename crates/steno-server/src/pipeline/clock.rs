//! Arrival clock: (sample position, arrival instant) marks in, the instant a given sample reached the server out.
//!
//! Lets end-of-speech-to-final latency be measured from when the last sample
//! of an utterance arrived, whatever pace the client streams at. Holds at
//! most `CAPACITY` marks; the oldest are forgotten first.

use std::collections::VecDeque;
use std::time::Instant;

const CAPACITY: usize = 4096;

#[derive(Default)]
pub struct ArrivalClock {
    /// (first sample after this message, when the message arrived), in order.
    marks: VecDeque<(u64, Instant)>,
}

impl ArrivalClock {
    /// Notes that audio up to (not including) `sample_end` has arrived at `at`.
    pub fn mark(&mut self, sample_end: u64, at: Instant) {
        if self.marks.len() == CAPACITY {
            self.marks.pop_front();
        }
        self.marks.push_back((sample_end, at));
    }

    /// When the message holding `sample` (the last sample of an utterance
    /// when given its end bound) arrived; `fallback` if it was forgotten.
    pub fn arrival_of(&self, sample_end: u64, fallback: Instant) -> Instant {
        let i = self.marks.partition_point(|(end, _)| *end < sample_end);
        self.marks.get(i).map_or(fallback, |(_, at)| *at)
    }

    /// Forgets marks wholly before `sample`.
    pub fn forget_before(&mut self, sample: u64) {
        while self.marks.front().is_some_and(|(end, _)| *end < sample) {
            self.marks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn finds_the_message_that_carried_a_sample() {
        let t0 = Instant::now();
        let mut c = ArrivalClock::default();
        for i in 1..=10u64 {
            c.mark(i * 320, t0 + Duration::from_millis(i * 20));
        }
        assert_eq!(c.arrival_of(320, t0), t0 + Duration::from_millis(20));
        assert_eq!(c.arrival_of(321, t0), t0 + Duration::from_millis(40));
        assert_eq!(c.arrival_of(3200, t0), t0 + Duration::from_millis(200));
        let later = t0 + Duration::from_secs(9);
        assert_eq!(c.arrival_of(99_999, later), later);
        c.forget_before(1000);
        assert_eq!(c.arrival_of(321, later), t0 + Duration::from_millis(80));
    }

    #[test]
    fn capacity_is_bounded() {
        let mut c = ArrivalClock::default();
        let t = Instant::now();
        for i in 0..10_000u64 {
            c.mark(i, t);
        }
        assert_eq!(c.marks.len(), CAPACITY);
    }
}
