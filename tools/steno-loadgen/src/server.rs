//! The server under test, seen from outside: its `/metrics`, and its memory and CPU sampled from /proc. Starting and stopping it is `steno_testkit::server`.

use std::net::SocketAddr;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use steno_testkit::process;
pub use steno_testkit::prometheus::Metrics;

/// The server's live heap gauge (the `steno` binary's counting allocator).
pub const HEAP_LIVE: &str = "steno_heap_live_bytes";

pub async fn scrape_metrics(addr: SocketAddr) -> Result<Metrics> {
    steno_testkit::prometheus::scrape(addr).await
}

/// The server's resident memory and CPU at one moment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResourceSample {
    pub t: f64,
    pub rss_mb: f64,
    /// The server's `steno_heap_live_bytes` in MB, when it reports it.
    #[serde(default)]
    pub heap_mb: Option<f64>,
    /// CPU since the previous sample, in % of one core (200 = two cores busy).
    pub cpu_pct: f64,
    /// Sessions the load generator had open then.
    pub open_sessions: usize,
}

/// Reads /proc/PID for memory (VmRSS) and CPU (utime + stime).
pub struct ProcSampler {
    pid: u32,
    last: Option<(f64, u64)>,
}

impl ProcSampler {
    pub fn new(pid: u32) -> Self {
        Self { pid, last: None }
    }

    pub fn sample(&mut self, t: f64, open_sessions: usize) -> Option<ResourceSample> {
        let (rss_kb, ticks) = process::rss_and_cpu(self.pid)?;
        let cpu_pct = match self.last.replace((t, ticks)) {
            Some((t0, ticks0)) if t > t0 => {
                (ticks.saturating_sub(ticks0)) as f64 / process::TICKS_PER_S / (t - t0) * 100.0
            }
            _ => 0.0,
        };
        Some(ResourceSample {
            t,
            rss_mb: rss_kb as f64 / 1024.0,
            heap_mb: None,
            cpu_pct,
            open_sessions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let mut s = ProcSampler::new(std::process::id());
        let first = s.sample(0.0, 0).unwrap();
        assert!(first.rss_mb > 0.0);
        assert!(s.sample(1.0, 0).unwrap().cpu_pct >= 0.0);
    }
}
