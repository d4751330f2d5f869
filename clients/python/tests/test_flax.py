"""paraminit.flax against real Flax (linen and NNX) and JAX: trees, loading, forward, distributions.

The oracle is Flax itself: ``module.init`` (linen) and the NNX constructors, vmapped over many
keys, give the framework's own samples of every variable; the service's samples are the same
request under many seeds. Each variable is compared with ``distcheck.check`` (KS p > 1e-3,
constants exactly).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx
from safetensors.numpy import load

import distcheck
import paraminit.flax as pf
from paraminit import Client

ini = nn.initializers
CAP = 30  # seeds per side at most (one vmapped init, one request per seed)


class CNN(nn.Module):
    """A small CNN with pooling: Conv, BatchNorm, pooling, Dense (defaults and explicit inits)."""

    @nn.compact
    def __call__(self, x, train=True):
        x = nn.Conv(8, (3, 3))(x)
        x = nn.BatchNorm(use_running_average=not train)(x)
        x = nn.avg_pool(nn.relu(x), (2, 2), strides=(2, 2))
        x = nn.Conv(16, (3, 3), kernel_init=ini.delta_orthogonal(), bias_init=ini.constant(0.1))(x)
        x = nn.max_pool(nn.relu(x), (2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nn.Dense(64, kernel_init=ini.he_uniform(), bias_init=ini.normal(0.02))(x)
        return nn.Dense(10)(x)


class Text(nn.Module):
    """Embedding, the three RNN cells, LayerNorm, attention, RMSNorm, DenseGeneral, Dense."""

    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(50, 16)(tokens)
        x = nn.RNN(nn.LSTMCell(16))(x)
        x = nn.RNN(nn.GRUCell(16))(x)
        x = nn.RNN(nn.SimpleCell(16))(x)
        x = nn.LayerNorm()(x)
        x = nn.MultiHeadDotProductAttention(num_heads=4, kernel_init=ini.orthogonal())(x)
        x = nn.RMSNorm()(x)
        x = nn.DenseGeneral((2, 8), kernel_init=ini.glorot_normal(), bias_init=ini.uniform())(x)
        x = x.reshape(x.shape[:-2] + (16,))
        return nn.Dense(50, kernel_init=ini.variance_scaling(2.0, "fan_geo_avg", "normal"),
                        bias_init=ini.truncated_normal(0.1, lower=-1.0, upper=3.0))(x)


class Params(nn.Module):
    """Raw params with the initializer arguments Flax modules rarely use."""

    @nn.compact
    def __call__(self, x):
        w = self.param("w", ini.orthogonal(scale=2.0, column_axis=0), (4, 3, 5))
        e = self.param("e", ini.variance_scaling(1.0, "fan_in", "normal", in_axis=0, out_axis=0),
                       (3, 7))
        g = self.param("g", ini.lecun_uniform(batch_axis=0), (4, 6, 5))
        k = self.param("k", ini.xavier_uniform(in_axis=(0, 1), out_axis=-1), (3, 4, 8))
        return x * (w.sum() + e.sum() + g.sum() + k.sum())


def _models():
    img = jnp.ones((2, 12, 12, 3))
    tok = jnp.zeros((2, 6), jnp.int32)
    return {"cnn": (CNN(), (img,)), "text": (Text(), (tok,)), "params": (Params(), (jnp.ones(3),))}


MODELS = _models()


def _framework_samples(module, args, n):
    """Flax's own variables for n keys, as {path: [array per key]}."""
    keys = jax.random.split(jax.random.key(1234), n)
    out = jax.jit(jax.vmap(lambda k: module.init({"params": k, "dropout": k}, *args)))(keys)
    flat = jax.tree_util.tree_flatten_with_path(out)[0]
    return {"/".join(str(p.key) for p in path): list(np.asarray(a)) for path, a in flat}


def _service_samples(url, request, n):
    got = {}
    with Client(url) as c:
        for s in range(n):
            for name, arr in load(c.init_safetensors({**request, "seed": str(1000 + s)})).items():
                got.setdefault(name, []).append(arr)
    return got


def _shapes(tree):
    return jax.tree.map(lambda a: (tuple(a.shape), str(a.dtype)), tree)


@pytest.mark.parametrize("which", sorted(MODELS))
def test_linen_tree_equals_init_and_forward_runs(server_url, which):
    module, args = MODELS[which]
    got = pf.init(module, 5, *args, url=server_url)
    ref = module.init(jax.random.key(0), *args)
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(ref)
    assert _shapes(got) == _shapes(ref)
    out = module.apply(got, *args, mutable=["batch_stats"])[0]
    assert np.all(np.isfinite(np.asarray(out)))


@pytest.mark.parametrize("which", sorted(MODELS))
def test_linen_distributions_match_flax(server_url, which):
    module, args = MODELS[which]
    request = pf.request_of(module, 0, *args)
    numel = min(int(np.prod(t["shape"])) for t in request["tensors"])
    n = distcheck.seeds_for(numel, CAP)
    theirs = _framework_samples(module, args, n)
    ours = _service_samples(server_url, request, n)
    assert set(ours) == set(theirs)
    for name in sorted(theirs):
        distcheck.check(name, ours[name], theirs[name])


def test_init_is_the_request_answer_reshaped_as_flax_does(server_url):
    module, args = MODELS["params"]
    got = pf.init(module, 9, *args, url=server_url)["params"]
    with Client(server_url) as c:
        raw = load(c.init_safetensors(pf.request_of(module, 9, *args)))
    # orthogonal(column_axis=0) on (4, 3, 5): a (15, 4) orthogonal matrix, reshaped to (3, 5, 4)
    # and its last axis moved to the front, as jax.nn.initializers.orthogonal does.
    w = np.asarray(got["w"])
    assert raw["params/w"].shape == (15, 4)
    np.testing.assert_array_equal(w, np.moveaxis(raw["params/w"].reshape(3, 5, 4), -1, 0))
    cols = np.moveaxis(w, 0, -1).reshape(15, 4)
    np.testing.assert_allclose(cols.T @ cols, 4.0 * np.eye(4), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(got["e"]), raw["params/e"])


def test_attention_kernels_are_orthogonal_as_flax_flattens_them(server_url):
    module, args = MODELS["text"]
    att = pf.init(module, 3, *args, url=server_url)["params"]["MultiHeadDotProductAttention_0"]
    for proj in ("query", "key", "value", "out"):
        k = np.asarray(att[proj]["kernel"])
        flat = k.reshape(-1, k.shape[-1]) if proj == "out" else k.reshape(k.shape[0], -1)
        np.testing.assert_allclose(flat.T @ flat, np.eye(flat.shape[1]), atol=1e-5)


def test_ks_catches_5pct_std(server_url):
    module, args = MODELS["cnn"]
    request = pf.request_of(module, 0, *args)
    name = "params/Dense_0/kernel"  # 576 x 64 he_uniform, pooled over 6 seeds: 221184 values
    ours = _service_samples(server_url, {**request, "tensors": [
        t for t in request["tensors"] if t["name"] == name]}, 6)[name]
    theirs = _framework_samples(module, args, 6)[name]
    assert distcheck.check(name, ours, theirs) > distcheck.P_MIN
    with pytest.raises(AssertionError, match="KS p"):
        distcheck.check(name, [o * 1.05 for o in ours], theirs)
    with pytest.raises(AssertionError, match="KS p"):
        distcheck.check(name, [o * 0.95 for o in ours], theirs)


def test_what_flax_refuses_is_refused(server_url):
    bad = nn.MultiHeadDotProductAttention(num_heads=2, kernel_init=ini.delta_orthogonal())
    x = jnp.ones((1, 3, 8))
    with pytest.raises(ValueError, match="Delta orthogonal"):
        bad.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="Delta orthogonal"):
        pf.init(bad, 1, x, url=server_url)


def test_unknown_random_initializer_is_named(server_url):
    class Laplace(nn.Module):
        @nn.compact
        def __call__(self, x):
            return x * self.param("w", lambda k, s: jax.random.laplace(k, s), (3,))

    with pytest.raises(NotImplementedError, match="params/w"):
        pf.init(Laplace(), 1, jnp.ones(3), url=server_url)


def test_bfloat16_params_and_partitioned_boxes(server_url):
    class Mixed(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Dense(8, param_dtype=jnp.bfloat16, dtype=jnp.float32)(x)
            init = nn.with_partitioning(ini.lecun_normal(), (None, "model"))
            return nn.Dense(4, kernel_init=init)(x)

    x = jnp.ones((2, 3))
    got = pf.init(Mixed(), 2, x, url=server_url)
    ref = Mixed().init(jax.random.key(0), x)
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(ref)
    assert _shapes(got) == _shapes(ref)
    assert isinstance(got["params"]["Dense_1"]["kernel"], nn.Partitioned)
    assert got["params"]["Dense_0"]["kernel"].dtype == jnp.bfloat16
    assert Mixed().apply(got, x).shape == (2, 4)


# --- NNX ----------------------------------------------------------------------------------------


class Net(nnx.Module):
    def __init__(self, rngs):
        self.embed = nnx.Embed(40, 16, rngs=rngs)
        self.conv = nnx.Conv(16, 8, kernel_size=(3,), rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.ln = nnx.LayerNorm(8, rngs=rngs)
        self.rms = nnx.RMSNorm(8, rngs=rngs)
        self.lstm = nnx.LSTMCell(8, 12, rngs=rngs)
        self.gru = nnx.GRUCell(12, 12, rngs=rngs)
        self.att = nnx.MultiHeadAttention(num_heads=3, in_features=12, decode=False, rngs=rngs)
        self.head = nnx.Linear(12, 40, kernel_init=nnx.initializers.orthogonal(),
                               bias_init=nnx.initializers.normal(0.5), rngs=rngs)

    def __call__(self, tokens):
        x = self.rms(self.ln(self.bn(self.conv(self.embed(tokens)), use_running_average=False)))
        carry = self.lstm.initialize_carry(x[:, 0].shape, rngs=nnx.Rngs(0))  # zeros
        hs = []
        for t in range(x.shape[1]):
            carry, h = self.lstm(carry, x[:, t])
            hs.append(h)
        h = jnp.stack(hs, axis=1)
        g = self.gru.initialize_carry(h[:, 0].shape, rngs=nnx.Rngs(0))
        g, _ = self.gru(g, h[:, -1])
        return self.head(self.att(h) + g[:, None])


def _net():
    return Net(nnx.Rngs(0))


def test_nnx_state_equals_and_forward_runs(server_url):
    got = pf.init(_net, 4, url=server_url)
    ref = _net()
    assert isinstance(got, Net)
    assert _shapes(nnx.to_pure_dict(nnx.state(got))) == _shapes(nnx.to_pure_dict(nnx.state(ref)))
    out = got(jnp.zeros((2, 5), jnp.int32))
    assert out.shape == (2, 5, 40) and np.all(np.isfinite(np.asarray(out)))


def test_nnx_distributions_match_flax(server_url):
    request = pf.request_of(_net, 0)
    n = distcheck.seeds_for(min(int(np.prod(t["shape"])) for t in request["tensors"]), CAP)
    keys = jax.random.split(jax.random.key(99), n)
    # One eager construction per key: a jitted, vmapped NNX constructor has been seen to hang
    # in np.asarray on the 2-core CI machine (an XLA CPU wait that never returned).
    theirs = {}
    for k in keys:
        state = nnx.to_pure_dict(nnx.state(Net(nnx.Rngs(params=k))))
        for path, a in jax.tree_util.tree_flatten_with_path(state)[0]:
            theirs.setdefault("/".join(str(p.key) for p in path), []).append(np.asarray(a))
    ours = _service_samples(server_url, request, n)
    assert set(ours) == set(theirs)
    for name in sorted(theirs):
        distcheck.check(name, ours[name], theirs[name])


def test_nnx_instance_is_refused_with_the_fix():
    with pytest.raises(TypeError, match="lambda"):
        pf.init(_net(), 1)


def test_requests_say_what_flax_means():
    by = {t["name"]: t for t in pf.request_of(*(lambda m, a: (m, 0, *a))(*MODELS["text"]))["tensors"]}
    # jax.nn.initializers.uniform() is U(0, 0.01); Embed's default is variance_scaling(1,
    # fan_in, "normal", out_axis=0): untruncated, fan_in = features.
    assert by["params/DenseGeneral_0/bias"]["init"] == {"name": "jax_uniform", "scale": 0.01}
    emb = by["params/Embed_0/embedding"]
    assert emb["init"] == {"name": "variance_scaling", "scale": 1.0, "mode": "fan_in",
                           "distribution": "untruncated_normal"}
    assert emb["fan_in"] == 16
    # Dense_0 after DenseGeneral: variance_scaling(2, fan_geo_avg, "normal") = untruncated.
    assert by["params/Dense_0/kernel"]["init"]["distribution"] == "untruncated_normal"
    assert by["params/Dense_0/bias"]["init"] == {"name": "jax_truncated_normal", "stddev": 0.1,
                                                 "lower": -1.0, "upper": 3.0}
