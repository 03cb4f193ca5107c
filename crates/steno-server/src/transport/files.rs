//! The file door: OpenAI's `POST /v1/audio/transcriptions` (multipart in; json, text, srt, vtt, verbose_json or Server-Sent Events out), `GET /v1/models`, and the durable job API under `/v1/jobs`.
//!
//! Every upload streams to the spool's `tmp/` (never held in memory), is
//! refused past `files.max_upload_bytes` (413), then probed (415 or 400)
//! before any work is accepted. Synchronous requests hold one of
//! `files.max_sync_requests` slots; jobs one of `files.max_queued_jobs`; a
//! full server answers 429 with `Retry-After`, never a wait.
// Helpers answer a refusal as axum's `Response` itself, made once per
// refused request; boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Multipart, Path as UrlPath, Query, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use steno_audio::file::FileError;
use steno_protocol::{ApiError, ErrorCode};
use tokio::io::AsyncWriteExt;

use super::AppState;
use super::http::ApiResponse;
use crate::files::format::{ResponseFormat, render};
use crate::files::jobs::{JobOptions, JobRecord, JobStatus, JobsError, now_ms};
use crate::files::spool::is_disk_full;
use crate::files::transcribe::NoStore;
use crate::files::{FileJobError, FileOptions, FileService, probe, transcribe_file};

/// Text fields of a transcription request, as OpenAI names them.
#[derive(Debug, Default)]
struct Fields {
    model: Option<String>,
    language: Option<String>,
    prompt: Option<String>,
    response_format: Option<String>,
    temperature: Option<String>,
    stream: Option<String>,
    granularities: Vec<String>,
}

/// An upload on disk in `tmp/`, removed when dropped unless taken.
struct Upload {
    path: Option<PathBuf>,
    file_name: String,
    bytes: u64,
    fields: Fields,
}

impl Upload {
    fn path(&self) -> &Path {
        self.path
            .as_deref()
            .expect("an upload has its file until taken")
    }

    fn take(&mut self) -> PathBuf {
        self.path.take().expect("an upload is taken once")
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            // Removed off the runtime's threads.
            tokio::task::spawn_blocking(move || std::fs::remove_file(p));
        }
    }
}

/// A request, checked.
struct Request_ {
    format: ResponseFormat,
    options: FileOptions,
    stream: bool,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, message)
}

fn busy(message: impl Into<String>, retry_after_s: u32) -> ApiError {
    let mut e = ApiError::new(ErrorCode::OverCapacity, message);
    e.retry_after_s = Some(retry_after_s);
    e
}

fn internal() -> ApiError {
    ApiError::new(ErrorCode::Internal, "the server could not store the upload")
}

/// 507 Insufficient Storage: not an `ErrorCode` of the live protocol, so
/// answered here with the same body shape.
fn storage_full(message: impl Into<String>) -> Response {
    let mut r = ApiResponse(ApiError::new(ErrorCode::Internal, message)).into_response();
    *r.status_mut() = StatusCode::INSUFFICIENT_STORAGE;
    r
}

/// Turns the text fields into what a transcription needs.
fn check(state: &AppState, fields: &Fields) -> Result<Request_, ApiError> {
    let served = &state.config.model.language;
    if let Some(language) = fields.language.as_deref().filter(|l| !l.is_empty())
        && language != served
    {
        return Err(bad(format!(
            "language {language:?} is not served: this model speaks {served}"
        )));
    }
    let format = match fields.response_format.as_deref() {
        None | Some("") => ResponseFormat::Json,
        Some(name) => ResponseFormat::parse(name).ok_or_else(|| {
            bad(format!(
                "response_format must be json, text, srt, vtt or verbose_json, got {name:?}"
            ))
        })?,
    };
    let temperature = match fields.temperature.as_deref() {
        None | Some("") => 0.0,
        Some(t) => t
            .parse::<f32>()
            .ok()
            .filter(|t| (0.0..=1.0).contains(t))
            .ok_or_else(|| {
                bad(format!(
                    "temperature must be a number from 0 to 1, got {t:?}"
                ))
            })?,
    };
    for g in &fields.granularities {
        if g != "word" && g != "segment" {
            return Err(bad(format!(
                "timestamp_granularities[] takes word and segment, got {g:?}"
            )));
        }
    }
    let stream = match fields.stream.as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(bad(format!("stream must be true or false, got {other:?}"))),
    };
    Ok(Request_ {
        format,
        options: FileOptions {
            prompt: fields.prompt.clone().filter(|p| !p.is_empty()),
            temperature,
            words: fields.granularities.iter().any(|g| g == "word"),
        },
        stream,
    })
}

/// Streams the multipart body: the `file` part to `tmp/`, the rest as text.
async fn receive(files: &FileService, mut multipart: Multipart) -> Result<Upload, Response> {
    let mut upload = Upload {
        path: None,
        file_name: String::new(),
        bytes: 0,
        fields: Fields::default(),
    };
    let limit = files.config.max_upload_bytes;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return Err(ApiResponse(bad(format!("bad multipart body: {e}"))).into_response());
            }
        };
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            if upload.path.is_some() {
                return Err(ApiResponse(bad("more than one file part")).into_response());
            }
            upload.file_name = field.file_name().unwrap_or("upload").to_string();
            let path = files.jobs.temp_path();
            upload.path = Some(path.clone());
            let mut out = tokio::fs::File::create(&path)
                .await
                .map_err(|_| ApiResponse(internal()).into_response())?;
            let mut field = field;
            loop {
                let chunk = match field.chunk().await {
                    Ok(Some(c)) => c,
                    Ok(None) => break,
                    Err(e) => {
                        return Err(
                            ApiResponse(bad(format!("the upload broke off: {e}"))).into_response()
                        );
                    }
                };
                upload.bytes += chunk.len() as u64;
                if upload.bytes > limit {
                    return Err(ApiResponse(ApiError::new(
                        ErrorCode::MessageTooLarge,
                        format!("the file is larger than the limit of {limit} bytes (files.max_upload_bytes)"),
                    ))
                    .into_response());
                }
                if let Err(e) = out.write_all(&chunk).await {
                    return Err(if is_disk_full(&e) {
                        storage_full("the server's disk is full; retry later")
                    } else {
                        ApiResponse(internal()).into_response()
                    });
                }
            }
            if let Err(e) = out.sync_all().await {
                return Err(if is_disk_full(&e) {
                    storage_full("the server's disk is full; retry later")
                } else {
                    ApiResponse(internal()).into_response()
                });
            }
            continue;
        }
        let text = match field.text().await {
            Ok(t) if t.len() <= 64 << 10 => t,
            Ok(_) => {
                return Err(ApiResponse(bad(format!("field {name} is too long"))).into_response());
            }
            Err(e) => {
                return Err(ApiResponse(bad(format!("bad field {name}: {e}"))).into_response());
            }
        };
        let f = &mut upload.fields;
        match name.as_str() {
            "model" => f.model = Some(text),
            "language" => f.language = Some(text),
            "prompt" => f.prompt = Some(text),
            "response_format" => f.response_format = Some(text),
            "temperature" => f.temperature = Some(text),
            "stream" => f.stream = Some(text),
            "timestamp_granularities[]" | "timestamp_granularities" => f.granularities.push(text),
            // Fields of newer API versions (`include[]`, `chunking_strategy`) are ignored.
            _ => {}
        }
    }
    if upload.path.is_none() {
        return Err(ApiResponse(bad("the request has no file part")).into_response());
    }
    if upload.bytes == 0 {
        return Err(ApiResponse(bad("the file is empty")).into_response());
    }
    Ok(upload)
}

/// 415 for a format steno does not read, 400 for damaged or empty audio.
fn file_error_response(e: &FileError) -> Response {
    let mut r = ApiResponse(ApiError::new(ErrorCode::BadAudio, e.to_string())).into_response();
    if e.is_unsupported() {
        *r.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
    }
    r
}

async fn probe_upload(path: &Path) -> Result<Option<f64>, Response> {
    let path = path.to_path_buf();
    match tokio::task::spawn_blocking(move || probe(&path)).await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(file_error_response(&e)),
        Err(_) => Err(ApiResponse(ApiError::new(
            ErrorCode::Internal,
            "the file could not be read",
        ))
        .into_response()),
    }
}

fn files_or_404(state: &AppState) -> Result<&Arc<FileService>, Response> {
    state.files.as_ref().ok_or_else(|| {
        ApiResponse(ApiError::new(
            ErrorCode::NotFound,
            "file transcription is off on this server",
        ))
        .into_response()
    })
}

/// `POST /v1/audio/transcriptions`.
pub async fn transcriptions(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (files, slot) = match admit_sync(&state, req.headers(), req.uri().query()) {
        Ok(admitted) => admitted,
        Err(refusal) => return linger(req, refusal),
    };
    match transcriptions_inner(state, files, slot, req).await {
        Ok(r) | Err(r) => r,
    }
}

/// How long a request refused before its body was read may go on sending
/// it, read and thrown away, so the refusal reaches the client instead of a
/// reset connection (what nginx calls a lingering close).
const LINGER: std::time::Duration = std::time::Duration::from_secs(10);

/// Answers `refusal`, draining the unread body for at most [`LINGER`].
fn linger(req: Request, refusal: Response) -> Response {
    let mut body = req.into_body().into_data_stream();
    tokio::spawn(async move {
        use futures_util::StreamExt;
        let _ = tokio::time::timeout(LINGER, async {
            while let Some(Ok(_)) = body.next().await {}
        })
        .await;
    });
    refusal
}

/// Auth, then one of `files.max_sync_requests` slots, or the refusal.
fn admit_sync(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(Arc<FileService>, tokio::sync::OwnedSemaphorePermit), Response> {
    let files = service(state, headers, query)?;
    let slot = files.sync_slots.clone().try_acquire_owned().map_err(|_| {
        crate::metrics::http_refused("files_busy");
        ApiResponse(busy(
            format!(
                "{} transcription requests are running; retry later or use /v1/jobs",
                files.config.max_sync_requests
            ),
            files.config.retry_after_s,
        ))
        .into_response()
    })?;
    Ok((files, slot))
}

async fn transcriptions_inner(
    state: Arc<AppState>,
    files: Arc<FileService>,
    slot: tokio::sync::OwnedSemaphorePermit,
    req: Request,
) -> Result<Response, Response> {
    let multipart = multipart_of(req).await?;
    let mut upload = receive(&files, multipart).await?;
    let request = check(&state, &upload.fields).map_err(|e| ApiResponse(e).into_response())?;
    probe_upload(upload.path()).await?;
    let path = upload.take();
    let job_tag: u64 = rand::random();
    if request.stream {
        return Ok(stream_response(files, path, request, job_tag, slot));
    }
    let stop = state.sessions.hard_stop.child_token();
    let outcome = transcribe_file(
        &files.queue,
        job_tag,
        &path,
        &files.plan,
        &request.options,
        &mut NoStore,
        |_, _| {},
        &stop,
    )
    .await;
    drop(slot);
    remove_later(path);
    let t = outcome.map_err(job_error_response)?;
    Ok(formatted(
        request.format,
        &render(&t, request.format, request.options.words),
    ))
}

/// Server-Sent Events: a delta as each window finishes, then the whole text.
fn stream_response(
    files: Arc<FileService>,
    path: PathBuf,
    request: Request_,
    job_tag: u64,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(16);
    tokio::spawn(async move {
        let stop = tokio_util::sync::CancellationToken::new();
        let mut pending = String::new();
        let sender = tx.clone();
        let outcome = transcribe_file(
            &files.queue,
            job_tag,
            &path,
            &files.plan,
            &request.options,
            &mut NoStore,
            |segments, _| {
                // A client that went away stops the work it asked for.
                if sender.is_closed() {
                    stop.cancel();
                    return;
                }
                for s in segments {
                    if !pending.is_empty() || !s.text.is_empty() {
                        pending.push_str(if pending.is_empty() { "" } else { " " });
                    }
                    pending.push_str(&s.text);
                }
                // A client slower than the windows gets them merged.
                if !pending.is_empty() {
                    let event = serde_json::json!({"type": "transcript.text.delta", "delta": format!("{pending} ")});
                    if sender.try_send(sse(&event)).is_ok() {
                        pending.clear();
                    }
                }
            },
            &stop,
        )
        .await;
        drop(slot);
        remove_later(path);
        let last = match outcome {
            Ok(t) => {
                if !pending.is_empty() {
                    let event =
                        serde_json::json!({"type": "transcript.text.delta", "delta": pending});
                    let _ = tx.send(sse(&event)).await;
                }
                serde_json::json!({"type": "transcript.text.done", "text": t.text})
            }
            Err(e) => {
                let (_, message) = job_error(&e);
                serde_json::json!({"type": "error", "error": {"message": message, "type": "server_error"}})
            }
        };
        let _ = tx.send(sse(&last)).await;
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, std::convert::Infallible>(event), rx))
    }));
    Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache")
        .body(body)
        .expect("static headers are valid")
}

fn sse(event: &serde_json::Value) -> String {
    format!("data: {event}\n\n")
}

fn formatted(format: ResponseFormat, body: &str) -> Response {
    Response::builder()
        .header(CONTENT_TYPE, format.content_type())
        .header(CACHE_CONTROL, "no-store")
        .body(Body::from(body.to_string()))
        .expect("static headers are valid")
}

fn remove_later(path: PathBuf) {
    tokio::task::spawn_blocking(move || std::fs::remove_file(path));
}

/// The status and user message for a failed transcription.
fn job_error(e: &FileJobError) -> (StatusCode, String) {
    match e {
        FileJobError::File(f) if f.is_unsupported() => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, f.to_string())
        }
        FileJobError::File(f) => (StatusCode::BAD_REQUEST, f.to_string()),
        FileJobError::Shutdown | FileJobError::Cancelled => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down; retry shortly".to_string(),
        ),
        FileJobError::Storage(e) if is_disk_full(e) => (
            StatusCode::INSUFFICIENT_STORAGE,
            "the server's disk is full; retry later".to_string(),
        ),
        FileJobError::Storage(_) | FileJobError::Inference(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "transcription failed".to_string(),
        ),
    }
}

fn job_error_response(e: FileJobError) -> Response {
    let (status, message) = job_error(&e);
    if !matches!(e, FileJobError::File(_)) {
        tracing::warn!(error = %e, "file transcription failed");
    }
    let code = match status {
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::ShuttingDown,
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::BadAudio,
        _ => ErrorCode::Internal,
    };
    let mut r = ApiResponse(ApiError::new(code, message)).into_response();
    *r.status_mut() = status;
    r
}

async fn multipart_of(req: Request) -> Result<Multipart, Response> {
    use axum::extract::FromRequest;
    Multipart::from_request(req, &()).await.map_err(|e| {
        ApiResponse(bad(format!("expected a multipart/form-data body: {e}"))).into_response()
    })
}

/// The model's name as clients see it: its file's stem without `ggml-`.
pub fn model_id(config: &crate::config::Config) -> String {
    config
        .model
        .path
        .file_stem()
        .and_then(|s| s.to_str())
        .map(|s| s.trim_start_matches("ggml-").to_string())
        .unwrap_or_else(|| "whisper".to_string())
}

/// `GET /v1/models`: the one model, under the names clients send.
pub async fn models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = state.config.auth.check(&headers, None) {
        return ApiResponse(e).into_response();
    }
    let id = model_id(&state.config);
    Json(serde_json::json!({
        "object": "list",
        "data": [{"id": id, "object": "model", "created": 0, "owned_by": "steno"}],
    }))
    .into_response()
}

/// `POST /v1/jobs`: the upload on disk, then 202 with the job.
pub async fn create_job(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let files = match admit_job(&state, req.headers(), req.uri().query()).await {
        Ok(files) => files,
        Err(refusal) => return linger(req, refusal),
    };
    match create_job_inner(state, files, req).await {
        Ok(r) | Err(r) => r,
    }
}

/// Auth, room in the job queue and room in the spool, or the refusal.
async fn admit_job(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Arc<FileService>, Response> {
    let files = service(state, headers, query)?;
    files.jobs.admit().map_err(|e| jobs_error(&files, e))?;
    let length = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    {
        let jobs = files.jobs.clone();
        tokio::task::spawn_blocking(move || jobs.check_space(length))
            .await
            .map_err(|_| ApiResponse(internal()).into_response())?
            .map_err(|e| jobs_error(&files, e))?;
    }
    Ok(files)
}

async fn create_job_inner(
    state: Arc<AppState>,
    files: Arc<FileService>,
    req: Request,
) -> Result<Response, Response> {
    let multipart = multipart_of(req).await?;
    let mut upload = receive(&files, multipart).await?;
    let request = check(&state, &upload.fields).map_err(|e| ApiResponse(e).into_response())?;
    if request.stream {
        return Err(ApiResponse(bad(
            "stream is for /v1/audio/transcriptions; a job is polled",
        ))
        .into_response());
    }
    let total_s = probe_upload(upload.path()).await?;
    let temp = upload.take();
    let (file_name, bytes) = (upload.file_name.clone(), upload.bytes);
    let options = JobOptions {
        response_format: request.format,
        prompt: request.options.prompt,
        temperature: request.options.temperature,
        words: request.options.words,
    };
    let jobs = files.jobs.clone();
    let created = tokio::task::spawn_blocking(move || {
        let r = jobs.create(&temp, &file_name, bytes, total_s, options);
        if r.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        r
    })
    .await
    .map_err(|_| ApiResponse(internal()).into_response())?
    .map_err(|e| jobs_error(&files, e))?;
    let mut r = (StatusCode::ACCEPTED, Json(job_json(&created))).into_response();
    if let Ok(v) = format!("/v1/jobs/{}", created.id).parse() {
        r.headers_mut().insert(LOCATION, v);
    }
    Ok(r)
}

fn jobs_error(files: &FileService, e: JobsError) -> Response {
    match e {
        JobsError::QueueFull(_) => {
            crate::metrics::http_refused("jobs_full");
            ApiResponse(busy(e.to_string(), files.config.retry_after_s)).into_response()
        }
        JobsError::SpoolFull { .. } => storage_full(e.to_string()),
        JobsError::NotFound(_) => {
            ApiResponse(ApiError::new(ErrorCode::NotFound, e.to_string())).into_response()
        }
        JobsError::NotDone { .. } => {
            let mut r = ApiResponse(bad(e.to_string())).into_response();
            *r.status_mut() = StatusCode::CONFLICT;
            r
        }
        JobsError::Io(ref io) if is_disk_full(io) => {
            storage_full("the server's disk is full; retry later")
        }
        JobsError::Io(io) => {
            tracing::error!(error = %io, "job storage failed");
            ApiResponse(internal()).into_response()
        }
    }
}

/// A job as the API shows it.
fn job_json(r: &JobRecord) -> serde_json::Value {
    let (percent, eta) = r.progress(now_ms());
    serde_json::json!({
        "id": r.id,
        "object": "transcription.job",
        "status": r.status,
        "file_name": r.file_name,
        "bytes": r.bytes,
        "response_format": r.options.response_format,
        "created_at": r.created_at_ms / 1000,
        "started_at": r.started_at_ms.map(|t| t / 1000),
        "finished_at": r.finished_at_ms.map(|t| t / 1000),
        "progress": {
            "audio_s_done": (r.done_s * 10.0).round() / 10.0,
            "audio_s_total": r.total_s.map(|t| (t * 10.0).round() / 10.0),
            "percent": percent.map(|p| (p * 10.0).round() / 10.0),
            "eta_s": eta.map(|e| e.round()),
        },
        "error": r.error.as_ref().map(|m| serde_json::json!({"message": m})),
        "result_url": (r.status == JobStatus::Done).then(|| format!("/v1/jobs/{}/result", r.id)),
    })
}

/// The file service, for a request that passed the same auth as `/v1/listen`.
fn service(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Arc<FileService>, Response> {
    state
        .config
        .auth
        .check(headers, query)
        .map_err(|e| ApiResponse(e).into_response())?;
    Ok(files_or_404(state)?.clone())
}

/// `GET /v1/jobs`.
pub async fn list_jobs(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match service(&state, &headers, None) {
        Ok(files) => {
            let data: Vec<_> = files.jobs.list().iter().map(job_json).collect();
            Json(serde_json::json!({"object": "list", "data": data})).into_response()
        }
        Err(r) => r,
    }
}

/// `GET /v1/jobs/{id}`.
pub async fn get_job(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let files = match service(&state, &headers, None) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match files.jobs.get(&id) {
        Some(r) => Json(job_json(&r)).into_response(),
        None => jobs_error(&files, JobsError::NotFound(id)),
    }
}

#[derive(Deserialize)]
pub struct ResultQuery {
    format: Option<String>,
}

/// `GET /v1/jobs/{id}/result?format=...`.
pub async fn job_result(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<ResultQuery>,
    headers: HeaderMap,
) -> Response {
    let files = match service(&state, &headers, None) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(record) = files.jobs.get(&id) else {
        return jobs_error(&files, JobsError::NotFound(id));
    };
    let format = match q.format.as_deref() {
        None => record.options.response_format,
        Some(name) => match ResponseFormat::parse(name) {
            Some(f) => f,
            None => {
                return ApiResponse(bad(format!(
                    "format must be json, text, srt, vtt or verbose_json, got {name:?}"
                )))
                .into_response();
            }
        },
    };
    let jobs = files.jobs.clone();
    let read = tokio::task::spawn_blocking(move || jobs.result(&id)).await;
    match read {
        Ok(Ok(t)) => formatted(format, &render(&t, format, record.options.words)),
        Ok(Err(e)) => jobs_error(&files, e),
        Err(_) => ApiResponse(internal()).into_response(),
    }
}

/// `DELETE /v1/jobs/{id}`: cancels a queued or running job.
pub async fn cancel_job(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let files = match service(&state, &headers, None) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let jobs = files.jobs.clone();
    match tokio::task::spawn_blocking(move || jobs.cancel(&id)).await {
        Ok(Ok(r)) => Json(job_json(&r)).into_response(),
        Ok(Err(e)) => jobs_error(&files, e),
        Err(_) => ApiResponse(internal()).into_response(),
    }
}
