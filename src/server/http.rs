//! HTTP routes: a request in, a response out (`/health`, `/ready`, `/metrics`, the demo page, and the `/v1/listen` upgrade).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use super::AppState;

pub type Body = Full<Bytes>;

pub async fn route(
    state: Arc<AppState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let response = match (req.method(), path.as_str()) {
        (&Method::GET, "/v1/listen") => super::upgrade::listen(state, req),
        (&Method::GET, "/health") => health(&state),
        (&Method::GET, "/ready") => ready(&state),
        (&Method::GET, "/metrics") => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            crate::metrics::render(&state.metrics),
        ),
        (&Method::GET, _) if state.config.server.web_demo => static_file(&state, &path),
        (_, "/v1/listen" | "/health" | "/ready" | "/metrics") => json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"error": "method not allowed"}),
        ),
        _ => not_found(),
    };
    Ok(response)
}

pub fn json(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    text(status, "application/json", body.to_string())
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .header(CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(body)))
        .expect("static headers are valid")
}

fn not_found() -> Response<Body> {
    json(
        StatusCode::NOT_FOUND,
        serde_json::json!({"error": "not found"}),
    )
}

/// Liveness plus model state: 200 once the workers are warmed up.
fn health(state: &AppState) -> Response<Body> {
    if state.model_ready.load(Ordering::SeqCst) {
        json(StatusCode::OK, serde_json::json!({"status": "ok"}))
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "loading"}),
        )
    }
}

/// Whether a new session would be admitted now: for load balancers.
fn ready(state: &AppState) -> Response<Body> {
    let in_use = state.admission.in_use();
    let capacity = state.admission.capacity();
    let reason = if !state.model_ready.load(Ordering::SeqCst) {
        Some("loading")
    } else if state.admission.is_closed() {
        Some("draining")
    } else if in_use >= capacity {
        Some("full")
    } else {
        None
    };
    let status = if reason.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    json(
        status,
        serde_json::json!({
            "ready": reason.is_none(),
            "reason": reason,
            "sessions": in_use,
            "capacity": capacity,
        }),
    )
}

/// Serves a file of the demo folder by its plain name; nothing else.
fn static_file(state: &AppState, path: &str) -> Response<Body> {
    let name = match path.trim_start_matches('/') {
        "" => "index.html",
        n => n,
    };
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
    match std::fs::read(state.config.server.web_demo_dir.join(name)) {
        Ok(bytes) => Response::builder()
            .status(StatusCode::OK)
            .header(CONTENT_TYPE, content_type)
            .header(CACHE_CONTROL, "no-cache")
            .body(Full::new(Bytes::from(bytes)))
            .expect("static headers are valid"),
        Err(_) => not_found(),
    }
}
