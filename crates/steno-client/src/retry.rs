//! Retrying a refusal: a [`Connector`] and a [`RetryPolicy`] in; a session, after waiting out `over_capacity` (and the like) with jitter a bounded number of times, or the last error, out.
//!
//! A full server says how long to wait (`retry_after_s`); every client that
//! waits exactly that long comes back at the same moment, so each wait is
//! stretched by a random fraction (`jitter`). Only refusals that a later
//! try can cure are retried: `over_capacity`, `not_ready` (model loading),
//! `shutting_down` (an instance draining behind a balancer) and a plain
//! HTTP 503 (a balancer with no instance up). A bad token or a bad query
//! fails at once.

use std::time::Duration;

use steno_protocol::ErrorCode;

use crate::connect::{ConnectError, Connector};
use crate::session::Session;

/// How many times, and how long between.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Tries after the first one.
    pub retries: u32,
    /// Each wait is stretched by up to this fraction, at random (0.5: the
    /// server's 5 s becomes 5 to 7.5 s).
    pub jitter: f64,
    /// The wait when the refusal names none.
    pub default_wait: Duration,
    /// No single wait is longer.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 3,
            jitter: 0.5,
            default_wait: Duration::from_secs(5),
            max_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before trying again after `error`, with `unit` (0..1) the
    /// random draw; None when another try would not help.
    pub fn wait_for(&self, error: &ConnectError, unit: f64) -> Option<Duration> {
        let base = match error {
            ConnectError::Refused {
                code: ErrorCode::OverCapacity | ErrorCode::NotReady,
                retry_after_s,
                ..
            } => retry_after_s.map_or(self.default_wait, |s| Duration::from_secs(s.into())),
            ConnectError::Refused {
                code: ErrorCode::ShuttingDown,
                retry_after_s,
                ..
            } => retry_after_s.map_or(Duration::from_secs(1), |s| Duration::from_secs(s.into())),
            ConnectError::Http { status: 503, .. } => self.default_wait,
            _ => return None,
        };
        let stretched = base.mul_f64(1.0 + self.jitter.max(0.0) * unit.clamp(0.0, 1.0));
        Some(stretched.min(self.max_wait))
    }
}

/// What a client is about to do after a refusal, for telling its user.
#[derive(Debug)]
pub struct Retrying<'a> {
    /// This retry's number, from 1.
    pub retry: u32,
    /// Retries allowed in all.
    pub of: u32,
    pub wait: Duration,
    /// The refusal being waited out.
    pub error: &'a ConnectError,
}

impl std::fmt::Display for Retrying<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; retrying in {:.1} s ({} of {})",
            self.error,
            self.wait.as_secs_f64(),
            self.retry,
            self.of
        )
    }
}

impl Connector {
    /// [`Connector::connect`], retrying refusals as `policy` says; `notice`
    /// hears of each retry before its wait (print it: the user should know
    /// why nothing happens).
    pub async fn connect_retrying(
        &self,
        policy: &RetryPolicy,
        mut notice: impl FnMut(&Retrying<'_>),
    ) -> Result<Session, ConnectError> {
        let mut retry = 0;
        loop {
            let error = match self.connect().await {
                Ok(session) => return Ok(session),
                Err(e) => e,
            };
            if retry >= policy.retries {
                return Err(error);
            }
            let Some(wait) = policy.wait_for(&error, random_unit()) else {
                return Err(error);
            };
            retry += 1;
            notice(&Retrying {
                retry,
                of: policy.retries,
                wait,
                error: &error,
            });
            tokio::time::sleep(wait).await;
        }
    }
}

/// A number in 0..1 that differs between clients and calls (std's hasher
/// keys are random per process and per call).
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: ErrorCode, retry_after_s: Option<u32>) -> ConnectError {
        ConnectError::Refused {
            code,
            message: "full".into(),
            retry_after_s,
            close: None,
        }
    }

    #[test]
    fn waits_follow_the_server_with_jitter_and_a_cap() {
        let p = RetryPolicy::default();
        let full = refused(ErrorCode::OverCapacity, Some(4));
        assert_eq!(p.wait_for(&full, 0.0), Some(Duration::from_secs(4)));
        assert_eq!(p.wait_for(&full, 1.0), Some(Duration::from_secs(6)));
        let long = refused(ErrorCode::OverCapacity, Some(600));
        assert_eq!(p.wait_for(&long, 0.5), Some(p.max_wait));
        let unnamed = refused(ErrorCode::NotReady, None);
        assert_eq!(p.wait_for(&unnamed, 0.0), Some(p.default_wait));
        let balancer = ConnectError::Http {
            status: 503,
            body: String::new(),
        };
        assert_eq!(p.wait_for(&balancer, 0.0), Some(p.default_wait));
    }

    #[test]
    fn refusals_a_retry_cannot_cure_are_not_retried() {
        let p = RetryPolicy::default();
        let token = ConnectError::Http {
            status: 401,
            body: String::new(),
        };
        assert_eq!(p.wait_for(&token, 0.5), None);
        assert_eq!(p.wait_for(&refused(ErrorCode::BadRequest, None), 0.5), None);
    }

    #[test]
    fn random_units_stay_in_range_and_vary() {
        let draws: Vec<f64> = (0..64).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]));
    }
}
