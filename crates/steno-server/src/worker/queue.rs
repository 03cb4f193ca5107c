//! The job scheduler: transcription jobs in, on named lanes; the next job for a free worker out.
//!
//! # Lanes
//!
//! One table ([`LANES`]) says, for every lane, how much may wait, what
//! happens when it is full and when its jobs may start; workers take from the
//! lanes in this order:
//!
//! | lane | jobs | capacity | when full | starts |
//! |---|---|---|---|---|
//! | `final` | utterance finals | `workers.final_queue_capacity` | the submitter waits (back-pressure); never dropped | at once |
//! | `early` | finals started at a pause | `workers.partial_queue_capacity`, shared with `partial` | the oldest plain partial is shed, then the oldest early final | at once |
//! | `partial` | partial transcripts | shared with `early` | the oldest is shed | only while another worker stays idle (or the pool has one worker) |
//! | `batch` | chunks of file jobs | `workers.batch_queue_capacity` | the submitter waits | only while another worker stays idle, or no live session is open |
//!
//! Besides: a session has at most one job waiting on `early` + `partial` (a
//! newer one replaces it); a partial that waited longer than its
//! `stale_after` is shed instead of run; a session can take its waiting
//! early/partial job back (an early final that has become due, see
//! `pipeline`) to requeue it as a final; a final or early final that
//! arrives while no worker is free aborts the running partials (see
//! `cores`). Every shed job is counted in `steno_partials_shed_total`.
//! A final or early final that waited past `workers.degrade_after_ms` is
//! degraded when a worker takes it ([`Degrade`]): a smaller encoder window.
//!
//! # Locks
//!
//! One order, never reversed: `JobQueue::state`, then `Cores::slots`, then a
//! `RunSlot::partial_cores` (a final's push preempts partials while holding
//! the queue). `Cores::free` and `Cores::contended_at` are leaves: nothing
//! is locked while they are held.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::cores::Cores;
use super::{Job, JobKind};
use crate::metrics;

/// A queue of jobs of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    Final,
    Early,
    Partial,
    Batch,
}

/// What happens to a job pushed on a full lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// The submitter waits for room: the job is never dropped.
    Wait,
    /// Room is made by shedding the oldest speculative job (plain partials
    /// before early finals).
    ShedOldest,
}

/// When a waiting job of the lane may start on a free worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Starts {
    /// As soon as a worker is free.
    AtOnce,
    /// Only while another worker stays idle, so a final never waits behind
    /// it on a busy pool (a running job can only be stopped after its
    /// encoder pass); a pool of one worker has no other.
    WhileAnotherIdles,
    /// Like `WhileAnotherIdles`, or whenever no live session is open (files
    /// then use every worker).
    WhileAnotherIdlesOrNoLive,
}

/// One row of the lanes table.
#[derive(Clone, Copy, Debug)]
pub struct LaneSpec {
    pub lane: Lane,
    pub name: &'static str,
    pub when_full: WhenFull,
    pub starts: Starts,
}

/// The lanes in the order workers take from them.
pub const LANES: [LaneSpec; 4] = [
    LaneSpec {
        lane: Lane::Final,
        name: "final",
        when_full: WhenFull::Wait,
        starts: Starts::AtOnce,
    },
    LaneSpec {
        lane: Lane::Early,
        name: "early",
        when_full: WhenFull::ShedOldest,
        starts: Starts::AtOnce,
    },
    LaneSpec {
        lane: Lane::Partial,
        name: "partial",
        when_full: WhenFull::ShedOldest,
        starts: Starts::WhileAnotherIdles,
    },
    LaneSpec {
        lane: Lane::Batch,
        name: "batch",
        when_full: WhenFull::Wait,
        starts: Starts::WhileAnotherIdlesOrNoLive,
    },
];

impl Lane {
    pub fn spec(self) -> &'static LaneSpec {
        &LANES[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The lane a job of `kind` waits on.
    pub fn of(kind: JobKind) -> Self {
        match kind {
            JobKind::Final => Self::Final,
            JobKind::Early => Self::Early,
            JobKind::Partial => Self::Partial,
            JobKind::Batch => Self::Batch,
        }
    }
}

/// How much each lane holds.
#[derive(Clone, Copy, Debug)]
pub struct LaneCapacities {
    pub finals: usize,
    /// Early finals and partials together.
    pub speculative: usize,
    pub batch: usize,
}

pub struct JobQueue {
    state: Mutex<QueueState>,
    /// Wakes workers when a job arrives or the queue closes.
    work_ready: Condvar,
    /// Wakes submitters waiting for room on a `Wait` lane.
    room: Notify,
    capacities: LaneCapacities,
    /// The pool's cores, once a pool serves this queue.
    cores: OnceLock<Arc<Cores>>,
    /// Workers of that pool (0 before one starts).
    workers: AtomicUsize,
    /// Live sessions open now (for the batch lane's start rule).
    live_sessions: AtomicUsize,
    /// Whether and how waiting finals are packed (`workers.pack_*`).
    packing: OnceLock<Option<super::pack::PackLimits>>,
    /// Whether and when late finals get a smaller window (`workers.degrade_*`).
    degrade: OnceLock<Option<Degrade>>,
}

/// How a final that waited too long for a worker is degraded: decoded with
/// a smaller encoder window floor (at 512 frames: 30% less model time,
/// about half a WER point more; docs/capacity.md, "Degrading late finals").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Degrade {
    /// How long a final must have waited.
    pub after: Duration,
    /// The window floor it then gets, in encoder frames.
    pub min_audio_ctx: u32,
}

#[derive(Default)]
struct QueueState {
    /// One queue per lane, indexed by `Lane as usize`.
    lanes: [VecDeque<Job>; 4],
    /// Workers waiting in `pop_blocking`.
    idle_workers: usize,
    closed: bool,
}

impl QueueState {
    fn lane(&mut self, lane: Lane) -> &mut VecDeque<Job> {
        &mut self.lanes[lane as usize]
    }

    fn speculative(&self) -> usize {
        self.lanes[Lane::Early as usize].len() + self.lanes[Lane::Partial as usize].len()
    }
}

/// The queue no longer takes jobs (the server is stopping).
#[derive(Debug, thiserror::Error)]
#[error("the worker queue is closed")]
pub struct QueueClosed;

/// Counts one live session for the batch lane's start rule while alive.
pub struct LiveGuard(Arc<JobQueue>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live_sessions.fetch_sub(1, Ordering::SeqCst);
        self.0.work_ready.notify_all();
    }
}

impl JobQueue {
    pub fn new(capacities: LaneCapacities) -> Self {
        Self {
            state: Mutex::new(QueueState::default()),
            work_ready: Condvar::new(),
            room: Notify::new(),
            capacities,
            cores: OnceLock::new(),
            workers: AtomicUsize::new(0),
            live_sessions: AtomicUsize::new(0),
            packing: OnceLock::new(),
            degrade: OnceLock::new(),
        }
    }

    /// Lets urgent jobs preempt the partials running on the pool's cores,
    /// and partials know whether another worker can stay free.
    pub(super) fn attach_pool(&self, cores: Arc<Cores>, workers: usize) {
        let _ = self.cores.set(cores);
        self.workers.store(workers, Ordering::Relaxed);
    }

    /// Packs waiting finals within `limits` (None: never); set once, before
    /// a pool serves the queue.
    pub fn set_packing(&self, limits: Option<super::pack::PackLimits>) {
        let _ = self.packing.set(limits);
    }

    /// Degrades late finals by `rule` (None: never); set once, before a
    /// pool serves the queue.
    pub fn set_degrade(&self, rule: Option<Degrade>) {
        let _ = self.degrade.set(rule);
    }

    /// How late finals degrade, if they do.
    pub fn degrade(&self) -> Option<Degrade> {
        self.degrade.get().copied().flatten()
    }

    /// How waiting finals are packed, if they are.
    pub fn packing(&self) -> Option<super::pack::PackLimits> {
        self.packing.get().copied().flatten()
    }

    /// Marks a live session open until the guard drops.
    pub fn live_session(self: &Arc<Self>) -> LiveGuard {
        self.live_sessions.fetch_add(1, Ordering::SeqCst);
        LiveGuard(self.clone())
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

    fn capacity(&self, lane: Lane) -> usize {
        match lane {
            Lane::Final => self.capacities.finals,
            Lane::Early | Lane::Partial => self.capacities.speculative,
            Lane::Batch => self.capacities.batch,
        }
    }

    /// Queues a final, waiting for room if the final lane is full.
    pub async fn push_final(&self, job: Job) -> Result<(), QueueClosed> {
        debug_assert_eq!(job.kind, JobKind::Final);
        self.push_waiting(job).await
    }

    /// Queues a chunk of a file job, waiting for room if the batch lane is full.
    pub async fn push_batch(&self, job: Job) -> Result<(), QueueClosed> {
        debug_assert_eq!(job.kind, JobKind::Batch);
        self.push_waiting(job).await
    }

    /// A `Wait` lane: the job goes in when there is room.
    async fn push_waiting(&self, job: Job) -> Result<(), QueueClosed> {
        let lane = Lane::of(job.kind);
        debug_assert_eq!(lane.spec().when_full, WhenFull::Wait);
        let mut job = Some(job);
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.lock();
                if state.closed {
                    return Err(QueueClosed);
                }
                if state.lane(lane).len() < self.capacity(lane) {
                    state
                        .lane(lane)
                        .push_back(job.take().expect("job is pushed once"));
                    metrics::queue_depth(lane, state.lane(lane).len());
                    if lane == Lane::Final {
                        self.preempt_if_busy(&state);
                    }
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
        let lane = Lane::of(job.kind);
        debug_assert_eq!(lane.spec().when_full, WhenFull::ShedOldest);
        let mut state = self.lock();
        if state.closed {
            return Err(QueueClosed);
        }
        let before = state.speculative();
        for l in [Lane::Early, Lane::Partial] {
            state.lane(l).retain(|p| p.session != job.session);
        }
        let mut shed = before - state.speculative();
        while state.speculative() >= self.capacities.speculative {
            // The oldest plain partial goes first; early finals only when
            // nothing else is left.
            if state.lane(Lane::Partial).pop_front().is_none() {
                state.lane(Lane::Early).pop_front();
            }
            shed += 1;
        }
        state.lane(lane).push_back(job);
        for l in [Lane::Early, Lane::Partial] {
            metrics::queue_depth(l, state.lane(l).len());
        }
        if lane == Lane::Early {
            self.preempt_if_busy(&state);
        }
        drop(state);
        if shed > 0 {
            metrics::partials_shed(shed as u64);
        }
        self.work_ready.notify_one();
        Ok(())
    }

    /// Takes back `session`'s waiting early final or partial, if it is still
    /// waiting (not shed, not running).
    pub fn take_partial(&self, session: u64) -> Option<Job> {
        let mut state = self.lock();
        for lane in [Lane::Early, Lane::Partial] {
            if let Some(at) = state.lane(lane).iter().position(|p| p.session == session) {
                let job = state.lane(lane).remove(at);
                metrics::queue_depth(lane, state.lane(lane).len());
                return job;
            }
        }
        None
    }

    /// Whether a job of `spec`'s lane may start now.
    fn may_start(&self, spec: &LaneSpec, state: &QueueState) -> bool {
        let another_idles = state.idle_workers > 0 || self.workers.load(Ordering::Relaxed) <= 1;
        match spec.starts {
            Starts::AtOnce => true,
            Starts::WhileAnotherIdles => another_idles,
            Starts::WhileAnotherIdlesOrNoLive => {
                another_idles || self.live_sessions.load(Ordering::SeqCst) == 0
            }
        }
    }

    /// Blocks a worker thread until a job is due; `None` once the queue is
    /// closed and every final has been handed out.
    pub fn pop_blocking(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            let mut stale = 0;
            let mut found = None;
            for spec in &LANES {
                let lane = spec.lane;
                // Speculative jobs nobody wants any more are dropped from
                // the front, whether or not the lane may start now.
                if spec.when_full == WhenFull::ShedOldest {
                    while let Some(job) = state.lane(lane).front() {
                        if now.duration_since(job.enqueued_at) > job.stale_after
                            || job.reply.is_closed()
                        {
                            state.lane(lane).pop_front();
                            stale += 1;
                        } else {
                            break;
                        }
                    }
                }
                if state.lane(lane).is_empty() || !self.may_start(spec, &state) {
                    continue;
                }
                found = state.lane(lane).pop_front().map(|job| (lane, job));
                break;
            }
            if stale > 0 {
                metrics::partials_shed(stale);
                for l in [Lane::Early, Lane::Partial] {
                    metrics::queue_depth(l, state.lane(l).len());
                }
            }
            if let Some((lane, job)) = found {
                metrics::queue_depth(lane, state.lane(lane).len());
                drop(state);
                if lane.spec().when_full == WhenFull::Wait {
                    self.room.notify_waiters();
                }
                return Some(job);
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

    /// Refuses new jobs; workers finish the finals already queued, then
    /// stop. Waiting partials and early finals are dropped, and so are
    /// waiting batch jobs (a file job resumes from its last finished chunk
    /// when the server starts again).
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let shed = state.speculative();
        state.lane(Lane::Early).clear();
        state.lane(Lane::Partial).clear();
        state.lane(Lane::Batch).clear();
        drop(state);
        if shed > 0 {
            metrics::partials_shed(shed as u64);
        }
        self.work_ready.notify_all();
        self.room.notify_waiters();
    }

    /// Finals already waiting that may share one encoder pass with a
    /// final just taken (see `pack`): from the final lane, then the early
    /// lane, oldest first, each whose audio fits in what is left of
    /// `room` samples after `gap` more; only plain ones (no prompt, not a
    /// file window) whose session still waits. Taken off their lanes.
    pub fn take_company(&self, mut room: usize, gap: usize) -> Vec<Job> {
        let mut state = self.lock();
        let mut company = Vec::new();
        for lane in [Lane::Final, Lane::Early] {
            let mut i = 0;
            while i < state.lane(lane).len() && room > gap {
                let job = &state.lane(lane)[i];
                let fits = job.audio.len() + gap <= room;
                if fits && packable(job) && !job.reply.is_closed() {
                    room -= job.audio.len() + gap;
                    company.extend(state.lane(lane).remove(i));
                } else {
                    i += 1;
                }
            }
            metrics::queue_depth(lane, state.lane(lane).len());
        }
        drop(state);
        if !company.is_empty() {
            self.room.notify_waiters();
        }
        company
    }

    /// Jobs waiting on `lane` now.
    pub fn depth(&self, lane: Lane) -> usize {
        self.lock().lane(lane).len()
    }

    /// Jobs waiting on every lane together.
    pub fn waiting(&self) -> usize {
        self.lock().lanes.iter().map(VecDeque::len).sum()
    }

    /// How long the oldest final waiting for a worker has waited (zero
    /// when none waits): the backlog that admission by load watches. The
    /// final lane is first in, first out, so its front is the oldest.
    pub fn oldest_final_wait(&self) -> Duration {
        self.lock()
            .lane(Lane::Final)
            .front()
            .map_or(Duration::ZERO, |job| job.enqueued_at.elapsed())
    }
}

/// Whether `job` may be packed with others: a live final without a prompt.
pub fn packable(job: &Job) -> bool {
    matches!(job.kind, JobKind::Final | JobKind::Early)
        && job.options.prompt.is_none()
        && !job.options.long_form
        && job.options.temperature == 0.0
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;

    fn queue(finals: usize, speculative: usize) -> JobQueue {
        JobQueue::new(LaneCapacities {
            finals,
            speculative,
            batch: 2,
        })
    }

    /// (finals, early finals + partials) waiting.
    fn depth(q: &JobQueue) -> (usize, usize) {
        (
            q.depth(Lane::Final),
            q.depth(Lane::Early) + q.depth(Lane::Partial),
        )
    }

    fn job(kind: JobKind, session: u64) -> (Job, oneshot::Receiver<super::super::JobResult>) {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            kind,
            session,
            audio: vec![0.0; 160],
            reply,
            enqueued_at: Instant::now(),
            stale_after: Duration::from_secs(60),
            options: Default::default(),
        };
        (job, rx)
    }

    #[tokio::test]
    async fn finals_go_before_partials() {
        let q = queue(4, 4);
        let (p, _rp) = job(JobKind::Partial, 1);
        q.push_partial(p).unwrap();
        let (f, _rf) = job(JobKind::Final, 2);
        q.push_final(f).await.unwrap();
        assert_eq!(q.pop_blocking().unwrap().kind, JobKind::Final);
        assert_eq!(q.pop_blocking().unwrap().kind, JobKind::Partial);
    }

    #[tokio::test]
    async fn one_partial_per_session_and_oldest_shed() {
        let q = queue(4, 2);
        let (a1, ra1) = job(JobKind::Partial, 1);
        let (a2, _ra2) = job(JobKind::Partial, 1);
        q.push_partial(a1).unwrap();
        q.push_partial(a2).unwrap();
        assert_eq!(depth(&q), (0, 1));
        // The replaced job's reply is dropped: its session sees it cancelled.
        assert!(ra1.await.is_err());
        let (b, _rb) = job(JobKind::Partial, 2);
        let (c, _rc) = job(JobKind::Partial, 3);
        q.push_partial(b).unwrap();
        q.push_partial(c).unwrap();
        assert_eq!(depth(&q), (0, 2));
        assert_eq!(q.pop_blocking().unwrap().session, 2);
        assert_eq!(q.pop_blocking().unwrap().session, 3);
    }

    #[tokio::test]
    async fn a_waiting_partial_can_be_taken_back_once() {
        let q = queue(4, 4);
        let (a, _ra) = job(JobKind::Partial, 1);
        let (b, _rb) = job(JobKind::Partial, 2);
        q.push_partial(a).unwrap();
        q.push_partial(b).unwrap();
        assert_eq!(q.take_partial(1).unwrap().session, 1);
        assert!(q.take_partial(1).is_none());
        assert_eq!(depth(&q), (0, 1));
        assert_eq!(q.pop_blocking().unwrap().session, 2);
        assert!(q.take_partial(2).is_none(), "a running job is not waiting");
    }

    #[tokio::test]
    async fn early_finals_jump_the_partials_and_are_shed_last() {
        let q = queue(4, 3);
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
        let q = Arc::new(queue(4, 4));
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
        let q = queue(4, 4);
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
        let q = Arc::new(queue(1, 1));
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
        assert_eq!(depth(&q), (1, 0));
    }

    #[tokio::test]
    async fn close_drains_finals_then_stops() {
        let q = queue(4, 4);
        let (f, _rf) = job(JobKind::Final, 1);
        q.push_final(f).await.unwrap();
        q.close();
        let (f2, _rf2) = job(JobKind::Final, 1);
        assert!(q.push_final(f2).await.is_err());
        assert!(q.pop_blocking().is_some());
        assert!(q.pop_blocking().is_none());
    }

    #[test]
    fn the_table_lists_every_lane_in_order() {
        for (i, spec) in LANES.iter().enumerate() {
            assert_eq!(spec.lane as usize, i);
            assert_eq!(spec.lane.spec().name, spec.name);
        }
        assert_eq!(Lane::of(JobKind::Batch), Lane::Batch);
    }

    #[test]
    fn batch_jobs_keep_a_worker_free_while_sessions_are_live() {
        let q = Arc::new(queue(4, 4));
        q.attach_pool(Arc::new(Cores::new(2)), 2);
        let live = q.live_session();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (b, _rb) = job(JobKind::Batch, 9);
        rt.block_on(q.push_batch(b)).unwrap();
        let first = std::thread::spawn({
            let q = q.clone();
            move || q.pop_blocking().map(|j| j.kind)
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !first.is_finished(),
            "a lone worker took a batch job while a session is live"
        );
        // The last live session leaves: the batch job may use every worker.
        drop(live);
        assert_eq!(first.join().unwrap(), Some(JobKind::Batch));
        // Finals still go first.
        let (b, _rb) = job(JobKind::Batch, 9);
        let (f, _rf) = job(JobKind::Final, 1);
        rt.block_on(q.push_batch(b)).unwrap();
        rt.block_on(q.push_final(f)).unwrap();
        assert_eq!(q.pop_blocking().unwrap().kind, JobKind::Final);
        assert_eq!(q.pop_blocking().unwrap().kind, JobKind::Batch);
    }
}
