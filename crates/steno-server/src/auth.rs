//! Access control: a request's headers and query in, allowed or an [`ApiError`] (401 no or wrong token, 403 foreign origin) out, before any upgrade or upload is read.

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, ORIGIN};
use serde::{Deserialize, Serialize};
use steno_protocol::{ApiError, ErrorCode};

use crate::metrics;

/// The `[auth]` configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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

impl AuthConfig {
    /// Token and Origin checks for one request.
    pub fn check(&self, headers: &HeaderMap, query: Option<&str>) -> Result<(), ApiError> {
        let origin = headers
            .get(ORIGIN)
            .filter(|_| !self.allowed_origins.is_empty());
        if let Some(origin) = origin {
            let allowed = origin.to_str().is_ok_and(|o| {
                self.allowed_origins
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(o))
            });
            if !allowed {
                metrics::http_refused("forbidden_origin");
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "this origin may not open sessions",
                ));
            }
        }
        if !self.token.is_empty() {
            let bearer = headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let from_query =
                query.and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("token=")));
            let presented = bearer.or(from_query).unwrap_or("");
            if !constant_time_eq(presented.as_bytes(), self.token.as_bytes()) {
                metrics::http_refused("unauthorized");
                return Err(ApiError::new(
                    ErrorCode::Unauthorized,
                    "missing or wrong token",
                ));
            }
        }
        Ok(())
    }
}

/// Compares without an early exit, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, y) in b.iter().enumerate() {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"secretx", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(!constant_time_eq(b"Secret", b"secret"));
    }

    #[test]
    fn refusals_carry_their_codes() {
        let auth = AuthConfig {
            token: "t".into(),
            allowed_origins: vec!["https://a.example".into()],
        };
        let mut headers = HeaderMap::new();
        assert_eq!(
            auth.check(&headers, None).unwrap_err().code,
            ErrorCode::Unauthorized
        );
        assert!(auth.check(&headers, Some("x=1&token=t")).is_ok());
        headers.insert(ORIGIN, "https://b.example".parse().unwrap());
        assert_eq!(
            auth.check(&headers, Some("token=t")).unwrap_err().status(),
            403
        );
    }
}
