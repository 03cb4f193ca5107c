//! File transcription end to end: the real server and model, files of every
//! format steno reads (made in the test with ffmpeg from the shared
//! recordings), OpenAI's endpoint through curl-like multipart and through
//! the official Python SDK, durable jobs (including a SIGKILL in the middle
//! of one), and every refusal: 429, 413, 415, 400 and 401.
//!
//! Needs ffmpeg (scripts/install-deps.sh) and `../shared/data/speech`
//! (SKIPPED without it).

#[path = "files/audio.rs"]
mod audio;
mod common;
#[path = "files/jobs.rs"]
mod jobs;
#[path = "files/refusals.rs"]
mod refusals;
#[path = "files/sdk.rs"]
mod sdk;

use std::time::Duration;

use audio::{Clips, FORMATS, convert};
use common::*;
use steno_testkit::http::{Part, post_multipart};

/// Every format, synchronously: the words and the cue times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_is_transcribed_with_its_times() {
    let Some(clips) = Clips::load() else {
        return;
    };
    let server = TestServer::start(test_config()).await;
    let dir = temp_dir("formats");
    let wav = clips.write_wav(&dir.join("speech.wav"));
    for format in FORMATS {
        let file = convert(&wav, &dir, format);
        let bytes = std::fs::read(&file).unwrap();
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        let r = post_multipart(
            server.addr,
            "/v1/audio/transcriptions",
            &[],
            &[
                Part::file("file", &name, &bytes),
                Part::text("model", "whisper-1"),
                Part::text("response_format", "srt"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{}: {}", format.name, r.text());
        assert!(
            r.header("content-type").unwrap().contains("subrip"),
            "{:?}",
            r.headers
        );
        let cues = audio::parse_srt(&r.text());
        clips.check(format.name, &cues);
    }
    server.stop().await;
}

/// `json`, `text`, `vtt`, `verbose_json` with words, and the event stream,
/// as curl would send them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_formats_and_the_event_stream() {
    let Some(clips) = Clips::load() else {
        return;
    };
    let server = TestServer::start(test_config()).await;
    let dir = temp_dir("response-formats");
    let wav = clips.write_wav(&dir.join("speech.wav"));
    let bytes = std::fs::read(&wav).unwrap();
    let post = |fields: Vec<Part<'static>>| {
        let bytes = bytes.clone();
        let addr = server.addr;
        async move {
            let mut parts = vec![Part::file("file", "speech.wav", &bytes)];
            parts.extend(fields);
            post_multipart(addr, "/v1/audio/transcriptions", &[], &parts)
                .await
                .unwrap()
        }
    };
    let r = post(vec![Part::text("model", "whisper-1")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().unwrap();
    clips.check_text("json", v["text"].as_str().unwrap());

    let r = post(vec![Part::text("response_format", "text")]).await;
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    clips.check_text("text", &r.text());

    let r = post(vec![Part::text("response_format", "vtt")]).await;
    let body = r.text();
    assert!(body.starts_with("WEBVTT\n\n"), "{body}");
    clips.check("vtt", &audio::parse_srt(&body.replace('.', ",")));

    let r = post(vec![
        Part::text("response_format", "verbose_json"),
        Part::text("timestamp_granularities[]", "word"),
    ])
    .await;
    let v = r.json().unwrap();
    assert_eq!(v["task"], "transcribe");
    assert_eq!(v["language"], "english");
    assert!(
        (v["duration"].as_f64().unwrap() - clips.duration_s()).abs() < 0.1,
        "{v}"
    );
    let words = v["words"]
        .as_array()
        .expect("words with timestamp_granularities[]=word");
    clips.check_words(words);

    // Streaming: deltas, then the whole text.
    let r = post(vec![Part::text("stream", "true")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events: Vec<serde_json::Value> = r
        .text()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    clips.check_stream("stream", &events);

    let (status, body) = http_get(server.addr, "/v1/models").await.unwrap();
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"][0]["id"], "tiny.en-q8_0");
    server.stop().await;
    let _ = Duration::ZERO;
}
