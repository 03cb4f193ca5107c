//! Fault injection without touching the server: a `TranscriberFactory`
//! that wraps the real Whisper model and misbehaves on audio that carries a
//! mark in the lowest bits of its samples (inaudible, and invisible to the
//! VAD), and a server started with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steno_server::config::Config;
use steno_server::server::ModelLoader;
use steno_server::worker::JobKind;
use steno_server::worker::whisper::WhisperModel;
use steno_server::worker::{DecodeOptions, Decoded, Transcriber, TranscriberFactory, WorkerError};

use crate::common::TestServer;
use crate::common::pcm_chunks;
use crate::common::speech::{espeak, silence};

/// Marks in the lowest three bits of every sample of a stretch of audio.
pub const POISON_MARK: i16 = 0b101;
pub const SLOW_MARK: i16 = 0b011;
/// A job carries a mark when this many samples in a row have it (0.5 s;
/// unmarked audio has it by chance with probability 8^-8000).
pub const MARK_RUN: usize = 8_000;

/// What the faulty transcribers saw; shared with the test.
#[derive(Clone)]
pub struct Faults {
    pub slow_for: Duration,
    counts: Arc<[AtomicUsize; 3]>,
}

impl Faults {
    pub fn new(slow_for: Duration) -> Self {
        Self {
            slow_for,
            counts: Arc::new(Default::default()),
        }
    }
    pub fn slow_started(&self) -> usize {
        self.counts[0].load(Ordering::SeqCst)
    }
    pub fn slow_finished(&self) -> usize {
        self.counts[1].load(Ordering::SeqCst)
    }
    pub fn poisoned(&self) -> usize {
        self.counts[2].load(Ordering::SeqCst)
    }
}

/// The real Whisper model, wrapped: a final job (or early final) whose audio
/// carries `POISON_MARK` panics; one that carries `SLOW_MARK` sleeps
/// `slow_for` first.
pub struct FaultyFactory {
    model: WhisperModel,
    faults: Faults,
}

impl TranscriberFactory for FaultyFactory {
    fn create(&self) -> Result<Box<dyn Transcriber>, WorkerError> {
        Ok(Box::new(FaultyTranscriber {
            inner: self.model.create()?,
            faults: self.faults.clone(),
        }))
    }

    fn threads_per_worker(&self) -> usize {
        self.model.threads_per_worker()
    }
}

pub struct FaultyTranscriber {
    inner: Box<dyn Transcriber>,
    faults: Faults,
}

impl Transcriber for FaultyTranscriber {
    fn transcribe(
        &mut self,
        audio: &[f32],
        kind: JobKind,
        options: &DecodeOptions,
    ) -> Result<Decoded, WorkerError> {
        let final_work = kind != JobKind::Partial;
        if final_work && carries(audio, POISON_MARK) {
            self.faults.counts[2].fetch_add(1, Ordering::SeqCst);
            panic!("injected fault: a poisoned job");
        }
        let slow = final_work && carries(audio, SLOW_MARK);
        if slow {
            self.faults.counts[0].fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(self.faults.slow_for);
        }
        let text = self.inner.transcribe(audio, kind, options);
        if slow {
            self.faults.counts[1].fetch_add(1, Ordering::SeqCst);
        }
        text
    }

    fn set_threads(&mut self, threads: usize) {
        self.inner.set_threads(threads);
    }

    fn set_abort_flag(&mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        self.inner.set_abort_flag(flag);
    }
}

pub fn carries(audio: &[f32], mark: i16) -> bool {
    let mut run = 0;
    for &s in audio {
        let sample = (s * 32_768.0) as i16;
        run = if sample & 0b111 == mark { run + 1 } else { 0 };
        if run >= MARK_RUN {
            return true;
        }
    }
    false
}

/// `sentence` as 16 kHz PCM chunks of 20 ms, the speech marked with `mark`,
/// with 300 ms of silence before and 1.2 s after (so the utterance ends).
pub fn marked_pcm(sentence: &str, mark: i16) -> Vec<Vec<u8>> {
    let mut audio = silence(300);
    audio.extend(espeak(sentence).into_iter().map(|s| (s & !0b111) | mark));
    audio.extend(silence(1200));
    pcm_chunks(&audio, 20, 16_000)
}

/// A steno server on loopback whose model is wrapped in a `FaultyFactory`.
pub async fn start_faulty_server(config: Config, faults: Faults) -> TestServer {
    let model = config.model.clone();
    let threads = config.workers.threads_per_worker;
    let loader: ModelLoader = Box::new(move || {
        let model = WhisperModel::load(&model, threads)?;
        Ok(Arc::new(FaultyFactory { model, faults }) as Arc<dyn TranscriberFactory>)
    });
    TestServer::start_with_loader(config, loader).await
}
