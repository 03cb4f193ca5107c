//! The browser demo (`web-demo/`) in a real browser: headless Chromium with a
//! fake microphone that speaks a known sentence, driven by Playwright
//! (`tests/e2e/demo.mjs`), against the real server and model.
//!
//! The Rust side starts two servers (one free, one whose only slot it holds
//! with a plain WebSocket client), makes the microphone file, runs the Node
//! script and asserts on what the page showed. Screenshots land in
//! `target/e2e-artifacts/`.
//!
//! The microphone speaks the JFK clip of the shared speech set, a human
//! recording tiny.en hears the same way through the browser's capture and
//! Opus path every time (an espeak-ng sentence was misheard in about half
//! the runs, depending on where chunk and VAD boundaries fell). The test says
//! SKIPPED when `../shared/data/speech` is missing.
//!
//! Needs `/usr/bin/chromium` and `tests/e2e/node_modules` (`make e2e-deps`);
//! fails when they are missing, unless `STENO_SKIP_BROWSER=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use steno_server::admission::SessionLimit;

use common::wer::wer;
use common::*;
use steno_client::Event;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the fake microphone says (then silence, then it loops): a file of
/// the shared speech set and its reference.
const CLIP: &str = "jfk_inaugural.wav";
const SENTENCE: &str = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";
/// Measured over ten runs (2026-12-02): WER 0.05 in seven, 0.09, 0.14 and
/// 0.18 in the others, all in the short first utterance ("And so my fellow
/// Americans", where the capture's timing moves the cut). The bound is that
/// spread plus two words of 22; a broken path (no words, another clip's
/// words, audio lost) scores far above it.
const MAX_WER: f64 = 0.30;
/// Fake microphone rate: Chromium's capture rate, so the file is not resampled.
const MIC_RATE_HZ: u32 = 48_000;
const NODE_LIMIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_transcribes_a_microphone_and_explains_a_full_server() {
    if std::env::var("STENO_SKIP_BROWSER").as_deref() == Ok("1") {
        println!("SKIPPED: STENO_SKIP_BROWSER=1, the browser demo test did not run");
        return;
    }
    let Some(speech) = shared_speech_dir() else {
        return;
    };
    let chromium = browser_tools();
    let artifacts = repo_root().join("target/e2e-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let wav = fake_microphone(&speech.join(CLIP), &artifacts.join("microphone.wav"));

    let server = TestServer::start(test_config()).await;
    let mut one_slot = test_config();
    one_slot.admission.max_sessions = SessionLimit::Fixed(1);
    // The page waits out three refusals by itself: keep those waits short.
    one_slot.admission.retry_after_s = 2;
    let full = TestServer::start(one_slot).await;
    let holder = SlotHolder::take(&full).await;

    let started = Instant::now();
    let result = run_demo_script(&[
        ("STENO_E2E_URL", format!("http://{}/", server.addr)),
        ("STENO_E2E_FULL_URL", format!("http://{}/", full.addr)),
        ("STENO_E2E_WAV", path_str(&wav)),
        ("STENO_E2E_ARTIFACTS", path_str(&artifacts)),
        ("STENO_E2E_CHROMIUM", path_str(&chromium)),
    ])
    .await;
    println!(
        "browser run: {:.1} s\n{}",
        started.elapsed().as_secs_f64(),
        serde_json::to_string_pretty(&result).unwrap()
    );
    holder.release().await;

    assert_eq!(
        result["supported"], true,
        "the page called this Chromium unsupported"
    );
    assert_eq!(result["hearingSpeechText"], "Hearing speech");

    // The finals, in order from utterance 0, are the clip, under the WER
    // bound (the speaker's pauses may cut it into several utterances).
    let finals = result["finals"].as_array().expect("finals");
    let first = finals.first().expect("a final on the page");
    assert_eq!(first["utterance"], 0);
    let numbers: Vec<u64> = finals
        .iter()
        .map(|f| f["utterance"].as_u64().unwrap())
        .collect();
    assert!(
        numbers.iter().zip(0..).all(|(n, i)| *n == i),
        "finals in utterance order without gaps: {numbers:?}"
    );
    let text = finals
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    let error = wer(SENTENCE, &text);
    println!("page finals: {text:?} (WER {error:.2})");
    assert!(
        error <= MAX_WER,
        "WER {error:.2} > {MAX_WER}: page showed {text:?} for {SENTENCE:?}"
    );
    // The page measured that final's latency.
    let latency = first["latency"].as_str().unwrap();
    assert!(
        latency.ends_with(" ms") && latency[..latency.len() - 3].parse::<u32>().is_ok(),
        "latency shown as {latency:?}"
    );

    // Partials with words were on screen before the finals replaced them, in
    // the same row, and none came back after its final. Which utterances
    // show one depends on how busy the workers are (partials wait behind
    // finals), so at least one must, not each.
    let rows = result["rows"].as_array().expect("rows");
    let final_at = |utterance: &serde_json::Value| {
        rows.iter()
            .find(|r| &r["utterance"] == utterance && r["state"] == "final")
            .and_then(|r| r["t"].as_f64())
    };
    let mut partials_with_words = 0;
    for partial in rows.iter().filter(|r| r["state"] == "partial") {
        let Some(final_t) = final_at(&partial["utterance"]) else {
            continue;
        };
        assert!(
            partial["t"].as_f64().unwrap() < final_t,
            "a partial came back after the final: {partial} in {rows:?}"
        );
        if partial["text"].as_str().unwrap().split_whitespace().count() >= 2 {
            partials_with_words += 1;
        }
    }
    assert!(
        partials_with_words >= 1,
        "no partial with words on the page before a final: {rows:?}"
    );

    // Stop ended cleanly: no error shown, the transcript copies as shown.
    assert_eq!(result["connectionAfterStop"], "Finished");
    assert!(
        result["noticeAfterStop"].is_null(),
        "{}",
        result["noticeAfterStop"]
    );
    let shown: Vec<&str> = finals.iter().map(|f| f["text"].as_str().unwrap()).collect();
    assert_eq!(result["clipboard"], shown.join("\n"));

    // The full server: the page says it tries again, three times, then
    // gives up with the capacity sentence and the numbers from the server.
    let retrying = result["capacityRetryText"].as_str().unwrap();
    assert!(
        retrying.starts_with("The server is at capacity (1 of 1). Trying again in ")
            && retrying.ends_with(" seconds (1 of 3)."),
        "retry message: {retrying:?}"
    );
    assert!(
        result["capacityLastRetryText"]
            .as_str()
            .unwrap()
            .ends_with("(3 of 3)."),
        "{}",
        result["capacityLastRetryText"]
    );
    let capacity = result["capacityText"].as_str().unwrap();
    assert!(
        capacity.starts_with("The server is at capacity (1 of 1). Try again in ")
            && (capacity.ends_with(" seconds.") || capacity.ends_with(" 1 second.")),
        "capacity message: {capacity:?}"
    );

    assert_eq!(result["liveCapture"], "WebCodecs");

    // No WebCodecs: the page says it records with MediaRecorder instead, and
    // the server reads its WebM stream.
    assert_eq!(result["recorderCapture"], "MediaRecorder");
    assert_eq!(
        result["recorderCaptureDetail"],
        "MediaRecorder, WebM Opus stream"
    );
    let recorded = result["recorderFinals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    let error = wer(SENTENCE, &recorded);
    println!("MediaRecorder finals: {recorded:?} (WER {error:.2})");
    assert!(
        error <= MAX_WER,
        "WER {error:.2} through MediaRecorder: {recorded:?}"
    );
    assert_eq!(result["recorderConnectionAfterStop"], "Finished");

    // Neither WebCodecs nor MediaRecorder: a clear message and no Start.
    let unsupported = result["unsupportedText"].as_str().unwrap();
    assert!(unsupported.contains("AudioEncoder"), "{unsupported:?}");
    assert_eq!(result["unsupportedButtonDisabled"], true);

    server.stop().await;
    full.stop().await;
}

/// Chromium and playwright-core, or a panic that says how to get them.
fn browser_tools() -> PathBuf {
    let chromium = std::env::var_os("STENO_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let playwright =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/node_modules/playwright-core");
    let mut missing = Vec::new();
    if !chromium.is_file() {
        missing.push(format!("Chromium ({})", chromium.display()));
    }
    if !playwright.is_dir() {
        missing.push(format!("playwright-core ({})", playwright.display()));
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        missing.push("node".to_string());
    }
    assert!(
        missing.is_empty(),
        "the browser test needs {}: run `make e2e-deps` (or set STENO_SKIP_BROWSER=1 to skip it)",
        missing.join(" and ")
    );
    chromium
}

/// The clip at 48 kHz with 0.6 s of silence before and 8 s after, so the
/// page can see every final and stop before Chromium loops the file.
fn fake_microphone(clip: &Path, path: &Path) -> PathBuf {
    let silence = |ms: u32| vec![0i16; (MIC_RATE_HZ / 1000 * ms) as usize];
    let mut samples = silence(600);
    samples.extend(resampled(
        clip,
        MIC_RATE_HZ,
        &path.with_extension("clip.wav"),
    ));
    samples.extend(silence(8000));
    speech::write_wav(path, &samples, MIC_RATE_HZ);
    path.to_path_buf()
}

/// `clip` at `rate_hz` (sox), read back as 16-bit samples.
fn resampled(clip: &Path, rate_hz: u32, scratch: &Path) -> Vec<i16> {
    let status = std::process::Command::new("sox")
        .arg(clip)
        .args(["-r", &rate_hz.to_string(), "-c", "1", "-b", "16"])
        .arg(scratch)
        .status()
        .expect("sox is installed (scripts/install-deps.sh)");
    assert!(
        status.success(),
        "sox could not resample {}",
        clip.display()
    );
    let reader = hound::WavReader::open(scratch).unwrap();
    assert_eq!(reader.spec().sample_rate, rate_hz);
    reader.into_samples::<i16>().map(Result::unwrap).collect()
}

/// Runs demo.mjs and returns its `E2E_RESULT` object.
async fn run_demo_script(env: &[(&str, String)]) -> serde_json::Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let mut command = tokio::process::Command::new("node");
    command
        .arg("demo.mjs")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::time::timeout(NODE_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("demo.mjs did not finish within {NODE_LIMIT:?}"))
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("demo.mjs stderr:\n{stderr}");
    assert!(
        output.status.success(),
        "demo.mjs failed ({}); screenshots and console.log in target/e2e-artifacts/\n{stdout}",
        output.status
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("E2E_RESULT "))
        .unwrap_or_else(|| panic!("no E2E_RESULT from demo.mjs:\n{stdout}"));
    serde_json::from_str(line).expect("E2E_RESULT is JSON")
}

/// A plain WebSocket client holding a server's only slot: it reads what the
/// server sends and keeps the session alive until released.
struct SlotHolder {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl SlotHolder {
    async fn take(server: &TestServer) -> Self {
        let mut ws = server.connect("").await;
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut keepalive = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = keepalive.tick() => {
                            if ws.keepalive().await.is_err() {
                                panic!("the slot holder lost its session");
                            }
                        }
                        next = ws.next() => match next {
                            Some(Ok(Event::Closed(frame))) => panic!("the slot holder was closed: {frame:?}"),
                            Some(Ok(Event::Message(_))) => {}
                            _ => panic!("the slot holder lost its session"),
                        },
                    }
                }
                ws.close().await;
            }
        });
        Self { stop, task }
    }

    async fn release(self) {
        self.stop.cancel();
        self.task.await.expect("the slot was held throughout");
    }
}
