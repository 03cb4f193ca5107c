//! The OpenAI Realtime door (`/v1/realtime?intent=transcription`) with the official openai Python SDK's realtime client (pinned, scripts/install-openai-sdk.sh) against the real server and model: server VAD on 24 kHz PCM, manual commits, and the over-capacity refusal.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;
use steno_server::admission::SessionLimit;

use common::speech::espeak_at;
use common::wer::wer;
use common::*;
use serde_json::Value;

const FIRST: &str = "Please call me back tomorrow morning at the office.";
const SECOND: &str = "Good morning, this is a test of the speech server.";
/// Words espeak says and the model hears (measured: 0 to 0.1 over ten runs).
const MAX_WER: f64 = 0.25;
const TOKEN: &str = "realtime-test-token";
const RATE_HZ: u32 = 24_000;

fn silence_24k(ms: usize) -> Vec<i16> {
    vec![0; ms * RATE_HZ as usize / 1000]
}

/// `samples` as raw 24 kHz PCM in `dir`.
fn write_pcm(dir: &Path, name: &str, samples: &[i16]) -> PathBuf {
    let path = dir.join(name);
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

async fn server(max_sessions: usize) -> TestServer {
    let mut config = test_config();
    config.auth.token = TOKEN.into();
    config.admission.max_sessions = SessionLimit::Fixed(max_sessions);
    TestServer::start(config).await
}

/// Runs the SDK script in `mode`; its RESULT line.
async fn run_sdk(mode: &str, server: &TestServer, files: &[PathBuf]) -> Value {
    let mut args = vec![
        mode.to_string(),
        format!("http://{}/v1", server.addr),
        TOKEN.to_string(),
    ];
    args.extend(files.iter().map(|f| path_str(f)));
    run_sdk_script(
        "realtime/openai_realtime.py",
        &args,
        "RESULT ",
        Duration::from_secs(240),
    )
    .await
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn check_text(what: &str, expected: &str, got: &Value) {
    let got = got.as_str().unwrap_or_default();
    let w = wer(expected, got);
    println!("{what}: {got:?} (WER {w:.2})");
    assert!(
        w <= MAX_WER,
        "{what}: {got:?} against {expected:?}: WER {w:.2}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_transcribes_two_sentences_with_server_vad() {
    let server = server(4).await;
    let dir = temp_dir("realtime-vad");
    let mut audio = silence_24k(400);
    audio.extend(espeak_at(FIRST, RATE_HZ));
    audio.extend(silence_24k(1500));
    audio.extend(espeak_at(SECOND, RATE_HZ));
    audio.extend(silence_24k(1500));
    let pcm = write_pcm(&dir, "two.pcm", &audio);
    let v = run_sdk("vad", &server, &[pcm]).await;

    assert_eq!(v["created"]["session"]["type"], "transcription");
    let td = &v["updated"]["session"]["audio"]["input"]["turn_detection"];
    assert_eq!(td["silence_duration_ms"], 500, "the update applied: {td}");
    let events = v["events"].as_array().unwrap();
    let completed = of_type(
        events,
        "conversation.item.input_audio_transcription.completed",
    );
    assert_eq!(completed.len(), 2, "two items");
    check_text("first", FIRST, &completed[0]["transcript"]);
    check_text("second", SECOND, &completed[1]["transcript"]);
    assert!(
        !of_type(events, "conversation.item.input_audio_transcription.delta").is_empty(),
        "deltas come before the transcript"
    );
    // Per item: started, stopped, committed, completed, in that order, with
    // audio times where the speech was.
    let audio_ms = (audio.len() / 24) as u64;
    let mut previous: Option<String> = None;
    for done in &completed {
        let item = done["item_id"].as_str().unwrap();
        let at = |kind: &str| {
            events
                .iter()
                .position(|e| e["type"] == kind && e["item_id"] == item)
                .unwrap_or_else(|| panic!("no {kind} for {item}"))
        };
        let (started, stopped, committed) = (
            at("input_audio_buffer.speech_started"),
            at("input_audio_buffer.speech_stopped"),
            at("input_audio_buffer.committed"),
        );
        let finished = at("conversation.item.input_audio_transcription.completed");
        assert!(started < stopped && stopped < committed && committed < finished);
        let start_ms = events[started]["audio_start_ms"].as_u64().unwrap();
        let end_ms = events[stopped]["audio_end_ms"].as_u64().unwrap();
        assert!(
            start_ms + 1000 < end_ms && end_ms <= audio_ms,
            "{start_ms}..{end_ms}"
        );
        assert_eq!(
            events[committed]["previous_item_id"].as_str(),
            previous.as_deref()
        );
        previous = Some(item.to_string());
        let deltas: String = events
            .iter()
            .filter(|e| {
                e["type"] == "conversation.item.input_audio_transcription.delta"
                    && e["item_id"] == item
            })
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        println!("{item}: speech {start_ms}..{end_ms} ms, deltas {deltas:?}");
        for d in events
            .iter()
            .filter(|e| e["type"] == "conversation.item.input_audio_transcription.delta")
        {
            let i = events.iter().position(|e| e == d).unwrap();
            if d["item_id"] == item {
                assert!(
                    started < i && i < finished,
                    "deltas of {item} come while it is open"
                );
            }
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_commits_by_hand() {
    let server = server(4).await;
    let dir = temp_dir("realtime-manual");
    let first = write_pcm(&dir, "first.pcm", &espeak_at(FIRST, RATE_HZ));
    let cleared = write_pcm(
        &dir,
        "cleared.pcm",
        &espeak_at("Elephants are grey.", RATE_HZ),
    );
    let second = write_pcm(&dir, "second.pcm", &espeak_at(SECOND, RATE_HZ));
    let v = run_sdk("manual", &server, &[first, cleared, second]).await;

    assert!(v["updated"]["session"]["audio"]["input"]["turn_detection"].is_null());
    assert_eq!(
        v["empty"]["error"]["code"],
        "input_audio_buffer_commit_empty"
    );
    assert_eq!(v["empty"]["error"]["event_id"], "too_small");
    let completed = v["completed"].as_array().unwrap();
    assert_eq!(completed.len(), 2);
    assert!(
        completed
            .iter()
            .all(|c| c["type"] == "conversation.item.input_audio_transcription.completed")
    );
    check_text("first commit", FIRST, &completed[0]["transcript"]);
    check_text("second commit", SECOND, &completed[1]["transcript"]);
    let events = v["events"].as_array().unwrap();
    assert!(
        of_type(events, "input_audio_buffer.speech_started").is_empty(),
        "no VAD events without turn detection"
    );
    let all: String = of_type(
        events,
        "conversation.item.input_audio_transcription.completed",
    )
    .iter()
    .map(|c| c["transcript"].as_str().unwrap().to_lowercase())
    .collect();
    assert!(
        !all.contains("elephant"),
        "cleared audio was transcribed: {all}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_answers_the_sdk_with_an_error_and_1013() {
    let server = server(1).await;
    let mut holder = server.connect(&format!("token={TOKEN}")).await;
    let v = run_sdk("full", &server, &[]).await;
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let error = &events[0]["error"];
    assert_eq!(events[0]["type"], "error");
    assert_eq!(error["code"], "over_capacity");
    assert_eq!(error["type"], "server_error");
    assert!(
        error["message"].as_str().unwrap().contains("capacity"),
        "{error}"
    );
    assert!(error["retry_after_s"].as_u64().is_some(), "{error}");
    assert_eq!(v["close"]["code"], 1013);
    holder.end().await.unwrap();
    server.stop().await;
}
