//! Shared helpers for the black-box tests: start the real server with the
//! real model in this process on 127.0.0.1 port 0, and talk to it with
//! steno's one client (`steno_client`). Speech, packets, WER, HTTP and
//! metrics come from `steno_testkit`.
#![allow(dead_code, unused_imports)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
pub use steno_client::{ConnectError, Connector, Session, Transcript};
use steno_server::config::Config;
use steno_server::server::ModelLoader;
pub use steno_testkit::http::get as http_get;
pub use steno_testkit::packets::{opus_packets, pcm_chunks};
pub use steno_testkit::paths::{model_path, path_str, repo_root, shared_speech_dir};
pub use steno_testkit::process::self_rss_kib as rss_kib;
pub use steno_testkit::prometheus::metric;
pub use steno_testkit::{speech, wer};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Defaults plus any STENO_* environment overrides (for experiments such as
/// `STENO_MODEL__MIN_AUDIO_CTX=1500 cargo test --test shared_set`).
pub fn test_config() -> Config {
    let mut config = Config::load(None, std::env::vars()).expect("STENO_* overrides are valid");
    config.model.path = model_path();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.web_demo_dir = repo_root().join("web-demo");
    config.files.spool_dir = temp_dir("spool");
    config
}

/// A fresh folder under the system's temp dir, for this test process.
pub fn temp_dir(what: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("steno-test-{}-{what}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A real steno server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// The server with the configured Whisper model.
    pub async fn start(config: Config) -> Self {
        let loader = steno_server::server::whisper_loader(&config);
        Self::start_with_loader(config, loader).await
    }

    /// The server with the model `loader` builds (a test's own
    /// `TranscriberFactory`, e.g. one that injects faults).
    pub async fn start_with_loader(config: Config, loader: ModelLoader) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                steno_server::server::run(listener, config, loader, stop.cancelled_owned())
                    .await
                    .expect("server failed");
            }
        });
        let server = Self {
            addr,
            stop,
            task: Some(task),
        };
        server.wait_healthy().await;
        server
    }

    pub async fn wait_healthy(&self) {
        steno_testkit::server::wait_healthy(self.addr, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    pub fn url(&self, query: &str) -> String {
        format!(
            "ws://{}/v1/listen{}{}",
            self.addr,
            if query.is_empty() { "" } else { "?" },
            query
        )
    }

    pub fn connector(&self, query: &str) -> Connector {
        Connector::new(self.url(query))
    }

    /// A session that got `ready` (panics otherwise).
    pub async fn connect(&self, query: &str) -> Session {
        self.connector(query)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url(query)))
    }

    /// Graceful shutdown; waits for the drain.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("server stops within 60 s")
                .unwrap();
        }
    }

    pub fn begin_shutdown(&self) {
        self.stop.cancel();
    }

    pub async fn join(mut self) {
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("server stops")
                .unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Reads until the server closes; panics after `limit`.
pub async fn collect(ws: &mut Session, limit: Duration) -> Transcript {
    ws.collect(limit)
        .await
        .unwrap_or_else(|e| panic!("no close within {limit:?}: {e}"))
}

/// Sends binary messages, paced at `pace` each (zero = as fast as possible).
/// Returns how many were sent before the connection refused one.
pub async fn send_all(ws: &mut Session, packets: &[Vec<u8>], pace: Duration) -> usize {
    let start = tokio::time::Instant::now();
    for (i, p) in packets.iter().enumerate() {
        if !pace.is_zero() {
            tokio::time::sleep_until(start + pace * i as u32).await;
        }
        if ws.send_audio(p.clone()).await.is_err() {
            return i;
        }
    }
    packets.len()
}

/// Sends a text message as is (control messages, or deliberately bad ones).
pub async fn send_json(ws: &mut Session, json: &str) {
    ws.socket()
        .send(Message::text(json.to_string()))
        .await
        .expect("send text");
}

/// Polls `/ready` until it reports `sessions` open sessions; false on timeout.
pub async fn wait_sessions(addr: SocketAddr, sessions: u64, limit: Duration) -> bool {
    wait_until_async(limit, || async move {
        let Ok((_, body)) = http_get(addr, "/ready").await else {
            return false;
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["sessions"].as_u64() == Some(sessions)
    })
    .await
}

pub async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    wait_until_async(limit, || std::future::ready(condition())).await
}

pub async fn wait_until_async<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The python of the pinned openai SDK's venv, installed first if need be
/// (scripts/install-openai-sdk.sh).
pub fn openai_sdk_python() -> String {
    let install = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/install-openai-sdk.sh"))
        .output()
        .expect("bash runs");
    assert!(
        install.status.success(),
        "installing the openai SDK failed: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    String::from_utf8(install.stdout)
        .unwrap()
        .trim()
        .to_string()
}

/// Runs `script` (under tests/) with the openai SDK's python and `args`;
/// it must exit 0 within `limit`. Returns the JSON on its stdout line
/// that starts with `marker`.
pub async fn run_sdk_script<S: AsRef<std::ffi::OsStr>>(
    script: &str,
    args: &[S],
    marker: &str,
    limit: Duration,
) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let run = tokio::process::Command::new(openai_sdk_python())
        .arg(&script)
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(limit, run)
        .await
        .unwrap_or_else(|_| panic!("{} finishes within {limit:?}", script.display()))
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{} {:?} failed:\n{stdout}\n{}",
        script.display(),
        args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(marker))
        .unwrap_or_else(|| panic!("no {marker:?} line in:\n{stdout}"));
    serde_json::from_str(line).unwrap()
}
