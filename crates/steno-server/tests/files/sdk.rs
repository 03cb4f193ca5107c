//! The official openai Python SDK (pinned, installed by
//! scripts/install-openai-sdk.sh) against the real server: what its users
//! get back from json, verbose_json with words, srt and the event stream.

use std::time::Duration;

use crate::audio::{Clips, parse_srt};
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_sdk_gets_what_it_expects() {
    let Some(clips) = Clips::load() else {
        return;
    };
    let install = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/install-openai-sdk.sh"))
        .output()
        .expect("bash runs");
    assert!(
        install.status.success(),
        "installing the openai SDK failed: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    let python = String::from_utf8(install.stdout)
        .unwrap()
        .trim()
        .to_string();
    let mut config = test_config();
    config.auth.token = "sdk-test-token".into();
    let server = TestServer::start(config).await;
    let wav = clips.write_wav(&temp_dir("sdk").join("speech.wav"));
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/files/openai_client.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(format!("http://{}/v1", server.addr))
        .arg("sdk-test-token")
        .arg(&wav)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the SDK script finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the SDK script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SDK_RESULT "))
        .expect("SDK_RESULT");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    clips.check_text("sdk json", v["json"].as_str().unwrap());
    let verbose = &v["verbose"];
    clips.check_text("sdk verbose_json", verbose["text"].as_str().unwrap());
    assert_eq!(verbose["language"], "english");
    assert!(!verbose["segments"].as_array().unwrap().is_empty());
    clips.check_words(verbose["words"].as_array().unwrap());
    clips.check("sdk srt", &parse_srt(v["srt"].as_str().unwrap()));
    clips.check_stream("sdk stream", v["stream"].as_array().unwrap());
    assert_eq!(v["wrong_key"], "AuthenticationError");
    server.stop().await;
}
