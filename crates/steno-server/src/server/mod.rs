//! The server: a bound TCP listener, a config and a shutdown signal in; HTTP connections served until shutdown, then a graceful drain.
//!
//! Shutdown has two phases under one cancellation root: first stop admitting
//! and let open sessions finish their current utterance and send its final
//! (up to `server.drain_timeout_s`), then close whatever is left with 1001.
//!
//! Connections are served by hyper's HTTP/1 with steno's settings
//! ([`http_connection`]) and the axum router of `transport`;
//! `examples/autobahn_echo.rs` serves with the same settings.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{AdmissionController, SessionLimit};
use crate::config::{Config, Invalid};
use crate::files::{self, FileService, jobs::Jobs};
use crate::session::registry::SessionRegistry;
use crate::session::{SessionConfig, SessionContext};
use crate::transport::{AppState, router};
use crate::worker::whisper::WhisperModel;
use crate::worker::{JobQueue, TranscriberFactory, WorkerError, WorkerPool};
use tokio::sync::Semaphore;

pub mod agent;

/// The `[server]` configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP/WebSocket listener binds.
    pub listen: SocketAddr,
    /// Serve the browser demo page at `/`.
    pub web_demo: bool,
    /// Folder holding the demo page, relative to the working directory.
    pub web_demo_dir: PathBuf,
    /// How long open sessions may take to flush their finals on shutdown.
    pub drain_timeout_s: f32,
    /// This instance's name in job ids (`ID-...`), so a load balancer can
    /// route a job's requests to its owner; empty: made once and kept in
    /// the spool.
    pub instance_id: String,
    /// Where HAProxy's `agent-check` reads this instance's state and weight
    /// (`agent`), e.g. "127.0.0.1:9081"; empty: no agent.
    pub agent_listen: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            web_demo: true,
            web_demo_dir: PathBuf::from("web-demo"),
            drain_timeout_s: 10.0,
            instance_id: String::new(),
            agent_listen: String::new(),
        }
    }
}

impl ServerConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if !self
            .instance_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(Invalid::new(
                "server.instance_id",
                format!(
                    "takes letters, digits and _ only, got {:?}",
                    self.instance_id
                ),
            ));
        }
        self.agent_addr()?;
        let drain = self.drain_timeout_s;
        if drain.is_nan() || drain < 0.0 || drain.is_infinite() {
            return Err(Invalid::new(
                "server.drain_timeout_s",
                "must be 0 or more seconds",
            ));
        }
        Ok(())
    }

    /// The agent's address, if one is set.
    pub fn agent_addr(&self) -> Result<Option<SocketAddr>, Invalid> {
        if self.agent_listen.is_empty() {
            return Ok(None);
        }
        self.agent_listen.parse().map(Some).map_err(|_| {
            Invalid::new(
                "server.agent_listen",
                format!(
                    "takes HOST:PORT (e.g. 127.0.0.1:9081) or \"\", got {:?}",
                    self.agent_listen
                ),
            )
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot start the worker pool: {0}")]
    Workers(#[from] WorkerError),
    #[error("cannot calibrate admission.max_sessions = \"auto\": {0}")]
    Calibrate(#[from] crate::calibrate::CalibrateError),
    #[error("listener failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot open the spool folder {}: {source}", .path.display())]
    Spool {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Builds the transcriber factory (loads the model). Runs on a blocking thread.
pub type ModelLoader = Box<dyn FnOnce() -> Result<Arc<dyn TranscriberFactory>, WorkerError> + Send>;

/// The loader for the configured Whisper model.
pub fn whisper_loader(config: &Config) -> ModelLoader {
    let model = config.model.clone();
    let threads = config.workers.threads_per_worker;
    Box::new(move || {
        let started = std::time::Instant::now();
        let m = WhisperModel::load(&model, threads)?;
        tracing::info!(path = %model.path.display(), elapsed_ms = started.elapsed().as_millis() as u64, "model loaded");
        Ok(Arc::new(m) as Arc<dyn TranscriberFactory>)
    })
}

/// `admission.max_sessions = "auto"` measured (`calibrate::configured`, on
/// a named OS thread: it runs the model) and written in; any other config
/// as it is.
async fn resolve_auto(mut config: Config) -> Result<Config, ServerError> {
    if config.admission.max_sessions != SessionLimit::Auto {
        return Ok(config);
    }
    tracing::info!("admission.max_sessions = \"auto\": calibrating this machine");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let measured = config.clone();
    std::thread::Builder::new()
        .name("steno-calibrate".into())
        .spawn(move || {
            let _ = tx.send(crate::calibrate::configured(&measured));
        })
        .map_err(crate::calibrate::CalibrateError::Thread)?;
    let calibration = rx
        .await
        .map_err(|_| crate::calibrate::CalibrateError::Panicked)??;
    let layout = &calibration.layouts[0];
    // Steps run 1, 2, 3... up to the first that fails.
    let (users, outcome) = layout.steps[layout.max_users.max(1) - 1];
    tracing::info!(
        max_sessions = calibration.max_sessions,
        most_within_targets = layout.max_users,
        simulated_users = users,
        simulated_p50_s = outcome.p50_s,
        simulated_p95_s = outcome.p95_s,
        one_final_alone_ms = (layout.costs.lone.of(5.0) * 1000.0) as u64,
        one_final_busy_ms = (layout.costs.busy.of(5.0) * 1000.0) as u64,
        "admission.max_sessions calibrated"
    );
    config.admission.max_sessions = SessionLimit::Fixed(calibration.max_sessions);
    Ok(config)
}

/// Serves on `listener` until `shutdown` resolves, then drains and returns.
/// Fails if the model cannot be loaded.
pub async fn run(
    listener: TcpListener,
    config: Config,
    loader: ModelLoader,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let metrics = crate::metrics::install();
    let config = Arc::new(resolve_auto(config).await?);
    let max_sessions = config
        .admission
        .max_sessions
        .fixed()
        .expect("resolve_auto leaves a number");
    let queue = Arc::new(JobQueue::new(config.workers.lane_capacities()));
    queue.set_packing(config.workers.pack_limits());
    queue.set_degrade(config.workers.degrade());
    let root = CancellationToken::new();
    let files = open_files(&config, &queue).await?;
    let state = Arc::new(AppState {
        config: config.clone(),
        admission: AdmissionController::new(max_sessions),
        sessions: SessionContext {
            session: config.session.clone(),
            vad: config.vad.clone(),
            queue: queue.clone(),
            registry: SessionRegistry::default(),
            draining: root.child_token(),
            hard_stop: CancellationToken::new(),
        },
        model_ready: AtomicBool::new(false),
        metrics,
        tracker: TaskTracker::new(),
        parking: Default::default(),
        files: files.clone(),
    });
    if let Some(files) = &files {
        state
            .tracker
            .spawn(files.jobs.clone().run(root.child_token()));
        state
            .tracker
            .spawn(files.jobs.clone().janitor(root.child_token()));
    }
    let app = router(state.clone());
    crate::metrics::sessions_capacity(max_sessions);
    tokio::spawn(crate::load::run(
        config.workers.resolved_count(),
        root.child_token(),
    ));
    // The agent answers through the drain (HAProxy then reads `drain`).
    let agent_stop = CancellationToken::new();
    let agent = match config.server.agent_addr().ok().flatten() {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "haproxy agent listening");
            Some(tokio::spawn(agent::serve(
                listener,
                state.clone(),
                agent_stop.clone(),
            )))
        }
        None => None,
    };

    let pool: Arc<OnceCell<WorkerPool>> = Arc::new(OnceCell::new());
    let (load_failed_tx, load_failed) = tokio::sync::oneshot::channel();
    let loading = tokio::task::spawn_blocking({
        let state = state.clone();
        let pool = pool.clone();
        let workers = config.workers.resolved_count();
        move || {
            let started = loader().and_then(|factory| WorkerPool::start(factory, workers, queue));
            match started {
                Ok(p) => {
                    let _ = pool.set(p);
                    state.model_ready.store(true, Ordering::SeqCst);
                }
                Err(e) => {
                    let _ = load_failed_tx.send(e);
                }
            }
        }
    });

    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    tokio::pin!(shutdown);
    tokio::pin!(load_failed);
    let mut loading_done = false;
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            failed = &mut load_failed, if !loading_done => {
                loading_done = true;
                if let Ok(e) = failed {
                    break Err(ServerError::Workers(e));
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let service = TowerToHyperService::new(app.clone());
                    state.tracker.spawn(serve_connection(state.clone(), service, stream, peer));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    };
    drop(listener);
    drain(&state, &root).await;
    agent_stop.cancel();
    if let Some(agent) = agent {
        let _ = agent.await;
    }
    let _ = loading.await;
    if let Some(pool) = Arc::into_inner(pool).and_then(OnceCell::into_inner) {
        let _ = tokio::task::spawn_blocking(move || pool.shutdown()).await;
    } else {
        state.sessions.queue.close();
    }
    tracing::info!("server stopped");
    result
}

/// The file service: its spool opened and unfinished jobs queued again
/// (on a blocking thread: it reads the spool).
async fn open_files(
    config: &Arc<Config>,
    queue: &Arc<JobQueue>,
) -> Result<Option<Arc<FileService>>, ServerError> {
    if !config.files.enabled {
        return Ok(None);
    }
    let plan = files::plan(
        &config.files,
        &config.vad,
        &config.model.language,
        config.workers.resolved_count(),
    );
    let jobs = {
        let (files_config, plan, queue) = (config.files.clone(), plan.clone(), queue.clone());
        let instance = config.server.instance_id.clone();
        tokio::task::spawn_blocking(move || Jobs::open(&files_config, plan, queue, &instance))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(|e| ServerError::Spool {
                path: config.files.spool_dir.clone(),
                source: e,
            })?
    };
    tracing::info!(instance = jobs.instance(), spool = %config.files.spool_dir.display(), "file jobs ready");
    Ok(Some(Arc::new(FileService {
        config: config.files.clone(),
        plan,
        queue: queue.clone(),
        jobs,
        sync_slots: Arc::new(Semaphore::new(config.files.max_sync_requests)),
    })))
}

/// Phase 1: stop admitting, let sessions finish their utterance; phase 2 at
/// the deadline: close the rest now.
async fn drain(state: &AppState, root: &CancellationToken) {
    state.admission.close();
    root.cancel();
    state.tracker.close();
    let deadline = Duration::from_secs_f32(state.config.server.drain_timeout_s);
    let open: Vec<String> = state
        .sessions
        .registry
        .list()
        .into_iter()
        .map(|s| s.id)
        .collect();
    tracing::info!(open_sessions = state.admission.in_use(), sessions = ?open, "draining");
    if tokio::time::timeout(deadline, state.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open_sessions = state.admission.in_use(),
            "drain deadline passed; closing the rest"
        );
        state.sessions.hard_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), state.tracker.wait()).await;
    }
}

/// HTTP/1 with keep-alive; a client has `session.handshake_timeout_s` to
/// send its request headers (slowloris connections are cut there).
pub fn http_connection(session: &SessionConfig) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs_f32(session.handshake_timeout_s))
        .keep_alive(true);
    builder
}

async fn serve_connection<S>(
    state: Arc<AppState>,
    service: S,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
) where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let handshake = Duration::from_secs_f32(state.config.session.handshake_timeout_s);
    let draining = state.sessions.draining.clone();
    let conn = http_connection(&state.config.session)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        _ = draining.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(handshake, conn).await;
        }
    }
}
