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

/// Linear-prediction gain of `frame` in dB: its energy over the energy a
/// 10th-order predictor leaves (autocorrelation method, Hann window). 0 for
/// digital silence or frames shorter than the order.
pub(super) fn prediction_gain_db(frame: &[i16]) -> f32 {
    let n = frame.len();
    if n <= ORDER {
        return 0.0;
    }
    let windowed: Vec<f32> = frame
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let w = 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / (n - 1) as f32).cos();
            f32::from(s) * w
        })
        .collect();
    let mut r = [0f64; ORDER + 1];
    for (lag, r) in r.iter_mut().enumerate() {
        *r = windowed[lag..]
            .iter()
            .zip(&windowed)
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
