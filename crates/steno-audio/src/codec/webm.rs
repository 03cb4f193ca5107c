//! WebM Opus as a byte stream: arbitrary slices of a WebM file or live stream in (what `MediaRecorder` with a timeslice sends: unknown-size segment and clusters), the Opus frames of its Opus track out.
//!
//! EBML is read flat: the containers on the way to the frames (Segment,
//! Cluster, BlockGroup, Tracks, TrackEntry) are entered, whatever their
//! size (known or "unknown", as a live muxer writes); a SimpleBlock or
//! Block gives its frame; the track's number and codec are noted; every
//! other element is skipped by its size without being held. Bounded: an
//! element over [`MAX_ELEMENT_BYTES`] that would have to be held is an
//! error, and after an error the reader looks for the next Cluster.

/// Largest block or track field held whole.
pub const MAX_ELEMENT_BYTES: u64 = 256 * 1024;

const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const CLUSTER: u32 = 0x1F43_B675;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
const SIMPLE_BLOCK: u32 = 0xA3;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const CODEC_ID: u32 = 0x86;

/// Why the stream could not be read; the reader resynchronises after it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotWebm {
    #[error("not a WebM stream (element header {0:#x} is not EBML)")]
    BadHeader(u8),
    #[error("a WebM element of {0} bytes is larger than allowed")]
    TooLarge(u64),
    #[error("laced WebM blocks are not supported")]
    Laced,
    #[error("the WebM track is {0:?}, not Opus")]
    NotOpus(String),
}

/// What the reader is in the middle of.
#[derive(Debug)]
enum State {
    /// Reading element headers.
    Header,
    /// Skipping this many bytes of an element not needed.
    Skip(u64),
    /// Holding an element's body (id, size) until it is all there.
    Body(u32, usize),
    /// After an error: looking for the next Cluster, past the byte where
    /// the error was when `past_here` (so a bad header there is not read
    /// again).
    Resync { past_here: bool },
}

/// Frames out of a WebM stream.
#[derive(Debug)]
pub struct WebmReader {
    buffer: Vec<u8>,
    state: State,
    /// The track number of the last TrackEntry's TrackNumber.
    entry_number: Option<u64>,
    /// The Opus track; None until Tracks say (then every track is read).
    opus_track: Option<u64>,
    /// The EBML header has been seen, so the stream is WebM.
    started: bool,
}

impl Default for WebmReader {
    fn default() -> Self {
        Self::new()
    }
}

impl WebmReader {
    pub fn new() -> Self {
        Self {
            buffer: Vec::new(),
            state: State::Header,
            entry_number: None,
            opus_track: None,
            started: false,
        }
    }

    /// Bytes held between slices: at most one element header and one held
    /// element ([`MAX_ELEMENT_BYTES`]).
    pub fn held_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// Takes the next slice of the stream; appends each frame it completes
    /// to `frames`. On an error the frames found are appended all the same
    /// and the reader skips to the next Cluster.
    pub fn push(&mut self, bytes: &[u8], frames: &mut Vec<Vec<u8>>) -> Result<(), NotWebm> {
        self.buffer.extend_from_slice(bytes);
        let mut at = 0;
        let mut result = Ok(());
        loop {
            match self.state {
                State::Skip(n) => {
                    let take = n.min((self.buffer.len() - at) as u64);
                    at += take as usize;
                    if take < n {
                        self.state = State::Skip(n - take);
                        break;
                    }
                    self.state = State::Header;
                }
                State::Body(id, size) => {
                    if self.buffer.len() - at < size {
                        break;
                    }
                    let body = self.buffer[at..at + size].to_vec();
                    at += size;
                    self.state = State::Header;
                    if let Err(e) = self.element(id, &body, frames) {
                        self.state = State::Resync { past_here: false };
                        result = Err(e);
                    }
                }
                State::Resync { past_here } => {
                    if past_here {
                        if at == self.buffer.len() {
                            break;
                        }
                        at += 1;
                        self.state = State::Resync { past_here: false };
                    }
                    match find(&self.buffer[at..], &CLUSTER.to_be_bytes()) {
                        Some(found) => {
                            at += found;
                            self.state = State::Header;
                        }
                        None => {
                            at = self.buffer.len().saturating_sub(3).max(at);
                            break;
                        }
                    }
                }
                State::Header => {
                    let Some((id, id_len)) = element_id(&self.buffer[at..]) else {
                        break;
                    };
                    if id_len == 0 {
                        self.state = State::Resync { past_here: true };
                        result = Err(NotWebm::BadHeader(self.buffer[at]));
                        continue;
                    }
                    let Some((size, size_len)) = vint(&self.buffer[at + id_len..]) else {
                        if self.buffer.len() - at - id_len >= 8 {
                            self.state = State::Resync { past_here: true };
                            result = Err(NotWebm::BadHeader(self.buffer[at + id_len]));
                            continue;
                        }
                        break;
                    };
                    if !self.started && id != EBML {
                        self.state = State::Resync { past_here: true };
                        result = Err(NotWebm::BadHeader(self.buffer[at]));
                        continue;
                    }
                    self.started = true;
                    at += id_len + size_len;
                    self.state = match (id, size) {
                        (SEGMENT | CLUSTER | BLOCK_GROUP | TRACKS | TRACK_ENTRY, _) => {
                            if id == TRACK_ENTRY {
                                self.entry_number = None;
                            }
                            State::Header
                        }
                        (SIMPLE_BLOCK | BLOCK | TRACK_NUMBER | CODEC_ID, Some(n))
                            if n <= MAX_ELEMENT_BYTES =>
                        {
                            State::Body(id, n as usize)
                        }
                        (SIMPLE_BLOCK | BLOCK | TRACK_NUMBER | CODEC_ID, n) => {
                            result = Err(NotWebm::TooLarge(n.unwrap_or(u64::MAX)));
                            State::Resync { past_here: false }
                        }
                        (_, Some(n)) => State::Skip(n),
                        // An unknown-size element that is not a container
                        // we enter cannot be skipped.
                        (_, None) => {
                            result = Err(NotWebm::TooLarge(u64::MAX));
                            State::Resync { past_here: false }
                        }
                    };
                }
            }
        }
        self.buffer.drain(..at);
        result
    }

    fn element(&mut self, id: u32, body: &[u8], frames: &mut Vec<Vec<u8>>) -> Result<(), NotWebm> {
        match id {
            TRACK_NUMBER => self.entry_number = Some(uint(body)),
            CODEC_ID => {
                let codec = String::from_utf8_lossy(body)
                    .trim_end_matches('\0')
                    .to_string();
                if codec == "A_OPUS" {
                    self.opus_track = self.entry_number.or(Some(1));
                } else if codec.starts_with("A_") {
                    return Err(NotWebm::NotOpus(codec));
                }
            }
            _ => {
                // SimpleBlock or Block: track, timecode (2), flags (1), frame.
                let Some((track, len)) = vint(body) else {
                    return Ok(());
                };
                let track = track.unwrap_or(0);
                if body.len() < len + 3 {
                    return Ok(());
                }
                if self.opus_track.is_some_and(|t| t != track) {
                    return Ok(());
                }
                if body[len + 2] & 0x06 != 0 {
                    return Err(NotWebm::Laced);
                }
                frames.push(body[len + 3..].to_vec());
            }
        }
        Ok(())
    }
}

fn find(bytes: &[u8], pattern: &[u8]) -> Option<usize> {
    bytes.windows(pattern.len()).position(|w| w == pattern)
}

/// An element id (its length marker kept, as the spec writes ids) and its
/// length in bytes; None until enough bytes are there; length 0 for a byte
/// that cannot start an id (ids are 1 to 4 bytes).
fn element_id(bytes: &[u8]) -> Option<(u32, usize)> {
    let first = *bytes.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 {
        return Some((0, 0));
    }
    let id = bytes
        .get(..len)?
        .iter()
        .fold(0u32, |v, &b| (v << 8) | b as u32);
    Some((id, len))
}

/// A size: Some(n), or None for "unknown" (all value bits set); with its
/// length. None overall until enough bytes are there or when invalid.
#[allow(clippy::type_complexity)]
fn vint(bytes: &[u8]) -> Option<(Option<u64>, usize)> {
    let first = *bytes.first()?;
    if first == 0 {
        return None;
    }
    let len = first.leading_zeros() as usize + 1;
    let raw = bytes.get(..len)?;
    let mask = if len == 8 { 0 } else { 0xFFu8 >> len };
    let value = raw[1..]
        .iter()
        .fold((first & mask) as u64, |v, &b| (v << 8) | b as u64);
    let all_ones = (1u64 << (7 * len)) - 1;
    Some((if value == all_ones { None } else { Some(value) }, len))
}

fn uint(body: &[u8]) -> u64 {
    body.iter().take(8).fold(0, |v, &b| (v << 8) | b as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(id: u32, body: &[u8]) -> Vec<u8> {
        let id_bytes = id.to_be_bytes();
        let skip = id_bytes.iter().position(|&b| b != 0).unwrap();
        let mut e = id_bytes[skip..].to_vec();
        // 8-byte size, as some muxers write.
        e.push(0x01);
        e.extend_from_slice(&(body.len() as u64).to_be_bytes()[1..]);
        e.extend_from_slice(body);
        e
    }

    fn unknown_size(id: u32) -> Vec<u8> {
        let mut e = id.to_be_bytes().to_vec();
        e.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        e
    }

    fn simple_block(track: u8, frame: &[u8]) -> Vec<u8> {
        let mut body = vec![0x80 | track, 0, 0, 0x80];
        body.extend_from_slice(frame);
        element(SIMPLE_BLOCK, &body)
    }

    /// What MediaRecorder writes: header, unknown-size segment, tracks,
    /// unknown-size clusters of SimpleBlocks.
    fn live_stream(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut s = element(EBML, &element(0x4282, b"webm"));
        s.extend(unknown_size(SEGMENT));
        s.extend(element(0x1549_A966, &[0u8; 20])); // Info, skipped
        let mut entry = element(TRACK_NUMBER, &[1]);
        entry.extend(element(CODEC_ID, b"A_OPUS"));
        entry.extend(element(0x63A2, b"OpusHead\x01\x01")); // CodecPrivate
        s.extend(element(TRACKS, &element(TRACK_ENTRY, &entry)));
        for chunk in frames.chunks(2) {
            s.extend(unknown_size(CLUSTER));
            s.extend(element(0xE7, &[0])); // Timecode
            for f in chunk {
                s.extend(simple_block(1, f));
            }
        }
        s
    }

    fn read(bytes: &[u8], slice: usize) -> (Vec<Vec<u8>>, Vec<NotWebm>) {
        let mut r = WebmReader::new();
        let (mut frames, mut errors) = (Vec::new(), Vec::new());
        for chunk in bytes.chunks(slice) {
            if let Err(e) = r.push(chunk, &mut frames) {
                errors.push(e);
            }
        }
        (frames, errors)
    }

    #[test]
    fn frames_come_out_whatever_the_slices() {
        let frames: Vec<Vec<u8>> = (0..5).map(|i| vec![i as u8 + 1; 60 + 30 * i]).collect();
        let bytes = live_stream(&frames);
        for slice in [1, 7, 700, bytes.len()] {
            assert_eq!(
                read(&bytes, slice),
                (frames.clone(), vec![]),
                "slices of {slice}"
            );
        }
    }

    #[test]
    fn other_tracks_are_left_out() {
        let mut bytes = live_stream(&[vec![1; 10]]);
        bytes.extend(simple_block(2, &[9; 10]));
        bytes.extend(simple_block(1, &[2; 10]));
        assert_eq!(read(&bytes, 100).0, vec![vec![1u8; 10], vec![2u8; 10]]);
    }

    #[test]
    fn not_webm_is_an_error_and_a_later_cluster_is_found() {
        let mut bytes = b"this is not a webm stream at all".to_vec();
        let (frames, errors) = read(&bytes, 8);
        assert!(frames.is_empty());
        assert!(matches!(errors[0], NotWebm::BadHeader(_)), "{errors:?}");
        // A stream that breaks in the middle picks up at the next cluster.
        let frames: Vec<Vec<u8>> = (1..=3).map(|i| vec![i; 10]).collect();
        let good = live_stream(&frames);
        let last_cluster = good.len()
            - find(
                &good.iter().rev().copied().collect::<Vec<_>>(),
                &[0x75, 0xB6, 0x43, 0x1F],
            )
            .unwrap()
            - 4;
        bytes = good[..last_cluster].to_vec();
        bytes.extend_from_slice(b"\x00 garbage");
        bytes.extend_from_slice(&good[last_cluster..]);
        let (read_frames, errors) = read(&bytes, 64);
        assert_eq!(errors, vec![NotWebm::BadHeader(0)]);
        assert_eq!(read_frames, frames);
    }

    #[test]
    fn another_codec_is_refused_by_name() {
        let mut s = element(EBML, &[]);
        s.extend(unknown_size(SEGMENT));
        let mut entry = element(TRACK_NUMBER, &[1]);
        entry.extend(element(CODEC_ID, b"A_VORBIS"));
        s.extend(element(TRACKS, &element(TRACK_ENTRY, &entry)));
        let (_, errors) = read(&s, 50);
        assert_eq!(errors, vec![NotWebm::NotOpus("A_VORBIS".into())]);
    }

    #[test]
    fn sizes_read_as_the_spec_says() {
        assert_eq!(vint(&[0x81]), Some((Some(1), 1)));
        assert_eq!(vint(&[0x40, 0x02]), Some((Some(2), 2)));
        assert_eq!(vint(&[0xFF]), Some((None, 1)));
        assert_eq!(
            vint(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
            Some((None, 8))
        );
        assert_eq!(vint(&[0x40]), None, "incomplete");
        assert_eq!(element_id(&[0x1A, 0x45, 0xDF, 0xA3]), Some((EBML, 4)));
    }
}
