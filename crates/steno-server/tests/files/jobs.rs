//! Durable jobs: submitted, polled and read in every format; cancelled; and
//! a server killed with SIGKILL in the middle of one, restarted on the same
//! spool, finishing it with the same result as an uninterrupted run.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use steno_testkit::http::{Part, post_multipart, request};
use steno_testkit::server::{ServerCommand, ServerProcess};

use crate::audio::{Clips, parse_srt};
use crate::common::*;

/// Submits `file` as a job; the 202's job.
pub async fn submit(addr: SocketAddr, file: &Path, fields: &[(&str, &str)]) -> serde_json::Value {
    let bytes = std::fs::read(file).unwrap();
    let name = file.file_name().unwrap().to_str().unwrap().to_string();
    let mut parts = vec![Part::file("file", &name, &bytes)];
    parts.extend(fields.iter().map(|(k, v)| Part::text(k, v)));
    let r = post_multipart(addr, "/v1/jobs", &[], &parts).await.unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let job = r.json().unwrap();
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/jobs/{}", job["id"].as_str().unwrap()).as_str())
    );
    job
}

pub async fn status(addr: SocketAddr, id: &str) -> serde_json::Value {
    let (code, body) = http_get(addr, &format!("/v1/jobs/{id}")).await.unwrap();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Polls until the job has ended; its last status.
pub async fn wait_done(addr: SocketAddr, id: &str, limit: Duration) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let s = status(addr, id).await;
        if ["done", "failed", "cancelled"].contains(&s["status"].as_str().unwrap()) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} not done within {limit:?}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The clips said `times` times over: long enough to be caught midway.
fn long_file(clips: &Clips, times: usize, path: &Path) -> std::path::PathBuf {
    let one = clips.write_wav(&path.with_extension("one.wav"));
    let mut args: Vec<std::path::PathBuf> = vec![one.clone(); times];
    args.push(path.to_path_buf());
    let status = std::process::Command::new("sox")
        .args(&args)
        .status()
        .expect("sox is installed");
    assert!(status.success());
    path.to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_and_its_result_comes_in_every_format() {
    let Some(clips) = Clips::load() else {
        return;
    };
    let mut config = test_config();
    config.server.instance_id = "s7".into();
    let server = TestServer::start(config).await;
    let wav = clips.write_wav(&temp_dir("job").join("speech.wav"));
    let job = submit(
        server.addr,
        &wav,
        &[
            ("response_format", "verbose_json"),
            ("timestamp_granularities[]", "word"),
        ],
    )
    .await;
    let id = job["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("s7-") && id.len() == 3 + 32, "{id}");
    assert_eq!(job["status"], "queued");
    let done = wait_done(server.addr, &id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["progress"]["percent"], 100.0, "{done}");
    assert_eq!(done["result_url"], format!("/v1/jobs/{id}/result"));

    let (code, body) = http_get(server.addr, &format!("/v1/jobs/{id}/result"))
        .await
        .unwrap();
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    clips.check_words(v["words"].as_array().unwrap());
    let (_, srt) = http_get(server.addr, &format!("/v1/jobs/{id}/result?format=srt"))
        .await
        .unwrap();
    clips.check("job srt", &parse_srt(&srt));
    let (code, _) = http_get(server.addr, &format!("/v1/jobs/{id}/result?format=doc"))
        .await
        .unwrap();
    assert_eq!(code, 400);

    let (_, list) = http_get(server.addr, "/v1/jobs").await.unwrap();
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == id.as_str())
    );
    let (code, _) = http_get(server.addr, "/v1/jobs/s7-nosuchjob")
        .await
        .unwrap();
    assert_eq!(code, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_stops_and_has_no_result() {
    let Some(clips) = Clips::load() else {
        return;
    };
    let server = TestServer::start(test_config()).await;
    let dir = temp_dir("cancel");
    let file = long_file(&clips, 8, &dir.join("long.wav"));
    let id = submit(server.addr, &file, &[]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = request(server.addr, "DELETE", &format!("/v1/jobs/{id}"), &[], &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().unwrap()["status"], "cancelled");
    let s = wait_done(server.addr, &id, Duration::from_secs(30)).await;
    assert_eq!(s["status"], "cancelled");
    let (code, body) = http_get(server.addr, &format!("/v1/jobs/{id}/result"))
        .await
        .unwrap();
    assert_eq!(code, 409, "{body}");
    server.stop().await;
}

fn steno(spool: &Path) -> ServerCommand {
    ServerCommand::new(env!("CARGO_BIN_EXE_steno"))
        .env("STENO_MODEL__PATH", path_str(&model_path()))
        .env("STENO_FILES__SPOOL_DIR", path_str(spool))
        .env("STENO_SERVER__INSTANCE_ID", "k1")
        .env("STENO_WORKERS__COUNT", 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_survives_sigkill_and_resumes_from_its_last_window() {
    let Some(clips) = Clips::load() else {
        return;
    };
    let dir = temp_dir("sigkill");
    let spool = dir.join("spool");
    let file = long_file(&clips, 6, &dir.join("long.wav"));
    let server = ServerProcess::start(
        &steno(&spool).log(dir.join("first.log")),
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    let id = submit(server.addr, &file, &[("response_format", "text")]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Killed once some windows are done and some are not.
    let deadline = Instant::now() + Duration::from_secs(120);
    let done_before = loop {
        let s = status(server.addr, &id).await;
        let done = s["progress"]["audio_s_done"].as_f64().unwrap_or(0.0);
        let total = s["progress"]["audio_s_total"].as_f64().unwrap_or(f64::MAX);
        assert_ne!(
            s["status"], "done",
            "the job finished before it could be killed: {s}"
        );
        if done > 0.0 && done < total * 0.7 {
            break done;
        }
        assert!(Instant::now() < deadline, "no progress: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    server.kill();
    let windows_kept = std::fs::read_dir(spool.join("jobs").join(&id).join("windows"))
        .unwrap()
        .count();
    assert!(windows_kept >= 1, "finished windows are on disk");

    let server = ServerProcess::start(
        &steno(&spool).log(dir.join("second.log")),
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    let s = wait_done(server.addr, &id, Duration::from_secs(180)).await;
    assert_eq!(s["status"], "done", "{s}");
    let (_, resumed) = http_get(server.addr, &format!("/v1/jobs/{id}/result"))
        .await
        .unwrap();
    let redone_s = steno_testkit::prometheus::metric(
        server.addr,
        r#"steno_audio_transcribed_seconds_total{kind="batch"}"#,
    )
    .await;
    // The same file once more, uninterrupted, on the same server.
    let again = submit(server.addr, &file, &[("response_format", "text")]).await;
    let again_id = again["id"].as_str().unwrap();
    assert_eq!(
        wait_done(server.addr, again_id, Duration::from_secs(180)).await["status"],
        "done"
    );
    let (_, reference) = http_get(server.addr, &format!("/v1/jobs/{again_id}/result"))
        .await
        .unwrap();
    let whole_s = steno_testkit::prometheus::metric(
        server.addr,
        r#"steno_audio_transcribed_seconds_total{kind="batch"}"#,
    )
    .await
        - redone_s;
    println!(
        "killed after {done_before:.1} s of the file ({windows_kept} windows on disk); \
         the restart transcribed {redone_s:.0} s of windows, a whole run {whole_s:.0} s"
    );
    assert_eq!(
        resumed, reference,
        "the resumed job gives the uninterrupted run's result"
    );
    assert!(
        redone_s < whole_s,
        "the restart skipped the finished windows ({redone_s} s vs {whole_s} s)"
    );
    server.stop(Duration::from_secs(30)).await.unwrap();
}
