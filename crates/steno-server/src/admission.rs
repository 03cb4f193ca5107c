//! Admission control: a new connection in, a session permit or an over-capacity refusal out.
//!
//! Refuses, never queues: a live session that waited for a slot would already
//! be late. The permit is taken atomically and lives inside the session, so
//! every way a session ends (normal end, vanished client, error, timeout,
//! shutdown, panic) gives the slot back when it drops.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::config::Invalid;
use crate::metrics::{self, GaugeGuard};

/// The `[admission]` configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionConfig {
    /// Most sessions open at once; the next one is refused with
    /// `over_capacity`. `"auto"`: measured at start-up (`calibrate`).
    pub max_sessions: SessionLimit,
    /// Seconds a refused client is told to wait before retrying.
    pub retry_after_s: u32,
    /// Admission by load: while the oldest final has waited longer than
    /// this for a worker, new sessions are refused with `over_capacity`
    /// and `/ready` says 503 `overloaded`, whatever the session count
    /// (the open sessions are served as before). 0 = off.
    pub max_final_wait_s: f32,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_sessions: SessionLimit::Fixed(24),
            retry_after_s: 5,
            max_final_wait_s: 5.0,
        }
    }
}

impl AdmissionConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if let SessionLimit::Fixed(n) = self.max_sessions
            && (n == 0 || n > 10_000)
        {
            return Err(Invalid::new(
                "admission.max_sessions",
                format!("must be 1..=10000 or \"auto\", got {n}"),
            ));
        }
        let wait = self.max_final_wait_s;
        if wait.is_nan() || wait < 0.0 || wait.is_infinite() {
            return Err(Invalid::new(
                "admission.max_final_wait_s",
                "must be 0 (off) or more seconds",
            ));
        }
        Ok(())
    }
}

/// `admission.max_sessions`: a number, or `"auto"` (this machine measured
/// at start-up, `calibrate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionLimit {
    Fixed(usize),
    Auto,
}

impl SessionLimit {
    /// The number; None until `"auto"` has been measured.
    pub fn fixed(self) -> Option<usize> {
        match self {
            SessionLimit::Fixed(n) => Some(n),
            SessionLimit::Auto => None,
        }
    }
}

impl Serialize for SessionLimit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SessionLimit::Fixed(n) => s.serialize_u64(*n as u64),
            SessionLimit::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for SessionLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(usize),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(SessionLimit::Fixed(n)),
            Raw::Text(t) if t == "auto" => Ok(SessionLimit::Auto),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "max_sessions takes a number or \"auto\", got {t:?}"
            ))),
        }
    }
}

impl AdmissionConfig {
    /// The backlog past which new sessions are refused; None when off.
    pub fn final_wait_limit(&self) -> Option<std::time::Duration> {
        (self.max_final_wait_s > 0.0)
            .then(|| std::time::Duration::from_secs_f32(self.max_final_wait_s))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdmissionError {
    #[error("over capacity: {in_use} of {capacity} sessions in use, retry later")]
    OverCapacity { in_use: usize, capacity: usize },
    #[error("the server is shutting down")]
    Closed,
}

/// Hands out at most `capacity` session permits at a time.
#[derive(Clone, Debug)]
pub struct AdmissionController {
    slots: Arc<Semaphore>,
    capacity: usize,
}

/// Proof that a session holds one slot; dropping it frees the slot.
#[derive(Debug)]
pub struct SessionPermit {
    _slot: OwnedSemaphorePermit,
    _active: ActiveGuard,
}

/// Keeps `steno_sessions_active` in step with the permits alive.
struct ActiveGuard(#[allow(dead_code)] GaugeGuard);

impl std::fmt::Debug for ActiveGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActiveGuard")
    }
}

impl AdmissionController {
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// Takes a slot if one is free, atomically.
    pub fn try_admit(&self) -> Result<SessionPermit, AdmissionError> {
        match self.slots.clone().try_acquire_owned() {
            Ok(slot) => {
                metrics::session_admitted();
                Ok(SessionPermit {
                    _slot: slot,
                    _active: ActiveGuard(GaugeGuard::new(metrics::SESSIONS_ACTIVE)),
                })
            }
            Err(TryAcquireError::NoPermits) => {
                metrics::session_refused();
                Err(AdmissionError::OverCapacity {
                    in_use: self.in_use(),
                    capacity: self.capacity,
                })
            }
            Err(TryAcquireError::Closed) => Err(AdmissionError::Closed),
        }
    }

    /// Stops admitting for good (first phase of shutdown). Sessions already
    /// admitted keep their permits.
    pub fn close(&self) {
        self.slots.close();
    }

    pub fn is_closed(&self) -> bool {
        self.slots.is_closed()
    }

    pub fn in_use(&self) -> usize {
        self.capacity - self.slots.available_permits().min(self.capacity)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_exactly_capacity_and_frees_on_drop() {
        let a = AdmissionController::new(3);
        let permits: Vec<_> = (0..3).map(|_| a.try_admit().unwrap()).collect();
        assert_eq!(a.in_use(), 3);
        assert_eq!(
            a.try_admit().unwrap_err(),
            AdmissionError::OverCapacity {
                in_use: 3,
                capacity: 3
            }
        );
        drop(permits);
        assert_eq!(a.in_use(), 0);
        assert!(a.try_admit().is_ok());
    }

    #[test]
    fn concurrent_admission_never_exceeds_capacity() {
        let a = AdmissionController::new(24);
        let admitted = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..20 {
                        if let Ok(p) = a.try_admit() {
                            admitted.lock().unwrap().push(p);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.lock().unwrap().len(), 24);
    }

    #[test]
    fn closed_controller_refuses_but_keeps_existing_permits() {
        let a = AdmissionController::new(2);
        let p = a.try_admit().unwrap();
        a.close();
        assert_eq!(a.try_admit().unwrap_err(), AdmissionError::Closed);
        assert_eq!(a.in_use(), 1);
        drop(p);
    }
}
