//! Mel filter bank: sample rate, FFT size and mel count in, the n_mels x (n_fft/2+1) matrix out.
//!
//! whisper.cpp reads the filter bank from the model file instead of computing it, and
//! the openai converter copies Whisper's `mel_filters.npz`, which is
//! `librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)`: Slaney's mel scale (linear
//! below 1 kHz, logarithmic above), triangles between neighbouring mel points, each
//! scaled so its area is one ("slaney" norm). CTranslate2 does not ship the matrix, so
//! we compute it here the same way, in f64, and store f32 like librosa.

/// Whisper's audio front end.
pub const SAMPLE_RATE_HZ: u32 = 16_000;
pub const N_FFT: usize = 400;

/// A row-major `n_mels x n_freqs` matrix of filter weights.
#[derive(Debug, Clone)]
pub struct MelFilters {
    pub n_mels: usize,
    /// FFT bins from 0 Hz to Nyquist: `n_fft / 2 + 1`.
    pub n_freqs: usize,
    pub weights: Vec<f32>,
}

impl MelFilters {
    /// librosa's `filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk=False, norm="slaney")`.
    pub fn slaney(sample_rate_hz: u32, n_fft: usize, n_mels: usize) -> MelFilters {
        let n_freqs = n_fft / 2 + 1;
        let nyquist_hz = f64::from(sample_rate_hz) / 2.0;
        let bin_hz: Vec<f64> = (0..n_freqs)
            .map(|k| k as f64 * f64::from(sample_rate_hz) / n_fft as f64)
            .collect();

        // n_mels + 2 points evenly spaced in mel: each filter spans three of them.
        let max_mel = hz_to_mel(nyquist_hz);
        let points_hz: Vec<f64> = (0..n_mels + 2)
            .map(|i| mel_to_hz(max_mel * i as f64 / (n_mels + 1) as f64))
            .collect();

        let mut weights = Vec::with_capacity(n_mels * n_freqs);
        for m in 0..n_mels {
            let (low, centre, high) = (points_hz[m], points_hz[m + 1], points_hz[m + 2]);
            let area_norm = 2.0 / (high - low);
            weights.extend(bin_hz.iter().map(|&f| {
                let rising = (f - low) / (centre - low);
                let falling = (high - f) / (high - centre);
                (rising.min(falling).max(0.0) * area_norm) as f32
            }));
        }
        MelFilters {
            n_mels,
            n_freqs,
            weights,
        }
    }

    /// The bank Whisper's 80-mel models use.
    pub fn whisper(n_mels: usize) -> MelFilters {
        MelFilters::slaney(SAMPLE_RATE_HZ, N_FFT, n_mels)
    }

    /// One filter's weights over the FFT bins.
    #[cfg(test)]
    fn row(&self, mel: usize) -> &[f32] {
        &self.weights[mel * self.n_freqs..(mel + 1) * self.n_freqs]
    }
}

// Slaney's scale: 200/3 Hz per mel up to 1 kHz (mel 15), then 27 mels per factor 6.4.
const LINEAR_HZ_PER_MEL: f64 = 200.0 / 3.0;
const LOG_START_HZ: f64 = 1000.0;
const LOG_START_MEL: f64 = LOG_START_HZ / LINEAR_HZ_PER_MEL;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= LOG_START_HZ {
        LOG_START_MEL + (hz / LOG_START_HZ).ln() / log_step()
    } else {
        hz / LINEAR_HZ_PER_MEL
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= LOG_START_MEL {
        LOG_START_HZ * (log_step() * (mel - LOG_START_MEL)).exp()
    } else {
        mel * LINEAR_HZ_PER_MEL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whisper_bank_has_80_rows_of_201_bins() {
        let bank = MelFilters::whisper(80);
        assert_eq!((bank.n_mels, bank.n_freqs), (80, 201));
        assert_eq!(bank.weights.len(), 80 * 201);
        assert!(bank.weights.iter().all(|w| w.is_finite() && *w >= 0.0));
    }

    #[test]
    fn the_scale_is_linear_then_logarithmic() {
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-12);
        assert!((hz_to_mel(6400.0) - 42.0).abs() < 1e-9);
        for hz in [0.0, 123.0, 999.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9);
        }
    }

    #[test]
    fn every_filter_is_one_triangle() {
        let bank = MelFilters::whisper(80);
        for m in 0..bank.n_mels {
            let row = bank.row(m);
            let nonzero: Vec<usize> = (0..row.len()).filter(|&k| row[k] > 0.0).collect();
            let (first, last) = (nonzero[0], *nonzero.last().unwrap());
            assert_eq!(nonzero.len(), last - first + 1, "filter {m} has a gap");
            // Rises to one peak, then falls: no second hump.
            let peak = (first..=last)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap();
            assert!(
                (first..peak).all(|k| row[k] <= row[k + 1]),
                "filter {m} rises unevenly"
            );
            assert!(
                (peak..last).all(|k| row[k] >= row[k + 1]),
                "filter {m} falls unevenly"
            );
        }
        // Centres move up with the mel index.
        let starts: Vec<usize> = (0..80)
            .map(|m| bank.row(m).iter().position(|&w| w > 0.0).unwrap())
            .collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn slaney_norm_gives_each_wide_filter_unit_area() {
        // Where a triangle spans many 40 Hz bins, the sampled area approaches one.
        let bank = MelFilters::whisper(80);
        let bin_hz = 40.0;
        for m in 60..80 {
            let area: f32 = bank.row(m).iter().sum::<f32>() * bin_hz;
            assert!((area - 1.0).abs() < 0.02, "filter {m} has area {area}");
        }
    }

    #[test]
    fn matches_librosa() {
        // librosa 0.11.0: librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)[mel, bin]
        let expected = [
            (0, 1, 0.024_862_594_902_515_41),
            (1, 1, 0.001_990_821_911_022_067),
            (1, 2, 0.022_871_771_827_340_126),
            (2, 3, 0.020_880_950_614_809_99),
            (40, 42, 0.005_411_104_764_789_343),
            (40, 43, 0.014_735_566_452_145_576),
            (40, 44, 0.006_518_189_795_315_266),
            (60, 90, 0.001_434_534_322_470_426_6),
            (79, 186, 0.000_366_741_674_952_209),
            (79, 199, 0.000_448_759_004_939_347_5),
        ];
        let bank = MelFilters::whisper(80);
        for (m, k, want) in expected {
            let got = f64::from(bank.row(m)[k]);
            assert!(
                (got - want).abs() <= want * 1e-6,
                "[{m}, {k}]: {got} vs {want}"
            );
        }
        // Zeros librosa has too: filter 0 covers bin 1 only, 79 stops before Nyquist.
        assert_eq!(bank.row(0)[2], 0.0);
        assert_eq!(bank.row(79)[200], 0.0);
        assert_eq!(bank.row(20)[22], 0.0);
        let total: f32 = bank.weights.iter().sum();
        assert!((total - 1.999_024_2).abs() < 1e-4, "sum {total}");
    }
}
