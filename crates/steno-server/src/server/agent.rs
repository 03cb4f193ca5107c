//! The HAProxy agent: a TCP connection on `server.agent_listen` in; one line saying this instance's state and weight out, then close.
//!
//! HAProxy's `agent-check` connects every `agent-inter`, reads one line and
//! applies its words (deploy/haproxy/haproxy.cfg):
//!
//! - `up ready 24%`: serving (`ready` also ends an earlier `drain`, so a
//!   restarted instance takes sessions again); with the server's `weight 100` in haproxy.cfg the
//!   weight becomes the session capacity (24), so under `leastconn` an
//!   instance of 8 cores and one of 2 fill in proportion to what they hold;
//! - `drain`: shutting down; no new sessions, the open ones finish;
//! - `down`: the model is still loading.
//!
//! After `#` comes a description for HAProxy's stats page (`#ready 3/24`).
//! Whether an instance is full (or overloaded) is left to the `/ready`
//! health check, which answers the same question per request.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::transport::AppState;
use crate::transport::http::{Readiness, readiness};

/// HAProxy's largest server weight.
const MAX_WEIGHT: usize = 256;

/// The agent's line for a state.
pub fn reply(state: Readiness, in_use: usize, capacity: usize) -> String {
    let weight = capacity.clamp(1, MAX_WEIGHT);
    match state {
        Readiness::Loading => "down #loading\n".to_string(),
        Readiness::Draining => format!("drain #draining {in_use}/{capacity}\n"),
        Readiness::Full => format!("up ready {weight}% #full {in_use}/{capacity}\n"),
        Readiness::Overloaded => format!("up ready {weight}% #overloaded {in_use}/{capacity}\n"),
        Readiness::Ready => format!("up ready {weight}% #ready {in_use}/{capacity}\n"),
    }
}

/// Answers agent checks on `listener` until `stop`.
pub async fn serve(listener: TcpListener, state: Arc<AppState>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let (mut stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "agent accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let line = reply(
            readiness(&state),
            state.admission.in_use(),
            state.admission.capacity(),
        );
        // One short write; a peer that does not read is dropped after 1 s.
        tokio::spawn(async move {
            let write = async {
                stream.write_all(line.as_bytes()).await?;
                stream.shutdown().await
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_has_its_haproxy_words() {
        assert_eq!(
            reply(Readiness::Ready, 3, 24),
            "up ready 24% #ready 3/24\n",
            "weight = capacity"
        );
        assert_eq!(reply(Readiness::Full, 4, 4), "up ready 4% #full 4/4\n");
        assert_eq!(reply(Readiness::Draining, 2, 4), "drain #draining 2/4\n");
        assert_eq!(reply(Readiness::Loading, 0, 4), "down #loading\n");
        assert_eq!(
            reply(Readiness::Ready, 0, 1000),
            "up ready 256% #ready 0/1000\n"
        );
    }
}
