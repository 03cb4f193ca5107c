//! The worker pool: transcription jobs (16 kHz utterance audio) in, text out on each job's reply channel.
//!
//! A fixed number of named OS threads (`steno-worker-N`), each owning one
//! `Transcriber` (for Whisper: one `WhisperState` over the one shared
//! model), warmed up before the pool reports ready. Blocking model work never
//! runs on the async runtime. Scheduling policy (the lanes) lives in
//! `queue`, core sharing in `cores`, the typed config in `config`, which
//! of whisper.cpp's passes over a file window run in `remainder`, its log
//! in `whisper_log`, how waiting finals share one encoder pass in
//! `pack`, how word times are checked against the signal in `edges`, and
//! how many workers serve in `ready`.

mod config;
mod cores;
mod edges;
mod job;
pub mod pack;
mod queue;
mod ready;
mod remainder;
pub mod text;
pub mod whisper;
mod whisper_log;

pub use config::{ModelConfig, WorkersConfig};
pub use job::{DecodeOptions, Decoded, Job, JobKind, JobResult, Segment, Transcript, Word};

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::Instant;

use cores::Cores;
pub use queue::{
    Degrade, JobQueue, LANES, Lane, LaneCapacities, LaneSpec, LiveGuard, QueueClosed, Starts,
    WhenFull,
};
use ready::ReadyCount;

use crate::metrics;

/// Why the model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("model file {path} not found (run `make model` or set model.path)")]
    Missing { path: std::path::PathBuf },
    #[error("model path {path} is not UTF-8")]
    NotUtf8 { path: std::path::PathBuf },
    #[error("whisper.cpp cannot load {path}: {source}")]
    Whisper {
        path: std::path::PathBuf,
        source: whisper_rs::WhisperError,
    },
    #[error("cannot create a whisper state: {0}")]
    State(whisper_rs::WhisperError),
    #[error("a worker thread died while starting")]
    ThreadDied,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot load the model: {0}")]
    Load(#[from] LoadError),
    #[error("inference failed: {0}")]
    Inference(Box<dyn std::error::Error + Send + Sync>),
    #[error("inference panicked")]
    Panicked,
    /// A running partial gave its cores to a final (see `cores`).
    #[error("inference aborted for a final")]
    Aborted,
    #[error("cannot start worker thread: {0}")]
    Spawn(std::io::Error),
}

/// Turns audio into text. One instance per worker thread; it may keep
/// mutable scratch state (Whisper's KV cache, mel buffers).
pub trait Transcriber: Send {
    /// Transcribes 16 kHz mono `audio` as `options` ask.
    fn transcribe(
        &mut self,
        audio: &[f32],
        kind: JobKind,
        options: &DecodeOptions,
    ) -> Result<Decoded, WorkerError>;

    /// CPU threads for the next `transcribe` calls.
    fn set_threads(&mut self, _threads: usize) {}

    /// A flag that, once set, should make a running `transcribe` stop soon
    /// with [`WorkerError::Aborted`]. Transcribers that cannot stop ignore it.
    fn set_abort_flag(&mut self, _flag: Arc<AtomicBool>) {}
}

/// Makes a fresh `Transcriber`: at start-up for each worker, and again when
/// one panicked and its state cannot be trusted.
pub trait TranscriberFactory: Send + Sync + 'static {
    fn create(&self) -> Result<Box<dyn Transcriber>, WorkerError>;

    /// Each worker's own share of CPU threads (`workers.threads_per_worker`).
    fn threads_per_worker(&self) -> usize {
        1
    }
}

/// The running pool. Dropping it does not stop the threads; call `shutdown`.
pub struct WorkerPool {
    queue: Arc<JobQueue>,
    threads: Vec<JoinHandle<()>>,
    ready: Arc<ReadyCount>,
}

impl WorkerPool {
    /// Starts `count` workers and blocks until each has built and warmed up
    /// its transcriber. Call it from a blocking context.
    pub fn start(
        factory: Arc<dyn TranscriberFactory>,
        count: usize,
        queue: Arc<JobQueue>,
    ) -> Result<Self, WorkerError> {
        let ready = Arc::new(ReadyCount::new(metrics::gauge_workers_ready));
        let share = factory.threads_per_worker().max(1);
        let cores = Arc::new(Cores::new(count * share));
        queue.attach_pool(cores.clone(), count);
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(count);
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let factory = factory.clone();
            let queue = queue.clone();
            let ready = ready.clone();
            let cores = cores.clone();
            let started_tx = started_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("steno-worker-{index}"))
                .spawn(move || {
                    let transcriber = factory.create().and_then(|mut t| {
                        warm_up(t.as_mut())?;
                        Ok(t)
                    });
                    match transcriber {
                        Ok(t) => {
                            ready.up();
                            let _ = started_tx.send(Ok(()));
                            let worker = Worker {
                                index,
                                share,
                                total: count * share,
                                cores: &cores,
                                queue: &queue,
                            };
                            worker.run(t, factory.as_ref());
                            ready.down();
                        }
                        Err(e) => {
                            let _ = started_tx.send(Err(e));
                        }
                    }
                })
                .map_err(WorkerError::Spawn)?;
            threads.push(handle);
        }
        drop(started_tx);
        for _ in 0..count {
            match started_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    queue.close();
                    return Err(e);
                }
                Err(_) => {
                    queue.close();
                    return Err(LoadError::ThreadDied.into());
                }
            }
        }
        tracing::info!(workers = count, "worker pool warmed up and ready");
        Ok(Self {
            queue,
            threads,
            ready,
        })
    }

    pub fn queue(&self) -> &Arc<JobQueue> {
        &self.queue
    }

    /// Workers currently serving.
    pub fn ready_workers(&self) -> usize {
        self.ready.get()
    }

    /// Closes the queue, lets workers finish queued finals, and joins them.
    pub fn shutdown(self) {
        self.queue.close();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// One inference on a second of silence: the first call allocates buffers
/// and pages the weights in, so the first user does not pay for it.
fn warm_up(t: &mut dyn Transcriber) -> Result<(), WorkerError> {
    let started = Instant::now();
    t.transcribe(
        &vec![0.0; 16_000],
        JobKind::Final,
        &DecodeOptions::default(),
    )?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "worker warmed up"
    );
    Ok(())
}

/// One worker thread's view of the pool.
struct Worker<'a> {
    index: usize,
    /// Its own share of cores; `total` is the pool's.
    share: usize,
    total: usize,
    cores: &'a Cores,
    queue: &'a JobQueue,
}

impl Worker<'_> {
    fn run(&self, mut transcriber: Box<dyn Transcriber>, factory: &dyn TranscriberFactory) {
        let slot = self.cores.register();
        transcriber.set_abort_flag(slot.abort.clone());
        while let Some(mut job) = self.queue.pop_blocking() {
            if job.reply.is_closed() {
                // The session is gone (client vanished): nobody reads the result.
                continue;
            }
            let waited = job.enqueued_at.elapsed();
            metrics::lane_wait(Lane::of(job.kind), waited.as_secs_f64());
            if let Some(rule) = self.queue.degrade()
                && matches!(job.kind, JobKind::Final | JobKind::Early)
                && waited >= rule.after
            {
                // Counted where it runs (`run_one`): a packed pass ignores it.
                job.options.min_audio_ctx = Some(rule.min_audio_ctx);
            }
            let company = match self.queue.packing() {
                Some(limits)
                    if queue::packable(&job) && job.audio.len() + limits.gap < limits.max =>
                {
                    self.queue
                        .take_company(limits.max - job.audio.len(), limits.gap)
                }
                _ => Vec::new(),
            };
            let alive = if company.is_empty() {
                self.run_one(job, &slot, &mut transcriber, factory)
            } else {
                self.run_packed(job, company, &slot, &mut transcriber, factory)
            };
            if !alive {
                return;
            }
        }
    }

    /// Runs one job and replies; false if the worker must stop.
    fn run_one(
        &self,
        job: Job,
        slot: &cores::RunSlot,
        transcriber: &mut Box<dyn Transcriber>,
        factory: &dyn TranscriberFactory,
    ) -> bool {
        let seconds = job.audio.len() as f64 / 16_000.0;
        // The metric and the client's flag say the same: this pass ran
        // with a degraded final's window.
        let degraded = job.options.min_audio_ctx.is_some();
        if degraded {
            metrics::final_degraded();
        }
        let outcome = self.infer(
            slot,
            transcriber,
            factory,
            &job.audio,
            job.kind,
            &job.options,
            seconds,
        );
        let alive = outcome.is_some();
        let result = outcome.unwrap_or(Err(WorkerError::Panicked));
        let _ = job.reply.send(result.map(|(decoded, inference)| {
            Transcript {
                text: decoded.text,
                // The text lost whisper's loops (`text::clean`); the words
                // lose the same. (Not in `decode`: a packed pass's words
                // hold several sessions, who may say the same sentence.)
                segments: decoded
                    .segments
                    .into_iter()
                    .map(|mut s| {
                        text::collapse_loops(&mut s.words);
                        s
                    })
                    .collect(),
                inference,
                degraded,
            }
        }));
        alive
    }

    /// Runs `first` and `company` in one pass (see `pack`), replies to each
    /// with its own words, and runs alone those whose split is unclear.
    fn run_packed(
        &self,
        first: Job,
        company: Vec<Job>,
        slot: &cores::RunSlot,
        transcriber: &mut Box<dyn Transcriber>,
        factory: &dyn TranscriberFactory,
    ) -> bool {
        let limits = self.queue.packing().expect("packing is on");
        let mut jobs = vec![first];
        jobs.extend(company);
        for job in &jobs[1..] {
            metrics::lane_wait(Lane::of(job.kind), job.enqueued_at.elapsed().as_secs_f64());
        }
        let parts: Vec<&[f32]> = jobs.iter().map(|j| &j.audio[..]).collect();
        let packed = pack::pack(&parts, limits.gap);
        let seconds = jobs.iter().map(|j| j.audio.len()).sum::<usize>() as f64 / 16_000.0;
        // One segment with word times: the split goes by them. (Segments
        // of whisper's own, `long_form`, were tried: their times after a
        // gap were worse, and every pack ran again.)
        let options = DecodeOptions {
            words: true,
            ..DecodeOptions::default()
        };
        let Some(outcome) = self.infer(
            slot,
            transcriber,
            factory,
            &packed.audio,
            JobKind::Final,
            &options,
            seconds,
        ) else {
            for job in jobs {
                let _ = job.reply.send(Err(WorkerError::Panicked));
            }
            return false;
        };
        let parts = match outcome {
            Ok((decoded, inference)) => {
                let words: Vec<Word> = decoded.segments.into_iter().flat_map(|s| s.words).collect();
                let gap_ms = limits.gap as u64 * 1000 / 16_000;
                pack::split(&words, &packed.spans, gap_ms)
                    .into_iter()
                    .map(|part| part.map(|words| (words, inference)))
                    .collect()
            }
            // A failed or panicked pass: each job alone says how it fares.
            Err(_) => vec![None; jobs.len()],
        };
        metrics::packed_pass(jobs.len());
        let mut alone = Vec::new();
        for (job, part) in jobs.into_iter().zip(parts) {
            match part {
                Some((words, inference)) => {
                    let text = pack::text(&words);
                    let segments = if job.options.words {
                        let end_ms = words.last().map_or(0, |w| w.end_ms);
                        vec![Segment {
                            text: text.clone(),
                            start_ms: words.first().map_or(0, |w| w.start_ms),
                            end_ms,
                            words,
                        }]
                    } else {
                        Vec::new()
                    };
                    // A packed pass runs at the full window: never degraded.
                    let _ = job.reply.send(Ok(Transcript {
                        text,
                        segments,
                        inference,
                        degraded: false,
                    }));
                }
                None => alone.push(job),
            }
        }
        metrics::packed_rerun(alone.len());
        for job in alone {
            if !self.run_one(job, slot, transcriber, factory) {
                return false;
            }
        }
        true
    }

    /// One inference under the pool's core rules. A panic rebuilds the
    /// transcriber; None if it cannot be rebuilt (the worker stops).
    #[allow(clippy::too_many_arguments)]
    fn infer(
        &self,
        slot: &cores::RunSlot,
        transcriber: &mut Box<dyn Transcriber>,
        factory: &dyn TranscriberFactory,
        audio: &[f32],
        kind: JobKind,
        options: &DecodeOptions,
        audio_s: f64,
    ) -> Option<Result<(Decoded, std::time::Duration), WorkerError>> {
        // Partials and file windows give way to a final that finds no
        // free worker (see `cores`); an aborted window is sent again.
        let partial = matches!(kind, JobKind::Partial | JobKind::Batch);
        let alone = self.queue.waiting() == 0;
        if !alone {
            self.cores.note_contention();
        }
        // A final with nothing behind it, on a calm pool, borrows the
        // idle workers' cores.
        let want = if !partial && alone && self.cores.calm() {
            self.total
        } else {
            self.share
        };
        let threads = self.cores.take(slot, partial, self.share, want);
        transcriber.set_threads(threads);
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            transcriber.transcribe(audio, kind, options)
        }));
        let inference = started.elapsed();
        self.cores.give_back(slot, threads);
        metrics::inference_done(kind, inference.as_secs_f64(), audio_s);
        Some(match outcome {
            Ok(Ok(decoded)) => Ok((decoded, inference)),
            Ok(Err(WorkerError::Aborted)) if partial => {
                tracing::debug!(
                    worker = self.index,
                    kind = kind.as_str(),
                    "aborted for a final"
                );
                if kind == JobKind::Partial {
                    metrics::partials_shed(1);
                }
                Err(WorkerError::Aborted)
            }
            Ok(Err(e)) => {
                tracing::warn!(worker = self.index, error = %e, "inference failed");
                Err(e)
            }
            Err(_) => {
                metrics::worker_panicked();
                tracing::error!(
                    worker = self.index,
                    "inference panicked; rebuilding this worker's model state"
                );
                match factory.create() {
                    Ok(fresh) => {
                        *transcriber = fresh;
                        transcriber.set_abort_flag(slot.abort.clone());
                    }
                    Err(e) => {
                        tracing::error!(worker = self.index, error = %e, "cannot rebuild worker state; worker stops");
                        return None;
                    }
                }
                Err(WorkerError::Panicked)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;

    /// Echoes the audio length; panics on audio of length 13.
    struct Fake;
    impl Transcriber for Fake {
        fn transcribe(
            &mut self,
            audio: &[f32],
            _kind: JobKind,
            _options: &DecodeOptions,
        ) -> Result<Decoded, WorkerError> {
            assert_ne!(audio.len(), 13, "injected panic");
            Ok(Decoded::text(format!("{} samples", audio.len())))
        }
    }
    struct FakeFactory;
    impl TranscriberFactory for FakeFactory {
        fn create(&self) -> Result<Box<dyn Transcriber>, WorkerError> {
            Ok(Box::new(Fake))
        }
    }

    fn job(audio: usize) -> (Job, oneshot::Receiver<JobResult>) {
        let (reply, rx) = oneshot::channel();
        (
            Job {
                kind: JobKind::Final,
                session: 1,
                audio: vec![0.0; audio],
                reply,
                enqueued_at: Instant::now(),
                stale_after: Duration::from_secs(1),
                options: DecodeOptions::default(),
            },
            rx,
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pool_transcribes_and_survives_a_panic() {
        let queue = Arc::new(JobQueue::new(LaneCapacities {
            finals: 8,
            speculative: 8,
            batch: 8,
        }));
        let pool = tokio::task::spawn_blocking({
            let queue = queue.clone();
            move || WorkerPool::start(Arc::new(FakeFactory), 2, queue)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(pool.ready_workers(), 2);
        let (j, rx) = job(13);
        queue.push_final(j).await.unwrap();
        assert!(matches!(rx.await.unwrap(), Err(WorkerError::Panicked)));
        for n in [100, 200, 300] {
            let (j, rx) = job(n);
            queue.push_final(j).await.unwrap();
            assert_eq!(rx.await.unwrap().unwrap().text, format!("{n} samples"));
        }
        assert_eq!(pool.ready_workers(), 2);
        tokio::task::spawn_blocking(move || pool.shutdown())
            .await
            .unwrap();
    }

    #[test]
    fn failing_factory_fails_start() {
        struct Broken;
        impl TranscriberFactory for Broken {
            fn create(&self) -> Result<Box<dyn Transcriber>, WorkerError> {
                Err(LoadError::Missing {
                    path: "no such file".into(),
                }
                .into())
            }
        }
        let queue = Arc::new(JobQueue::new(LaneCapacities {
            finals: 1,
            speculative: 1,
            batch: 1,
        }));
        let err = WorkerPool::start(Arc::new(Broken), 2, queue).err().unwrap();
        assert!(err.to_string().contains("no such file"));
    }
}
