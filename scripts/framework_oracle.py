"""Writes tests/fixtures/framework_oracle.json: for initializer names as Keras 3 and Flax/JAX
users write them, what the real framework draws on a [400, 250] tensor: 2000 sample values,
and the std, min and max of 10^6 draws (ten seeds). `tests/framework_names.rs` compares the
service's values under the same `framework` with these (two-sample KS, std within 2%, range).

    KERAS_BACKEND=jax python scripts/framework_oracle.py
"""

import json
import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "jax")
import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from flax.linen import initializers as fi  # noqa: E402

SHAPE = (400, 250)
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "framework_oracle.json"

KERAS = [
    "uniform", "normal", "truncated_normal", "random_uniform", "RandomNormal", "he_normal",
    "he_uniform", "glorot_normal", "glorot_uniform", "lecun_normal", "lecun_uniform", "orthogonal",
    {"class_name": "VarianceScaling", "config": {"scale": 2.0, "distribution": "normal"}},
    {"class_name": "VarianceScaling", "config": {"mode": "fan_out", "distribution": "untruncated_normal"}},
    {"class_name": "VarianceScaling", "config": {"mode": "fan_avg", "distribution": "uniform", "scale": 3.0}},
    {"class_name": "TruncatedNormal", "config": {"mean": 0.5, "stddev": 0.2}},
]
FLAX = [
    "uniform", "normal", "truncated_normal", "he_normal", "kaiming_normal", "kaiming_uniform",
    "xavier_uniform", "xavier_normal", "lecun_normal", "glorot_normal", "orthogonal",
    {"name": "variance_scaling", "scale": 1.0, "mode": "fan_geo_avg", "distribution": "normal"},
]


def keras_draw(spec, seed):
    init = keras.initializers.get(spec) if isinstance(spec, str) else keras.initializers.deserialize(spec)
    cfg = init.get_config()
    if "seed" in cfg:
        cfg["seed"] = seed
    init = init.__class__.from_config(cfg)
    return np.asarray(init(SHAPE, dtype="float32"))


def flax_draw(spec, seed):
    if isinstance(spec, str):
        init = getattr(fi, spec)()
    else:
        init = fi.variance_scaling(spec["scale"], spec["mode"], spec["distribution"])
    return np.asarray(init(jax.random.key(seed), SHAPE, np.float32))


def record(draw, spec):
    big = np.concatenate([draw(spec, s).ravel() for s in range(10)])
    return {
        "init": spec,
        "sample": [float(f"{x:.7g}") for x in big[:2000]],
        "std": float(big.std()),
        "mean": float(big.mean()),
        "min": float(big.min()),
        "max": float(big.max()),
    }


def main():
    out = {
        "versions": {"keras": keras.__version__, "jax": jax.__version__},
        "shape": list(SHAPE),
        "keras": [record(keras_draw, s) for s in KERAS],
        "flax": [record(flax_draw, s) for s in FLAX],
    }
    OUT.write_text(json.dumps(out) + "\n")
    print(OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
