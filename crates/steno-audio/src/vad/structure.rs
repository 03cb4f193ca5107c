//! Spectral structure of one frame: 16 kHz samples in, the linear-prediction gain in dB out (speech is predictable, white noise is not).
//!
//! webrtc-vad adapts to its background: after digital silence it takes the
//! first seconds of faint broadband noise (a hiss, a line coming alive) for
//! speech. Speech, voiced or not, has formants and a spectral tilt, so a
//! 10th-order predictor removes much of its energy; white noise has neither,
//! and a predictor gains almost nothing on it. The gate asks for this
//! structure before it lets speech start.

/// Predictor order: two poles per formant up to 8 kHz, the usual choice for
/// 16 kHz speech.
const ORDER: usize = 10;
/// The longest frame the segmenter hands over: 30 ms at 16 kHz.
const MAX_FRAME: usize = 480;

/// Linear-prediction gain of `frame` in dB: its energy over the energy a
/// 10th-order predictor leaves (autocorrelation method, Hann window). 0 for
/// digital silence, frames shorter than the order or longer than 30 ms.
pub(super) fn prediction_gain_db(frame: &[i16]) -> f32 {
    let n = frame.len();
    if n <= ORDER || n > MAX_FRAME {
        return 0.0;
    }
    // On the stack: this runs for every voiced frame of every session.
    let mut buffer = [0f32; MAX_FRAME];
    let windowed = &mut buffer[..n];
    for (i, (w, &s)) in windowed.iter_mut().zip(frame).enumerate() {
        let hann = 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / (n - 1) as f32).cos();
        *w = f32::from(s) * hann;
    }
    let windowed = &*windowed;
    let mut r = [0f64; ORDER + 1];
    for (lag, r) in r.iter_mut().enumerate() {
        *r = windowed[lag..]
            .iter()
            .zip(windowed)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
    }
    if r[0] <= 0.0 {
        return 0.0;
    }
    // Levinson-Durbin recursion; `error` is the prediction error energy.
    let mut a = [0f64; ORDER + 1];
    let mut error = r[0];
    for i in 1..=ORDER {
        let acc = r[i] - (1..i).map(|j| a[j] * r[i - j]).sum::<f64>();
        let k = acc / error;
        let previous = a;
        a[i] = k;
        for j in 1..i {
            a[j] = previous[j] - k * previous[i - j];
        }
        error *= 1.0 - k * k;
        if error <= r[0] * 1e-9 {
            error = r[0] * 1e-9;
            break;
        }
    }
    (10.0 * (r[0] / error).log10()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_is_predictable_and_noise_is_not() {
        let tone: Vec<i16> = (0..320)
            .map(|i| (8000.0 * (i as f32 * 0.2).sin()) as i16)
            .collect();
        let mut x: u32 = 0x2545_f491;
        let noise: Vec<i16> = (0..320)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 20) as i16 - 2048
            })
            .collect();
        assert!(prediction_gain_db(&tone) > 20.0);
        assert!(prediction_gain_db(&noise) < 2.0);
        assert_eq!(prediction_gain_db(&[0; 320]), 0.0);
        assert_eq!(prediction_gain_db(&[0; 960]), 0.0, "longer than 30 ms");
    }
}
