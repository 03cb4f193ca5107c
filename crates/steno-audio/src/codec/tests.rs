//! Tests for the codec: PCM parsing and resampling, Opus decoding and its error paths.

use std::f64::consts::PI;

use opus::{Application, Channels, Encoder};
use proptest::prelude::*;

use super::*;

const OUT_HZ: f64 = OUTPUT_SAMPLE_RATE_HZ as f64;

fn sine(freq_hz: f64, rate_hz: u32, seconds: f64, amplitude: f64) -> Vec<i16> {
    let count = (f64::from(rate_hz) * seconds).round() as usize;
    (0..count)
        .map(|n| {
            (amplitude * (2.0 * PI * freq_hz * n as f64 / f64::from(rate_hz)).sin()).round() as i16
        })
        .collect()
}

fn to_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn rms(samples: &[i16]) -> f64 {
    (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// Amplitude of the `freq_hz` component (a single-bin DFT) of a 16 kHz signal.
fn tone_amplitude(samples: &[i16], freq_hz: f64) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (n, &s) in samples.iter().enumerate() {
        let phase = 2.0 * PI * freq_hz * n as f64 / OUT_HZ;
        re += f64::from(s) * phase.cos();
        im += f64::from(s) * phase.sin();
    }
    2.0 * (re * re + im * im).sqrt() / samples.len() as f64
}

/// Frequency from the rising zero crossings, interpolated to a fraction of a sample.
fn zero_crossing_frequency(samples: &[i16]) -> f64 {
    let crossings: Vec<f64> = samples
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0 && w[1] >= 0)
        .map(|(n, w)| n as f64 + f64::from(-w[0]) / f64::from(w[1] - w[0]))
        .collect();
    let periods = (crossings.len() - 1) as f64;
    periods * OUT_HZ / (crossings[crossings.len() - 1] - crossings[0])
}

fn decode_pcm(rate_hz: u32, samples: &[i16]) -> Vec<i16> {
    let mut decoder = AudioDecoder::new(Encoding::PcmS16le, rate_hz).unwrap();
    let mut out = Vec::new();
    let appended = decoder.decode(&to_bytes(samples), &mut out).unwrap();
    assert_eq!(appended, out.len());
    out
}

#[test]
fn decoder_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<AudioDecoder>();
}

#[test]
fn pcm_at_16_khz_passes_through_untouched() {
    let input = sine(440.0, 16_000, 0.1, 12_000.0);
    assert_eq!(decode_pcm(16_000, &input), input);
}

#[test]
fn pcm_odd_byte_count_is_refused_whole() {
    let mut decoder = AudioDecoder::new(Encoding::PcmS16le, 16_000).unwrap();
    let mut out = vec![7];
    let err = decoder.decode(&[1, 2, 3], &mut out).unwrap_err();
    assert!(
        matches!(err, CodecError::OddByteCount { len: 3 }),
        "{err:?}"
    );
    assert_eq!(out, [7], "a refused message appends nothing");
    // The next good message still decodes.
    assert_eq!(decoder.decode(&[1, 0, 2, 0], &mut out).unwrap(), 2);
    assert_eq!(out, [7, 1, 2]);
}

#[test]
fn unsupported_pcm_rate_is_refused() {
    for rate in [0, 11_025, 22_050, 44_100, 96_000] {
        let err = AudioDecoder::new(Encoding::PcmS16le, rate).err().unwrap();
        assert!(
            matches!(err, CodecError::UnsupportedSampleRate { sample_rate_hz } if sample_rate_hz == rate)
        );
    }
    // Opus ignores the rate.
    assert!(AudioDecoder::new(Encoding::Opus, 0).is_ok());
}

#[test]
fn empty_message_is_refused_for_both_encodings() {
    for encoding in [Encoding::Opus, Encoding::PcmS16le] {
        let mut decoder = AudioDecoder::new(encoding, 16_000).unwrap();
        let mut out = Vec::new();
        assert!(matches!(
            decoder.decode(&[], &mut out),
            Err(CodecError::EmptyPacket)
        ));
        assert!(
            out.is_empty(),
            "{encoding:?} must not invent concealment audio"
        );
    }
}

#[test]
fn encoding_names_on_the_wire() {
    assert_eq!(
        serde_json::to_string(&Encoding::PcmS16le).unwrap(),
        "\"pcm_s16le\""
    );
    assert_eq!(
        serde_json::from_str::<Encoding>("\"opus\"").unwrap(),
        Encoding::Opus
    );
}

#[test]
fn resampled_sine_keeps_its_frequency_length_and_level() {
    for rate in [8_000, 24_000, 48_000] {
        let input = sine(1_000.0, rate, 1.0, 10_000.0);
        let out = decode_pcm(rate, &input);
        let expected_len = input.len() * 16_000 / rate as usize;
        assert!(
            out.len().abs_diff(expected_len) <= 2,
            "{rate} Hz: {} samples, expected {expected_len}",
            out.len()
        );
        // Skip the filter's start-up (a few ms) before measuring.
        let steady = &out[200..];
        let freq = zero_crossing_frequency(steady);
        assert!(
            (freq - 1_000.0).abs() < 0.5,
            "{rate} Hz: measured {freq} Hz"
        );
        let level_db = 20.0 * (rms(steady) / rms(&input)).log10();
        assert!(
            level_db.abs() < 0.1,
            "{rate} Hz: level changed by {level_db} dB"
        );
    }
}

#[test]
fn decimation_filters_out_what_would_alias() {
    // 10 kHz at 48 kHz would fold to 6 kHz; 11 kHz at 24 kHz would fold to 5 kHz.
    for (rate, freq, alias) in [(48_000, 10_000.0, 6_000.0), (24_000, 11_000.0, 5_000.0)] {
        let input = sine(freq, rate, 0.5, 16_000.0);
        let out = decode_pcm(rate, &input);
        let alias_db = 20.0 * (tone_amplitude(&out[200..], alias) / 16_000.0).log10();
        assert!(
            alias_db < -60.0,
            "{rate} Hz: alias at {alias} Hz only {alias_db} dB down"
        );
    }
}

#[test]
fn upsampling_leaves_no_image() {
    // A 1 kHz tone at 8 kHz, zero-stuffed, would image at 7 kHz.
    let out = decode_pcm(8_000, &sine(1_000.0, 8_000, 0.5, 16_000.0));
    let tone = tone_amplitude(&out[200..], 1_000.0);
    let image = tone_amplitude(&out[200..], 7_000.0);
    let image_db = 20.0 * (image / tone).log10();
    assert!(image_db < -60.0, "image only {image_db} dB down");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Streaming in arbitrary chunks gives exactly what one chunk gives.
    #[test]
    fn resampling_does_not_depend_on_chunking(
        rate in prop::sample::select(vec![8_000u32, 16_000, 24_000, 48_000]),
        chunk_sizes in prop::collection::vec(1usize..700, 1..40),
    ) {
        let input = sine(700.0, rate, 0.25, 9_000.0);
        let whole = decode_pcm(rate, &input);
        let mut decoder = AudioDecoder::new(Encoding::PcmS16le, rate).unwrap();
        let mut streamed = Vec::new();
        let mut rest = &input[..];
        for size in chunk_sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at((*size).min(rest.len()));
            decoder.decode(&to_bytes(chunk), &mut streamed).unwrap();
            rest = tail;
        }
        prop_assert_eq!(streamed, whole);
    }

    /// Arbitrary bytes never panic and never produce more than 120 ms.
    #[test]
    fn opus_garbage_never_panics(packet in prop::collection::vec(any::<u8>(), 1..1500)) {
        let mut decoder = AudioDecoder::new(Encoding::Opus, 0).unwrap();
        let mut out = Vec::new();
        if let Ok(count) = decoder.decode(&packet, &mut out) {
            prop_assert!(count <= 1_920);
            prop_assert_eq!(count, out.len());
        } else {
            prop_assert!(out.is_empty());
        }
    }
}

/// A voice-like test signal: three tones under a slow amplitude envelope, the
/// same continuous signal sampled at any rate.
fn test_signal(rate_hz: u32, count: usize) -> Vec<f64> {
    (0..count)
        .map(|n| {
            let t = n as f64 / f64::from(rate_hz);
            let envelope = 0.6 + 0.4 * (2.0 * PI * 3.0 * t).sin();
            envelope
                * (6_000.0 * (2.0 * PI * 300.0 * t).sin()
                    + 4_000.0 * (2.0 * PI * 850.0 * t).sin()
                    + 2_000.0 * (2.0 * PI * 2_100.0 * t).sin())
        })
        .collect()
}

/// Encodes `seconds` of the test signal into packets of `frame_ms`.
fn encode_opus(rate_hz: u32, channels: Channels, frame_ms: usize, seconds: usize) -> Vec<Vec<u8>> {
    let mut encoder = Encoder::new(rate_hz, channels, Application::Voip).unwrap();
    encoder.set_bitrate(opus::Bitrate::Bits(48_000)).unwrap();
    let frame = rate_hz as usize * frame_ms / 1000;
    let signal = test_signal(rate_hz, rate_hz as usize * seconds);
    signal
        .chunks_exact(frame)
        .map(|chunk| {
            let pcm: Vec<i16> = match channels {
                Channels::Mono => chunk.iter().map(|&s| s as i16).collect(),
                // Left louder than right, so the downmix is not a plain copy.
                Channels::Stereo => chunk
                    .iter()
                    .flat_map(|&s| [s as i16, (s * 0.5) as i16])
                    .collect(),
            };
            encoder.encode_vec(&pcm, 4_000).unwrap()
        })
        .collect()
}

/// Best normalised correlation over lags of up to 25 ms, skipping the first 100 ms.
fn best_correlation(decoded: &[i16], reference: &[f64]) -> f64 {
    let start = 1_600;
    let len = decoded.len() - start - 400;
    (0..400)
        .map(|lag| {
            let d = &decoded[start + lag..start + lag + len];
            let r = &reference[start..start + len];
            let dot: f64 = d.iter().zip(r).map(|(&a, &b)| f64::from(a) * b).sum();
            let dd: f64 = d.iter().map(|&a| f64::from(a).powi(2)).sum();
            let rr: f64 = r.iter().map(|b| b * b).sum();
            dot / (dd * rr).sqrt()
        })
        .fold(f64::MIN, f64::max)
}

#[test]
fn opus_round_trip_at_48_and_16_khz_mono_and_stereo() {
    for rate in [48_000, 16_000] {
        for channels in [Channels::Mono, Channels::Stereo] {
            for frame_ms in [20, 60] {
                let packets = encode_opus(rate, channels, frame_ms, 2);
                let mut decoder = AudioDecoder::new(Encoding::Opus, 0).unwrap();
                let mut out = Vec::new();
                for packet in &packets {
                    let count = decoder.decode(packet, &mut out).unwrap();
                    assert_eq!(count, frame_ms * 16, "{rate} Hz {channels:?} {frame_ms} ms");
                }
                assert_eq!(out.len(), packets.len() * frame_ms * 16);
                let correlation = best_correlation(&out, &test_signal(16_000, out.len()));
                assert!(
                    correlation > 0.9,
                    "{rate} Hz {channels:?} {frame_ms} ms: correlation {correlation}"
                );
            }
        }
    }
}

#[test]
fn opus_packet_of_120_ms_fits_the_buffer() {
    let packets = encode_opus(48_000, Channels::Mono, 60, 1);
    let mut repacketizer = opus::Repacketizer::new().unwrap();
    let mut combined = vec![0; 8_000];
    let len = repacketizer
        .combine(&[&packets[0], &packets[1]], &mut combined)
        .unwrap();
    let mut decoder = AudioDecoder::new(Encoding::Opus, 0).unwrap();
    let mut out = Vec::new();
    assert_eq!(decoder.decode(&combined[..len], &mut out).unwrap(), 1_920);
}

/// Packets libopus can tell are malformed.
const MALFORMED_PACKETS: [&[u8]; 4] = [
    // Code 3 (arbitrary frame count) without its frame-count byte.
    &[0x03],
    // Code 3 announcing zero frames.
    &[0x03, 0x00],
    // Code 3 with 48 frames of 20 ms: far more than 120 ms.
    &[0x0B, 0x30, 0x00],
    // Code 1 (two frames of equal size) with an odd payload.
    &[0x01, 0xAA, 0xBB, 0xCC],
];

#[test]
fn malformed_opus_is_an_error_and_does_not_poison_the_decoder() {
    let packets = encode_opus(48_000, Channels::Mono, 20, 1);
    let (first, second) = packets.split_at(20);

    let mut clean = AudioDecoder::new(Encoding::Opus, 0).unwrap();
    let mut expected = Vec::new();
    for packet in &packets {
        clean.decode(packet, &mut expected).unwrap();
    }

    let mut decoder = AudioDecoder::new(Encoding::Opus, 0).unwrap();
    let mut out = Vec::new();
    for packet in first {
        decoder.decode(packet, &mut out).unwrap();
    }
    for bad in MALFORMED_PACKETS {
        let before = out.len();
        let err = decoder.decode(bad, &mut out).unwrap_err();
        assert!(
            matches!(err, CodecError::InvalidOpus(_)),
            "{bad:?}: {err:?}"
        );
        assert_eq!(out.len(), before, "{bad:?} appended samples");
    }
    for packet in second {
        decoder.decode(packet, &mut out).unwrap();
    }
    assert_eq!(
        out, expected,
        "the good packets after the bad ones decode as if nothing happened"
    );
}

#[test]
fn g711_bytes_decode_to_the_standard_values() {
    use super::pcm::{a_law, mu_law};
    // ITU-T G.711: the codes for silence, and the largest magnitudes.
    assert_eq!(mu_law(0xFF), 0);
    assert_eq!(mu_law(0x7F), 0);
    assert_eq!(mu_law(0x80), 32_124);
    assert_eq!(mu_law(0x00), -32_124);
    assert_eq!(a_law(0xD5), 8);
    assert_eq!(a_law(0x55), -8);
    assert_eq!(a_law(0xAA), 32_256);
    assert_eq!(a_law(0x2A), -32_256);
    // Both laws are monotonic over their codes of one sign.
    let mu: Vec<i16> = (0x80..=0xFFu8).rev().map(mu_law).collect();
    assert!(mu.windows(2).all(|w| w[0] < w[1]), "{mu:?}");
}

#[test]
fn g711_at_8_khz_comes_out_at_16_khz() {
    // A 440 Hz tone, µ-law coded by its inverse table: the decoder doubles
    // the sample count and keeps the pitch.
    let tone = sine(440.0, 8_000, 0.5, 8_000.0);
    let codes: Vec<u8> = tone
        .iter()
        .map(|&s| {
            (0..=255u8)
                .min_by_key(|&c| (i32::from(super::pcm::mu_law(c)) - i32::from(s)).abs())
                .unwrap()
        })
        .collect();
    let mut decoder = AudioDecoder::g711_mu();
    let mut out = Vec::new();
    decoder.decode(&codes, &mut out).unwrap();
    assert!((out.len() as i64 - 8_000).abs() < 64, "{}", out.len());
    let f = zero_crossing_frequency(&out[400..]);
    assert!((f - 440.0).abs() < 2.0, "{f}");
    let mut a = AudioDecoder::g711_a();
    let mut out_a = Vec::new();
    assert!(a.decode(&[0xD5; 160], &mut out_a).unwrap() > 300);
    assert!(
        out_a.iter().all(|s| s.abs() < 16),
        "A-law silence stays silent"
    );
}
