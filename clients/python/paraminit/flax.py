"""Flax (linen and NNX) modules as they are: every variable drawn by the service, none by JAX.

The module is traced abstractly (``jax.eval_shape`` / ``nnx.eval_shape``: no value is computed),
and while it is traced every call of a JAX/Flax initializer is recorded: which initializer
(``jax.nn.initializers.variance_scaling`` and everything built on it, ``orthogonal``,
``delta_orthogonal``, ``uniform``, ``normal``, ``truncated_normal``, ``constant``, ``zeros``,
``ones``, and the ``jnp.zeros``/``jnp.ones``/``jnp.full`` that norm statistics start from), with
its parameters, on which shape, for which variable. Flax's initializers are closures made at
import time (``default_kernel_init = lecun_normal()``), so they cannot be swapped out; they are
recognised by their code object through a profile hook, and their parameters are read from the
closure, as the function itself reads them.

Each variable becomes one raw tensor of the request (``framework: flax``), named by its path,
with the service initializer that means exactly what the JAX one does and the fans JAX would
compute (``jax._src.nn.initializers._compute_fans`` on the shape the initializer was called
with, so ``in_axis``/``out_axis``/``batch_axis`` and the flattened kernels of ``DenseGeneral``
and attention are honoured). Names that differ in meaning between frameworks are always sent in
their explicit, framework-independent form (``jax_uniform``, ``untruncated_normal``, …).
"""

from __future__ import annotations

import math
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from ._client import Client

_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16", "float64": "float64"}

# One recording at a time: the profile hook and the patched Flax methods are process-wide.
_LOCK = threading.Lock()


@dataclass
class _Leaf:
    """One recorded initializer call: what it is, its parameters, the shape it was called on."""

    kind: str
    params: dict
    shape: tuple
    dtype: Any
    out: Any = None


@dataclass
class _Var:
    """One variable of the module and the initializer call that made it."""

    path: tuple
    shape: tuple
    dtype: Any
    leaf: Optional[_Leaf]
    why: str = ""


def _codes() -> dict:
    """Code objects of the initializers recognised, mapped to their kind."""
    import jax
    import jax.numpy as jnp

    ini = jax.nn.initializers
    table = {
        ini.zeros.__code__: "zeros",
        ini.ones.__code__: "ones",
        ini.constant(0.0).__code__: "constant",
        ini.uniform().__code__: "uniform",
        ini.normal().__code__: "normal",
        ini.truncated_normal().__code__: "truncated_normal",
        ini.variance_scaling(1.0, "fan_in", "normal").__code__: "variance_scaling",
        ini.orthogonal().__code__: "orthogonal",
        ini.delta_orthogonal().__code__: "delta_orthogonal",
    }
    for fn, kind in ((jnp.zeros, "jnp_zeros"), (jnp.ones, "jnp_ones"), (jnp.full, "jnp_full")):
        code = getattr(fn, "__code__", None)
        if code is not None:
            table[code] = kind
    return table


_PARAM_NAMES = {
    "constant": ("value",),
    "uniform": ("scale",),
    "normal": ("stddev",),
    "truncated_normal": ("stddev", "lower", "upper"),
    "variance_scaling": ("scale", "mode", "distribution", "in_axis", "out_axis", "batch_axis"),
    "orthogonal": ("scale", "column_axis"),
    "delta_orthogonal": ("scale", "column_axis"),
    "jnp_full": ("fill_value",),
}


class _Recorder:
    """A profile hook that records the outermost call of every recognised initializer."""

    def __init__(self):
        self.codes = _codes()
        self.events: list[_Leaf] = []
        self._open: list = []  # (frame, leaf) of recognised calls not yet returned
        self._prev = None

    def _hook(self, frame, event, arg):
        if event == "call":
            kind = self.codes.get(frame.f_code)
            if kind is None:
                return
            if self._open:  # nested (orthogonal inside delta_orthogonal, jnp.zeros inside …)
                self._open.append((frame, None))
                return
            loc = frame.f_locals
            params = {k: loc[k] for k in _PARAM_NAMES.get(kind, ()) if k in loc}
            shape = loc.get("shape", ())
            try:
                shape = tuple(int(d) for d in (shape if isinstance(shape, (tuple, list)) else (shape,)))
            except TypeError:
                shape = None
            leaf = _Leaf(kind, params, shape, loc.get("dtype"))
            self._open.append((frame, leaf))
        elif event == "return" and self._open and self._open[-1][0] is frame:
            _, leaf = self._open.pop()
            if leaf is not None:
                leaf.out = arg
                self.events.append(leaf)

    def __enter__(self):
        self._prev = sys.getprofile()
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc):
        sys.setprofile(self._prev)

    def take(self) -> list:
        out, self.events = self.events, []
        return out


def _size(shape) -> int:
    return math.prod(shape) if shape else 1


def _pick(events: list, value: Any, shape: tuple) -> tuple[Optional[_Leaf], str]:
    """The recorded call a new variable's value came from."""
    for leaf in events:
        if leaf.out is value:
            return leaf, ""
    fits = [e for e in events if e.shape is not None and _size(e.shape) == _size(shape)]
    if len(fits) == 1:
        return fits[0], ""  # reshaped (DenseGeneral/attention flatten their kernels)
    if not events:
        return None, "its initializer is not one paraminit knows (a JAX/Flax initializer)"
    return None, f"it was made from {len(events)} initializer calls that cannot be told apart"


# --- from a recorded call to a service tensor ---------------------------------------------------


def _dtype_name(dtype) -> str:
    import jax.numpy as jnp

    name = jnp.dtype(dtype if dtype is not None else jnp.float32).name
    if name not in _DTYPES:
        raise NotImplementedError(f"dtype {name} is not one the service produces")
    return _DTYPES[name]


def _fans(shape, in_axis, out_axis, batch_axis):
    from jax._src.nn.initializers import _compute_fans  # the very rule variance_scaling uses

    return _compute_fans(shape, in_axis, out_axis, batch_axis)


def _scalar(v, what):
    a = np.asarray(v)
    if a.shape != () or not np.isrealobj(a):
        raise NotImplementedError(f"{what} must be a real scalar, got {a.shape} {a.dtype}")
    return float(a)


def _tensor(name: str, var: _Var) -> tuple[dict, Callable[[np.ndarray], np.ndarray]]:
    """The request's raw tensor for one variable, and how its answer becomes the variable."""
    leaf = var.leaf
    shape = tuple(leaf.shape)
    entry: dict = {"name": name, "dtype": _dtype_name(var.dtype)}
    post: Optional[Callable] = None  # how the answer is rearranged, where it must be
    k, p = leaf.kind, leaf.params
    if k in ("zeros", "jnp_zeros"):
        init = {"name": "zeros"}
    elif k in ("ones", "jnp_ones"):
        init = {"name": "ones"}
    elif k in ("constant", "jnp_full"):
        init = {"name": "constant", "value": _scalar(p.get("value", p.get("fill_value")), "constant")}
    elif k == "uniform":  # jax: U(0, scale)
        init = {"name": "jax_uniform", "scale": _scalar(p["scale"], "scale")}
    elif k == "normal":
        init = {"name": "jax_normal", "stddev": _scalar(p["stddev"], "stddev")}
    elif k == "truncated_normal":
        init = {"name": "jax_truncated_normal", "stddev": _scalar(p["stddev"], "stddev"),
                "lower": _scalar(p["lower"], "lower"), "upper": _scalar(p["upper"], "upper")}
    elif k == "variance_scaling":
        init, fans = _variance_scaling(p, shape)
        entry.update(fans)
    elif k == "orthogonal":
        col = int(p["column_axis"]) % len(shape)
        rest = tuple(d for i, d in enumerate(shape) if i != col)
        # jax.nn.initializers.orthogonal: an orthogonal (prod(rest), shape[col]) matrix,
        # reshaped to rest + (col,) and the last axis moved to `column_axis`. Sent as that 2-D
        # matrix so the orthogonality is JAX's, then reshaped here the way JAX reshapes it.
        init = {"name": "orthogonal", "gain": _scalar(p["scale"], "scale")}
        shape = (_size(rest), shape[col])

        def unflatten(a, rest=rest, col=col):
            return np.moveaxis(a.reshape(rest + (a.shape[-1],)), -1, col)

        post = unflatten
    elif k == "delta_orthogonal":
        if int(p["column_axis"]) % len(shape) != len(shape) - 1:
            raise NotImplementedError("delta_orthogonal with column_axis other than the last axis")
        init = {"name": "delta_orthogonal", "scale": _scalar(p["scale"], "scale")}
    else:  # pragma: no cover - every kind of _codes() is handled above
        raise NotImplementedError(k)
    entry["shape"] = list(shape)
    entry["init"] = init
    final = tuple(var.shape)

    def finish(a, post=post, final=final):
        return np.asarray(post(a) if post is not None else a).reshape(final)

    return entry, finish


def _variance_scaling(p: dict, shape: tuple) -> tuple[dict, dict]:
    dist = p["distribution"]
    if dist not in ("truncated_normal", "normal", "uniform"):
        raise NotImplementedError(f"variance_scaling distribution {dist!r}")
    fan_in, fan_out = _fans(shape, p["in_axis"], p["out_axis"], p["batch_axis"])
    scale = _scalar(p["scale"], "scale")
    mode = p["mode"]
    if float(fan_in).is_integer() and float(fan_out).is_integer() and fan_in >= 1 and fan_out >= 1:
        # JAX's "normal" is untruncated; say so in the framework-independent spelling.
        return ({"name": "variance_scaling", "scale": scale, "mode": mode,
                 "distribution": "untruncated_normal" if dist == "normal" else dist},
                {"fan_in": int(fan_in), "fan_out": int(fan_out)})
    # Fractional fans (in_axis == out_axis, e.g. Embed's out_axis=0): the service takes whole
    # fans only, so send the distribution JAX ends up with, its constants computed as JAX does.
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
         "fan_geo_avg": (fan_in * fan_out) ** 0.5}[mode]
    var = scale / n
    if dist == "truncated_normal":
        return {"name": "jax_truncated_normal", "stddev": math.sqrt(var) / 0.87962566103423978,
                "lower": -2.0, "upper": 2.0}, {}
    if dist == "normal":
        return {"name": "jax_normal", "stddev": math.sqrt(var)}, {}
    bound = math.sqrt(3 * var)
    return {"name": "random_uniform", "minval": -bound, "maxval": bound}, {}


def _fetch(seed, named: list[tuple[str, _Var]], url, client) -> dict:
    """One request for all variables; returns {name: numpy array in the variable's shape}."""
    entries, finish = [], {}
    for name, var in named:
        if var.leaf is None:
            raise NotImplementedError(f"variable {name}: {var.why}")
        entry, fin = _tensor(name, var)
        entries.append(entry)
        finish[name] = (fin, tuple(entry["shape"]))
    request = {"seed": str(int(seed)), "framework": "flax", "tensors": entries}
    own = client is None
    client = client or Client(url)
    got: dict = {}
    try:
        def sink(info):
            arr = np.empty(info.shape, dtype=info.numpy_dtype())
            got[info.name] = arr
            return memoryview(arr.reshape(-1).view(np.uint8))

        if entries:
            client.stream(request, sink)
    finally:
        if own:
            client.close()
    return {name: finish[name][0](got[name]) for name in finish}


def request_of(target, seed, *example_args, rngs=None, method=None, **example_kwargs) -> dict:
    """The request :func:`init` would send (for inspection or ``curl``)."""
    named = _record(target, example_args, example_kwargs, rngs, method)[0]
    return {"seed": str(int(seed)), "framework": "flax",
            "tensors": [_tensor(n, v)[0] for n, v in named]}


# --- linen ------------------------------------------------------------------------------------


def _record_linen(module, args, kwargs, rngs, method):
    import jax
    from flax.core import meta
    from flax.core import scope as core_scope

    rec = _Recorder()
    found: dict = {}
    orig_param, orig_variable = core_scope.Scope.param, core_scope.Scope.variable

    def in_context(col, scope, name, call):
        exists = scope.has_variable(col, name)
        rec.take()
        value = call()
        if not exists:
            events = rec.take()
            raw = scope.get_variable(col, name)
            leaf_value = raw.unbox() if isinstance(raw, meta.AxisMetadata) else raw
            shape = tuple(leaf_value.shape)
            leaf, why = _pick(events, leaf_value, shape)
            found[(col,) + tuple(scope.path) + (name,)] = _Var(
                (col,) + tuple(scope.path) + (name,), shape, leaf_value.dtype, leaf, why)
        return value

    def param(self, name, init_fn, *a, **kw):
        return in_context("params", self, name, lambda: orig_param(self, name, init_fn, *a, **kw))

    def variable(self, col, name, init_fn=None, *a, **kw):
        return in_context(col, self, name,
                          lambda: orig_variable(self, col, name, init_fn, *a, **kw))

    if rngs is None:
        rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    init = module.init if method is None else (lambda r, *a, **k: module.init(r, *a, method=method, **k))
    with _LOCK:
        core_scope.Scope.param, core_scope.Scope.variable = param, variable
        try:
            with rec:
                abstract = jax.eval_shape(lambda *a, **k: init(rngs, *a, **k), *args, **kwargs)
        finally:
            core_scope.Scope.param, core_scope.Scope.variable = orig_param, orig_variable
    return found, abstract


def _path_keys(path) -> tuple:
    keys = []
    for k in path:
        if hasattr(k, "key"):
            keys.append(str(k.key))
        elif hasattr(k, "name"):
            keys.append(str(k.name))
        elif hasattr(k, "idx"):
            keys.append(str(k.idx))
    return tuple(keys)


def _linen_named(found, abstract):
    import jax

    named, seen = [], set()
    for path, leaf in jax.tree_util.tree_flatten_with_path(abstract)[0]:
        keys = _path_keys(path)
        var = found.get(keys)
        if var is None and keys and keys[-1] == "value":  # boxed (nn.Partitioned) leaves
            var = found.get(keys[:-1])
        if var is None:
            raise NotImplementedError(f"variable {'/'.join(keys)} was not created by param/variable")
        if var.path in seen:
            continue
        seen.add(var.path)
        named.append(("/".join(var.path), var))
    return named


def _fill_linen(abstract, values: dict, found):
    import jax
    import jax.numpy as jnp

    def leaf(path, x):
        keys = _path_keys(path)
        var = found.get(keys) or found.get(keys[:-1])
        return jnp.asarray(values["/".join(var.path)], dtype=x.dtype)

    return jax.tree_util.tree_map_with_path(leaf, abstract)


# --- NNX --------------------------------------------------------------------------------------


def _record_nnx(factory):
    from flax import nnx
    from flax.nnx import variablelib

    rec = _Recorder()
    made: dict = {}
    orig_init = variablelib.Variable.__init__

    def var_init(self, value, *a, **kw):
        events = rec.take()
        orig_init(self, value, *a, **kw)
        raw = getattr(value, "raw_value", value)  # nnx.with_partitioning metadata boxes
        shape = tuple(getattr(raw, "shape", ()))
        leaf, why = _pick(events, raw, shape)
        made[id(self)] = (leaf, why)

    found: dict = {}

    def build():
        m = factory()
        for path, node in nnx.graph.iter_graph(m):
            if isinstance(node, variablelib.Variable) and id(node) in made:
                leaf, why = made[id(node)]
                value = node.get_value()
                keys = tuple(str(k) for k in path)
                found[keys] = _Var(keys, tuple(value.shape), value.dtype, leaf, why)
        return m

    with _LOCK:
        variablelib.Variable.__init__ = var_init
        try:
            with rec:
                abstract = nnx.eval_shape(build)
        finally:
            variablelib.Variable.__init__ = orig_init
    return found, abstract


def _nnx_named(found, abstract):
    from flax import nnx
    from flax.nnx import variablelib

    named = []
    for path, node in nnx.graph.iter_graph(abstract):
        if isinstance(node, variablelib.Variable):
            keys = tuple(str(k) for k in path)
            var = found.get(keys)
            if var is None:
                raise NotImplementedError(f"variable {'/'.join(keys)}: not created while recorded")
            if isinstance(node, nnx.RngState):
                raise NotImplementedError(
                    f"variable {'/'.join(keys)} is a random key (nnx.Rngs held by the module); "
                    "the service makes weights, not keys: build the module without stored rngs")
            named.append(("/".join(keys), var))
    return named


def _fill_nnx(abstract, values: dict):
    import jax.numpy as jnp
    from flax import nnx
    from flax.nnx import variablelib

    for path, node in nnx.graph.iter_graph(abstract):
        if isinstance(node, variablelib.Variable):
            name = "/".join(str(k) for k in path)
            node.set_value(jnp.asarray(values[name], dtype=node.get_value().dtype))
    return abstract


# --- the entry point --------------------------------------------------------------------------


def _is_linen(target) -> bool:
    from flax import linen

    return isinstance(target, linen.Module)


def _record(target, args, kwargs, rngs, method):
    if _is_linen(target):
        found, abstract = _record_linen(target, args, kwargs, rngs, method)
        return _linen_named(found, abstract), ("linen", abstract, found)
    from flax import nnx

    if isinstance(target, nnx.Module):
        raise TypeError(
            "an nnx.Module instance has already drawn its weights; pass the function that builds "
            "it instead, e.g. paraminit.flax.init(lambda: Model(..., rngs=nnx.Rngs(0)), seed)")
    if not callable(target):
        raise TypeError(f"expected a flax.linen Module or a function building an nnx.Module, "
                        f"got {type(target).__name__}")
    if args or kwargs:
        raise TypeError("example arguments are for linen modules; an NNX factory takes none")
    found, abstract = _record_nnx(target)
    return _nnx_named(found, abstract), ("nnx", abstract, found)


def init(target, seed: int, *example_args, url: Optional[str] = None,
         client: Optional[Client] = None, rngs=None, method=None, **example_kwargs):
    """Initialize a Flax model with weights from the service.

    - ``target`` a ``flax.linen.Module``: returns the variables ``target.init(rngs,
      *example_args, **example_kwargs)`` would return (same tree, names, shapes and dtypes;
      ``params``, ``batch_stats``, …), each leaf drawn by the service with the initializer the
      module uses. ``rngs`` and ``method`` are passed on to the abstract ``init``.
    - ``target`` a function that builds an ``nnx.Module`` (``lambda: Model(..., rngs=nnx.Rngs(0))``):
      builds it abstractly (``nnx.eval_shape``) and returns the module with every variable
      (``nnx.state(model)`` paths) set from the service.

    ``seed`` decides the values (the rng keys given to Flax do not). ``url`` defaults to
    ``$PARAMINIT_URL`` or ``http://localhost:8080``.
    """
    named, (kind, abstract, found) = _record(target, example_args, example_kwargs, rngs, method)
    values = _fetch(seed, named, url, client)
    if kind == "linen":
        return _fill_linen(abstract, values, found)
    return _fill_nnx(abstract, values)
