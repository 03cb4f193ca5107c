//! Shared helpers for the black-box tests: start the real server with the
//! real model on 127.0.0.1 port 0, make speech, encode it, stream it, score it.
#![allow(dead_code)]

pub mod speech;
pub mod wer;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use steno::config::Config;
use steno::protocol::ServerMessage;
use steno::server::ModelLoader;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The converted tiny.en model; `make model` (run by `make test`) puts it there.
pub fn model_path() -> PathBuf {
    let path = std::env::var_os("STENO_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models/ggml-tiny.en-q8_0.bin"));
    assert!(
        path.is_file(),
        "model {} is missing: run `make model` (make test does it)",
        path.display()
    );
    path
}

/// The shared speech test set beside the checkout, or None (tests then skip
/// with a message).
pub fn shared_speech_dir() -> Option<PathBuf> {
    let dir = repo_root().join("../shared/data/speech");
    if dir.join("manifest.tsv").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} not found; the shared speech set is not beside this checkout",
            dir.display()
        );
        None
    }
}

/// Defaults plus any STENO_* environment overrides (for experiments such as
/// `STENO_MODEL__MIN_AUDIO_CTX=1500 cargo test --test shared_set`).
pub fn test_config() -> Config {
    let mut config = Config::load(None, std::env::vars()).expect("STENO_* overrides are valid");
    config.model.path = model_path();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.web_demo_dir = repo_root().join("web-demo");
    config
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
        let loader = steno::server::whisper_loader(&config);
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
                steno::server::run(listener, config, loader, stop.cancelled_owned())
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
        for _ in 0..600 {
            if let Ok((200, _)) = http_get(self.addr, "/health").await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("server on {} never became healthy", self.addr);
    }

    pub fn url(&self, query: &str) -> String {
        format!(
            "ws://{}/v1/listen{}{}",
            self.addr,
            if query.is_empty() { "" } else { "?" },
            query
        )
    }

    pub async fn connect(&self, query: &str) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(self.url(query))
            .await
            .expect("connect");
        ws
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

/// Minimal HTTP/1.1 GET over loopback: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("timeout"))??;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Everything a client saw on one connection.
#[derive(Debug, Default)]
pub struct Transcript {
    pub messages: Vec<ServerMessage>,
    pub close: Option<CloseFrame>,
}

impl Transcript {
    pub fn finals(&self) -> Vec<(u32, String, u64, u64)> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                ServerMessage::Final {
                    utterance,
                    text,
                    start_ms,
                    end_ms,
                    ..
                } => Some((*utterance, text.clone(), *start_ms, *end_ms)),
                _ => None,
            })
            .collect()
    }

    pub fn final_text(&self) -> String {
        self.finals()
            .into_iter()
            .map(|f| f.1)
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn partials(&self) -> Vec<(u32, String)> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                ServerMessage::Partial {
                    utterance, text, ..
                } => Some((*utterance, text.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn errors(&self) -> Vec<String> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                ServerMessage::Error { code, .. } => Some(code.as_str().to_string()),
                _ => None,
            })
            .collect()
    }

    pub fn close_code(&self) -> Option<u16> {
        self.close.as_ref().map(|c| u16::from(c.code))
    }
}

/// Reads messages until the server closes (or `limit` passes).
pub async fn collect(ws: &mut Ws, limit: Duration) -> Transcript {
    let mut t = Transcript::default();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next()).await;
        match next {
            Err(_) => panic!("no close within {limit:?}; got {:?}", t.messages),
            Ok(None) => return t,
            Ok(Some(Err(_))) => return t,
            Ok(Some(Ok(Message::Text(text)))) => t.messages.push(
                serde_json::from_str(text.as_str())
                    .unwrap_or_else(|e| panic!("bad server JSON {text}: {e}")),
            ),
            Ok(Some(Ok(Message::Close(frame)))) => {
                t.close = frame;
                return t;
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Sends binary messages, paced at `pace` each (zero = as fast as possible).
/// Returns how many were sent before the connection refused one.
pub async fn send_all(ws: &mut Ws, packets: &[Vec<u8>], pace: Duration) -> usize {
    let start = tokio::time::Instant::now();
    for (i, p) in packets.iter().enumerate() {
        if !pace.is_zero() {
            tokio::time::sleep_until(start + pace * i as u32).await;
        }
        if ws.send(Message::binary(p.clone())).await.is_err() {
            return i;
        }
    }
    packets.len()
}

pub async fn send_json(ws: &mut Ws, json: &str) {
    ws.send(Message::text(json.to_string()))
        .await
        .expect("send text");
}

/// Reads the first message and checks it is `ready`.
pub async fn expect_ready(ws: &mut Ws) -> ServerMessage {
    let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("ready in time")
        .expect("a message")
        .expect("no error");
    let Message::Text(text) = m else {
        panic!("expected ready, got {m:?}")
    };
    let m: ServerMessage = serde_json::from_str(text.as_str()).unwrap();
    assert!(
        matches!(m, ServerMessage::Ready { .. }),
        "expected ready, got {m:?}"
    );
    m
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// This process's resident memory, in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// The value of one Prometheus series (`name` or `name{labels}` exactly as
/// rendered); 0 if absent.
pub async fn metric(addr: SocketAddr, series: &str) -> f64 {
    let (status, body) = http_get(addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
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
