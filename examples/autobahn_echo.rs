//! Test-only: a WebSocket echo server built like steno's WebSocket layer, for
//! Autobahn's conformance cases (`scripts/autobahn.sh`). Not a steno feature.
//!
//! Autobahn's cases check a server by having it echo every message, which
//! `/v1/listen` does not do. This server keeps everything of steno's stack
//! that the cases can see and swaps only the session's audio pipeline for an
//! echo:
//!
//! - steno's own hyper HTTP/1 connection settings
//!   (`steno::server::http_connection`: `header_read_timeout` =
//!   `session.handshake_timeout_s`, upgrades), handshake
//!   (`websocket_accept_key`, `switching_protocols`, `upgrade_required`: no
//!   extensions offered, so no permessage-deflate) and tokio-tungstenite
//!   `WebSocketConfig` (`websocket_config`), called here as `/v1/listen`
//!   calls them, with `Config::default()`, so the production limits apply;
//! - the same session shape as `src/session`: the socket split into a reader
//!   and a writer task joined by a bounded queue of `session.outbound_queue`,
//!   each send bounded by `session.send_timeout_s`;
//! - the same mapping of read errors to close codes as the session's
//!   `stream_error` (too large 1009, invalid UTF-8 1007, protocol error 1002),
//!   and the same answer to a client's close frame (a close through the
//!   writer, which sends tungstenite's reply).
//!
//! What it leaves out: the JSON error message steno sends before those close
//! codes (an echo peer must not send unasked messages), auth, admission and
//! everything after the socket. The session shape and the close-code mapping
//! below are copies of `src/session` and must be kept in step by hand.
//!
//! Usage: `cargo run --example autobahn_echo -- [ADDR] [MAX_SECONDS]`
//! (default `127.0.0.1:0`, 900 s). Prints `listening on ADDR` on stdout and
//! exits by itself after MAX_SECONDS.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use steno::config::{Config, SessionConfig};
use steno::server::{
    Body, http_connection, switching_protocols, upgrade_required, websocket_accept_key,
    websocket_config,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{self, Message};

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
fn upgrade(session: SessionConfig, req: Request<Incoming>) -> Response<Body> {
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

/// What the reader hands the writer, as in steno's session.
enum Outbound {
    Message(Message),
    Close(u16, &'static str),
}

async fn echo<S>(ws: WebSocketStream<S>, session: &SessionConfig)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Outbound>(session.outbound_queue);
    let send_timeout = Duration::from_secs_f32(session.send_timeout_s);
    let writer = tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            let (message, last) = match item {
                Outbound::Message(m) => (m, false),
                Outbound::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    (Message::Close(Some(frame)), true)
                }
            };
            let sent = tokio::time::timeout(send_timeout, async {
                match sink.send(message).await {
                    // After a client's close frame tungstenite has queued its
                    // own reply and refuses ours; the flush sends the reply.
                    Err(_) if last => sink.flush().await,
                    other => other,
                }
            })
            .await;
            if last || !matches!(sent, Ok(Ok(()))) {
                return;
            }
        }
    });
    // Whether the client vanished (no close frame, no protocol error).
    let mut gone = true;
    while let Some(next) = stream.next().await {
        let item = match next {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => Outbound::Message(m),
            // Pings are answered by tungstenite itself.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            // steno's session answers a client's close frame with its own
            // close, after whatever it still had to send, and ends.
            Ok(Message::Close(_)) => Outbound::Close(1000, "closed by client"),
            Err(e) => match close_for(&e) {
                Some((code, reason)) => Outbound::Close(code, reason),
                None => break,
            },
        };
        let last = matches!(item, Outbound::Close(..));
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
        // As the session does: nobody reads what the writer still holds.
        writer.abort();
    }
    let _ = writer.await;
}

/// The close code steno's session (`stream_error`) answers a read error with.
fn close_for(e: &tungstenite::Error) -> Option<(u16, &'static str)> {
    use tungstenite::Error as E;
    match e {
        E::Capacity(_) => Some((1009, "message too large")),
        E::Utf8(_) => Some((1007, "invalid UTF-8")),
        E::Protocol(_) => Some((1002, "protocol error")),
        _ => None,
    }
}
