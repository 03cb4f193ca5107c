//! The job scheduler: final and partial transcription jobs in, the next job for a free worker out.
//!
//! Policy when full or busy:
//! - finals are never dropped; when `final_capacity` are waiting, the
//!   submitting session waits (and so stops reading its socket);
//! - finals always go ahead of partials, and early finals ahead of plain
//!   partials (they are shed last, too);
//! - a plain partial starts only while another worker stays idle (ready
//!   for a final), unless the pool has a single worker;
//! - a session has at most one partial waiting: a newer one replaces it;
//! - past `partial_capacity` the oldest partial is shed, and a partial that
//!   waited longer than its `stale_after` is shed instead of run;
//! - a session can take its waiting partial back (an early final that has
//!   become due, see `session`) to requeue it as a final;
//! - a final (or early final) that arrives while no worker is free aborts
//!   the running partials (see `cores`).
//!
//! Every shed partial is counted in `steno_partials_shed_total`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use tokio::sync::Notify;

use super::Job;
use super::cores::Cores;
use crate::metrics::{self, JobKind};

pub struct JobQueue {
    state: Mutex<QueueState>,
    /// Wakes workers when a job arrives or the queue closes.
    work_ready: Condvar,
    /// Wakes sessions waiting for room in the final queue.
    room_for_final: Notify,
    final_capacity: usize,
    partial_capacity: usize,
    /// The pool's cores, once a pool serves this queue.
    cores: OnceLock<Arc<Cores>>,
    /// Workers of that pool (0 before one starts).
    workers: AtomicUsize,
}

#[derive(Default)]
struct QueueState {
    finals: VecDeque<Job>,
    partials: VecDeque<Job>,
    /// Workers waiting in `pop_blocking`.
    idle_workers: usize,
    closed: bool,
}

/// The queue no longer takes jobs (the server is stopping).
#[derive(Debug, thiserror::Error)]
#[error("the worker queue is closed")]
pub struct QueueClosed;

impl JobQueue {
    pub fn new(final_capacity: usize, partial_capacity: usize) -> Self {
        Self {
            state: Mutex::new(QueueState::default()),
            work_ready: Condvar::new(),
            room_for_final: Notify::new(),
            final_capacity,
            partial_capacity,
            cores: OnceLock::new(),
            workers: AtomicUsize::new(0),
        }
    }

    /// Lets urgent jobs preempt the partials running on the pool's cores,
    /// and partials know whether another worker can stay free.
    pub(super) fn attach_pool(&self, cores: Arc<Cores>, workers: usize) {
        let _ = self.cores.set(cores);
        self.workers.store(workers, Ordering::Relaxed);
    }

    /// A final-like job was queued: if no worker is free to take it, running
    /// partials make room.
    fn preempt_if_busy(&self, state: &QueueState) {
        if state.idle_workers == 0
            && let Some(cores) = self.cores.get()
        {
            cores.preempt_partials();
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A worker that panicked while holding the lock left the queue in a
        // consistent state (every mutation is a single push or pop).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a final, waiting for room if the final queue is full.
    pub async fn push_final(&self, job: Job) -> Result<(), QueueClosed> {
        debug_assert_eq!(job.kind, JobKind::Final);
        let mut job = Some(job);
        loop {
            let room = self.room_for_final.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.lock();
                if state.closed {
                    return Err(QueueClosed);
                }
                if state.finals.len() < self.final_capacity {
                    state
                        .finals
                        .push_back(job.take().expect("job is pushed once"));
                    metrics::queue_depth(JobKind::Final, state.finals.len());
                    self.preempt_if_busy(&state);
                    drop(state);
                    self.work_ready.notify_one();
                    return Ok(());
                }
            }
            room.await;
        }
    }

    /// Queues a partial (or an early final), replacing the session's waiting
    /// one and shedding the oldest when full. Never waits.
    pub fn push_partial(&self, job: Job) -> Result<(), QueueClosed> {
        debug_assert!(matches!(job.kind, JobKind::Partial | JobKind::Early));
        let mut state = self.lock();
        if state.closed {
            return Err(QueueClosed);
        }
        let before = state.partials.len();
        state.partials.retain(|p| p.session != job.session);
        let mut shed = before - state.partials.len();
        while state.partials.len() >= self.partial_capacity {
            // The oldest plain partial goes first; early finals only when
            // nothing else is left.
            let oldest = state
                .partials
                .iter()
                .position(|p| p.kind == JobKind::Partial)
                .unwrap_or(0);
            state.partials.remove(oldest);
            shed += 1;
        }
        let early = job.kind == JobKind::Early;
        if early {
            // Early finals run before plain partials, oldest first.
            let at = state
                .partials
                .iter()
                .position(|p| p.kind != JobKind::Early)
                .unwrap_or(state.partials.len());
            state.partials.insert(at, job);
        } else {
            state.partials.push_back(job);
        }
        metrics::queue_depth(JobKind::Partial, state.partials.len());
        if early {
            self.preempt_if_busy(&state);
        }
        drop(state);
        if shed > 0 {
            metrics::partials_shed(shed as u64);
        }
        self.work_ready.notify_one();
        Ok(())
    }

    /// Takes back `session`'s waiting partial, if it is still waiting (not
    /// shed, not running).
    pub fn take_partial(&self, session: u64) -> Option<Job> {
        let mut state = self.lock();
        let at = state.partials.iter().position(|p| p.session == session)?;
        let job = state.partials.remove(at);
        metrics::queue_depth(JobKind::Partial, state.partials.len());
        job
    }

    /// Blocks a worker thread until a job is due; `None` once the queue is
    /// closed and every final has been handed out.
    pub fn pop_blocking(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.finals.pop_front() {
                metrics::queue_depth(JobKind::Final, state.finals.len());
                drop(state);
                self.room_for_final.notify_waiters();
                return Some(job);
            }
            let now = Instant::now();
            let mut stale = 0;
            // A plain partial only starts while another worker stays idle, so
            // a final never waits behind partials on a busy pool (a running
            // partial can only be stopped after its encoder pass). A pool of
            // one worker has no other.
            let partials_allowed =
                state.idle_workers > 0 || self.workers.load(Ordering::Relaxed) <= 1;
            while let Some(job) = state.partials.front() {
                if now.duration_since(job.enqueued_at) > job.stale_after || job.reply.is_closed() {
                    state.partials.pop_front();
                    stale += 1;
                    continue;
                }
                if job.kind == JobKind::Partial && !partials_allowed {
                    break;
                }
                let job = state.partials.pop_front().expect("the front was just seen");
                metrics::queue_depth(JobKind::Partial, state.partials.len());
                drop(state);
                if stale > 0 {
                    metrics::partials_shed(stale);
                }
                return Some(job);
            }
            if stale > 0 {
                metrics::partials_shed(stale);
                metrics::queue_depth(JobKind::Partial, 0);
            }
            if state.closed {
                return None;
            }
            state.idle_workers += 1;
            state = self
                .work_ready
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
            state.idle_workers -= 1;
        }
    }

    /// Refuses new jobs; workers finish the finals already queued, then stop.
    /// Waiting partials are dropped.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let shed = state.partials.len();
        state.partials.clear();
        drop(state);
        if shed > 0 {
            metrics::partials_shed(shed as u64);
        }
        self.work_ready.notify_all();
        self.room_for_final.notify_waiters();
    }

    /// Jobs waiting now: (finals, partials).
    pub fn depth(&self) -> (usize, usize) {
        let state = self.lock();
        (state.finals.len(), state.partials.len())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;

    fn job(kind: JobKind, session: u64) -> (Job, oneshot::Receiver<super::super::JobResult>) {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            kind,
            session,
            audio: vec![0.0; 160],
            reply,
            enqueued_at: Instant::now(),
            stale_after: Duration::from_secs(60),
        };
        (job, rx)
    }

    #[tokio::test]
    async fn finals_go_before_partials() {
        let q = JobQueue::new(4, 4);
        let (p, _rp) = job(JobKind::Partial, 1);
        q.push_partial(p).unwrap();
        let (f, _rf) = job(JobKind::Final, 2);
        q.push_final(f).await.unwrap();
        assert_eq!(q.pop_blocking().unwrap().kind, JobKind::Final);
        assert_eq!(q.pop_blocking().unwrap().kind, JobKind::Partial);
    }

    #[tokio::test]
    async fn one_partial_per_session_and_oldest_shed() {
        let q = JobQueue::new(4, 2);
        let (a1, ra1) = job(JobKind::Partial, 1);
        let (a2, _ra2) = job(JobKind::Partial, 1);
        q.push_partial(a1).unwrap();
        q.push_partial(a2).unwrap();
        assert_eq!(q.depth(), (0, 1));
        // The replaced job's reply is dropped: its session sees it cancelled.
        assert!(ra1.await.is_err());
        let (b, _rb) = job(JobKind::Partial, 2);
        let (c, _rc) = job(JobKind::Partial, 3);
        q.push_partial(b).unwrap();
        q.push_partial(c).unwrap();
        assert_eq!(q.depth(), (0, 2));
        assert_eq!(q.pop_blocking().unwrap().session, 2);
        assert_eq!(q.pop_blocking().unwrap().session, 3);
    }

    #[tokio::test]
    async fn a_waiting_partial_can_be_taken_back_once() {
        let q = JobQueue::new(4, 4);
        let (a, _ra) = job(JobKind::Partial, 1);
        let (b, _rb) = job(JobKind::Partial, 2);
        q.push_partial(a).unwrap();
        q.push_partial(b).unwrap();
        assert_eq!(q.take_partial(1).unwrap().session, 1);
        assert!(q.take_partial(1).is_none());
        assert_eq!(q.depth(), (0, 1));
        assert_eq!(q.pop_blocking().unwrap().session, 2);
        assert!(q.take_partial(2).is_none(), "a running job is not waiting");
    }

    #[tokio::test]
    async fn early_finals_jump_the_partials_and_are_shed_last() {
        let q = JobQueue::new(4, 3);
        let (p1, _r1) = job(JobKind::Partial, 1);
        let (p2, _r2) = job(JobKind::Partial, 2);
        let (e3, _r3) = job(JobKind::Early, 3);
        let (e4, _r4) = job(JobKind::Early, 4);
        q.push_partial(p1).unwrap();
        q.push_partial(p2).unwrap();
        q.push_partial(e3).unwrap();
        // Full: the oldest plain partial (session 1) makes room.
        q.push_partial(e4).unwrap();
        let order: Vec<_> = (0..3)
            .map(|_| {
                let j = q.pop_blocking().unwrap();
                (j.session, j.kind)
            })
            .collect();
        assert_eq!(
            order,
            [
                (3, JobKind::Early),
                (4, JobKind::Early),
                (2, JobKind::Partial)
            ]
        );
    }

    #[test]
    fn plain_partials_wait_for_a_second_idle_worker() {
        let q = Arc::new(JobQueue::new(4, 4));
        q.attach_pool(Arc::new(Cores::new(2)), 2);
        let (p, _rp) = job(JobKind::Partial, 1);
        q.push_partial(p).unwrap();
        // The only worker asking: it would leave none free for a final.
        let first = std::thread::spawn({
            let q = q.clone();
            move || q.pop_blocking().map(|j| j.session)
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(!first.is_finished(), "a lone worker took a plain partial");
        // A second worker asks while the first waits: it takes the partial.
        assert_eq!(q.pop_blocking().map(|j| j.session), Some(1));
        let (e, _re) = job(JobKind::Early, 2);
        q.push_partial(e).unwrap();
        assert_eq!(first.join().unwrap(), Some(2), "early finals never wait");
    }

    #[tokio::test]
    async fn stale_partials_are_not_run() {
        let q = JobQueue::new(4, 4);
        let (mut p, _rp) = job(JobKind::Partial, 1);
        p.stale_after = Duration::ZERO;
        p.enqueued_at = Instant::now() - Duration::from_millis(5);
        q.push_partial(p).unwrap();
        let (f, _rf) = job(JobKind::Final, 1);
        q.push_final(f).await.unwrap();
        assert_eq!(q.pop_blocking().unwrap().kind, JobKind::Final);
        q.close();
        assert!(q.pop_blocking().is_none());
    }

    #[tokio::test]
    async fn full_final_queue_makes_the_session_wait_not_drop() {
        let q = Arc::new(JobQueue::new(1, 1));
        let (f1, _r1) = job(JobKind::Final, 1);
        q.push_final(f1).await.unwrap();
        let (f2, _r2) = job(JobKind::Final, 2);
        let q2 = q.clone();
        let pusher = tokio::spawn(async move { q2.push_final(f2).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!pusher.is_finished(), "second final must wait for room");
        let first = tokio::task::spawn_blocking({
            let q = q.clone();
            move || q.pop_blocking().map(|j| j.session)
        })
        .await
        .unwrap();
        assert_eq!(first, Some(1));
        pusher.await.unwrap().unwrap();
        assert_eq!(q.depth(), (1, 0));
    }

    #[tokio::test]
    async fn close_drains_finals_then_stops() {
        let q = JobQueue::new(4, 4);
        let (f, _rf) = job(JobKind::Final, 1);
        q.push_final(f).await.unwrap();
        q.close();
        let (f2, _rf2) = job(JobKind::Final, 1);
        assert!(q.push_final(f2).await.is_err());
        assert!(q.pop_blocking().is_some());
        assert!(q.pop_blocking().is_none());
    }
}
