//! Ogg Opus as a byte stream: arbitrary slices of an Ogg file or live stream in (what `MediaRecorder` with a timeslice sends), the Opus packets it carries out, headers skipped.
//!
//! A page is `OggS`, a 27-byte header, a segment table and the data; a
//! packet is a run of 255-byte segments ended by a shorter one, and may
//! continue on the next page. Pages are checked with their CRC; after bytes
//! that are not a valid page the reader skips to the next `OggS` and says
//! so once. Only the first logical stream is read. Bounded: at most one
//! page (64 KiB) is held, and a packet over [`MAX_PACKET_BYTES`] (a huge
//! comment header, say) is dropped rather than gathered.

/// Longest packet gathered; Opus audio packets are far below it.
pub const MAX_PACKET_BYTES: usize = 64 * 1024;
const HEADER_BYTES: usize = 27;

/// Bytes that were not an Ogg page.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an Ogg page: {skipped} bytes skipped to the next page")]
pub struct NotOgg {
    pub skipped: usize,
}

/// Reassembles packets from Ogg pages.
#[derive(Debug, Default)]
pub struct OggReader {
    /// Bytes received and not yet made into a page.
    buffer: Vec<u8>,
    /// The packet continued from the previous page.
    partial: Vec<u8>,
    /// The partial packet outgrew the limit: drop it to its end.
    dropping: bool,
    /// The logical stream being read (the first one seen).
    serial: Option<u32>,
    /// Garbage skipped since the last report.
    skipped: usize,
}

impl OggReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held between slices: less than one page (64 KiB), plus the
    /// packet being gathered (at most [`MAX_PACKET_BYTES`]).
    pub fn held_bytes(&self) -> usize {
        self.buffer.len() + self.partial.len()
    }

    /// Takes the next slice of the stream; appends every packet it
    /// completes to `packets`. An error says that garbage was skipped; the
    /// packets found are appended all the same.
    pub fn push(&mut self, bytes: &[u8], packets: &mut Vec<Vec<u8>>) -> Result<(), NotOgg> {
        self.buffer.extend_from_slice(bytes);
        let mut at = 0;
        while let Some(found) = find_capture(&self.buffer[at..]) {
            self.skipped += found;
            at += found;
            match page_len(&self.buffer[at..]) {
                PageLen::Incomplete => break,
                PageLen::Invalid => {
                    // Not a page after all: look past this "OggS".
                    self.skipped += 1;
                    at += 1;
                }
                PageLen::Page(len) => {
                    let page = self.buffer[at..at + len].to_vec();
                    at += len;
                    self.page(&page, packets);
                }
            }
        }
        if find_capture(&self.buffer[at..]).is_none() {
            // Keep a tail that may be the start of "OggS".
            let keep = (self.buffer.len() - at).min(3);
            self.skipped += self.buffer.len() - at - keep;
            at = self.buffer.len() - keep;
        }
        self.buffer.drain(..at);
        if self.skipped > 0 {
            let skipped = std::mem::take(&mut self.skipped);
            return Err(NotOgg { skipped });
        }
        Ok(())
    }

    fn page(&mut self, page: &[u8], packets: &mut Vec<Vec<u8>>) {
        let serial = u32::from_le_bytes(page[14..18].try_into().expect("4 bytes"));
        if *self.serial.get_or_insert(serial) != serial {
            return;
        }
        let continued = page[5] & 0x01 != 0;
        if !continued {
            // A packet cut off by a lost page is dropped.
            self.partial.clear();
            self.dropping = false;
        }
        let segments = page[26] as usize;
        let table = &page[HEADER_BYTES..HEADER_BYTES + segments];
        let mut data = &page[HEADER_BYTES + segments..];
        for &lace in table {
            let (piece, rest) = data.split_at(lace as usize);
            data = rest;
            if !self.dropping {
                self.partial.extend_from_slice(piece);
                if self.partial.len() > MAX_PACKET_BYTES {
                    self.partial.clear();
                    self.dropping = true;
                }
            }
            if lace < 255 {
                let packet = std::mem::take(&mut self.partial);
                if !self.dropping && !is_header(&packet) {
                    packets.push(packet);
                }
                self.dropping = false;
            }
        }
    }
}

/// `OpusHead` and `OpusTags` carry no audio.
fn is_header(packet: &[u8]) -> bool {
    packet.starts_with(b"OpusHead") || packet.starts_with(b"OpusTags")
}

fn find_capture(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"OggS")
}

enum PageLen {
    Incomplete,
    Invalid,
    Page(usize),
}

/// The length of the page at the start of `bytes`, once it is all there
/// and its CRC matches.
fn page_len(bytes: &[u8]) -> PageLen {
    if bytes.len() < HEADER_BYTES {
        return PageLen::Incomplete;
    }
    if bytes[4] != 0 {
        return PageLen::Invalid;
    }
    let segments = bytes[26] as usize;
    if bytes.len() < HEADER_BYTES + segments {
        return PageLen::Incomplete;
    }
    let body: usize = bytes[HEADER_BYTES..HEADER_BYTES + segments]
        .iter()
        .map(|&l| l as usize)
        .sum();
    let len = HEADER_BYTES + segments + body;
    if bytes.len() < len {
        return PageLen::Incomplete;
    }
    let stored = u32::from_le_bytes(bytes[22..26].try_into().expect("4 bytes"));
    if crc(&bytes[..len]) != stored {
        return PageLen::Invalid;
    }
    PageLen::Page(len)
}

/// Ogg's CRC-32 (polynomial 0x04c11db7, not reflected, initial 0) over the
/// page with its CRC field taken as zero.
fn crc(page: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, entry) in t.iter_mut().enumerate() {
            let mut r = (i as u32) << 24;
            for _ in 0..8 {
                r = if r & 0x8000_0000 != 0 {
                    (r << 1) ^ 0x04c1_1db7
                } else {
                    r << 1
                };
            }
            *entry = r;
        }
        t
    });
    page.iter().enumerate().fold(0u32, |c, (i, &b)| {
        let b = if (22..26).contains(&i) { 0 } else { b };
        (c << 8) ^ table[((c >> 24) as u8 ^ b) as usize]
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One page of `packets` (each under 255 * 255 bytes), as a muxer
    /// writes it; `continued` when the first packet began on the last page.
    pub fn page(serial: u32, sequence: u32, laces: &[u8], data: &[u8], continued: bool) -> Vec<u8> {
        let mut p = b"OggS".to_vec();
        p.push(0);
        p.push(if continued { 1 } else { 0 });
        p.extend_from_slice(&0u64.to_le_bytes());
        p.extend_from_slice(&serial.to_le_bytes());
        p.extend_from_slice(&sequence.to_le_bytes());
        p.extend_from_slice(&[0; 4]);
        p.push(laces.len() as u8);
        p.extend_from_slice(laces);
        p.extend_from_slice(data);
        let c = crc(&p);
        p[22..26].copy_from_slice(&c.to_le_bytes());
        p
    }

    /// Pages for whole packets, one page each.
    pub fn stream(packets: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, packet) in packets.iter().enumerate() {
            let mut laces = vec![255u8; packet.len() / 255];
            laces.push((packet.len() % 255) as u8);
            out.extend(page(7, i as u32, &laces, packet, false));
        }
        out
    }

    fn read_in_slices(bytes: &[u8], slice: usize) -> (Vec<Vec<u8>>, usize) {
        let mut r = OggReader::new();
        let (mut packets, mut errors) = (Vec::new(), 0);
        for chunk in bytes.chunks(slice) {
            if r.push(chunk, &mut packets).is_err() {
                errors += 1;
            }
        }
        (packets, errors)
    }

    #[test]
    fn packets_come_out_whole_whatever_the_slices() {
        let audio: Vec<Vec<u8>> = (0..5).map(|i| vec![i as u8; 100 + 200 * i]).collect();
        let mut all = vec![b"OpusHead\x01\x01".to_vec(), b"OpusTags....".to_vec()];
        all.extend(audio.clone());
        let bytes = stream(&all);
        for slice in [1, 7, 700, bytes.len()] {
            assert_eq!(
                read_in_slices(&bytes, slice),
                (audio.clone(), 0),
                "slices of {slice}"
            );
        }
    }

    #[test]
    fn a_packet_continues_across_pages() {
        let packet: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        let mut bytes = page(1, 0, &[255, 255], &packet[..510], false);
        bytes.extend(page(1, 1, &[90], &packet[510..], true));
        assert_eq!(read_in_slices(&bytes, 33), (vec![packet], 0));
    }

    #[test]
    fn garbage_is_skipped_and_reported_and_reading_goes_on() {
        let packets = vec![vec![1u8; 40], vec![2u8; 50]];
        let mut bytes = b"garbage before".to_vec();
        bytes.extend(stream(&packets[..1]));
        // A page whose CRC is wrong is not a page.
        let mut bad = stream(&[vec![9u8; 30]]);
        bad[30] ^= 0xff;
        bytes.extend(bad);
        bytes.extend(stream(&packets[1..]));
        let mut r = OggReader::new();
        let mut out = Vec::new();
        let err = r.push(&bytes, &mut out).unwrap_err();
        assert!(err.skipped >= 14, "{err:?}");
        assert_eq!(out, packets);
    }

    #[test]
    fn other_streams_and_oversized_packets_are_dropped() {
        let mut bytes = page(1, 0, &[10], &[1; 10], false);
        bytes.extend(page(2, 0, &[10], &[2; 10], false));
        // A packet of 255 full segments on one page and ten more on the
        // next (67,575 bytes, over 64 KiB): dropped whole.
        let big = vec![3u8; 255 * 255];
        bytes.extend(page(1, 1, &[255; 255], &big, false));
        bytes.extend(page(
            1,
            2,
            &[255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0],
            &vec![3u8; 2550],
            true,
        ));
        bytes.extend(page(1, 3, &[5], &[4; 5], false));
        let (packets, errors) = read_in_slices(&bytes, 1000);
        assert_eq!(errors, 0);
        assert_eq!(packets, vec![vec![1u8; 10], vec![4u8; 5]]);
    }
}
