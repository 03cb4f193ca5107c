//! The bugs this suite found (docs/reliability.md, "Bugs found"). The fixed
//! ones stay as regression tests; an open one is `#[ignore]`d so the suite
//! stays green, and `cargo test --test abuse -- --ignored` runs it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use steno_client::Event;
use steno_protocol::{ClientMessage, ServerMessage};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use crate::common::speech::silence;
use crate::common::*;
use crate::faults::{Faults, SLOW_MARK, marked_pcm, start_faulty_server};
use crate::probes::*;
use crate::{OTHER_SENTENCE, SENTENCE, SERIAL};

/// B1 (fixed). RFC 6455 5.5.1: an endpoint that receives a Close frame and
/// has not sent one MUST send a Close frame in response. The session used to
/// end on the client's close without flushing the reply tungstenite had
/// queued, so the client saw the TCP connection end instead (Autobahn:
/// UNCLEAN on every client-closed case).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_frame_is_answered() {
    let _serial = SERIAL.lock().await;
    let server = TestServer::start(test_config()).await;
    let mut ws = server.connect("").await;
    let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 1000.into(),
        reason: "bye".into(),
    };
    ws.socket().send(Message::Close(Some(frame))).await.unwrap();
    let t = collect(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(t.close_code(), Some(1000), "no close frame came back");
    assert!(wait_sessions(server.addr, 0, Duration::from_secs(5)).await);
    server.stop().await;
}

/// B3 (fixed). A `bad_request` error used to quote the offending JSON string
/// Debug-escaped (`\u{7f}`, six bytes, for each byte of DEL), so a 64 KiB
/// text message earned a ~450 KB error, and with an outbound queue bounded in
/// messages (64), not bytes, a client that never read made the server hold
/// ~29 MB for it (4 such clients: +110 MiB). Errors now quote at most 120
/// characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_messages_do_not_amplify_the_clients_input() {
    let _serial = SERIAL.lock().await;
    let mut config = test_config();
    // Resume off: a vanished client's session ends at once (with resume,
    // tests/resume.rs, it waits session.resume_grace_s for its client).
    config.session.resume_grace_s = 0.0;
    let server = TestServer::start(config).await;
    let text = format!("\"{}\"", "\u{7f}".repeat(64_000));

    // A reading client sees how big the answer is.
    let mut ws = server.connect("").await;
    send_json(&mut ws, &text).await;
    let answer = tokio::time::timeout(Duration::from_secs(10), ws.socket().next())
        .await
        .expect("an answer")
        .expect("a message")
        .expect("no error");
    let answer = answer.into_text().expect("a text message");
    let m: ServerMessage = serde_json::from_str(answer.as_str()).unwrap();
    assert!(
        matches!(&m, ServerMessage::Error { code, .. } if code.as_str() == "bad_request"),
        "{m:?}"
    );
    println!(
        "a {} byte bad control message got a {} byte error",
        text.len(),
        answer.len()
    );
    assert!(answer.len() <= 1024, "a {} byte error", answer.len());
    drop(ws);

    // Clients that send 200 of them and never read cost the server little.
    let rss_before = rss_kib();
    let sampler = RssSampler::start();
    let frame = client_frame(0x1, text.as_bytes());
    const CLIENTS: usize = 4;
    let mut flooders = Vec::new();
    for _ in 0..CLIENTS {
        let addr = server.addr;
        let frame = frame.clone();
        flooders.push(tokio::spawn(async move {
            let mut s = raw_websocket(addr, "").await;
            for _ in 0..200 {
                let write = tokio::time::timeout(Duration::from_secs(1), s.write_all(&frame));
                if !matches!(write.await, Ok(Ok(()))) {
                    break;
                }
            }
            s
        }));
    }
    let mut sockets = Vec::new();
    for f in flooders {
        sockets.push(f.await.unwrap());
    }
    // The server has read what it will; hold the unread sockets a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak = sampler.stop().await;
    drop(sockets);
    let grew_mib = peak.saturating_sub(rss_before) / 1024;
    println!(
        "{CLIENTS} non-reading clients sending 64 KiB bad JSON strings: RSS {} MiB before, \
         peak +{grew_mib} MiB",
        rss_before / 1024
    );
    assert!(
        grew_mib < 16,
        "{CLIENTS} non-reading clients made the server hold {grew_mib} MiB"
    );
    assert!(wait_sessions(server.addr, 0, Duration::from_secs(10)).await);
    server.stop().await;
}

/// B2 (fixed). docs/protocol.md: "Anything else (bad JSON, unknown type,
/// extra fields) gets a bad_request error". The internally tagged
/// `ClientMessage` used to take extra fields (`deny_unknown_fields` does not
/// reach unit variants) and a JSON array whose first element names the
/// message. (Found by the `control` fuzz target.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_messages_with_extra_fields_are_refused() {
    let _serial = SERIAL.lock().await;
    let server = TestServer::start(test_config()).await;
    let mut ws = server.connect("").await;
    send_json(&mut ws, r#"{"type":"keepalive","extra":1}"#).await;
    send_json(&mut ws, r#"["keepalive"]"#).await;
    send_json(&mut ws, r#"{"type":"end"}"#).await;
    let t = collect(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(
        t.errors(),
        vec!["bad_request", "bad_request"],
        "{:?}",
        t.messages
    );
    server.stop().await;
}

/// B4 (open). Back-pressure must not look like silence. While the reader waits for
/// room in the final queue it does not read the socket, so the idle timer
/// runs on; when the wait ends, the expired `idle_timeout_s` wins the
/// reader's biased `select!` over the audio already waiting in the socket,
/// and a client that never stopped streaming is closed for being idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_pressure_does_not_end_a_streaming_session_as_idle() {
    let _serial = SERIAL.lock().await;
    let mut config = test_config();
    config.workers.count = 1;
    config.workers.final_queue_capacity = 1;
    config.session.idle_timeout_s = 2.0;
    let faults = Faults::new(Duration::from_secs(4));
    let server = start_faulty_server(config, faults.clone()).await;
    let ws = server.connect("encoding=pcm_s16le&partials=false").await;
    let (mut sink, mut stream) = ws.split();
    // Three slow utterances at once (one runs, one waits in the queue, the
    // third waits for room), then silence at real-time pace: never idle.
    let client = tokio::spawn(async move {
        let mut packets = Vec::new();
        for sentence in [SENTENCE, OTHER_SENTENCE, SENTENCE] {
            packets.extend(marked_pcm(sentence, SLOW_MARK));
        }
        let quiet = pcm_chunks(&silence(20), 20, 16_000).remove(0);
        for p in packets {
            if sink.send_audio(p).await.is_err() {
                return;
            }
        }
        for _ in 0..500 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if sink.send_audio(quiet.clone()).await.is_err() {
                return;
            }
        }
        let _ = sink.send(ClientMessage::End).await;
    });
    let mut errors = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Ok(Some(Ok(event))) = tokio::time::timeout_at(deadline, stream.next()).await {
        if let Event::Message(ServerMessage::Error { code, .. }) = event {
            errors.push(code.as_str());
        }
    }
    client.abort();
    assert!(errors.is_empty(), "a streaming client got {errors:?}");
    server.stop().await;
}
