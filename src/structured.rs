//! Whole-tensor initializers: orthogonal (Householder QR with the sign correction of Mezzadri
//! 2007, as torch/nn/init.py `orthogonal_` does), delta-orthogonal (jax/_src/nn/initializers.py)
//! and sparse (torch/nn/init.py `sparse_`, in `structured/sparse.rs`; the QR is this file). Each is a pure function of (seed, stream, shape,
//! parameters) computed in a fixed operation order, so it is identical on every machine and
//! for every thread count.
//!
//! Memory: the QR works in place in one copy of the matrix in f64 (its column blocks padded to
//! `QR_BLOCK` columns, or exactly `n` columns wide when the thin side n is smaller than a
//! block), plus one `B × B` T factor per panel; Q is built over the Householder vectors. Peak:
//! the N(0,1) draw (4 bytes an element) with that copy, then the copy with the f32 result, so
//! at most 12 bytes per padded element: 3× the f32 tensor when n < 64 or n is a multiple of 64,
//! under 6× in the worst padding (n = 65). See docs/operations.md, "Limits and their defaults".
//!
//! Cancellation: the computations take a flag (set by the HTTP side when the client has gone)
//! and look at it between panels and between row chunks; a set flag ends the computation with
//! `Cancelled` and no value. It never changes a value that is returned.

#![allow(clippy::needless_range_loop)] // kernels index fixed-size rows and columns

use std::sync::atomic::{AtomicBool, Ordering};

use crate::rng::WordReader;
use crate::sample::fill_normal_pairs;
use crate::simd::multiversion;

/// Columns per block of the blocked QR (the panel width, and the width of a parallel task).
pub const QR_BLOCK: usize = 64;
const B: usize = QR_BLOCK;

/// Rows per parallel task when Q is formed over a block's Householder vectors.
const ROW_CHUNK: usize = 4096;

mod sparse;
pub use sparse::sparse;

/// A whole-tensor computation stopped because its cancellation flag was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

fn check(cancel: &AtomicBool) -> Result<(), Cancelled> {
    if cancel.load(Ordering::Relaxed) {
        Err(Cancelled)
    } else {
        Ok(())
    }
}

/// Draws `rows × cols` N(0,1) values (elements 0.. of the tensor's stream, row-major) and
/// returns a `rows × cols` row-major matrix with orthonormal rows (rows ≤ cols) or columns
/// (rows > cols), multiplied by `gain` in f64 and rounded to f32. Uses the current rayon pool;
/// the result does not depend on its size.
pub fn orthogonal_matrix(
    reader: &mut WordReader,
    rows: usize,
    cols: usize,
    gain: f64,
    cancel: &AtomicBool,
) -> Result<Vec<f32>, Cancelled> {
    let (q, transpose) = orthogonal_q(reader, rows, cols, cancel)?;
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            let v = if transpose { q.get(c, r) } else { q.get(r, c) };
            out.push((gain * v) as f32);
        }
    }
    Ok(out)
}

/// Q of `orthogonal_matrix` before the gain, in f64, and whether it is stored transposed (as
/// `cols × rows`).
fn orthogonal_q(
    reader: &mut WordReader,
    rows: usize,
    cols: usize,
    cancel: &AtomicBool,
) -> Result<(Blocked, bool), Cancelled> {
    // QR needs a tall matrix: work on Aᵀ when A is wide (as torch does).
    let transpose = rows < cols;
    let n = rows.min(cols);
    orthogonal_q_width(reader, rows, cols, block_width(n), cancel).map(|q| (q, transpose))
}

/// The stored width of a column block: `B`, or `n` itself for a matrix thinner than a block
/// (one block, no padding: a `[1, 2^24]` tensor would otherwise take 64 f64 per element).
fn block_width(n: usize) -> usize {
    if n < B { n.max(1) } else { B }
}

/// `orthogonal_q` with blocks `bw` columns wide (`B`, or n when n < `B`; any n ≤ bw ≤ `B` gives
/// the same values, which the tests check).
fn orthogonal_q_width(
    reader: &mut WordReader,
    rows: usize,
    cols: usize,
    bw: usize,
    cancel: &AtomicBool,
) -> Result<Blocked, Cancelled> {
    let mut a = vec![0f32; rows * cols];
    fill_normal_pairs(reader, 0, &mut a);
    let transpose = rows < cols;
    let (m, n) = if transpose {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let mut w = Blocked::zeros(m, n, bw);
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
    householder_q(w, cancel)
}

/// An m×n matrix stored as column blocks of `bw` columns, each block m rows × bw (row-major,
/// the columns past n in the last block are zero). A block is one contiguous slice, so blocks
/// can be updated in parallel. `bw` is `B`, or n < `B` (then there is one block).
struct Blocked {
    m: usize,
    n: usize,
    bw: usize,
    blocks: Vec<Vec<f64>>,
}

impl Blocked {
    fn zeros(m: usize, n: usize, bw: usize) -> Blocked {
        let nb = n.div_ceil(bw);
        Blocked {
            m,
            n,
            bw,
            blocks: (0..nb).map(|_| vec![0f64; m * bw]).collect(),
        }
    }
    fn get(&self, r: usize, c: usize) -> f64 {
        self.blocks[c / self.bw][r * self.bw + c % self.bw]
    }
    fn set(&mut self, r: usize, c: usize, v: f64) {
        self.blocks[c / self.bw][r * self.bw + c % self.bw] = v;
    }
}

/// Thin Q (m×n, m ≥ n) of the QR decomposition of `w` with R's diagonal made positive (Q's
/// column k multiplied by sign(R[k,k]); sign(0) taken as +1). See `docs/determinism.md`,
/// "Whole-tensor initializers", for the exact operation order.
///
/// Panel p's Householder vectors V_p stay where the factorization leaves them (block p, rows
/// j0.., with R above the diagonal zeroed), so the factorization needs no copy. Q is then
/// accumulated last panel first, as (I − V_0 T_0 V_0ᵀ) … (I − V_last T_last V_lastᵀ) I[:, :n]:
/// panel p touches only blocks ≥ p, and block p of Q is still I's column block when panel p is
/// applied to it, so that block is computed over V_p in place (`identity_block_in_place`, the
/// same operations as `apply_block` on I's block) once the blocks after it have used V_p.
fn householder_q(mut w: Blocked, cancel: &AtomicBool) -> Result<Blocked, Cancelled> {
    use rayon::prelude::*;
    let (m, n, bw) = (w.m, w.n, w.bw);
    let nb = w.blocks.len();
    let mut diag_sign = vec![false; n];
    let mut ts: Vec<Vec<f64>> = Vec::with_capacity(nb);
    for p in 0..nb {
        check(cancel)?;
        let j0 = p * bw;
        let width = bw.min(n - j0);
        let rows = m - j0;
        let (done, rest) = w.blocks.split_at_mut(p + 1);
        let pb = &mut done[p][j0 * bw..];
        let mut betas = [0f64; B];
        let neg = &mut diag_sign[j0..j0 + width];
        factor_panel(pb, rows, bw, width, &mut betas, neg);
        // V: the vectors, with the R part above the diagonal zeroed (R itself is not needed:
        // only the signs of its diagonal, kept in `diag_sign`).
        for r in 0..rows.min(bw) {
            for a in r + 1..bw {
                pb[r * bw + a] = 0.0;
            }
        }
        let t = if bw == B {
            build_t(pb, rows, width, &betas)
        } else {
            let mut g = vec![[0f64; B]; B];
            gram_narrow(pb, rows, bw, &mut g);
            t_from_gram(&g, width, &betas)
        };
        // Trailing columns: C ← (I − V Tᵀ Vᵀ) C, one column block per task (only with `B`-wide
        // blocks: a narrow matrix is one block).
        let v: &[f64] = pb;
        rest.par_iter_mut().for_each(|blk| {
            apply_block(v, &t, width, &mut blk[j0 * B..], rows, true);
        });
        ts.push(t);
    }
    for p in (0..nb).rev() {
        check(cancel)?;
        let j0 = p * bw;
        let width = bw.min(n - j0);
        let rows = m - j0;
        let (head, tail) = w.blocks.split_at_mut(p + 1);
        let vblk = &mut head[p];
        let t = &ts[p];
        {
            let v: &[f64] = &vblk[j0 * bw..];
            tail.par_iter_mut().for_each(|blk| {
                apply_block(v, t, width, &mut blk[j0 * B..], rows, false);
            });
        }
        // Rows above j0 of Q's block p are I's zeros until earlier panels reach them.
        vblk[..j0 * bw].fill(0.0);
        identity_block_in_place(&mut vblk[j0 * bw..], bw, rows, width, t, cancel)?;
    }
    for (j, neg) in diag_sign.iter().enumerate() {
        if *neg {
            for r in 0..m {
                let x = w.get(r, j);
                w.set(r, j, -x);
            }
        }
    }
    Ok(w)
}

/// `apply_block(V, T, width, C, rows, false)` for C = I's column block (C[r][j] = 1 if r = j,
/// else 0), written over V itself (`vb`: `rows × bw` row-major, V's column a in column a).
///
/// W1 = Vᵀ C is the fma chain acc ← fma(V[r][a], C[r][j], acc) from +0.0 over r ascending.
/// V is finite, so each product is exact (±0 or V[r][a]) and each fma is the plain sum: for
/// r < j the sum stays +0.0 (+0 + ±0 = +0), at r = j it becomes +0.0 + V[j][a], after that
/// adding ±0 changes nothing. So W1[a][j] = 0.0 + V[j][a] exactly (for j < width; the padding
/// columns of C are zero, so their W1 is +0.0). W2 = T W1 is then formed as `apply_block`
/// forms it, and each row of the result, C[r][j] − Σ_a fma(V[r][a], W2[a][j]), needs only row
/// r of V, so the row is read whole and then overwritten.
fn identity_block_in_place(
    vb: &mut [f64],
    bw: usize,
    rows: usize,
    width: usize,
    t: &[f64],
    cancel: &AtomicBool,
) -> Result<(), Cancelled> {
    use rayon::prelude::*;
    let mut w1 = [[0f64; B]; B];
    for b in 0..width {
        for j in 0..width {
            w1[b][j] = 0.0 + vb[j * bw + b];
        }
    }
    let mut w2 = [[0f64; B]; B];
    for a in 0..width {
        let mut acc = [0f64; B];
        for b in a..width {
            let x = t[a * B + b];
            for j in 0..B {
                acc[j] += x * w1[b][j];
            }
        }
        w2[a] = acc;
    }
    let stop = AtomicBool::new(false);
    vb[..rows * bw]
        .par_chunks_mut(ROW_CHUNK * bw)
        .enumerate()
        .for_each(|(k, chunk)| {
            if cancel.load(Ordering::Relaxed) {
                stop.store(true, Ordering::Relaxed);
                return;
            }
            identity_rows(chunk, bw, width, &w2, k * ROW_CHUNK);
        });
    if stop.load(Ordering::Relaxed) {
        return Err(Cancelled);
    }
    Ok(())
}

/// Rows `first..` of `identity_block_in_place`: row r ← e_r − Σ_a fma(V[r][a], W2[a][·]) (a
/// ascending, from +0.0; e_r is I's row r within the block).
fn identity_rows(chunk: &mut [f64], bw: usize, width: usize, w2: &[[f64; B]; B], first: usize) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::avx2() && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports FMA (checked just above).
        unsafe { identity_rows_fma(chunk, bw, width, w2, first) };
        return;
    }
    for (i, row) in chunk.chunks_exact_mut(bw).enumerate() {
        let mut vrow = [0f64; B];
        vrow[..bw].copy_from_slice(row);
        let mut acc = [0f64; B];
        for a in 0..width {
            let x = vrow[a];
            for j in 0..bw {
                acc[j] = libm::fma(x, w2[a][j], acc[j]);
            }
        }
        let r = first + i;
        for j in 0..bw {
            let e = if r == j && j < width { 1.0 } else { 0.0 };
            row[j] = e - acc[j];
        }
    }
}

/// `identity_rows` with the hardware fused multiply-add (`mul_add` is IEEE fusedMultiplyAdd,
/// one rounding, the same value as `libm::fma`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma,avx2")]
fn identity_rows_fma(chunk: &mut [f64], bw: usize, width: usize, w2: &[[f64; B]; B], first: usize) {
    for (i, row) in chunk.chunks_exact_mut(bw).enumerate() {
        let mut vrow = [0f64; B];
        vrow[..bw].copy_from_slice(row);
        let mut acc = [0f64; B];
        for a in 0..width {
            let x = vrow[a];
            for j in 0..bw {
                acc[j] = x.mul_add(w2[a][j], acc[j]);
            }
        }
        let r = first + i;
        for j in 0..bw {
            let e = if r == j && j < width { 1.0 } else { 0.0 };
            row[j] = e - acc[j];
        }
    }
}

multiversion! {
/// `panel_reflect` on a narrow panel: s_j = β·(Σ_{r≥k} v_r·P[r,j]) (r ascending), P[r,j] =
/// P[r,j] − s_j·v_r, for the columns j > k.
fn reflect_narrow(pb: &mut [f64], rows: usize, bw: usize, k: usize, beta: f64) {
    {
        let mut s = [0f64; B];
        for r in k..rows {
            let row = &pb[r * bw..r * bw + bw];
            let v = row[k];
            for j in k + 1..bw {
                s[j] += v * row[j];
            }
        }
        for x in s.iter_mut() {
            *x *= beta;
        }
        for r in k..rows {
            let row = &mut pb[r * bw..r * bw + bw];
            let v = row[k];
            for j in k + 1..bw {
                row[j] -= s[j] * v;
            }
        }
    }
}
}

multiversion! {
/// `gram` on a narrow panel: G[a][b] = Σ_r V[r][a]·V[r][b] (r ascending), a, b < bw.
fn gram_narrow(v: &[f64], rows: usize, bw: usize, g: &mut [[f64; B]]) {
    for r in 0..rows {
        let row = &v[r * bw..r * bw + bw];
        for a in 0..bw {
            let x = row[a];
            let ga = &mut g[a];
            for b in 0..bw {
                ga[b] += x * row[b];
            }
        }
    }
}
}

/// Unblocked Householder QR of a `rows × bw` row-major panel (bw = B, or the unpadded width of
/// a narrow matrix; columns < `width` used), in place: afterwards column k holds v_k on and
/// below the diagonal. `neg[k]` = (α_k < 0).
fn factor_panel(
    pb: &mut [f64],
    rows: usize,
    bw: usize,
    width: usize,
    betas: &mut [f64; B],
    neg: &mut [bool],
) {
    for k in 0..width {
        let mut norm2 = 0.0;
        for r in k..rows {
            let x = pb[r * bw + k];
            norm2 += x * x;
        }
        let norm = norm2.sqrt();
        let x0 = pb[k * bw + k];
        let alpha = if x0 >= 0.0 { -norm } else { norm };
        neg[k] = alpha < 0.0;
        pb[k * bw + k] = x0 - alpha;
        let mut vn2 = 0.0;
        for r in k..rows {
            let x = pb[r * bw + k];
            vn2 += x * x;
        }
        if vn2 == 0.0 {
            betas[k] = 0.0;
            continue;
        }
        let beta = 2.0 / vn2;
        betas[k] = beta;
        if bw == B {
            panel_reflect(pb, rows, k, beta);
        } else {
            reflect_narrow(pb, rows, bw, k, beta);
        }
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
    t_from_gram(&g, width, betas)
}

/// T from G (`build_t` after its Gram matrix).
fn t_from_gram(g: &[[f64; B]], width: usize, betas: &[f64; B]) -> Vec<f64> {
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
    cancel: &AtomicBool,
) -> Result<Vec<f32>, Cancelled> {
    let split = rows_axes.clamp(1, logical_shape.len().max(1));
    let rows = logical_shape[..split].iter().product::<u64>() as usize;
    let cols = logical_shape[split..].iter().product::<u64>() as usize;
    orthogonal_matrix(reader, rows, cols, gain, cancel)
}

/// jax `delta_orthogonal` on the logical `[out, in, *k]` tensor: zero except the centre tap
/// ((k−1)//2 on every spatial axis), which holds scale·Q for an orthogonal `[out, in]` Q.
pub fn delta_orthogonal(
    reader: &mut WordReader,
    logical_shape: &[u64],
    scale: f64,
    cancel: &AtomicBool,
) -> Result<Vec<f32>, Cancelled> {
    let out_c = logical_shape[0] as usize;
    let in_c = logical_shape[1] as usize;
    let spatial = &logical_shape[2..];
    let taps: usize = spatial.iter().product::<u64>() as usize;
    let mut centre = 0usize;
    for &k in spatial {
        centre = centre * k as usize + (k as usize - 1) / 2;
    }
    let q = orthogonal_matrix(reader, out_c, in_c, scale, cancel)?;
    let mut w = vec![0f32; out_c * in_c * taps];
    for o in 0..out_c {
        for i in 0..in_c {
            w[(o * in_c + i) * taps + centre] = q[o * in_c + i];
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Q·gain row-major in f64 (before the rounding to f32), for the orthonormality checks.
    fn orthogonal_matrix(reader: &mut WordReader, rows: usize, cols: usize, gain: f64) -> Vec<f64> {
        let never = AtomicBool::new(false);
        let (q, transpose) = orthogonal_q(reader, rows, cols, &never).unwrap();
        let mut out = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for c in 0..cols {
                out.push(gain * if transpose { q.get(c, r) } else { q.get(r, c) });
            }
        }
        out
    }

    #[test]
    fn a_narrow_block_gives_the_padded_blocks_values() {
        // A matrix thinner than a block is stored n columns wide instead of padded to B; the
        // values must not move (bit for bit, both orientations, every SIMD level).
        let never = AtomicBool::new(false);
        for level in [2u8, 0] {
            crate::simd::with_limit(level, || {
                for (rows, cols) in [
                    (1, 1),
                    (1, 300),
                    (300, 1),
                    (5, 8),
                    (3, 5000),
                    (63, 700),
                    (700, 63),
                    (2, 2),
                    (40, 41),
                    (9000, 7),
                ] {
                    let n = rows.min(cols);
                    let get = |bw: usize| {
                        let mut r = WordReader::new(5, 9);
                        let q = orthogonal_q_width(&mut r, rows, cols, bw, &never).unwrap();
                        let (m, n) = (q.m, q.n);
                        (0..m)
                            .flat_map(|i| (0..n).map(move |j| (i, j)))
                            .map(|(i, j)| q.get(i, j).to_bits())
                            .collect::<Vec<_>>()
                    };
                    let padded = get(B);
                    assert_eq!(
                        get(n),
                        padded,
                        "{rows}x{cols} at level {level}: n wide vs {B} wide"
                    );
                    if n + 3 <= B {
                        assert_eq!(get(n + 3), padded, "{rows}x{cols}: n + 3 wide");
                    }
                }
            });
        }
    }

    #[test]
    fn a_set_flag_cancels_between_blocks() {
        let set = AtomicBool::new(true);
        let mut r = WordReader::new(1, 1);
        assert_eq!(
            super::orthogonal_matrix(&mut r, 200, 130, 1.0, &set),
            Err(Cancelled)
        );
        assert_eq!(
            delta_orthogonal(&mut r, &[4, 3, 3], 1.0, &set),
            Err(Cancelled)
        );
    }

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
}
