//! Protocol v1 end to end: the real server, the real model, speech made by
//! espeak-ng, streamed as Opus and as PCM.

mod common;

use std::time::Duration;

use common::speech::{espeak, espeak_at, noise, silence};
use common::wer::wer;
use common::*;
use steno_protocol::ServerMessage;

const FIRST: &str = "Good morning, this is a test of the speech server.";
const SECOND: &str = "Please call me back tomorrow morning at the office.";
/// espeak-ng's synthetic voice through tiny.en: a few words may differ.
const MAX_WER: f64 = 0.25;

/// Two sentences with 1.5 s of silence between and after them.
fn two_sentences() -> (Vec<i16>, usize, usize) {
    let mut audio = silence(500);
    audio.extend(espeak(FIRST));
    let first_end = audio.len();
    audio.extend(silence(1500));
    let second_start = audio.len();
    audio.extend(espeak(SECOND));
    audio.extend(silence(1500));
    (audio, first_end, second_start)
}

fn check_two_finals(t: &Transcript, first_end: usize, second_start: usize, total: usize) {
    let finals = t.finals();
    assert_eq!(finals.len(), 2, "one final per utterance: {:?}", t.messages);
    assert_eq!((finals[0].0, finals[1].0), (0, 1), "finals in order");
    let w0 = wer(FIRST, &finals[0].1);
    let w1 = wer(SECOND, &finals[1].1);
    println!(
        "final 0: {:?} (WER {w0:.2})\nfinal 1: {:?} (WER {w1:.2})",
        finals[0].1, finals[1].1
    );
    assert!(
        w0 <= MAX_WER && w1 <= MAX_WER,
        "WER over {MAX_WER}: {finals:?}"
    );
    let ms = |samples: usize| samples as u64 / 16;
    let (s0, e0, s1, e1) = (finals[0].2, finals[0].3, finals[1].2, finals[1].3);
    assert!(
        s0 < e0 && e0 <= s1 && s1 < e1,
        "monotonic bounds: {finals:?}"
    );
    assert!((200..=900).contains(&s0), "first starts near 500 ms: {s0}");
    assert!(
        e0 + 400 >= ms(first_end) && e0 <= ms(first_end) + 600,
        "first ends near {}: {e0}",
        ms(first_end)
    );
    assert!(
        s1 + 500 >= ms(second_start) && s1 <= ms(second_start) + 400,
        "second starts near {}: {s1}",
        ms(second_start)
    );
    assert!(e1 <= ms(total), "ends inside the audio");
    let starts: Vec<_> = t
        .messages
        .iter()
        .filter_map(|m| match m {
            ServerMessage::SpeechStarted { utterance, .. } => Some(*utterance),
            _ => None,
        })
        .collect();
    assert_eq!(starts, vec![0, 1], "speech_started per utterance");
    match t.messages.last() {
        Some(ServerMessage::End {
            utterances,
            audio_ms,
        }) => {
            assert_eq!(*utterances, 2);
            assert!(
                audio_ms.abs_diff(ms(total)) <= 60,
                "audio_ms {audio_ms} vs {}",
                ms(total)
            );
        }
        other => panic!("last message must be end, got {other:?}"),
    }
    assert_eq!(t.close_code(), Some(1000));
    assert!(t.errors().is_empty(), "{:?}", t.errors());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_real_time_and_fast_give_correct_finals() {
    let server = TestServer::start(test_config()).await;
    let (audio, first_end, second_start) = two_sentences();
    let packets = opus_packets(&audio, 20);
    for pace in [Duration::from_millis(20), Duration::ZERO] {
        let mut ws = server.connect("encoding=opus&partials=false").await;
        assert_eq!(ws.ready().sample_rate_hz, 16000);
        send_all(&mut ws, &packets, pace).await;
        send_json(&mut ws, r#"{"type":"end"}"#).await;
        let t = collect(&mut ws, Duration::from_secs(60)).await;
        println!("pace {pace:?}:");
        check_two_finals(&t, first_end, second_start, audio.len());
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcm_at_16k_paced_and_48k_fast() {
    let server = TestServer::start(test_config()).await;
    let (audio, first_end, second_start) = two_sentences();
    let mut ws = server
        .connect("encoding=pcm_s16le&sample_rate=16000&partials=false")
        .await;
    send_all(
        &mut ws,
        &pcm_chunks(&audio, 100, 16_000),
        Duration::from_millis(100),
    )
    .await;
    send_json(&mut ws, r#"{"type":"end"}"#).await;
    check_two_finals(
        &collect(&mut ws, Duration::from_secs(60)).await,
        first_end,
        second_start,
        audio.len(),
    );

    // 48 kHz: the same layout rendered at 48 kHz and resampled by the server.
    let mut audio48 = vec![0i16; 500 * 48];
    audio48.extend(espeak_at(FIRST, 48_000));
    let first_end48 = audio48.len() / 3;
    audio48.extend(vec![0i16; 1500 * 48]);
    let second_start48 = audio48.len() / 3;
    audio48.extend(espeak_at(SECOND, 48_000));
    audio48.extend(vec![0i16; 1500 * 48]);
    let mut ws = server
        .connect("encoding=pcm_s16le&sample_rate=48000&partials=false")
        .await;
    send_all(&mut ws, &pcm_chunks(&audio48, 50, 48_000), Duration::ZERO).await;
    send_json(&mut ws, r#"{"type":"end"}"#).await;
    let t = collect(&mut ws, Duration::from_secs(60)).await;
    check_two_finals(&t, first_end48, second_start48, audio48.len() / 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalize_closes_the_open_utterance_now() {
    let server = TestServer::start(test_config()).await;
    let mut audio = silence(300);
    audio.extend(espeak(FIRST));
    // No trailing silence: only `finalize` can close this utterance.
    let mut ws = server.connect("partials=false").await;
    send_all(&mut ws, &opus_packets(&audio, 20), Duration::ZERO).await;
    send_json(&mut ws, r#"{"type":"finalize"}"#).await;
    // The final must arrive while the session is still open.
    let mut finals = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while finals.is_empty() {
        let event = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("final after finalize")
            .unwrap()
            .unwrap();
        if let steno_client::Event::Message(ServerMessage::Final {
            text, utterance, ..
        }) = event
        {
            finals.push((utterance, text));
        }
    }
    assert_eq!(finals[0].0, 0);
    assert!(wer(FIRST, &finals[0].1) <= MAX_WER, "{finals:?}");
    // The session goes on: a second utterance, then end.
    let mut more = espeak(SECOND);
    more.extend(silence(1000));
    send_all(&mut ws, &opus_packets(&more, 20), Duration::ZERO).await;
    send_json(&mut ws, r#"{"type":"end"}"#).await;
    let t = collect(&mut ws, Duration::from_secs(60)).await;
    assert_eq!(t.finals().len(), 1, "{:?}", t.messages);
    assert_eq!(t.finals()[0].0, 1);
    assert!(wer(SECOND, &t.finals()[0].1) <= MAX_WER, "{:?}", t.finals());
    assert!(matches!(
        t.messages.last(),
        Some(ServerMessage::End { utterances: 2, .. })
    ));
    assert_eq!(t.close_code(), Some(1000));
    server.stop().await;
}

/// Streams `audio` both as Opus and as PCM and asserts no utterance at all.
async fn assert_no_utterance(server: &TestServer, audio: &[i16]) {
    for query in ["partials=true", "encoding=pcm_s16le"] {
        let mut ws = server.connect(query).await;
        let packets = if query.contains("pcm") {
            pcm_chunks(audio, 20, 16_000)
        } else {
            opus_packets(audio, 20)
        };
        send_all(&mut ws, &packets, Duration::ZERO).await;
        send_json(&mut ws, r#"{"type":"end"}"#).await;
        let t = collect(&mut ws, Duration::from_secs(30)).await;
        assert!(t.finals().is_empty(), "{query}: {:?}", t.messages);
        assert!(
            !t.messages
                .iter()
                .any(|m| matches!(m, ServerMessage::SpeechStarted { .. })),
            "{query}: {:?}",
            t.messages
        );
        assert!(matches!(
            t.messages.last(),
            Some(ServerMessage::End { utterances: 0, .. })
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_alone_makes_no_utterance() {
    let server = TestServer::start(test_config()).await;
    assert_no_utterance(&server, &silence(7000)).await;
    server.stop().await;
}

/// White noise after digital silence, through Opus: webrtc-vad alone takes
/// its onset for speech (and Whisper then says "you"); the segmenter's
/// structure check must refuse it, quiet or loud.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_alone_makes_no_utterance() {
    let server = TestServer::start(test_config()).await;
    for amplitude in [100, 1000, 10_000] {
        let mut audio = silence(3000);
        audio.extend(noise(3000, amplitude));
        audio.extend(silence(1000));
        assert_no_utterance(&server, &audio).await;
    }
    server.stop().await;
}
