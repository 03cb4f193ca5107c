//! Benchmarks for the audio front end: Opus packets, the VAD segmenter and the ring buffer, one second of audio per iteration.
//!
//! Every benchmark processes exactly one second of 16 kHz audio per
//! iteration and declares it as one element, so Criterion's throughput line
//! (`elem/s`) reads directly as seconds of audio handled per second: the
//! real-time factor's inverse. `Kelem/s` means thousands of times real time.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opus::{Application, Channels, Encoder};
use steno_audio::codec::{AudioDecoder, Encoding};
use steno_audio::ring::AudioRing;
use steno_audio::vad::{SegmentEvent, Segmenter, SegmenterConfig};

const RATE_HZ: usize = 16_000;

/// One second of a voice-like signal: a 150 Hz buzz with harmonics under a
/// syllable-rate envelope, half of it silent, so the VAD sees both speech and
/// pauses.
fn one_second(rate_hz: usize) -> Vec<i16> {
    (0..rate_hz)
        .map(|n| {
            let t = n as f64 / rate_hz as f64;
            if t >= 0.5 {
                return 0;
            }
            let envelope = (std::f64::consts::PI * 4.0 * t).sin().abs();
            let buzz: f64 = (1..=8)
                .map(|h| (2.0 * std::f64::consts::PI * 150.0 * h as f64 * t).sin() / h as f64)
                .sum();
            (6_000.0 * envelope * buzz) as i16
        })
        .collect()
}

fn opus_decode(c: &mut Criterion) {
    // 50 packets of 20 ms from a 48 kHz mono encoder, as a browser sends them.
    let mut encoder = Encoder::new(48_000, Channels::Mono, Application::Voip).unwrap();
    let packets: Vec<Vec<u8>> = one_second(48_000)
        .chunks_exact(960)
        .map(|frame| encoder.encode_vec(frame, 4_000).unwrap())
        .collect();
    let mut decoder = AudioDecoder::new(Encoding::Opus, 0).unwrap();
    let mut out = Vec::with_capacity(RATE_HZ);

    let mut group = c.benchmark_group("front_end");
    group.throughput(Throughput::Elements(1));
    group.bench_function("opus_decode_1s_20ms_packets", |b| {
        b.iter(|| {
            out.clear();
            for packet in &packets {
                decoder.decode(black_box(packet), &mut out).unwrap();
            }
            black_box(out.len())
        })
    });
    group.finish();
}

fn pcm_resample(c: &mut Criterion) {
    let bytes: Vec<u8> = one_second(48_000)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let mut decoder = AudioDecoder::new(Encoding::PcmS16le, 48_000).unwrap();
    let mut out = Vec::with_capacity(RATE_HZ);

    let mut group = c.benchmark_group("front_end");
    group.throughput(Throughput::Elements(1));
    group.bench_function("pcm_48k_to_16k_1s_20ms_chunks", |b| {
        b.iter(|| {
            out.clear();
            for chunk in bytes.chunks(1_920) {
                decoder.decode(black_box(chunk), &mut out).unwrap();
            }
            black_box(out.len())
        })
    });
    group.finish();
}

fn segmenter(c: &mut Criterion) {
    // One long-running stream, as in a session: utterances open and close
    // across iterations.
    let audio = one_second(RATE_HZ);
    let mut segmenter = Segmenter::new(&SegmenterConfig::default()).unwrap();
    let mut events: Vec<SegmentEvent> = Vec::new();

    let mut group = c.benchmark_group("front_end");
    group.throughput(Throughput::Elements(1));
    group.bench_function("vad_segmenter_1s_20ms_chunks", |b| {
        b.iter(|| {
            events.clear();
            for chunk in audio.chunks(320) {
                segmenter.push(black_box(chunk), &mut events);
            }
            black_box(events.len())
        })
    });
    group.finish();
}

fn ring(c: &mut Criterion) {
    // Push a second in 20 ms chunks into a ring holding 20 s, then copy a
    // 5 s window out as f32: what a partial result costs.
    let audio = one_second(RATE_HZ);
    let mut ring = AudioRing::with_capacity(20 * RATE_HZ);
    let mut window = Vec::with_capacity(5 * RATE_HZ);

    let mut group = c.benchmark_group("front_end");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ring_push_1s_and_copy_5s_window", |b| {
        b.iter(|| {
            for chunk in audio.chunks(320) {
                ring.push_overwrite(black_box(chunk));
            }
            window.clear();
            let len = ring.len();
            ring.copy_range_to_f32(len.saturating_sub(5 * RATE_HZ)..len, &mut window);
            black_box(window.len())
        })
    });
    group.finish();
}

criterion_group!(benches, opus_decode, pcm_resample, segmenter, ring);
criterion_main!(benches);
