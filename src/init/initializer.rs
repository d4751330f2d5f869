//! The typed initializer: what validation turns a requested initializer into. `Init` is an
//! enum with one variant per catalogue entry and typed parameters (as candle-nn's
//! `init::Init`), so resolution (`init::resolve`) matches on variants and cannot meet an
//! unknown name or a missing parameter; the properties that several modules need (which fans a
//! variant reads, whether it is defined on PyTorch's layout, whether it needs the whole tensor
//! at once) are methods here, written once.
//!
//! The catalogue (`init::catalogue`) stays the one table of names, aliases, parameter names
//! and defaults: each entry carries the constructor that builds its variant from the parsed
//! parameters (in the table's order), and `Init::values` gives them back in that order, so the
//! canonical form (`Init::to_json`) is the table's names with the variant's values.

use serde_json::{Map, Value, json};

use super::catalogue::{CATALOGUE, InitDef, ParamValue};
use crate::error::{Result, SpecError};
use crate::terms::fields::join;

/// The distribution of a fan-based family: uniform or normal (truncated or not is the family's
/// own rule: PyTorch's `kaiming_normal_`/`xavier_normal_` are untruncated, Keras/JAX's
/// `he_normal`, `glorot_normal`, `lecun_normal` truncated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dist {
    Uniform,
    Normal,
}

/// Declares a fieldless enum whose variants have fixed wire names, with `ALL`, `name` and
/// `from_name`; the names are the request's spelling, so the catalogue's choice lists are built
/// from `ALL` (one spelling, written once).
macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            pub const NAMES: &'static [&'static str] = &[$($s),+];

            pub const fn name(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }

            pub fn from_name(s: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.name() == s)
            }
        }
    };
}

named_enum! {
    /// A Keras/JAX variance-scaling `mode`.
    FanMode {
        FanIn = "fan_in",
        FanOut = "fan_out",
        FanAvg = "fan_avg",
        /// JAX only: √(fan_in · fan_out).
        FanGeoAvg = "fan_geo_avg",
    }
}

named_enum! {
    /// PyTorch kaiming's `mode`.
    TorchFanMode {
        FanIn = "fan_in",
        FanOut = "fan_out",
    }
}

named_enum! {
    /// A variance-scaling `distribution`. `Normal` and `UntruncatedNormal` sample the same
    /// (JAX's `normal` is untruncated) but keep their own spelling in the canonical request.
    VsDistribution {
        TruncatedNormal = "truncated_normal",
        Normal = "normal",
        UntruncatedNormal = "untruncated_normal",
        Uniform = "uniform",
    }
}

named_enum! {
    /// The names `torch.nn.init.calculate_gain` accepts.
    Nonlinearity {
        Linear = "linear",
        Conv1d = "conv1d",
        Conv2d = "conv2d",
        Conv3d = "conv3d",
        ConvTranspose1d = "conv_transpose1d",
        ConvTranspose2d = "conv_transpose2d",
        ConvTranspose3d = "conv_transpose3d",
        Sigmoid = "sigmoid",
        Tanh = "tanh",
        Relu = "relu",
        LeakyRelu = "leaky_relu",
        Selu = "selu",
    }
}

impl Nonlinearity {
    /// `torch.nn.init.calculate_gain(self, a)`; `a` is the leaky_relu slope.
    pub fn gain(self, a: f64) -> f64 {
        match self {
            Nonlinearity::Tanh => 5.0 / 3.0,
            Nonlinearity::Relu => libm::sqrt(2.0),
            Nonlinearity::LeakyRelu => libm::sqrt(2.0 / (1.0 + a * a)),
            Nonlinearity::Selu => 3.0 / 4.0,
            Nonlinearity::Linear
            | Nonlinearity::Conv1d
            | Nonlinearity::Conv2d
            | Nonlinearity::Conv3d
            | Nonlinearity::ConvTranspose1d
            | Nonlinearity::ConvTranspose2d
            | Nonlinearity::ConvTranspose3d
            | Nonlinearity::Sigmoid => 1.0,
        }
    }
}

/// Which fans an initializer reads (issue 11: a raw tensor needs only those).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FansUsed {
    None,
    In,
    Out,
    Both,
}

impl FanMode {
    pub fn uses(self) -> FansUsed {
        match self {
            FanMode::FanIn => FansUsed::In,
            FanMode::FanOut => FansUsed::Out,
            FanMode::FanAvg | FanMode::FanGeoAvg => FansUsed::Both,
        }
    }

    /// The `n` variance scaling divides by. Keras floors it at 1 (random_initializers.py);
    /// with sizes ≥ 1 the floor never binds, but it is part of the formula.
    pub fn n(self, fan_in: f64, fan_out: f64) -> f64 {
        match self {
            FanMode::FanIn => fan_in,
            FanMode::FanOut => fan_out,
            FanMode::FanAvg => (fan_in + fan_out) / 2.0,
            FanMode::FanGeoAvg => libm::sqrt(fan_in * fan_out),
        }
        .max(1.0)
    }
}

impl TorchFanMode {
    fn as_fan_mode(self) -> FanMode {
        match self {
            TorchFanMode::FanIn => FanMode::FanIn,
            TorchFanMode::FanOut => FanMode::FanOut,
        }
    }
}

/// A validated initializer: a catalogue entry with every parameter, defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    Constant {
        value: f64,
    },
    /// PyTorch `uniform_(a=low, b=high)`.
    Uniform {
        low: f64,
        high: f64,
    },
    /// PyTorch `normal_`.
    Normal {
        mean: f64,
        std: f64,
    },
    /// PyTorch `trunc_normal_`: absolute bounds, std not corrected.
    TruncatedNormal {
        mean: f64,
        std: f64,
        a: f64,
        b: f64,
    },
    RandomUniform {
        minval: f64,
        maxval: f64,
    },
    RandomNormal {
        mean: f64,
        stddev: f64,
    },
    /// Keras `TruncatedNormal`: mean ± 2·stddev.
    KerasTruncatedNormal {
        mean: f64,
        stddev: f64,
    },
    /// JAX `uniform(scale)`: U(0, scale).
    JaxUniform {
        scale: f64,
    },
    JaxNormal {
        stddev: f64,
    },
    /// JAX `truncated_normal`: bounds in units of stddev.
    JaxTruncatedNormal {
        stddev: f64,
        lower: f64,
        upper: f64,
    },
    VarianceScaling {
        scale: f64,
        mode: FanMode,
        distribution: VsDistribution,
    },
    /// PyTorch `kaiming_uniform_` / `kaiming_normal_`.
    Kaiming {
        dist: Dist,
        a: f64,
        mode: TorchFanMode,
        nonlinearity: Nonlinearity,
    },
    /// PyTorch `xavier_uniform_` / `xavier_normal_`.
    Xavier {
        dist: Dist,
        gain: f64,
    },
    /// Keras/JAX `he_*`: variance_scaling(2, fan_in).
    He(Dist),
    /// Keras/JAX `glorot_*`: variance_scaling(1, fan_avg).
    Glorot(Dist),
    /// Keras/JAX `lecun_*`: variance_scaling(1, fan_in).
    Lecun(Dist),
    Orthogonal {
        gain: f64,
    },
    Identity {
        gain: f64,
    },
    Dirac {
        groups: u64,
    },
    DeltaOrthogonal {
        scale: f64,
    },
    Sparse {
        sparsity: f64,
        std: f64,
    },
    /// Chosen from the layer's activation at resolution (`init::auto_choice`).
    Auto,
}

impl Init {
    /// PyTorch kaiming with `torch.nn.init`'s defaults (a = 0, fan_in, leaky_relu).
    pub fn kaiming(dist: Dist) -> Init {
        Init::Kaiming {
            dist,
            a: 0.0,
            mode: TorchFanMode::FanIn,
            nonlinearity: Nonlinearity::LeakyRelu,
        }
    }

    /// The catalogue entry. The indices are literals into a fixed-size array, so an index
    /// past its end does not compile; `tests::every_entry_builds_its_own_variant` checks each
    /// variant points at its own entry.
    pub fn def(&self) -> &'static InitDef {
        use Dist::{Normal as N, Uniform as U};
        match self {
            Init::Zeros => &CATALOGUE[0],
            Init::Ones => &CATALOGUE[1],
            Init::Constant { .. } => &CATALOGUE[2],
            Init::Uniform { .. } => &CATALOGUE[3],
            Init::Normal { .. } => &CATALOGUE[4],
            Init::TruncatedNormal { .. } => &CATALOGUE[5],
            Init::RandomUniform { .. } => &CATALOGUE[6],
            Init::RandomNormal { .. } => &CATALOGUE[7],
            Init::KerasTruncatedNormal { .. } => &CATALOGUE[8],
            Init::JaxUniform { .. } => &CATALOGUE[9],
            Init::JaxNormal { .. } => &CATALOGUE[10],
            Init::JaxTruncatedNormal { .. } => &CATALOGUE[11],
            Init::VarianceScaling { .. } => &CATALOGUE[12],
            Init::Kaiming { dist: U, .. } => &CATALOGUE[13],
            Init::Kaiming { dist: N, .. } => &CATALOGUE[14],
            Init::Xavier { dist: U, .. } => &CATALOGUE[15],
            Init::Xavier { dist: N, .. } => &CATALOGUE[16],
            Init::He(U) => &CATALOGUE[17],
            Init::He(N) => &CATALOGUE[18],
            Init::Glorot(U) => &CATALOGUE[19],
            Init::Glorot(N) => &CATALOGUE[20],
            Init::Lecun(U) => &CATALOGUE[21],
            Init::Lecun(N) => &CATALOGUE[22],
            Init::Orthogonal { .. } => &CATALOGUE[23],
            Init::Identity { .. } => &CATALOGUE[24],
            Init::Dirac { .. } => &CATALOGUE[25],
            Init::DeltaOrthogonal { .. } => &CATALOGUE[26],
            Init::Sparse { .. } => &CATALOGUE[27],
            Init::Auto => &CATALOGUE[28],
        }
    }

    /// The catalogue name (what the canonical request and the plan show).
    pub fn name(&self) -> &'static str {
        self.def().name
    }

    /// The parameter values in the catalogue's order (`InitDef::params`).
    pub fn values(&self) -> Vec<ParamValue> {
        use ParamValue::{Choice as C, Count, Float as F};
        match *self {
            Init::Zeros | Init::Ones | Init::He(_) | Init::Glorot(_) | Init::Lecun(_) => vec![],
            Init::Auto => vec![],
            Init::Constant { value } => vec![F(value)],
            Init::Uniform { low, high } => vec![F(low), F(high)],
            Init::Normal { mean, std } => vec![F(mean), F(std)],
            Init::TruncatedNormal { mean, std, a, b } => vec![F(mean), F(std), F(a), F(b)],
            Init::RandomUniform { minval, maxval } => vec![F(minval), F(maxval)],
            Init::RandomNormal { mean, stddev } | Init::KerasTruncatedNormal { mean, stddev } => {
                vec![F(mean), F(stddev)]
            }
            Init::JaxUniform { scale } => vec![F(scale)],
            Init::JaxNormal { stddev } => vec![F(stddev)],
            Init::JaxTruncatedNormal {
                stddev,
                lower,
                upper,
            } => vec![F(stddev), F(lower), F(upper)],
            Init::VarianceScaling {
                scale,
                mode,
                distribution,
            } => vec![F(scale), C(mode.name()), C(distribution.name())],
            Init::Kaiming {
                a,
                mode,
                nonlinearity,
                ..
            } => vec![F(a), C(mode.name()), C(nonlinearity.name())],
            Init::Xavier { gain, .. } | Init::Orthogonal { gain } | Init::Identity { gain } => {
                vec![F(gain)]
            }
            Init::Dirac { groups } => vec![Count(groups)],
            Init::DeltaOrthogonal { scale } => vec![F(scale)],
            Init::Sparse { sparsity, std } => vec![F(sparsity), F(std)],
        }
    }

    /// Canonical form: an object with the catalogue name and every parameter, in the
    /// catalogue's order. Hand-written, not derived: the name is the catalogue entry's (one
    /// variant such as `Kaiming` is two entries, told apart by `dist`, which is no parameter).
    pub fn to_json(&self) -> Value {
        let def = self.def();
        let mut m = Map::new();
        m.insert("name".into(), json!(def.name));
        for (p, v) in def.params.iter().zip(self.values()) {
            m.insert(p.name.into(), v.to_json());
        }
        Value::Object(m)
    }

    /// Whether the values need the whole tensor at once (no per-element seeking): the
    /// QR-based and the sparse initializers.
    pub fn is_whole_tensor(&self) -> bool {
        matches!(
            self,
            Init::Orthogonal { .. } | Init::DeltaOrthogonal { .. } | Init::Sparse { .. }
        )
    }

    /// Whether the initializer is defined on PyTorch's `[out, in, *k]` layout (so a Keras/Flax
    /// tensor is generated as the permuted PyTorch tensor): the whole-tensor ones, the
    /// identity matrix and dirac.
    pub fn on_torch_layout(&self) -> bool {
        self.is_whole_tensor() || matches!(self, Init::Identity { .. } | Init::Dirac { .. })
    }

    /// Which fans the formula reads. `Auto` reads those of the initializer it chooses.
    pub fn fans_used(&self) -> FansUsed {
        match self {
            Init::VarianceScaling { mode, .. } => mode.uses(),
            Init::Kaiming { mode, .. } => mode.as_fan_mode().uses(),
            Init::Xavier { .. } | Init::Glorot(_) => FansUsed::Both,
            Init::He(_) | Init::Lecun(_) => FansUsed::In,
            _ => FansUsed::None,
        }
    }

    /// Value checks that do not depend on the tensor (those live in `resolve`); `path` is the
    /// initializer's JSON path.
    pub fn check(&self, path: &str) -> Result<()> {
        let bad = |field: &str, msg: String| Err(SpecError::invalid_value(join(path, field), msg));
        match *self {
            Init::Uniform { low, high } if low > high => {
                bad("high", format!("high ({high}) must be ≥ low ({low})"))
            }
            Init::RandomUniform { minval, maxval } if minval > maxval => {
                bad("maxval", "maxval must be ≥ minval".into())
            }
            Init::Normal { std, .. } if std < 0.0 => bad("std", "std must be ≥ 0".into()),
            Init::RandomNormal { stddev, .. }
            | Init::KerasTruncatedNormal { stddev, .. }
            | Init::JaxNormal { stddev }
            | Init::JaxTruncatedNormal { stddev, .. }
                if stddev <= 0.0 =>
            {
                bad("stddev", "stddev must be > 0".into())
            }
            Init::TruncatedNormal { std, .. } if std <= 0.0 => bad("std", "std must be > 0".into()),
            Init::TruncatedNormal { a, b, .. } if a >= b => {
                bad("b", format!("b ({b}) must be > a ({a})"))
            }
            Init::JaxTruncatedNormal { lower, upper, .. } if lower >= upper => {
                bad("upper", "upper must be > lower".into())
            }
            Init::JaxUniform { scale } if scale < 0.0 => bad("scale", "scale must be ≥ 0".into()),
            Init::VarianceScaling { scale, .. } if scale <= 0.0 => {
                bad("scale", "scale must be > 0 (as in Keras)".into())
            }
            Init::Sparse { sparsity, .. } if !(0.0..=1.0).contains(&sparsity) => {
                bad("sparsity", "sparsity must be in [0, 1]".into())
            }
            Init::Sparse { std, .. } if std < 0.0 => bad("std", "std must be ≥ 0".into()),
            _ => Ok(()),
        }
    }
}

/// The constructors the catalogue entries carry: each builds its variant from the values
/// parsed in the entry's parameter order, or `None` when the values do not have the entry's
/// kinds (the table and its constructor disagree: a defect `tests` would catch).
pub(super) mod build {
    use super::super::catalogue::ParamValue::{self, Choice as C, Count, Float as F};
    use super::{Dist, FanMode, Init, Nonlinearity, TorchFanMode, VsDistribution};

    type V<'a> = &'a [ParamValue];

    pub fn zeros(v: V<'_>) -> Option<Init> {
        v.is_empty().then_some(Init::Zeros)
    }
    pub fn ones(v: V<'_>) -> Option<Init> {
        v.is_empty().then_some(Init::Ones)
    }
    pub fn auto(v: V<'_>) -> Option<Init> {
        v.is_empty().then_some(Init::Auto)
    }
    pub fn constant(v: V<'_>) -> Option<Init> {
        match *v {
            [F(value)] => Some(Init::Constant { value }),
            _ => None,
        }
    }
    pub fn uniform(v: V<'_>) -> Option<Init> {
        match *v {
            [F(low), F(high)] => Some(Init::Uniform { low, high }),
            _ => None,
        }
    }
    pub fn normal(v: V<'_>) -> Option<Init> {
        match *v {
            [F(mean), F(std)] => Some(Init::Normal { mean, std }),
            _ => None,
        }
    }
    pub fn truncated_normal(v: V<'_>) -> Option<Init> {
        match *v {
            [F(mean), F(std), F(a), F(b)] => Some(Init::TruncatedNormal { mean, std, a, b }),
            _ => None,
        }
    }
    pub fn random_uniform(v: V<'_>) -> Option<Init> {
        match *v {
            [F(minval), F(maxval)] => Some(Init::RandomUniform { minval, maxval }),
            _ => None,
        }
    }
    pub fn random_normal(v: V<'_>) -> Option<Init> {
        match *v {
            [F(mean), F(stddev)] => Some(Init::RandomNormal { mean, stddev }),
            _ => None,
        }
    }
    pub fn keras_truncated_normal(v: V<'_>) -> Option<Init> {
        match *v {
            [F(mean), F(stddev)] => Some(Init::KerasTruncatedNormal { mean, stddev }),
            _ => None,
        }
    }
    pub fn jax_uniform(v: V<'_>) -> Option<Init> {
        match *v {
            [F(scale)] => Some(Init::JaxUniform { scale }),
            _ => None,
        }
    }
    pub fn jax_normal(v: V<'_>) -> Option<Init> {
        match *v {
            [F(stddev)] => Some(Init::JaxNormal { stddev }),
            _ => None,
        }
    }
    pub fn jax_truncated_normal(v: V<'_>) -> Option<Init> {
        match *v {
            [F(stddev), F(lower), F(upper)] => Some(Init::JaxTruncatedNormal {
                stddev,
                lower,
                upper,
            }),
            _ => None,
        }
    }
    pub fn variance_scaling(v: V<'_>) -> Option<Init> {
        match *v {
            [F(scale), C(mode), C(dist)] => Some(Init::VarianceScaling {
                scale,
                mode: FanMode::from_name(mode)?,
                distribution: VsDistribution::from_name(dist)?,
            }),
            _ => None,
        }
    }
    fn kaiming(dist: Dist, v: V<'_>) -> Option<Init> {
        match *v {
            [F(a), C(mode), C(nl)] => Some(Init::Kaiming {
                dist,
                a,
                mode: TorchFanMode::from_name(mode)?,
                nonlinearity: Nonlinearity::from_name(nl)?,
            }),
            _ => None,
        }
    }
    pub fn kaiming_uniform(v: V<'_>) -> Option<Init> {
        kaiming(Dist::Uniform, v)
    }
    pub fn kaiming_normal(v: V<'_>) -> Option<Init> {
        kaiming(Dist::Normal, v)
    }
    fn xavier(dist: Dist, v: V<'_>) -> Option<Init> {
        match *v {
            [F(gain)] => Some(Init::Xavier { dist, gain }),
            _ => None,
        }
    }
    pub fn xavier_uniform(v: V<'_>) -> Option<Init> {
        xavier(Dist::Uniform, v)
    }
    pub fn xavier_normal(v: V<'_>) -> Option<Init> {
        xavier(Dist::Normal, v)
    }
    pub fn he_uniform(v: V<'_>) -> Option<Init> {
        v.is_empty().then_some(Init::He(Dist::Uniform))
    }
    pub fn he_normal(v: V<'_>) -> Option<Init> {
        v.is_empty().then_some(Init::He(Dist::Normal))
    }
    pub fn glorot_uniform(v: V<'_>) -> Option<Init> {
        v.is_empty().then_some(Init::Glorot(Dist::Uniform))
    }
    pub fn glorot_normal(v: V<'_>) -> Option<Init> {
        v.is_empty().then_some(Init::Glorot(Dist::Normal))
    }
    pub fn lecun_uniform(v: V<'_>) -> Option<Init> {
        v.is_empty().then_some(Init::Lecun(Dist::Uniform))
    }
    pub fn lecun_normal(v: V<'_>) -> Option<Init> {
        v.is_empty().then_some(Init::Lecun(Dist::Normal))
    }
    pub fn orthogonal(v: V<'_>) -> Option<Init> {
        match *v {
            [F(gain)] => Some(Init::Orthogonal { gain }),
            _ => None,
        }
    }
    pub fn identity(v: V<'_>) -> Option<Init> {
        match *v {
            [F(gain)] => Some(Init::Identity { gain }),
            _ => None,
        }
    }
    pub fn dirac(v: V<'_>) -> Option<Init> {
        match *v {
            [Count(groups)] => Some(Init::Dirac { groups }),
            _ => None,
        }
    }
    pub fn delta_orthogonal(v: V<'_>) -> Option<Init> {
        match *v {
            [F(scale)] => Some(Init::DeltaOrthogonal { scale }),
            _ => None,
        }
    }
    pub fn sparse(v: V<'_>) -> Option<Init> {
        match *v {
            [F(sparsity), F(std)] => Some(Init::Sparse { sparsity, std }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::catalogue::{ParamDefault, parse};
    use super::*;

    /// Every entry's constructor builds a variant whose `def` is that entry, and whose
    /// `values` rebuild it: the table, the constructors and `def`/`values` agree.
    #[test]
    fn every_entry_builds_its_own_variant() {
        assert_eq!(CATALOGUE.len(), 29);
        for d in CATALOGUE.iter() {
            let mut obj = Map::new();
            obj.insert("name".into(), json!(d.name));
            for p in d.params {
                if p.default == ParamDefault::Required {
                    obj.insert(p.name.into(), json!(0.5));
                }
            }
            let init = parse(&Value::Object(obj), "x").unwrap();
            assert!(std::ptr::eq(init.def(), d), "{} → {:?}", d.name, init);
            assert_eq!(
                (d.build)(&init.values()).as_ref(),
                Some(&init),
                "{}",
                d.name
            );
            assert_eq!(init.to_json()["name"], json!(d.name));
            // Aliases name the same entry.
            for a in d.aliases {
                if d.params.iter().all(|p| p.default != ParamDefault::Required) {
                    assert_eq!(parse(&json!(a), "x").unwrap(), init, "{a}");
                }
            }
        }
    }

    #[test]
    fn whole_tensor_and_fans_are_properties_of_the_variant() {
        let p = |v: Value| parse(&v, "x").unwrap();
        assert!(p(json!("orthogonal")).is_whole_tensor());
        assert!(p(json!("delta_orthogonal")).is_whole_tensor());
        assert!(p(json!({"name": "sparse", "sparsity": 0.1})).is_whole_tensor());
        assert!(!p(json!("eye")).is_whole_tensor());
        assert!(p(json!("eye")).on_torch_layout());
        assert!(p(json!("dirac")).on_torch_layout());
        assert!(!p(json!("he_normal")).on_torch_layout());
        assert_eq!(p(json!("he_normal")).fans_used(), FansUsed::In);
        assert_eq!(p(json!("glorot_uniform")).fans_used(), FansUsed::Both);
        assert_eq!(p(json!("xavier_normal")).fans_used(), FansUsed::Both);
        assert_eq!(
            p(json!({"name": "kaiming_normal", "mode": "fan_out"})).fans_used(),
            FansUsed::Out
        );
        assert_eq!(
            p(json!({"name": "variance_scaling", "mode": "fan_geo_avg"})).fans_used(),
            FansUsed::Both
        );
        assert_eq!(p(json!("normal")).fans_used(), FansUsed::None);
    }
}
