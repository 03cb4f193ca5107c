//! A session that outlives its connection: audio (with its length) and control in, the same [`Event`]s out; when the connection drops, it reconnects with the server's resume token and resends the audio the server did not get.
//!
//! A task owns the socket. It keeps every audio message sent since the last
//! final in a bounded buffer ([`ResumeOptions::buffer_ms`]); a final says
//! the server has the audio up to its end, so what came before is let go.
//! When the connection breaks (an error or an end without a close frame)
//! it reconnects with `?resume=TOKEN&finals=N` (N: finals it has), reads
//! how much audio the server has (`received_ms` in the new `ready`) and
//! resends the rest, then goes on. A close frame ends the session as
//! usual; a refused resume, or one that needs audio the buffer no longer
//! has, ends it with [`ClientError::Lost`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use steno_protocol::{ClientMessage, Resume, ServerMessage};
use tokio::sync::mpsc;

use crate::session::{ClientError, Event, Ready, Session};
use crate::{ConnectError, Connector};

/// How a [`ResumingSession`] resumes.
#[derive(Clone, Debug)]
pub struct ResumeOptions {
    /// Most audio kept for resending, in ms; older audio is let go.
    pub buffer_ms: u64,
    /// Reconnect attempts after one drop.
    pub attempts: u32,
    /// Wait before the first attempt; doubled each time, up to 2 s.
    pub first_wait: Duration,
}

impl Default for ResumeOptions {
    /// 30 s of audio (twice the server's default grace period), 8
    /// attempts from 100 ms: about 10 s of trying.
    fn default() -> Self {
        Self {
            buffer_ms: 30_000,
            attempts: 8,
            first_wait: Duration::from_millis(100),
        }
    }
}

enum Outgoing {
    Audio { bytes: Vec<u8>, ms: u64 },
    Control(ClientMessage),
}

/// The sending half: cheap to clone, usable from any task.
#[derive(Clone)]
pub struct ResumingSender {
    tx: mpsc::Sender<Outgoing>,
}

impl ResumingSender {
    /// One audio message holding `duration_ms` of audio.
    pub async fn send_audio(&self, bytes: Vec<u8>, duration_ms: u64) -> Result<(), ClientError> {
        self.put(Outgoing::Audio {
            bytes,
            ms: duration_ms,
        })
        .await
    }

    pub async fn send(&self, message: ClientMessage) -> Result<(), ClientError> {
        self.put(Outgoing::Control(message)).await
    }

    /// `end`: the server sends the last finals, `end`, and closes.
    pub async fn end(&self) -> Result<(), ClientError> {
        self.send(ClientMessage::End).await
    }

    async fn put(&self, out: Outgoing) -> Result<(), ClientError> {
        self.tx
            .send(out)
            .await
            .map_err(|_| ClientError::Lost("the session has ended".into()))
    }
}

/// The receiving half.
pub struct ResumingReceiver {
    rx: mpsc::Receiver<Result<Event, ClientError>>,
    resumes: Arc<AtomicU32>,
}

impl ResumingReceiver {
    /// The next event; None after the close or a lost session's error.
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        self.rx.recv().await
    }

    /// Times the session was resumed on a new connection.
    pub fn resumes(&self) -> u32 {
        self.resumes.load(Ordering::SeqCst)
    }
}

/// A protocol v1 session that resumes itself (see the module).
pub struct ResumingSession {
    ready: Ready,
    sender: ResumingSender,
    receiver: ResumingReceiver,
}

impl ResumingSession {
    /// What the first `ready` said.
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    pub async fn send_audio(&self, bytes: Vec<u8>, duration_ms: u64) -> Result<(), ClientError> {
        self.sender.send_audio(bytes, duration_ms).await
    }

    pub async fn end(&self) -> Result<(), ClientError> {
        self.sender.end().await
    }

    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        self.receiver.next().await
    }

    pub fn resumes(&self) -> u32 {
        self.receiver.resumes()
    }

    /// A sender and a receiver for two tasks.
    pub fn split(self) -> (ResumingSender, ResumingReceiver) {
        (self.sender, self.receiver)
    }
}

impl Connector {
    /// Connects like [`Connector::connect`], then keeps the session across
    /// dropped connections (the server must give a resume token: its
    /// `session.resume_grace_s` above 0).
    pub async fn connect_resuming(
        &self,
        options: ResumeOptions,
    ) -> Result<ResumingSession, ConnectError> {
        let session = self.connect().await?;
        let ready = session.ready().clone();
        let (tx, from_user) = mpsc::channel(64);
        let (to_user, rx) = mpsc::channel(64);
        let resumes = Arc::new(AtomicU32::new(0));
        let link = Link {
            connector: self.clone(),
            options,
            token: ready.resume_token.clone(),
            unacked: VecDeque::new(),
            sent_ms: 0,
            finals: 0,
            end_sent: false,
            resumes: resumes.clone(),
        };
        tokio::spawn(link.run(session, from_user, to_user));
        Ok(ResumingSession {
            ready,
            sender: ResumingSender { tx },
            receiver: ResumingReceiver { rx, resumes },
        })
    }
}

/// The task's state across connections.
struct Link {
    connector: Connector,
    options: ResumeOptions,
    /// From the last `ready`.
    token: Option<String>,
    /// Audio sent and not yet covered by a final: (start ms, end ms, bytes).
    unacked: VecDeque<(u64, u64, Vec<u8>)>,
    sent_ms: u64,
    finals: u32,
    end_sent: bool,
    resumes: Arc<AtomicU32>,
}

impl Link {
    async fn run(
        mut self,
        mut session: Session,
        mut from_user: mpsc::Receiver<Outgoing>,
        to_user: mpsc::Sender<Result<Event, ClientError>>,
    ) {
        let mut user_done = false;
        loop {
            let broke = tokio::select! {
                out = from_user.recv(), if !user_done => match out {
                    None => {
                        user_done = true;
                        false
                    }
                    Some(Outgoing::Audio { bytes, ms }) => {
                        self.keep(&bytes, ms);
                        session.send_audio(bytes).await.is_err()
                    }
                    Some(Outgoing::Control(message)) => {
                        self.end_sent |= message == ClientMessage::End;
                        session.send(message).await.is_err()
                    }
                },
                event = session.next() => match event {
                    Some(Ok(Event::Message(m))) => {
                        if let ServerMessage::Final { end_ms, .. } = &m {
                            self.finals += 1;
                            self.acked(*end_ms);
                        }
                        if to_user.send(Ok(Event::Message(m))).await.is_err() {
                            return;
                        }
                        false
                    }
                    Some(Ok(closed @ Event::Closed(_))) => {
                        let _ = to_user.send(Ok(closed)).await;
                        session.close().await;
                        return;
                    }
                    Some(Err(_)) | None => true,
                },
            };
            if broke {
                match self.reconnect().await {
                    Ok(resumed) => {
                        session = resumed;
                        self.resumes.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        let _ = to_user.send(Err(e)).await;
                        return;
                    }
                }
            }
        }
    }

    fn keep(&mut self, bytes: &[u8], ms: u64) {
        self.unacked
            .push_back((self.sent_ms, self.sent_ms + ms, bytes.to_vec()));
        self.sent_ms += ms;
        while self
            .unacked
            .front()
            .is_some_and(|(start, _, _)| self.sent_ms - start > self.options.buffer_ms)
        {
            self.unacked.pop_front();
        }
    }

    /// The server has the audio up to `end_ms`.
    fn acked(&mut self, end_ms: u64) {
        while self
            .unacked
            .front()
            .is_some_and(|(_, end, _)| *end <= end_ms)
        {
            self.unacked.pop_front();
        }
    }

    async fn reconnect(&mut self) -> Result<Session, ClientError> {
        let mut wait = self.options.first_wait;
        let mut last = String::from("no attempt");
        for _ in 0..self.options.attempts {
            let Some(token) = self.token.clone() else {
                return Err(ClientError::Lost(
                    "the connection dropped and the server offers no resume".into(),
                ));
            };
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            let resume = Resume {
                token,
                finals: self.finals,
            };
            let mut session = match self
                .connector
                .with_query(&resume.to_query())
                .connect()
                .await
            {
                Ok(session) => session,
                Err(e @ ConnectError::Refused { .. }) => {
                    return Err(ClientError::Lost(format!("resume refused: {e}")));
                }
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            // The old token is spent; a drop from here on uses the new one.
            self.token = session.ready().resume_token.clone();
            let received = session.ready().received_ms.unwrap_or(0);
            if let Some((start, _, _)) = self.unacked.front()
                && *start > received
            {
                return Err(ClientError::Lost(format!(
                    "the server has audio up to {received} ms, the client kept only from {start} ms"
                )));
            }
            if let Err(e) = self.resend(&mut session, received).await {
                last = e.to_string();
                continue;
            }
            return Ok(session);
        }
        Err(ClientError::Lost(format!(
            "could not resume after {} attempts: {last}",
            self.options.attempts
        )))
    }

    /// Sends what the server lacks: the audio from `received_ms` on, and
    /// `end` if it was asked for.
    async fn resend(&self, session: &mut Session, received_ms: u64) -> Result<(), ClientError> {
        for (_, _, bytes) in self.unacked.iter().filter(|(s, _, _)| *s >= received_ms) {
            session.send_audio(bytes.clone()).await?;
        }
        if self.end_sent {
            session.end().await?;
        }
        Ok(())
    }
}
