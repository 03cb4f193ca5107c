//! A `steno` binary run as a child process: a path, arguments and environment in; its address, pid and log out; SIGTERM (or SIGKILL) to stop it.
//!
//! The load generator's `--spawn-server`, the soak and the cluster tests use
//! it; in-process servers are the server crate's own test helper.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// What to start.
#[derive(Clone, Debug)]
pub struct ServerCommand {
    pub bin: PathBuf,
    pub config: Option<PathBuf>,
    /// Defaults to `127.0.0.1:0`.
    pub listen: Option<SocketAddr>,
    /// Extra environment (`STENO_*` overrides); the caller's passes through.
    pub env: Vec<(String, String)>,
    /// Where the server's stderr is copied.
    pub log: Option<PathBuf>,
}

impl ServerCommand {
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        Self {
            bin: bin.into(),
            config: None,
            listen: None,
            env: Vec::new(),
            log: None,
        }
    }

    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }
}

/// A steno server started by [`ServerProcess::start`]; killed if dropped.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Runs `BIN serve --listen ADDR`, copies its log, waits for the address
    /// it logs and for `/health` (up to `health_limit`).
    pub async fn start(command: &ServerCommand, health_limit: Duration) -> Result<Self> {
        let bin = &command.bin;
        let mut cmd = Command::new(bin);
        let listen = command
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        cmd.args(["serve", "--listen", &listen.to_string()]);
        if let Some(c) = &command.config {
            cmd.arg("--config").arg(c);
        }
        // A spool of its own unless the caller names one: servers started
        // side by side must not resume each other's file jobs.
        if !command
            .env
            .iter()
            .any(|(k, _)| k == "STENO_FILES__SPOOL_DIR")
        {
            let spool = std::env::temp_dir().join(format!(
                "steno-spool-{}-{:08x}",
                std::process::id(),
                rand_u32()
            ));
            cmd.env("STENO_FILES__SPOOL_DIR", spool);
        }
        for (k, v) in &command.env {
            cmd.env(k, v);
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
        let log = command.log.clone();
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
        wait_healthy(addr, health_limit).await?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then up to `limit` for the graceful drain; killed after
    /// that. Returns how it exited.
    pub async fn stop(mut self, limit: Duration) -> Result<String> {
        self.signal("TERM");
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

    /// Waits up to `limit` for the process to exit by itself (after a
    /// signal): its exit status, or None if it is still running.
    pub async fn wait_exit(&mut self, limit: Duration) -> Result<Option<std::process::ExitStatus>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL and reap: the process gets no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal by name (`TERM`, `KILL`, ...).
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status();
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A number that differs between calls, without a random-number crate.
fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}

/// Polls `/health` until it answers 200.
pub async fn wait_healthy(addr: SocketAddr, limit: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if let Ok((200, _)) = crate::http::get(addr, "/health").await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the server on {addr} was not healthy within {limit:?}")
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
