//! Audio files: the bytes of a recording in any container steno reads in, 16 kHz mono i16 samples out, packet by packet, so memory does not grow with the file's length.
//!
//! symphonia (pure Rust) demuxes WAV, FLAC, MP3, Ogg, WebM/Matroska and
//! MP4/M4A/MOV and decodes PCM, FLAC, MP3, Vorbis and AAC; Opus tracks (Ogg
//! Opus, WebM Opus) are decoded by libopus straight to 16 kHz. Every track
//! is downmixed to mono and resampled to 16 kHz by the same polyphase
//! resampler as PCM streams. A video's first audio track is the one read.

use std::path::Path;

use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::OUTPUT_SAMPLE_RATE_HZ;
use crate::codec::resample::Resampler;

/// Why a file cannot be read; each says what is wrong in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The container or codec is not one steno reads (HTTP 415).
    #[error("unsupported audio: {0}")]
    Unsupported(String),
    /// The file is empty, or holds no audio track (HTTP 400).
    #[error("no audio: {0}")]
    NoAudio(String),
    /// The data is damaged or truncated (HTTP 400).
    #[error("the audio is damaged: {0}")]
    Corrupt(String),
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
}

impl FileError {
    /// Unsupported (415) rather than bad data (400)?
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Self::Unsupported(_))
    }
}

/// Packets in a row that may fail to decode before the file counts as damaged.
const MAX_BAD_PACKETS: u32 = 20;

/// Decodes one file as a stream of 16 kHz mono samples.
pub struct FileDecoder {
    format: Box<dyn FormatReader>,
    track_id: u32,
    track: TrackDecoder,
    /// Input rate; `resampler` is None when it is already 16 kHz.
    resampler: Option<Resampler>,
    /// Interleaved decoded samples of one packet.
    interleaved: Vec<f32>,
    /// Those samples downmixed, as i16 at the input rate.
    mono: Vec<i16>,
    duration_s: Option<f64>,
    bad_run: u32,
    /// Samples handed out so far.
    produced: u64,
}

enum TrackDecoder {
    Symphonia(Box<dyn AudioDecoder>),
    Opus(OpusTrack),
}

/// libopus at 16 kHz, with the stream's pre-skip still to drop.
struct OpusTrack {
    decoder: opus::Decoder,
    channels: usize,
    /// Samples (per channel, at 16 kHz) still to skip at the start.
    skip: usize,
    pcm: Vec<i16>,
}

impl FileDecoder {
    /// Opens `path`; the extension is a hint, the content decides.
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let file = std::fs::File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Err(FileError::NoAudio("the file is empty".into()));
        }
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let format = symphonia::default::get_probe()
            .probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| match e {
                SymphoniaError::Unsupported(what) => FileError::Unsupported(format!(
                    "{what}; steno reads WAV, FLAC, MP3, Ogg (Vorbis, Opus), WebM/Matroska (Opus, Vorbis) and MP4/M4A/MOV (AAC)"
                )),
                SymphoniaError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    FileError::Corrupt("the file ends before its header does".into())
                }
                SymphoniaError::IoError(e) => FileError::Io(e),
                other => FileError::Corrupt(other.to_string()),
            })?;
        Self::from_format(format)
    }

    fn from_format(format: Box<dyn FormatReader>) -> Result<Self, FileError> {
        let track = format
            .default_track(TrackType::Audio)
            .ok_or_else(|| FileError::NoAudio("the file has no audio track".into()))?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| FileError::NoAudio("the audio track has no codec parameters".into()))?
            .clone();
        let track_id = track.id;
        let rate = params.sample_rate.unwrap_or(0);
        let duration_s = match (track.num_frames, params.sample_rate) {
            (Some(frames), Some(rate)) if rate > 0 => Some(frames as f64 / f64::from(rate)),
            _ => None,
        };
        let (decoder, input_rate) = if params.codec == CODEC_ID_OPUS {
            (
                TrackDecoder::Opus(OpusTrack::new(params.extra_data.as_deref())?),
                OUTPUT_SAMPLE_RATE_HZ,
            )
        } else {
            let decoder = symphonia::default::get_codecs()
                .make_audio_decoder(&params, &AudioDecoderOptions::default())
                .map_err(|e| FileError::Unsupported(format!("the audio codec: {e}")))?;
            if rate == 0 {
                return Err(FileError::Corrupt(
                    "the audio track has no sample rate".into(),
                ));
            }
            (TrackDecoder::Symphonia(decoder), rate)
        };
        Ok(Self {
            format,
            track_id,
            track: decoder,
            resampler: (input_rate != OUTPUT_SAMPLE_RATE_HZ)
                .then(|| Resampler::new(input_rate, OUTPUT_SAMPLE_RATE_HZ)),
            interleaved: Vec::new(),
            mono: Vec::new(),
            duration_s,
            bad_run: 0,
            produced: 0,
        })
    }

    /// The file's length as its header says, if it says.
    pub fn duration_s(&self) -> Option<f64> {
        self.duration_s
    }

    /// Samples handed out so far (16 kHz).
    pub fn samples_read(&self) -> u64 {
        self.produced
    }

    /// Appends the next packet's samples to `out`; false at the end of the
    /// track. A damaged packet is skipped; many in a row fail the file.
    pub fn read(&mut self, out: &mut Vec<i16>) -> Result<bool, FileError> {
        loop {
            let packet = match self.format.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(false),
                Err(SymphoniaError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    // A truncated last packet: the audio before it stands.
                    return Ok(false);
                }
                Err(SymphoniaError::ResetRequired) => {
                    return Err(FileError::Unsupported(
                        "the audio track changes its format midway".into(),
                    ));
                }
                Err(e) => return self.bad_packet(e.to_string()).map(|()| true),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            self.mono.clear();
            let decoded = match &mut self.track {
                TrackDecoder::Symphonia(d) => match d.decode(&packet) {
                    Ok(buf) => {
                        let channels = buf.spec().channels().count().max(1);
                        self.interleaved.resize(buf.samples_interleaved(), 0.0);
                        buf.copy_to_slice_interleaved(&mut self.interleaved[..]);
                        downmix_f32(&self.interleaved, channels, &mut self.mono);
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                },
                TrackDecoder::Opus(o) => o.decode(&packet.data, &mut self.mono),
            };
            if let Err(e) = decoded {
                self.bad_packet(e)?;
                continue;
            }
            self.bad_run = 0;
            let before = out.len();
            match &mut self.resampler {
                Some(r) => r.process(&self.mono, out),
                None => out.extend_from_slice(&self.mono),
            }
            self.produced += (out.len() - before) as u64;
            return Ok(true);
        }
    }

    fn bad_packet(&mut self, detail: String) -> Result<(), FileError> {
        self.bad_run += 1;
        if self.bad_run >= MAX_BAD_PACKETS {
            return Err(FileError::Corrupt(format!(
                "{MAX_BAD_PACKETS} packets in a row cannot be decoded; last: {detail}"
            )));
        }
        Ok(())
    }
}

impl OpusTrack {
    /// From the track's OpusHead (RFC 7845 5.1): channels and pre-skip.
    fn new(head: Option<&[u8]>) -> Result<Self, FileError> {
        let head = head
            .filter(|h| h.len() >= 19 && h.starts_with(b"OpusHead"))
            .ok_or_else(|| FileError::Corrupt("the Opus track has no OpusHead".into()))?;
        let channels = usize::from(head[9]);
        let mapping = head[18];
        if mapping != 0 || !(1..=2).contains(&channels) {
            return Err(FileError::Unsupported(format!(
                "Opus with {channels} channels (mapping family {mapping}); steno reads mono and stereo Opus"
            )));
        }
        let pre_skip_48k = usize::from(u16::from_le_bytes([head[10], head[11]]));
        let layout = if channels == 1 {
            opus::Channels::Mono
        } else {
            opus::Channels::Stereo
        };
        let decoder = opus::Decoder::new(OUTPUT_SAMPLE_RATE_HZ, layout)
            .map_err(|e| FileError::Corrupt(format!("cannot make an Opus decoder: {e}")))?;
        Ok(Self {
            decoder,
            channels,
            skip: pre_skip_48k * OUTPUT_SAMPLE_RATE_HZ as usize / 48_000,
            // 120 ms at 16 kHz, the longest packet, per channel.
            pcm: vec![0; 1920 * channels],
        })
    }

    fn decode(&mut self, packet: &[u8], mono: &mut Vec<i16>) -> Result<(), String> {
        let frames = self
            .decoder
            .decode(packet, &mut self.pcm, false)
            .map_err(|e| format!("Opus: {e}"))?;
        let pcm = &self.pcm[..frames * self.channels];
        let start = self.skip.min(frames);
        self.skip -= start;
        if self.channels == 1 {
            mono.extend_from_slice(&pcm[start..]);
        } else {
            mono.extend(
                pcm[start * 2..]
                    .chunks_exact(2)
                    .map(|c| ((i32::from(c[0]) + i32::from(c[1])) / 2) as i16),
            );
        }
        Ok(())
    }
}

/// Mean of the channels of interleaved samples in [-1, 1], as i16.
fn downmix_f32(interleaved: &[f32], channels: usize, out: &mut Vec<i16>) {
    out.extend(interleaved.chunks_exact(channels).map(|frame| {
        let mean = frame.iter().sum::<f32>() / channels as f32;
        (mean * 32_767.0).round().clamp(-32_768.0, 32_767.0) as i16
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
    }

    fn decode_all(path: &Path) -> Vec<i16> {
        let mut d = FileDecoder::open(path).unwrap();
        let mut out = Vec::new();
        while d.read(&mut out).unwrap() {}
        out
    }

    #[test]
    fn a_stereo_44k_wav_comes_out_as_16k_mono() {
        let dir = std::env::temp_dir().join(format!("steno-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tone.wav");
        // One second of a 440 Hz tone, the same on both channels.
        let frames: Vec<i16> = (0..44_100)
            .flat_map(|n| {
                let v =
                    ((n as f32 * 440.0 * std::f32::consts::TAU / 44_100.0).sin() * 10_000.0) as i16;
                [v, v]
            })
            .collect();
        write_wav(&path, 44_100, 2, &frames);
        let d = FileDecoder::open(&path).unwrap();
        assert_eq!(d.duration_s().map(|s| (s * 10.0).round()), Some(10.0));
        let out = decode_all(&path);
        assert!(
            (out.len() as i64 - 16_000).abs() <= 1,
            "{} samples",
            out.len()
        );
        let peak = out[1000..15_000]
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap();
        assert!((9_000..=10_500).contains(&peak), "peak {peak}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_garbage_and_truncated_files_get_clear_errors() {
        let dir = std::env::temp_dir().join(format!("steno-file-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.wav");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            FileDecoder::open(&empty),
            Err(FileError::NoAudio(_))
        ));
        let garbage = dir.join("noise.bin");
        std::fs::write(
            &garbage,
            (0..4096u32)
                .map(|i| (i * 7919 % 251) as u8)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let err = FileDecoder::open(&garbage)
            .err()
            .expect("garbage is refused");
        assert!(err.is_unsupported(), "{err}");
        let wav = dir.join("cut.wav");
        write_wav(&wav, 16_000, 1, &vec![100; 16_000]);
        let bytes = std::fs::read(&wav).unwrap();
        std::fs::write(&wav, &bytes[..20]).unwrap();
        let err = FileDecoder::open(&wav)
            .err()
            .expect("a cut header is refused");
        assert!(!err.is_unsupported(), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
