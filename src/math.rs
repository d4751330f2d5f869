//! Pure, branch-free f32 math for the value-producing hot paths (algorithm `paraminit-v1`).
//!
//! Every function here uses only IEEE-754 binary32 `+ - * /`, `sqrt`, comparisons turned into
//! selects, and integer/bit operations on the representation. There is no fused multiply-add
//! (Rust never contracts `a * b + c`), no table lookup and no call into a platform math library,
//! so the result is bit-identical on every CPU, OS, C library and SIMD width. The functions are
//! `#[inline(always)]` so that the fixed-size loops in `sample` auto-vectorize them.
//!
//! The exact operation order and every constant are part of the algorithm and documented in
//! `docs/determinism.md` ("Math functions"). Do not reorder or "simplify" any expression here:
//! a changed bit is a breaking change of `paraminit-v1`.

/// ln(2) high part, 0x3f317180 = 6.9313812256e-01 (low 12 mantissa bits zero, so `k * LN2_HI`
/// is exact for |k| < 2^12).
pub const LN2_HI: f32 = f32::from_bits(0x3f31_7180);
/// ln(2) low part, 0x3717f7d1 = 9.0580006145e-06 (ln 2 - LN2_HI rounded to f32).
pub const LN2_LO: f32 = f32::from_bits(0x3717_f7d1);
/// Minimax coefficients of (ln(1+s) - ln(1-s))/s ≈ 2 + LG1 s^2 + LG2 s^4 + LG3 s^6 + LG4 s^8 on
/// |s| ≤ 0.1716 (FreeBSD/musl `e_logf.c`); they are 2/3, 2/5, 2/7, 2/9 adjusted by minimax.
/// LG1 = 0x3f2aaaaa = 0.66666662693.
pub const LG1: f32 = f32::from_bits(0x3f2a_aaaa);
/// LG2 = 0x3eccce13 = 0.40000972152.
pub const LG2: f32 = f32::from_bits(0x3ecc_ce13);
/// LG3 = 0x3e91e9ee = 0.28498786688.
pub const LG3: f32 = f32::from_bits(0x3e91_e9ee);
/// LG4 = 0x3e789e26 = 0.24279078841.
pub const LG4: f32 = f32::from_bits(0x3e78_9e26);

/// Natural logarithm for positive, normal, finite `x` (2^-126 ≤ x < 2^128).
///
/// Branch-free version of the FreeBSD/musl `logf` algorithm; for every positive normal input it
/// returns exactly the bits of `libm::logf` (tested), with error < 1 ulp. Inputs outside the
/// domain (zero, subnormal, negative, inf, NaN) give unspecified (but still deterministic)
/// results; the samplers never pass them.
///
/// Steps (all f32, in this order):
/// 1. `ix = bits(x) + (0x3f800000 - 0x3f3504f3)` (wrapping u32), `k = (ix >> 23) as i32 - 127`,
///    `m = from_bits((ix & 0x007fffff) + 0x3f3504f3)` so x = 2^k · m with m ∈ [√½, √2).
/// 2. `f = m - 1` (exact), `s = f / (2 + f)`, `z = s*s`, `w = z*z`,
///    `t1 = w*(LG2 + w*LG4)`, `t2 = z*(LG1 + w*LG3)`, `r = t2 + t1`, `hfsq = (0.5*f)*f`,
///    `dk = k as f32`.
/// 3. `ln = ((((s*(hfsq + r)) + dk*LN2_LO) - hfsq) + f) + dk*LN2_HI`.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let ix = x.to_bits().wrapping_add(0x3f80_0000 - 0x3f35_04f3);
    let k = (ix >> 23) as i32 - 0x7f;
    let m = f32::from_bits((ix & 0x007f_ffff) + 0x3f35_04f3);
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * LG4);
    let t2 = z * (LG1 + w * LG3);
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    let dk = k as f32;
    s * (hfsq + r) + dk * LN2_LO - hfsq + f + dk * LN2_HI
}

/// Taylor coefficients of sin(π/2 · f) = f·(S1 + f²(S3 + f²(S5 + f²(S7 + f²·S9)))),
/// each the f64 value (−1)^n (π/2)^(2n+1)/(2n+1)! rounded to nearest f32.
/// S1 = 0x3fc90fdb = 1.5707963705062866.
pub const S1: f32 = f32::from_bits(0x3fc9_0fdb);
/// S3 = 0xbf255de7 = -0.6459640860557556.
pub const S3: f32 = f32::from_bits(0xbf25_5de7);
/// S5 = 0x3da335e3 = 0.07969262450933456.
pub const S5: f32 = f32::from_bits(0x3da3_35e3);
/// S7 = 0xbb996966 = -0.004681753925979137.
pub const S7: f32 = f32::from_bits(0xbb99_6966);
/// S9 = 0x39283c1a = 0.00016044118092395365.
pub const S9: f32 = f32::from_bits(0x3928_3c1a);
/// Taylor coefficients of cos(π/2 · f) = 1 + f²(C2 + f²(C4 + f²(C6 + f²(C8 + f²·C10)))),
/// each the f64 value (−1)^n (π/2)^(2n)/(2n)! rounded to nearest f32.
/// C2 = 0xbf9de9e6 = -1.2337005138397217.
pub const C2: f32 = f32::from_bits(0xbf9d_e9e6);
/// C4 = 0x3e81e0f8 = 0.25366950035095215.
pub const C4: f32 = f32::from_bits(0x3e81_e0f8);
/// C6 = 0xbcaae9e4 = -0.020863480865955353.
pub const C6: f32 = f32::from_bits(0xbcaa_e9e4);
/// C8 = 0x3a70fa83 = 0.0009192602592520416.
pub const C8: f32 = f32::from_bits(0x3a70_fa83);
/// C10 = 0xb7d368f9 = -2.520204179745633e-05.
pub const C10: f32 = f32::from_bits(0xb7d3_68f9);
/// 1.5 · 2^23 = 12582912 = 0x4b400000: adding it to y ∈ [0, 2^22) rounds y to an integer
/// (nearest, ties to even) and leaves that integer in the low mantissa bits.
pub const ROUND_MAGIC: f32 = f32::from_bits(0x4b40_0000);

/// (sin 2πt, cos 2πt) for t ∈ [0, 1) (any t with 0 ≤ 4t < 2^22 works and is exact in its
/// reduction, but only [0, 1) is part of the contract).
///
/// Steps (all f32):
/// 1. `y = 4*t` (exact), `yq = y + ROUND_MAGIC`, `q = yq - ROUND_MAGIC` (= y rounded to the
///    nearest integer, ties to even; exact), `quadrant = bits(yq) & 3`, `f = y - q` (exact,
///    |f| ≤ 1/2). Now 2πt = (π/2)(quadrant + f) modulo 2π.
/// 2. `f2 = f*f`; `sp = f * (S1 + f2*(S3 + f2*(S5 + f2*(S7 + f2*S9))))` ≈ sin(πf/2);
///    `cp = 1 + f2*(C2 + f2*(C4 + f2*(C6 + f2*(C8 + f2*C10))))` ≈ cos(πf/2).
/// 3. Quadrant rotation by selects: if quadrant is odd swap (sp, cp); flip the sign bit of the
///    sine when quadrant ∈ {2, 3}, of the cosine when quadrant ∈ {1, 2} (xor of bit 31).
#[inline(always)]
pub fn sincos_2pi(t: f32) -> (f32, f32) {
    let y = 4.0 * t;
    let yq = y + ROUND_MAGIC;
    let q = yq - ROUND_MAGIC;
    let quadrant = yq.to_bits() & 3;
    let f = y - q;
    let f2 = f * f;
    let sp = f * (S1 + f2 * (S3 + f2 * (S5 + f2 * (S7 + f2 * S9))));
    let cp = 1.0 + f2 * (C2 + f2 * (C4 + f2 * (C6 + f2 * (C8 + f2 * C10))));
    let odd = (quadrant & 1) != 0;
    let s0 = if odd { cp } else { sp };
    let c0 = if odd { sp } else { cp };
    let s_sign = (quadrant & 2) << 30;
    let c_sign = (quadrant.wrapping_add(1) & 2) << 30;
    (
        f32::from_bits(s0.to_bits() ^ s_sign),
        f32::from_bits(c0.to_bits() ^ c_sign),
    )
}

/// Giles' single-precision erfinv, central polynomial in (w − 2.5), used for w < 5.
/// Coefficients from M. Giles, "Approximating the erfinv function", GPU Computing Gems Jade
/// Edition (2011), highest degree first.
pub const ERFINV_CENTRAL: [f32; 9] = [
    f32::from_bits(0x32f1_6588), // 2.81022636e-08
    f32::from_bits(0x34b8_4b36), // 3.43273939e-07
    f32::from_bits(0xb66c_7357), // -3.5233877e-06
    f32::from_bits(0xb693_5ac1), // -4.39150654e-06
    f32::from_bits(0x3965_32db), // 0.00021858087
    f32::from_bits(0xbaa4_5408), // -0.00125372503
    f32::from_bits(0xbb88_e4ef), // -0.00417768164
    f32::from_bits(0x3e7c_8f63), // 0.246640727
    f32::from_bits(0x3fc0_2e2f), // 1.50140941
];
/// Giles' tail polynomial in (sqrt(w) − 3), used for w ≥ 5, highest degree first.
pub const ERFINV_TAIL: [f32; 9] = [
    f32::from_bits(0xb951_f09b), // -0.000200214257
    f32::from_bits(0x38d3_b56b), // 0.000100950558
    f32::from_bits(0x3ab0_dc72), // 0.00134934322
    f32::from_bits(0xbb70_bde7), // -0.00367342844
    f32::from_bits(0x3bbc_127b), // 0.00573950773
    f32::from_bits(0xbbf9_c5d7), // -0.0076224613
    f32::from_bits(0x3c1a_a57e), // 0.00943887047
    f32::from_bits(0x3f80_36db), // 1.00167406
    f32::from_bits(0x4035_4f7e), // 2.83297682
];

/// The factor `p` of Giles' erfinv, erfinv(x) ≈ p(w)·x, given `w = -ln((1-x)(1+x)) ≥ 0`.
///
/// Both branches are evaluated by Horner's rule `p = c + p*w'` (multiply, then add) starting
/// from the first coefficient, with `w' = w - 2.5` (central) and `w' = sqrt(w) - 3` (tail); the
/// result is `central if w < 5 else tail` (a select).
#[inline(always)]
pub fn erfinv_factor(w: f32) -> f32 {
    let wc = w - 2.5;
    let mut pc = ERFINV_CENTRAL[0];
    let mut i = 1;
    while i < 9 {
        pc = ERFINV_CENTRAL[i] + pc * wc;
        i += 1;
    }
    let wt = w.sqrt() - 3.0;
    let mut pt = ERFINV_TAIL[0];
    let mut i = 1;
    while i < 9 {
        pt = ERFINV_TAIL[i] + pt * wt;
        i += 1;
    }
    if w < 5.0 { pc } else { pt }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulp_err(got: f32, want: f64) -> f64 {
        // Error in units of the f32 ulp at the true value.
        let want32 = want as f32;
        let ulp = if want32 == 0.0 {
            f32::from_bits(1) as f64
        } else {
            let a = want32.abs();
            (f32::from_bits(a.to_bits() + 1) - a) as f64
        };
        ((got as f64) - want).abs() / ulp
    }

    #[test]
    fn ln_matches_libm_logf_bit_for_bit_on_box_muller_inputs() {
        // Every u1 = m * 2^-24, m in 1..=2^24 (the Box–Muller domain), exhaustively.
        let mut worst = 0.0f64;
        for m in 1u32..=(1 << 24) {
            let x = m as f32 * (1.0 / 16_777_216.0);
            let got = ln(x);
            assert_eq!(got.to_bits(), libm::logf(x).to_bits(), "x = {x:e}");
            worst = worst.max(ulp_err(got, libm::log(x as f64)));
        }
        eprintln!("ln worst on Box-Muller grid: {worst:.3} ulp");
        assert!(worst <= 1.0, "worst ln error {worst} ulp");
    }

    #[test]
    fn ln_dense_over_all_normal_floats() {
        // Every 61st positive normal float (≈ 35 M inputs covering every binade).
        let mut worst = 0.0f64;
        let mut b = 0x0080_0000u32;
        while b < 0x7f80_0000 {
            let x = f32::from_bits(b);
            let got = ln(x);
            assert_eq!(got.to_bits(), libm::logf(x).to_bits(), "x = {x:e}");
            worst = worst.max(ulp_err(got, libm::log(x as f64)));
            b += 61;
        }
        assert!(worst <= 1.0, "worst ln error {worst} ulp");
    }

    #[test]
    fn sincos_2pi_exhaustive_on_24_bit_grid() {
        let mut worst_s = 0.0f64;
        let mut worst_c = 0.0f64;
        for m in 0u32..(1 << 24) {
            let t = m as f32 * (1.0 / 16_777_216.0);
            let (s, c) = sincos_2pi(t);
            // Compare against sin/cos of the exactly reduced angle to avoid f64 reduction noise.
            let (ws, wc) = exact_sincos_2pi(m);
            worst_s = worst_s.max(ulp_err(s, ws));
            worst_c = worst_c.max(ulp_err(c, wc));
            assert!(s.abs() <= 1.0 && c.abs() <= 1.0);
        }
        eprintln!("sincos_2pi worst: sin {worst_s:.3} ulp, cos {worst_c:.3} ulp");
        assert!(worst_s <= 2.0, "worst sin error {worst_s} ulp");
        assert!(worst_c <= 2.0, "worst cos error {worst_c} ulp");
    }

    /// sin/cos(2π m / 2^24) in f64, reduced exactly to the first octant so that f64 libm error
    /// is ~1e-16 relative (far below the f32 ulp).
    fn exact_sincos_2pi(m: u32) -> (f64, f64) {
        let n: i64 = 1 << 24;
        let m = m as i64;
        // 4t = q + f with q = round(4m/n), f in [-1/2, 1/2]; both exact in f64.
        let q = (4 * m + n / 2).div_euclid(n);
        let f = (4 * m - q * n) as f64 / n as f64;
        let a = core::f64::consts::FRAC_PI_2 * f;
        let (sa, ca) = (libm::sin(a), libm::cos(a));
        match q & 3 {
            0 => (sa, ca),
            1 => (ca, -sa),
            2 => (-sa, -ca),
            _ => (-ca, sa),
        }
    }

    #[test]
    #[allow(clippy::excessive_precision)] // the published decimals, verbatim
    fn erfinv_coefficients_are_the_published_decimals() {
        let central: [f32; 9] = [
            2.810_226_36e-08,
            3.432_739_39e-07,
            -3.523_387_7e-06,
            -4.391_506_54e-06,
            0.000_218_580_87,
            -0.001_253_725_03,
            -0.004_177_681_64,
            0.246_640_727,
            1.501_409_41,
        ];
        let tail: [f32; 9] = [
            -0.000_200_214_257,
            0.000_100_950_558,
            0.001_349_343_22,
            -0.003_673_428_44,
            0.005_739_507_73,
            -0.007_622_461_3,
            0.009_438_870_47,
            1.001_674_06,
            2.832_976_82,
        ];
        for i in 0..9 {
            assert_eq!(
                central[i].to_bits(),
                ERFINV_CENTRAL[i].to_bits(),
                "central {i}"
            );
            assert_eq!(tail[i].to_bits(), ERFINV_TAIL[i].to_bits(), "tail {i}");
        }
        assert_eq!(LG1, 0.666_666_626_93);
        assert_eq!(LG2, 0.400_009_721_52);
        assert_eq!(LG3, 0.284_987_866_88);
        assert_eq!(LG4, 0.242_790_788_41);
        assert_eq!(LN2_HI, 6.931_381_225_6e-01);
        assert_eq!(LN2_LO, 9.058_000_614_5e-06);
        assert_eq!(S1, core::f32::consts::FRAC_PI_2);
    }

    #[test]
    fn sincos_special_points() {
        assert_eq!(sincos_2pi(0.0), (0.0, 1.0));
        assert_eq!(sincos_2pi(0.25), (1.0, 0.0));
        assert_eq!(sincos_2pi(0.5).1, -1.0);
        assert_eq!(sincos_2pi(0.75).0, -1.0);
        let (s, c) = sincos_2pi(0.125);
        assert!((s - core::f32::consts::FRAC_1_SQRT_2).abs() <= 1e-7);
        assert!((c - core::f32::consts::FRAC_1_SQRT_2).abs() <= 1e-7);
    }

    #[test]
    fn erfinv_factor_matches_f64_reference() {
        // erfinv(x) = p * x; compare sqrt(2)*p*x = Φ^-1((x+1)/2) against f64 inverse via erf.
        let mut worst_rel = 0.0f64;
        for i in 1..200_000u32 {
            let x = -1.0 + (i as f64) * (2.0 / 200_000.0);
            let x32 = x as f32;
            let w = -ln((1.0 - x32) * (1.0 + x32));
            let y = erfinv_factor(w) * x32;
            // One Newton-polished f64 check: erf(y) should be x.
            let e = libm::erf(y as f64);
            let deriv = 2.0 / core::f64::consts::PI.sqrt() * (-(y as f64) * (y as f64)).exp();
            let dy = (e - x32 as f64) / deriv; // ≈ y - erfinv(x)
            if y != 0.0 {
                worst_rel = worst_rel.max((dy / y as f64).abs());
            }
        }
        eprintln!("erfinv worst relative error {worst_rel:e}");
        assert!(worst_rel < 1e-6, "worst erfinv rel error {worst_rel}");
    }
}
