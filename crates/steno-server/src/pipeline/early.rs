//! Early finals: a pause's bounds in, a job on the early lane; at the utterance's end, that job taken over as its final (requeued, awaited or used) or dropped.

use std::time::{Duration, Instant};

use steno_audio::vad::Utterance;
use tokio::sync::oneshot;
use tokio::sync::oneshot::error::TryRecvError;

use super::{Pipeline, Stop};
use crate::worker::{Job, JobKind, JobResult, WorkerError};

/// A final started at a pause, before the utterance ended.
pub(super) struct Early {
    utterance: u32,
    start_sample: u64,
    end_sample: u64,
    result: oneshot::Receiver<JobResult>,
}

impl Pipeline {
    /// Queues the open utterance up to its pause as an early final, on the
    /// early lane (replacing a waiting partial: it covers more audio).
    pub(super) fn submit_early(&mut self, utterance: u32, start_sample: u64, end_sample: u64) {
        self.early = None;
        // Later frames of the same message may have ended the pause already.
        if !self.ctx.early_finals || self.segmenter.pause_end() != Some(end_sample) {
            return;
        }
        let mut audio = Vec::new();
        match self.segmenter.open_audio(&mut audio) {
            Some((open, start, end))
                if open == utterance && start == start_sample && end >= end_sample => {}
            _ => return,
        }
        audio.truncate((end_sample - start_sample) as usize);
        let (reply, result) = oneshot::channel();
        let job = Job {
            kind: JobKind::Early,
            session: self.id,
            audio,
            reply,
            enqueued_at: Instant::now(),
            options: self.decode.clone(),
            // Never stale by age: the pipeline takes it back or drops it.
            stale_after: Duration::MAX,
        };
        if self.ctx.queue.push_partial(job).is_ok() {
            self.early = Some(Early {
                utterance,
                start_sample,
                end_sample,
                result,
            });
        }
    }

    /// Speech went on after the pause: the early final is stale. Dropping
    /// its reply makes the queue skip it, or discards its result.
    pub(super) fn drop_stale_early(&mut self) {
        if self
            .early
            .as_ref()
            .is_some_and(|e| self.segmenter.pause_end() != Some(e.end_sample))
        {
            self.early = None;
        }
    }

    /// The result of `u`'s final if its early final can stand in for it:
    /// requeued as a final if still waiting, else running or done. `None`
    /// when there is none with these bounds, or it was shed.
    pub(super) async fn take_early(
        &mut self,
        u: &Utterance,
    ) -> Result<Option<oneshot::Receiver<JobResult>>, Stop> {
        let Some(mut early) = self.early.take() else {
            return Ok(None);
        };
        if (early.utterance, early.start_sample, early.end_sample)
            != (u.index, u.start_sample, u.end_sample)
        {
            return Ok(None);
        }
        if let Some(mut job) = self.ctx.queue.take_partial(self.id) {
            debug_assert_eq!(
                job.audio.len(),
                u.audio.len(),
                "the waiting partial is the early final"
            );
            job.kind = JobKind::Final;
            self.push_final(job).await?;
            return Ok(Some(early.result));
        }
        Ok(match early.result.try_recv() {
            Err(TryRecvError::Empty) => Some(early.result),
            // Shed from the early lane before it ran, or stopped (only
            // partials are, but never hand on an abort): transcribe again.
            Ok(Err(WorkerError::Aborted)) | Err(TryRecvError::Closed) => None,
            // Done, or failed: the same audio would fail the same way (a
            // panic would take a second worker state down), so it stands.
            Ok(result) => {
                let (reply, done) = oneshot::channel();
                let _ = reply.send(result);
                Some(done)
            }
        })
    }
}
