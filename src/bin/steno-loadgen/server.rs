//! The server under test, seen from outside: start it (`--spawn-server`),
//! wait for `/health`, scrape `/metrics`, sample its memory and CPU from
//! /proc, and stop it with SIGTERM.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Minimal HTTP/1.1 GET: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .context("no HTTP answer within 10 s")??;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad HTTP response from {addr}{path}"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

pub async fn wait_healthy(addr: SocketAddr, limit: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if let Ok((200, _)) = http_get(addr, "/health").await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the server on {addr} was not healthy within {limit:?}")
}

/// `steno_*` series from /metrics, keyed `name{labels}`; histogram buckets
/// are left out (their sums and counts stay).
pub type Metrics = BTreeMap<String, f64>;

pub async fn scrape_metrics(addr: SocketAddr) -> Result<Metrics> {
    let (status, body) = http_get(addr, "/metrics").await?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    Ok(parse_metrics(&body))
}

pub fn parse_metrics(text: &str) -> Metrics {
    text.lines()
        .filter(|l| l.starts_with("steno_") && !l.contains("_bucket"))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Sum of every series of `name` (all label values).
pub fn metric_sum(m: &Metrics, name: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| v)
        .sum()
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

/// Reads /proc/PID/status (VmRSS) and /proc/PID/stat (utime + stime).
pub struct ProcSampler {
    pid: u32,
    last: Option<(f64, u64)>,
}

/// Linux reports CPU times in USER_HZ, 100 on every architecture we run on.
const TICKS_PER_S: f64 = 100.0;

impl ProcSampler {
    pub fn new(pid: u32) -> Self {
        Self { pid, last: None }
    }

    pub fn sample(&mut self, t: f64, open_sessions: usize) -> Option<ResourceSample> {
        let (rss_kb, ticks) = read_proc(self.pid)?;
        let cpu_pct = match self.last.replace((t, ticks)) {
            Some((t0, ticks0)) if t > t0 => {
                (ticks.saturating_sub(ticks0)) as f64 / TICKS_PER_S / (t - t0) * 100.0
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

fn read_proc(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields count from after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((rss_kb, ticks))
}

/// The whole machine's busy and total CPU time in USER_HZ ticks, all cores
/// (the `cpu` line of /proc/stat): how much else ran beside the test.
pub fn machine_cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
    let total: u64 = fields.iter().take(8).sum();
    Some((total - idle, total))
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A steno server this run started.
pub struct SpawnedServer {
    child: Child,
    pub addr: SocketAddr,
}

impl SpawnedServer {
    /// Runs `BIN serve --listen 127.0.0.1:0` (with `--config` if given; the
    /// STENO_* environment passes through), copies its log to `log`, and
    /// waits for the address it listens on and for `/health`.
    pub async fn start(bin: &Path, config: Option<&Path>, log: Option<PathBuf>) -> Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let mut child = cmd
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("server-log".into())
            .spawn(move || copy_log(stderr, log, addr_tx))?;
        let addr = match tokio::time::timeout(Duration::from_secs(60), addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => {
                let _ = child.kill();
                bail!(
                    "{} did not log `listening addr=` within 60 s",
                    bin.display()
                );
            }
        };
        let server = Self { child, addr };
        wait_healthy(addr, Duration::from_secs(300)).await?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then up to `limit` for the graceful drain; killed after that.
    pub async fn stop(mut self, limit: Duration) -> Result<String> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.to_string());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(format!("killed: no exit within {limit:?} of SIGTERM"))
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn copy_log(
    stderr: std::process::ChildStderr,
    log: Option<PathBuf>,
    addr_tx: tokio::sync::oneshot::Sender<SocketAddr>,
) {
    let mut file = log.and_then(|p| std::fs::File::create(p).ok());
    let mut addr_tx = Some(addr_tx);
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if let Some(f) = file.as_mut() {
            let _ = writeln!(f, "{line}");
        }
        if line.contains("listening")
            && let Some(addr) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
                .and_then(|a| a.parse().ok())
            && let Some(tx) = addr_tx.take()
        {
            let _ = tx.send(addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_keep_sums_and_counts_not_buckets() {
        let text = "# HELP steno_x x\nsteno_sessions_active 3\nsteno_inference_seconds_bucket{kind=\"final\",le=\"0.1\"} 2\nsteno_inference_seconds_sum{kind=\"final\"} 1.5\nsteno_inference_seconds_sum{kind=\"partial\"} 0.5\nother 1\n";
        let m = parse_metrics(text);
        assert_eq!(m.len(), 3);
        assert_eq!(metric_sum(&m, "steno_inference_seconds_sum"), 2.0);
        assert_eq!(metric_sum(&m, "steno_sessions_active"), 3.0);
    }

    #[test]
    fn samples_this_process() {
        let mut s = ProcSampler::new(std::process::id());
        let first = s.sample(0.0, 0).unwrap();
        assert!(first.rss_mb > 0.0);
        assert!(s.sample(1.0, 0).unwrap().cpu_pct >= 0.0);
    }
}
