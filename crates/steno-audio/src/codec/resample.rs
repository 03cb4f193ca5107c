//! Streaming rational resampler: i16 samples at one rate in (chunk by chunk), i16 samples at another rate out.
//!
//! A polyphase FIR: conceptually upsample by `up` (insert zeros), low-pass,
//! keep every `down`-th sample; only the taps that meet real input samples
//! are ever computed. The low-pass is a Kaiser-windowed sinc whose stop band
//! starts at the lower of the two Nyquist frequencies, so decimation
//! (24/48 kHz to 16 kHz) folds nothing back into the band and interpolation
//! (8 kHz to 16 kHz) leaves no images above 4 kHz.
//!
//! The filter keeps the last few input samples between calls, so the output
//! does not depend on how the stream was cut into chunks. It is causal: the
//! output lags the input by half the filter length (about 1.5 ms), and after
//! `n` input samples exactly `ceil(n * up / down)` output samples have come
//! out.

/// Kaiser window attenuation in the stop band, in dB.
const STOP_BAND_ATTENUATION_DB: f64 = 80.0;
/// The pass band ends at this fraction of the lower Nyquist frequency; the
/// transition band runs from there to the Nyquist frequency itself.
const PASS_BAND_FRACTION: f64 = 0.8;

/// One resampling stream (one direction, one pair of rates).
pub(crate) struct Resampler {
    /// Upsampling factor: `output_rate / gcd`.
    up: u64,
    /// Downsampling factor: `input_rate / gcd`.
    down: u64,
    /// Taps per polyphase branch: how many input samples one output needs.
    taps_per_phase: usize,
    /// `up` branches of `taps_per_phase` taps each, stored oldest-input-first
    /// so a branch lines up with a contiguous slice of `history`.
    phases: Vec<f32>,
    /// The input samples still needed, oldest first; `history[0]` is input
    /// sample number `history_start`. Holds at most `taps_per_phase` samples
    /// between calls.
    history: Vec<f32>,
    /// Index in the input stream of `history[0]`; starts negative because the
    /// filter sees silence before the stream begins.
    history_start: i64,
    /// Index in the output stream of the next sample to compute.
    next_output: u64,
}

impl Resampler {
    /// Resamples `input_rate_hz` to `output_rate_hz` (both positive).
    pub(crate) fn new(input_rate_hz: u32, output_rate_hz: u32) -> Self {
        let divisor = gcd(input_rate_hz, output_rate_hz);
        let up = u64::from(output_rate_hz / divisor);
        let down = u64::from(input_rate_hz / divisor);

        // The prototype filter runs at the upsampled rate.
        let filter_rate_hz = f64::from(input_rate_hz) * up as f64;
        let nyquist_hz = f64::from(input_rate_hz.min(output_rate_hz)) / 2.0;
        let transition_hz = nyquist_hz * (1.0 - PASS_BAND_FRACTION);
        let cutoff_hz = nyquist_hz - transition_hz / 2.0;
        let transition_rad = 2.0 * std::f64::consts::PI * transition_hz / filter_rate_hz;
        let beta = 0.1102 * (STOP_BAND_ATTENUATION_DB - 8.7);
        let order = ((STOP_BAND_ATTENUATION_DB - 8.0) / (2.285 * transition_rad)).ceil() as usize;
        let len = order + 1;

        let center = (len - 1) as f64 / 2.0;
        let normalized_cutoff = 2.0 * cutoff_hz / filter_rate_hz;
        let prototype: Vec<f64> = (0..len)
            .map(|j| {
                let x = j as f64 - center;
                let window = bessel_i0(beta * (1.0 - (x / center).powi(2)).max(0.0).sqrt())
                    / bessel_i0(beta);
                normalized_cutoff * sinc(normalized_cutoff * x) * window
            })
            .collect();

        let up_usize = up as usize;
        let taps_per_phase = len.div_ceil(up_usize);
        let mut phases = vec![0.0_f32; up_usize * taps_per_phase];
        for (phase, branch) in phases.chunks_exact_mut(taps_per_phase).enumerate() {
            // Tap k of this branch multiplies the input k samples before the
            // newest one; store it at the mirrored slot (oldest first).
            let taps: Vec<f64> = (0..taps_per_phase)
                .map(|k| prototype.get(phase + k * up_usize).copied().unwrap_or(0.0))
                .collect();
            // Each branch on its own passes DC at unity, which keeps a
            // constant input constant (no ripple between branches).
            let sum: f64 = taps.iter().sum();
            for (k, tap) in taps.iter().enumerate() {
                branch[taps_per_phase - 1 - k] = (tap / sum) as f32;
            }
        }

        Self {
            up,
            down,
            taps_per_phase,
            phases,
            history: vec![0.0; taps_per_phase - 1],
            history_start: -(taps_per_phase as i64 - 1),
            next_output: 0,
        }
    }

    /// Feeds a chunk of input and appends every output sample it completes.
    pub(crate) fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.history.extend(input.iter().map(|&s| f32::from(s)));
        let input_end = self.history_start + self.history.len() as i64;
        let taps = self.taps_per_phase;
        out.reserve((input.len() as u64 * self.up / self.down) as usize + 1);
        loop {
            let position = self.next_output * self.down;
            // The newest input sample this output needs, and which branch.
            let newest = (position / self.up) as i64;
            if newest >= input_end {
                break;
            }
            let phase = (position % self.up) as usize;
            let oldest = (newest - self.history_start) as usize + 1 - taps;
            let window = &self.history[oldest..oldest + taps];
            let branch = &self.phases[phase * taps..(phase + 1) * taps];
            let value = dot(window, branch);
            out.push(
                value
                    .round()
                    .clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16,
            );
            self.next_output += 1;
        }
        // Keep only what the next output will need.
        let next_newest = (self.next_output * self.down / self.up) as i64;
        let keep_from = next_newest + 1 - taps as i64;
        let drop = (keep_from - self.history_start).clamp(0, self.history.len() as i64);
        self.history.drain(..drop as usize);
        self.history_start += drop;
    }
}

/// Dot product in eight independent lanes: a plain `sum()` must add in
/// order, which keeps the compiler from vectorising it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0_f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let remainder: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    lanes.iter().sum::<f32>() + remainder
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let pi_x = std::f64::consts::PI * x;
        pi_x.sin() / pi_x
    }
}

/// Modified Bessel function of the first kind, order zero (for the Kaiser
/// window); the power series converges fast for the arguments used here.
fn bessel_i0(x: f64) -> f64 {
    let quarter_x_squared = x * x / 4.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..64 {
        term *= quarter_x_squared / (k * k) as f64;
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}
