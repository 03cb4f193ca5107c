//! Resume after a dropped connection: a `/v1/listen` session whose connection vanished waits here under a single-use token for `session.resume_grace_s`; a client back with `?resume=TOKEN` hands its new socket to that session, which goes on where it was.
//!
//! The session never moves: its task (which holds its slot) parks on a
//! one-shot channel, and the resuming request sends its upgraded socket
//! down that channel. A token is 128 random bits, bound to one session,
//! removed when it is used and when the grace period (or the drain) ends,
//! so a second use and a late one find nothing.
//!
//! A phone that changed networks often comes back before the server has
//! noticed its old connection is dead (no FIN ever came). So a token is
//! known from the moment its `ready` is sent: a resume for a connection
//! still open first ends that connection (its `kick`), then waits up to
//! [`KICK_WAIT`] for the session to park.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

/// A server-side upgraded socket.
pub type ServerSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A client back for its session.
pub struct Returned {
    pub ws: ServerSocket,
    /// Finals the client has (it missed those from this one on).
    pub finals: u32,
}

/// How long a resume waits for a session whose old connection it ended.
pub const KICK_WAIT: Duration = Duration::from_secs(2);

enum Slot {
    /// The token's connection is open; cancelling ends it.
    Live(CancellationToken),
    /// The session waits for its client.
    Parked(oneshot::Sender<Returned>),
}

/// The sessions by resume token: connected, or waiting for their clients.
#[derive(Clone, Default)]
pub struct Parking {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
}

impl Parking {
    /// A fresh token: 128 random bits in hex.
    pub fn new_token() -> String {
        format!("{:032x}", rand::random::<u128>())
    }

    /// The connection that sent `token` in its `ready` is open; the
    /// returned token is cancelled when a resume for it comes first.
    pub fn live(&self, token: &str) -> CancellationToken {
        let kick = CancellationToken::new();
        self.lock()
            .insert(token.to_string(), Slot::Live(kick.clone()));
        kick
    }

    /// Forgets `token` (its session ended).
    pub fn forget(&self, token: &str) {
        self.lock().remove(token);
    }

    /// Parks under `token` until its client returns (its socket), `grace`
    /// passes or `draining` is cancelled (None).
    pub async fn wait(
        &self,
        token: &str,
        grace: Duration,
        draining: &CancellationToken,
    ) -> Option<Returned> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(token.to_string(), Slot::Parked(tx));
        let back = tokio::select! {
            back = rx => back.ok(),
            _ = tokio::time::sleep(grace) => None,
            _ = draining.cancelled() => None,
        };
        self.lock().remove(token);
        back
    }

    /// Hands `back` to the session parked under `token`, ending its old
    /// connection first if that is still open; gives it back if there is
    /// no such session (never was, used, past its grace, or it did not
    /// park within [`KICK_WAIT`]).
    pub async fn hand_over(&self, token: &str, back: Returned) -> Result<(), Returned> {
        let started = tokio::time::Instant::now();
        loop {
            {
                let mut slots = self.lock();
                match slots.remove(token) {
                    Some(Slot::Parked(tx)) => return tx.send(back),
                    None => return Err(back),
                    Some(Slot::Live(kick)) => {
                        kick.cancel();
                        slots.insert(token.to_string(), Slot::Live(kick));
                    }
                }
            }
            if started.elapsed() > KICK_WAIT {
                return Err(back);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sessions parked now.
    pub fn len(&self) -> usize {
        self.lock()
            .values()
            .filter(|s| matches!(s, Slot::Parked(_)))
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().expect("parking lock")
    }
}
