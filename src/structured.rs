//! Whole-tensor initializers: orthogonal (Householder QR with the sign correction of Mezzadri
//! 2007, as torch/nn/init.py `orthogonal_` does), delta-orthogonal (jax/_src/nn/initializers.py)
//! and sparse (torch/nn/init.py `sparse_`). Each is a pure function of (seed, stream, shape,
//! parameters) computed in a fixed operation order, so it is identical on every machine and
//! for every thread count.

use crate::rng::{AUX_REGION, WordReader};
use crate::sample::{Kernel, fill, fill_normal_pairs};

/// Draws `rows × cols` N(0,1) values (elements 0.. of the tensor's stream, row-major) and
/// returns a `rows × cols` row-major matrix with orthonormal rows (rows ≤ cols) or columns
/// (rows > cols), multiplied by `gain`, in f64.
pub fn orthogonal_matrix(reader: &mut WordReader, rows: usize, cols: usize, gain: f64) -> Vec<f64> {
    let mut a = vec![0f32; rows * cols];
    fill_normal_pairs(reader, 0, &mut a);
    // QR needs a tall matrix: work on Aᵀ when A is wide (as torch does).
    let transpose = rows < cols;
    let (m, n) = if transpose {
        (cols, rows)
    } else {
        (rows, cols)
    };
    // Column-major m×n working matrix.
    let mut w = vec![0f64; m * n];
    for r in 0..rows {
        for c in 0..cols {
            let v = a[r * cols + c] as f64;
            if transpose {
                // element (c, r) of Aᵀ
                w[r * m + c] = v;
            } else {
                w[c * m + r] = v;
            }
        }
    }
    drop(a);
    let q = householder_q(&mut w, m, n);
    let mut out = vec![0f64; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let v = if transpose {
                q[r * m + c]
            } else {
                q[c * m + r]
            };
            out[r * cols + c] = gain * v;
        }
    }
    out
}

/// Thin Q (column-major m×n, m ≥ n) of the QR decomposition of `w` with R's diagonal made
/// positive (Q's column k multiplied by sign(R[k,k]); sign(0) taken as +1).
fn householder_q(w: &mut [f64], m: usize, n: usize) -> Vec<f64> {
    // Householder vectors are stored below and on the diagonal; beta_k = 2/‖v_k‖².
    let mut betas = vec![0f64; n];
    let mut diag_sign = vec![1f64; n];
    for k in 0..n {
        let col = &mut w[k * m..(k + 1) * m];
        let norm = dot(&col[k..], &col[k..]).sqrt();
        let x0 = col[k];
        let alpha = if x0 >= 0.0 { -norm } else { norm };
        diag_sign[k] = if alpha < 0.0 { -1.0 } else { 1.0 };
        col[k] = x0 - alpha;
        let vnorm2 = dot(&col[k..], &col[k..]);
        if vnorm2 == 0.0 {
            betas[k] = 0.0;
            continue;
        }
        let beta = 2.0 / vnorm2;
        betas[k] = beta;
        let (left, right) = w.split_at_mut((k + 1) * m);
        let v = &left[k * m + k..(k + 1) * m];
        for j in 0..n - k - 1 {
            let target = &mut right[j * m + k..(j + 1) * m];
            let s = beta * dot(v, target);
            axpy(-s, v, target);
        }
    }
    // Q = H_0 H_1 … H_{n-1} applied to the first n columns of the identity.
    let mut q = vec![0f64; m * n];
    for j in 0..n {
        q[j * m + j] = 1.0;
    }
    for k in (0..n).rev() {
        if betas[k] == 0.0 {
            continue;
        }
        let v = &w[k * m + k..(k + 1) * m];
        for j in 0..n {
            let target = &mut q[j * m + k..(j + 1) * m];
            let s = betas[k] * dot(v, target);
            axpy(-s, v, target);
        }
    }
    for (j, sign) in diag_sign.iter().enumerate() {
        if *sign < 0.0 {
            for x in &mut q[j * m..(j + 1) * m] {
                *x = -*x;
            }
        }
    }
    q
}

/// Sequential dot product: a fixed summation order, never reassociated.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for (x, y) in a.iter().zip(b) {
        s += x * y;
    }
    s
}

fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// torch `orthogonal_` on a logical `[rows, *rest]` tensor: rows = shape[0], cols = the rest.
pub fn orthogonal(reader: &mut WordReader, logical_shape: &[u64], gain: f64) -> Vec<f32> {
    let rows = logical_shape[0] as usize;
    let cols = logical_shape[1..].iter().product::<u64>() as usize;
    orthogonal_matrix(reader, rows, cols, gain)
        .into_iter()
        .map(|x| x as f32)
        .collect()
}

/// jax `delta_orthogonal` on the logical `[out, in, *k]` tensor: zero except the centre tap
/// ((k−1)//2 on every spatial axis), which holds scale·Q for an orthogonal `[out, in]` Q.
pub fn delta_orthogonal(reader: &mut WordReader, logical_shape: &[u64], scale: f64) -> Vec<f32> {
    let out_c = logical_shape[0] as usize;
    let in_c = logical_shape[1] as usize;
    let spatial = &logical_shape[2..];
    let taps: usize = spatial.iter().product::<u64>() as usize;
    let mut centre = 0usize;
    for &k in spatial {
        centre = centre * k as usize + (k as usize - 1) / 2;
    }
    let q = orthogonal_matrix(reader, out_c, in_c, scale);
    let mut w = vec![0f32; out_c * in_c * taps];
    for o in 0..out_c {
        for i in 0..in_c {
            w[(o * in_c + i) * taps + centre] = q[o * in_c + i] as f32;
        }
    }
    w
}

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
    fn q_is_orthonormal_both_ways() {
        for (rows, cols) in [(8, 5), (5, 8), (16, 16), (1, 7), (7, 1)] {
            let mut r = WordReader::new(7, 11);
            let q = orthogonal_matrix(&mut r, rows, cols, 1.0);
            let (short, long) = (rows.min(cols), rows.max(cols));
            for i in 0..short {
                for j in 0..short {
                    let mut s = 0.0;
                    for k in 0..long {
                        let (a, b) = if rows <= cols {
                            (q[i * cols + k], q[j * cols + k])
                        } else {
                            (q[k * cols + i], q[k * cols + j])
                        };
                        s += a * b;
                    }
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((s - want).abs() < 1e-12, "{rows}x{cols} ({i},{j}) = {s}");
                }
            }
        }
    }

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
