//! `steno listen FILE --url ws://...`: a recording in, streamed to a server's `/v1/listen` as a live user would (16 kHz PCM in 20 ms messages, in real time or `--fast`), its partials on stderr and its finals on stdout out.
//!
//! A user's first tool to try a server: it goes through steno-client, the
//! same client the tests and the load generator use.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use steno_audio::file::FileDecoder;
use steno_client::protocol::{ClientMessage, ServerMessage};
use steno_client::{ClientError, Connector, Event, RetryPolicy, Sender};
use tokio::sync::mpsc;

/// Samples per message: 20 ms at 16 kHz.
const CHUNK_SAMPLES: usize = 320;
const SAMPLES_PER_S: f64 = 16_000.0;

/// `steno listen`'s arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct ListenArgs {
    /// The recording (any format `steno transcribe` reads).
    pub file: PathBuf,
    /// The server's protocol v1 endpoint; steno adds the query it needs.
    #[arg(long, default_value = "ws://127.0.0.1:8080/v1/listen")]
    pub url: String,
    /// The server's `auth.token`.
    #[arg(long, env = "STENO_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Send as fast as the server reads instead of in real time.
    #[arg(long)]
    pub fast: bool,
    /// Ask for finals only.
    #[arg(long)]
    pub no_partials: bool,
    /// Times to try again when the server is full (`over_capacity`), after
    /// the wait it names plus up to half again at random.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
}

/// Runs `steno listen`: Ok once the server ended the session normally.
pub fn listen(args: &ListenArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: &ListenArgs) -> Result<()> {
    let decoder = FileDecoder::open(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let query = format!(
        "encoding=pcm_s16le&sample_rate=16000&partials={}",
        !args.no_partials
    );
    let separator = if args.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}{query}", args.url);
    let mut connector = Connector::new(url.clone());
    if let Some(token) = args.token.as_deref().filter(|t| !t.is_empty()) {
        connector = connector.bearer(token);
    }
    let policy = RetryPolicy {
        retries: args.retries,
        ..RetryPolicy::default()
    };
    let session = connector
        .connect_retrying(&policy, |retrying| eprintln!("{retrying}"))
        .await
        .with_context(|| format!("cannot open a session at {}", args.url))?;
    eprintln!("session {} at {}", session.ready().session_id, args.url);
    let started = Instant::now();
    let (sender, mut receiver) = session.split();

    // The decoder is blocking: it runs on its own thread, a few packets ahead.
    let (tx, rx) = mpsc::channel::<Vec<i16>>(16);
    let decoding = tokio::task::spawn_blocking(move || decode(decoder, tx));
    let sending = tokio::spawn(send(sender, rx, args.fast));

    let mut out = Printer::new();
    let mut failure = None;
    let mut finals = 0u32;
    while let Some(event) = receiver.next().await {
        match event {
            Ok(Event::Message(ServerMessage::Partial { text, .. })) => out.partial(&text),
            Ok(Event::Message(ServerMessage::Final {
                text,
                start_ms,
                end_ms,
                ..
            })) => {
                finals += 1;
                out.final_line(start_ms, end_ms, &text);
            }
            Ok(Event::Message(ServerMessage::Error { code, message, .. })) => {
                out.note(&format!("server error {}: {message}", code.as_str()));
                failure = Some(format!("the server answered {}: {message}", code.as_str()));
            }
            Ok(Event::Message(ServerMessage::End { audio_ms, .. })) => out.note(&format!(
                "{finals} finals, {:.1} s of audio in {:.1} s",
                audio_ms as f64 / 1000.0,
                started.elapsed().as_secs_f64()
            )),
            Ok(Event::Message(_)) => {}
            Ok(Event::Closed(close)) => {
                let code = close.as_ref().map_or(1005, |c| c.code);
                if code != 1000 && failure.is_none() {
                    let reason = close.map(|c| c.reason).unwrap_or_default();
                    failure = Some(format!("the server closed the session: {code} {reason}"));
                }
            }
            Err(e) => {
                failure = Some(format!("connection lost: {e}"));
                break;
            }
        }
    }
    sending.abort();
    if let Ok(Ok(mut sender)) = sending.await {
        sender.close().await;
    }
    match decoding.await? {
        Err(e) => bail!("{}: {e}", args.file.display()),
        Ok(()) => match failure {
            Some(f) => bail!(f),
            None => Ok(()),
        },
    }
}

/// Decodes the file into `tx` until its end or until nobody listens.
fn decode(
    mut decoder: FileDecoder,
    tx: mpsc::Sender<Vec<i16>>,
) -> Result<(), steno_audio::file::FileError> {
    loop {
        let mut samples = Vec::new();
        if !decoder.read(&mut samples)? || tx.blocking_send(samples).is_err() {
            return Ok(());
        }
    }
}

/// Sends the audio in 20 ms messages, paced to real time unless `fast`,
/// then `end`; hands the sender back for the closing handshake.
async fn send(
    mut sender: Sender,
    mut rx: mpsc::Receiver<Vec<i16>>,
    fast: bool,
) -> Result<Sender, ClientError> {
    let start = tokio::time::Instant::now();
    let mut pending: Vec<i16> = Vec::new();
    let mut sent = 0usize;
    loop {
        let more = match rx.recv().await {
            Some(samples) => {
                pending.extend_from_slice(&samples);
                true
            }
            None => false,
        };
        let whole = if more {
            pending.len() - pending.len() % CHUNK_SAMPLES
        } else {
            pending.len()
        };
        for chunk in pending[..whole].chunks(CHUNK_SAMPLES) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
            sender.send_audio(bytes).await?;
            sent += chunk.len();
            if !fast {
                let due = Duration::from_secs_f64(sent as f64 / SAMPLES_PER_S);
                tokio::time::sleep_until(start + due).await;
            }
        }
        pending.drain(..whole);
        if !more {
            break;
        }
    }
    sender.send(ClientMessage::End).await?;
    Ok(sender)
}

/// Finals on stdout; partials and notes on stderr, a partial rewriting its
/// line when stderr is a terminal.
struct Printer {
    tty: bool,
    partial_shown: bool,
}

impl Printer {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            partial_shown: false,
        }
    }

    fn clear(&mut self) {
        if self.partial_shown {
            eprint!("\r\x1b[2K");
            self.partial_shown = false;
        }
    }

    fn partial(&mut self, text: &str) {
        if self.tty {
            eprint!("\r\x1b[2K~ {text}");
            let _ = std::io::stderr().flush();
            self.partial_shown = true;
        } else {
            eprintln!("~ {text}");
        }
    }

    fn final_line(&mut self, start_ms: u64, end_ms: u64, text: &str) {
        self.clear();
        println!("[{} -> {}] {text}", clock(start_ms), clock(end_ms));
    }

    fn note(&mut self, line: &str) {
        self.clear();
        eprintln!("{line}");
    }
}

/// `m:ss.s`, or `h:mm:ss.s` past an hour (tenths cut, not rounded).
fn clock(ms: u64) -> String {
    let tenths = ms / 100;
    let (h, m, s) = (tenths / 36_000, tenths / 600 % 60, tenths % 600);
    let s = format!("{:02}.{}", s / 10, s % 10);
    if h > 0 {
        format!("{h}:{m:02}:{s}")
    } else {
        format!("{m}:{s}")
    }
}

#[cfg(test)]
mod tests {
    use super::clock;

    #[test]
    fn clock_reads_as_minutes_then_hours() {
        assert_eq!(clock(0), "0:00.0");
        assert_eq!(clock(61_290), "1:01.2");
        assert_eq!(clock(59_999), "0:59.9");
        assert_eq!(clock(3_725_000), "1:02:05.0");
    }
}
