//! torch `sparse_` (torch/nn/init.py): the tensor's normal stream, then a fixed number of
//! zeros per column at rows chosen by a partial Fisher–Yates shuffle over auxiliary words.

use crate::rng::{AUX_REGION, WordReader};
use crate::sample::{Kernel, fill};

/// torch `sparse_`: N(0, std²) values (the tensor's normal stream), then in each column
/// ceil(sparsity·rows) distinct rows set to zero. The rows are the first entries of a partial
/// Fisher–Yates shuffle of 0..rows driven by auxiliary words at `AUX_REGION + col·rows + k`,
/// each mapped to [k, rows) by the multiply-shift `k + (w·(rows−k)) >> 32`.
pub fn sparse(reader: &mut WordReader, logical_shape: &[u64], sparsity: f64, std: f32) -> Vec<f32> {
    let rows = logical_shape[0] as usize;
    let cols = logical_shape[1] as usize;
    let mut w = vec![0f32; rows * cols];
    fill(reader, &Kernel::Normal { mean: 0.0, std }, 0, &mut w);
    let num_zeros = (sparsity * rows as f64).ceil() as usize;
    let num_zeros = num_zeros.min(rows);
    let mut perm: Vec<usize> = Vec::with_capacity(rows);
    let mut words = vec![0u32; num_zeros];
    for c in 0..cols {
        perm.clear();
        perm.extend(0..rows);
        reader.fill(AUX_REGION + (c as u128) * (rows as u128), &mut words);
        for k in 0..num_zeros {
            let span = (rows - k) as u64;
            let j = k + ((words[k] as u64 * span) >> 32) as usize;
            perm.swap(k, j);
            w[perm[k] * cols + c] = 0.0;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_zeroes_exactly_per_column() {
        let mut r = WordReader::new(1, 2);
        let w = sparse(&mut r, &[10, 6], 0.25, 0.01);
        for c in 0..6 {
            let zeros = (0..10).filter(|&r| w[r * 6 + c] == 0.0).count();
            assert_eq!(zeros, 3);
        }
    }
}
