//! CPU threads for inference: workers asking for threads in, a thread count for their next job out; running partials give way to finals.
//!
//! The pool owns `workers x threads_per_worker` threads' worth of cores. A
//! worker takes its own share before each job and gives it back after. A
//! final (or early final) that finds nothing else waiting, on a pool that
//! has not been contended for [`CALM`], also borrows the shares of idle
//! workers: one 5 s utterance takes ~0.43 s on two threads against ~0.72 s
//! on one. A worker that gets a job while its share is lent waits for it, at
//! most one inference; shares are never oversubscribed, since ggml's
//! spinning threads degrade badly when cores are. Under load lending would
//! cost throughput (two threads do one job 1.7x faster, two jobs 2x), hence
//! the calm period: any job that found others waiting, or had to wait for
//! cores, restarts it.
//!
//! A final that nobody is free to take aborts the running partials; their
//! results are dropped like any shed partial. whisper.cpp only checks the
//! flag after the encoder pass and between decoder steps, so this saves the
//! decoding, not the encoding: the queue keeps a worker free for finals by
//! starting plain partials only while another worker idles.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the pool must go without contention before a final may borrow
/// idle cores.
pub const CALM: Duration = Duration::from_secs(3);

/// One worker's run, as seen by others.
#[derive(Debug, Default)]
pub struct RunSlot {
    /// Set to make the running inference stop early.
    pub abort: Arc<AtomicBool>,
    /// Cores held by the partial this worker runs; 0 when it runs a final or
    /// nothing. The flag is only set, and only cleared, under this lock, so
    /// a preemption aimed at a partial can never land on the final the
    /// worker takes next.
    partial_cores: Mutex<usize>,
}

impl RunSlot {
    fn partial_cores(&self) -> MutexGuard<'_, usize> {
        self.partial_cores.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The pool's cores and who runs what on them.
#[derive(Debug)]
pub struct Cores {
    free: Mutex<usize>,
    returned: Condvar,
    slots: Mutex<Vec<Arc<RunSlot>>>,
    /// When a job last found others waiting or waited for cores.
    contended_at: Mutex<Option<Instant>>,
}

impl Cores {
    pub fn new(total: usize) -> Self {
        Self {
            free: Mutex::new(total),
            returned: Condvar::new(),
            slots: Mutex::new(Vec::new()),
            contended_at: Mutex::new(None),
        }
    }

    /// Marks the pool as busy now: no lending for [`CALM`].
    pub fn note_contention(&self) {
        *self.contended_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Whether nothing contended for the pool in the last [`CALM`].
    pub fn calm(&self) -> bool {
        self.contended_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|at| at.elapsed() >= CALM)
    }

    fn free(&self) -> MutexGuard<'_, usize> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new worker thread.
    pub fn register(&self) -> Arc<RunSlot> {
        let slot = Arc::new(RunSlot::default());
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(slot.clone());
        slot
    }

    /// Aborts every running partial; returns the cores they will give back.
    pub fn preempt_partials(&self) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .iter()
            .map(|s| {
                // Held across the store: see `RunSlot::partial_cores`.
                let cores = s.partial_cores();
                if *cores > 0 {
                    s.abort.store(true, Ordering::SeqCst);
                }
                *cores
            })
            .sum()
    }

    /// Takes cores for one job on `slot`: waits until `min` (its share) are
    /// free, then takes up to `want`. Never waits for more than the share: a
    /// running partial can only stop after its encoder pass.
    pub fn take(&self, slot: &RunSlot, partial: bool, min: usize, want: usize) -> usize {
        let mut free = self.free();
        if *free < min {
            self.note_contention();
        }
        while *free < min {
            free = self.returned.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        let taken = want.min(*free);
        *free -= taken;
        drop(free);
        let mut partial_cores = slot.partial_cores();
        slot.abort.store(false, Ordering::SeqCst);
        *partial_cores = if partial { taken } else { 0 };
        taken
    }

    /// Gives back what [`Cores::take`] took.
    pub fn give_back(&self, slot: &RunSlot, taken: usize) {
        *slot.partial_cores() = 0;
        *self.free() += taken;
        self.returned.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_final_borrows_and_preempting_marks_running_partials() {
        let cores = Cores::new(2);
        let (a, b) = (cores.register(), cores.register());
        assert_eq!(cores.take(&a, false, 1, 2), 2);
        cores.give_back(&a, 2);

        // A partial holds one core: a final takes the other at once, and a
        // preemption flags the partial but not the final.
        assert_eq!(cores.take(&a, true, 1, 1), 1);
        assert_eq!(cores.take(&b, false, 1, 2), 1);
        assert_eq!(cores.preempt_partials(), 1);
        assert!(a.abort.load(Ordering::SeqCst) && !b.abort.load(Ordering::SeqCst));
        cores.give_back(&a, 1);
        cores.give_back(&b, 1);
        assert_eq!(cores.preempt_partials(), 0, "nothing runs now");
    }

    #[test]
    fn contention_stops_lending_for_a_while() {
        let cores = Cores::new(2);
        assert!(cores.calm());
        cores.note_contention();
        assert!(!cores.calm());
    }

    #[test]
    fn a_final_never_waits_for_another_final() {
        let cores = Cores::new(2);
        let (a, b) = (cores.register(), cores.register());
        assert_eq!(cores.take(&a, false, 1, 1), 1);
        // Wants two, one is held by a final: takes what is free at once.
        assert_eq!(cores.take(&b, false, 1, 2), 1);
        assert!(!a.abort.load(Ordering::SeqCst));
    }
}
