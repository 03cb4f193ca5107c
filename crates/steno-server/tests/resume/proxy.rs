//! A TCP proxy in front of the server that can cut its connections the two ways a phone's network does: both sides at once (the server sees the connection end), or the client's side only (the server's side stays open and silent, as when a phone moves from Wi-Fi to LTE and no FIN ever reaches the server).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

type Pipe = JoinHandle<(OwnedReadHalf, OwnedWriteHalf)>;

/// One proxied connection: client-to-server and server-to-client pipes.
struct Link {
    stop: CancellationToken,
    up: Pipe,
    down: Pipe,
}

pub struct Proxy {
    pub addr: SocketAddr,
    links: Arc<Mutex<Vec<Link>>>,
    /// Server-side halves kept open after a client-only cut.
    held: Mutex<Vec<(OwnedReadHalf, OwnedWriteHalf)>>,
    accept: JoinHandle<()>,
}

async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    stop: CancellationToken,
) -> (OwnedReadHalf, OwnedWriteHalf) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            n = from.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    (from, to)
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let links: Arc<Mutex<Vec<Link>>> = Arc::default();
        let accept = tokio::spawn({
            let links = links.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        continue;
                    };
                    let (client_r, client_w) = client.into_split();
                    let (server_r, server_w) = server.into_split();
                    let stop = CancellationToken::new();
                    let up = tokio::spawn(pipe(client_r, server_w, stop.clone()));
                    let down = tokio::spawn(pipe(server_r, client_w, stop.clone()));
                    links.lock().unwrap().push(Link { stop, up, down });
                }
            }
        });
        Self {
            addr,
            links,
            held: Mutex::default(),
            accept,
        }
    }

    /// Cuts every open connection on both sides: each end sees it close.
    pub async fn cut(&self) {
        let links: Vec<Link> = self.links.lock().unwrap().drain(..).collect();
        for l in links {
            l.stop.cancel();
            let _ = (l.up.await, l.down.await);
        }
    }

    /// Cuts the client's side of every open connection; the server's side
    /// stays open, and nothing more reaches it.
    pub async fn cut_client_side(&self) {
        let links: Vec<Link> = self.links.lock().unwrap().drain(..).collect();
        for l in links {
            l.stop.cancel();
            // up: (client read, server write); down: (server read, client write).
            let (Ok((_, server_w)), Ok((server_r, _))) = (l.up.await, l.down.await) else {
                panic!("a pipe panicked");
            };
            self.held.lock().unwrap().push((server_r, server_w));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
