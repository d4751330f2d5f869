//! Each framework's layer defaults: the kernel and bias initializers a layer gets when the request
//! names none and `auto` does not apply (PyTorch `reset_parameters`, Keras `Dense`/`Conv`
//! defaults, Flax `nn.Dense`/`nn.Conv` defaults), and the constant defaults of norms.

use super::{Dist, Init, Nonlinearity, TorchFanMode};
use crate::terms::Framework;

pub(crate) fn weight_default(fw: Framework, what: &str) -> (Init, String) {
    match fw {
        Framework::PyTorch => (
            Init::Kaiming {
                dist: Dist::Uniform,
                a: libm::sqrt(5.0),
                mode: TorchFanMode::FanIn,
                nonlinearity: Nonlinearity::LeakyRelu,
            },
            format!(
                "PyTorch {what} default: kaiming_uniform_(a=√5) ⇒ U(±1/√fan_in) (torch/nn/modules reset_parameters)"
            ),
        ),
        Framework::Keras => (
            Init::Glorot(Dist::Uniform),
            format!("Keras {what} default kernel_initializer"),
        ),
        Framework::Flax => (
            Init::Lecun(Dist::Normal),
            format!("Flax {what} default kernel_init"),
        ),
    }
}

pub(crate) fn bias_default(fw: Framework, fan_in: f64) -> (Init, String) {
    match fw {
        Framework::PyTorch => {
            // torch/nn/modules/linear.py: bound = 1 / sqrt(fan_in) if fan_in > 0 else 0
            let bound = if fan_in > 0.0 {
                1.0 / libm::sqrt(fan_in)
            } else {
                0.0
            };
            (
                Init::Uniform {
                    low: -bound,
                    high: bound,
                },
                format!(
                    "PyTorch bias default: U(±1/√fan_in), fan_in = {fan_in} (torch/nn/modules reset_parameters)"
                ),
            )
        }
        _ => (
            Init::Zeros,
            format!(
                "{} bias default",
                if fw == Framework::Keras {
                    "Keras"
                } else {
                    "Flax"
                }
            ),
        ),
    }
}

pub(crate) fn constant_default(init: Init, what: &str) -> (Init, String) {
    (init, what.to_string())
}
