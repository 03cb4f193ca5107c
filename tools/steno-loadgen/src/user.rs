//! One simulated user: a plan (when to arrive, what role) in, a WebSocket
//! conversation with the server, and everything it sent and saw out.
//!
//! A speaker streams a live microphone: 20 ms Opus packets at real-time pace
//! (times `pace`), an utterance from the corpus, then a few seconds of
//! silence as if listening, then another utterance, until the run ends; then
//! `end`, and it reads until the server closes. The sender and the reader are
//! separate tasks, as in a real client.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use steno_client::{ConnectError, Connector, Event as ClientEvent, Receiver, Sender};
use steno_protocol::{ClientMessage, ServerMessage};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::analysis::{self, SentClip};
use crate::corpus::{Corpus, PACKET_MS};
use crate::progress::Live;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Talks and listens in turns.
    Speaker,
    /// Keeps a session open and streams silence (a microphone in a quiet room).
    Idle,
    /// Arrives once every slot should be taken; expects `over_capacity`.
    Extra,
}

pub struct UserPlan {
    pub id: usize,
    pub role: Role,
    /// Offset from the run's start.
    pub arrive_at: Duration,
    pub seed: u64,
}

/// What every user shares.
pub struct RunContext {
    pub url: String,
    pub corpus: Corpus,
    pub t0: Instant,
    /// Users stop starting utterances that would not finish by then.
    pub end_at: Instant,
    pub pause_min_ms: u64,
    pub pause_max_ms: u64,
    /// Silence always sent after an utterance: more than the VAD hangover.
    pub min_tail_ms: u64,
    /// 1.0 = real time; more sends faster (saturation runs).
    pub pace: f64,
    /// How long a user waits, after `end`, for its last finals and the close.
    pub drain: Duration,
    /// Cancelled at the run's hard time limit.
    pub hard_stop: CancellationToken,
    pub live: Arc<Live>,
}

impl RunContext {
    pub fn secs(&self, at: Instant) -> f64 {
        at.duration_since(self.t0).as_secs_f64()
    }
}

/// A server message and when it arrived (seconds from the run's start).
#[derive(Clone, Debug)]
pub struct Event {
    pub t: f64,
    pub msg: ServerMessage,
}

#[derive(Debug)]
pub struct UserOutcome {
    pub id: usize,
    pub role: Role,
    pub admitted: bool,
    /// The error code of a refusal (`over_capacity`, `not_ready`).
    pub refusal: Option<String>,
    /// Could not connect or upgrade at all.
    pub connect_error: Option<String>,
    pub clips: Vec<SentClip>,
    pub events: Vec<Event>,
    pub close_code: Option<u16>,
    /// The server's `end` summary arrived.
    pub got_end: bool,
    /// A send failed, the stream broke, or a deadline passed.
    pub problem: Option<String>,
}

impl UserOutcome {
    fn new(plan: &UserPlan) -> Self {
        Self {
            id: plan.id,
            role: plan.role,
            admitted: false,
            refusal: None,
            connect_error: None,
            clips: Vec::new(),
            events: Vec::new(),
            close_code: None,
            got_end: false,
            problem: None,
        }
    }
}

pub async fn run(plan: UserPlan, ctx: Arc<RunContext>) -> UserOutcome {
    let mut out = UserOutcome::new(&plan);
    tokio::select! {
        _ = sleep_until(ctx.t0 + plan.arrive_at) => {}
        _ = ctx.hard_stop.cancelled() => return out,
    }
    let connector =
        Connector::new(&ctx.url).timeouts(Duration::from_secs(10), Duration::from_secs(10));
    let session = match connector.connect().await {
        Ok(session) => session,
        Err(ConnectError::Refused { code, close, .. }) => {
            out.refusal = Some(code.as_str().to_string());
            out.close_code = close.map(|c| c.code);
            ctx.live.refused();
            return out;
        }
        Err(e @ (ConnectError::Unexpected(_) | ConnectError::Timeout("ready message"))) => {
            out.problem = Some(format!("no ready message: {e}"));
            ctx.live.problem();
            return out;
        }
        Err(e) => {
            out.connect_error = Some(e.to_string());
            ctx.live.problem();
            return out;
        }
    };
    out.admitted = true;
    ctx.live.admitted();
    let clips = Arc::new(Mutex::new(Vec::new()));
    let (mut sink, stream) = session.split();
    let stop_reading = CancellationToken::new();
    let mut reader = tokio::spawn(read_loop(
        stream,
        ctx.clone(),
        clips.clone(),
        stop_reading.clone(),
    ));
    let sent = match plan.role {
        Role::Extra => Ok(()),
        Role::Speaker | Role::Idle => send_loop(&mut sink, &plan, &ctx, &clips).await,
    };
    if let Err(e) = sent {
        out.problem = Some(e);
    } else if sink.send(ClientMessage::End).await.is_err() {
        out.problem = Some("could not send end".into());
    }
    // On a deadline the reader is told to stop and hands back what it saw.
    let drained = tokio::select! {
        r = tokio::time::timeout(ctx.drain, &mut reader) => r.ok(),
        _ = ctx.hard_stop.cancelled() => None,
    };
    let read = match drained {
        Some(joined) => joined.expect("the reader does not panic"),
        None => {
            stop_reading.cancel();
            out.problem
                .get_or_insert_with(|| "no close from the server within --drain".into());
            reader.await.expect("the reader does not panic")
        }
    };
    // Answer the server's close politely; the reader has seen it.
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    out.events = read.events;
    out.close_code = read.close_code;
    out.got_end = read.got_end;
    if let (None, Some(e)) = (&out.problem, read.transport_error) {
        out.problem = Some(e);
    }
    out.clips = std::mem::take(&mut *clips.lock().unwrap());
    ctx.live
        .closed(out.problem.is_some() || out.close_code != Some(1000));
    out
}

/// Streams utterances and silence until `end_at`. Err says why it stopped early.
async fn send_loop(
    sink: &mut Sender,
    plan: &UserPlan,
    ctx: &RunContext,
    clips: &Mutex<Vec<SentClip>>,
) -> Result<(), String> {
    let corpus = &ctx.corpus;
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let interval = Duration::from_millis(PACKET_MS).div_f64(ctx.pace);
    let base = Instant::now();
    let at = |k: u64| base + interval * k as u32;
    let mut k: u64 = 0;
    let packets_left = |k: u64| {
        let left = ctx.end_at.saturating_duration_since(at(k));
        (left.as_secs_f64() / interval.as_secs_f64()) as u64
    };
    let tail = ctx.min_tail_ms / PACKET_MS;
    let pause =
        |rng: &mut StdRng| rng.random_range(ctx.pause_min_ms..=ctx.pause_max_ms) / PACKET_MS;
    // Users do not all start talking at once: a random first silence.
    let mut silence = rng.random_range(0..=ctx.pause_max_ms) / PACKET_MS;
    loop {
        for _ in 0..silence.min(packets_left(k)) {
            send_at(sink, at(k), &corpus.silence_packet, ctx).await?;
            k += 1;
        }
        let left = packets_left(k);
        if left == 0 {
            return Ok(());
        }
        let fitting: Vec<usize> = match plan.role {
            Role::Speaker => (0..corpus.clips.len())
                .filter(|&i| corpus.clips[i].packets.len() as u64 + tail <= left)
                .collect(),
            Role::Idle | Role::Extra => Vec::new(),
        };
        if fitting.is_empty() {
            silence = left;
            continue;
        }
        let clip = corpus.clips[fitting[rng.random_range(0..fitting.len())]].clone();
        let index = {
            let mut clips = clips.lock().unwrap();
            clips.push(SentClip::new(clip.clone(), k));
            clips.len() - 1
        };
        ctx.live.clip_started();
        for (i, packet) in clip.packets.iter().enumerate() {
            send_at(sink, at(k), packet, ctx).await?;
            k += 1;
            if i == clip.speech_start_packet || i == clip.speech_end_packet {
                let now = ctx.secs(Instant::now());
                let mut clips = clips.lock().unwrap();
                if i == clip.speech_start_packet {
                    clips[index].t_speech_start = Some(now);
                }
                if i == clip.speech_end_packet {
                    clips[index].t_speech_end = Some(now);
                }
            }
        }
        silence = pause(&mut rng).max(tail);
    }
}

async fn send_at(
    sink: &mut Sender,
    when: Instant,
    packet: &[u8],
    ctx: &RunContext,
) -> Result<(), String> {
    let send = async {
        sleep_until(when).await;
        sink.send_audio(packet.to_vec()).await
    };
    tokio::select! {
        r = send => r.map_err(|e| format!("send failed: {e}")),
        _ = ctx.hard_stop.cancelled() => Err("stopped at the run's hard time limit".into()),
    }
}

#[derive(Default)]
struct ReadResult {
    events: Vec<Event>,
    close_code: Option<u16>,
    got_end: bool,
    transport_error: Option<String>,
}

async fn read_loop(
    mut stream: Receiver,
    ctx: Arc<RunContext>,
    clips: Arc<Mutex<Vec<SentClip>>>,
    stop: CancellationToken,
) -> ReadResult {
    let mut r = ReadResult::default();
    loop {
        let next = tokio::select! {
            m = stream.next() => m,
            _ = stop.cancelled() => break,
            _ = ctx.hard_stop.cancelled() => break,
        };
        let now = ctx.secs(Instant::now());
        match next {
            None => break,
            Some(Err(steno_client::ClientError::BadMessage(e))) => {
                r.transport_error = Some(format!("bad JSON from the server: {e}"));
            }
            Some(Err(e)) => {
                r.transport_error = Some(format!("connection broke: {e}"));
                break;
            }
            Some(Ok(ClientEvent::Closed(close))) => {
                r.close_code = close.map(|c| c.code);
                break;
            }
            Some(Ok(ClientEvent::Message(msg))) => {
                match &msg {
                    ServerMessage::Final {
                        start_ms, end_ms, ..
                    } => {
                        let clips = clips.lock().unwrap();
                        ctx.live
                            .final_arrived(analysis::live_latency(&clips, *start_ms, *end_ms, now));
                    }
                    ServerMessage::Partial { .. } => ctx.live.partial_arrived(),
                    ServerMessage::Error { .. } => ctx.live.error(),
                    ServerMessage::End { .. } => r.got_end = true,
                    _ => {}
                }
                r.events.push(Event { t: now, msg });
            }
        }
    }
    r
}
