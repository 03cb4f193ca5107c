//! Durable file jobs: accepted uploads in (already on disk), run one after another on the batch lane, their records, progress and results out through the spool; a job survives a crash or restart and resumes from its last finished window.
//!
//! Life of a job: `queued` (upload on disk, record written, then 202) ->
//! `running` -> `done` (result.json written first) | `failed` | `cancelled`.
//! At start every `queued` or `running` job on disk is queued again, in the
//! order it was created; finished windows are kept, so a resumed job only
//! transcribes the rest. Results are removed `files.result_ttl_s` after the
//! job ends.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::FilesConfig;
use super::format::{ResponseFormat, Transcription};
use super::spool::{DiskStore, Spool, is_disk_full, read_json, write_json};
use super::transcribe::{FileJobError, FileOptions, Plan, transcribe_file};
use crate::metrics;
use crate::worker::JobQueue;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub const ALL: [JobStatus; 5] = [
        Self::Queued,
        Self::Running,
        Self::Done,
        Self::Failed,
        Self::Cancelled,
    ];

    fn finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

/// What a job was asked for.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct JobOptions {
    pub response_format: ResponseFormat,
    pub prompt: Option<String>,
    pub temperature: f32,
    pub words: bool,
}

/// A job as its record on disk (and `GET /v1/jobs/{id}`) has it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub status: JobStatus,
    pub file_name: String,
    /// The upload's name in the job's folder (`upload.EXT`).
    pub upload: String,
    pub bytes: u64,
    pub options: JobOptions,
    pub created_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    /// The file's length, once known.
    pub total_s: Option<f64>,
    /// File seconds transcribed so far.
    pub done_s: f64,
    /// Why it failed, in words for the user.
    pub error: Option<String>,
}

impl JobRecord {
    /// Percent done and seconds left, from the rate so far.
    pub fn progress(&self, now_ms: u64) -> (Option<f64>, Option<f64>) {
        let Some(total) = self.total_s.filter(|t| *t > 0.0) else {
            return (None, None);
        };
        let percent = (self.done_s / total * 100.0).clamp(0.0, 100.0);
        let eta = self.started_at_ms.and_then(|start| {
            let elapsed = now_ms.saturating_sub(start) as f64 / 1000.0;
            (self.done_s > 0.0 && elapsed > 0.0 && self.status == JobStatus::Running)
                .then(|| (total - self.done_s).max(0.0) * elapsed / self.done_s)
        });
        (Some(percent), eta)
    }
}

/// Why a job request was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("the job queue is full ({0} jobs queued or running); retry later")]
    QueueFull(usize),
    #[error("the spool is full ({used} of {limit} bytes); retry later")]
    SpoolFull { used: u64, limit: u64 },
    #[error("no job {0}")]
    NotFound(String),
    #[error("job {id} is {status}, not done")]
    NotDone { id: String, status: &'static str },
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
}

impl JobsError {
    /// A full disk is the spool being full.
    pub fn from_io(e: std::io::Error) -> Self {
        if is_disk_full(&e) {
            Self::SpoolFull { used: 0, limit: 0 }
        } else {
            Self::Io(e)
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Every job of this instance.
pub struct Jobs {
    spool: Spool,
    config: FilesConfig,
    plan: Plan,
    queue: Arc<JobQueue>,
    instance: String,
    /// The records, as on disk; read by listings while the runner updates.
    records: DashMap<String, JobRecord>,
    /// Ids waiting to run, oldest first.
    waiting: Mutex<VecDeque<String>>,
    wake: Notify,
    /// The running job's cancel token.
    cancels: DashMap<String, CancellationToken>,
    /// Held across a status change and its write, so that the record on
    /// disk is the last one decided (a cancel and the runner race).
    writes: Mutex<()>,
}

impl Jobs {
    /// Opens the spool, loads every record and queues the unfinished ones
    /// again. Blocking (reads the spool).
    pub fn open(
        config: &FilesConfig,
        plan: Plan,
        queue: Arc<JobQueue>,
        instance_id: &str,
    ) -> std::io::Result<Arc<Self>> {
        let spool = Spool::open(&config.spool_dir)?;
        let instance = if instance_id.is_empty() {
            spool.instance_id()?
        } else {
            instance_id.to_string()
        };
        let jobs = Self {
            spool,
            config: config.clone(),
            plan,
            queue,
            instance,
            records: DashMap::new(),
            waiting: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            cancels: DashMap::new(),
            writes: Mutex::new(()),
        };
        let mut unfinished = Vec::new();
        for id in jobs.spool.job_ids()? {
            match read_json::<JobRecord>(&jobs.spool.job_dir(&id).join("job.json")) {
                Ok(r) => {
                    if !r.status.finished() {
                        unfinished.push((r.created_at_ms, id.clone()));
                    }
                    jobs.records.insert(id, r);
                }
                // Accepted jobs always have a record; a folder without one
                // is an upload that never got its 202.
                Err(_) => {
                    let _ = std::fs::remove_dir_all(jobs.spool.job_dir(&id));
                }
            }
        }
        unfinished.sort();
        if !unfinished.is_empty() {
            tracing::info!(jobs = unfinished.len(), "resuming unfinished file jobs");
        }
        jobs.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(unfinished.into_iter().map(|(_, id)| id));
        jobs.update_gauges();
        Ok(Arc::new(jobs))
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// A path to receive an upload at.
    pub fn temp_path(&self) -> PathBuf {
        self.spool.temp_path()
    }

    /// Whether one more job may be accepted now.
    pub fn admit(&self) -> Result<(), JobsError> {
        let open = self.records.iter().filter(|r| !r.status.finished()).count();
        if open >= self.config.max_queued_jobs {
            return Err(JobsError::QueueFull(open));
        }
        Ok(())
    }

    /// Whether `incoming` more bytes fit the spool. Blocking (walks it).
    pub fn check_space(&self, incoming: u64) -> Result<(), JobsError> {
        let used = self.spool.usage_bytes();
        if used + incoming > self.config.max_spool_bytes {
            return Err(JobsError::SpoolFull {
                used,
                limit: self.config.max_spool_bytes,
            });
        }
        Ok(())
    }

    /// Takes the upload at `temp` as a new job and queues it: the upload
    /// and the record are on disk when this returns. Blocking.
    pub fn create(
        &self,
        temp: &Path,
        file_name: &str,
        bytes: u64,
        total_s: Option<f64>,
        options: JobOptions,
    ) -> Result<JobRecord, JobsError> {
        self.admit()?;
        let id = format!("{}-{:032x}", self.instance, rand::random::<u128>());
        let dir = self.spool.job_dir(&id);
        let ext = Path::new(file_name)
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()))
            .unwrap_or("bin");
        let upload = format!("upload.{ext}");
        let record = JobRecord {
            id: id.clone(),
            status: JobStatus::Queued,
            file_name: file_name.to_string(),
            upload: upload.clone(),
            bytes,
            options,
            created_at_ms: now_ms(),
            started_at_ms: None,
            finished_at_ms: None,
            total_s,
            done_s: 0.0,
            error: None,
        };
        let stored = (|| {
            std::fs::create_dir_all(&dir)?;
            std::fs::rename(temp, dir.join(&upload))?;
            write_json(&dir.join("job.json"), &record)
        })();
        if let Err(e) = stored {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(JobsError::from_io(e));
        }
        self.records.insert(id.clone(), record.clone());
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(id);
        self.wake.notify_one();
        self.update_gauges();
        Ok(record)
    }

    pub fn get(&self, id: &str) -> Option<JobRecord> {
        self.records.get(id).map(|r| r.clone())
    }

    /// Every job, newest first.
    pub fn list(&self) -> Vec<JobRecord> {
        let mut all: Vec<JobRecord> = self.records.iter().map(|r| r.clone()).collect();
        all.sort_by_key(|r| std::cmp::Reverse(r.created_at_ms));
        all
    }

    /// A done job's transcription. Blocking (reads it).
    pub fn result(&self, id: &str) -> Result<Transcription, JobsError> {
        let record = self
            .get(id)
            .ok_or_else(|| JobsError::NotFound(id.to_string()))?;
        if record.status != JobStatus::Done {
            return Err(JobsError::NotDone {
                id: id.to_string(),
                status: record.status.as_str(),
            });
        }
        Ok(read_json(&self.spool.job_dir(id).join("result.json"))?)
    }

    /// Cancels a queued or running job; a finished one is left as it is.
    /// Blocking (writes the record).
    pub fn cancel(&self, id: &str) -> Result<JobRecord, JobsError> {
        let changed = self.transition(id, |r| {
            if r.status.finished() {
                return false;
            }
            r.status = JobStatus::Cancelled;
            r.finished_at_ms = Some(now_ms());
            true
        })?;
        let Some(record) = changed else {
            return self
                .get(id)
                .ok_or_else(|| JobsError::NotFound(id.to_string()));
        };
        // The runner registers its token before it marks the job running,
        // so a job that was running when it was cancelled has one here.
        if let Some(token) = self.cancels.get(id) {
            token.cancel();
        }
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|w| w != id);
        let _ = std::fs::remove_file(self.spool.job_dir(id).join(&record.upload));
        Ok(record)
    }

    /// Changes a record where `change` says so (returns true), and writes
    /// it; None where it did not. Blocking.
    fn transition(
        &self,
        id: &str,
        change: impl FnOnce(&mut JobRecord) -> bool,
    ) -> std::io::Result<Option<JobRecord>> {
        let _write = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let record = {
            let Some(mut r) = self.records.get_mut(id) else {
                return Ok(None);
            };
            if !change(&mut r) {
                return Ok(None);
            }
            r.clone()
        };
        write_json(&self.spool.job_dir(id).join("job.json"), &record)?;
        self.update_gauges();
        Ok(Some(record))
    }

    async fn transition_async(
        self: &Arc<Self>,
        id: &str,
        change: impl FnOnce(&mut JobRecord) -> bool + Send + 'static,
    ) -> std::io::Result<Option<JobRecord>> {
        let jobs = self.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || jobs.transition(&id, change))
            .await
            .map_err(std::io::Error::other)?
    }

    fn update_gauges(&self) {
        for status in JobStatus::ALL {
            let n = self.records.iter().filter(|r| r.status == status).count();
            metrics::jobs(status.as_str(), n);
        }
    }

    async fn next(&self, stop: &CancellationToken) -> Option<String> {
        loop {
            let wake = self.wake.notified();
            if let Some(id) = self
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()
            {
                return Some(id);
            }
            tokio::select! {
                _ = wake => {}
                _ = stop.cancelled() => return None,
            }
        }
    }

    /// Runs jobs one after another until `stop`; a job cut short by `stop`
    /// stays `running` on disk and resumes at the next start.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        while let Some(id) = self.next(&stop).await {
            if let Err(e) = self.run_one(&id, &stop).await {
                tracing::error!(job = %id, error = %e, "cannot update the job's record");
            }
        }
    }

    async fn run_one(self: &Arc<Self>, id: &str, stop: &CancellationToken) -> std::io::Result<()> {
        let cancel = stop.child_token();
        self.cancels.insert(id.to_string(), cancel.clone());
        let started = self
            .transition_async(id, |r| {
                if r.status.finished() {
                    return false;
                }
                r.status = JobStatus::Running;
                r.started_at_ms.get_or_insert_with(now_ms);
                true
            })
            .await;
        let record = match started {
            Ok(Some(record)) => record,
            other => {
                self.cancels.remove(id);
                return other.map(|_| ());
            }
        };
        let dir = self.spool.job_dir(id);
        let opened = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || DiskStore::new(&dir))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r)
        };
        let mut store = match opened {
            Ok(store) => store,
            Err(e) => {
                self.cancels.remove(id);
                return Err(e);
            }
        };
        let options = FileOptions {
            prompt: record.options.prompt.clone(),
            temperature: record.options.temperature,
            words: record.options.words,
        };
        let job_tag: u64 = rand::random();
        let progress = {
            let jobs = self.clone();
            let id = id.to_string();
            move |_: &[super::format::TimedSegment], p: super::transcribe::Progress| {
                if let Some(mut r) = jobs.records.get_mut(&id) {
                    r.done_s = p.done_s;
                    if r.total_s.is_none() {
                        r.total_s = p.total_s;
                    }
                }
            }
        };
        tracing::info!(job = %id, file = %record.file_name, "file job started");
        let outcome = transcribe_file(
            &self.queue,
            job_tag,
            &dir.join(&record.upload),
            &self.plan,
            &options,
            &mut store,
            progress,
            &cancel,
        )
        .await;
        self.cancels.remove(id);
        let total_s = self.get(id).and_then(|r| r.total_s);
        let (status, error) = match outcome {
            Ok(t) => {
                let path = dir.join("result.json");
                tokio::task::spawn_blocking(move || write_json(&path, &t))
                    .await
                    .map_err(std::io::Error::other)??;
                tracing::info!(job = %id, "file job done");
                (JobStatus::Done, None)
            }
            // Stopping: the job resumes at the next start.
            Err(FileJobError::Shutdown) | Err(FileJobError::Cancelled) if stop.is_cancelled() => {
                tracing::info!(job = %id, "file job paused for shutdown");
                return Ok(());
            }
            // cancel() has written the record and removed the upload.
            Err(FileJobError::Cancelled) => return Ok(()),
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "file job failed");
                let error = match &e {
                    FileJobError::Inference(_) => "transcription failed".to_string(),
                    FileJobError::Storage(e) if is_disk_full(e) => {
                        "the server's disk is full".to_string()
                    }
                    other => other.to_string(),
                };
                (JobStatus::Failed, Some(error))
            }
        };
        // A cancel that came after the last window keeps its word.
        self.transition_async(id, move |r| {
            if r.status.finished() {
                return false;
            }
            r.status = status;
            r.error = error;
            if status == JobStatus::Done {
                r.done_s = total_s.unwrap_or(r.done_s);
            }
            r.finished_at_ms = Some(now_ms());
            true
        })
        .await?;
        let upload = dir.join(&record.upload);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(upload)).await;
        Ok(())
    }

    /// Removes the folders of jobs that ended more than `result_ttl_s` ago,
    /// once a minute until `stop`.
    pub async fn janitor(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let ttl_ms = self.config.result_ttl_s.saturating_mul(1000);
            let now = now_ms();
            let expired: Vec<String> = self
                .records
                .iter()
                .filter(|r| {
                    r.finished_at_ms
                        .is_some_and(|t| now.saturating_sub(t) > ttl_ms)
                })
                .map(|r| r.id.clone())
                .collect();
            for id in expired {
                let dir = self.spool.job_dir(&id);
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
                self.records.remove(&id);
                tracing::info!(job = %id, "expired file job removed");
            }
            self.update_gauges();
        }
    }
}
