//! The HTTP routes: a request in, a response out (`/health`, `/ready`, `/metrics`, `/v1/sessions`, the demo page, and each door's route); errors answered in one shape.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use steno_protocol::{ApiError, ErrorCode};
use tokio_util::task::TaskTracker;

use crate::admission::AdmissionController;
use crate::config::Config;
use crate::session::SessionContext;

/// What every request shares.
pub struct AppState {
    pub config: Arc<Config>,
    pub admission: AdmissionController,
    pub sessions: SessionContext,
    /// Set once every worker is warmed up.
    pub model_ready: AtomicBool,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Every task a request starts (upgraded sessions), for the drain.
    pub tracker: TaskTracker,
    /// `/v1/listen` sessions whose connection dropped, by resume token.
    pub parking: super::resume::Parking,
    /// File transcription and jobs; None until the model is loaded.
    pub files: Option<Arc<crate::files::FileService>>,
}

/// The routes of the server.
pub fn router(state: Arc<AppState>) -> Router {
    use super::files;
    // Uploads stream to disk under files.max_upload_bytes; axum's own
    // 2 MB default would refuse them first.
    let uploads = Router::new()
        .route("/v1/audio/transcriptions", post(files::transcriptions))
        .route("/v1/jobs", post(files::create_job).get(files::list_jobs))
        .layer(DefaultBodyLimit::disable());
    let mut router = Router::new()
        .merge(uploads)
        .route("/v1/models", get(files::models))
        .route(
            "/v1/jobs/{id}",
            get(files::get_job).delete(files::cancel_job),
        )
        .route("/v1/jobs/{id}/result", get(files::job_result))
        .route("/v1/listen", get(super::listen::listen))
        .route("/v1/realtime", get(super::realtime::realtime))
        .route("/v1/sessions", get(sessions))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/ready/jobs", get(ready_jobs))
        .route("/metrics", get(metrics));
    if state.config.server.web_demo {
        router = router
            .route(
                "/",
                get(|state| static_file(state, Path("index.html".to_string()))),
            )
            .route("/{file}", get(static_file));
    }
    router
        .fallback(|| async { ApiResponse(ApiError::new(ErrorCode::NotFound, "not found")) })
        .method_not_allowed_fallback(|| async {
            ApiResponse(ApiError::new(
                ErrorCode::MethodNotAllowed,
                "method not allowed",
            ))
        })
        .with_state(state)
}

/// An [`ApiError`] as an HTTP answer: the status from the one mapping
/// (`ErrorCode::http_status`), the OpenAI-shaped JSON body, `Retry-After`
/// when the error says when.
pub struct ApiResponse(pub ApiError);

impl ApiResponse {
    /// The same body with another status (426 for a plain GET of a
    /// WebSocket route).
    pub fn into_response_with(self, status: StatusCode) -> Response {
        let mut r = self.into_response();
        *r.status_mut() = status;
        r
    }
}

impl IntoResponse for ApiResponse {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, json_body(self.0.to_json())).into_response();
        if let Some(s) = self.0.retry_after_s {
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(s));
        }
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

impl From<ApiError> for ApiResponse {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

fn json_body(text: String) -> Response {
    Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .header(CACHE_CONTROL, "no-store")
        .body(Body::from(text))
        .expect("static headers are valid")
}

fn json_status(status: StatusCode, value: serde_json::Value) -> Response {
    let mut r = json_body(value.to_string());
    *r.status_mut() = status;
    r
}

/// Liveness plus model state: 200 once the workers are warmed up.
async fn health(State(state): State<Arc<AppState>>) -> Response {
    if state.model_ready.load(Ordering::SeqCst) {
        json_status(StatusCode::OK, serde_json::json!({"status": "ok"}))
    } else {
        json_status(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "loading"}),
        )
    }
}

/// Whether a new session would be admitted now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Loading,
    Draining,
    Full,
    /// Finals wait longer than `admission.max_final_wait_s` for a worker.
    Overloaded,
}

impl Readiness {
    /// The `reason` of `/ready`; None when ready.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Self::Ready => None,
            Self::Loading => Some("loading"),
            Self::Draining => Some("draining"),
            Self::Full => Some("full"),
            Self::Overloaded => Some("overloaded"),
        }
    }
}

/// The state `/ready` and the HAProxy agent report.
pub fn readiness(state: &AppState) -> Readiness {
    if !state.model_ready.load(Ordering::SeqCst) {
        Readiness::Loading
    } else if state.admission.is_closed() {
        Readiness::Draining
    } else if state.admission.in_use() >= state.admission.capacity() {
        Readiness::Full
    } else if overload(state).is_some() {
        Readiness::Overloaded
    } else {
        Readiness::Ready
    }
}

/// How long the oldest final has waited, when that is past
/// `admission.max_final_wait_s`: admission by load.
pub fn overload(state: &AppState) -> Option<std::time::Duration> {
    let limit = state.config.admission.final_wait_limit()?;
    let waited = state.sessions.queue.oldest_final_wait();
    (waited > limit).then_some(waited)
}

/// Whether a new session would be admitted now: for load balancers.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let reason = readiness(&state).reason();
    ready_answer(
        reason,
        serde_json::json!({
            "ready": reason.is_none(),
            "reason": reason,
            "sessions": state.admission.in_use(),
            "capacity": state.admission.capacity(),
        }),
    )
}

/// 200 when there is no reason to refuse, else 503; the body says which.
fn ready_answer(reason: Option<&str>, body: serde_json::Value) -> Response {
    let status = match reason {
        None => StatusCode::OK,
        Some(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    json_status(status, body)
}

/// Whether a new file job would be taken now: for the load balancer's
/// jobs backend (deploy/haproxy/haproxy.cfg). 503 while loading or
/// draining, with file jobs off, or with `files.max_queued_jobs` open.
async fn ready_jobs(State(state): State<Arc<AppState>>) -> Response {
    let queue = state.files.as_ref().map(|f| f.jobs.admit());
    let reason = match (readiness(&state), &queue) {
        (Readiness::Loading, _) => Some("loading"),
        (Readiness::Draining, _) => Some("draining"),
        (_, None) => Some("files_disabled"),
        (_, Some(Err(_))) => Some("queue_full"),
        (_, Some(Ok(()))) => None,
    };
    ready_answer(
        reason,
        serde_json::json!({ "ready": reason.is_none(), "reason": reason }),
    )
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    Response::builder()
        .header(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
        .header(CACHE_CONTROL, "no-store")
        .body(Body::from(crate::metrics::render(&state.metrics)))
        .expect("static headers are valid")
}

/// The live sessions (same access rules as opening one).
async fn sessions(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if let Err(e) = state.config.auth.check(req.headers(), req.uri().query()) {
        return ApiResponse(e).into_response();
    }
    Json(serde_json::json!({ "sessions": state.sessions.registry.list() })).into_response()
}

/// Serves a file of the demo folder by its plain name; nothing else. Read
/// through tokio's blocking pool, never on the runtime's threads.
async fn static_file(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    let not_found = || ApiResponse(ApiError::new(ErrorCode::NotFound, "not found")).into_response();
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !plain || name.starts_with('.') {
        return not_found();
    }
    let content_type = match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => return not_found(),
    };
    match tokio::fs::read(state.config.server.web_demo_dir.join(&name)).await {
        Ok(bytes) => Response::builder()
            .status(StatusCode::OK)
            .header(CONTENT_TYPE, content_type)
            .header(CACHE_CONTROL, "no-cache")
            .body(Body::from(bytes))
            .expect("static headers are valid"),
        Err(_) => not_found(),
    }
}
