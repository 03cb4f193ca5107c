//! Packed finals (`workers.pack_finals`) with the real model: sessions that say different sentences at the same moment, on one worker so that their finals queue up and share encoder passes, each get only their own words, also in a burst of twelve where packs of three and whisper's word times break down; and with packing off the same sessions get the same kind of result one final at a time.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::speech::{espeak, silence};
use common::wer::{normalise, wer};
use common::*;
use steno_client::Event;
use steno_protocol::{ErrorCode, ServerMessage};
use steno_server::admission::SessionLimit;
use tokio::sync::Barrier;

/// Sentences the model hears reliably from espeak; the words only one of
/// them has tell whose words a final holds.
const SENTENCES: [&str; 4] = [
    "Please call me back tomorrow morning at the office.",
    "Thank you very much for coming to the meeting this afternoon.",
    "Shutting down politely means finishing this sentence first.",
    "Good morning, this is a test of the speech server.",
];
const MAX_WER: f64 = 0.25;
const ROUNDS: usize = 3;

/// The counters are the process's: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Words of `sentence` that no other sentence has.
fn own_words(i: usize) -> HashSet<String> {
    let others: HashSet<String> = SENTENCES
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .flat_map(|(_, s)| normalise(s))
        .collect();
    normalise(SENTENCES[i])
        .into_iter()
        .filter(|w| !others.contains(w))
        .collect()
}

/// Every session speaks its sentence at once, as fast as the server
/// reads; each final's text per session, per round.
async fn speak_together(server: &TestServer) -> Vec<Vec<String>> {
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let mut tasks = Vec::new();
        for sentence in SENTENCES {
            let url = server.url("encoding=pcm_s16le&partials=false");
            tasks.push(tokio::spawn(async move {
                let mut ws = Connector::new(url).connect().await.expect("connect");
                let mut audio = silence(300);
                audio.extend(espeak(sentence));
                audio.extend(silence(800));
                send_all(&mut ws, &pcm_chunks(&audio, 100, 16_000), Duration::ZERO).await;
                ws.end().await.unwrap();
                collect(&mut ws, Duration::from_secs(120)).await
            }));
        }
        let mut texts = Vec::new();
        for task in tasks {
            let t = task.await.unwrap();
            assert_eq!(t.close_code(), Some(1000), "{:?}", t.messages);
            texts.push(t.final_text());
        }
        rounds.push(texts);
    }
    rounds
}

fn check_own_words(rounds: &[Vec<String>]) {
    let own: Vec<HashSet<String>> = (0..SENTENCES.len()).map(own_words).collect();
    for texts in rounds {
        for (i, text) in texts.iter().enumerate() {
            let w = wer(SENTENCES[i], text);
            assert!(w <= MAX_WER, "session {i}: {text:?} (WER {w:.2})");
            for word in normalise(text) {
                let foreign = own
                    .iter()
                    .enumerate()
                    .any(|(j, words)| j != i && words.contains(&word));
                assert!(
                    !foreign,
                    "session {i} got {word:?}, another session's word: {text:?}"
                );
            }
        }
    }
}

async fn server(pack: bool) -> TestServer {
    let mut config = test_config();
    config.workers.count = 1;
    config.workers.pack_finals = pack;
    TestServer::start(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_speaking_at_once_get_only_their_own_words_when_packed() {
    let _serial = SERIAL.lock().await;
    let server = server(true).await;
    let passes_before = metric(server.addr, "steno_packed_passes_total").await;
    let finals_before = metric(server.addr, "steno_packed_finals_total").await;
    let reruns_before = metric(server.addr, "steno_packed_reruns_total").await;
    let rounds = speak_together(&server).await;
    let passes = metric(server.addr, "steno_packed_passes_total").await - passes_before;
    let packed = metric(server.addr, "steno_packed_finals_total").await - finals_before;
    let reruns = metric(server.addr, "steno_packed_reruns_total").await - reruns_before;
    println!(
        "{ROUNDS} rounds of {} sessions: {passes} packed passes served {packed} finals, {reruns} run again alone",
        SENTENCES.len()
    );
    for texts in &rounds {
        println!("{texts:?}");
    }
    check_own_words(&rounds);
    assert!(passes >= 1.0, "the finals never shared a pass");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_packing_each_final_runs_alone() {
    let _serial = SERIAL.lock().await;
    let server = server(false).await;
    let before = metric(server.addr, "steno_packed_passes_total").await;
    let rounds = speak_together(&server).await;
    check_own_words(&rounds);
    assert_eq!(
        metric(server.addr, "steno_packed_passes_total").await,
        before
    );
    server.stop().await;
}

/// Sessions in the burst: three of each sentence, so that packs of three
/// form (where whisper's word times were seen to collapse).
const BURST: usize = 12;

/// Opens a session, waits at `start`, says `sentence` as fast as the server
/// reads, and returns the final's text, how long after the last audio it
/// came, and the close code.
async fn speak_timed(
    url: String,
    sentence: &'static str,
    start: Arc<Barrier>,
) -> (String, Duration, Option<u16>) {
    let mut ws = Connector::new(url).connect().await.expect("connect");
    start.wait().await;
    let mut audio = silence(300);
    audio.extend(espeak(sentence));
    audio.extend(silence(800));
    send_all(&mut ws, &pcm_chunks(&audio, 100, 16_000), Duration::ZERO).await;
    let sent = Instant::now();
    let mut waited = None;
    let mut t = Transcript::default();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(120), ws.next())
        .await
        .expect("the session ends within 120 s")
    {
        let event = event.expect("no connection lost");
        if waited.is_none()
            && let Event::Message(ServerMessage::Final { .. }) = &event
        {
            waited = Some(sent.elapsed());
            ws.end().await.unwrap();
        }
        t.push(event);
    }
    let waited = waited.unwrap_or_else(|| panic!("no final: {:?}", t.messages));
    (t.final_text(), waited, t.close_code())
}

/// Twelve finals at once on one worker, packed: whisper's word times over
/// a pack of three often collapse (a stretch's last word timed at the next
/// one's start, a sentence at one instant), which once handed a word to
/// the wrong session. No session may get another's words, lose its
/// connection or its final; a session past the slots is refused and
/// counted. How long the last final took is printed beside one alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_packed_finals_never_mixes_sessions_words() {
    let _serial = SERIAL.lock().await;
    let mut config = test_config();
    config.workers.count = 1;
    config.workers.pack_finals = true;
    config.admission.max_sessions = SessionLimit::Fixed(BURST);
    let server = TestServer::start(config).await;
    let url = server.url("encoding=pcm_s16le&partials=false");

    // One final alone on this machine now, to print beside the burst's.
    let one = Arc::new(Barrier::new(1));
    let (_, lone, _) = speak_timed(url.clone(), SENTENCES[0], one).await;

    let passes_before = metric(server.addr, "steno_packed_passes_total").await;
    let reruns_before = metric(server.addr, "steno_packed_reruns_total").await;
    let refused_before = metric(server.addr, "steno_sessions_refused_total").await;
    let start = Arc::new(Barrier::new(BURST + 1));
    let tasks: Vec<_> = (0..BURST)
        .map(|i| tokio::spawn(speak_timed(url.clone(), SENTENCES[i % 4], start.clone())))
        .collect();
    assert!(wait_sessions(server.addr, BURST as u64, Duration::from_secs(30)).await);
    match server.connector("partials=false").connect().await {
        Err(ConnectError::Refused { code, .. }) => assert_eq!(code, ErrorCode::OverCapacity),
        other => panic!("a session past the slots: {:?}", other.map(|_| "admitted")),
    }
    start.wait().await;

    let mut rounds = vec![vec![String::new(); 4]; BURST / 4];
    let mut slowest = Duration::ZERO;
    for (i, task) in tasks.into_iter().enumerate() {
        let (text, waited, close) = task.await.unwrap();
        println!("session {i}: final after {waited:.2?}: {text:?}");
        assert_eq!(close, Some(1000), "session {i} closed with {close:?}");
        rounds[i / 4][i % 4] = text;
        slowest = slowest.max(waited);
    }
    let passes = metric(server.addr, "steno_packed_passes_total").await - passes_before;
    let reruns = metric(server.addr, "steno_packed_reruns_total").await - reruns_before;
    let refused = metric(server.addr, "steno_sessions_refused_total").await - refused_before;
    println!(
        "{BURST} finals at once on one worker: the last {slowest:.2?} after its audio \
         (one alone: {lone:.2?}), {passes} packed passes, {reruns} finals run again alone"
    );
    check_own_words(&rounds);
    assert!(passes >= 1.0, "the finals never shared a pass");
    assert_eq!(refused, 1.0, "the session past the slots is counted");
    server.stop().await;
}
