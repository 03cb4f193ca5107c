//! Finals under a backlog, with the real model. Packed finals (`workers.pack_finals`): sessions that say different sentences at the same moment, on one worker so that their finals queue up and share encoder passes, each get only their own words, also in a burst of twelve where packs of three and whisper's word times break down; and with packing off the same sessions get the same kind of result one final at a time. Degraded finals (`workers.degrade_after_ms`): a burst of twelve clears sooner with late finals on the smaller window than without, and every final still has its words.

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

/// What one session of a burst got.
struct Spoken {
    text: String,
    /// From the end of its audio to its final.
    waited: Duration,
    close: Option<u16>,
    /// Its final said `"degraded":true`.
    degraded: bool,
}

/// Opens a session, waits at `start`, says `sentence` as fast as the server
/// reads, and says what it got.
async fn speak_timed(url: String, sentence: &'static str, start: Arc<Barrier>) -> Spoken {
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
    let degraded = t
        .messages
        .iter()
        .any(|m| matches!(m, ServerMessage::Final { degraded: true, .. }));
    Spoken {
        text: t.final_text(),
        waited,
        close: t.close_code(),
        degraded,
    }
}

/// Opens `BURST` sessions (three of each sentence), checks that one more
/// is refused and counted, then has them all speak at once; returns what
/// each session got, in order.
async fn burst(server: &TestServer) -> Vec<Spoken> {
    let url = server.url("encoding=pcm_s16le&partials=false");
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
    let refused = metric(server.addr, "steno_sessions_refused_total").await - refused_before;
    assert_eq!(refused, 1.0, "the session past the slots is counted");
    start.wait().await;
    let mut results = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let spoken = task.await.unwrap();
        println!(
            "session {i}: final after {:.2?}{}: {:?}",
            spoken.waited,
            if spoken.degraded { " (degraded)" } else { "" },
            spoken.text
        );
        assert_eq!(
            spoken.close,
            Some(1000),
            "session {i} closed with {:?}",
            spoken.close
        );
        results.push(spoken);
    }
    results
}

/// How long one session alone waits for its final after its audio: one
/// inference on this machine now.
async fn lone_final(server: &TestServer) -> Duration {
    let url = server.url("encoding=pcm_s16le&partials=false");
    speak_timed(url, SENTENCES[0], Arc::new(Barrier::new(1)))
        .await
        .waited
}

fn slowest(results: &[Spoken]) -> Duration {
    results.iter().map(|r| r.waited).max().unwrap_or_default()
}

/// One server of one worker admitting the burst exactly.
async fn burst_server(configure: impl FnOnce(&mut steno_server::config::Config)) -> TestServer {
    let mut config = test_config();
    config.workers.count = 1;
    config.admission.max_sessions = SessionLimit::Fixed(BURST);
    configure(&mut config);
    TestServer::start(config).await
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
    let server = burst_server(|c| c.workers.pack_finals = true).await;

    // One final alone on this machine now, to print beside the burst's.
    let lone = lone_final(&server).await;

    let passes_before = metric(server.addr, "steno_packed_passes_total").await;
    let reruns_before = metric(server.addr, "steno_packed_reruns_total").await;
    let results = burst(&server).await;
    let passes = metric(server.addr, "steno_packed_passes_total").await - passes_before;
    let reruns = metric(server.addr, "steno_packed_reruns_total").await - reruns_before;
    println!(
        "{BURST} finals at once on one worker: the last {:.2?} after its audio \
         (one alone: {lone:.2?}), {passes} packed passes, {reruns} finals run again alone",
        slowest(&results)
    );
    let rounds: Vec<Vec<String>> = results
        .chunks(4)
        .map(|round| round.iter().map(|r| r.text.clone()).collect())
        .collect();
    check_own_words(&rounds);
    assert!(passes >= 1.0, "the finals never shared a pass");
    server.stop().await;
}

/// More finals at once than one worker clears one by one: the open
/// sessions degrade as `workers.degrade_after_ms` says (a final that waited
/// gets the smaller window) and the burst clears sooner than with
/// degrading off, on the same machine, back to back, and within the
/// admission budget plus one inference; nobody loses the connection, every
/// final has its sentence's words, the session past the slots is refused
/// and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_finals_degrade_to_the_smaller_window_and_a_burst_clears_sooner() {
    let _serial = SERIAL.lock().await;
    // The admission budget: past it new sessions are refused by load.
    let budget = Duration::from_secs_f32(test_config().admission.max_final_wait_s);
    let mut last = Vec::new();
    for degrade_after_ms in [0, 500] {
        let server = burst_server(|c| c.workers.degrade_after_ms = degrade_after_ms).await;
        // One inference on this machine now: a final alone.
        let lone = lone_final(&server).await;
        let before = metric(server.addr, "steno_finals_degraded_total").await;
        let results = burst(&server).await;
        let degraded = metric(server.addr, "steno_finals_degraded_total").await - before;
        for (i, r) in results.iter().enumerate() {
            let w = wer(SENTENCES[i % 4], &r.text);
            assert!(w <= MAX_WER, "session {i}: {:?} (WER {w:.2})", r.text);
        }
        // The client is told which finals were degraded: exactly those the
        // server counted.
        let flagged = results.iter().filter(|r| r.degraded).count();
        assert_eq!(flagged as f64, degraded, "finals flagged degraded");
        println!(
            "degrade_after_ms {degrade_after_ms}: the last of {BURST} finals {:.2?} after its audio \
             (one alone: {lone:.2?}, budget {budget:.2?}), {degraded} degraded",
            slowest(&results)
        );
        if degrade_after_ms == 0 {
            assert_eq!(degraded, 0.0, "degrading is off");
        } else {
            // The first final or two ran before anyone had waited 500 ms.
            assert!(degraded >= (BURST - 3) as f64, "{degraded} degraded");
            // No final later than the budget plus one inference.
            if !budget.is_zero() {
                assert!(
                    slowest(&results) <= budget + lone,
                    "the last final came {:.2?} after its audio",
                    slowest(&results)
                );
            }
        }
        last.push(slowest(&results));
        server.stop().await;
    }
    assert!(
        last[1] < last[0],
        "degraded, the burst took {:.2?}; one window for all, {:.2?}",
        last[1],
        last[0]
    );
}
