//! Element kernels of algorithm `paraminit-v1`: turn stream words into f32 values.
//!
//! Element `i` of a tensor uses word `i` of its stream (uniform, truncated normal), or, for the
//! normal kernel, the Box–Muller pair `k = i / 2` uses words `2k` and `2k + 1` (so again the
//! words with the element's own indices, extended to an even boundary). Any element range is
//! produced by seeking, so `fill` is a pure function of (seed, stream, kernel, start, len) and
//! any split of a range gives the same values.
//!
//! The transforms use only f32 `+ - * /`, `sqrt`, comparison-selects and integer/bit
//! operations, in a fixed order (see `docs/determinism.md`, "Transforms"), so every CPU and
//! every SIMD width gives the same bits. The loops run over fixed-size arrays so that LLVM
//! vectorizes them, and are dispatched per CPU through `simd::multiversion!`.

use crate::math::{erfinv_factor, ln, sincos_2pi};
use crate::rng::WordReader;
use crate::simd::multiversion;

/// 2^-24 = 0x33800000.
pub const TWO_POW_M24: f32 = f32::from_bits(0x3380_0000);
/// √2 rounded to f32, 0x3fb504f3 = 1.41421353816986083984375.
pub const SQRT_2_F32: f32 = f32::from_bits(0x3fb5_04f3);
/// Lower clamp of the truncated-normal probability u: 2^-126 = 0x00800000 (smallest normal).
pub const TRUNC_U_MIN: f32 = f32::from_bits(0x0080_0000);
/// Upper clamp of u: 1 - 2^-24 = 0x3f7fffff (largest f32 below 1).
pub const TRUNC_U_MAX: f32 = f32::from_bits(0x3f7f_ffff);
/// 2^-49 = 0x27000000: the smallest u at which the truncated-normal quantile is still an
/// inverse CDF. Giles' erfinv tail polynomial is fitted for u ≥ 2^-25 (|z| ≤ 5.4); below, it
/// extrapolates, with z(u) still decreasing down to u ≈ 2^-49.6 (z ≈ −7.50, 0.46 from the exact
/// −7.96), and turning back beyond (z(2^-80) > 0). A window whose lowest draw lies below this
/// is refused (`TruncParams::representable`); `tests::quantile_folds_below_trunc_u_fold`.
pub const TRUNC_U_FOLD: f32 = f32::from_bits(0x2700_0000);

/// Words (= elements) per internal chunk. A multiple of the 32-word transform block.
const CHUNK: usize = 2048;
/// Box–Muller pairs per vectorized block.
const PAIRS: usize = 16;

/// Plan-time parameters of the truncated normal N(mean, std²) restricted to [a, b] (absolute
/// bounds), sampled by inverse CDF.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TruncParams {
    /// Φ of the lower standardized bound of the (possibly mirrored) window, as f32.
    pub lo: f32,
    /// Φ(upper) − Φ(lower) of the (possibly mirrored) window, computed in f64, as f32.
    pub width: f32,
    /// Whether the window was mirrored (α + β > 0): sample in [−β, −α] and negate.
    pub mirror: bool,
    pub mean: f32,
    pub std: f32,
    pub a: f32,
    pub b: f32,
}

/// Φ(t) = 0.5 · erfc(−t / √2), in f64 with the pinned pure-Rust `libm`.
pub fn std_normal_cdf(t: f64) -> f64 {
    0.5 * libm::erfc(-t / core::f64::consts::SQRT_2)
}

impl TruncParams {
    /// Compute the parameters in f64: α = (a − mean)/std, β = (b − mean)/std; mirror = α + β > 0;
    /// if mirror lo = Φ(−β), hi = Φ(−α), else lo = Φ(α), hi = Φ(β); then lo as f32,
    /// (hi − lo) as f32, and mean, std, a, b rounded to f32. Infinite bounds are allowed.
    /// The caller validates std > 0 and a < b.
    pub fn new(mean: f64, std: f64, a: f64, b: f64) -> Self {
        let alpha = (a - mean) / std;
        let beta = (b - mean) / std;
        let mirror = alpha + beta > 0.0;
        let (lo, hi) = if mirror {
            (std_normal_cdf(-beta), std_normal_cdf(-alpha))
        } else {
            (std_normal_cdf(alpha), std_normal_cdf(beta))
        };
        TruncParams {
            lo: lo as f32,
            width: (hi - lo) as f32,
            mirror,
            mean: mean as f32,
            std: std as f32,
            a: a as f32,
            b: b as f32,
        }
    }
}

impl TruncParams {
    /// The sampler's `u` (after its clamps) for the smallest and the largest word: `v` runs
    /// from 2^-24 (j = 0) to (2^24 − 1)·2^-24 (j = 2^23 − 1), and `u = lo32 + width32 · v`
    /// is monotone in `v`, so every word's `u` lies between these two.
    pub fn u_range(&self) -> (f32, f32) {
        let clamp = |u: f32| u.clamp(TRUNC_U_MIN, TRUNC_U_MAX);
        let v_min = TWO_POW_M24;
        let v_max = ((1u32 << 24) - 1) as f32 * TWO_POW_M24;
        (
            clamp(self.lo + self.width * v_min),
            clamp(self.lo + self.width * v_max),
        )
    }

    /// Whether the inverse-CDF sampler represents this window: the lowest draw's `u`
    /// (`lo32 + width32 · 2^-24`, before the clamps) is at least `TRUNC_U_FOLD` (below it the
    /// quantile is no longer monotone, and the draws come out near the mean or on the bound:
    /// exactly `a` for a window 50σ into the tail), and not every draw gives the same `u` (the
    /// window is wider than one f32 step of the CDF where it lies).
    pub fn representable(&self) -> bool {
        let lowest = self.lo + self.width * TWO_POW_M24;
        let (u0, u1) = self.u_range();
        lowest >= TRUNC_U_FOLD && u0 != u1
    }
}

/// An element kernel: how one element's value is made from its stream word(s).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    /// `low + scale * u24(w)` clamped to [low, low + scale]. `scale` = high − low as f32.
    Uniform { low: f32, scale: f32 },
    /// Box–Muller N(mean, std²), two elements per pair of words.
    Normal { mean: f32, std: f32 },
    /// Inverse-CDF truncated normal, one word per element.
    TruncNormal(TruncParams),
}

/// Fill `out[j]` with the value of logical element `start + j`. Pure function of
/// (seed, stream, kernel, start, len): any split of a range gives the same values.
pub fn fill(reader: &mut WordReader, kernel: &Kernel, start: u64, out: &mut [f32]) {
    match *kernel {
        Kernel::Uniform { low, scale } => fill_uniform(reader, low, scale, start, out),
        Kernel::Normal { mean, std } => fill_normal(reader, mean, std, start, out),
        Kernel::TruncNormal(p) => fill_trunc_normal(reader, &p, start, out),
    }
}

/// N(0, 1) values of elements `[start, start + out.len())` in element order (Box–Muller pairs as
/// in `Kernel::Normal { mean: 0.0, std: 1.0 }`, bit-identical to it). For drawing a whole
/// Gaussian matrix (e.g. for orthogonal initialization) at any word offset of a stream, in
/// particular in the auxiliary region `rng::AUX_REGION + offset` (pass the offset as a word
/// position via `fill_normal_at`).
pub fn fill_normal_pairs(reader: &mut WordReader, start: u64, out: &mut [f32]) {
    fill_normal(reader, 0.0, 1.0, start, out);
}

/// Like `fill_normal_pairs`, but element `j` of `out` is element `first + j` of a normal
/// sequence whose element 0 sits at word position `base` (which must be even for the pairs to
/// line up with words `base + 2k`, `base + 2k + 1`). `base` may be ≥ 2^64.
pub fn fill_normal_at(
    reader: &mut WordReader,
    base: u128,
    mean: f32,
    std: f32,
    first: u64,
    out: &mut [f32],
) {
    fill_normal_base(reader, base, mean, std, first, out);
}

/// Like `fill` for `Kernel::Uniform`/`TruncNormal`, with element 0 at word position `base`.
pub fn fill_at(reader: &mut WordReader, base: u128, kernel: &Kernel, first: u64, out: &mut [f32]) {
    match *kernel {
        Kernel::Uniform { low, scale } => fill_map(reader, base, first, out, |w, o| {
            uniform_words(w, o, low, scale)
        }),
        Kernel::Normal { mean, std } => fill_normal_base(reader, base, mean, std, first, out),
        Kernel::TruncNormal(p) => {
            let p = TruncPrepared::new(&p);
            fill_map(reader, base, first, out, |w, o| trunc_words(w, o, &p))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Transforms (one element / one pair). `#[inline(always)]` so the chunk loops vectorize.

/// u24(w) = (w >> 8) · 2^-24 ∈ [0, 1), exact.
#[inline(always)]
pub fn u24(w: u32) -> f32 {
    ((w >> 8) as i32 as f32) * TWO_POW_M24
}

/// The uniform kernel's value for word `w`: `x = low + scale * u24(w)`, then
/// `x = if x < low { low } else { x }`, then `x = if x > high { high } else { x }` where
/// `high = low + scale` (f32).
#[inline(always)]
pub fn uniform_value(w: u32, low: f32, scale: f32, high: f32) -> f32 {
    let x = low + scale * u24(w);
    let x = if x < low { low } else { x };
    if x > high { high } else { x }
}

/// Box–Muller for one pair of words: returns (element 2k, element 2k + 1).
///
/// `u1 = ((w0 >> 8) + 1) · 2^-24 ∈ (0, 1]`, `u2 = u24(w1)`, `r = sqrt(-2 · ln(u1))`,
/// `(s, c) = sincos_2pi(u2)`; element 2k = `mean + std · (r · c)`, element 2k+1 =
/// `mean + std · (r · s)`.
#[inline(always)]
pub fn normal_pair(w0: u32, w1: u32, mean: f32, std: f32) -> (f32, f32) {
    let u1 = (((w0 >> 8) + 1) as i32 as f32) * TWO_POW_M24;
    let u2 = u24(w1);
    let r = (-2.0 * ln(u1)).sqrt();
    let (s, c) = sincos_2pi(u2);
    (mean + std * (r * c), mean + std * (r * s))
}

/// Truncated-normal parameters with the mirror flag turned into a sign mask.
#[derive(Clone, Copy, Debug)]
struct TruncPrepared {
    lo: f32,
    width: f32,
    sign: u32,
    mean: f32,
    std: f32,
    a: f32,
    b: f32,
}

impl TruncPrepared {
    fn new(p: &TruncParams) -> Self {
        TruncPrepared {
            lo: p.lo,
            width: p.width,
            sign: if p.mirror { 0x8000_0000 } else { 0 },
            mean: p.mean,
            std: p.std,
            a: p.a,
            b: p.b,
        }
    }
}

/// The truncated-normal value for word `w`; see `docs/determinism.md`.
#[inline(always)]
fn trunc_value(w: u32, p: &TruncPrepared) -> f32 {
    let v = ((((w >> 9) << 1) | 1) as i32 as f32) * TWO_POW_M24;
    let u = p.lo + p.width * v;
    let u = if u < TRUNC_U_MIN { TRUNC_U_MIN } else { u };
    let u = if u > TRUNC_U_MAX { TRUNC_U_MAX } else { u };
    let x = 2.0 * u - 1.0;
    let t = (4.0 * u) * (1.0 - u);
    let wl = -ln(t);
    let pf = erfinv_factor(wl);
    let z = (SQRT_2_F32 * pf) * x;
    let z = f32::from_bits(z.to_bits() ^ p.sign);
    let y = p.mean + p.std * z;
    let y = if y < p.a { p.a } else { y };
    if y > p.b { p.b } else { y }
}

/// The truncated-normal value of one word (scalar helper for tests and documentation).
pub fn trunc_normal_value(w: u32, p: &TruncParams) -> f32 {
    trunc_value(w, &TruncPrepared::new(p))
}

// ---------------------------------------------------------------------------------------------
// Chunk loops.

fn fill_uniform(reader: &mut WordReader, low: f32, scale: f32, start: u64, out: &mut [f32]) {
    fill_at(reader, 0, &Kernel::Uniform { low, scale }, start, out);
}

fn fill_trunc_normal(reader: &mut WordReader, p: &TruncParams, start: u64, out: &mut [f32]) {
    fill_at(reader, 0, &Kernel::TruncNormal(*p), start, out);
}

multiversion! {
    fn uniform_words(words: &[u32], out: &mut [f32], low: f32, scale: f32) {
        let high = low + scale;
        for (o, &w) in out.iter_mut().zip(words) {
            *o = uniform_value(w, low, scale, high);
        }
    }
}

multiversion! {
    fn trunc_words(words: &[u32], out: &mut [f32], p: &TruncPrepared) {
        let p = *p;
        for (o, &w) in out.iter_mut().zip(words) {
            *o = trunc_value(w, &p);
        }
    }
}

/// One word per element: element `first + j` from word `base + first + j`.
#[inline(always)]
fn fill_map(
    reader: &mut WordReader,
    base: u128,
    first: u64,
    out: &mut [f32],
    f: impl Fn(&[u32], &mut [f32]),
) {
    let mut words = [0u32; CHUNK];
    let mut pos = base + first as u128;
    for o in out.chunks_mut(CHUNK) {
        let n = o.len();
        reader.fill(pos, &mut words[..n]);
        f(&words[..n], o);
        pos += n as u128;
    }
}

fn fill_normal(reader: &mut WordReader, mean: f32, std: f32, start: u64, out: &mut [f32]) {
    fill_normal_base(reader, 0, mean, std, start, out);
}

/// Element `first + j` of a Box–Muller sequence whose word 0 is at `base`.
fn fill_normal_base(
    reader: &mut WordReader,
    base: u128,
    mean: f32,
    std: f32,
    first: u64,
    out: &mut [f32],
) {
    if out.is_empty() {
        return;
    }
    let mut words = [0u32; CHUNK];
    let mut vals = [0f32; CHUNK];
    // Element range [s, e) extended to whole pairs [s0, e0).
    let s = first as u128;
    let e = s + out.len() as u128;
    let s0 = s & !1;
    let e0 = (e + 1) & !1;
    let mut p = s0;
    while p < e0 {
        let n = core::cmp::min(CHUNK as u128, e0 - p) as usize; // even
        reader.fill(base + p, &mut words[..n]);
        if n == CHUNK && p >= s && p + n as u128 <= e {
            // A whole chunk inside the range: transform straight into the output.
            let o = (p - s) as usize;
            let dst: &mut [f32; CHUNK] = (&mut out[o..o + CHUNK]).try_into().unwrap();
            normal_words(&words, dst, n, mean, std);
        } else {
            normal_words(&words, &mut vals, n, mean, std);
            // Copy the overlap of [p, p + n) with [s, e).
            let lo = core::cmp::max(p, s);
            let hi = core::cmp::min(p + n as u128, e);
            out[(lo - s) as usize..(hi - s) as usize]
                .copy_from_slice(&vals[(lo - p) as usize..(hi - p) as usize]);
        }
        p += n as u128;
    }
}

multiversion! {
    /// Transform `words[..n]` (n even) into `vals[..n]`, in blocks of `2 * PAIRS` words (the
    /// last block may read stale words past `n`; those values are never used).
    fn normal_words(words: &[u32; CHUNK], vals: &mut [f32; CHUNK], n: usize, mean: f32, std: f32) {
        let blocks = n.div_ceil(2 * PAIRS);
        for (w, v) in words
            .chunks_exact(2 * PAIRS)
            .zip(vals.chunks_exact_mut(2 * PAIRS))
            .take(blocks)
        {
            let w: &[u32; 2 * PAIRS] = w.try_into().unwrap();
            let v: &mut [f32; 2 * PAIRS] = v.try_into().unwrap();
            normal_block(w, v, mean, std);
        }
    }
}

#[inline(always)]
fn normal_block(w: &[u32; 2 * PAIRS], v: &mut [f32; 2 * PAIRS], mean: f32, std: f32) {
    let mut even = [0f32; PAIRS];
    let mut odd = [0f32; PAIRS];
    for k in 0..PAIRS {
        let (a, b) = normal_pair(w[2 * k], w[2 * k + 1], mean, std);
        even[k] = a;
        odd[k] = b;
    }
    for k in 0..PAIRS {
        v[2 * k] = even[k];
        v[2 * k + 1] = odd[k];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quantile the truncated sampler computes for a given `u`: a window of width 0 at
    /// `lo = u` gives that `u` for every word, and infinite bounds clamp nothing.
    fn quantile(u: f32) -> f32 {
        let p = TruncParams {
            lo: u,
            width: 0.0,
            mirror: false,
            mean: 0.0,
            std: 1.0,
            a: f32::NEG_INFINITY,
            b: f32::INFINITY,
        };
        trunc_normal_value(0, &p)
    }

    #[test]
    fn quantile_folds_below_trunc_u_fold() {
        // Non-decreasing from TRUNC_U_FOLD to 1/2, on 64 points per binade.
        let mut u = TRUNC_U_FOLD;
        let mut prev = quantile(u);
        while u < 0.5 {
            u *= 1.0 + 1.0 / 64.0;
            let z = quantile(u);
            assert!(z >= prev, "quantile decreases at u = {u:e}: {prev} → {z}");
            prev = z;
        }
        // Below it the polynomial turns back: the far tail comes out nearer the mean, and far
        // enough on the other side of it.
        assert!(quantile(TRUNC_U_FOLD / 8.0) > quantile(TRUNC_U_FOLD));
        assert!(quantile(f32::from_bits(0x1780_0000)) > 0.0); // 2^-80
        assert!((quantile(TRUNC_U_FOLD) + 7.49).abs() < 0.02);
    }

    #[test]
    fn representable_windows() {
        let ok = |a: f64, b: f64| TruncParams::new(0.0, 1.0, a, b).representable();
        assert!(ok(-2.0, 2.0));
        assert!(ok(-200.0, 200.0));
        assert!(ok(0.0, 1e300));
        assert!(ok(5.0, 1e3));
        assert!(ok(-1e3, -5.0));
        assert!(!ok(6.0, 1e3));
        assert!(!ok(50.0, 60.0));
        assert!(!ok(-60.0, -50.0));
        assert!(!ok(0.0, 1e-10));
    }

    #[test]
    fn normal_matches_scalar_pairs_for_odd_ranges() {
        let mut r = WordReader::new(5, 6);
        let mut words = vec![0u32; 200];
        r.fill(100, &mut words);
        let mut want = vec![0f32; 200];
        for k in 0..100 {
            let (a, b) = normal_pair(words[2 * k], words[2 * k + 1], 1.5, 2.0);
            want[2 * k] = a;
            want[2 * k + 1] = b;
        }
        for (s, e) in [
            (100u64, 300u64),
            (101, 300),
            (100, 299),
            (101, 299),
            (137, 138),
        ] {
            let mut out = vec![0f32; (e - s) as usize];
            fill(
                &mut r,
                &Kernel::Normal {
                    mean: 1.5,
                    std: 2.0,
                },
                s,
                &mut out,
            );
            let w = &want[(s - 100) as usize..(e - 100) as usize];
            assert_eq!(
                out.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                w.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "range {s}..{e}"
            );
        }
    }

    #[test]
    fn trunc_params_mirror_and_window() {
        let p = TruncParams::new(0.0, 1.0, -2.0, 2.0);
        assert!(!p.mirror);
        assert!((p.lo as f64 - 0.022750131948179195).abs() < 1e-9);
        assert!((p.width as f64 - 0.9544997361036416).abs() < 1e-7);
        let q = TruncParams::new(0.0, 1.0, 1.0, 4.0);
        assert!(q.mirror);
        // Mirrored window [-4, -1].
        assert_eq!(q.lo, std_normal_cdf(-4.0) as f32);
        assert_eq!(
            q.width,
            (std_normal_cdf(-1.0) - std_normal_cdf(-4.0)) as f32
        );
        let r = TruncParams::new(0.0, 1.0, f64::NEG_INFINITY, f64::INFINITY);
        assert_eq!((r.lo, r.width, r.mirror), (0.0, 1.0, false));
    }
}
