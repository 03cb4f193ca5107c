//! Accuracy on real human speech: every recording of ../shared/data/speech
//! streamed through the WebSocket path, scored against its reference, next to
//! the same model transcribing each whole file offline with the full 30 s window.

mod common;

use std::time::{Duration, Instant};

use common::speech::{Recording, manifest};
use common::wer::edits;
use common::*;
use steno_server::worker::whisper::{FULL_AUDIO_CTX, WhisperModel};

/// The LibriSpeech files through the streaming path may not exceed this WER.
const MAX_STREAMING_LIBRISPEECH_WER: f64 = 0.06;

fn is_librispeech(r: &Recording) -> bool {
    r.path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("ls_")
}

struct Score {
    edits: usize,
    words: usize,
}

impl Score {
    fn add(&mut self, reference: &str, hypothesis: &str) -> f64 {
        let (e, n) = edits(reference, hypothesis);
        self.edits += e;
        self.words += n;
        e as f64 / n.max(1) as f64
    }
    fn wer(&self) -> f64 {
        self.edits as f64 / self.words.max(1) as f64
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_recordings_through_the_websocket_path() {
    let Some(dir) = shared_speech_dir() else {
        return;
    };
    let recordings = manifest(&dir).unwrap();
    let server = TestServer::start(test_config()).await;
    let (mut libri, mut all) = (Score { edits: 0, words: 0 }, Score { edits: 0, words: 0 });
    let mut audio_s = 0.0;
    let mut processing_ms = 0u64;
    let started = Instant::now();
    for r in &recordings {
        let mut samples = steno_testkit::wav::read_i16(&r.path).unwrap();
        // Trailing silence so the last utterance closes on its own too.
        samples.extend(std::iter::repeat_n(0, 16 * 800));
        let mut ws = server.connect("partials=false").await;
        send_all(&mut ws, &opus_packets(&samples, 20), Duration::ZERO).await;
        send_json(&mut ws, r#"{"type":"end"}"#).await;
        let t = collect(&mut ws, Duration::from_secs(120)).await;
        assert_eq!(
            t.close_code(),
            Some(1000),
            "{}: {:?}",
            r.path.display(),
            t.messages
        );
        let text = t.final_text();
        processing_ms += t
            .messages
            .iter()
            .filter_map(|m| match m {
                steno_protocol::ServerMessage::Final { processing_ms, .. } => Some(*processing_ms),
                _ => None,
            })
            .sum::<u64>();
        audio_s += r.duration_s;
        let w = all.add(&r.transcript, &text);
        if is_librispeech(r) {
            libri.add(&r.transcript, &text);
        }
        println!(
            "{:45} {:2} finals  WER {:5.1}%  {}",
            r.path.file_name().unwrap().to_string_lossy(),
            t.finals().len(),
            w * 100.0,
            text
        );
    }
    println!(
        "streaming: LibriSpeech WER {:.2}% ({} words), all files {:.2}%; {:.1} s of audio, model time {:.3} s per s of audio, wall {:.1} s",
        libri.wer() * 100.0,
        libri.words,
        all.wer() * 100.0,
        audio_s,
        processing_ms as f64 / 1000.0 / audio_s,
        started.elapsed().as_secs_f64()
    );
    assert!(
        libri.wer() <= MAX_STREAMING_LIBRISPEECH_WER,
        "LibriSpeech WER through the WebSocket path {:.2}% is over {:.0}%",
        libri.wer() * 100.0,
        MAX_STREAMING_LIBRISPEECH_WER * 100.0
    );
    server.stop().await;
}

/// The reference figure: whole files, full window, no VAD. Slow (about
/// 4 minutes on 2 cores), so not in every run:
/// `cargo test --release --test shared_set -- --ignored --nocapture`.
#[test]
#[ignore]
fn shared_recordings_offline_full_window_baseline() {
    let Some(dir) = shared_speech_dir() else {
        return;
    };
    let config = test_config();
    let model = WhisperModel::load(&config.model, 2).unwrap();
    let mut t = model.transcriber().unwrap();
    let mut libri = Score { edits: 0, words: 0 };
    let mut audio_s = 0.0;
    let started = Instant::now();
    for r in manifest(&dir).unwrap().iter().filter(|r| is_librispeech(r)) {
        let audio = steno_testkit::wav::read_f32(&r.path).unwrap();
        // Whole files up to 30 s fit one window; the 29.4 s file is the longest.
        let text = t.transcribe_with_ctx(&audio, FULL_AUDIO_CTX).unwrap();
        libri.add(&r.transcript, &text);
        audio_s += r.duration_s;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "offline full window: LibriSpeech WER {:.2}% ({} words); {:.3} s of compute per s of audio (2 threads)",
        libri.wer() * 100.0,
        libri.words,
        elapsed / audio_s
    );
    assert!(
        libri.wer() < 0.08,
        "the converted model itself is broken: WER {:.2}%",
        libri.wer() * 100.0
    );
}
