//! `steno listen FILE --url ...` against the real server and model: a WAV
//! of two espeak-ng sentences in, two timed finals with their words on
//! stdout; a server with a token refuses it without one; a file that is
//! not audio fails before any connection.

mod common;

use std::path::Path;
use std::process::Output;

use common::speech::{espeak, silence, write_wav};
use common::wer::wer;
use common::*;

const FIRST: &str = "Thank you very much for coming to the meeting this afternoon.";
const SECOND: &str = "Please call me back tomorrow morning at the office.";
/// espeak-ng's synthetic voice through tiny.en: a few words may differ.
const MAX_WER: f64 = 0.25;

fn two_sentences(dir: &Path) -> std::path::PathBuf {
    let mut audio = silence(500);
    audio.extend(espeak(FIRST));
    audio.extend(silence(1500));
    audio.extend(espeak(SECOND));
    audio.extend(silence(1500));
    let path = dir.join("two.wav");
    write_wav(&path, &audio, 16_000);
    path
}

async fn steno_listen(args: &[&str]) -> Output {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_steno"))
        .arg("listen")
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env_remove("STENO_TOKEN")
        .output()
        .await
        .expect("steno runs");
    println!(
        "steno listen {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_streamed_in_real_time_prints_one_timed_final_per_sentence() {
    let server = TestServer::start(test_config()).await;
    let dir = temp_dir("listen");
    let wav = two_sentences(&dir);
    let url = server.url("");
    let out = steno_listen(&[wav.to_str().unwrap(), "--url", &url]).await;
    assert!(out.status.success(), "exit status {}", out.status);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let finals: Vec<&str> = stdout.lines().collect();
    assert_eq!(finals.len(), 2, "one line per final: {stdout:?}");
    let text = |line: &str| -> String {
        assert!(
            line.starts_with("[0:0"),
            "a final starts with its times: {line:?}"
        );
        line.split_once("] ")
            .expect("times, then text")
            .1
            .to_string()
    };
    let (w0, w1) = (wer(FIRST, &text(finals[0])), wer(SECOND, &text(finals[1])));
    assert!(
        w0 <= MAX_WER && w1 <= MAX_WER,
        "WER {w0:.2} / {w1:.2} over {MAX_WER}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("2 finals"),
        "a summary at the end: {stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.starts_with("~ ")),
        "partials on stderr: {stderr}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_a_token_needs_it_and_garbage_never_connects() {
    let mut config = test_config();
    config.auth.token = "listen-secret".into();
    let server = TestServer::start(config).await;
    let dir = temp_dir("listen-auth");
    let wav = two_sentences(&dir);
    let url = server.url("");

    let refused = steno_listen(&[wav.to_str().unwrap(), "--url", &url, "--fast"]).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("401"), "the refusal is named: {stderr}");

    let admitted = steno_listen(&[
        wav.to_str().unwrap(),
        "--url",
        &url,
        "--fast",
        "--no-partials",
        "--token",
        "listen-secret",
    ])
    .await;
    assert!(admitted.status.success(), "exit status {}", admitted.status);
    let stdout = String::from_utf8_lossy(&admitted.stdout);
    assert_eq!(stdout.lines().count(), 2, "both finals: {stdout:?}");
    assert!(
        !String::from_utf8_lossy(&admitted.stderr).contains("~ "),
        "no partials asked for"
    );

    let garbage = dir.join("noise.wav");
    std::fs::write(&garbage, b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk").unwrap();
    let bad = steno_listen(&[garbage.to_str().unwrap(), "--url", &url]).await;
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("cannot read") && !stderr.contains("session "),
        "fails on the file, before a session: {stderr}"
    );
    server.stop().await;
}
