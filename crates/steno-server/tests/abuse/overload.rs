//! Admission by load (`admission.max_final_wait_s`): one worker held by a slow final, a second final waiting behind it past the budget; new sessions are refused with `over_capacity` and `/ready` says `overloaded` while the open sessions keep their finals, and admission comes back once the backlog is gone.

use std::time::Duration;

use steno_client::ConnectError;
use steno_protocol::ErrorCode;

use crate::common::wer::wer;
use crate::common::*;
use crate::faults::{Faults, SLOW_MARK, marked_pcm, start_faulty_server};
use crate::{OTHER_SENTENCE, SENTENCE, SERIAL};

const OVERLOAD_REFUSALS: &str = "steno_sessions_refused_overload_total";

async fn ready_reason(server: &TestServer) -> (u16, serde_json::Value) {
    let (status, body) = http_get(server.addr, "/ready").await.unwrap();
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_finals_past_the_budget_refuses_new_sessions() {
    let _serial = SERIAL.lock().await;
    let mut config = test_config();
    config.workers.count = 1;
    config.admission.max_final_wait_s = 1.0;
    let faults = Faults::new(Duration::from_secs(6));
    let server = start_faulty_server(config, faults.clone()).await;
    let refusals_before = metric(server.addr, OVERLOAD_REFUSALS).await;

    // A's final holds the only worker for 6 s; B's waits behind it.
    let mut a = server.connect("encoding=pcm_s16le&partials=false").await;
    send_all(&mut a, &marked_pcm(SENTENCE, SLOW_MARK), Duration::ZERO).await;
    assert!(wait_until(Duration::from_secs(30), || faults.slow_started() == 1).await);
    let mut b = server.connect("encoding=pcm_s16le&partials=false").await;
    send_all(
        &mut b,
        &pcm_chunks(&spoken(OTHER_SENTENCE), 20, 16_000),
        Duration::ZERO,
    )
    .await;

    // Past the budget: /ready says so and a new session is refused by load,
    // with two of 24 slots in use.
    let overloaded = wait_until_async(Duration::from_secs(10), || async {
        ready_reason(&server).await.1["reason"] == "overloaded"
    })
    .await;
    assert!(overloaded, "/ready: {:?}", ready_reason(&server).await);
    assert_eq!(ready_reason(&server).await.0, 503);
    match server.connector("partials=false").connect().await {
        Err(ConnectError::Refused {
            code,
            message,
            retry_after_s,
            close,
        }) => {
            println!("refused by load: {message}");
            assert_eq!(code, ErrorCode::OverCapacity);
            assert!(message.contains("finals are waiting"), "{message}");
            assert!(retry_after_s.is_some());
            assert_eq!(close.map(|c| c.code), Some(1013));
        }
        Err(e) => panic!("refused otherwise: {e}"),
        Ok(_) => panic!("admitted into an overloaded server"),
    }
    assert_eq!(
        metric(server.addr, OVERLOAD_REFUSALS).await,
        refusals_before + 1.0
    );

    // The open sessions lose nothing.
    for (ws, sentence) in [(&mut a, SENTENCE), (&mut b, OTHER_SENTENCE)] {
        ws.end().await.unwrap();
        let t = collect(ws, Duration::from_secs(60)).await;
        assert!(wer(sentence, &t.final_text()) <= 0.25, "{:?}", t.messages);
    }
    // The backlog gone, admission is back.
    let (status, body) = ready_reason(&server).await;
    assert_eq!(status, 200, "{body}");
    let mut c = server.connect("encoding=pcm_s16le&partials=false").await;
    send_all(
        &mut c,
        &pcm_chunks(&spoken(SENTENCE), 20, 16_000),
        Duration::ZERO,
    )
    .await;
    c.end().await.unwrap();
    let t = collect(&mut c, Duration::from_secs(60)).await;
    assert!(wer(SENTENCE, &t.final_text()) <= 0.25, "{:?}", t.messages);
    server.stop().await;
}

/// `sentence` with 300 ms of silence before and 1.2 s after.
fn spoken(sentence: &str) -> Vec<i16> {
    let mut audio = speech::silence(300);
    audio.extend(speech::espeak(sentence));
    audio.extend(speech::silence(1200));
    audio
}

/// A session waiting for room in the worker queue still answers its
/// client's WebSocket pings (a client with a ping timeout would otherwise
/// drop it), and loses none of its finals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_are_answered_while_a_session_waits_for_the_workers() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let _serial = SERIAL.lock().await;
    let mut config = test_config();
    config.workers.count = 1;
    config.workers.final_queue_capacity = 1;
    config.admission.max_final_wait_s = 0.0;
    let faults = Faults::new(Duration::from_secs(5));
    let server = start_faulty_server(config, faults.clone()).await;
    let mut ws = server.connect("encoding=pcm_s16le&partials=false").await;
    // Three slow finals at once: one runs, one waits in the queue, and the
    // session waits to queue the third.
    let sentences = [SENTENCE, OTHER_SENTENCE, SENTENCE];
    for sentence in sentences {
        send_all(&mut ws, &marked_pcm(sentence, SLOW_MARK), Duration::ZERO).await;
    }
    assert!(wait_until(Duration::from_secs(30), || faults.slow_started() == 1).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        faults.slow_finished(),
        0,
        "the first final is still running"
    );
    let pinged = std::time::Instant::now();
    ws.socket()
        .send(Message::Ping(b"still there?".to_vec().into()))
        .await
        .unwrap();
    let pong = loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.socket().next()).await {
            Ok(Some(Ok(Message::Pong(data)))) => break data,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no pong: {other:?}"),
        }
    };
    let answered = pinged.elapsed();
    println!(
        "pong {answered:?} after the ping, while the first of 3 slow finals ran ({} finished)",
        faults.slow_finished()
    );
    assert_eq!(&pong[..], b"still there?");
    assert_eq!(
        faults.slow_finished(),
        0,
        "answered only once the worker was free"
    );
    ws.end().await.unwrap();
    let t = collect(&mut ws, Duration::from_secs(90)).await;
    assert_eq!(t.finals().len(), 3, "{:?}", t.messages);
    server.stop().await;
}
