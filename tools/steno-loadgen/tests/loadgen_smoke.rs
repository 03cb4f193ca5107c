//! CI smoke run of the load generator: the real `steno-loadgen` binary
//! starts the real `steno` binary (built beside it) with the real model and
//! runs three talking users and one arrival beyond capacity against it, for
//! about eight seconds. Fails on any error, unexpected close or missing
//! final in its report.

use std::time::Duration;

use steno_testkit::paths::{bin_beside, model_path};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_users_converse_without_errors_and_a_fourth_is_refused() {
    let dir = std::env::temp_dir().join(format!("steno-loadgen-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = dir.join("smoke");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_steno-loadgen"))
        .env("STENO_ADMISSION__MAX_SESSIONS", "3")
        .env("STENO_MODEL__PATH", model_path())
        .arg("run")
        .arg("--spawn-server")
        .arg("--server-bin")
        .arg(bin_beside(env!("CARGO_BIN_EXE_steno-loadgen"), "steno"))
        // espeak-ng sentences only: the shared recordings may be missing.
        .args(["--no-corpus", "--espeak", "4"])
        .args(["--users", "3", "--extra-users", "1", "--duration", "8"])
        .args(["--pause-min", "1", "--pause-max", "2", "--seed", "7"])
        .args(["--max-run-s", "90", "--progress-s", "0"])
        .arg("--out")
        .arg(&prefix)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(150), run)
        .await
        .expect("steno-loadgen finishes within its own hard limit")
        .expect("steno-loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "steno-loadgen failed");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(prefix.with_extension("json")).unwrap())
            .unwrap();
    assert!(
        report["errors_by_code"].as_object().unwrap().is_empty(),
        "errors: {}",
        report["problems"]
    );
    assert_eq!(
        report["unexpected_closes"], 0,
        "unexpected closes: {}",
        report["problems"]
    );
    assert_eq!(report["sessions"]["admitted"], 3, "{}", report["sessions"]);
    assert_eq!(
        report["sessions"]["extra_refused"], 1,
        "the fourth user gets over_capacity: {}",
        report["sessions"]
    );
    let finals = report["utterances"]["with_final"].as_u64().unwrap();
    assert!(finals >= 3, "{}", report["utterances"]);
    assert_eq!(
        report["utterances"]["without_final"], 0,
        "{}",
        report["utterances"]
    );
    assert!(report["ok"].as_bool().unwrap());
    assert!(
        std::fs::metadata(prefix.with_extension("svg"))
            .unwrap()
            .len()
            > 1000
    );
    let _ = std::fs::remove_dir_all(&dir);
}
