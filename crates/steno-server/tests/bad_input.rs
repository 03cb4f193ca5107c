//! Bad input gets a clear error and never disturbs the server or another session.

mod common;

use std::time::Duration;

use common::speech::{espeak, silence};
use common::wer::wer;
use common::*;

const SENTENCE: &str = "Good morning, this is a test of the speech server.";

fn speech() -> Vec<Vec<u8>> {
    let mut audio = silence(300);
    audio.extend(espeak(SENTENCE));
    audio.extend(silence(1200));
    opus_packets(&audio, 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_errors_and_the_session_goes_on() {
    let server = TestServer::start(test_config()).await;
    let mut ws = server.connect("").await;
    // Garbage, an empty packet, bad JSON and an unknown type: each answered, none fatal.
    ws.send_audio(vec![0xffu8; 40]).await.unwrap();
    ws.send_audio(Vec::<u8>::new()).await.unwrap();
    send_json(&mut ws, "{not json").await;
    send_json(&mut ws, r#"{"type":"dance"}"#).await;
    send_all(&mut ws, &speech(), Duration::ZERO).await;
    send_json(&mut ws, r#"{"type":"end"}"#).await;
    let t = collect(&mut ws, Duration::from_secs(60)).await;
    let errors = t.errors();
    assert_eq!(
        errors,
        vec!["bad_audio", "bad_audio", "bad_request", "bad_request"],
        "{:?}",
        t.messages
    );
    assert_eq!(t.finals().len(), 1, "{:?}", t.messages);
    assert!(wer(SENTENCE, &t.finals()[0].1) <= 0.25, "{:?}", t.finals());
    assert_eq!(t.close_code(), Some(1000));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_bad_packets_closes_with_1007_and_oversize_with_1009() {
    let mut config = test_config();
    config.session.max_bad_packets = 5;
    let server = TestServer::start(config).await;

    // A healthy session streams at real-time pace through the abuse.
    let good = {
        let url = server.url("partials=false");
        tokio::spawn(async move {
            let mut ws = Connector::new(url).connect().await.unwrap();
            send_all(&mut ws, &speech(), Duration::from_millis(20)).await;
            send_json(&mut ws, r#"{"type":"end"}"#).await;
            collect(&mut ws, Duration::from_secs(60)).await
        })
    };

    let mut ws = server.connect("").await;
    for i in 0..10u8 {
        if ws.send_audio(vec![0xffu8; 3 + i as usize]).await.is_err() {
            break;
        }
    }
    let t = collect(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(t.close_code(), Some(1007), "{:?}", t.messages);
    assert_eq!(t.errors().len(), 5, "{:?}", t.messages);

    let mut ws = server.connect("").await;
    let _ = ws.send_audio(vec![0u8; 70_000]).await;
    let t = collect(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(t.close_code(), Some(1009), "{:?}", t.messages);
    assert_eq!(t.errors(), vec!["message_too_large"]);

    let mut ws = server.connect("encoding=pcm_s16le").await;
    ws.send_audio(vec![0u8; 321]).await.unwrap();
    send_json(&mut ws, r#"{"type":"end"}"#).await;
    let t = collect(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(
        t.errors(),
        vec!["bad_audio"],
        "odd byte count: {:?}",
        t.messages
    );
    assert_eq!(t.close_code(), Some(1000));

    // A bad query is refused with a clear message.
    let refused = server
        .connector("encoding=mp3")
        .connect()
        .await
        .unwrap_err();
    let ConnectError::Refused {
        code,
        message,
        close,
        ..
    } = refused
    else {
        panic!("{refused}")
    };
    assert_eq!(code.as_str(), "bad_request");
    assert!(message.contains("encoding"), "{message}");
    assert_eq!(close.map(|c| c.code), Some(1008));

    let t = good.await.unwrap();
    assert_eq!(
        t.finals().len(),
        1,
        "the healthy session is unaffected: {:?}",
        t.messages
    );
    assert!(wer(SENTENCE, &t.finals()[0].1) <= 0.25, "{:?}", t.finals());
    assert!(t.errors().is_empty());
    let (status, _) = http_get(server.addr, "/health").await.unwrap();
    assert_eq!(status, 200);
    server.stop().await;
}
