//! What the abuse tests measure and how they misbehave: RSS, Prometheus
//! series, `/ready`, and a raw WebSocket client that never reads.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::common::speech::{espeak, silence};
use crate::common::{
    Connector, TestServer, Transcript, collect, opus_packets, rss_kib, send_all, send_json,
};

pub fn speech_packets(sentence: &str) -> Vec<Vec<u8>> {
    let mut audio = silence(300);
    audio.extend(espeak(sentence));
    audio.extend(silence(1200));
    opus_packets(&audio, 20)
}

pub async fn transcribe_once(server: &TestServer, sentence: &str) -> Transcript {
    transcribe_once_at(&server.url("partials=false"), sentence).await
}

/// One whole session: speech, `end`, everything until the close (1000).
pub async fn transcribe_once_at(url: &str, sentence: &str) -> Transcript {
    let mut ws = Connector::new(url).connect().await.unwrap();
    send_all(&mut ws, &speech_packets(sentence), Duration::ZERO).await;
    send_json(&mut ws, r#"{"type":"end"}"#).await;
    let t = collect(&mut ws, Duration::from_secs(60)).await;
    assert_eq!(t.close_code(), Some(1000), "{:?}", t.messages);
    t
}

/// Upgrades a raw TCP connection with a small receive buffer, reads the 101
/// response head and nothing more.
pub async fn raw_websocket(addr: SocketAddr, query: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET /v1/listen?{query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .expect("response head in time")
            .unwrap();
        assert_eq!(n, 1, "connection closed during the upgrade");
        head.push(b[0]);
        assert!(head.len() < 4096, "response head too long");
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// One masked client frame (RFC 6455 5.2), payload under 64 KiB.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n @ 0..=125 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Samples RSS every 50 ms until stopped; returns the peak.
pub struct RssSampler {
    stop: CancellationToken,
    task: JoinHandle<u64>,
}

impl RssSampler {
    pub fn start() -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut peak = rss_kib();
                while !stop.is_cancelled() {
                    peak = peak.max(rss_kib());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                peak
            }
        });
        Self { stop, task }
    }

    pub async fn stop(self) -> u64 {
        self.stop.cancel();
        self.task.await.unwrap()
    }
}
