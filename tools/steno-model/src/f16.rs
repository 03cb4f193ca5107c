//! IEEE 754 half floats: raw f16 bits in, f32 out, and back (round to nearest even).
//!
//! CTranslate2 stores Whisper weights as f16 and whisper.cpp wants most of them as
//! f16 again, but some (biases, norms, positional embeddings) as f32. Both moves go
//! through f32 here; f16 -> f32 -> f16 is exact, so an f16 source loses nothing.

/// Widens half-float bits to an f32 (exact for every value, NaN payloads kept).
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits & 0x8000) << 16;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x03ff);
    let magnitude = match (exponent, mantissa) {
        (0, 0) => 0,
        // Subnormal: value = mantissa * 2^-24; renormalise into an f32 normal.
        (0, m) => {
            let shift = m.leading_zeros() - 21; // bring the top set bit to bit 10
            let m = (m << shift) & 0x03ff;
            let e = 127 - 15 + 1 - shift;
            (e << 23) | (m << 13)
        }
        (0x1f, m) => 0x7f80_0000 | (m << 13),
        (e, m) => ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(sign | magnitude)
}

/// Narrows an f32 to half-float bits, rounding to nearest even like numpy's astype.
pub fn f32_to_f16(value: f32) -> u16 {
    let bits = value.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exponent = ((bits >> 23) & 0xff) as i32;
    let mantissa = bits & 0x007f_ffff;

    if exponent == 0xff {
        // Keep NaN a NaN even when its payload sits only in the low bits.
        let nan_bit = if mantissa != 0 { 0x0200 } else { 0 };
        return sign | 0x7c00 | nan_bit | (mantissa >> 13) as u16;
    }
    let half_exponent = exponent - 127 + 15;
    if half_exponent >= 0x1f {
        return sign | 0x7c00;
    }
    if half_exponent <= 0 {
        if half_exponent < -10 {
            return sign; // below half the smallest subnormal: rounds to zero
        }
        let full = mantissa | 0x0080_0000;
        let shift = (14 - half_exponent) as u32;
        return sign | round_shift(full, shift) as u16;
    }
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    let joined = ((half_exponent as u32) << 23) | mantissa;
    sign | round_shift(joined, 13) as u16
}

/// `value >> shift`, rounded to nearest with ties to even.
fn round_shift(value: u32, shift: u32) -> u32 {
    let truncated = value >> shift;
    let remainder = value & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    if remainder > half || (remainder == half && truncated & 1 == 1) {
        truncated + 1
    } else {
        truncated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_widen() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn every_half_survives_a_round_trip() {
        for bits in 0..=u16::MAX {
            let back = f32_to_f16(f16_to_f32(bits));
            if f16_to_f32(bits).is_nan() {
                assert_eq!(back & 0x7c00, 0x7c00);
                assert_ne!(back & 0x03ff, 0, "NaN {bits:#06x} became infinity");
            } else {
                assert_eq!(back, bits, "{bits:#06x}");
            }
        }
    }

    #[test]
    fn narrowing_rounds_to_nearest_even() {
        // 1 + 2^-11 lies halfway between 1.0 and the next half; ties go to even (1.0).
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        // 1 + 3*2^-11 is halfway between odd 0x3c01 and even 0x3c02.
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f32_to_f16(0.1), 0x2e66);
        assert_eq!(f32_to_f16(65520.0), 0x7c00); // rounds up past the largest finite half
        assert_eq!(f32_to_f16(1e-8), 0x0000);
        assert_eq!(f32_to_f16(3e-8), 0x0001); // nearest subnormal
        assert_eq!(f32_to_f16(-1e9), 0xfc00);
    }
}
