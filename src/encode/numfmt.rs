//! Shortest decimal forms: each number is printed with the fewest significant digits that
//! parse back to the same value of the tensor's dtype. f32 and f64 use `zmij` (the digits and
//! layout of `ryu`, which earlier versions used, checked against `ryu` in the tests); the 65,536
//! values of f16 and of bf16 each get a table of fixed-width entries built once.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::spec::DType;

/// Decimal rendering of `digits` (no leading zeros, at least one digit) × 10^(exp10 − len + 1),
/// i.e. `d.ddd × 10^exp10`, in the same style as ryu: plain for moderate exponents, scientific
/// otherwise.
fn render(negative: bool, digits: &str, exp10: i32) -> String {
    let mut s = String::with_capacity(digits.len() + 8);
    if negative {
        s.push('-');
    }
    let n = digits.len() as i32;
    if (0..16).contains(&exp10) {
        if exp10 + 1 >= n {
            s.push_str(digits);
            for _ in 0..(exp10 + 1 - n) {
                s.push('0');
            }
            s.push_str(".0");
        } else {
            let k = (exp10 + 1) as usize;
            s.push_str(&digits[..k]);
            s.push('.');
            s.push_str(&digits[k..]);
        }
    } else if (-5..0).contains(&exp10) {
        s.push_str("0.");
        for _ in 0..(-exp10 - 1) {
            s.push('0');
        }
        s.push_str(digits);
    } else {
        s.push_str(&digits[..1]);
        if n > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push('e');
        s.push_str(&exp10.to_string());
    }
    s
}

/// Shortest string whose value, read as f64 or as f32 and rounded to the 16-bit type, gives
/// back `bits`.
fn shortest16(
    bits: u16,
    to_f64: fn(u16) -> f64,
    from_f64: fn(f64) -> u16,
    from_f32: fn(f32) -> u16,
) -> String {
    let v = to_f64(bits);
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    for p in 1..=17usize {
        let sci = format!("{:.*e}", p - 1, v.abs());
        let Ok(parsed) = sci.parse::<f64>() else {
            continue;
        };
        let back = if v < 0.0 { -parsed } else { parsed };
        if from_f64(back) == bits && from_f32(back as f32) == bits {
            let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
            let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
            let digits = digits.trim_end_matches('0');
            let digits = if digits.is_empty() { "0" } else { digits };
            return render(v < 0.0, digits, exp.parse().unwrap_or(0));
        }
    }
    // 17 significant digits always round-trip an f64; unreachable for finite inputs.
    format!("{v:e}")
}

/// Widest JSON number any dtype prints (zmij's buffer holds any f64), plus its comma. Each value
/// is written into a slot this wide, then the cursor moves by the length actually printed.
const SLOT: usize = 32;

/// Width of one 16-bit table entry: `,` + the number with its length in the last byte, so that
/// writing a number is one fixed-size copy instead of a variable-length `memcpy`. Numbers of
/// more than `ENTRY - 2` characters (only large integers such as bf16 `100000000000000.0`)
/// have length 0 there and live in `long`.
const ENTRY: usize = 16;

struct Table {
    entries: Vec<[u8; ENTRY]>,
    /// `,` + the number, for the entries too long for `entries`.
    long: BTreeMap<u16, Box<[u8]>>,
}

impl Table {
    fn build(f: impl Fn(u16) -> Option<String>) -> Table {
        let mut entries = Vec::with_capacity(65536);
        let mut long = BTreeMap::new();
        for bits in 0..=u16::MAX {
            let mut e = [0u8; ENTRY];
            if let Some(s) = f(bits) {
                let n = s.len();
                if n <= ENTRY - 2 {
                    e[0] = b',';
                    e[1..1 + n].copy_from_slice(s.as_bytes());
                    e[ENTRY - 1] = (1 + n) as u8;
                } else {
                    long.insert(bits, format!(",{s}").into_bytes().into_boxed_slice());
                }
            }
            entries.push(e);
        }
        Table { entries, long }
    }

    /// Writes `,` + the number for `bits` at the front of `slot` (≥ `SLOT` bytes); returns the
    /// bytes used.
    #[inline(always)]
    fn write(&self, bits: u16, slot: &mut [u8]) -> usize {
        let e = &self.entries[bits as usize];
        let n = e[ENTRY - 1] as usize;
        if n != 0 {
            slot[..ENTRY].copy_from_slice(e);
            return n;
        }
        // Non-finite values (never produced: the plan rejects overflowing initializers) print
        // nothing, as before.
        let l = self.long.get(&bits).map_or(&[b','][..], |l| &l[..]);
        slot[..l.len()].copy_from_slice(l);
        l.len()
    }

    /// The number without its comma.
    #[cfg(test)]
    fn get(&self, bits: u16) -> Vec<u8> {
        let mut slot = [0u8; SLOT];
        let n = self.write(bits, &mut slot);
        slot[1..n].to_vec()
    }
}

fn f16_table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        Table::build(|b| {
            let v = half::f16::from_bits(b);
            v.is_finite().then(|| {
                shortest16(
                    b,
                    |b| half::f16::from_bits(b).to_f64(),
                    |x| half::f16::from_f64(x).to_bits(),
                    |x| half::f16::from_f32(x).to_bits(),
                )
            })
        })
    })
}

fn bf16_table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        Table::build(|b| {
            let v = half::bf16::from_bits(b);
            v.is_finite().then(|| {
                shortest16(
                    b,
                    |b| half::bf16::from_bits(b).to_f64(),
                    |x| half::bf16::from_f64(x).to_bits(),
                    |x| half::bf16::from_f32(x).to_bits(),
                )
            })
        })
    })
}

/// Appends `values` (canonical values, stored as `dtype`) as JSON numbers separated by commas,
/// with a comma before the first one too when `leading_comma`. Values are finite by
/// construction (the plan rejects initializers whose values would overflow the dtype).
///
/// The bytes are those of `ryu` for f32 and f64 and of the tables for f16 and bf16 (the output
/// of every earlier version): f32/f64 go through `zmij`, which prints the same shortest digits
/// in the same layout as `ryu` except for positive exponents (`1e+16` where `ryu` writes
/// `1e16`), so a `+` is removed where one can occur. The tests compare against `ryu` itself.
pub fn push_numbers(out: &mut Vec<u8>, dtype: DType, values: &[f32], leading_comma: bool) {
    let start = out.len();
    out.resize(start + (values.len() + 1) * SLOT, 0);
    let n = write_into(&mut out[start..], dtype, values, leading_comma);
    out.truncate(start + n);
}

/// `push_numbers` into the front of `buf`, a buffer reused from call to call: it grows when
/// needed and is never cleared or shrunk (zeroing it again for every part cost 8 % of the f32
/// path). Returns the number of bytes written, `buf[..n]`.
pub fn write_numbers(
    buf: &mut Vec<u8>,
    dtype: DType,
    values: &[f32],
    leading_comma: bool,
) -> usize {
    let need = (values.len() + 1) * SLOT;
    if buf.len() < need {
        buf.resize(need, 0);
    }
    write_into(buf, dtype, values, leading_comma)
}

/// The numbers into `buf` (at least `(values.len() + 1) · SLOT` bytes); returns the bytes used.
fn write_into(buf: &mut [u8], dtype: DType, values: &[f32], leading_comma: bool) -> usize {
    if values.is_empty() {
        return 0;
    }
    let written = match dtype {
        DType::F32 => {
            let mut z = zmij::Buffer::new();
            write_slots(buf, values, |slot, v| {
                slot[0] = b',';
                let s = z.format_finite(v).as_bytes();
                copy_short(&mut slot[1..], s);
                strip_plus(slot, 1 + s.len(), v.abs() >= 10.0)
            })
        }
        DType::F64 => {
            let mut z = zmij::Buffer::new();
            write_slots(buf, values, |slot, v| {
                slot[0] = b',';
                let s = z.format_finite(v as f64).as_bytes();
                copy_short(&mut slot[1..], s);
                strip_plus(slot, 1 + s.len(), v.abs() >= 10.0)
            })
        }
        DType::F16 => {
            let t = f16_table();
            write_slots(buf, values, |slot, v| {
                t.write(half::f16::from_f32(v).to_bits(), slot)
            })
        }
        DType::BF16 => {
            let t = bf16_table();
            write_slots(buf, values, |slot, v| {
                t.write(half::bf16::from_f32(v).to_bits(), slot)
            })
        }
        DType::I64 => {
            let mut b = itoa::Buffer::new();
            write_slots(buf, values, |slot, v| {
                slot[0] = b',';
                let s = b.format(v as i64).as_bytes();
                slot[1..1 + s.len()].copy_from_slice(s);
                1 + s.len()
            })
        }
    };
    // Every number was written with its comma; drop the first one unless wanted.
    if leading_comma {
        written
    } else {
        buf.copy_within(1..written, 0);
        written - 1
    }
}

/// Writes each value with `one` (`,` + number into the front of a slot of `SLOT` bytes,
/// returning how many bytes it used) one after the other into `buf`; returns the bytes used.
#[inline(always)]
fn write_slots(
    buf: &mut [u8],
    values: &[f32],
    mut one: impl FnMut(&mut [u8], f32) -> usize,
) -> usize {
    let mut pos = 0;
    for v in values {
        // pos ≤ i·SLOT, and `buf` holds (values.len() + 1)·SLOT bytes.
        pos += one(&mut buf[pos..pos + SLOT], *v);
    }
    pos
}

/// `dst[..src.len()] = src` for `src` of at most 32 bytes as two overlapping fixed-size copies
/// (register moves) instead of a call to `memcpy`, which cost a quarter of the f32 path.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n >= 16 {
        dst[..16].copy_from_slice(&src[..16]);
        dst[n - 16..n].copy_from_slice(&src[n - 16..]);
    } else if n >= 8 {
        let (a, b): ([u8; 8], [u8; 8]) = (head(src), head(&src[n - 8..]));
        dst[..8].copy_from_slice(&a);
        dst[n - 8..n].copy_from_slice(&b);
    } else if n >= 4 {
        let (a, b): ([u8; 4], [u8; 4]) = (head(src), head(&src[n - 4..]));
        dst[..4].copy_from_slice(&a);
        dst[n - 4..n].copy_from_slice(&b);
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

/// The first `N` bytes of `s` (which has at least `N`) as an array.
#[inline(always)]
fn head<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&s[..N]);
    a
}

/// `ryu`'s exponent style: `1e16`, not `zmij`'s `1e+16`. Only values of magnitude ≥ 10 can
/// print with a positive exponent, so the scan runs only for those (`check`).
#[inline(always)]
fn strip_plus(slot: &mut [u8], len: usize, check: bool) -> usize {
    if check && let Some(p) = slot[..len].iter().position(|&b| b == b'+') {
        slot.copy_within(p + 1..len, p);
        return len - 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON numbers as every earlier version printed them (`ryu` per f32/f64 value, the
    /// shortest 16-bit forms, `to_string` for i64), comma-separated: the oracle for
    /// `push_numbers`.
    fn oracle(dtype: DType, values: &[f32], leading_comma: bool) -> Vec<u8> {
        let mut r = ryu::Buffer::new();
        let mut out = Vec::new();
        for (i, &v) in values.iter().enumerate() {
            if i > 0 || leading_comma {
                out.push(b',');
            }
            let s: String = match dtype {
                DType::F32 => {
                    out.extend_from_slice(r.format_finite(v).as_bytes());
                    continue;
                }
                DType::F64 => {
                    out.extend_from_slice(r.format_finite(v as f64).as_bytes());
                    continue;
                }
                DType::F16 => shortest16(
                    half::f16::from_f32(v).to_bits(),
                    |b| half::f16::from_bits(b).to_f64(),
                    |x| half::f16::from_f64(x).to_bits(),
                    |x| half::f16::from_f32(x).to_bits(),
                ),
                DType::BF16 => shortest16(
                    half::bf16::from_f32(v).to_bits(),
                    |b| half::bf16::from_bits(b).to_f64(),
                    |x| half::bf16::from_f64(x).to_bits(),
                    |x| half::bf16::from_f32(x).to_bits(),
                ),
                DType::I64 => (v as i64).to_string(),
            };
            out.extend_from_slice(s.as_bytes());
        }
        out
    }

    fn check(dtype: DType, values: &[f32]) {
        for chunk in values.chunks(4099) {
            for lead in [false, true] {
                let mut got = b"[".to_vec();
                push_numbers(&mut got, dtype, chunk, lead);
                let mut want = b"[".to_vec();
                want.extend(oracle(dtype, chunk, lead));
                // The reusing form, on a buffer full of earlier output.
                let mut reused = vec![b'7'; 3 * SLOT];
                let n = write_numbers(&mut reused, dtype, chunk, lead);
                assert!(reused[..n] == want[1..], "{dtype:?}: write_numbers differs");
                if got != want {
                    // Name the first differing value.
                    let g = String::from_utf8_lossy(&got).into_owned();
                    let w = String::from_utf8_lossy(&want).into_owned();
                    let bad = g.split(',').zip(w.split(',')).find(|(a, b)| a != b);
                    panic!("{dtype:?}: {bad:?}");
                }
            }
        }
    }

    /// Finite f32 values across every exponent and sign: a stride through all bit patterns,
    /// the neighbours of every power of ten representable in f32 (where the digit count and
    /// the plain/scientific layout change), and the extremes.
    fn sweep() -> Vec<f32> {
        let mut v: Vec<f32> = (0..(1u32 << 22))
            .map(|i| f32::from_bits(i.wrapping_mul(1021) ^ (i >> 3)))
            .filter(|x| x.is_finite())
            .collect();
        for e in -46..=39 {
            let p = 10f64.powi(e) as f32;
            if p.is_finite() && p > 0.0 {
                for d in -40i32..=40 {
                    let x = f32::from_bits(p.to_bits().wrapping_add_signed(d));
                    if x.is_finite() {
                        v.extend([x, -x]);
                    }
                }
            }
        }
        v.extend([
            0.0,
            -0.0,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            f32::EPSILON,
        ]);
        v.extend([
            1e15,
            1e16,
            9.999999e15,
            1e17,
            123456789.0,
            16777216.0,
            0.1,
            1e-5,
            1e-4,
        ]);
        v.extend((1..5000).map(f32::from_bits));
        v
    }

    #[test]
    fn push_numbers_gives_the_bytes_of_ryu_and_the_tables() {
        let values = sweep();
        check(DType::F32, &values);
        check(DType::F64, &values);
        // Every finite 16-bit value, then the f32 sweep rounded to the dtype (where finite).
        let mut f16s: Vec<f32> = (0..=u16::MAX)
            .map(|b| half::f16::from_bits(b).to_f32())
            .collect();
        f16s.extend(&values);
        f16s.retain(|x| half::f16::from_f32(*x).is_finite());
        check(DType::F16, &f16s);
        let mut bf16s: Vec<f32> = (0..=u16::MAX)
            .map(|b| half::bf16::from_bits(b).to_f32())
            .collect();
        bf16s.extend(&values);
        bf16s.retain(|x| half::bf16::from_f32(*x).is_finite());
        check(DType::BF16, &bf16s);
        let ints: Vec<f32> = (-3000..3000)
            .map(|i| i as f32)
            .chain([1e15, -2e18])
            .collect();
        check(DType::I64, &ints);
        let mut out = b"x".to_vec();
        push_numbers(&mut out, DType::F32, &[], true);
        assert_eq!(out, b"x");
    }

    /// Every finite f32 (2^32 patterns, about a minute per core in release): run by hand with
    /// `cargo test --release --lib every_f32 -- --ignored`.
    #[test]
    #[ignore]
    fn every_f32_prints_as_ryu() {
        use rayon::prelude::*;
        (0..1u32 << 12).into_par_iter().for_each(|hi| {
            let values: Vec<f32> = (0..1u32 << 20)
                .map(|lo| f32::from_bits(hi << 20 | lo))
                .filter(|x| x.is_finite())
                .collect();
            let mut got = Vec::new();
            push_numbers(&mut got, DType::F32, &values, false);
            assert!(got == oracle(DType::F32, &values, false), "block {hi:#x}");
        });
    }

    #[test]
    fn every_16_bit_value_round_trips_and_is_shortest() {
        type Case = (
            &'static str,
            &'static Table,
            fn(u16) -> f64,
            fn(f64) -> u16,
            fn(f32) -> u16,
        );
        let cases: [Case; 2] = [
            (
                "f16",
                f16_table(),
                |b| half::f16::from_bits(b).to_f64(),
                |x| half::f16::from_f64(x).to_bits(),
                |x| half::f16::from_f32(x).to_bits(),
            ),
            (
                "bf16",
                bf16_table(),
                |b| half::bf16::from_bits(b).to_f64(),
                |x| half::bf16::from_f64(x).to_bits(),
                |x| half::bf16::from_f32(x).to_bits(),
            ),
        ];
        for (name, table, to_f64, from_f64, from_f32) in cases {
            for bits in 0..=u16::MAX {
                let v = to_f64(bits);
                if !v.is_finite() {
                    continue;
                }
                let s = table.get(bits);
                let s = std::str::from_utf8(&s).unwrap();
                assert!(s.len() < SLOT, "{name} {bits:#x}: {s} too wide for a slot");
                let parsed: f64 = s
                    .parse()
                    .unwrap_or_else(|_| panic!("{name} {bits:#x}: {s}"));
                // Both a double-based and a float-based reader get the value back.
                assert_eq!(from_f64(parsed), bits, "{name} {bits:#x} printed as {s}");
                assert_eq!(
                    from_f32(s.parse::<f32>().unwrap()),
                    bits,
                    "{name} {bits:#x} printed as {s} (f32 reader)"
                );
                // One digit fewer must not round-trip (shortest), unless already one digit.
                let sig: String = s
                    .chars()
                    .take_while(|c| *c != 'e')
                    .filter(|c| c.is_ascii_digit())
                    .collect();
                let sig = sig.trim_start_matches('0').trim_end_matches('0');
                if sig.len() > 1 && v != 0.0 {
                    let p = sig.len() - 1;
                    let shorter: f64 = format!("{:.*e}", p - 1, v).parse().unwrap();
                    let both = from_f64(shorter) == bits && from_f32(shorter as f32) == bits;
                    assert!(!both, "{name} {bits:#x}: {s} is not shortest");
                }
            }
        }
    }

    #[test]
    fn render_styles() {
        assert_eq!(render(false, "15", 0), "1.5");
        assert_eq!(render(true, "1", 2), "-100.0");
        assert_eq!(render(false, "25", -3), "0.0025");
        assert_eq!(render(false, "6", -8), "6e-8");
        assert_eq!(render(false, "65504", 4), "65504.0");
    }
}
