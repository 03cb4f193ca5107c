//! Test-only: a WebSocket echo server built like steno's WebSocket layer, for
//! Autobahn's conformance cases (`scripts/autobahn.sh`). Not a steno feature.
//!
//! Autobahn's cases check a server by having it echo every message, which
//! `/v1/listen` does not do. This server keeps everything of steno's stack
//! that the cases can see and swaps only the session's audio pipeline for an
//! echo:
//!
//! - steno's own hyper HTTP/1 connection settings
//!   (`steno_server::server::http_connection`: `header_read_timeout` =
//!   `session.handshake_timeout_s`, upgrades), handshake
//!   (`websocket_accept_key`, `switching_protocols`, `upgrade_required`: no
//!   extensions offered, so no permessage-deflate) and tokio-tungstenite
//!   `WebSocketConfig` (`websocket_config`), with `Config::default()`, so
//!   the production limits apply;
//! - the session's socket pieces from `steno_server::transport::socket`:
//!   `reads` (frames in, read errors mapped to close codes exactly as a
//!   session maps them: too large 1009, invalid UTF-8 1007, protocol error
//!   1002) and `SocketWriter` (every send bounded by
//!   `session.send_timeout_s`, the close frame from `Close`), joined by a
//!   bounded queue of `session.outbound_queue`, a reader and a writer task
//!   as in a session.
//!
//! What it leaves out: the JSON error message steno sends before those close
//! codes (an echo peer must not send unasked messages), auth, admission and
//! everything after the socket.
//!
//! Usage: `cargo run --example autobahn_echo -- [ADDR] [MAX_SECONDS]`
//! (default `127.0.0.1:0`, 900 s). Prints `listening on ADDR` on stdout and
//! exits by itself after MAX_SECONDS.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use steno_protocol::Close;
use steno_server::config::Config;
use steno_server::server::http_connection;
use steno_server::session::SessionConfig;
use steno_server::transport::listen::{switching_protocols, upgrade_required};
use steno_server::transport::socket::{
    Read, SocketWriter, reads, websocket_accept_key, websocket_config,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Hard limit on the server's life, whatever the caller does.
const DEFAULT_MAX_SECONDS: u64 = 900;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .context("ADDR")?;
    anyhow::ensure!(addr.ip().is_loopback(), "listen on loopback only");
    let max_seconds: u64 = match args.next() {
        Some(s) => s.parse().context("MAX_SECONDS")?,
        None => DEFAULT_MAX_SECONDS,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        println!("listening on {}", listener.local_addr()?);
        let session = Config::default().session;
        let serve = async {
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(session.clone(), stream));
            }
        };
        tokio::select! {
            r = serve => r,
            _ = tokio::time::sleep(Duration::from_secs(max_seconds)) => {
                eprintln!("autobahn_echo: {max_seconds} s passed; exiting");
                Ok(())
            }
        }
    })
}

async fn serve_connection(session: SessionConfig, stream: tokio::net::TcpStream) {
    let builder = http_connection(&session);
    let service = hyper::service::service_fn(move |req| {
        let session = session.clone();
        async move { Ok::<_, Infallible>(upgrade(session, req)) }
    });
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

/// `/v1/listen`'s handshake with an echo where the session would be.
fn upgrade(session: SessionConfig, req: Request<Incoming>) -> axum::response::Response {
    let Some(accept) = websocket_accept_key(req.headers()) else {
        return upgrade_required();
    };
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(websocket_config(&session)),
        )
        .await;
        echo(ws, &session).await;
    });
    switching_protocols(accept)
}

/// What the reader hands the writer, as in a session.
enum Outbound {
    Message(Message),
    Close(Close),
}

async fn echo<S>(ws: WebSocketStream<S>, session: &SessionConfig)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Outbound>(session.outbound_queue);
    let mut writer = SocketWriter::new(sink, Duration::from_secs_f32(session.send_timeout_s));
    let writer = tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            match item {
                Outbound::Message(m) => {
                    if writer.send(m).await.is_err() {
                        return;
                    }
                }
                Outbound::Close(close) => {
                    writer.close(close).await;
                    return;
                }
            }
        }
    });
    // Whether the client vanished (no close frame, no protocol error).
    let mut gone = true;
    let mut frames = reads(stream, session.max_message_bytes);
    while let Some(read) = frames.next().await {
        let item = match read {
            Read::Text(t) => Outbound::Message(Message::Text(t)),
            Read::Binary(b) => Outbound::Message(Message::Binary(b)),
            // A session answers a client's close frame with its own close,
            // after whatever it still had to send, and ends.
            Read::Closed => Outbound::Close(Close::ClientClosed),
            Read::Broken { close, .. } => Outbound::Close(close),
        };
        let last = matches!(item, Outbound::Close(_));
        if tx.send(item).await.is_err() {
            break;
        }
        if last {
            gone = false;
            break;
        }
    }
    drop(tx);
    if gone {
        // As a session does: nobody reads what the writer still holds.
        writer.abort();
    }
    let _ = writer.await;
}
