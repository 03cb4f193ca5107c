//! Calibration with the real model on this machine: `steno calibrate` prints a recommendation with the figures behind it for every worker layout; a server with `admission.max_sessions = "auto"` measures itself at start-up and then enforces exactly the number it found; a bad flag fails before any model work.

mod common;

use std::process::Output;
use std::time::Duration;

use common::*;
use steno_server::admission::SessionLimit;

async fn steno_calibrate(args: &[&str]) -> Output {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_steno"))
        .arg("calibrate")
        .args(args)
        .env("STENO_MODEL__PATH", model_path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
        .expect("steno runs");
    println!(
        "steno calibrate {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The number after `key = ` in `report`.
fn value(report: &str, key: &str) -> usize {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in {report}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calibrate_prints_a_recommendation_and_its_figures() {
    let out = steno_calibrate(&["--mix", "short-turns"]).await;
    assert!(out.status.success(), "exit status {}", out.status);
    let report = String::from_utf8(out.stdout).unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    // Every layout that uses all cores was measured and simulated.
    let layouts = report.lines().filter(|l| l.starts_with("workers ")).count();
    assert_eq!(
        layouts,
        (cores as f64).log2().floor() as usize + 1,
        "{report}"
    );
    assert!(report.contains("one final alone") && report.contains("users  p50"));
    assert!(report.contains("mix: short-turns"), "{report}");
    let (count, threads) = (
        value(&report, "count"),
        value(&report, "threads_per_worker"),
    );
    assert_eq!(count * threads, cores, "the recommendation uses every core");
    let max_sessions = value(&report, "max_sessions");
    assert!((1..=64).contains(&max_sessions), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_fail_before_any_model_work() {
    let out = steno_calibrate(&["--mix", "chatty"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--mix takes conversational or short-turns"),
        "{stderr}"
    );
    let out = steno_calibrate(&["--headroom", "1.5"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--headroom"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_max_sessions_is_measured_at_start_up_and_enforced() {
    let mut config = test_config();
    config.admission.max_sessions = SessionLimit::Auto;
    // Calibration runs before the server answers: allow it time on a busy
    // machine.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let loader = steno_server::server::whisper_loader(&config);
    let task = tokio::spawn(steno_server::server::run(
        listener,
        config,
        loader,
        stop.clone().cancelled_owned(),
    ));
    steno_testkit::server::wait_healthy(addr, Duration::from_secs(300))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let (_, body) = http_get(addr, "/ready").await.unwrap();
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    let capacity = ready["capacity"].as_u64().unwrap() as usize;
    println!("calibrated capacity: {capacity} ({body})");
    assert!((1..=64).contains(&capacity), "{body}");
    assert_eq!(
        metric(addr, "steno_sessions_capacity").await,
        capacity as f64,
        "the capacity gauge says the same"
    );
    // Exactly that many are admitted, and the next one is refused.
    let url = format!("ws://{addr}/v1/listen?encoding=opus");
    let mut open = Vec::new();
    for _ in 0..capacity {
        open.push(
            Connector::new(url.clone())
                .connect()
                .await
                .expect("a session within the calibrated capacity"),
        );
    }
    let Err(err) = Connector::new(url).connect().await else {
        panic!("one more than the capacity is refused");
    };
    assert!(err.to_string().contains("over_capacity"), "{err}");
    drop(open);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
}
