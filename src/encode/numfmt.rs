//! Shortest decimal forms: each number is printed with the fewest significant digits that
//! parse back to the same value of the tensor's dtype. f32 and f64 use `ryu`; the 65,536
//! values of f16 and of bf16 each get a table built once.

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

struct Table {
    text: Vec<u8>,
    offsets: Vec<u32>,
}

impl Table {
    fn build(f: impl Fn(u16) -> Option<String>) -> Table {
        let mut text = Vec::with_capacity(65536 * 10);
        let mut offsets = Vec::with_capacity(65537);
        for bits in 0..=u16::MAX {
            offsets.push(text.len() as u32);
            if let Some(s) = f(bits) {
                text.extend_from_slice(s.as_bytes());
            }
        }
        offsets.push(text.len() as u32);
        Table { text, offsets }
    }
    fn get(&self, bits: u16) -> &[u8] {
        &self.text[self.offsets[bits as usize] as usize..self.offsets[bits as usize + 1] as usize]
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

/// Appends the JSON number for canonical value `v` stored as `dtype`. Values are finite by
/// construction (the plan rejects initializers whose values would overflow the dtype).
pub fn push_number(out: &mut Vec<u8>, dtype: DType, v: f32, ryu_buf: &mut ryu::Buffer) {
    match dtype {
        DType::F32 => out.extend_from_slice(ryu_buf.format_finite(v).as_bytes()),
        DType::F64 => out.extend_from_slice(ryu_buf.format_finite(v as f64).as_bytes()),
        DType::F16 => out.extend_from_slice(f16_table().get(half::f16::from_f32(v).to_bits())),
        DType::BF16 => out.extend_from_slice(bf16_table().get(half::bf16::from_f32(v).to_bits())),
        DType::I64 => out.extend_from_slice((v as i64).to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                let s = std::str::from_utf8(table.get(bits)).unwrap();
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
