//! The mean-field pieces: each activation's value and derivative at a point, and E[f(z)] for
//! z ~ N(0, q) by Simpson quadrature, from which the report and the forecast predict variance
//! ratios.

use crate::spec::Activation;

pub(super) fn act_value(a: Activation, x: f64) -> f64 {
    match a {
        Activation::Linear | Activation::Softmax => x,
        Activation::Relu => x.max(0.0),
        Activation::LeakyRelu { negative_slope } => {
            if x >= 0.0 {
                x
            } else {
                negative_slope * x
            }
        }
        Activation::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        Activation::Silu => x / (1.0 + libm::exp(-x)),
        Activation::Elu => {
            if x >= 0.0 {
                x
            } else {
                libm::expm1(x)
            }
        }
        Activation::Selu => {
            const L: f64 = 1.050_700_987_355_480_5;
            const A: f64 = 1.673_263_242_354_377_3;
            if x >= 0.0 {
                L * x
            } else {
                L * A * libm::expm1(x)
            }
        }
        Activation::Tanh => libm::tanh(x),
        Activation::Sigmoid => 1.0 / (1.0 + libm::exp(-x)),
        Activation::Softplus => {
            if x > 30.0 {
                x
            } else {
                libm::log1p(libm::exp(x))
            }
        }
        Activation::Mish => {
            x * libm::tanh(if x > 30.0 {
                x
            } else {
                libm::log1p(libm::exp(x))
            })
        }
    }
}

/// Derivative by a central difference for the smooth ones, exactly for the piecewise ones.
pub(super) fn act_grad(a: Activation, x: f64) -> f64 {
    match a {
        Activation::Linear | Activation::Softmax => 1.0,
        Activation::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::LeakyRelu { negative_slope } => {
            if x > 0.0 {
                1.0
            } else {
                negative_slope
            }
        }
        _ => {
            let h = 1e-5 * (1.0 + x.abs());
            (act_value(a, x + h) - act_value(a, x - h)) / (2.0 * h)
        }
    }
}

/// E[f(z)] for z ~ N(0, q), Simpson's rule on ±12σ with 2400 intervals.
pub(super) fn gauss_expect(q: f64, f: impl Fn(f64) -> f64) -> f64 {
    if q <= 0.0 {
        return f(0.0);
    }
    let s = q.sqrt();
    let n = 2400;
    let (a, b) = (-12.0, 12.0);
    let h = (b - a) / n as f64;
    let mut sum = 0.0;
    for i in 0..=n {
        let t = a + i as f64 * h;
        let w = if i == 0 || i == n {
            1.0
        } else if i % 2 == 1 {
            4.0
        } else {
            2.0
        };
        sum += w * f(s * t) * libm::exp(-0.5 * t * t);
    }
    sum * h / 3.0 / (2.0 * std::f64::consts::PI).sqrt()
}
