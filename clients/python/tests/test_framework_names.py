"""The service's own `layers` path under `framework: keras` / `flax`: does a name mean what the
framework means by it? (issue 13, "Why"). The client never relies on these spellings (it sends
explicit, framework-independent names), so these tests watch the service: the mismatches the
issue listed were `xfail(strict=True)` until the server-side fix landed; they now pass.
"""

import os

os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from safetensors.numpy import load  # noqa: E402

import distcheck  # noqa: E402
from paraminit import Client  # noqa: E402

N = 8  # seeds per side; 64 x 64 kernels: 32768 values a side


def _service(url, framework, layer, name):
    with Client(url) as c:
        return [load(c.init_safetensors({"seed": s, "framework": framework, "layers": [layer]}))[name]
                for s in range(N)]


def _keras(init):
    # `init` is a name or a function making a fresh initializer: a Keras initializer object
    # created without a seed fixes its seed when created, so one object would give the same
    # draws for every seed below.
    out = []
    for s in range(N):
        keras.utils.set_random_seed(300 + s)
        ki = init() if callable(init) and not isinstance(init, keras.initializers.Initializer) else init
        m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, kernel_initializer=ki)])
        out.append(np.asarray(m.weights[0].numpy()))
    return out


def _jax(init):
    return [np.asarray(init(k, (64, 64))) for k in jax.random.split(jax.random.key(7), N)]


def test_keras_default_dense_kernel(server_url):
    ours = _service(server_url, "keras", {"type": "dense", "input_dim": 64, "units": 64}, "dense/kernel")
    distcheck.check("dense/kernel", ours, _keras("glorot_uniform"))


def test_keras_uniform_string(server_url):
    ours = _service(server_url, "keras", {"type": "dense", "input_dim": 64, "units": 64,
                                          "kernel_initializer": "uniform"}, "dense/kernel")
    distcheck.check("dense/kernel", ours, _keras("uniform"))


def test_keras_normal_string(server_url):
    ours = _service(server_url, "keras", {"type": "dense", "input_dim": 64, "units": 64,
                                          "kernel_initializer": "normal"}, "dense/kernel")
    distcheck.check("dense/kernel", ours, _keras("normal"))


def test_keras_variance_scaling_normal(server_url):
    init = {"name": "variance_scaling", "scale": 2.0, "mode": "fan_in", "distribution": "normal"}
    ours = _service(server_url, "keras", {"type": "dense", "input_dim": 64, "units": 64,
                                          "kernel_initializer": init}, "dense/kernel")
    distcheck.check("dense/kernel", ours,
                    _keras(lambda: keras.initializers.VarianceScaling(2.0, "fan_in", "normal")))


def test_flax_uniform_string(server_url):
    ours = _service(server_url, "flax", {"type": "dense", "in_features": 64, "out_features": 64,
                                         "kernel_initializer": "uniform"}, "params/Dense_0/kernel")
    distcheck.check("params/Dense_0/kernel", ours, _jax(jax.nn.initializers.uniform()))


def test_flax_default_dense_kernel(server_url):
    ours = _service(server_url, "flax", {"type": "dense", "in_features": 64, "out_features": 64},
                    "params/Dense_0/kernel")
    distcheck.check("params/Dense_0/kernel", ours, _jax(jax.nn.initializers.lecun_normal()))
