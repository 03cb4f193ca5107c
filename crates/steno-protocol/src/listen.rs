//! The `/v1/listen` query string in, typed [`ListenParams`] (or a [`ParamError`] naming the key) out.

use crate::Encoding;

/// The sample rate of everything the server's decoder hands on, and of Opus
/// decoding whatever the query says.
pub const OUTPUT_SAMPLE_RATE_HZ: u32 = 16_000;

/// The PCM rates a client may announce.
pub const PCM_SAMPLE_RATES_HZ: [u32; 4] = [8_000, 16_000, 24_000, 48_000];

/// Options a client chooses in the `/v1/listen` query string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenParams {
    pub encoding: Encoding,
    /// Sample rate of PCM input; Opus is always decoded at 16 kHz.
    pub sample_rate_hz: u32,
    pub partials: bool,
    /// Word times on every final (`words=true`).
    pub words: bool,
    /// The language the client says it speaks; `None` takes the server's.
    /// The server refuses a language its model does not speak.
    pub language: Option<String>,
}

impl Default for ListenParams {
    fn default() -> Self {
        Self {
            encoding: Encoding::Opus,
            sample_rate_hz: OUTPUT_SAMPLE_RATE_HZ,
            partials: true,
            words: false,
            language: None,
        }
    }
}

/// A query value the server cannot take; the message names the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("encoding must be opus, pcm_s16le, ogg_opus or webm_opus, got {0:?}")]
    Encoding(String),
    #[error("sample_rate must be 8000, 16000, 24000 or 48000, got {0:?}")]
    SampleRate(String),
    #[error("partials must be true or false, got {0:?}")]
    Partials(String),
    #[error("words must be true or false, got {0:?}")]
    Words(String),
    #[error("finals must be a whole number (the finals the client has), got {0:?}")]
    Finals(String),
    #[error("resume needs a token")]
    ResumeToken,
    #[error("language {requested:?} is not served: this model speaks {served}")]
    Language { requested: String, served: String },
}

/// `resume=TOKEN&finals=N`: a client back after its connection dropped,
/// with the token its last `ready` gave and how many finals it has. The
/// session keeps its first connection's parameters; others are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    pub token: String,
    pub finals: u32,
}

impl Resume {
    /// The resume asked for in `query`, if any.
    pub fn from_query(query: Option<&str>) -> Result<Option<Self>, ParamError> {
        let mut token = None;
        let mut finals = 0;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "resume" => token = Some(value.to_string()),
                "finals" => {
                    finals = value
                        .parse()
                        .map_err(|_| ParamError::Finals(value.to_string()))?
                }
                _ => {}
            }
        }
        match token {
            Some(t) if t.is_empty() => Err(ParamError::ResumeToken),
            Some(token) => Ok(Some(Self { token, finals })),
            None => Ok(None),
        }
    }

    /// The query string that asks for this resume.
    pub fn to_query(&self) -> String {
        format!("resume={}&finals={}", self.token, self.finals)
    }
}

impl ListenParams {
    /// Parses `encoding=..&sample_rate=..&partials=..&language=..`; other keys
    /// (such as `token`) are left to the layers that use them.
    pub fn from_query(query: Option<&str>) -> Result<Self, ParamError> {
        let mut params = Self::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "encoding" => {
                    params.encoding = Encoding::from_name(value)
                        .ok_or_else(|| ParamError::Encoding(value.to_string()))?;
                }
                "sample_rate" => {
                    params.sample_rate_hz = value
                        .parse::<u32>()
                        .ok()
                        .filter(|r| PCM_SAMPLE_RATES_HZ.contains(r))
                        .ok_or_else(|| ParamError::SampleRate(value.to_string()))?;
                }
                "partials" => {
                    params.partials =
                        boolean(value).ok_or_else(|| ParamError::Partials(value.to_string()))?
                }
                "words" => {
                    params.words =
                        boolean(value).ok_or_else(|| ParamError::Words(value.to_string()))?
                }
                "language" => params.language = Some(value.to_string()),
                _ => {}
            }
        }
        if params.encoding != Encoding::PcmS16le {
            params.sample_rate_hz = OUTPUT_SAMPLE_RATE_HZ;
        }
        Ok(params)
    }

    /// Refuses a language other than `served` (the model's, from config).
    pub fn check_language(&self, served: &str) -> Result<(), ParamError> {
        match &self.language {
            Some(requested) if requested != served => Err(ParamError::Language {
                requested: requested.clone(),
                served: served.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// The query string that asks for these parameters (for clients).
    pub fn to_query(&self) -> String {
        let mut q = format!(
            "encoding={}&partials={}",
            self.encoding.as_str(),
            self.partials
        );
        if self.encoding == Encoding::PcmS16le {
            q.push_str(&format!("&sample_rate={}", self.sample_rate_hz));
        }
        if self.words {
            q.push_str("&words=true");
        }
        if let Some(language) = &self.language {
            q.push_str(&format!("&language={language}"));
        }
        q
    }
}

fn boolean(value: &str) -> Option<bool> {
    match value {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_defaults_and_choices() {
        assert_eq!(
            ListenParams::from_query(None).unwrap(),
            ListenParams::default()
        );
        let p = ListenParams::from_query(Some(
            "encoding=pcm_s16le&sample_rate=48000&partials=false&token=x",
        ))
        .unwrap();
        assert_eq!(p.encoding, Encoding::PcmS16le);
        assert_eq!(p.sample_rate_hz, 48_000);
        assert!(!p.partials);
        // Opus is always decoded at 16 kHz whatever the query says.
        let p = ListenParams::from_query(Some("encoding=opus&sample_rate=48000")).unwrap();
        assert_eq!(p.sample_rate_hz, 16_000);
    }

    #[test]
    fn query_errors_name_the_parameter() {
        for q in [
            "encoding=mp3",
            "sample_rate=44100",
            "partials=maybe",
            "words=yes",
            "language=fr",
        ] {
            let err = ListenParams::from_query(Some(q))
                .and_then(|p| p.check_language("en"))
                .unwrap_err()
                .to_string();
            let key = q.split('=').next().unwrap();
            assert!(err.contains(key), "{q}: {err}");
        }
        let en = ListenParams::from_query(Some("language=en")).unwrap();
        assert!(en.check_language("en").is_ok());
    }

    #[test]
    fn a_query_round_trips() {
        for q in [
            "encoding=opus&partials=true",
            "encoding=pcm_s16le&partials=false&sample_rate=8000&language=en",
            "encoding=opus&partials=true&words=true",
        ] {
            let p = ListenParams::from_query(Some(q)).unwrap();
            assert_eq!(p.to_query(), q);
        }
    }
}
