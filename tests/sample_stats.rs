//! Determinism, distribution and golden-vector tests for the element kernels.

mod common;

use common::stats::*;
use paraminit::rng::{AUX_REGION, WordReader, fill_words_at, stream_id};
use paraminit::sample::{
    Kernel, TruncParams, fill, fill_normal_at, fill_normal_pairs, normal_pair, trunc_normal_value,
    uniform_value,
};

const N: usize = 1 << 20;

fn generate(seed: u64, name: &str, k: &Kernel, start: u64, n: usize) -> Vec<f32> {
    let mut r = WordReader::new(seed, stream_id(name));
    let mut out = vec![0f32; n];
    fill(&mut r, k, start, &mut out);
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn kernels() -> Vec<Kernel> {
    vec![
        Kernel::Uniform {
            low: -0.25,
            scale: 0.5,
        },
        Kernel::Normal {
            mean: 0.5,
            std: 2.0,
        },
        Kernel::TruncNormal(TruncParams::new(0.0, 1.0, -2.0, 2.0)),
        Kernel::TruncNormal(TruncParams::new(1.0, 0.5, 1.5, 3.0)),
    ]
}

/// A tiny deterministic generator for split points.
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

// ------------------------------------------------------------------------------------------
// Determinism

#[test]
fn any_split_gives_the_same_values() {
    let n = 10_000usize;
    let mut rng = SplitMix(1);
    for k in kernels() {
        let whole = generate(9, "split", &k, 0, n);
        for _ in 0..20 {
            let mut r = WordReader::new(9, stream_id("split"));
            let mut parts = vec![0f32; n];
            let mut p = 0usize;
            while p < n {
                // Mix tiny (odd) pieces and big ones.
                let len = match rng.next() % 4 {
                    0 => 1 + (rng.next() % 3) as usize,
                    1 => 1 + (rng.next() % 40) as usize,
                    _ => 1 + (rng.next() % 3000) as usize,
                }
                .min(n - p);
                fill(&mut r, &k, p as u64, &mut parts[p..p + len]);
                p += len;
            }
            assert_eq!(bits(&whole), bits(&parts), "{k:?}");
        }
        // Out-of-order pieces with a fresh reader each.
        let mut parts = vec![0f32; n];
        for (s, e) in [(5001usize, 10_000usize), (0, 1), (1, 4999), (4999, 5001)] {
            let mut r = WordReader::new(9, stream_id("split"));
            fill(&mut r, &k, s as u64, &mut parts[s..e]);
        }
        assert_eq!(bits(&whole), bits(&parts), "{k:?}");
    }
}

#[test]
fn seeking_far_equals_a_slice_from_a_nearby_start() {
    for k in kernels() {
        for big in [1_000_000_000_000u64, 1_000_000_000_001, u64::MAX - 5000] {
            let near = generate(3, "far", &k, big - 37, 4000);
            let here = generate(3, "far", &k, big, 1000);
            assert_eq!(bits(&near[37..1037]), bits(&here), "{k:?} at {big}");
            let odd = generate(3, "far", &k, big + 1, 3);
            assert_eq!(bits(&near[38..41]), bits(&odd), "{k:?} at {big}+1");
        }
    }
}

#[test]
fn values_do_not_depend_on_chunk_size() {
    let n = 20_000usize;
    for k in kernels() {
        let whole = generate(11, "chunks", &k, 3, n);
        for step in [1usize, 2, 7, 31, 32, 33, 2047, 2048, 2049, 4096, 5000] {
            let mut r = WordReader::new(11, stream_id("chunks"));
            let mut out = vec![0f32; n];
            for (i, c) in out.chunks_mut(step).enumerate() {
                fill(&mut r, &k, 3 + (i * step) as u64, c);
            }
            assert_eq!(bits(&whole), bits(&out), "{k:?} step {step}");
        }
    }
}

#[test]
fn vector_paths_match_the_scalar_definitions_and_each_other() {
    let n = 5000usize;
    let mut words = vec![0u32; n];
    WordReader::new(13, stream_id("scalar")).fill(0, &mut words);
    for k in kernels() {
        let want: Vec<f32> = match k {
            Kernel::Uniform { low, scale } => words
                .iter()
                .map(|&w| uniform_value(w, low, scale, low + scale))
                .collect(),
            Kernel::Normal { mean, std } => words
                .chunks_exact(2)
                .flat_map(|p| {
                    let (a, b) = normal_pair(p[0], p[1], mean, std);
                    [a, b]
                })
                .collect(),
            Kernel::TruncNormal(p) => words.iter().map(|&w| trunc_normal_value(w, &p)).collect(),
        };
        for level in [0u8, 1, 2] {
            let got = paraminit::simd::with_limit(level, || generate(13, "scalar", &k, 0, n));
            assert_eq!(bits(&want), bits(&got), "{k:?} simd level {level}");
        }
    }
}

#[test]
fn normal_pairs_and_aux_region_helpers() {
    let a = generate(
        4,
        "m",
        &Kernel::Normal {
            mean: 0.0,
            std: 1.0,
        },
        10,
        101,
    );
    let mut r = WordReader::new(4, stream_id("m"));
    let mut b = vec![0f32; 101];
    fill_normal_pairs(&mut r, 10, &mut b);
    assert_eq!(bits(&a), bits(&b));
    // In the auxiliary region: element j at word AUX_REGION + j.
    let mut c = vec![0f32; 64];
    fill_normal_at(&mut r, AUX_REGION, 0.0, 1.0, 3, &mut c);
    let mut w = vec![0u32; 68];
    fill_words_at(4, stream_id("m"), AUX_REGION, &mut w);
    for (j, cj) in c.iter().enumerate() {
        let e = 3 + j;
        let (x, y) = normal_pair(w[e & !1], w[(e & !1) + 1], 0.0, 1.0);
        assert_eq!(cj.to_bits(), if e % 2 == 0 { x } else { y }.to_bits());
    }
}

// ------------------------------------------------------------------------------------------
// Statistics

fn samples(seed: u64, name: &str, k: &Kernel) -> Vec<f64> {
    generate(seed, name, k, 0, N)
        .iter()
        .map(|&x| x as f64)
        .collect()
}

const ALPHA: f64 = 1e-4;

/// Run the KS test; returns (D, critical).
fn ks(xs: &mut [f64], cdf: impl Fn(f64) -> f64) -> (f64, f64) {
    (ks_statistic(xs, cdf), ks_critical(xs.len(), ALPHA))
}

#[test]
fn uniform_statistics() {
    let (low, high) = (-0.3f64, 0.7f64);
    let k = Kernel::Uniform {
        low: low as f32,
        scale: (high - low) as f32,
    };
    let mut xs = samples(1, "u", &k);
    assert!(xs.iter().all(|&x| (low..=high).contains(&x)));
    let m = mean(&xs);
    let s = std_dev(&xs);
    let want_s = (high - low) / 12f64.sqrt();
    assert!(
        (m - 0.2).abs() < 5.0 * want_s / (N as f64).sqrt(),
        "mean {m}"
    );
    assert!((s / want_s - 1.0).abs() < 0.005, "std {s}");
    let (d, c) = ks(&mut xs, |x| uniform_cdf(x, low, high));
    assert!(d < c, "uniform KS D={d} crit={c}");
    // A 5% wider interval is rejected.
    let (d, c) = ks(&mut xs, |x| uniform_cdf(x, low, low + 1.05 * (high - low)));
    assert!(
        d > c,
        "KS failed to reject a 5% wider uniform: D={d} crit={c}"
    );
}

#[test]
fn normal_statistics() {
    for (seed, mean_, std_) in [(1u64, 0.0f64, 1.0f64), (2, 3.0, 0.02), (3, -1.5, 7.0)] {
        let k = Kernel::Normal {
            mean: mean_ as f32,
            std: std_ as f32,
        };
        let mut xs = samples(seed, "n", &k);
        let m = mean(&xs);
        let s = std_dev(&xs);
        assert!(
            (m - mean_).abs() < 5.0 * std_ / (N as f64).sqrt(),
            "mean {m}"
        );
        assert!((s / std_ - 1.0).abs() < 0.005, "std {s}");
        // Box–Muller with 24-bit u1 cannot exceed sqrt(-2 ln 2^-24) ≈ 5.77 σ.
        let zmax = xs
            .iter()
            .map(|x| ((x - mean_) / std_).abs())
            .fold(0.0, f64::max);
        assert!(zmax < 5.8 && zmax > 4.0, "max |z| {zmax}");
        let (d, c) = ks(&mut xs, |x| normal_cdf(x, mean_, std_));
        assert!(d < c, "normal KS D={d} crit={c}");
        let (d, c) = ks(&mut xs, |x| normal_cdf(x, mean_, 1.05 * std_));
        assert!(d > c, "KS failed to reject 5% larger std: D={d} crit={c}");
        let (d, c) = ks(&mut xs, |x| normal_cdf(x, mean_ + 0.02 * std_, std_));
        assert!(
            d > c,
            "KS failed to reject a 0.02σ mean shift: D={d} crit={c}"
        );
        // Even and odd elements are each N(mean, std²) (the cos and sin halves).
        let raw = generate(seed, "n", &k, 0, N);
        for half in 0..2 {
            let mut h: Vec<f64> = raw
                .iter()
                .skip(half)
                .step_by(2)
                .map(|&x| x as f64)
                .collect();
            let (d, c) = ks(&mut h, |x| normal_cdf(x, mean_, std_));
            assert!(d < c, "normal half {half} KS D={d} crit={c}");
        }
    }
}

fn check_trunc(seed: u64, mean_: f64, std_: f64, a: f64, b: f64, expect_mirror: bool) {
    let p = TruncParams::new(mean_, std_, a, b);
    assert_eq!(p.mirror, expect_mirror);
    let k = Kernel::TruncNormal(p);
    let mut xs = samples(seed, "t", &k);
    let (a32, b32) = (a as f32 as f64, b as f32 as f64);
    assert!(
        xs.iter().all(|&x| x >= a32 && x <= b32),
        "sample outside [{a}, {b}]"
    );
    let (want_m, want_s) = trunc_normal_moments(mean_, std_, a, b);
    let m = mean(&xs);
    let s = std_dev(&xs);
    assert!(
        (m - want_m).abs() < 5.0 * want_s / (N as f64).sqrt(),
        "[{a},{b}] mean {m} want {want_m}"
    );
    assert!(
        (s / want_s - 1.0).abs() < 0.005,
        "[{a},{b}] std {s} want {want_s}"
    );
    let (d, c) = ks(&mut xs, |x| trunc_normal_cdf(x, mean_, std_, a, b));
    assert!(d < c, "[{a},{b}] KS D={d} crit={c}");
    // Wrong std (5% larger, same window) is rejected.
    let (d, c) = ks(&mut xs, |x| trunc_normal_cdf(x, mean_, 1.05 * std_, a, b));
    assert!(
        d > c,
        "[{a},{b}] KS failed to reject 5% larger std: D={d} crit={c}"
    );
}

#[test]
fn trunc_normal_symmetric_window() {
    check_trunc(1, 0.0, 1.0, -2.0, 2.0, false);
    // A missing truncation is rejected: compare with the untruncated normal.
    let k = Kernel::TruncNormal(TruncParams::new(0.0, 1.0, -2.0, 2.0));
    let mut xs = samples(1, "t", &k);
    let (d, c) = ks(&mut xs, |x| normal_cdf(x, 0.0, 1.0));
    assert!(
        d > c,
        "KS failed to reject the untruncated normal: D={d} crit={c}"
    );
}

#[test]
fn trunc_normal_one_sided_window() {
    // [0, 3]σ: α + β = 3 > 0, mirrored.
    check_trunc(2, 0.0, 1.0, 0.0, 3.0, true);
    // [-3, 0]σ: not mirrored.
    check_trunc(3, 0.0, 1.0, -3.0, 0.0, false);
}

#[test]
fn trunc_normal_effectively_untruncated() {
    check_trunc(4, 0.0, 1.0, -100.0, 100.0, false);
    let k = Kernel::TruncNormal(TruncParams::new(0.0, 1.0, -100.0, 100.0));
    let mut xs = samples(4, "t", &k);
    let (d, c) = ks(&mut xs, |x| normal_cdf(x, 0.0, 1.0));
    assert!(d < c, "untruncated vs normal: D={d} crit={c}");
}

#[test]
fn trunc_normal_tail_window_mirrored() {
    check_trunc(5, 0.0, 1.0, 1.0, 4.0, true);
    check_trunc(6, 0.0, 1.0, -4.0, -1.0, false);
}

#[test]
fn trunc_normal_shifted_and_scaled() {
    // mean ≠ 0, PyTorch-style absolute bounds.
    check_trunc(7, 2.0, 0.5, 1.0, 3.0, false);
    check_trunc(8, -1.0, 0.02, -1.01, -0.95, true);
    check_trunc(9, 0.0, 0.02, -0.04, 0.04, false);
}

// ------------------------------------------------------------------------------------------
// Accuracy of single values against f64 references

/// Φ^-1(u) in f64 by bisection on Φ (slow but simple and accurate to ~1e-15).
fn inv_phi(u: f64) -> f64 {
    let (mut lo, mut hi) = (-40.0f64, 40.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if std_normal_cdf(mid) < u {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[test]
fn trunc_normal_values_match_f64_inverse_cdf() {
    let mut words = vec![0u32; 20_000];
    WordReader::new(21, stream_id("acc")).fill(0, &mut words);
    for (mean_, std_, a, b) in [
        (0.0f64, 1.0f64, -2.0f64, 2.0f64),
        (0.0, 1.0, 1.0, 4.0),
        (0.0, 1.0, -100.0, 100.0),
        (0.0, 1.0, 0.0, 3.0),
    ] {
        let p = TruncParams::new(mean_, std_, a, b);
        let mut worst = 0.0f64;
        for &w in &words {
            // The same u as the kernel, but in f64 from the exact v.
            let v = ((w >> 9) as f64 * 2.0 + 1.0) / 16_777_216.0;
            let u = (p.lo as f64 + p.width as f64 * v).clamp(2f64.powi(-126), 1.0 - 2f64.powi(-24));
            let z = inv_phi(u);
            let want = (mean_ + std_ * if p.mirror { -z } else { z }).clamp(a, b);
            let got = trunc_normal_value(w, &p) as f64;
            // Tolerance: the f32 rounding of u (≤ 2^-24 relative) through dz = du / φ(z), plus
            // a few f32 ulps of the result.
            let phi = (-0.5 * z * z).exp() / (2.0 * core::f64::consts::PI).sqrt();
            let tol = 2.0 * u * 6e-8 / phi + 4e-7 * want.abs().max(1.0);
            let err = (got - want).abs();
            assert!(
                err <= tol,
                "w={w:#x} [{a},{b}] got {got} want {want} tol {tol}"
            );
            worst = worst.max(err / tol);
        }
        println!("[{a},{b}] worst error / tolerance = {worst:.3}");
    }
}

#[test]
fn normal_values_match_f64_box_muller() {
    let mut words = vec![0u32; 200_000];
    WordReader::new(22, stream_id("acc")).fill(0, &mut words);
    let mut worst = 0.0f64;
    for p in words.chunks_exact(2) {
        let (a, b) = normal_pair(p[0], p[1], 0.0, 1.0);
        let u1 = ((p[0] >> 8) as f64 + 1.0) / 16_777_216.0;
        let u2 = (p[1] >> 8) as f64 / 16_777_216.0;
        let r = (-2.0 * libm::log(u1)).sqrt();
        let t = 2.0 * core::f64::consts::PI * u2;
        let (wa, wb) = (r * libm::cos(t), r * libm::sin(t));
        // Absolute error relative to the pair radius: ln, sqrt, sincos each ≲ 2 ulp.
        let scale = r.max(1e-30);
        worst = worst
            .max((a as f64 - wa).abs() / scale)
            .max((b as f64 - wb).abs() / scale);
    }
    println!("normal: worst |error| / r = {worst:e}");
    assert!(worst < 5e-7, "worst {worst}");
}

// ------------------------------------------------------------------------------------------
// Golden vectors: any change of these bits is a breaking change of `paraminit-v1`.

#[test]
fn golden_words_and_values() {
    let sid = stream_id("tensor/w");
    let mut r = WordReader::new(42, sid);
    let mut w0 = [0u32; 8];
    let mut w1000 = [0u32; 8];
    r.fill(0, &mut w0);
    r.fill(1000, &mut w1000);
    let golden_kernels = [
        Kernel::Uniform {
            low: -1.0,
            scale: 2.0,
        },
        Kernel::Normal {
            mean: 0.0,
            std: 1.0,
        },
        Kernel::TruncNormal(TruncParams::new(0.0, 1.0, -2.0, 2.0)),
        Kernel::TruncNormal(TruncParams::new(0.0, 1.0, 1.0, 4.0)),
    ];
    let vals: Vec<[u32; 8]> = golden_kernels
        .iter()
        .map(|k| {
            let mut out = [0f32; 8];
            fill(&mut r, k, 0, &mut out);
            println!("{k:?}: {out:?}");
            out.map(f32::to_bits)
        })
        .collect();
    println!("stream_id = {sid:#018x}");
    println!("words@0    = {:?}", w0.map(|x| format!("{x:#010x}")));
    println!("words@1000 = {:?}", w1000.map(|x| format!("{x:#010x}")));
    for v in &vals {
        println!("values     = {:?}", v.map(|x| format!("{x:#010x}")));
    }
    assert_eq!(sid, GOLDEN_STREAM);
    assert_eq!(w0, GOLDEN_W0);
    assert_eq!(w1000, GOLDEN_W1000);
    for (v, g) in vals.iter().zip(GOLDEN_VALUES) {
        assert_eq!(*v, g);
    }
}

/// stream_id("tensor/w").
const GOLDEN_STREAM: u64 = 0x20f9_12f9_7121_f1ee;
/// Words 0..8 of seed 42, stream "tensor/w".
const GOLDEN_W0: [u32; 8] = [
    0x754c2fc7, 0xe1324df1, 0xd5ef753d, 0x0015942f, 0x4fa1bd71, 0x025b1f84, 0xc0170892, 0x51a0ac7b,
];
/// Words 1000..1008.
const GOLDEN_W1000: [u32; 8] = [
    0x2887da63, 0x7a185742, 0x77a1fb35, 0x4543daf2, 0xdcd1787c, 0xc4a46b5d, 0x4442ccd4, 0x81e2a482,
];
/// Elements 0..8 (f32 bits) of: uniform [-1, 1); normal(0, 1); trunc normal(0, 1, [-2, 2]);
/// trunc normal(0, 1, [1, 4]) (mirrored).
const GOLDEN_VALUES: [[u32; 8]; 4] = [
    [
        0xbdab3d10, 0x3f42649a, 0x3f2bdeea, 0xbf7fd4d8, 0xbec1790c, 0xbf7b49c2, 0x3f002e10,
        0xbeb97d50,
    ],
    [
        0x3f68b405, 0xbf5b6c13, 0x3f19633b, 0x3aa27874, 0x3fc349c8, 0x3db4e0ac, 0xbea2b320,
        0x3f3025b2,
    ],
    [
        0xbdcd3182, 0x3f8bab18, 0x3f6abc2a, 0xbfff4255, 0xbeeff370, 0xbfedea21, 0x3f23e077,
        0xbee557c5,
    ],
    [
        0x3fba5a7f, 0x3f8a8778, 0x3f8e9efa, 0x4070d6b3, 0x3fd352a6, 0x403e0c22, 0x3f97012f,
        0x3fd1c9ac,
    ],
];
