//! From what the users sent and saw to per-utterance results: each server
//! final is matched to the clip it transcribes by session audio time, then
//! scored (end of speech to final, time to first partial, WER).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use steno_protocol::ServerMessage;

use crate::corpus::{Clip, PACKET_MS};
use crate::user::UserOutcome;

/// A server utterance starts up to `vad.pre_roll_ms` (200) before the
/// speech it holds; allow more than that when matching it to a clip.
const MATCH_SLACK_MS: u64 = 500;

/// One clip as a user sent it.
#[derive(Debug)]
pub struct SentClip {
    pub clip: Arc<Clip>,
    /// Packets the session had sent before this clip: its start in session audio.
    pub first_packet: u64,
    /// When the packet with the first voiced frame was sent (run seconds).
    pub t_speech_start: Option<f64>,
    /// When the packet with the last voiced frame was sent: end of speech.
    pub t_speech_end: Option<f64>,
}

impl SentClip {
    pub fn new(clip: Arc<Clip>, first_packet: u64) -> Self {
        Self {
            clip,
            first_packet,
            t_speech_start: None,
            t_speech_end: None,
        }
    }

    fn start_ms(&self) -> u64 {
        self.first_packet * PACKET_MS
    }

    fn end_ms(&self) -> u64 {
        self.start_ms() + self.clip.duration_ms()
    }

    fn speech_end_ms(&self) -> u64 {
        (self.first_packet + self.clip.speech_end_packet as u64 + 1) * PACKET_MS
    }
}

/// The clip a server utterance starting at `start_ms` (session audio) belongs
/// to; None for an utterance in the silence between clips.
pub fn match_clip(clips: &[SentClip], start_ms: u64) -> Option<usize> {
    let i = clips
        .iter()
        .rposition(|c| c.start_ms() <= start_ms + MATCH_SLACK_MS)?;
    (start_ms < clips[i].end_ms() + MATCH_SLACK_MS).then_some(i)
}

/// End of speech to this final, if it is the final that closes its clip
/// (for the progress line; the report uses `utterances`).
pub fn live_latency(clips: &[SentClip], start_ms: u64, end_ms: u64, now: f64) -> Option<f64> {
    let c = &clips[match_clip(clips, start_ms)?];
    let t_end = c.t_speech_end?;
    (end_ms + 200 >= c.speech_end_ms()).then_some(now - t_end)
}

/// One clip's result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UtteranceResult {
    pub user: usize,
    pub clip: String,
    pub librispeech: bool,
    /// Run seconds when the last voiced packet was sent.
    pub t_speech_end: f64,
    /// Run seconds when its (last) final arrived.
    pub t_final: Option<f64>,
    /// End of speech to the last final covering the clip (the VAD hangover included).
    pub eos_to_final_s: Option<f64>,
    /// First voiced packet sent to the first partial of the clip.
    pub first_partial_s: Option<f64>,
    /// Finals the server cut this clip into (more than one at a long pause).
    pub finals: usize,
    /// One of them came degraded (`"degraded":true`: the smaller window
    /// of a final that waited for a worker).
    #[serde(default)]
    pub degraded: bool,
    pub text: String,
    pub edits: usize,
    pub words: usize,
}

/// Per-clip results of one user, plus how many finals matched no clip.
pub fn utterances(user: &UserOutcome) -> (Vec<UtteranceResult>, usize) {
    let mut finals: Vec<Vec<(f64, &str, bool)>> = vec![Vec::new(); user.clips.len()];
    let mut first_partial: Vec<Option<f64>> = vec![None; user.clips.len()];
    let mut unmatched = 0;
    for e in &user.events {
        match &e.msg {
            ServerMessage::Final {
                text,
                start_ms,
                degraded,
                ..
            } => match match_clip(&user.clips, *start_ms) {
                Some(i) => finals[i].push((e.t, text, *degraded)),
                None => unmatched += 1,
            },
            ServerMessage::Partial { start_ms, .. } => {
                if let Some(i) = match_clip(&user.clips, *start_ms) {
                    first_partial[i].get_or_insert(e.t);
                }
            }
            _ => {}
        }
    }
    let results = user
        .clips
        .iter()
        .zip(finals)
        .zip(first_partial)
        .filter_map(|((c, finals), partial)| {
            let t_end = c.t_speech_end?;
            let text = finals.iter().map(|f| f.1).collect::<Vec<_>>().join(" ");
            let (edits, words) = steno_testkit::wer::edits(&c.clip.reference, &text);
            let t_final = finals.last().map(|f| f.0);
            Some(UtteranceResult {
                user: user.id,
                clip: c.clip.name.clone(),
                librispeech: c.clip.librispeech,
                t_speech_end: t_end,
                t_final,
                eos_to_final_s: t_final.map(|t| t - t_end),
                first_partial_s: partial.zip(c.t_speech_start).map(|(p, s)| p - s),
                finals: finals.len(),
                degraded: finals.iter().any(|f| f.2),
                text,
                edits,
                words,
            })
        })
        .collect();
    (results, unmatched)
}

/// Distribution of one measure, in its unit.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        Self {
            n,
            mean: values.iter().sum::<f64>() / n as f64,
            p50: percentile(&values, 0.50),
            p95: percentile(&values, 0.95),
            p99: percentile(&values, 0.99),
            max: values[n - 1],
        }
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Word error rate over a set of utterances.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Score {
    pub utterances: usize,
    pub edits: usize,
    pub words: usize,
    pub wer: f64,
}

impl Score {
    pub fn of<'a>(results: impl Iterator<Item = &'a UtteranceResult>) -> Self {
        let mut s = Self::default();
        for r in results {
            s.utterances += 1;
            s.edits += r.edits;
            s.words += r.words;
        }
        s.wer = s.edits as f64 / s.words.max(1) as f64;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(packets: usize) -> Arc<Clip> {
        Arc::new(Clip {
            name: "c".into(),
            reference: "a b".into(),
            librispeech: false,
            packets: vec![vec![1]; packets],
            speech_start_packet: 5,
            speech_end_packet: packets - 10,
        })
    }

    #[test]
    fn finals_match_the_clip_they_overlap_and_not_the_silence() {
        // Clip 0 at 0..2000 ms, clip 1 at 5000..6000 ms.
        let clips = vec![SentClip::new(clip(100), 0), SentClip::new(clip(50), 250)];
        assert_eq!(match_clip(&clips, 0), Some(0));
        assert_eq!(match_clip(&clips, 1500), Some(0));
        assert_eq!(match_clip(&clips, 3000), None);
        assert_eq!(match_clip(&clips, 4800), Some(1));
        assert_eq!(match_clip(&clips, 5900), Some(1));
        assert_eq!(match_clip(&clips, 9000), None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = Stats::of((1..=100).map(f64::from).collect());
        assert_eq!((s.p50, s.p95, s.p99, s.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(Stats::of(vec![]).n, 0);
        assert_eq!(Stats::of(vec![0.7]).p99, 0.7);
    }
}
