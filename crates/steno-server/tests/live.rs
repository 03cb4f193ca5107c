//! Live-session behaviour: partials, admission control, lifecycle limits,
//! scheduling under overload and metrics, against the real server and model.

mod common;

use std::time::Duration;
use steno_server::admission::SessionLimit;

use common::speech::{espeak, silence};
use common::wer::wer;
use common::*;
use steno_protocol::ServerMessage;
use tokio::io::AsyncWriteExt;

const LONG: &str = "Steno listens to people while they speak, and shows the words on the screen as they come, \
                    so that nobody has to wait until the very end of a long sentence to read it.";

fn long_speech() -> Vec<i16> {
    let mut audio = silence(300);
    audio.extend(espeak(LONG));
    audio.extend(silence(1200));
    audio
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partials_grow_toward_the_final_and_can_be_turned_off() {
    let mut config = test_config();
    config.session.partial_interval_ms = 500;
    let server = TestServer::start(config).await;
    let packets = opus_packets(&long_speech(), 20);

    let mut ws = server.connect("partials=true").await;
    send_all(&mut ws, &packets, Duration::from_millis(20)).await;
    send_json(&mut ws, r#"{"type":"end"}"#).await;
    let t = collect(&mut ws, Duration::from_secs(60)).await;
    let finals = t.finals();
    assert_eq!(finals.len(), 1, "{:?}", t.messages);
    let final_text = &finals[0].1;
    assert!(wer(LONG, final_text) <= 0.25, "{final_text}");
    let partials = t.partials();
    println!(
        "{} partials: {partials:#?}\nfinal: {final_text}",
        partials.len()
    );
    assert!(partials.len() >= 3, "partials while speaking: {partials:?}");
    // Each partial comes before the final, and the text grows toward it.
    let final_pos = t
        .messages
        .iter()
        .position(|m| matches!(m, ServerMessage::Final { .. }))
        .unwrap();
    let last_partial_pos = t
        .messages
        .iter()
        .rposition(|m| matches!(m, ServerMessage::Partial { .. }))
        .unwrap();
    assert!(last_partial_pos < final_pos);
    let words = |s: &str| s.split_whitespace().count();
    assert!(
        words(&partials.last().unwrap().1) > words(&partials[0].1),
        "{partials:?}"
    );
    let last = &partials.last().unwrap().1;
    assert!(
        wer(final_text, last) < 0.5,
        "the last partial is close to the final: {last} / {final_text}"
    );

    let mut ws = server.connect("partials=false").await;
    send_all(&mut ws, &packets, Duration::from_millis(20)).await;
    send_json(&mut ws, r#"{"type":"end"}"#).await;
    let t = collect(&mut ws, Duration::from_secs(60)).await;
    assert_eq!(t.finals().len(), 1);
    assert!(t.partials().is_empty(), "{:?}", t.partials());
    server.stop().await;
}

async fn ready_status(server: &TestServer) -> (u16, serde_json::Value) {
    let (status, body) = http_get(server.addr, "/ready").await.unwrap();
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_max_sessions_are_admitted_even_all_at_once() {
    const MAX: usize = 6;
    let mut config = test_config();
    config.admission.max_sessions = SessionLimit::Fixed(MAX);
    config.admission.retry_after_s = 7;
    // Resume off: a vanished client's session ends at once (with resume,
    // tests/resume.rs, it waits session.resume_grace_s for its client).
    config.session.resume_grace_s = 0.0;
    let server = TestServer::start(config).await;
    assert_eq!(ready_status(&server).await.0, 200);

    for round in 0..2 {
        // MAX + 20 clients at the same instant.
        let connects = (0..MAX + 20).map(|_| {
            let url = server.url("");
            tokio::spawn(async move { Connector::new(url).connect().await })
        });
        let mut admitted = Vec::new();
        let mut refused = 0;
        for c in connects.collect::<Vec<_>>() {
            match c.await.unwrap() {
                Ok(ws) => admitted.push(ws),
                Err(ConnectError::Refused {
                    code,
                    message,
                    retry_after_s,
                    close,
                }) => {
                    assert_eq!(code.as_str(), "over_capacity");
                    assert_eq!(
                        message,
                        format!("over capacity: {MAX} of {MAX} sessions in use, retry later")
                    );
                    assert_eq!(retry_after_s, Some(7));
                    let close = close.expect("a close frame after the refusal");
                    assert_eq!(close.code, 1013);
                    assert_eq!(close.reason, "over capacity");
                    refused += 1;
                }
                Err(other) => panic!("unexpected refusal {other}"),
            }
        }
        assert_eq!(admitted.len(), MAX, "round {round}");
        assert_eq!(refused, 20, "round {round}");
        let (status, body) = ready_status(&server).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["sessions"], MAX);
        assert_eq!(body["reason"], "full");

        // Everyone vanishes without a close frame.
        for ws in admitted {
            let mut tcp = ws.into_socket().into_inner();
            if let tokio_tungstenite::MaybeTlsStream::Plain(s) = &mut tcp {
                let _ = s.shutdown().await;
            }
            drop(tcp);
        }
        let mut freed = false;
        for _ in 0..100 {
            let (status, body) = ready_status(&server).await;
            if status == 200 && body["sessions"] == 0 {
                freed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(freed, "slots come back after abrupt disconnects");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_limits_fire_with_their_codes() {
    let mut config = test_config();
    config.session.idle_timeout_s = 1.0;
    config.session.max_duration_s = 4.0;
    config.session.handshake_timeout_s = 1.0;
    let server = TestServer::start(config).await;

    // Idle: nothing after ready.
    let mut ws = server.connect("").await;
    let t = collect(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(t.errors(), vec!["idle_timeout"]);
    assert_eq!(t.close_code(), Some(1008));

    // Keepalives hold idle off; max duration then ends the session, after the
    // final of the utterance in progress.
    let mut ws = server.connect("partials=false").await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        send_json(&mut ws, r#"{"type":"keepalive"}"#).await;
    }
    let mut speech = espeak("This sentence is still going when the session reaches its limit");
    speech.extend(espeak("and it keeps going for a while longer"));
    let _ = tokio::time::timeout(
        Duration::from_secs(3),
        send_all(
            &mut ws,
            &opus_packets(&speech, 20),
            Duration::from_millis(20),
        ),
    )
    .await;
    let t = collect(&mut ws, Duration::from_secs(30)).await;
    assert_eq!(t.errors(), vec!["max_duration"], "{:?}", t.messages);
    assert_eq!(t.close_code(), Some(1008));
    assert_eq!(
        t.finals().len(),
        1,
        "the open utterance's final comes before the close: {:?}",
        t.messages
    );
    assert!(!t.finals()[0].1.is_empty());

    // Handshake: a connection that never completes its request is cut.
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /v1/listen HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut slow, &mut buf),
    )
    .await
    .expect("slow handshake is cut")
    .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Too much queued audio: a client far faster than real time with a tiny budget.
    server.stop().await;
    let mut config = test_config();
    config.session.max_queued_audio_s = 2.0;
    config.workers.count = 1;
    let server = TestServer::start(config).await;
    let mut ws = server.connect("partials=false").await;
    let mut audio = Vec::new();
    for _ in 0..6 {
        audio.extend(espeak("one more sentence to transcribe please"));
        audio.extend(silence(700));
    }
    let _ = tokio::time::timeout(
        Duration::from_secs(20),
        send_all(&mut ws, &opus_packets(&audio, 20), Duration::ZERO),
    )
    .await;
    let t = collect(&mut ws, Duration::from_secs(60)).await;
    assert_eq!(t.errors(), vec!["audio_overflow"], "{:?}", t.messages);
    assert_eq!(t.close_code(), Some(1008));
    server.stop().await;
}
