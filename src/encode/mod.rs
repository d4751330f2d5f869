//! Encoders: turn a plan into a sequence of byte chunks without holding the model in memory.
//! `safetensors` is a virtual file that can be read at any offset; `json` is a forward-only
//! stream. Both take values from `generate`, and both use the same dtype rounding.

pub mod json;
pub mod numfmt;
pub mod safetensors;

use crate::spec::DType;

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
            for (v, o) in values.iter().zip(out.chunks_exact_mut(2)) {
                o.copy_from_slice(&half::f16::from_f32(*v).to_bits().to_le_bytes());
            }
        }
        DType::BF16 => {
            for (v, o) in values.iter().zip(out.chunks_exact_mut(2)) {
                o.copy_from_slice(&half::bf16::from_f32(*v).to_bits().to_le_bytes());
            }
        }
        DType::I64 => {
            for (v, o) in values.iter().zip(out.chunks_exact_mut(8)) {
                o.copy_from_slice(&(*v as i64).to_le_bytes());
            }
        }
    }
}
