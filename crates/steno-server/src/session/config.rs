//! The `[session]` configuration: a live session's timers, limits and queues, validated here.

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Time a connection has to send a complete HTTP request / upgrade.
    pub handshake_timeout_s: f32,
    /// A session that sends no audio and no keepalive for this long is closed.
    pub idle_timeout_s: f32,
    /// Longest a session may stay open.
    pub max_duration_s: f32,
    /// Largest WebSocket message accepted (an Opus packet is at most 1275 bytes;
    /// PCM chunks are larger).
    pub max_message_bytes: usize,
    /// Consecutive undecodable audio messages after which the session is closed (1007).
    pub max_bad_packets: u32,
    /// Most seconds of utterance audio a session may have waiting for transcription.
    pub max_queued_audio_s: f32,
    /// Interval between partial transcripts of the open utterance; 0 disables partials.
    pub partial_interval_ms: u64,
    /// Start an utterance's final as soon as its pause has lasted the VAD's
    /// 200 ms tail, instead of after the whole hangover; wasted (and
    /// dropped) when speech goes on. Runs on the early lane, below finals.
    pub early_finals: bool,
    /// Messages buffered for a client before the session stops producing more.
    pub outbound_queue: usize,
    /// A client that does not take a message for this long is closed.
    pub send_timeout_s: f32,
    /// Bytes of client messages read ahead while the session waits for the
    /// workers (so pings are answered); past it the socket is not read.
    pub read_ahead_bytes: usize,
    /// How long a `/v1/listen` session whose connection dropped (no `end`,
    /// no close frame) is kept, slot and all, for its client to come back
    /// with `?resume=TOKEN`; 0 ends such sessions at once.
    pub resume_grace_s: f32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            handshake_timeout_s: 5.0,
            idle_timeout_s: 30.0,
            max_duration_s: 3600.0,
            max_message_bytes: 65_536,
            max_bad_packets: 50,
            max_queued_audio_s: 120.0,
            partial_interval_ms: 750,
            early_finals: true,
            outbound_queue: 64,
            send_timeout_s: 10.0,
            read_ahead_bytes: 1 << 20,
            resume_grace_s: 15.0,
        }
    }
}

impl SessionConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        let positive = [
            ("session.handshake_timeout_s", self.handshake_timeout_s),
            ("session.idle_timeout_s", self.idle_timeout_s),
            ("session.max_duration_s", self.max_duration_s),
            ("session.max_queued_audio_s", self.max_queued_audio_s),
            ("session.send_timeout_s", self.send_timeout_s),
        ];
        for (key, value) in positive {
            if value.is_nan() || value <= 0.0 || value.is_infinite() {
                return Err(Invalid::new(
                    key,
                    format!("must be a positive number of seconds, got {value}"),
                ));
            }
        }
        if !(256..=16 << 20).contains(&self.max_message_bytes) {
            return Err(Invalid::new(
                "session.max_message_bytes",
                format!("must be 256..=16777216, got {}", self.max_message_bytes),
            ));
        }
        if self.max_bad_packets == 0 {
            return Err(Invalid::new(
                "session.max_bad_packets",
                "must be at least 1",
            ));
        }
        if !(self.max_message_bytes..=256 << 20).contains(&self.read_ahead_bytes) {
            return Err(Invalid::new(
                "session.read_ahead_bytes",
                format!(
                    "must be session.max_message_bytes ({}) to 268435456, got {}",
                    self.max_message_bytes, self.read_ahead_bytes
                ),
            ));
        }
        if !(0.0..=300.0).contains(&self.resume_grace_s) {
            return Err(Invalid::new(
                "session.resume_grace_s",
                format!("must be 0 to 300 seconds, got {}", self.resume_grace_s),
            ));
        }
        if self.outbound_queue < 4 {
            return Err(Invalid::new("session.outbound_queue", "must be at least 4"));
        }
        Ok(())
    }
}
