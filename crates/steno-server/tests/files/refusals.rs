//! Every way a file request is refused, each with its status and a JSON
//! error in OpenAI's shape: a full job queue and too many requests (429
//! with Retry-After), too large (413), not a format steno reads (415),
//! damaged, empty or malformed (400), and no token (401).

use std::time::Duration;

use steno_testkit::http::{Part, Response, post_multipart, request};

use crate::audio::Clips;
use crate::common::*;
use crate::jobs::submit;

fn assert_error(r: &Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r
        .json()
        .unwrap_or_else(|_| panic!("a JSON error body: {}", r.text()));
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(!v["error"]["message"].as_str().unwrap().is_empty());
}

async fn post_file(
    server: &TestServer,
    path: &str,
    name: &str,
    bytes: &[u8],
    fields: &[(&str, &str)],
) -> Response {
    let mut parts = vec![Part::file("file", name, bytes)];
    parts.extend(fields.iter().map(|(k, v)| Part::text(k, v)));
    post_multipart(server.addr, path, &[], &parts)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_get_400_415_and_413() {
    let Some(clips) = Clips::load() else {
        return;
    };
    let mut config = test_config();
    config.files.max_upload_bytes = 400_000;
    let server = TestServer::start(config).await;
    let dir = temp_dir("bad-uploads");
    let wav = std::fs::read(clips.write_wav(&dir.join("speech.wav"))).unwrap();
    assert!(wav.len() > 400_000);
    for path in ["/v1/audio/transcriptions", "/v1/jobs"] {
        let r = post_file(&server, path, "speech.wav", &wav, &[]).await;
        assert_error(&r, 413, "message_too_large");
        let noise: Vec<u8> = (0..50_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let r = post_file(&server, path, "noise.mp3", &noise, &[]).await;
        assert_error(&r, 415, "bad_audio");
        let r = post_file(&server, path, "cut.wav", &wav[..30], &[]).await;
        assert_error(&r, 400, "bad_audio");
        let r = post_file(&server, path, "empty.wav", &[], &[]).await;
        assert_error(&r, 400, "bad_request");
        let small = &wav[..200_000];
        let r = post_file(
            &server,
            path,
            "speech.wav",
            small,
            &[("response_format", "docx")],
        )
        .await;
        assert_error(&r, 400, "bad_request");
        let r = post_file(&server, path, "speech.wav", small, &[("language", "fr")]).await;
        assert_error(&r, 400, "bad_request");
        let r = post_multipart(server.addr, path, &[], &[Part::text("model", "whisper-1")])
            .await
            .unwrap();
        assert_error(&r, 400, "bad_request");
        let r = request(
            server.addr,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            b"{}",
        )
        .await
        .unwrap();
        assert_error(&r, 400, "bad_request");
    }
    let (status, _) = http_get(server.addr, "/health").await.unwrap();
    assert_eq!(status, 200, "the server is unharmed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_answers_429_with_retry_after() {
    let Some(clips) = Clips::load() else {
        return;
    };
    let mut config = test_config();
    config.files.max_queued_jobs = 1;
    config.files.max_sync_requests = 1;
    config.files.retry_after_s = 17;
    config.workers.count = 1;
    let server = TestServer::start(config).await;
    let dir = temp_dir("full");
    let wav_path = clips.write_wav(&dir.join("speech.wav"));
    let wav = std::fs::read(&wav_path).unwrap();

    // A load balancer's check for new file work: room now.
    let (code, body) = http_get(server.addr, "/ready/jobs").await.unwrap();
    assert_eq!(
        (code, body.as_str()),
        (200, r#"{"ready":true,"reason":null}"#)
    );

    // One job fills the queue; the next is refused, not queued.
    let first = submit(server.addr, &wav_path, &[]).await;
    let r = post_file(&server, "/v1/jobs", "speech.wav", &wav, &[]).await;
    assert_error(&r, 429, "over_capacity");
    assert_eq!(r.header("retry-after"), Some("17"));
    let (code, body) = http_get(server.addr, "/ready/jobs").await.unwrap();
    assert_eq!(
        (code, body.as_str()),
        (503, r#"{"ready":false,"reason":"queue_full"}"#)
    );

    // One synchronous request at a time: of two sent together, whichever
    // the server reads first runs (seconds of inference) and the other is
    // refused at once, before its body is read.
    let send = |name: &'static str| {
        let (addr, wav) = (server.addr, wav.clone());
        async move {
            post_multipart(
                addr,
                "/v1/audio/transcriptions",
                &[],
                &[Part::file("file", name, &wav)],
            )
            .await
            .unwrap()
        }
    };
    let (a, b) = tokio::join!(send("a.wav"), send("b.wav"));
    let (ran, refused) = if a.status == 429 { (b, a) } else { (a, b) };
    assert_eq!(ran.status, 200, "{}", ran.text());
    assert_error(&refused, 429, "over_capacity");
    assert_eq!(refused.header("retry-after"), Some("17"));
    let id = first["id"].as_str().unwrap();
    crate::jobs::wait_done(server.addr, id, Duration::from_secs(120)).await;
    let (code, _) = http_get(server.addr, "/ready/jobs").await.unwrap();
    assert_eq!(code, 200, "room again once the job is done");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_routes_take_the_same_token_as_sessions() {
    let mut config = test_config();
    config.auth.token = "files-token".into();
    let server = TestServer::start(config).await;
    let parts = [Part::file("file", "a.wav", b"RIFF")];
    for path in ["/v1/audio/transcriptions", "/v1/jobs"] {
        let r = post_multipart(server.addr, path, &[], &parts)
            .await
            .unwrap();
        assert_error(&r, 401, "unauthorized");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    for path in ["/v1/jobs", "/v1/models", "/v1/jobs/x", "/v1/sessions"] {
        let (status, _) = http_get(server.addr, path).await.unwrap();
        assert_eq!(status, 401, "{path}");
    }
    let r = request(
        server.addr,
        "GET",
        "/v1/models",
        &[("Authorization", "Bearer files-token")],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    server.stop().await;
}
