//! Transcribing one file: a path and options in; decoding, VAD and packing on a blocking thread, windows on the batch lane, and the file's timed transcript out, window by window.
//!
//! ```text
//! steno-decode thread: FileDecoder -> Segmenter -> Packer --windows (bounded, 2)--+
//!                                                                                  v
//! this task: push_batch (waits for room) -> results in window order -> store -> on_window
//! ```
//!
//! Windows are deterministic (same file, same config, same windows), so a
//! job that resumes after a restart skips the windows its store already
//! holds. A window whose inference was aborted for a live final is sent
//! again. Memory stays bounded whatever the file's length: a few windows'
//! audio at a time.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use steno_audio::file::{FileDecoder, FileError};
use steno_audio::vad::{SegmentEvent, Segmenter, SegmenterConfig};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::format::{TimedSegment, TimedWord, Transcription};
use super::window::{Packer, Piece, Window};
use crate::worker::{DecodeOptions, Job, JobKind, JobQueue, JobResult, WorkerError};

/// What a caller asks of one file.
#[derive(Clone, Debug, Default)]
pub struct FileOptions {
    /// Conditions the first window (OpenAI's `prompt`).
    pub prompt: Option<String>,
    pub temperature: f32,
    /// Word times in the result.
    pub words: bool,
}

/// How a file is cut and how much of it is in flight.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The VAD for files (longer utterances than live).
    pub vad: SegmenterConfig,
    pub window_s: f32,
    pub gap_ms: u32,
    /// Windows submitted at once (the pool's workers, plus one waiting).
    pub in_flight: usize,
    /// Condition each window on the one before (serialises the windows).
    pub prompt_previous: bool,
    /// Reported in results.
    pub language: String,
}

/// Why a file could not be transcribed.
#[derive(Debug, thiserror::Error)]
pub enum FileJobError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("the server is stopping")]
    Shutdown,
    #[error("the job was cancelled")]
    Cancelled,
    #[error("transcription failed: {0}")]
    Inference(String),
    #[error("cannot store the result: {0}")]
    Storage(#[from] std::io::Error),
}

/// How far a file is.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// File seconds up to the end of the last finished window.
    pub done_s: f64,
    /// The file's length, once known (from its header, else at the end).
    pub total_s: Option<f64>,
}

/// Where finished windows are kept: a durable job's spool folder, or
/// nowhere (a request or the CLI keeps them in the result only).
pub trait WindowStore: Send {
    /// The segments of window `index`, if it was finished before.
    fn done(&self, index: u32) -> impl Future<Output = Option<Vec<TimedSegment>>> + Send;
    fn save(
        &mut self,
        index: u32,
        segments: Vec<TimedSegment>,
    ) -> impl Future<Output = Result<(), std::io::Error>> + Send;
}

/// Keeps nothing: for work that is not resumed.
pub struct NoStore;

impl WindowStore for NoStore {
    async fn done(&self, _index: u32) -> Option<Vec<TimedSegment>> {
        None
    }

    async fn save(
        &mut self,
        _index: u32,
        _segments: Vec<TimedSegment>,
    ) -> Result<(), std::io::Error> {
        Ok(())
    }
}

/// What the decoding thread hands on.
enum Decoded {
    /// The header's length, first.
    Duration(Option<f64>),
    Window(Window),
    /// The end of the file: its real length.
    End {
        duration_s: f64,
    },
}

/// A window on its way through the pool.
struct InFlight {
    index: u32,
    pieces: Vec<Piece>,
    /// File time at the end of its last piece.
    end_s: f64,
    /// Seconds of speech in it.
    speech_s: f64,
    state: Stage,
}

enum Stage {
    /// Done before (resumed): nothing to run.
    Stored(Vec<TimedSegment>),
    Running {
        audio: Vec<f32>,
        result: oneshot::Receiver<JobResult>,
        submitted: Instant,
    },
}

/// Opens `path` and decodes its first packet: the checks worth doing before
/// accepting a file. Blocking. Returns the length its header gives.
pub fn probe(path: &Path) -> Result<Option<f64>, FileError> {
    let mut decoder = FileDecoder::open(path)?;
    let mut first = Vec::new();
    if !decoder.read(&mut first)? {
        return Err(FileError::NoAudio("the audio track is empty".into()));
    }
    Ok(decoder.duration_s())
}

/// Transcribes the file at `path`; `on_window` sees every finished window's
/// segments (in file time) and the progress.
#[allow(clippy::too_many_arguments)]
pub async fn transcribe_file<S: WindowStore>(
    queue: &Arc<JobQueue>,
    job_id: u64,
    path: &Path,
    plan: &Plan,
    options: &FileOptions,
    store: &mut S,
    mut on_window: impl FnMut(&[TimedSegment], Progress),
    cancel: &CancellationToken,
) -> Result<Transcription, FileJobError> {
    let (tx, mut rx) = mpsc::channel::<Result<Decoded, FileError>>(2);
    let decoding = spawn_decoder(path.to_path_buf(), plan.clone(), tx)?;
    let mut progress = Progress::default();
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut all: Vec<TimedSegment> = Vec::new();
    let mut decoded_all = false;
    let mut previous_text = String::new();
    let in_flight_max = if plan.prompt_previous {
        1
    } else {
        plan.in_flight.max(1)
    };
    let outcome = loop {
        // Take windows from the decoder while there is room in flight.
        if !decoded_all && in_flight.len() < in_flight_max {
            let next = tokio::select! {
                next = rx.recv() => next,
                _ = cancel.cancelled() => break Err(FileJobError::Cancelled),
            };
            match next {
                Some(Ok(Decoded::Duration(d))) => progress.total_s = d,
                Some(Ok(Decoded::Window(w))) => {
                    let prompt = if plan.prompt_previous && !previous_text.is_empty() {
                        Some(tail(&previous_text, 200))
                    } else if w.index == 0 {
                        options.prompt.clone()
                    } else {
                        None
                    };
                    let decode = DecodeOptions {
                        words: options.words,
                        long_form: true,
                        prompt,
                        temperature: options.temperature,
                        ..DecodeOptions::default()
                    };
                    match submit(queue, job_id, w, store, decode, cancel).await {
                        Ok(f) => in_flight.push_back(f),
                        Err(e) => break Err(e),
                    }
                }
                Some(Ok(Decoded::End { duration_s })) => {
                    progress.total_s = Some(duration_s);
                    decoded_all = true;
                }
                Some(Err(e)) => break Err(e.into()),
                None => decoded_all = true,
            }
            continue;
        }
        // Then wait for the oldest window.
        let Some(mut front) = in_flight.pop_front() else {
            break Ok(());
        };
        let segments = match front.state {
            Stage::Stored(s) => s,
            Stage::Running {
                audio,
                result,
                submitted,
            } => {
                let r = tokio::select! {
                    r = result => r,
                    _ = cancel.cancelled() => break Err(FileJobError::Cancelled),
                };
                match r {
                    Ok(Ok(t)) => {
                        tracing::debug!(
                            window = front.index,
                            speech_s = front.speech_s,
                            took_ms = submitted.elapsed().as_millis() as u64,
                            "file window transcribed"
                        );
                        let segments = to_file_time(&front.pieces, t.segments);
                        if let Err(e) = store.save(front.index, segments.clone()).await {
                            break Err(e.into());
                        }
                        segments
                    }
                    // A live final took the worker: run it again.
                    Ok(Err(WorkerError::Aborted)) => {
                        let decode = DecodeOptions {
                            words: options.words,
                            long_form: true,
                            prompt: None,
                            temperature: options.temperature,
                            ..DecodeOptions::default()
                        };
                        match push(queue, job_id, audio, decode, cancel).await {
                            Ok((audio, result)) => {
                                front.state = Stage::Running {
                                    audio,
                                    result,
                                    submitted: Instant::now(),
                                };
                                in_flight.push_front(front);
                                continue;
                            }
                            Err(e) => break Err(e),
                        }
                    }
                    Ok(Err(e)) => break Err(FileJobError::Inference(e.to_string())),
                    Err(_) => break Err(FileJobError::Shutdown),
                }
            }
        };
        progress.done_s = progress.done_s.max(front.end_s);
        if plan.prompt_previous {
            previous_text = segments
                .iter()
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
        }
        on_window(&segments, progress);
        all.extend(segments);
    };
    drop(rx);
    let _ = decoding.join();
    outcome?;
    let text = all
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Transcription {
        text,
        duration_s: progress.total_s.unwrap_or(progress.done_s),
        language: plan.language.clone(),
        segments: all,
    })
}

/// Queues window `w`, or takes its stored result.
async fn submit<S: WindowStore>(
    queue: &Arc<JobQueue>,
    job_id: u64,
    w: Window,
    store: &mut S,
    decode: DecodeOptions,
    cancel: &CancellationToken,
) -> Result<InFlight, FileJobError> {
    let end_s = w
        .pieces
        .last()
        .map_or(0.0, |p| (p.file_start + p.samples) as f64 / 16_000.0);
    let speech_s = w.speech_s();
    let state = match store.done(w.index).await {
        Some(segments) => Stage::Stored(segments),
        None => {
            let (audio, result) = push(queue, job_id, w.audio, decode, cancel).await?;
            Stage::Running {
                audio,
                result,
                submitted: Instant::now(),
            }
        }
    };
    Ok(InFlight {
        index: w.index,
        pieces: w.pieces,
        end_s,
        speech_s,
        state,
    })
}

/// Puts audio on the batch lane (waiting for room); keeps a copy to run
/// again if a live final aborts it.
async fn push(
    queue: &Arc<JobQueue>,
    job_id: u64,
    audio: Vec<f32>,
    options: DecodeOptions,
    cancel: &CancellationToken,
) -> Result<(Vec<f32>, oneshot::Receiver<JobResult>), FileJobError> {
    let (reply, result) = oneshot::channel();
    let job = Job {
        kind: JobKind::Batch,
        session: job_id,
        audio: audio.clone(),
        options,
        reply,
        enqueued_at: Instant::now(),
        stale_after: Duration::MAX,
    };
    tokio::select! {
        r = queue.push_batch(job) => r.map_err(|_| FileJobError::Shutdown)?,
        _ = cancel.cancelled() => return Err(FileJobError::Cancelled),
    }
    Ok((audio, result))
}

/// Window times to file times, segments and words.
fn to_file_time(pieces: &[Piece], segments: Vec<crate::worker::Segment>) -> Vec<TimedSegment> {
    let window = Window {
        index: 0,
        audio: Vec::new(),
        pieces: pieces.to_vec(),
    };
    let span = |start_ms: u64, end_ms: u64| {
        let (s, e) = window.file_span_ms(start_ms, end_ms);
        (s as f64 / 1000.0, e as f64 / 1000.0)
    };
    segments
        .into_iter()
        .map(|seg| {
            let (start_s, end_s) = span(seg.start_ms, seg.end_ms);
            TimedSegment {
                start_s,
                end_s,
                text: seg.text,
                words: seg
                    .words
                    .into_iter()
                    .map(|w| {
                        let (start_s, end_s) = span(w.start_ms, w.end_ms);
                        TimedWord {
                            word: w.text,
                            start_s,
                            end_s,
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The last `chars` characters of `text`, from a word start.
fn tail(text: &str, chars: usize) -> String {
    let skip = text.chars().count().saturating_sub(chars);
    let rest: String = text.chars().skip(skip).collect();
    match rest.find(' ') {
        Some(i) if skip > 0 => rest[i + 1..].to_string(),
        _ => rest,
    }
}

/// Decodes, segments and packs on a named thread; stops when the receiver
/// is gone.
fn spawn_decoder(
    path: PathBuf,
    plan: Plan,
    tx: mpsc::Sender<Result<Decoded, FileError>>,
) -> Result<std::thread::JoinHandle<()>, FileJobError> {
    Ok(std::thread::Builder::new()
        .name("steno-decode".into())
        .spawn(move || {
            if let Err(e) = decode_into(&path, &plan, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        })?)
}

fn decode_into(
    path: &Path,
    plan: &Plan,
    tx: &mpsc::Sender<Result<Decoded, FileError>>,
) -> Result<(), FileError> {
    let gone = || FileError::Io(std::io::Error::other("the transcription stopped"));
    let mut decoder = FileDecoder::open(path)?;
    tx.blocking_send(Ok(Decoded::Duration(decoder.duration_s())))
        .map_err(|_| gone())?;
    let mut segmenter = Segmenter::new(&plan.vad)
        .map_err(|e| FileError::Io(std::io::Error::other(e.to_string())))?;
    let mut packer = Packer::new(plan.window_s, plan.gap_ms);
    let mut samples = Vec::with_capacity(16_000);
    let mut events = Vec::new();
    let send = |w: Window| tx.blocking_send(Ok(Decoded::Window(w))).map_err(|_| gone());
    loop {
        samples.clear();
        let more = decoder.read(&mut samples)?;
        segmenter.push(&samples, &mut events);
        for event in events.drain(..) {
            if let SegmentEvent::UtteranceEnded(u) = event {
                for w in packer.push(u) {
                    send(w)?;
                }
            }
        }
        if !more {
            break;
        }
    }
    if let Some(u) = segmenter.flush() {
        for w in packer.push(u) {
            send(w)?;
        }
    }
    for w in packer.finish() {
        send(w)?;
    }
    let duration_s = decoder.samples_read() as f64 / 16_000.0;
    tx.blocking_send(Ok(Decoded::End { duration_s }))
        .map_err(|_| gone())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_tail_starts_at_a_word() {
        assert_eq!(tail("one two three four", 9), "four");
        assert_eq!(tail("short", 200), "short");
    }
}
