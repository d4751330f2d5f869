"""Keras 3 models as they are: every weight drawn by the service, assigned by its path.

Two ways to describe a model to the service, both giving tensors named exactly as the
``model.weights`` paths of *this* model (any session, Sequential or Functional, nested):

- ``keras_model`` (the default when the service has it): the request carries
  ``json.loads(model.to_json())`` and the service builds the weights from the architecture.
- ``tensors`` (the fallback, and ``via="tensors"``): the model is rebuilt from its own JSON in a
  ``keras.StatelessScope`` (no value is computed), and every variable's Keras initializer is
  read off that rebuild and called with the shape Keras calls it with. Each call of a Keras
  initializer class (``Zeros``, ``Ones``, ``Constant``, ``RandomUniform``, ``RandomNormal``,
  ``TruncatedNormal``, ``VarianceScaling`` and its ``Glorot*``/``He*``/``Lecun*`` subclasses,
  ``Orthogonal``, ``Identity``) becomes one raw tensor with the service initializer that means
  what the Keras class does and the fans Keras computes (``compute_fans`` with the
  ``input_axes``/``output_axes`` that ``EinsumDense`` and ``MultiHeadAttention`` set). A
  variable made of several calls (LSTM's ``unit_forget_bias``: ``[b(units), ones(units),
  b(2·units)]``) is assembled from its pieces exactly as Keras concatenates them: the pieces
  are first called with index markers to learn where each of their elements lands.

Initializer seeds in the model's configs are ignored: the request's ``seed`` decides.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ._client import Client, ParaminitError

_LOCK = threading.Lock()
_DTYPES = ("float32", "float16", "bfloat16", "float64")


@dataclass
class _Call:
    """One call of a Keras initializer: the object, the shape, the dtype."""

    init: Any
    shape: tuple
    dtype: str
    first: int = 0  # its first element's marker (1-based), for composites


@dataclass
class _Weight:
    """One model weight, the initializer calls it is made of, and where their elements go."""

    path: str
    shape: tuple
    dtype: str
    calls: list
    gather: Optional[np.ndarray] = None  # flat index into the concatenated calls, or None


def _keras():
    import keras

    return keras


def _classes():
    from keras.src.initializers import constant_initializers as c
    from keras.src.initializers import random_initializers as r

    return [c.Zeros, c.Ones, c.Constant, c.Identity, r.RandomUniform, r.RandomNormal,
            r.TruncatedNormal, r.VarianceScaling, r.Orthogonal]


def _is_known(init) -> bool:
    return type(init) in _classes() or any(
        isinstance(init, k) and type(init).__call__ is k.__call__ for k in _classes())


@contextlib.contextmanager
def _markers(calls: list):
    """While active, every known Keras initializer returns index markers and records its call."""
    from keras import ops

    saved = {k: k.__dict__["__call__"] for k in _classes()}
    state = {"next": 1}

    def make(orig):
        def call(self, shape, dtype=None):
            shape = tuple(int(d) for d in shape)
            n = math.prod(shape)
            first = state["next"]
            state["next"] += n
            calls.append(_Call(self, shape, str(dtype or "float32"), first))
            marks = np.arange(first, first + n, dtype=np.float64).reshape(shape)
            return ops.convert_to_tensor(marks, dtype="float32")
        return call

    for k, orig in saved.items():
        setattr(k, "__call__", make(orig))
    try:
        yield
    finally:
        for k, orig in saved.items():
            setattr(k, "__call__", orig)


def _weights_of(model, custom_objects=None) -> list:
    """Every weight of ``model`` with the Keras initializer calls that make it."""
    keras = _keras()
    from keras.src.backend.common import global_state

    weights = list(model.weights)
    paths = [w.path for w in weights]
    if len(set(paths)) != len(paths):
        raise ValueError("the model has weights with equal paths; they cannot be told apart")
    with _LOCK:
        scope = keras.StatelessScope(initialize_variables=False)
        with scope:
            twin = keras.models.model_from_json(model.to_json(), custom_objects=custom_objects)
            made = list(twin.weights)
            out = []
            if len(made) != len(weights):
                raise ValueError(f"rebuilding the model from to_json() gave {len(made)} weights, "
                                 f"the model has {len(weights)}")
            for w, t in zip(weights, made):
                shape = tuple(int(d) for d in w.shape)
                if tuple(t.shape) != shape:
                    raise ValueError(f"{w.path}: the rebuilt model has shape {tuple(t.shape)}")
                init = t._initializer
                out.append(_record(w.path, shape, str(w.dtype), init))
        # The rebuild's variables were never initialized; drop them from Keras' list of
        # variables to initialize later, so nothing is ever computed for them.
        pending = global_state.get_global_attribute("uninitialized_variables") or []
        mine = {id(t) for t in made}
        global_state.set_global_attribute(
            "uninitialized_variables", [v for v in pending if id(v) not in mine])
    return out


def _record(path: str, shape: tuple, dtype: str, init) -> _Weight:
    if init is None:
        raise NotImplementedError(f"{path}: the rebuilt variable has no initializer")
    if _is_known(init):
        return _Weight(path, shape, dtype, [_Call(init, shape, dtype, 1)])
    calls: list = []
    with _markers(calls):
        marks = np.asarray(init(shape, dtype=dtype), dtype=np.float64).reshape(-1)
    total = sum(math.prod(c.shape) for c in calls)
    if not calls:
        raise NotImplementedError(
            f"{path}: its initializer ({type(init).__name__}) calls no Keras initializer "
            "paraminit knows")
    if total >= 1 << 24:
        raise NotImplementedError(f"{path}: a composite initializer of {total} elements")
    idx = marks.astype(np.int64)
    if (marks.size != math.prod(shape) or not np.array_equal(idx, marks)
            or idx.min() < 1 or idx.max() > total):
        raise NotImplementedError(
            f"{path}: its initializer ({type(init).__name__}) computes with the values of the "
            "Keras initializers it calls, rather than placing them; paraminit cannot reproduce that")
    return _Weight(path, shape, dtype, calls, idx - 1)


# --- from a Keras initializer call to a service tensor ------------------------------------------


def _f(v, what) -> float:
    a = np.asarray(v)
    if a.shape != ():
        raise NotImplementedError(f"{what} must be a scalar, got shape {a.shape}")
    return float(a)


def _tensor(name: str, call: _Call):
    """The raw tensor for one initializer call, and how its answer becomes the call's value."""
    from keras.src.initializers import constant_initializers as c
    from keras.src.initializers import random_initializers as r
    from keras.src.initializers.random_initializers import compute_fans

    i, shape = call.init, call.shape
    if call.dtype not in _DTYPES:
        raise NotImplementedError(f"{name}: dtype {call.dtype} is not one the service produces")
    entry: dict = {"name": name, "dtype": call.dtype}
    send = shape
    if isinstance(i, c.Zeros):
        init = {"name": "zeros"}
    elif isinstance(i, c.Ones):
        init = {"name": "ones"}
    elif isinstance(i, c.Constant):
        init = {"name": "constant", "value": _f(i.value, f"{name}: Constant value")}
    elif isinstance(i, c.Identity):
        if len(shape) != 2:
            raise ValueError(f"{name}: Identity needs a 2-D shape, got {shape} (Keras refuses it)")
        init = {"name": "identity", "gain": _f(i.gain, "gain")}
    elif isinstance(i, r.RandomUniform):
        init = {"name": "random_uniform", "minval": _f(i.minval, "minval"),
                "maxval": _f(i.maxval, "maxval")}
    elif isinstance(i, r.RandomNormal):
        init = {"name": "random_normal", "mean": _f(i.mean, "mean"),
                "stddev": _f(i.stddev, "stddev")}
    elif isinstance(i, r.TruncatedNormal):
        init = {"name": "keras_truncated_normal", "mean": _f(i.mean, "mean"),
                "stddev": _f(i.stddev, "stddev")}
    elif isinstance(i, r.VarianceScaling):
        fan_in, fan_out = compute_fans(
            shape, input_axes=getattr(i, "input_axes", None), output_axes=getattr(i, "output_axes", None))
        # Keras turns "normal" into "truncated_normal" in VarianceScaling.__init__; say which
        # in the framework-independent spelling.
        dist = {"normal": "truncated_normal"}.get(i.distribution, i.distribution)
        if i.mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"{name}: VarianceScaling mode {i.mode!r} (Keras refuses it)")
        init = {"name": "variance_scaling", "scale": float(i.scale), "mode": i.mode,
                "distribution": dist}
        # Keras divides by max(1, fan); the service does the same with these fans.
        entry["fan_in"], entry["fan_out"] = max(int(fan_in), 1), max(int(fan_out), 1)
    elif isinstance(i, r.Orthogonal):
        if len(shape) < 2:
            raise ValueError(f"{name}: Orthogonal needs at least 2 dimensions (Keras refuses {shape})")
        # Keras flattens to (prod(shape[:-1]), shape[-1]), orthogonalizes that matrix and
        # reshapes it back: send the matrix, reshape here.
        send = (math.prod(shape[:-1]), shape[-1])
        init = {"name": "orthogonal", "gain": _f(i.gain, "gain")}
    else:
        raise NotImplementedError(f"{name}: Keras initializer {type(i).__name__}")
    entry["shape"] = list(send)
    entry["init"] = init
    return entry


def _tensors_request(weights: list, seed) -> tuple[dict, dict]:
    entries, parts = [], {}
    for w in weights:
        names = [w.path] if len(w.calls) == 1 and w.gather is None else [
            f"{w.path}#{k}" for k in range(len(w.calls))]
        parts[w.path] = names
        for name, call in zip(names, w.calls):
            entries.append(_tensor(name, call))
    return {"seed": str(int(seed)), "framework": "keras", "tensors": entries}, parts


def _keras_model_request(model, seed) -> dict:
    return {"seed": str(int(seed)), "framework": "keras", "keras_model": json.loads(model.to_json())}


def request_of(model, seed: int, *, via: str = "tensors", custom_objects=None) -> dict:
    """The request :func:`initialize` sends: ``via="tensors"`` or ``via="keras_model"``."""
    if via == "keras_model":
        return _keras_model_request(model, seed)
    if via != "tensors":
        raise ValueError(f"via must be 'keras_model' or 'tensors', got {via!r}")
    return _tensors_request(_weights_of(model, custom_objects), seed)[0]


def _download(client: Client, request: dict) -> dict:
    got: dict = {}

    def sink(info):
        arr = np.empty(info.shape, dtype=info.numpy_dtype())
        got[info.name] = arr
        return memoryview(arr.reshape(-1).view(np.uint8))

    client.stream(request, sink)
    return got


def _unsupported(e: ParaminitError) -> bool:
    return e.status == 422 and e.code == "unknown_field" and (e.path or "") == "keras_model"


def _refused_architecture(e: ParaminitError) -> bool:
    path = e.path or ""
    return e.status == 422 and (path == "keras_model" or path.startswith(("keras_model.", "keras_model[")))


def values_of(model, seed: int, *, url: Optional[str] = None, client: Optional[Client] = None,
              via: str = "auto", custom_objects=None) -> dict:
    """``{weight path: numpy array}`` for every weight of ``model``, drawn by the service.

    ``via``: ``"keras_model"`` (post ``model.to_json()``), ``"tensors"`` (raw tensors recorded
    from the model's Keras initializers), or ``"auto"``: ``keras_model`` where the service
    supports it, else ``tensors``. ``custom_objects`` is passed to
    ``keras.models.model_from_json`` for the ``tensors`` rebuild (custom layers not registered
    with ``keras.saving.register_keras_serializable``).
    """
    if via not in ("auto", "keras_model", "tensors"):
        raise ValueError(f"via must be 'auto', 'keras_model' or 'tensors', got {via!r}")
    own = client is None
    client = client or Client(url)
    try:
        if via in ("auto", "keras_model"):
            try:
                got = _download(client, _keras_model_request(model, seed))
                return _check_names(model, got)
            except ParaminitError as e:
                # "auto" falls back where the service lacks the field or refuses something in
                # the architecture (a layer it does not know): the recorded initializers cover
                # any layer built from Keras initializer classes.
                if via == "keras_model" or not _refused_architecture(e):
                    raise
        return _values(_recording(model, custom_objects), seed, client)
    finally:
        if own:
            client.close()


def _recording(model, custom_objects=None) -> tuple:
    """What the ``tensors`` way records once per model: the weights and their calls."""
    return (_weights_of(model, custom_objects),)


def _values(recording: tuple, seed, client: Client) -> dict:
    (weights,) = recording
    request, parts = _tensors_request(weights, seed)
    got = _download(client, request)
    out = {}
    for w in weights:
        names = parts[w.path]
        if w.gather is None:
            out[w.path] = got[names[0]].reshape(w.shape)
        else:
            flat = np.concatenate([got[n].reshape(-1) for n in names])
            out[w.path] = flat[w.gather].reshape(w.shape)
    return out


def _check_names(model, got: dict) -> dict:
    want = {w.path: tuple(int(d) for d in w.shape) for w in model.weights}
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing or extra:
        raise ParaminitError(
            f"the service's tensors do not match model.weights: missing {missing[:5]}, "
            f"unexpected {extra[:5]}")
    for path, shape in want.items():
        if tuple(got[path].shape) != shape:
            raise ParaminitError(f"{path}: the service gave shape {got[path].shape}, "
                                 f"the model has {shape}")
    # In model.weights order (the file is in the service's order).
    return {path: got[path] for path in want}


def initialize(model, seed: int, *, url: Optional[str] = None, client: Optional[Client] = None,
               via: str = "auto", custom_objects=None) -> None:
    """Assign every weight of ``model`` (``model.weights``, by path) from the service.

    The model must be built (its weights exist). ``seed`` decides every value; seeds in the
    model's initializer configs are ignored. See :func:`values_of` for ``via``.
    """
    if not model.built or not model.weights:
        raise ValueError("the model has no weights yet: build it first (give it an Input or call it)")
    values = values_of(model, seed, url=url, client=client, via=via,
                       custom_objects=custom_objects)
    for w in model.weights:
        w.assign(values[w.path].astype(np.dtype(_np_dtype(w.dtype)), copy=False))


def _np_dtype(dtype: str):
    if dtype == "bfloat16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return dtype


def save_weights(model, seed: int, path: str, *, url: Optional[str] = None,
                 client: Optional[Client] = None, via: str = "auto", custom_objects=None) -> None:
    """Write a ``.weights.h5`` of ``model`` initialized by the service (for ``model.load_weights``).

    Written by Keras' own ``model.save_weights``; the model's current values are put back
    afterwards, so the model itself is left as it was (its values are held once more in memory
    meanwhile).
    """
    if not str(path).endswith(".weights.h5"):
        raise ValueError(f"the file name must end in .weights.h5 (Keras' rule), got {path!r}")
    saved = [np.asarray(w.numpy()) for w in model.weights]
    try:
        initialize(model, seed, url=url, client=client, via=via, custom_objects=custom_objects)
        model.save_weights(path)
    finally:
        for w, v in zip(model.weights, saved):
            w.assign(v)
