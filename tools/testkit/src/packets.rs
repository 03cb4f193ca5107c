//! Client-side packetizing: 16 kHz mono samples in, the binary messages a protocol v1 client sends out (raw Opus packets, PCM chunks).

/// Samples in one 20 ms packet at 16 kHz.
pub const SAMPLES_PER_20MS: usize = 320;

/// An Opus encoder as the tests and the load generator use it: 16 kHz mono,
/// VoIP, 24 kbit/s.
pub fn opus_encoder() -> opus::Encoder {
    let mut enc = opus::Encoder::new(16_000, opus::Channels::Mono, opus::Application::Voip)
        .expect("libopus makes an encoder");
    enc.set_bitrate(opus::Bitrate::Bits(24_000))
        .expect("24 kbit/s is a valid bitrate");
    enc
}

/// Encodes 16 kHz mono audio as raw Opus packets of `frame_ms` (the last
/// one padded with silence).
pub fn opus_packets(samples: &[i16], frame_ms: usize) -> Vec<Vec<u8>> {
    let mut enc = opus_encoder();
    let frame = 16 * frame_ms;
    samples
        .chunks(frame)
        .map(|chunk| {
            let mut buf = chunk.to_vec();
            buf.resize(frame, 0);
            enc.encode_vec(&buf, 4000).expect("libopus encodes a frame")
        })
        .collect()
}

/// A 20 ms packet of digital silence, taken after the encoder has settled.
pub fn opus_silence_packet() -> Vec<u8> {
    opus_packets(&vec![0; SAMPLES_PER_20MS * 10], 20)
        .pop()
        .expect("ten packets were encoded")
}

/// PCM s16le chunks of `chunk_ms` at `rate_hz`.
pub fn pcm_chunks(samples: &[i16], chunk_ms: usize, rate_hz: usize) -> Vec<Vec<u8>> {
    samples
        .chunks(rate_hz / 1000 * chunk_ms)
        .map(|c| c.iter().flat_map(|s| s.to_le_bytes()).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_cover_the_audio() {
        let samples = vec![100i16; 16 * 110];
        assert_eq!(opus_packets(&samples, 20).len(), 6);
        assert_eq!(pcm_chunks(&samples, 10, 16_000).len(), 11);
        assert!(!opus_silence_packet().is_empty());
    }
}
