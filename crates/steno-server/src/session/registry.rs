//! The registry of live sessions: a session's start in, an entry kept up to date while it runs, a listing (`GET /v1/sessions`, the drain's log) out.
//!
//! A `DashMap` from session id to its line: sessions register and leave on
//! the async runtime's threads while a listing reads, without one lock for
//! all of them. The entry is removed when the session's [`SessionEntry`]
//! drops, however the session ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use serde::Serialize;

/// One live session's line.
struct Line {
    door: &'static str,
    started: Instant,
    started_unix_ms: u64,
    audio_ms: AtomicU64,
    utterances: AtomicU32,
}

/// What a listing shows of a session.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: String,
    /// Which protocol it speaks (`v1`, `realtime`).
    pub door: &'static str,
    pub started_unix_ms: u64,
    pub age_s: u64,
    pub audio_ms: u64,
    pub utterances: u32,
}

/// Every live session of the server.
#[derive(Clone, Default)]
pub struct SessionRegistry {
    lines: Arc<DashMap<u64, Arc<Line>>>,
}

impl SessionRegistry {
    /// A new entry with a fresh random id.
    pub fn register(&self, door: &'static str) -> SessionEntry {
        let line = Arc::new(Line {
            door,
            started: Instant::now(),
            started_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            audio_ms: AtomicU64::new(0),
            utterances: AtomicU32::new(0),
        });
        loop {
            let id: u64 = rand::random();
            if let dashmap::Entry::Vacant(v) = self.lines.entry(id) {
                v.insert(line.clone());
                return SessionEntry {
                    id,
                    line,
                    registry: self.clone(),
                };
            }
        }
    }

    /// Live sessions, oldest first.
    pub fn list(&self) -> Vec<SessionInfo> {
        let mut out: Vec<SessionInfo> = self
            .lines
            .iter()
            .map(|e| {
                let line = e.value();
                SessionInfo {
                    id: format_id(*e.key()),
                    door: line.door,
                    started_unix_ms: line.started_unix_ms,
                    age_s: line.started.elapsed().as_secs(),
                    audio_ms: line.audio_ms.load(Ordering::Relaxed),
                    utterances: line.utterances.load(Ordering::Relaxed),
                }
            })
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.age_s));
        out
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// The id as clients and logs see it.
pub fn format_id(id: u64) -> String {
    format!("{id:016x}")
}

/// A session's place in the registry; dropping it removes the session.
pub struct SessionEntry {
    id: u64,
    line: Arc<Line>,
    registry: SessionRegistry,
}

impl SessionEntry {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Audio received and finals submitted so far.
    pub fn update(&self, audio_ms: u64, utterances: u32) {
        self.line.audio_ms.store(audio_ms, Ordering::Relaxed);
        self.line.utterances.store(utterances, Ordering::Relaxed);
    }
}

impl Drop for SessionEntry {
    fn drop(&mut self) {
        self.registry.lines.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_as_long_as_their_sessions() {
        let r = SessionRegistry::default();
        let a = r.register("v1");
        let b = r.register("realtime");
        assert_ne!(a.id(), b.id());
        a.update(1500, 2);
        let list = r.list();
        assert_eq!(list.len(), 2);
        let line = list.iter().find(|s| s.id == format_id(a.id())).unwrap();
        assert_eq!((line.door, line.audio_ms, line.utterances), ("v1", 1500, 2));
        drop(a);
        assert_eq!(r.len(), 1);
        drop(b);
        assert!(r.is_empty());
    }
}
