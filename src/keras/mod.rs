//! `keras_model`: a Keras 3 architecture as `json.loads(model.to_json())` writes it (Sequential,
//! Functional, nested models) turned into the list of its weights, each named exactly by its
//! `model.weights` path, with its shape and the initializer its layer's config names.
//!
//! Names follow how Keras 3.15 scopes variables when a model is built in code (checked against
//! the real Keras by `tests/keras_model.rs` on the fixtures `scripts/keras_fixtures.py`
//! writes): a layer is built inside `backend.name_scope(layer.name)`; a `Sequential` builds its
//! layers inside its own scope (`sequential/dense/kernel`), at construction when it starts with
//! an `InputLayer` (so its scope is then its name alone), else when its caller builds it (inside
//! the caller's scope); a `Functional` builds its layers when they are called on its inputs,
//! outside any scope (`dense_2/kernel`); RNN layers hold their weights in their cell
//! (`lstm/lstm_cell/kernel`), wrappers (`Bidirectional`, `TimeDistributed`) build the wrapped
//! layers in their own scope, `MultiHeadAttention` its `query`, `key`, `value` and
//! `attention_output` EinsumDense sub-layers.
//!
//! Shapes come from each layer's `build_config` (what Keras itself rebuilds the layer from), else
//! from the previous layer's output shape (an `InputLayer`'s `batch_shape`, a `Sequential`'s
//! `build_input_shape`), computed as Keras computes it. Initializer seeds are ignored.

/// Keras initializer JSON forms live with the other initializer names, in `init::keras`.
pub use crate::init::keras as initializers;
pub mod shapes;

// One file per job: `entry` reads a layer's config, `walk` the containers and scopes,
// `layers`/`recurrent`/`attention` the weights of each kind of layer, `parameter_free` the
// shapes of the layers without weights.
mod attention;
mod entry;
mod layers;
mod parameter_free;
mod recurrent;
mod walk;

use serde_json::Value;

use crate::error::{Result, SpecError};
use crate::terms::fields::join;
use entry::Entry;
pub use initializers::KerasInit;

/// One entry of `model.weights`.
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    /// The variable's `path`.
    pub path: String,
    /// Its shape, as Keras stores it.
    pub shape: Vec<u64>,
    pub init: KerasInit,
    /// JSON path of the initializer in the request (or of the layer config, for a default).
    pub init_path: String,
    /// JSON path of the layer.
    pub origin: String,
    /// Explicit (fan_in, fan_out): EinsumDense kernels give their variance-scaling
    /// initializer the einsum's input and output axes (Keras ≥ 3.15).
    pub fans: Option<(u64, u64)>,
    /// LSTM `unit_forget_bias`: the bias is `init((units,))`, ones `(units,)`,
    /// `init((2·units,))`, concatenated (`keras/src/layers/rnn/lstm.py`).
    pub forget_bias_units: Option<u64>,
    /// Why the initializer is what it is, when the config did not name one.
    pub default_reason: Option<String>,
}

/// A validated `keras_model`.
#[derive(Clone, Debug, PartialEq)]
pub struct KerasModel {
    /// The object as posted; the canonical request stores it unchanged.
    pub source: Value,
    /// In `model.weights` order.
    pub weights: Vec<Weight>,
}

impl KerasModel {
    /// The object as posted, unchanged: Keras's own JSON is the canonical form.
    pub fn to_json(&self) -> Value {
        self.source.clone()
    }
}

/// Layers without weights, and how they change the shape (`None`: not computed here; a
/// following layer then needs its own `build_config`).
const PARAMETER_FREE: &[&str] = &[
    "InputLayer",
    "Flatten",
    "Reshape",
    "Permute",
    "RepeatVector",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "Softmax",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
    "Dot",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "UpSampling1D",
    "UpSampling2D",
    "UpSampling3D",
    "Masking",
    "Identity",
    "UnitNormalization",
];

/// Layers with weights.
const WITH_WEIGHTS: &[&str] = &[
    "Dense",
    "EinsumDense",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "SeparableConv1D",
    "SeparableConv2D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
    "Embedding",
    "LayerNormalization",
    "BatchNormalization",
    "GroupNormalization",
    "SimpleRNN",
    "LSTM",
    "GRU",
    "Bidirectional",
    "TimeDistributed",
    "MultiHeadAttention",
];

const MODELS: &[&str] = &["Sequential", "Functional", "Model"];

/// The class names `keras_model` accepts, for documentation and errors.
pub fn supported_classes() -> impl Iterator<Item = &'static str> {
    WITH_WEIGHTS
        .iter()
        .chain(PARAMETER_FREE)
        .chain(MODELS)
        .copied()
}

/// The weights found so far, in `model.weights` order; its methods walk the model (`walk`) and
/// add each kind of layer's weights (`layers`, `recurrent`, `attention`).
struct Walker {
    weights: Vec<Weight>,
}

/// Parses `keras_model`.
pub fn parse(v: &Value, path: &str) -> Result<KerasModel> {
    let mut w = Walker {
        weights: Vec::new(),
    };
    let e = Entry::new(v, path)?;
    if !MODELS.contains(&e.class) {
        return Err(SpecError::unsupported_layer_type(
            join(path, "class_name"),
            format!(
                "keras_model must be a Sequential or Functional model (model.to_json()), got `{}`",
                e.class
            ),
        ));
    }
    w.model(&e, "", None)?;
    Ok(KerasModel {
        source: v.clone(),
        weights: w.weights,
    })
}

impl Walker {
    /// A weight with its fans from its shape and no forget-gate constant (most weights).
    fn put(
        &mut self,
        e: &Entry<'_>,
        path: String,
        shape: Vec<u64>,
        init: (KerasInit, String, Option<String>),
    ) {
        self.push(e, path, shape, init, None, None);
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        e: &Entry<'_>,
        path: String,
        shape: Vec<u64>,
        init: (KerasInit, String, Option<String>),
        fans: Option<(u64, u64)>,
        forget_bias_units: Option<u64>,
    ) {
        self.weights.push(Weight {
            path,
            shape,
            init: init.0,
            init_path: init.1,
            origin: e.path.clone(),
            fans,
            forget_bias_units,
            default_reason: init.2,
        });
    }
}
