//! A local cluster for the tests: `deploy/local-cluster.sh up` with this build's `steno`, on free loopback ports, in a temp folder; HAProxy's view of its servers through the admin socket; `down` on drop.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{model_path, path_str, repo_root, temp_dir};

pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
    pub instances: usize,
}

/// HAProxy's state of one server: operational (0 down, 2 up) and weight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServerState {
    pub up: bool,
    pub weight: u32,
}

impl Cluster {
    /// `instances` instances of one worker each, `max_sessions` for all or
    /// per instance ("2,4,6"), behind HAProxy. Blocking.
    pub fn up(instances: usize, max_sessions: &str) -> Self {
        assert!(
            Command::new("haproxy").arg("-v").output().is_ok(),
            "haproxy is not installed: run bash scripts/install-deps.sh"
        );
        let dir = temp_dir("cluster");
        let port = free_ports(instances);
        let cluster = Self {
            dir,
            port,
            instances,
        };
        let started = Instant::now();
        let out = cluster.script(&[
            "up",
            "--instances",
            &instances.to_string(),
            "--max-sessions",
            max_sessions,
            "--port",
            &port.to_string(),
            "--workers",
            "1",
        ]);
        assert!(
            out.status.success(),
            "local-cluster.sh up failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            cluster.logs()
        );
        let printed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(printed.trim(), format!("http://127.0.0.1:{port}"));
        println!(
            "cluster of {instances} (max_sessions {max_sessions}) up in {:.1} s at {}",
            started.elapsed().as_secs_f64(),
            printed.trim()
        );
        cluster
    }

    /// Runs deploy/local-cluster.sh with this cluster's folder.
    pub fn script(&self, args: &[&str]) -> std::process::Output {
        script_in(&self.dir, args)
    }

    /// Runs deploy/local-cluster.sh on a blocking thread (`roll`, `restart`
    /// take seconds); panics if it fails.
    pub async fn script_async(&self, args: &[&str]) {
        let dir = self.dir.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let out = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            script_in(&dir, &args)
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "local-cluster.sh failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
    }

    /// The balancer's address.
    pub fn lb(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Instance `i`'s own address (1-based).
    pub fn instance(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port + i as u16))
    }

    pub fn pid(&self, i: usize) -> u32 {
        let text = std::fs::read_to_string(self.dir.join(format!("steno{i}.pid"))).unwrap();
        text.trim().parse().unwrap()
    }

    /// Sends `signal` (TERM, KILL) to instance `i`.
    pub fn signal(&self, i: usize, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid(i).to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// HAProxy's view of `backend`'s servers, by name.
    pub async fn servers(&self, backend: &str) -> HashMap<String, ServerState> {
        let mut socket = tokio::net::UnixStream::connect(self.dir.join("haproxy.sock"))
            .await
            .expect("haproxy's admin socket");
        socket.write_all(b"show servers state\n").await.unwrap();
        let mut text = String::new();
        socket.read_to_string(&mut text).await.unwrap();
        // be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight ...
        text.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|f| f.len() > 8 && f[1] == backend)
            .map(|f| {
                let up = f[5] == "2" && f[6] == "0";
                (
                    f[3].to_string(),
                    ServerState {
                        up,
                        weight: f[7].parse().unwrap_or(0),
                    },
                )
            })
            .collect()
    }

    /// Every instance's log and HAProxy's, for a failure message.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for name in (1..=self.instances)
            .map(|i| format!("steno{i}.log"))
            .chain(["haproxy.log".to_string()])
        {
            let text = std::fs::read_to_string(self.dir.join(&name)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            all.push_str(&format!("--- {name} (last lines)\n"));
            for line in tail.into_iter().rev() {
                all.push_str(line);
                all.push('\n');
            }
        }
        all
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let out = self.script(&["down"]);
        if !out.status.success() {
            eprintln!("down: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// deploy/local-cluster.sh ARGS --dir DIR, with this build's steno and the
/// test model. Blocking.
pub fn script_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(repo_root().join("deploy/local-cluster.sh"))
        .args(args)
        .args(["--dir", &path_str(dir)])
        .env("STENO_BIN", env!("CARGO_BIN_EXE_steno"))
        .env("STENO_MODEL__PATH", path_str(&model_path()))
        .env("STENO_LOG", "info")
        .output()
        .expect("bash runs")
}

/// A base port P with P, P+1..P+n and P+1001..P+1000+n all free now.
fn free_ports(n: usize) -> u16 {
    let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let base = 20_000 + (seed >> 33) as u16 % 30_000;
        let ports = (0..=n as u16).chain((1..=n as u16).map(|i| 1000 + i));
        if ports
            .map(|off| TcpListener::bind(("127.0.0.1", base + off)))
            .all(|b| b.is_ok())
        {
            return base;
        }
    }
    panic!("no free range of loopback ports");
}

/// Waits until `condition` holds, polling every 50 ms; the time it took,
/// or None after `limit`.
pub async fn time_until<F, Fut>(limit: Duration, mut condition: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}
