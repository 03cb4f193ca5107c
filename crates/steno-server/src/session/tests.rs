//! A session driven through channels: PCM messages and control in, the
//! outbox read as a door's writer would; the test answers the jobs. Paused
//! time makes the idle and maximum-duration timers and the drain instant.

use std::time::Duration;

use bytes::Bytes;
use steno_audio::codec::AudioDecoder;
use steno_protocol::{ClientMessage, Close, Encoding, ErrorCode};
use tokio::sync::mpsc;
use tokio_stream_shim::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::pipeline::tests::{answer, drain, queue, quiet, scripted_segmenter, take_job, tone};

/// A tiny stand-in for tokio-stream's wrapper: a receiver as a `Stream`.
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct ReceiverStream<T>(pub tokio::sync::mpsc::Receiver<T>);

    impl<T> futures_util::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

fn context(config: SessionConfig) -> SessionContext {
    SessionContext {
        session: config,
        vad: Default::default(),
        queue: queue(8),
        registry: Default::default(),
        draining: CancellationToken::new(),
        hard_stop: CancellationToken::new(),
    }
}

fn pcm(samples: &[i16]) -> Input {
    Input::Audio(Bytes::from(
        samples
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect::<Vec<u8>>(),
    ))
}

/// Starts a session on `ctx`; returns its input, its outbox and the running task.
fn start(
    ctx: &SessionContext,
) -> (
    mpsc::Sender<Input>,
    crate::pipeline::Outbox,
    tokio::task::JoinHandle<SessionEnd>,
) {
    let decoder = AudioDecoder::new(Encoding::PcmS16le, 16_000).unwrap();
    let (session, outbox) =
        Session::with_segmenter("v1", decoder, scripted_segmenter(), false, ctx);
    let (tx, rx) = mpsc::channel(8);
    let task = tokio::spawn(async move {
        let mut session = session;
        session
            .run(ReceiverStream(rx), CancellationToken::new())
            .await
    });
    (tx, outbox, task)
}

/// Answers every job that is waiting with "words", while events flow.
async fn serve_jobs(ctx: &SessionContext, outbox: &mut crate::pipeline::Outbox) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        while let Some(job) = take_job(&ctx.queue) {
            answer(job, "words");
        }
        let batch = drain(outbox).await;
        if batch.is_empty() && ctx.queue.waiting() == 0 {
            return events;
        }
        let closed = batch.iter().any(|e| matches!(e, Event::Close(_)));
        events.extend(batch);
        if closed {
            return events;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn end_flushes_sends_the_summary_and_closes_normally() {
    let ctx = context(SessionConfig::default());
    let (tx, mut outbox, task) = start(&ctx);
    assert_eq!(ctx.registry.len(), 1, "registered while live");
    tx.send(pcm(&quiet(300))).await.unwrap();
    tx.send(pcm(&tone(1000))).await.unwrap();
    // No pause: only `end` closes this utterance.
    tx.send(Input::Control(ClientMessage::End)).await.unwrap();
    let events = serve_jobs(&ctx, &mut outbox).await;
    assert_eq!(task.await.unwrap(), SessionEnd::Completed);
    let n = events.len();
    assert!(
        matches!(
            events[n - 2],
            Event::End {
                utterances: 1,
                audio_ms: 1300
            }
        ),
        "{events:?}"
    );
    assert_eq!(events[n - 1], Event::Close(Close::EndOfStream));
    assert!(ctx.registry.is_empty(), "removed when the session ends");
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_are_closed_with_their_code() {
    let config = SessionConfig {
        idle_timeout_s: 30.0,
        ..Default::default()
    };
    let ctx = context(config);
    let (_tx, mut outbox, task) = start(&ctx);
    let started = tokio::time::Instant::now();
    let end = task.await.unwrap();
    assert_eq!(end, SessionEnd::Error(ErrorCode::IdleTimeout));
    assert_eq!(started.elapsed().as_secs(), 30);
    let events = drain(&mut outbox).await;
    assert!(
        matches!(&events[0], Event::Error { code: ErrorCode::IdleTimeout, message } if message.contains("30 s"))
    );
    assert_eq!(
        events[1],
        Event::Close(Close::Error(ErrorCode::IdleTimeout))
    );
}

#[tokio::test(start_paused = true)]
async fn keepalives_hold_idle_off_until_the_maximum_duration() {
    let config = SessionConfig {
        idle_timeout_s: 2.0,
        max_duration_s: 10.0,
        ..Default::default()
    };
    let ctx = context(config);
    let (tx, mut outbox, task) = start(&ctx);
    let keepalives = tokio::spawn(async move {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if tx
                .send(Input::Control(ClientMessage::Keepalive))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let end = task.await.unwrap();
    assert_eq!(end, SessionEnd::Error(ErrorCode::MaxDuration));
    let events = drain(&mut outbox).await;
    assert_eq!(
        events.last(),
        Some(&Event::Close(Close::Error(ErrorCode::MaxDuration)))
    );
    keepalives.abort();
}

#[tokio::test(start_paused = true)]
async fn draining_finishes_the_utterance_in_progress_then_closes() {
    let ctx = context(SessionConfig::default());
    let (tx, mut outbox, task) = start(&ctx);
    tx.send(pcm(&tone(800))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    ctx.draining.cancel();
    // Still speaking: the session waits for the pause.
    tx.send(pcm(&tone(400))).await.unwrap();
    tx.send(pcm(&quiet(800))).await.unwrap();
    let events = serve_jobs(&ctx, &mut outbox).await;
    assert_eq!(task.await.unwrap(), SessionEnd::Shutdown);
    let final_at = events
        .iter()
        .position(|e| matches!(e, Event::Final { .. }))
        .unwrap_or_else(|| panic!("the final of the utterance in progress: {events:?}"));
    assert!(final_at < events.len() - 1);
    assert_eq!(
        events.last(),
        Some(&Event::Close(Close::Error(ErrorCode::ShuttingDown)))
    );
}

#[tokio::test(start_paused = true)]
async fn undecodable_audio_is_reported_then_closes_the_session() {
    let config = SessionConfig {
        max_bad_packets: 3,
        ..Default::default()
    };
    let ctx = context(config);
    let (tx, mut outbox, task) = start(&ctx);
    for _ in 0..3 {
        tx.send(Input::Audio(Bytes::from_static(b"odd")))
            .await
            .unwrap();
    }
    assert_eq!(task.await.unwrap(), SessionEnd::Error(ErrorCode::BadAudio));
    let events = drain(&mut outbox).await;
    let codes: Vec<ErrorCode> = events
        .iter()
        .filter_map(|e| match e {
            Event::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(codes, [ErrorCode::BadAudio; 3]);
    assert_eq!(
        events.last(),
        Some(&Event::Close(Close::Error(ErrorCode::BadAudio)))
    );
}

#[tokio::test(start_paused = true)]
async fn a_vanished_client_ends_the_session_and_frees_everything() {
    let ctx = context(SessionConfig::default());
    let (tx, _outbox, task) = start(&ctx);
    tx.send(pcm(&tone(500))).await.unwrap();
    drop(tx);
    assert_eq!(task.await.unwrap(), SessionEnd::ClientGone);
    assert!(ctx.registry.is_empty());
}
