//! ggml's `q8_0` quantisation: rows of f32 in, blocks of one f16 scale and 32 signed bytes out.
//!
//! Each block of 32 consecutive values (along a row, so a row's length must be a
//! multiple of 32) stores `d = max|x| / 127` as an f16 and `round(x / d)` as i8,
//! the same arithmetic as ggml's `quantize_row_q8_0_ref`. whisper.cpp then runs
//! its matrix products on 8-bit integers.

use super::f16::f32_to_f16;

/// Values per block.
pub const BLOCK: usize = 32;
/// Bytes per block: the f16 scale and 32 bytes.
pub const BLOCK_BYTES: usize = 2 + BLOCK;

/// Appends the `q8_0` blocks of `values` (a whole number of blocks) to `out`.
pub fn quantize(values: &[f32], out: &mut Vec<u8>) {
    debug_assert_eq!(values.len() % BLOCK, 0);
    out.reserve(values.len() / BLOCK * BLOCK_BYTES);
    for block in values.chunks_exact(BLOCK) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inverse = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend_from_slice(&f32_to_f16(d).to_le_bytes());
        out.extend(block.iter().map(|v| (v * inverse).round() as i8 as u8));
    }
}

#[cfg(test)]
mod tests {
    use super::super::f16::f16_to_f32;
    use super::*;

    fn dequantize(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(BLOCK_BYTES)
            .flat_map(|b| {
                let d = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
                b[2..].iter().map(move |&q| f32::from(q as i8) * d)
            })
            .collect()
    }

    #[test]
    fn round_trip_stays_within_half_a_step() {
        let values: Vec<f32> = (0..96)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let mut bytes = Vec::new();
        quantize(&values, &mut bytes);
        assert_eq!(bytes.len(), 3 * BLOCK_BYTES);
        let back = dequantize(&bytes);
        for (block, back) in values.chunks(BLOCK).zip(back.chunks(BLOCK)) {
            let step = block.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            for (v, b) in block.iter().zip(back) {
                assert!((v - b).abs() <= step * 0.51 + 1e-3, "{v} -> {b}");
            }
        }
    }

    #[test]
    fn largest_value_maps_to_127_and_zero_blocks_stay_zero() {
        let mut values = vec![0f32; 3 * BLOCK];
        values[3] = -2.5;
        values[40] = 1.0;
        let mut bytes = Vec::new();
        quantize(&values, &mut bytes);
        assert_eq!(bytes[2 + 3] as i8, -127);
        assert_eq!(bytes[BLOCK_BYTES + 2 + 8] as i8, 127);
        assert!(bytes[2 * BLOCK_BYTES..].iter().all(|&b| b == 0));
    }
}
