//! The pipeline driven by hand: a loudness-scripted segmenter (a tone is
//! speech, zeros a pause), the test as the worker (it pops jobs off the
//! lanes and answers them), the outbox read as a client would. No model,
//! paused time: each test runs in milliseconds.

use std::sync::Arc;
use std::time::Duration;

use steno_audio::vad::{LoudnessClassifier, Segmenter, SegmenterConfig};
use steno_protocol::{Close, ErrorCode};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::worker::{Job, JobQueue, JobResult, Lane, LaneCapacities, Transcript, WorkerError};

/// `ms` of a 200 Hz tone: speech to the loudness classifier.
pub(crate) fn tone(ms: usize) -> Vec<i16> {
    (0..ms * 16)
        .map(|n| ((n as f32 * 200.0 * std::f32::consts::TAU / 16_000.0).sin() * 8000.0) as i16)
        .collect()
}

pub(crate) fn quiet(ms: usize) -> Vec<i16> {
    vec![0; ms * 16]
}

pub(crate) fn scripted_segmenter() -> Segmenter {
    Segmenter::with_classifier(
        &SegmenterConfig::default(),
        Box::new(LoudnessClassifier { threshold: 1000 }),
    )
    .unwrap()
}

pub(crate) fn queue(finals: usize) -> Arc<JobQueue> {
    Arc::new(JobQueue::new(LaneCapacities {
        finals,
        speculative: 4,
        batch: 2,
    }))
}

pub(crate) fn context(queue: &Arc<JobQueue>) -> PipelineContext {
    PipelineContext {
        queue: queue.clone(),
        hard_stop: CancellationToken::new(),
        early_finals: true,
        max_queued_audio_s: 60.0,
        partial_interval_ms: 500,
        outbound_queue: 16,
    }
}

/// The next waiting job, as a free worker would take it; None if nothing
/// may start.
pub(crate) fn take_job(q: &JobQueue) -> Option<Job> {
    (q.waiting() > 0).then(|| q.pop_blocking()).flatten()
}

/// Answers `job` with `text`.
pub(crate) fn answer(job: Job, text: &str) {
    let result: JobResult = Ok(Transcript {
        text: text.to_string(),
        segments: Vec::new(),
        inference: Duration::from_millis(5),
        degraded: false,
    });
    let _ = job.reply.send(result);
}

/// Events the outbox has ready within 50 ms (of paused time).
pub(crate) async fn drain(outbox: &mut Outbox) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(50), outbox.next()).await {
        out.push(e);
    }
    out
}

fn finals(events: &[Event]) -> Vec<(u32, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Final {
                utterance, text, ..
            } => Some((*utterance, text.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn each_utterance_gets_one_final_in_order() {
    let q = queue(8);
    let mut ctx = context(&q);
    ctx.early_finals = false;
    let (mut p, mut outbox) = Pipeline::new(1, scripted_segmenter(), ctx);
    for _ in 0..2 {
        p.push(&tone(1000)).await.unwrap();
        p.push(&quiet(1000)).await.unwrap();
    }
    // Answered out of order: the outbox still hands them on in order.
    let first = take_job(&q).unwrap();
    let second = take_job(&q).unwrap();
    assert_eq!((first.kind, second.kind), (JobKind::Final, JobKind::Final));
    answer(second, "two");
    answer(first, "one");
    let events = drain(&mut outbox).await;
    assert_eq!(finals(&events), [(0, "one".into()), (1, "two".into())]);
    assert!(matches!(
        events[0],
        Event::SpeechStarted { utterance: 0, .. }
    ));
    assert_eq!(p.utterances(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_early_final_is_taken_over_as_the_final() {
    let q = queue(8);
    let (mut p, mut outbox) = Pipeline::new(1, scripted_segmenter(), context(&q));
    p.push(&tone(1000)).await.unwrap();
    // 260 ms into the pause: past the 200 ms tail, before the hangover ends.
    p.push(&quiet(260)).await.unwrap();
    assert_eq!(q.depth(Lane::Early), 1, "the early final waits");
    p.push(&quiet(400)).await.unwrap();
    assert_eq!(
        (q.depth(Lane::Early), q.depth(Lane::Final)),
        (0, 1),
        "requeued as the final"
    );
    let job = take_job(&q).unwrap();
    assert_eq!(job.kind, JobKind::Final);
    answer(job, "from the pause");
    let events = drain(&mut outbox).await;
    assert_eq!(finals(&events), [(0, "from the pause".into())]);
    assert!(take_job(&q).is_none(), "transcribed once");
}

#[tokio::test(start_paused = true)]
async fn a_running_early_final_is_awaited_as_the_final() {
    let q = queue(8);
    let (mut p, mut outbox) = Pipeline::new(1, scripted_segmenter(), context(&q));
    p.push(&tone(1000)).await.unwrap();
    p.push(&quiet(260)).await.unwrap();
    let running = take_job(&q).unwrap();
    assert_eq!(running.kind, JobKind::Early);
    p.push(&quiet(400)).await.unwrap();
    assert_eq!(q.waiting(), 0, "no second inference for the same audio");
    answer(running, "early words");
    let events = drain(&mut outbox).await;
    assert_eq!(finals(&events), [(0, "early words".into())]);
}

#[tokio::test(start_paused = true)]
async fn an_early_final_is_dropped_when_speech_goes_on() {
    let q = queue(8);
    let (mut p, mut outbox) = Pipeline::new(1, scripted_segmenter(), context(&q));
    p.push(&tone(1000)).await.unwrap();
    p.push(&quiet(260)).await.unwrap();
    let running = take_job(&q).unwrap();
    assert_eq!(running.kind, JobKind::Early);
    // The speaker goes on: the early job's result is not wanted any more.
    p.push(&tone(800)).await.unwrap();
    assert!(
        running.reply.is_closed(),
        "the stale early final is dropped"
    );
    p.push(&quiet(700)).await.unwrap();
    let jobs: Vec<Job> = std::iter::from_fn(|| take_job(&q)).collect();
    // Maybe a new early final at the second pause (taken over), then the final.
    let last = jobs.into_iter().last().unwrap();
    assert_eq!(last.kind, JobKind::Final);
    // No pre-roll: the tone starts the stream.
    let expected = (1000 + 260 + 800 + 200) * 16;
    assert!(
        last.audio.len() >= expected - 320 && last.audio.len() <= expected + 320,
        "the final covers both stretches: {} samples",
        last.audio.len()
    );
    answer(last, "whole");
    assert_eq!(finals(&drain(&mut outbox).await), [(0, "whole".into())]);
}

#[tokio::test(start_paused = true)]
async fn one_partial_per_session_at_a_time() {
    let q = queue(8);
    let (mut p, mut outbox) = Pipeline::new(1, scripted_segmenter(), context(&q));
    p.push(&tone(1200)).await.unwrap();
    p.partial().await.unwrap();
    p.push(&tone(600)).await.unwrap();
    p.partial().await.unwrap();
    assert_eq!(
        q.depth(Lane::Partial),
        1,
        "a running partial is never replaced"
    );
    let job = take_job(&q).unwrap();
    assert_eq!(job.kind, JobKind::Partial);
    answer(job, "so far");
    let events = drain(&mut outbox).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Partial { text, .. } if text == "so far")),
        "{events:?}"
    );
    // Its result is in: the next one may go.
    p.push(&tone(600)).await.unwrap();
    p.partial().await.unwrap();
    assert_eq!(q.depth(Lane::Partial), 1);
}

#[tokio::test(start_paused = true)]
async fn a_full_final_lane_makes_the_session_wait_not_drop() {
    let q = queue(1);
    let mut ctx = context(&q);
    ctx.early_finals = false;
    let (mut p, mut outbox) = Pipeline::new(1, scripted_segmenter(), ctx);
    p.push(&tone(1000)).await.unwrap();
    p.push(&quiet(1000)).await.unwrap();
    p.push(&tone(1000)).await.unwrap();
    let second = async {
        p.push(&quiet(1000)).await.unwrap();
        p
    };
    tokio::pin!(second);
    tokio::select! {
        _ = &mut second => panic!("the second final found room on a full lane"),
        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
    answer(take_job(&q).unwrap(), "one");
    let mut p = second.await;
    answer(take_job(&q).unwrap(), "two");
    p.flush().await.unwrap();
    assert_eq!(
        finals(&drain(&mut outbox).await),
        [(0, "one".into()), (1, "two".into())]
    );
}

#[tokio::test(start_paused = true)]
async fn too_much_queued_audio_stops_the_pipeline() {
    let q = queue(8);
    let mut ctx = context(&q);
    ctx.max_queued_audio_s = 1.5;
    ctx.early_finals = false;
    let (mut p, _outbox) = Pipeline::new(1, scripted_segmenter(), ctx);
    p.push(&tone(1000)).await.unwrap();
    p.push(&quiet(1000)).await.unwrap();
    p.push(&tone(1000)).await.unwrap();
    let stop = p.push(&quiet(1000)).await.unwrap_err();
    assert!(
        matches!(stop, Stop::Error(ErrorCode::AudioOverflow, _)),
        "{stop:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_final_closes_with_internal_and_no_detail() {
    let q = queue(8);
    let mut ctx = context(&q);
    ctx.early_finals = false;
    let (mut p, mut outbox) = Pipeline::new(1, scripted_segmenter(), ctx);
    p.push(&tone(1000)).await.unwrap();
    p.push(&quiet(1000)).await.unwrap();
    let job = take_job(&q).unwrap();
    let _ = job.reply.send(Err(WorkerError::Panicked));
    let events = drain(&mut outbox).await;
    let n = events.len();
    assert_eq!(
        events[n - 1],
        Event::Close(Close::Error(ErrorCode::Internal))
    );
    let Event::Error { code, message } = &events[n - 2] else {
        panic!("{events:?}")
    };
    assert_eq!(*code, ErrorCode::Internal);
    assert!(
        !message.contains("panic"),
        "internal details stay in the log: {message}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_drain_deadline_stops_waiting_for_finals() {
    let q = queue(8);
    let ctx = context(&q);
    let hard_stop = ctx.hard_stop.clone();
    let (mut p, mut outbox) = Pipeline::new(1, scripted_segmenter(), ctx);
    p.push(&tone(1000)).await.unwrap();
    p.push(&quiet(1000)).await.unwrap();
    hard_stop.cancel();
    let events = drain(&mut outbox).await;
    assert_eq!(
        events.last(),
        Some(&Event::Close(Close::Error(ErrorCode::ShuttingDown)))
    );
    assert!(finals(&events).is_empty());
}
