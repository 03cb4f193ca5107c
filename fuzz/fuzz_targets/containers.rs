//! Fuzzes the container stream readers (`steno_audio::codec::ogg`,
//! `steno_audio::codec::webm`) with arbitrary bytes in arbitrary slices, and
//! the whole `AudioDecoder` for `ogg_opus` and `webm_opus` behind them.
//!
//! # Input layout
//!
//! - byte 0: bit 0 the container (0 Ogg, 1 WebM);
//! - then slices: a length byte (the slice is that many bytes plus one, cut
//!   short at the end of the input) and its bytes.
//!
//! # What must hold
//!
//! - Nothing panics, whatever the bytes and wherever they are cut.
//! - What a reader holds between slices stays bounded: under one Ogg page
//!   plus one packet, or one WebM element header plus one held element.
//! - Every packet out is at most the reader's limit; the decoder's output
//!   is a whole number of 2.5 ms Opus frames per call, and an error is an
//!   error value, never a crash.

#![no_main]

use libfuzzer_sys::fuzz_target;
use steno_audio::codec::{AudioDecoder, Encoding, ogg, webm};

/// 27 header bytes, 255 lacing values, 255 segments of 255 bytes.
const OGG_PAGE_MAX: usize = 27 + 255 + 255 * 255;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let webm_stream = mode & 1 == 1;
    let encoding = if webm_stream { Encoding::WebmOpus } else { Encoding::OggOpus };
    let mut decoder = AudioDecoder::new(encoding, 16_000).expect("a container decoder");
    let mut ogg_reader = ogg::OggReader::new();
    let mut webm_reader = webm::WebmReader::new();
    while let Some((&len, after)) = rest.split_first() {
        let len = (usize::from(len) + 1).min(after.len());
        let (slice, next) = after.split_at(len);
        rest = next;
        if slice.is_empty() {
            break;
        }
        let mut packets = Vec::new();
        if webm_stream {
            let _ = webm_reader.push(slice, &mut packets);
            assert!(webm_reader.held_bytes() <= webm::MAX_ELEMENT_BYTES as usize + 12 + slice.len());
            assert!(packets.iter().all(|p| p.len() <= webm::MAX_ELEMENT_BYTES as usize));
        } else {
            let _ = ogg_reader.push(slice, &mut packets);
            assert!(ogg_reader.held_bytes() < OGG_PAGE_MAX + ogg::MAX_PACKET_BYTES + 255);
            assert!(packets.iter().all(|p| p.len() <= ogg::MAX_PACKET_BYTES + 255));
        }
        let mut out = Vec::new();
        let _ = decoder.decode(slice, &mut out);
        assert_eq!(out.len() % 40, 0, "{} samples is not whole Opus frames", out.len());
    }
});
