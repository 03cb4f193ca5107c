//! One Whisper inference of a 2 s, 5 s and 10 s utterance of real speech,
//! with the configured (scaled) encoder window against the full 30 s window.
//!
//! The speech is cut from the shared recordings (`../shared/data/speech`) or,
//! without them, rendered by espeak-ng; the model is the configured one
//! (config.toml + STENO_* overrides), one state, `workers.threads_per_worker`
//! threads: exactly what one worker does for one final. Skips with a message
//! when the model file is missing.
//!
//! `cargo bench --bench inference`; try `STENO_MODEL__FLASH_ATTN=true` or
//! `STENO_WORKERS__THREADS_PER_WORKER=2` to compare settings.

use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use steno_server::config::Config;
use steno_server::worker::whisper::{FULL_AUDIO_CTX, WhisperModel};

const LENGTHS_S: [usize; 3] = [2, 5, 10];
const SAMPLE_RATE_HZ: usize = 16_000;

use steno_testkit::paths::repo_root;

/// The 16.7 s LibriSpeech file holds continuous speech to cut 10 s from.
const SHARED_FILE: &str = "ls_test-clean_1221-135766-0001.wav";

/// At least `LENGTHS_S.max()` seconds of speech, and where it came from.
fn speech() -> Option<(Vec<f32>, String)> {
    let shared = repo_root().join("../shared/data/speech").join(SHARED_FILE);
    if let Ok(audio) = steno_audio::wav::read_f32(&shared) {
        return Some((audio, SHARED_FILE.to_string()));
    }
    let text = "Whisper encodes a fixed window of audio whatever the length of the utterance, \
                so a short sentence costs nearly as much as a long one unless the window shrinks. \
                This benchmark measures that cost on one worker thread.";
    let audio = espeak(text)?;
    Some((audio, "espeak-ng".to_string()))
}

fn espeak(text: &str) -> Option<Vec<f32>> {
    let samples = steno_testkit::speech::try_espeak_at(text, 16_000).ok()?;
    Some(samples.into_iter().map(|s| s as f32 / 32768.0).collect())
}

fn config() -> Config {
    let file = repo_root().join("config.toml");
    let mut config = Config::load(
        Some(file.as_path()).filter(|p| p.is_file()),
        std::env::vars(),
    )
    .expect("config.toml and STENO_* overrides are valid");
    if config.model.path.is_relative() {
        config.model.path = repo_root().join(&config.model.path);
    }
    config
}

fn bench(c: &mut Criterion, model: &WhisperModel, audio: &[f32], source: &str) {
    let mut transcriber = model.transcriber().expect("a whisper state");
    let mut group = c.benchmark_group("whisper_inference");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for seconds in LENGTHS_S {
        let clip = &audio[..(seconds * SAMPLE_RATE_HZ).min(audio.len())];
        let scaled = model.policy().audio_ctx(clip.len());
        let text = transcriber
            .transcribe_with_ctx(clip, scaled)
            .expect("inference works");
        eprintln!("{seconds} s of {source}, audio_ctx {scaled}: {text}");
        for (window, ctx) in [("scaled_ctx", scaled), ("full_ctx_1500", FULL_AUDIO_CTX)] {
            group.bench_with_input(
                BenchmarkId::new(window, format!("{seconds}s")),
                &ctx,
                |b, &ctx| b.iter(|| transcriber.transcribe_with_ctx(clip, ctx).unwrap()),
            );
        }
    }
    group.finish();
    phases(&mut transcriber, model, audio);
}

/// Where one final's time goes at the configured window: medians of
/// `RUNS` calls, printed beside the Criterion figures.
fn phases(
    transcriber: &mut steno_server::worker::whisper::WhisperTranscriber,
    model: &WhisperModel,
    audio: &[f32],
) {
    const RUNS: usize = 7;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!("\nphases of one final (median of {RUNS}, configured window):");
    eprintln!("utterance  total    mel      encoder  decoder+sampling+copies");
    for seconds in LENGTHS_S {
        let clip = &audio[..(seconds * SAMPLE_RATE_HZ).min(audio.len())];
        let ctx = model.policy().audio_ctx(clip.len());
        let mut runs: Vec<_> = (0..RUNS)
            .map(|_| transcriber.phases(clip, ctx).expect("inference works"))
            .collect();
        let median = |f: &dyn Fn(&steno_server::worker::whisper::Phases) -> f64,
                      runs: &mut Vec<steno_server::worker::whisper::Phases>| {
            runs.sort_by(|a, b| f(a).total_cmp(&f(b)));
            f(&runs[RUNS / 2])
        };
        let total = median(&|p| ms(p.total), &mut runs);
        let mel = median(&|p| ms(p.mel), &mut runs);
        let encoder = median(&|p| ms(p.encoder), &mut runs);
        eprintln!(
            "{seconds:>5} s   {total:>6.0} ms {mel:>5.1} ms {encoder:>6.0} ms {:>6.0} ms ({:.0}% outside the encoder)",
            total - mel - encoder,
            100.0 * (total - encoder) / total
        );
    }
}

fn main() {
    let config = config();
    if !Path::new(&config.model.path).is_file() {
        eprintln!(
            "SKIPPED: model {} not found (run `make model`)",
            config.model.path.display()
        );
        return;
    }
    let Some((audio, source)) = speech() else {
        eprintln!(
            "SKIPPED: neither ../shared/data/speech/{SHARED_FILE} nor espeak-ng + sox is available"
        );
        return;
    };
    let threads = config.workers.threads_per_worker;
    let model = WhisperModel::load(&config.model, threads).expect("the model loads");
    eprintln!(
        "model {}, {threads} thread(s) per inference, min_audio_ctx {}, flash_attn {}",
        config.model.path.display(),
        config.model.min_audio_ctx,
        config.model.flash_attn
    );
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &model, &audio, &source);
    c.final_summary();
}
