//! Configuration: config.toml plus `STENO_<SECTION>__<KEY>` environment overrides in, one validated `Config` out.
//!
//! Each component keeps its own typed section next to its code and checks
//! it there (`server::ServerConfig`, `worker::{ModelConfig, WorkersConfig}`,
//! `steno_audio::vad::SegmenterConfig`, `admission::AdmissionConfig`,
//! `session::SessionConfig`, `auth::AuthConfig`, `files::FilesConfig`); this
//! module assembles them.
//! Every key has a default (documented in the repository's `config.toml`), so
//! an empty file is a working configuration. Unknown keys are errors, never
//! ignored. An environment value is read as the type of the key it sets:
//! `STENO_AUTH__TOKEN=12345` is the string "12345", `STENO_WORKERS__COUNT=x`
//! is refused with the key's name.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use steno_audio::vad::SegmenterConfig;

use crate::admission::AdmissionConfig;
use crate::auth::AuthConfig;
use crate::files::FilesConfig;
use crate::server::ServerConfig;
use crate::session::SessionConfig;
use crate::worker::{ModelConfig, WorkersConfig};

/// Prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "STENO_";

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
    #[error("environment variable {var}: {message}")]
    BadEnvValue { var: String, message: String },
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

/// A value serde accepts but the component does not: the key and why.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct Invalid {
    pub key: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(key: &'static str, message: impl Into<String>) -> Self {
        Self {
            key,
            message: message.into(),
        }
    }
}

/// The whole configuration of a steno server.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub model: ModelConfig,
    pub workers: WorkersConfig,
    pub vad: SegmenterConfig,
    pub admission: AdmissionConfig,
    pub session: SessionConfig,
    pub auth: AuthConfig,
    pub files: FilesConfig,
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
        let defaults =
            toml::Table::try_from(Config::default()).expect("the default configuration serializes");
        let mut overridden = Vec::new();
        for (var, value) in env {
            let Some((section, key)) = env_key(&var, &defaults)? else {
                continue;
            };
            let typed = typed_value(&var, &value, defaults.get(&section), &key)?;
            let entry = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(section_table) = entry else {
                return Err(ConfigError::BadEnvName { var });
            };
            section_table.insert(key, typed);
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

    /// Checks the values serde cannot, component by component.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.vad
            .validate()
            .map_err(|message| Invalid::new("vad", message))?;
        self.server.validate()?;
        self.model.validate()?;
        self.workers.validate()?;
        self.admission.validate()?;
        self.session.validate()?;
        self.files.validate()?;
        Ok(())
    }
}

/// The (section, key) a `STENO_*` variable overrides; None for variables
/// that are not config keys (`STENO_LOG`, a test's own `STENO_TEST_MODEL`):
/// only a name with `__`, or one that names a section, is taken as a key.
fn env_key(var: &str, defaults: &toml::Table) -> Result<Option<(String, String)>, ConfigError> {
    let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
        return Ok(None);
    };
    match rest.split_once("__") {
        Some((section, key)) if !section.is_empty() && !key.is_empty() => Ok(Some((
            section.to_ascii_lowercase(),
            key.to_ascii_lowercase(),
        ))),
        Some(_) => Err(ConfigError::BadEnvName {
            var: var.to_string(),
        }),
        None if defaults.contains_key(&rest.to_ascii_lowercase()) => Err(ConfigError::BadEnvName {
            var: var.to_string(),
        }),
        None => Ok(None),
    }
}

/// `raw` as the type of the key's default: a string key takes the text as
/// it is, a number or boolean must parse as one, an array is TOML
/// (`["a","b"]`) or comma-separated. Unknown keys keep TOML's reading and
/// are refused by name when the config is deserialized.
fn typed_value(
    var: &str,
    raw: &str,
    section: Option<&toml::Value>,
    key: &str,
) -> Result<toml::Value, ConfigError> {
    let bad = |what: &str| ConfigError::BadEnvValue {
        var: var.to_string(),
        message: format!("expected {what}, got {raw:?}"),
    };
    let default = section.and_then(|s| s.get(key));
    Ok(match default {
        Some(toml::Value::String(_)) => toml::Value::String(raw.to_string()),
        // A number key that also takes a word (`admission.max_sessions`).
        Some(toml::Value::Integer(_)) if raw.trim() == "auto" => {
            toml::Value::String("auto".to_string())
        }
        Some(toml::Value::Integer(_)) => {
            toml::Value::Integer(raw.trim().parse::<i64>().map_err(|_| bad("an integer"))?)
        }
        Some(toml::Value::Float(_)) => {
            toml::Value::Float(raw.trim().parse::<f64>().map_err(|_| bad("a number"))?)
        }
        Some(toml::Value::Boolean(_)) => match raw.trim() {
            "true" | "1" => toml::Value::Boolean(true),
            "false" | "0" => toml::Value::Boolean(false),
            _ => return Err(bad("true or false")),
        },
        Some(toml::Value::Array(_)) => {
            let trimmed = raw.trim();
            if trimmed.starts_with('[') {
                toml_scalar(trimmed).ok_or_else(|| bad("a TOML array"))?
            } else {
                toml::Value::Array(
                    trimmed
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_string()))
                        .collect(),
                )
            }
        }
        _ => toml_scalar(raw).unwrap_or_else(|| toml::Value::String(raw.to_string())),
    })
}

fn toml_scalar(raw: &str) -> Option<toml::Value> {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::SessionLimit;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn repository_config_toml_loads_and_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config.toml");
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
                ("STENO_TEST_MODEL", "/elsewhere.bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.admission.max_sessions, SessionLimit::Fixed(30));
        assert_eq!(c.workers.count, 2);
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.model.path, PathBuf::from("models/other.bin"));
    }

    #[test]
    fn environment_values_take_the_type_of_their_key() {
        let c = Config::load(
            None,
            env(&[
                ("STENO_AUTH__TOKEN", "12345"),
                ("STENO_MODEL__LANGUAGE", "true"),
                ("STENO_SESSION__IDLE_TIMEOUT_S", "12"),
                ("STENO_SESSION__EARLY_FINALS", "0"),
                (
                    "STENO_AUTH__ALLOWED_ORIGINS",
                    "https://a.example, https://b.example",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(c.auth.token, "12345");
        assert_eq!(c.model.language, "true");
        assert_eq!(c.session.idle_timeout_s, 12.0);
        assert!(!c.session.early_finals);
        assert_eq!(
            c.auth.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        let err = Config::load(None, env(&[("STENO_WORKERS__COUNT", "two")])).unwrap_err();
        assert!(
            err.to_string().contains("STENO_WORKERS__COUNT") && err.to_string().contains("integer"),
            "{err}"
        );
    }

    #[test]
    fn max_sessions_takes_a_number_or_auto() {
        let c = Config::load(None, env(&[("STENO_ADMISSION__MAX_SESSIONS", "auto")])).unwrap();
        assert_eq!(c.admission.max_sessions, SessionLimit::Auto);
        let dir = std::env::temp_dir().join(format!("steno-config-auto-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.toml");
        std::fs::write(&file, "[admission]\nmax_sessions = \"auto\"\n").unwrap();
        let c = Config::load(Some(&file), Vec::new()).unwrap();
        assert_eq!(c.admission.max_sessions, SessionLimit::Auto);
        std::fs::write(&file, "[admission]\nmax_sessions = \"lots\"\n").unwrap();
        let err = Config::load(Some(&file), Vec::new()).unwrap_err();
        assert!(err.to_string().contains("auto"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
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
        for (var, value, key) in [
            (
                "STENO_SERVER__AGENT_LISTEN",
                "port 9081",
                "server.agent_listen",
            ),
            (
                "STENO_ADMISSION__MAX_FINAL_WAIT_S",
                "-2",
                "admission.max_final_wait_s",
            ),
            (
                "STENO_SESSION__READ_AHEAD_BYTES",
                "100",
                "session.read_ahead_bytes",
            ),
            (
                "STENO_SESSION__RESUME_GRACE_S",
                "600",
                "session.resume_grace_s",
            ),
            ("STENO_WORKERS__PACK_GAP_MS", "50", "workers.pack_gap_ms"),
            ("STENO_WORKERS__PACK_MAX_S", "40", "workers.pack_max_s"),
            (
                "STENO_WORKERS__DEGRADE_AFTER_MS",
                "90000",
                "workers.degrade_after_ms",
            ),
            (
                "STENO_WORKERS__DEGRADED_MIN_AUDIO_CTX",
                "100",
                "workers.degraded_min_audio_ctx",
            ),
        ] {
            let err = Config::load(None, env(&[(var, value)])).unwrap_err();
            assert!(err.to_string().contains(key), "{var}={value}: {err}");
        }
        let ok = Config::load(
            None,
            env(&[("STENO_SERVER__AGENT_LISTEN", "127.0.0.1:9081")]),
        );
        assert_eq!(
            ok.unwrap().server.agent_addr().unwrap(),
            Some("127.0.0.1:9081".parse().unwrap())
        );
    }

    #[test]
    fn malformed_env_name_is_refused() {
        let err = Config::load(None, env(&[("STENO_WORKERS", "2")])).unwrap_err();
        assert!(matches!(err, ConfigError::BadEnvName { .. }), "{err}");
    }
}
