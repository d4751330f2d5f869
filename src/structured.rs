//! Whole-tensor initializers: orthogonal (Householder QR with the sign correction of Mezzadri
//! 2007, as torch/nn/init.py `orthogonal_` does), delta-orthogonal (jax/_src/nn/initializers.py)
//! and sparse (torch/nn/init.py `sparse_`). Each is a pure function of (seed, stream, shape,
//! parameters) computed in a fixed operation order, so it is identical on every machine and
//! for every thread count.

#![allow(clippy::needless_range_loop)] // kernels index fixed-size rows and columns

use crate::rng::{AUX_REGION, WordReader};
use crate::sample::{Kernel, fill, fill_normal_pairs};
use crate::simd::multiversion;

/// Columns per block of the blocked QR (the panel width, and the width of a parallel task).
pub const QR_BLOCK: usize = 64;
const B: usize = QR_BLOCK;

/// Draws `rows × cols` N(0,1) values (elements 0.. of the tensor's stream, row-major) and
/// returns a `rows × cols` row-major matrix with orthonormal rows (rows ≤ cols) or columns
/// (rows > cols), multiplied by `gain`, in f64. Uses the current rayon pool; the result does
/// not depend on its size.
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
    let mut w = Blocked::zeros(m, n);
    for r in 0..rows {
        for c in 0..cols {
            let v = a[r * cols + c] as f64;
            if transpose {
                w.set(c, r, v);
            } else {
                w.set(r, c, v);
            }
        }
    }
    drop(a);
    let q = householder_q(w);
    let mut out = vec![0f64; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let v = if transpose { q.get(c, r) } else { q.get(r, c) };
            out[r * cols + c] = gain * v;
        }
    }
    out
}

/// An m×n matrix stored as column blocks of `B` columns, each block m rows × B (row-major,
/// the columns past n in the last block are zero). A block is one contiguous slice, so blocks
/// can be updated in parallel.
struct Blocked {
    m: usize,
    n: usize,
    blocks: Vec<Vec<f64>>,
}

impl Blocked {
    fn zeros(m: usize, n: usize) -> Blocked {
        let nb = n.div_ceil(B);
        Blocked {
            m,
            n,
            blocks: (0..nb).map(|_| vec![0f64; m * B]).collect(),
        }
    }
    fn get(&self, r: usize, c: usize) -> f64 {
        self.blocks[c / B][r * B + c % B]
    }
    fn set(&mut self, r: usize, c: usize, v: f64) {
        self.blocks[c / B][r * B + c % B] = v;
    }
}

/// One panel's compact-WY form: H_{j0} … H_{j0+w−1} = I − V T Vᵀ on rows j0.. .
struct Panel {
    j0: usize,
    w: usize,
    /// (m − j0) × B row-major: column a is Householder vector j0 + a (zero above its diagonal
    /// and in columns ≥ w).
    v: Vec<f64>,
    /// B × B row-major, upper triangular.
    t: Vec<f64>,
}

/// Thin Q (m×n, m ≥ n) of the QR decomposition of `w` with R's diagonal made positive (Q's
/// column k multiplied by sign(R[k,k]); sign(0) taken as +1). See `docs/determinism.md`,
/// "Whole-tensor initializers", for the exact operation order.
fn householder_q(mut w: Blocked) -> Blocked {
    use rayon::prelude::*;
    let (m, n) = (w.m, w.n);
    let mut diag_sign = vec![false; n];
    let mut panels: Vec<Panel> = Vec::with_capacity(n.div_ceil(B));
    for p in 0..n.div_ceil(B) {
        let j0 = p * B;
        let width = B.min(n - j0);
        let rows = m - j0;
        let (done, rest) = w.blocks.split_at_mut(p + 1);
        let pb = &mut done[p][j0 * B..];
        let mut betas = [0f64; B];
        factor_panel(pb, rows, width, &mut betas, &mut diag_sign[j0..j0 + width]);
        // V: the vectors, with the R part above the diagonal zeroed.
        let mut v = pb.to_vec();
        for r in 0..rows.min(B) {
            for a in r + 1..B {
                v[r * B + a] = 0.0;
            }
        }
        let t = build_t(&v, rows, width, &betas);
        // Trailing columns: C ← (I − V Tᵀ Vᵀ) C, one column block per task.
        rest.par_iter_mut().for_each(|blk| {
            apply_block(&v, &t, width, &mut blk[j0 * B..], rows, true);
        });
        panels.push(Panel { j0, w: width, v, t });
    }
    drop(w);
    // Q = (I − V_0 T_0 V_0ᵀ) … (I − V_last T_last V_lastᵀ) applied to I[:, :n], last panel
    // first; panel p only touches rows ≥ j0 of columns ≥ j0.
    let mut q = Blocked::zeros(m, n);
    for j in 0..n {
        q.set(j, j, 1.0);
    }
    for pnl in panels.iter().rev() {
        let first = pnl.j0 / B;
        q.blocks[first..].par_iter_mut().for_each(|blk| {
            apply_block(
                &pnl.v,
                &pnl.t,
                pnl.w,
                &mut blk[pnl.j0 * B..],
                m - pnl.j0,
                false,
            );
        });
    }
    for (j, neg) in diag_sign.iter().enumerate() {
        if *neg {
            for r in 0..m {
                let x = q.get(r, j);
                q.set(r, j, -x);
            }
        }
    }
    q
}

/// Unblocked Householder QR of a `rows × B` row-major panel (columns < `width` used), in place:
/// afterwards column k holds v_k on and below the diagonal. `neg[k]` = (α_k < 0).
fn factor_panel(pb: &mut [f64], rows: usize, width: usize, betas: &mut [f64; B], neg: &mut [bool]) {
    for k in 0..width {
        let mut norm2 = 0.0;
        for r in k..rows {
            let x = pb[r * B + k];
            norm2 += x * x;
        }
        let norm = norm2.sqrt();
        let x0 = pb[k * B + k];
        let alpha = if x0 >= 0.0 { -norm } else { norm };
        neg[k] = alpha < 0.0;
        pb[k * B + k] = x0 - alpha;
        let mut vn2 = 0.0;
        for r in k..rows {
            let x = pb[r * B + k];
            vn2 += x * x;
        }
        if vn2 == 0.0 {
            betas[k] = 0.0;
            continue;
        }
        let beta = 2.0 / vn2;
        betas[k] = beta;
        panel_reflect(pb, rows, k, beta);
    }
}

multiversion! {
/// Applies H_k to the panel's columns k+1.. (all B columns are computed, the ones ≤ k are
/// discarded): s_j = β·(Σ_{r≥k} v_r·P[r,j]) (r ascending), P[r,j] = P[r,j] − s_j·v_r.
fn panel_reflect(pb: &mut [f64], rows: usize, k: usize, beta: f64) {
    {
        let mut s = [0f64; B];
        for r in k..rows {
            let row: &[f64; B] = pb[r * B..r * B + B].try_into().unwrap();
            let v = row[k];
            for j in 0..B {
                s[j] += v * row[j];
            }
        }
        for x in s.iter_mut() {
            *x *= beta;
        }
        for r in k..rows {
            let row: &mut [f64; B] = (&mut pb[r * B..r * B + B]).try_into().unwrap();
            let v = row[k];
            for j in k + 1..B {
                row[j] -= s[j] * v;
            }
        }
    }
}
}

/// T (B × B, upper triangular) with H_0 … H_{w−1} = I − V T Vᵀ: G = VᵀV (G[a][b] = Σ_r
/// V[r][a]·V[r][b], r ascending); T[i][i] = β_i; T[a][i] = −β_i·(Σ_{b=a}^{i−1} T[a][b]·G[b][i])
/// for a < i (b ascending).
fn build_t(v: &[f64], rows: usize, width: usize, betas: &[f64; B]) -> Vec<f64> {
    let mut g = vec![[0f64; B]; B];
    gram(v, rows, width, &mut g);
    let mut t = vec![0f64; B * B];
    for i in 0..width {
        t[i * B + i] = betas[i];
        for a in 0..i {
            let mut s = 0.0;
            for b in a..i {
                s += t[a * B + b] * g[b][i];
            }
            t[a * B + i] = -betas[i] * s;
        }
    }
    t
}

multiversion! {
/// G[a][b] = Σ_r V[r][a]·V[r][b] (r ascending).
fn gram(v: &[f64], rows: usize, width: usize, g: &mut [[f64; B]]) {
    for r in 0..rows {
        let row: &[f64; B] = v[r * B..r * B + B].try_into().unwrap();
        for a in 0..width {
            let x = row[a];
            let ga = &mut g[a];
            for b in 0..B {
                ga[b] += x * row[b];
            }
        }
    }
}
}

/// One column block `c` (rows j0.., `rows × B` row-major): W1 = Vᵀ C (W1[a][j] = Σ_r V[r][a]·
/// C[r][j], r ascending, each step one fma); W2 = Tᵀ W1 (`transposed`: W2[a][j] =
/// Σ_{b=0}^{a} T[b][a]·W1[b][j]) or T W1 (W2[a][j] = Σ_{b=a}^{w−1} T[a][b]·W1[b][j]), b
/// ascending, multiply then add; then C[r][j] = C[r][j] − (Σ_{a=0}^{w−1} V[r][a]·W2[a][j]) (a
/// ascending, each step one fma). Every sum starts from +0.0.
fn apply_block(v: &[f64], t: &[f64], width: usize, c: &mut [f64], rows: usize, transposed: bool) {
    let mut w1 = [[0f64; B]; B];
    rank_update(v, c, rows, width, &mut w1);
    let mut w2 = [[0f64; B]; B];
    for a in 0..width {
        let (lo, hi) = if transposed { (0, a + 1) } else { (a, width) };
        let mut acc = [0f64; B];
        for b in lo..hi {
            let x = if transposed {
                t[b * B + a]
            } else {
                t[a * B + b]
            };
            for j in 0..B {
                acc[j] += x * w1[b][j];
            }
        }
        w2[a] = acc;
    }
    subtract_product(v, &w2, c, rows, width);
}

/// W1[a][j] = fma(V[r][a], C[r][j], W1[a][j]) for r ascending, a < width (fma: one rounding,
/// IEEE fusedMultiplyAdd; the hardware instruction, or the pinned pure-Rust `libm::fma`).
fn rank_update(v: &[f64], c: &[f64], rows: usize, width: usize, w1: &mut [[f64; B]; B]) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::avx512f() {
        // SAFETY: the CPU supports AVX-512F (checked by `simd::avx512f`).
        unsafe { rank_update_avx512(v, c, rows, width, w1) };
        return;
    }
    for r in 0..rows {
        let crow: &[f64; B] = c[r * B..r * B + B].try_into().unwrap();
        let vrow: &[f64; B] = v[r * B..r * B + B].try_into().unwrap();
        for a in 0..width {
            let x = vrow[a];
            for j in 0..B {
                w1[a][j] = libm::fma(x, crow[j], w1[a][j]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn rank_update_avx512(v: &[f64], c: &[f64], rows: usize, width: usize, w1: &mut [[f64; B]; B]) {
    use std::arch::x86_64::*;
    // Rows in chunks that stay in L1; two W1 rows (2 × B/8 registers) accumulate over a chunk.
    const CHUNK: usize = 32;
    let mut r0 = 0;
    while r0 < rows {
        let r1 = (r0 + CHUNK).min(rows);
        let mut a = 0;
        while a < width {
            let pair = (width - a).min(2);
            // SAFETY: every pointer below addresses 8 f64 inside a [f64; B].
            unsafe {
                let mut acc0 = [_mm512_setzero_pd(); B / 8];
                let mut acc1 = [_mm512_setzero_pd(); B / 8];
                for q in 0..B / 8 {
                    acc0[q] = _mm512_loadu_pd(w1[a].as_ptr().add(8 * q));
                    if pair == 2 {
                        acc1[q] = _mm512_loadu_pd(w1[a + 1].as_ptr().add(8 * q));
                    }
                }
                for r in r0..r1 {
                    let crow: &[f64; B] = c[r * B..r * B + B].try_into().unwrap();
                    let x0 = _mm512_set1_pd(v[r * B + a]);
                    let x1 = _mm512_set1_pd(if pair == 2 { v[r * B + a + 1] } else { 0.0 });
                    for q in 0..B / 8 {
                        let cq = _mm512_loadu_pd(crow.as_ptr().add(8 * q));
                        acc0[q] = _mm512_fmadd_pd(x0, cq, acc0[q]);
                        acc1[q] = _mm512_fmadd_pd(x1, cq, acc1[q]);
                    }
                }
                for q in 0..B / 8 {
                    _mm512_storeu_pd(w1[a].as_mut_ptr().add(8 * q), acc0[q]);
                    if pair == 2 {
                        _mm512_storeu_pd(w1[a + 1].as_mut_ptr().add(8 * q), acc1[q]);
                    }
                }
            }
            a += pair;
        }
        r0 = r1;
    }
}

/// acc = +0.0; acc = fma(V[r][a], W2[a][j], acc) for a ascending (a < width); C[r][j] −= acc.
fn subtract_product(v: &[f64], w2: &[[f64; B]; B], c: &mut [f64], rows: usize, width: usize) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::avx512f() {
        // SAFETY: the CPU supports AVX-512F (checked by `simd::avx512f`).
        unsafe { subtract_product_avx512(v, w2, c, rows, width) };
        return;
    }
    for r in 0..rows {
        let vrow: &[f64; B] = v[r * B..r * B + B].try_into().unwrap();
        let mut acc = [0f64; B];
        for a in 0..width {
            let x = vrow[a];
            for j in 0..B {
                acc[j] = libm::fma(x, w2[a][j], acc[j]);
            }
        }
        let crow: &mut [f64; B] = (&mut c[r * B..r * B + B]).try_into().unwrap();
        for j in 0..B {
            crow[j] -= acc[j];
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn subtract_product_avx512(
    v: &[f64],
    w2: &[[f64; B]; B],
    c: &mut [f64],
    rows: usize,
    width: usize,
) {
    use std::arch::x86_64::*;
    // Two rows at a time share each W2 load.
    let mut r = 0;
    while r < rows {
        let pair = (rows - r).min(2);
        let r2 = if pair == 2 { r + 1 } else { r };
        // SAFETY: every pointer below addresses 8 f64 inside a [f64; B] row.
        unsafe {
            let mut acc0 = [_mm512_setzero_pd(); B / 8];
            let mut acc1 = [_mm512_setzero_pd(); B / 8];
            for a in 0..width {
                let x0 = _mm512_set1_pd(v[r * B + a]);
                let x1 = _mm512_set1_pd(v[r2 * B + a]);
                let wa = w2[a].as_ptr();
                for q in 0..B / 8 {
                    let wq = _mm512_loadu_pd(wa.add(8 * q));
                    acc0[q] = _mm512_fmadd_pd(x0, wq, acc0[q]);
                    acc1[q] = _mm512_fmadd_pd(x1, wq, acc1[q]);
                }
            }
            for q in 0..B / 8 {
                let p = c[r * B..r * B + B].as_mut_ptr().add(8 * q);
                _mm512_storeu_pd(p, _mm512_sub_pd(_mm512_loadu_pd(p), acc0[q]));
                if pair == 2 {
                    let p = c[r2 * B..r2 * B + B].as_mut_ptr().add(8 * q);
                    _mm512_storeu_pd(p, _mm512_sub_pd(_mm512_loadu_pd(p), acc1[q]));
                }
            }
        }
        r += pair;
    }
}

/// torch `orthogonal_` on the logical tensor flattened to `[rows, cols]`: rows = the product of
/// the first `rows_axes` axes (1 for PyTorch: `shape[0]`), cols = the rest.
pub fn orthogonal(
    reader: &mut WordReader,
    logical_shape: &[u64],
    rows_axes: usize,
    gain: f64,
) -> Vec<f32> {
    let split = rows_axes.clamp(1, logical_shape.len().max(1));
    let rows = logical_shape[..split].iter().product::<u64>() as usize;
    let cols = logical_shape[split..].iter().product::<u64>() as usize;
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
        for (rows, cols) in [
            (8, 5),
            (5, 8),
            (16, 16),
            (1, 7),
            (7, 1),
            (100, 70),
            (70, 100),
            (33, 33),
            (64, 64),
            (97, 65),
        ] {
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
    fn orthogonal_is_the_same_for_any_thread_count() {
        for (rows, cols) in [(100, 70), (70, 100), (130, 130), (9, 9)] {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let mut r = WordReader::new(3, 5);
                    orthogonal_matrix(&mut r, rows, cols, 1.5)
                        .iter()
                        .map(|x| x.to_bits())
                        .collect::<Vec<_>>()
                })
            };
            let one = run(1);
            assert_eq!(one, run(2), "{rows}x{cols}: 1 vs 2 threads");
            assert_eq!(one, run(3), "{rows}x{cols}: 1 vs 3 threads");
        }
    }

    #[test]
    fn orthogonal_is_the_same_at_every_simd_level() {
        // Level 0 runs the portable fallback of every QR kernel (the multiversioned loops'
        // baseline build and the `libm::fma` loops instead of the AVX-512F intrinsics) even on
        // a machine with AVX-512; more than one panel, so the trailing updates and the
        // reverse accumulation of Q run too.
        for (rows, cols) in [(130, 70), (70, 200), (129, 129)] {
            let run = |level: u8| {
                crate::simd::with_limit(level, || {
                    let mut r = WordReader::new(21, 8);
                    orthogonal_matrix(&mut r, rows, cols, 1.0)
                        .iter()
                        .map(|x| x.to_bits())
                        .collect::<Vec<_>>()
                })
            };
            let widest = run(2);
            assert_eq!(widest, run(1), "{rows}x{cols}: AVX-512F vs AVX2");
            assert_eq!(widest, run(0), "{rows}x{cols}: AVX-512F vs portable");
        }
    }

    #[test]
    fn fma_kernels_match_their_portable_fallback() {
        // rank_update and subtract_product on awkward values (mixed signs and magnitudes, so
        // a non-fused multiply-add would round differently), at every level.
        let rows = 37;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        let v: Vec<f64> = (0..rows * B).map(|_| next() * 1e3).collect();
        let c: Vec<f64> = (0..rows * B).map(|_| next() / 7.0).collect();
        let mut w2 = [[0f64; B]; B];
        for row in w2.iter_mut() {
            for e in row.iter_mut() {
                *e = next();
            }
        }
        let run = |level: u8| {
            crate::simd::with_limit(level, || {
                let mut w1 = [[0.5f64; B]; B];
                rank_update(&v, &c, rows, B - 3, &mut w1);
                let mut c2 = c.clone();
                subtract_product(&v, &w2, &mut c2, rows, B - 5);
                let bits = |xs: &[f64]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                (bits(w1.as_flattened()), bits(&c2))
            })
        };
        assert_eq!(run(2), run(0));
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
