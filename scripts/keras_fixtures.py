"""Writes tests/fixtures/keras/*.json: real Keras 3 `model.to_json()` output together with the
`model.weights` paths and shapes Keras reports for that model (the oracle for
`tests/keras_model.rs`). Run with the real keras on the JAX backend:

    KERAS_BACKEND=jax python scripts/keras_fixtures.py
"""

import json
import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402
from keras import layers as L  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "keras"


def mlp():
    return keras.Sequential(
        [keras.Input((10,)), L.Dense(8, activation="relu", kernel_initializer="he_normal"), L.Dropout(0.1), L.Dense(3)]
    )


def cnn():
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            L.Conv2D(8, 3, activation="relu", padding="same"),
            L.BatchNormalization(),
            L.MaxPooling2D(),
            L.DepthwiseConv2D(3, depth_multiplier=2),
            L.SeparableConv2D(6, 3, padding="same"),
            L.Conv2DTranspose(4, 2, strides=2),
            L.GroupNormalization(groups=2),
            L.GlobalAveragePooling2D(),
            L.Flatten(),
            L.Dense(5, kernel_initializer=keras.initializers.VarianceScaling(2.0, "fan_out", "uniform")),
        ]
    )


def conv1d3d():
    inp = keras.Input((12, 4))
    x = L.Conv1D(6, 3, kernel_initializer="orthogonal")(inp)
    x = L.AveragePooling1D(2)(x)
    x = L.Reshape((5, 6, 1, 1))(x)
    x = L.Conv3D(2, (1, 2, 1), bias_initializer="ones")(x)
    x = L.Activation("tanh")(x)
    return keras.Model(inp, x)


def text():
    tokens = keras.Input((7,), dtype="int32", name="tokens")
    x = L.Embedding(50, 16)(tokens)
    x = L.LSTM(16, return_sequences=True)(x)
    a = L.MultiHeadAttention(num_heads=2, key_dim=8)(x, x)
    x = L.Add()([x, a])
    x = L.LayerNormalization()(x)
    x = L.Bidirectional(L.GRU(4))(x)
    return keras.Model(tokens, L.Dense(2, activation="softmax")(x))


def rnns():
    return keras.Sequential(
        [
            keras.Input((5, 3)),
            L.SimpleRNN(4, return_sequences=True),
            L.GRU(4, return_sequences=True, reset_after=False),
            L.Bidirectional(L.LSTM(2, return_sequences=True, unit_forget_bias=False)),
            L.LSTM(3),
        ]
    )


def einsum():
    inp = keras.Input((4, 6))
    x = L.EinsumDense("abc,cd->abd", output_shape=(None, 5), bias_axes="d")(inp)
    x = L.EinsumDense("abc,cde->abde", output_shape=(None, 2, 3), bias_axes="de", kernel_initializer="lecun_normal")(x)
    x = L.Concatenate()([L.Flatten()(x), L.Flatten()(inp)])
    return keras.Model(inp, x)


def nested():
    block = keras.Sequential([keras.Input((6,)), L.Dense(6, activation="gelu"), L.LayerNormalization()], name="block")
    inp = keras.Input((6,))
    x = block(inp)
    x = L.Dense(4)(x)
    inner = keras.Model(inp, x, name="inner")
    outer = keras.Sequential([keras.Input((6,)), inner, L.Dense(2, use_bias=False)])
    return outer


def mha_cross():
    q = keras.Input((3, 8))
    v = keras.Input((5, 6))
    out = L.MultiHeadAttention(num_heads=3, key_dim=4, value_dim=2, output_shape=7, use_bias=True)(q, v)
    return keras.Model([q, v], out)


MODELS = {
    "mlp": mlp,
    "cnn": cnn,
    "conv1d3d": conv1d3d,
    "text": text,
    "rnns": rnns,
    "einsum": einsum,
    "nested": nested,
    "mha_cross": mha_cross,
}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, make in MODELS.items():
        keras.backend.clear_session()
        model = make()
        record = {
            "keras_version": keras.__version__,
            "model": json.loads(model.to_json()),
            "weights": [{"path": w.path, "shape": list(w.shape)} for w in model.weights],
        }
        (OUT / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
        print(name, len(record["weights"]), "weights")


if __name__ == "__main__":
    main()
