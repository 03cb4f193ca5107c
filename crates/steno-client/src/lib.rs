//! An async Rust client of steno's protocol v1: connect to `/v1/listen`, stream audio, send control messages, read typed events and the close reason.
//!
//! # Layout
//!
//! ```text
//! connect     Connector (URL, headers, timeouts) -> Session after `ready`,
//!             or ConnectError (HTTP refusal, over_capacity and the like, transport)
//! retry       RetryPolicy: connect again after over_capacity, waiting retry_after_s
//!             with jitter, a bounded number of times, telling the caller each time
//! session     Session: send audio and control, read Events; split into Sender + Receiver
//! resume      ResumingSession: a Session that reconnects with the server's resume
//!             token after a dropped connection and resends the audio it lacks
//! transcript  Transcript: everything one connection saw, with finals/partials/errors
//! ```
//!
//! ```no_run
//! # async fn run(packets: Vec<Vec<u8>>) -> Result<(), Box<dyn std::error::Error>> {
//! use steno_client::Connector;
//! let mut session = Connector::new("ws://127.0.0.1:8080/v1/listen?encoding=opus")
//!     .connect()
//!     .await?;
//! for packet in packets {
//!     session.send_audio(packet).await?;
//! }
//! session.end().await?;
//! let transcript = session.collect(std::time::Duration::from_secs(30)).await?;
//! println!("{}", transcript.final_text());
//! # Ok(()) }
//! ```
//!
//! The tests, the load generator and the examples all use this one client;
//! it depends on the wire types and tokio-tungstenite only.

mod connect;
mod resume;
mod retry;
mod session;
mod transcript;

pub use connect::{ConnectError, Connector};
pub use resume::{ResumeOptions, ResumingReceiver, ResumingSender, ResumingSession};
pub use retry::{RetryPolicy, Retrying};
pub use session::{ClientError, CloseInfo, Event, Ready, Receiver, Sender, Session, Ws};
pub use steno_protocol as protocol;
pub use transcript::Transcript;
