//! Container streams on /v1/listen (`encoding=ogg_opus`, `encoding=webm_opus`): an Ogg Opus file and a live WebM Opus stream made with ffmpeg, sent in 700-byte slices at real-time pace as `MediaRecorder` would, against the real server and model; and garbage in such a stream is reported without losing the speech around it.
//!
//! Needs ffmpeg with libopus (scripts/install-deps.sh).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::speech::{espeak, silence};
use common::wer::wer;
use common::*;
use steno_protocol::ServerMessage;

const FIRST: &str = "Please call me back tomorrow morning at the office.";
const SECOND: &str = "Good morning, this is a test of the speech server.";
const MAX_WER: f64 = 0.25;
const SLICE_BYTES: usize = 700;

/// Two sentences with a pause between them, encoded by ffmpeg as `format`
/// (extra arguments before the output, e.g. WebM's live mode).
fn encoded(dir: &Path, format: &str, extra: &[&str]) -> (Vec<u8>, f64) {
    let mut audio = silence(300);
    audio.extend(espeak(FIRST));
    audio.extend(silence(1200));
    audio.extend(espeak(SECOND));
    audio.extend(silence(1200));
    let seconds = audio.len() as f64 / 16_000.0;
    let wav = dir.join("speech.wav");
    speech::write_wav(&wav, &audio, 16_000);
    let out = dir.join(format!("speech.{format}"));
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&wav)
        .args(["-c:a", "libopus", "-b:a", "32k", "-f", format])
        .args(extra)
        .arg(&out)
        .status()
        .expect("ffmpeg runs (scripts/install-deps.sh)");
    assert!(status.success(), "ffmpeg could not write {format}");
    (std::fs::read(&out).unwrap(), seconds)
}

/// Streams `bytes` in slices at the pace of `seconds` of audio, ends and
/// reads the transcript.
async fn stream(server: &TestServer, encoding: &str, bytes: &[u8], seconds: f64) -> Transcript {
    let mut ws = server
        .connect(&format!("encoding={encoding}&partials=false"))
        .await;
    let slices: Vec<Vec<u8>> = bytes.chunks(SLICE_BYTES).map(<[u8]>::to_vec).collect();
    let pace = Duration::from_secs_f64(seconds / slices.len() as f64);
    send_all(&mut ws, &slices, pace).await;
    ws.end().await.unwrap();
    collect(&mut ws, Duration::from_secs(60)).await
}

fn check_two_sentences(t: &Transcript, what: &str) {
    let finals = t.finals();
    println!("{what}: {finals:?}");
    assert_eq!(finals.len(), 2, "{what}: {:?}", t.messages);
    let (w0, w1) = (wer(FIRST, &finals[0].1), wer(SECOND, &finals[1].1));
    assert!(
        w0 <= MAX_WER && w1 <= MAX_WER,
        "{what}: WER {w0:.2} / {w1:.2}"
    );
    assert!(t.errors().is_empty(), "{what}: {:?}", t.errors());
    assert_eq!(t.close_code(), Some(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ogg_opus_file_in_700_byte_slices() {
    let dir = temp_dir("ogg");
    let (bytes, seconds) = encoded(&dir, "ogg", &[]);
    let server = TestServer::start(test_config()).await;
    let t = stream(&server, "ogg_opus", &bytes, seconds).await;
    check_two_sentences(&t, "ogg_opus");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_webm_opus_stream_in_700_byte_slices() {
    let dir = temp_dir("webm");
    // -live 1: unknown-size segment and clusters, as MediaRecorder writes.
    let (bytes, seconds) = encoded(&dir, "webm", &["-live", "1"]);
    let server = TestServer::start(test_config()).await;
    let t = stream(&server, "webm_opus", &bytes, seconds).await;
    check_two_sentences(&t, "webm_opus");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_inside_an_ogg_stream_is_reported_and_the_speech_goes_on() {
    let dir = temp_dir("ogg-garbage");
    let (mut bytes, seconds) = encoded(&dir, "ogg", &[]);
    // Garbage between two pages in the pause between the sentences.
    let pause = bytes.len() * 45 / 100;
    let page = pause
        + bytes[pause..]
            .windows(4)
            .position(|w| w == b"OggS")
            .expect("a page after the middle");
    bytes.splice(page..page, b"this is not an Ogg page".iter().copied());
    let server = TestServer::start(test_config()).await;
    let t = stream(&server, "ogg_opus", &bytes, seconds).await;
    let errors: Vec<_> = t
        .messages
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Error { code, message, .. } => Some((code.as_str(), message.as_str())),
            _ => None,
        })
        .collect();
    println!("errors: {errors:?}; finals: {:?}", t.finals());
    assert_eq!(errors.len(), 1, "{:?}", t.messages);
    assert_eq!(errors[0].0, "bad_audio");
    assert!(
        errors[0].1 == "audio skipped: not an Ogg page: 23 bytes skipped to the next page",
        "{errors:?}"
    );
    let text = t.final_text();
    assert!(
        wer(&format!("{FIRST} {SECOND}"), &text) <= MAX_WER,
        "{text}"
    );
    server.stop().await;
}
