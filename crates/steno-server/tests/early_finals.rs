//! Early finals (`session.early_finals`): a final started at the pause must
//! be used when the utterance ends there, and must say exactly what the
//! final would have said. Its own test binary, so the process-wide
//! `steno_early_finals_used_total` counter sees this test's sessions alone.

mod common;

use std::time::Duration;

use common::speech::{espeak, silence};
use common::wer::wer;
use common::*;

const FIRST: &str = "Good morning, this is a test of the speech server.";
const SECOND: &str = "Please call me back tomorrow morning at the office.";

async fn early_finals_used(server: &TestServer) -> u64 {
    metric(server.addr, "steno_early_finals_used_total").await as u64
}

async fn finals(server: &TestServer, packets: &[Vec<u8>], pace: Duration) -> Vec<String> {
    let mut ws = server.connect("partials=false").await;
    send_all(&mut ws, packets, pace).await;
    send_json(&mut ws, r#"{"type":"end"}"#).await;
    let t = collect(&mut ws, Duration::from_secs(60)).await;
    t.finals().into_iter().map(|f| f.1).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_finals_are_used_at_real_pauses_and_change_no_word() {
    let mut audio = silence(500);
    audio.extend(espeak(FIRST));
    audio.extend(silence(1500));
    audio.extend(espeak(SECOND));
    audio.extend(silence(1500));
    let packets = opus_packets(&audio, 20);

    let mut late = test_config();
    late.session.early_finals = false;
    let server = TestServer::start(late).await;
    let reference = finals(&server, &packets, Duration::ZERO).await;
    assert_eq!(early_finals_used(&server).await, 0, "early finals are off");
    server.stop().await;
    assert_eq!(reference.len(), 2, "{reference:?}");
    assert!(wer(FIRST, &reference[0]) <= 0.25 && wer(SECOND, &reference[1]) <= 0.25);

    let mut early = test_config();
    early.session.early_finals = true;
    let server = TestServer::start(early).await;
    // As fast as possible the early job is usually still waiting when the
    // utterance ends (taken back and requeued); at real-time pace it is
    // running or done by then.
    for pace in [Duration::ZERO, Duration::from_millis(20)] {
        let before = early_finals_used(&server).await;
        let texts = finals(&server, &packets, pace).await;
        let used = early_finals_used(&server).await - before;
        println!("pace {pace:?}: {used} early finals used; {texts:?}");
        assert_eq!(texts, reference, "an early final changed the text");
        assert_eq!(used, 2, "both sentences end in a real pause");
    }
    server.stop().await;
}
