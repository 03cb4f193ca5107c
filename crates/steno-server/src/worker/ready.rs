//! How many workers serve: each worker's start and stop in, the count (and the `steno_workers_ready` gauge) out.
//!
//! The count and the gauge change under one lock. Two workers that started
//! at once used to publish `load()` after their own `fetch_add` in either
//! order, so the gauge could end one short of the pool (1 of 2 workers ready
//! while both served) and stay there.

use std::sync::Mutex;

/// Workers serving now, published to `publish` on every change.
pub struct ReadyCount {
    count: Mutex<usize>,
    publish: fn(usize),
}

impl ReadyCount {
    pub fn new(publish: fn(usize)) -> Self {
        Self {
            count: Mutex::new(0),
            publish,
        }
    }

    /// A worker starts serving.
    pub fn up(&self) {
        self.change(|n| n + 1);
    }

    /// A worker stopped serving.
    pub fn down(&self) {
        self.change(|n| n.saturating_sub(1));
    }

    pub fn get(&self) -> usize {
        *self.lock()
    }

    fn change(&self, f: impl FnOnce(usize) -> usize) {
        let mut count = self.lock();
        *count = f(*count);
        // Published while the lock is held: the last value published is
        // the count.
        (self.publish)(*count);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        // A counter cannot be left half-changed: a poisoned lock still
        // holds a whole number.
        self.count.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static PUBLISHED: AtomicUsize = AtomicUsize::new(usize::MAX);

    fn publish(n: usize) {
        // Widen the window between reading the count and publishing it,
        // where the old code lost an update.
        std::thread::yield_now();
        PUBLISHED.store(n, Ordering::SeqCst);
    }

    #[test]
    fn the_last_value_published_is_the_count_when_workers_start_at_once() {
        for _ in 0..200 {
            let ready = Arc::new(ReadyCount::new(publish));
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let ready = ready.clone();
                    std::thread::spawn(move || ready.up())
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(ready.get(), 8);
            assert_eq!(PUBLISHED.load(Ordering::SeqCst), 8);
        }
    }

    #[test]
    fn down_never_goes_below_zero() {
        let ready = ReadyCount::new(|_| {});
        ready.up();
        ready.down();
        ready.down();
        assert_eq!(ready.get(), 0);
    }
}
