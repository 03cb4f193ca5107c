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
    let mut config = test_config();
    config.auth.token = "sdk-test-token".into();
    let server = TestServer::start(config).await;
    let wav = clips.write_wav(&temp_dir("sdk").join("speech.wav"));
    let url = format!("http://{}/v1", server.addr);
    let args = [url, "sdk-test-token".to_string(), path_str(&wav)];
    let v = run_sdk_script(
        "files/openai_client.py",
        &args,
        "SDK_RESULT ",
        Duration::from_secs(300),
    )
    .await;
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
