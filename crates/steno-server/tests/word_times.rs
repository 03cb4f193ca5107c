//! Word timings on live finals (`words=true`): speech made of single words with known silences between them, against the real server and model; each word's start and end must fall within 150 ms of where it was put.

mod common;

use std::time::Duration;

use common::speech::{espeak, silence};
use common::*;
use steno_protocol::ServerMessage;

/// Words tiny.en hears alone, each rendered separately by espeak-ng.
const WORDS: [&str; 5] = ["morning", "coffee", "yellow", "garden", "window"];
/// Silence between words: well under the VAD hangover (400 ms), so the
/// words make one utterance, and long enough to be a clear boundary.
const GAP_MS: usize = 300;
/// How far a reported start or end may be from the true one.
const TOLERANCE_MS: i64 = 150;

/// `samples` without espeak's own leading and trailing near-silence, and
/// the offset of what is kept.
fn trimmed(samples: &[i16]) -> (usize, &[i16]) {
    let loud = |s: &i16| s.unsigned_abs() > 500;
    let first = samples.iter().position(loud).unwrap_or(0);
    let last = samples.iter().rposition(loud).unwrap_or(samples.len());
    (first, &samples[first..=last])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_words_start_and_end_where_they_were_spoken() {
    let server = TestServer::start(test_config()).await;
    // Build the utterance and remember where each word really is.
    let mut audio = silence(500);
    let mut truth = Vec::new();
    for word in WORDS {
        let rendered = espeak(word);
        let (_, speech) = trimmed(&rendered);
        let start_ms = (audio.len() / 16) as i64;
        audio.extend_from_slice(speech);
        truth.push((word, start_ms, (audio.len() / 16) as i64));
        audio.extend(silence(GAP_MS));
    }
    audio.extend(silence(1200));

    let mut ws = server
        .connect("encoding=opus&partials=false&words=true")
        .await;
    send_all(
        &mut ws,
        &opus_packets(&audio, 20),
        Duration::from_millis(20),
    )
    .await;
    ws.end().await.unwrap();
    let t = collect(&mut ws, Duration::from_secs(60)).await;
    let words: Vec<_> = t
        .messages
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Final { words, .. } => Some(words.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    println!("truth: {truth:?}");
    let mut worst = 0;
    for w in &words {
        println!(
            "{:>10} {:>5}-{:>5} ms p={:.2}",
            w.word, w.start_ms, w.end_ms, w.probability
        );
    }
    for (word, start, end) in &truth {
        let said = words
            .iter()
            .find(|w| {
                w.word
                    .trim()
                    .trim_matches(|c: char| !c.is_alphanumeric())
                    .eq_ignore_ascii_case(word)
            })
            .unwrap_or_else(|| panic!("{word:?} not among the words: {words:?}"));
        let (ds, de) = (said.start_ms as i64 - start, said.end_ms as i64 - end);
        worst = worst.max(ds.abs()).max(de.abs());
        assert!(
            ds.abs() <= TOLERANCE_MS && de.abs() <= TOLERANCE_MS,
            "{word}: said {}-{} ms, spoken {start}-{end} ms",
            said.start_ms,
            said.end_ms
        );
        assert!((0.0..=1.0).contains(&said.probability));
    }
    println!(
        "worst start/end error over {} words: {worst} ms",
        truth.len()
    );
    server.stop().await;
}
