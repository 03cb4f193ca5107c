//! Configuration: config.toml plus `STENO_<SECTION>__<KEY>` environment overrides in, one validated `Config` out.
//!
//! Every key has a default (documented in the repository's `config.toml`), so an
//! empty file is a working configuration. Unknown keys are errors, never ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::vad::SegmenterConfig;

/// Prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "STENO_";

/// `STENO_*` variables that are not config keys: logging and tooling.
pub const NON_CONFIG_VARS: &[&str] = &[
    "STENO_LOG",
    "STENO_TEST_MODEL",
    "STENO_SKIP_BROWSER",
    "STENO_MODEL_PROFILE",
    "STENO_WITH_BROWSER",
    "STENO_CHURN_CYCLES",
    "STENO_CHURN_MAX_S",
    "STENO_CHROMIUM",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {var} does not name a config key: use STENO_<SECTION>__<KEY>")]
    BadEnvName { var: String },
    #[error("invalid configuration: {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// The whole configuration of a steno server.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub model: ModelConfig,
    pub workers: WorkersConfig,
    pub vad: SegmenterConfig,
    pub admission: AdmissionConfig,
    pub session: SessionConfig,
    pub auth: AuthConfig,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Shared secret clients must present (`Authorization: Bearer TOKEN` or
    /// `?token=TOKEN`); empty turns the check off.
    pub token: String,
    /// Browser origins allowed to open sessions (e.g. "https://app.example");
    /// empty allows any. Requests without an Origin header (non-browser
    /// clients) are not affected.
    pub allowed_origins: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP/WebSocket listener binds.
    pub listen: SocketAddr,
    /// Serve the browser demo page at `/`.
    pub web_demo: bool,
    /// Folder holding the demo page, relative to the working directory.
    pub web_demo_dir: PathBuf,
    /// How long open sessions may take to flush their finals on shutdown.
    pub drain_timeout_s: f32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            web_demo: true,
            web_demo_dir: PathBuf::from("web-demo"),
            drain_timeout_s: 10.0,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// whisper.cpp ggml model file.
    pub path: PathBuf,
    /// Spoken language passed to Whisper.
    pub language: String,
    /// Smallest encoder window in frames (50 per second of audio). Whisper
    /// always encodes 1500 frames (30 s); shrinking the window to the
    /// utterance saves most of the cost, but windows much under ~8 s make
    /// tiny.en loop and drop words. 1500 disables shrinking.
    pub min_audio_ctx: u32,
    /// Most tokens decoded per second of utterance audio (plus a fixed 16):
    /// a cap on runaway repetition.
    pub max_tokens_per_s: f32,
    /// Use flash attention in whisper.cpp.
    pub flash_attn: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("models/ggml-tiny.en-q8_0.bin"),
            language: "en".to_string(),
            min_audio_ctx: 768,
            max_tokens_per_s: 8.0,
            flash_attn: false,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// Number of inference threads, each with its own Whisper state; 0 means
    /// one per CPU core.
    pub count: usize,
    /// whisper.cpp threads used by each worker.
    pub threads_per_worker: usize,
    /// Most final-transcript jobs waiting at once; a session that would pass
    /// it waits (it stops reading its socket) until a worker frees a place.
    pub final_queue_capacity: usize,
    /// Most partial-transcript jobs waiting at once; past it the oldest is shed.
    pub partial_queue_capacity: usize,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            count: 0,
            threads_per_worker: 1,
            final_queue_capacity: 64,
            partial_queue_capacity: 8,
        }
    }
}

impl WorkersConfig {
    /// The worker count with 0 resolved to the number of cores.
    pub fn resolved_count(&self) -> usize {
        if self.count > 0 {
            return self.count;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionConfig {
    /// Most sessions open at once; the next one is refused with `over_capacity`.
    pub max_sessions: usize,
    /// Seconds a refused client is told to wait before retrying.
    pub retry_after_s: u32,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_sessions: 24,
            retry_after_s: 5,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
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
    /// dropped) when speech goes on. Runs on the partial lane, so it only
    /// uses a worker that would otherwise idle.
    pub early_finals: bool,
    /// Messages buffered for a client before the session stops producing more.
    pub outbound_queue: usize,
    /// A client that does not take a message for this long is closed.
    pub send_timeout_s: f32,
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
        }
    }
}

impl Config {
    /// Loads `path` (if given) and applies environment overrides from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (text, origin) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?,
                p.display().to_string(),
            ),
            None => (String::new(), "(defaults)".to_string()),
        };
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: origin.clone(),
                    message: e.to_string(),
                })?;
        let mut overridden = Vec::new();
        for (var, value) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if NON_CONFIG_VARS.contains(&var.as_str()) {
                continue;
            }
            let Some((section, key)) = rest.split_once("__") else {
                return Err(ConfigError::BadEnvName { var });
            };
            let section = section.to_ascii_lowercase();
            let key = key.to_ascii_lowercase();
            let entry = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(section_table) = entry else {
                return Err(ConfigError::BadEnvName { var });
            };
            section_table.insert(key, parse_env_value(&value));
            overridden.push(var);
        }
        let config: Config = Config::deserialize(toml::Value::Table(table)).map_err(|e| {
            let mut message = e.to_string().trim().to_string();
            if !overridden.is_empty() {
                message.push_str(&format!(
                    " (environment overrides: {})",
                    overridden.join(", ")
                ));
            }
            ConfigError::Parse {
                path: origin,
                message,
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values serde cannot: ranges and relations between keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid =
            |key: &'static str, message: String| Err(ConfigError::Invalid { key, message });
        if let Err(message) = self.vad.validate() {
            return invalid("vad", message);
        }
        if self.admission.max_sessions == 0 || self.admission.max_sessions > 10_000 {
            return invalid(
                "admission.max_sessions",
                format!("must be 1..=10000, got {}", self.admission.max_sessions),
            );
        }
        if self.workers.count > 256 {
            return invalid(
                "workers.count",
                format!("must be 0..=256, got {}", self.workers.count),
            );
        }
        if self.workers.threads_per_worker == 0 || self.workers.threads_per_worker > 64 {
            return invalid(
                "workers.threads_per_worker",
                format!("must be 1..=64, got {}", self.workers.threads_per_worker),
            );
        }
        if self.workers.final_queue_capacity == 0 {
            return invalid("workers.final_queue_capacity", "must be at least 1".into());
        }
        if self.workers.partial_queue_capacity == 0 {
            return invalid(
                "workers.partial_queue_capacity",
                "must be at least 1".into(),
            );
        }
        if !(1..=1500).contains(&self.model.min_audio_ctx) {
            return invalid(
                "model.min_audio_ctx",
                format!("must be 1..=1500 frames, got {}", self.model.min_audio_ctx),
            );
        }
        if self.model.max_tokens_per_s.is_nan() || self.model.max_tokens_per_s <= 0.0 {
            return invalid("model.max_tokens_per_s", "must be above 0".into());
        }
        if self.model.language.is_empty() {
            return invalid("model.language", "must not be empty (e.g. \"en\")".into());
        }
        let positive = [
            (
                "session.handshake_timeout_s",
                self.session.handshake_timeout_s,
            ),
            ("session.idle_timeout_s", self.session.idle_timeout_s),
            ("session.max_duration_s", self.session.max_duration_s),
            (
                "session.max_queued_audio_s",
                self.session.max_queued_audio_s,
            ),
            ("session.send_timeout_s", self.session.send_timeout_s),
        ];
        for (key, value) in positive {
            if value.is_nan() || value <= 0.0 || value.is_infinite() {
                return invalid(
                    key,
                    format!("must be a positive number of seconds, got {value}"),
                );
            }
        }
        let drain = self.server.drain_timeout_s;
        if drain.is_nan() || drain < 0.0 || drain.is_infinite() {
            return invalid("server.drain_timeout_s", "must be 0 or more seconds".into());
        }
        if !(256..=16 << 20).contains(&self.session.max_message_bytes) {
            return invalid(
                "session.max_message_bytes",
                format!(
                    "must be 256..=16777216, got {}",
                    self.session.max_message_bytes
                ),
            );
        }
        if self.session.max_bad_packets == 0 {
            return invalid("session.max_bad_packets", "must be at least 1".into());
        }
        if self.session.outbound_queue < 4 {
            return invalid("session.outbound_queue", "must be at least 4".into());
        }
        Ok(())
    }
}

/// Environment values are TOML scalars when they parse as one (`30`, `true`,
/// `0.5`, `"x"`), else plain strings (`127.0.0.1:9000`, `models/x.bin`).
fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn repository_config_toml_loads_and_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let loaded = Config::load(Some(&path), Vec::new()).unwrap();
        let defaults = Config::default();
        assert_eq!(format!("{loaded:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn environment_overrides_keys() {
        let c = Config::load(
            None,
            env(&[
                ("STENO_ADMISSION__MAX_SESSIONS", "30"),
                ("STENO_WORKERS__COUNT", "2"),
                ("STENO_SERVER__LISTEN", "127.0.0.1:9000"),
                ("STENO_MODEL__PATH", "models/other.bin"),
                ("PATH", "/usr/bin"),
                ("STENO_LOG", "debug"),
            ]),
        )
        .unwrap();
        assert_eq!(c.admission.max_sessions, 30);
        assert_eq!(c.workers.count, 2);
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.model.path, PathBuf::from("models/other.bin"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::load(None, env(&[("STENO_ADMISSION__MAX_SESION", "3")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("max_sesion"), "{text}");
        assert!(text.contains("STENO_ADMISSION__MAX_SESION"), "{text}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let err = Config::load(None, env(&[("STENO_ADMISSION__MAX_SESSIONS", "0")])).unwrap_err();
        assert!(err.to_string().contains("admission.max_sessions"), "{err}");
        let err = Config::load(None, env(&[("STENO_VAD__FRAME_MS", "25")])).unwrap_err();
        assert!(err.to_string().contains("frame_ms"), "{err}");
        let err = Config::load(None, env(&[("STENO_SESSION__IDLE_TIMEOUT_S", "-1")])).unwrap_err();
        assert!(err.to_string().contains("session.idle_timeout_s"), "{err}");
    }

    #[test]
    fn malformed_env_name_is_refused() {
        let err = Config::load(None, env(&[("STENO_WORKERS", "2")])).unwrap_err();
        assert!(matches!(err, ConfigError::BadEnvName { .. }), "{err}");
    }
}
