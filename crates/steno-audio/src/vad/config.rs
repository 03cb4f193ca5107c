//! The `[vad]` configuration: what counts as speech, how long it must last, how long a pause ends it.

use serde::{Deserialize, Serialize};

/// How the segmenter cuts a stream into utterances. All durations are of
/// 16 kHz audio.
///
/// The defaults were tuned on the recordings in `shared/data/speech` and on
/// espeak-ng speech (see the tests in `vad::tests`): they cover at least 97 %
/// of every recording's loud frames and split at pauses of about 400 ms.
/// Broadband noise never starts an utterance at any level: webrtc-vad alone
/// lets it through, the segmenter's structure check refuses it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmenterConfig {
    /// webrtc-vad mode, 0 (lets most sounds through as speech) to 3 (the
    /// strictest). 2 covers at least 97 % of each test recording's loud
    /// frames; 3 splits more sentences at short pauses and loses more soft
    /// word endings. On its own webrtc-vad takes white noise at -24 dBFS or
    /// louder (at every mode), or fainter noise just after digital silence,
    /// for speech; the segmenter's structure check stops such noise from
    /// starting an utterance.
    pub aggressiveness: u8,
    /// Length of the frames webrtc-vad judges, in ms: 10, 20 or 30.
    pub frame_ms: u32,
    /// How much (mostly) voiced audio confirms that speech started. Shorter
    /// bursts (a cough, a click) never become utterances. At least two frames,
    /// so one noisy frame cannot start speech.
    pub min_speech_ms: u32,
    /// How long (mostly) unvoiced audio must last to end an utterance. At
    /// least two frames, so one quiet frame cannot end speech. 400 ms ends an
    /// utterance at sentence pauses and some comma pauses (final results come
    /// sooner); 500 ms keeps nearly every LibriSpeech sentence whole.
    pub hangover_ms: u32,
    /// Audio kept before the first voiced frame, so whisper hears the onset
    /// (webrtc-vad is late on soft consonants).
    pub pre_roll_ms: u32,
    /// Longest utterance, pre-roll included; longer speech is cut and goes on
    /// in a new utterance. Whisper takes at most 30 s at once.
    pub max_utterance_s: f32,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            aggressiveness: 2,
            frame_ms: 20,
            min_speech_ms: 200,
            hangover_ms: 400,
            pre_roll_ms: 200,
            max_utterance_s: 20.0,
        }
    }
}

/// Upper bounds that catch a unit mistake (seconds typed as ms) early.
const MAX_MIN_SPEECH_MS: u32 = 5_000;
const MAX_HANGOVER_MS: u32 = 5_000;
const MAX_PRE_ROLL_MS: u32 = 2_000;
const MAX_UTTERANCE_S: f32 = 30.0;

impl SegmenterConfig {
    /// Checks every field; the message names the bad key as it is written in
    /// config.toml (`vad.frame_ms`, ...).
    pub fn validate(&self) -> Result<(), String> {
        if self.aggressiveness > 3 {
            return Err(format!(
                "vad.aggressiveness must be 0 to 3, got {}",
                self.aggressiveness
            ));
        }
        if ![10, 20, 30].contains(&self.frame_ms) {
            return Err(format!(
                "vad.frame_ms must be 10, 20 or 30, got {}",
                self.frame_ms
            ));
        }
        let two_frames_ms = 2 * self.frame_ms;
        if !(two_frames_ms..=MAX_MIN_SPEECH_MS).contains(&self.min_speech_ms) {
            return Err(format!(
                "vad.min_speech_ms must be {two_frames_ms} (two frames) to {MAX_MIN_SPEECH_MS}, got {}",
                self.min_speech_ms
            ));
        }
        if !(two_frames_ms..=MAX_HANGOVER_MS).contains(&self.hangover_ms) {
            return Err(format!(
                "vad.hangover_ms must be {two_frames_ms} (two frames) to {MAX_HANGOVER_MS}, got {}",
                self.hangover_ms
            ));
        }
        if self.pre_roll_ms > MAX_PRE_ROLL_MS {
            return Err(format!(
                "vad.pre_roll_ms must be at most {MAX_PRE_ROLL_MS}, got {}",
                self.pre_roll_ms
            ));
        }
        // The audio held when speech is confirmed (pre-roll plus the voiced
        // audio that confirmed it) must fit an utterance with room to spare.
        let shortest_s =
            2.0 * (self.pre_roll_ms + self.min_speech_ms + self.frame_ms) as f32 / 1000.0;
        if !(self.max_utterance_s.is_finite()
            && self.max_utterance_s >= shortest_s
            && self.max_utterance_s <= MAX_UTTERANCE_S)
        {
            return Err(format!(
                "vad.max_utterance_s must be {shortest_s} (twice pre_roll_ms + min_speech_ms + frame_ms) \
                 to {MAX_UTTERANCE_S}, got {}",
                self.max_utterance_s
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        SegmenterConfig::default().validate().unwrap();
    }

    #[test]
    fn each_bad_value_names_its_key() {
        type Spoil = fn(&mut SegmenterConfig);
        let bad: [(Spoil, &str); 8] = [
            (|c| c.aggressiveness = 4, "vad.aggressiveness"),
            (
                |c| c.frame_ms = 25,
                "vad.frame_ms must be 10, 20 or 30, got 25",
            ),
            (|c| c.min_speech_ms = 20, "vad.min_speech_ms"),
            (|c| c.hangover_ms = 0, "vad.hangover_ms"),
            (|c| c.pre_roll_ms = 10_000, "vad.pre_roll_ms"),
            (|c| c.max_utterance_s = 0.5, "vad.max_utterance_s"),
            (|c| c.max_utterance_s = f32::NAN, "vad.max_utterance_s"),
            (|c| c.max_utterance_s = 31.0, "vad.max_utterance_s"),
        ];
        for (spoil, key) in bad {
            let mut config = SegmenterConfig::default();
            spoil(&mut config);
            let message = config.validate().unwrap_err();
            assert!(message.contains(key), "{message:?} should mention {key:?}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_and_missing_ones_default() {
        let config: SegmenterConfig = toml::from_str("hangover_ms = 600").unwrap();
        assert_eq!(config.hangover_ms, 600);
        assert_eq!(config.frame_ms, 20);
        assert!(toml::from_str::<SegmenterConfig>("hang_over_ms = 600").is_err());
    }
}
