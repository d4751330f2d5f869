//! Encoders: turn a plan into a sequence of byte chunks without holding the model in memory.
//! `safetensors` is a virtual file that can be read at any offset; `json` is a forward-only
//! stream. Both take values from `generate`, and both use the same dtype rounding.

pub mod json;
pub mod numfmt;
pub mod safetensors;

use crate::spec::DType;

/// Values converted per step of the f16 path (through a small stack buffer).
const HALF_STEP: usize = 1024;

/// Writes the little-endian bytes of `values` converted to `dtype` (round to nearest-even for
/// f16/bf16, exact widening for f64) into `out`, which holds exactly `values.len()·size` bytes.
pub fn encode_values(dtype: DType, values: &[f32], out: &mut [u8]) {
    match dtype {
        DType::F32 => {
            for (v, o) in values.iter().zip(out.chunks_exact_mut(4)) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        DType::F64 => {
            for (v, o) in values.iter().zip(out.chunks_exact_mut(8)) {
                o.copy_from_slice(&(*v as f64).to_le_bytes());
            }
        }
        DType::F16 => {
            // `half`'s slice conversion (F16C four at a time where the CPU has it) gives the
            // same bits as `f16::from_f32` per element.
            use half::slice::HalfFloatSliceExt;
            let mut tmp = [half::f16::ZERO; HALF_STEP];
            for (v, o) in values.chunks(HALF_STEP).zip(out.chunks_mut(2 * HALF_STEP)) {
                let t = &mut tmp[..v.len()];
                t.convert_from_f32_slice(v);
                for (h, o) in t.iter().zip(o.chunks_exact_mut(2)) {
                    o.copy_from_slice(&h.to_bits().to_le_bytes());
                }
            }
        }
        DType::BF16 => encode_bf16(values, out),
        DType::I64 => {
            for (v, o) in values.iter().zip(out.chunks_exact_mut(8)) {
                o.copy_from_slice(&(*v as i64).to_le_bytes());
            }
        }
    }
}

crate::simd::multiversion! {
    /// The bf16 loop, compiled per SIMD level (integer operations only, so every level gives
    /// the same bits): the baseline x86-64 build cannot narrow 32-bit lanes to 16 bits in a
    /// vector, so it ran one element at a time, a sixth of a bf16 response's server time.
    fn encode_bf16(values: &[f32], out: &mut [u8]) {
        for (v, o) in values.iter().zip(out.chunks_exact_mut(2)) {
            o.copy_from_slice(&bf16_bits(*v).to_le_bytes());
        }
    }
}

/// `half::bf16::from_f32(v).to_bits()` without branches (so the loop vectorizes): round to
/// nearest-even on the upper 16 bits; a NaN keeps its upper bits with the quiet bit set.
#[inline(always)]
fn bf16_bits(v: f32) -> u16 {
    let x = v.to_bits();
    let rounded = (x.wrapping_add(0x7fff + ((x >> 16) & 1)) >> 16) as u16;
    let nan = ((x >> 16) | 0x0040) as u16;
    if x & 0x7fff_ffff > 0x7f80_0000 {
        nan
    } else {
        rounded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_and_f16_match_half_per_element() {
        // A dense sweep of all bit patterns (every 61st, plus the neighbourhood of each
        // rounding boundary through the low bits) and the special values.
        let mut vals: Vec<f32> = (0..u32::MAX / 61)
            .map(|i| f32::from_bits(i.wrapping_mul(61) ^ (i & 0xffff)))
            .collect();
        vals.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            f32::MIN,
            f32::from_bits(0x7f7f_8000),
            f32::from_bits(0x3f80_8000),
            f32::from_bits(0x3f81_8000),
        ]);
        for dtype in [DType::BF16, DType::F16] {
            for chunk in vals.chunks(1 << 20) {
                let mut out = vec![0u8; chunk.len() * 2];
                encode_values(dtype, chunk, &mut out);
                for (v, o) in chunk.iter().zip(out.chunks_exact(2)) {
                    let want = match dtype {
                        DType::BF16 => half::bf16::from_f32(*v).to_bits(),
                        _ => half::f16::from_f32(*v).to_bits(),
                    };
                    assert_eq!(
                        u16::from_le_bytes([o[0], o[1]]),
                        want,
                        "{dtype:?} {:#x}",
                        v.to_bits()
                    );
                }
            }
        }
    }
}
