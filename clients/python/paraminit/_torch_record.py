"""Recording what a PyTorch model's own construction and init code writes into its tensors.

Inside :func:`paraminit.torch.recording` three hooks are active:

* ``torch.nn.init.*`` (and every module attribute or ``transformers.initialization`` table entry
  bound to those functions at import time) is wrapped: the call is recorded as the named
  initializer with its arguments, then run with recording suppressed (so its inner tensor ops,
  and its early return on ``meta``, do not matter).
* A ``TorchFunctionMode`` sees every other torch function and tensor method: factories
  (``torch.empty``, ``zeros``, ``ones``, ``full``, ``rand``, ``randn``, ``tensor(scalar)``, their
  ``*_like`` and ``new_*`` forms), in-place writes (``uniform_``, ``normal_``, ``zero_``,
  ``fill_``, ``copy_``, ``x[idx] = c``, scalar ``mul_``/``add_``/…), and out-of-place scalar
  arithmetic on a recorded tensor (``torch.randn(d) * 0.02``).
* ``nn.Module.__init__`` notes every module built, so that on exit each module keeps the record
  of its own parameters and buffers (``module._paraminit_record``), by attribute name.

Records are keyed by storage (``untyped_storage()._cdata``), so ``.data``, views and
``nn.Parameter(t)`` all reach the same record, on ``meta`` as on real devices. A write through a
view is kept with its region (offset, sizes, strides in elements) and turned into a box of the
parameter at resolution. Nothing here generates values: the service does.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
import threading
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import torch
from torch.overrides import TorchFunctionMode

# --- ops ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One write: ``kind`` is ``init`` (a service initializer ``spec``), ``const`` (``value``),
    ``uninit`` (memory left as allocated), ``unrec`` (an op with no service equivalent) or
    ``affine`` (``x * scale + shift`` of what is there). ``shape`` and ``fans`` are those of the
    tensor the op was applied to; ``what`` says which call it was, for plans and errors."""

    kind: str
    what: str
    spec: Optional[dict] = None
    value: float = 0.0
    scale: float = 1.0
    shift: float = 0.0
    shape: tuple = ()
    fans: Optional[tuple] = None


@dataclass
class Region:
    """A strided view of a storage, in elements."""

    offset: int
    sizes: tuple
    strides: tuple


@dataclass
class StorageRecord:
    ops: list = field(default_factory=list)  # [(Optional[Region], Op)]


def _fans(shape: tuple) -> Optional[tuple]:
    # torch/nn/init.py _calculate_fan_in_and_fan_out
    if len(shape) < 2:
        return None
    rf = 1
    for s in shape[2:]:
        rf *= s
    return (shape[1] * rf, shape[0] * rf)


def _gain(nonlinearity: str, param) -> float:
    # torch/nn/init.py calculate_gain
    return float(torch.nn.init.calculate_gain(nonlinearity, param))


# The service's structured initializers depend on the exact shape, not only on fans.
STRUCTURED = ("orthogonal", "identity", "dirac", "sparse")


def numeric(op: Op, shape: Optional[tuple] = None) -> Optional[tuple]:
    """``(family, params)`` of an op whose values are an elementwise law (``uniform``,
    ``normal``, ``truncated_normal``, ``constant``), or None (structured, unknown)."""
    if op.kind == "const":
        return ("constant", {"value": op.value})
    if op.kind != "init":
        return None
    s = op.spec
    n = s["name"]
    fans = op.fans
    if n in ("uniform", "normal", "truncated_normal", "constant"):
        return (n, {k: v for k, v in s.items() if k != "name"})
    if n in ("zeros", "ones"):
        return ("constant", {"value": 0.0 if n == "zeros" else 1.0})
    if n in ("kaiming_uniform", "kaiming_normal") and fans:
        fan = fans[0] if s["mode"] == "fan_in" else fans[1]
        std = _gain(s["nonlinearity"], s["a"]) / math.sqrt(fan)
        if n == "kaiming_uniform":
            b = math.sqrt(3.0) * std
            return ("uniform", {"low": -b, "high": b})
        return ("normal", {"mean": 0.0, "std": std})
    if n in ("xavier_uniform", "xavier_normal") and fans:
        std = s["gain"] * math.sqrt(2.0 / float(fans[0] + fans[1]))
        if n == "xavier_uniform":
            b = math.sqrt(3.0) * std
            return ("uniform", {"low": -b, "high": b})
        return ("normal", {"mean": 0.0, "std": std})
    return None


def affine(law: tuple, scale: float, shift: float) -> Optional[tuple]:
    """The law of ``x * scale + shift`` for ``x`` of ``law``; None if not of the same family."""
    fam, p = law
    if fam == "constant":
        return ("constant", {"value": p["value"] * scale + shift})
    if scale == 0:
        return ("constant", {"value": shift})
    if fam == "uniform":
        lo, hi = p["low"] * scale + shift, p["high"] * scale + shift
        return ("uniform", {"low": min(lo, hi), "high": max(lo, hi)})
    if fam == "normal":
        return ("normal", {"mean": p["mean"] * scale + shift, "std": p["std"] * abs(scale)})
    if fam == "truncated_normal":
        a, b = p["a"] * scale + shift, p["b"] * scale + shift
        return ("truncated_normal", {"mean": p["mean"] * scale + shift,
                                     "std": p["std"] * abs(scale), "a": min(a, b), "b": max(a, b)})
    return None


def law_op(law: tuple, what: str, shape: tuple) -> Op:
    fam, p = law
    if fam == "constant":
        return Op("const", what, value=float(p["value"]), shape=shape)
    return Op("init", what, spec={"name": fam, **p}, shape=shape, fans=_fans(shape))


# --- the nn.init functions -----------------------------------------------------------------

INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
                  "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                  "kaiming_normal_", "orthogonal_", "sparse_")


def _f(x) -> float:
    if isinstance(x, torch.Tensor):
        if x.is_meta or x.numel() != 1:
            raise _Unrecordable("a tensor-valued argument")
        return float(x.item())
    return float(x)


class _Unrecordable(Exception):
    pass


def init_op(name: str, a: dict, tensor: torch.Tensor) -> Op:
    """The op recorded for ``torch.nn.init.<name>(tensor, **a)`` (arguments bound, defaults in)."""
    shape = tuple(tensor.shape)
    what = f"torch.nn.init.{name}"
    fans = _fans(shape)
    if name == "uniform_":
        spec = {"name": "uniform", "low": _f(a["a"]), "high": _f(a["b"])}
    elif name == "normal_":
        spec = {"name": "normal", "mean": _f(a["mean"]), "std": _f(a["std"])}
    elif name == "trunc_normal_":
        spec = {"name": "truncated_normal", "mean": _f(a["mean"]), "std": _f(a["std"]),
                "a": _f(a["a"]), "b": _f(a["b"])}
    elif name == "constant_":
        return Op("const", what, value=_f(a["val"]), shape=shape)
    elif name == "ones_":
        return Op("const", what, value=1.0, shape=shape)
    elif name == "zeros_":
        return Op("const", what, value=0.0, shape=shape)
    elif name == "eye_":
        spec = {"name": "identity", "gain": 1.0}
    elif name == "dirac_":
        spec = {"name": "dirac", "groups": int(a["groups"])}
    elif name in ("xavier_uniform_", "xavier_normal_"):
        spec = {"name": name[:-1], "gain": _f(a["gain"])}
    elif name in ("kaiming_uniform_", "kaiming_normal_"):
        neg = a["a"]
        spec = {"name": name[:-1], "a": _f(neg if neg is not None else 0.0),
                "mode": str(a["mode"]).lower(), "nonlinearity": str(a["nonlinearity"])}
    elif name == "orthogonal_":
        spec = {"name": "orthogonal", "gain": _f(a["gain"])}
    elif name == "sparse_":
        spec = {"name": "sparse", "sparsity": _f(a["sparsity"]), "std": _f(a["std"])}
    else:  # pragma: no cover - INIT_FUNCTIONS is closed
        raise _Unrecordable(what)
    if a.get("generator") is not None:
        what += " (its generator is ignored: the service's seed decides)"
    return Op("init", what, spec=spec, shape=shape, fans=fans)


# --- the recorder --------------------------------------------------------------------------

_local = threading.local()


def active() -> Optional["Recorder"]:
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


def storage_key(t: torch.Tensor) -> Optional[int]:
    try:
        return t.untyped_storage()._cdata
    except Exception:  # tensors without a storage (sparse, nested, wrapper subclasses)
        return None


def region_of(t: torch.Tensor) -> Optional[Region]:
    """None when ``t`` covers its whole storage in row-major order, else its strided region."""
    try:
        n_storage = t.untyped_storage().nbytes() // t.element_size()
    except Exception:
        n_storage = -1
    if t.storage_offset() == 0 and t.numel() == n_storage and t.is_contiguous():
        return None
    return Region(t.storage_offset(), tuple(t.shape), tuple(t.stride()))


_FACTORY_CONST = {"zeros": 0.0, "zeros_like": 0.0, "new_zeros": 0.0,
                  "ones": 1.0, "ones_like": 1.0, "new_ones": 1.0}
_FACTORY_UNINIT = ("empty", "empty_like", "new_empty", "empty_strided", "new_empty_strided")
_FACTORY_FULL = ("full", "full_like", "new_full")
_FACTORY_TENSOR = ("tensor", "as_tensor", "scalar_tensor", "new_tensor")
# Same values, maybe a new storage (dtype/device/layout changes, copies).
_COPIES = ("clone", "__deepcopy__", "contiguous", "to", "float", "double", "half", "bfloat16", "type", "type_as",
           "detach", "cpu", "cuda", "requires_grad_", "reshape", "view", "flatten", "squeeze",
           "unsqueeze")
# Metadata-only in-place ops: they change no value.
_INPLACE_META = ("requires_grad_", "retain_grad", "share_memory_", "detach_", "t_", "transpose_",
                 "unsqueeze_", "squeeze_", "as_strided_", "swapdims_", "swapaxes_", "resize_as_",
                 "set_", "record_stream", "pin_memory", "__setstate__")
_RANDOM_INPLACE = {"uniform_", "normal_"}
_ARITH = {"mul": "mul", "__mul__": "mul", "__rmul__": "mul", "multiply": "mul",
          "div": "div", "__truediv__": "div", "divide": "div", "true_divide": "div",
          "add": "add", "__add__": "add", "__radd__": "add",
          "sub": "sub", "__sub__": "sub", "subtract": "sub", "__rsub__": "rsub",
          "neg": "neg", "__neg__": "neg", "negative": "neg"}
_ARITH_INPLACE = {"mul_": "mul", "__imul__": "mul", "div_": "div", "__itruediv__": "div",
                  "add_": "add", "__iadd__": "add", "sub_": "sub", "__isub__": "sub",
                  "neg_": "neg"}


def _name(func) -> str:
    n = getattr(func, "__name__", None) or repr(func)
    if n == "__get__":  # property getters (Tensor.data, Tensor.T) come as descriptor __get__
        n = getattr(getattr(func, "__self__", None), "__name__", n)
    return n


def _scalar(x) -> Optional[float]:
    if isinstance(x, bool):
        return float(x)
    if isinstance(x, (int, float)):
        return float(x)
    return None


def _arith(kind: str, args: tuple, kwargs: dict) -> Optional[tuple]:
    """``(scale, shift)`` of a scalar arithmetic op on args[0], or None."""
    if kind == "neg":
        return (-1.0, 0.0)
    if len(args) < 2:
        return None
    c = _scalar(args[1])
    if c is None:
        return None
    alpha = _scalar(kwargs.get("alpha", 1.0))
    if kwargs.get("rounding_mode") is not None or alpha is None:
        return None
    if kind == "mul":
        return (c, 0.0)
    if kind == "div":
        return (1.0 / c, 0.0) if c != 0 else None
    if kind == "add":
        return (1.0, c * alpha)
    if kind == "sub":
        return (1.0, -c * alpha)
    if kind == "rsub":
        return (-1.0, c)
    return None


def _tensors(x, out):
    if isinstance(x, torch.Tensor):
        out.append(x)
    elif isinstance(x, (list, tuple)):
        for y in x:
            _tensors(y, out)
    elif isinstance(x, dict):
        for y in x.values():
            _tensors(y, out)
    return out


class Recorder(TorchFunctionMode):
    """The active recording: a torch function mode plus the storage records."""

    def __init__(self):
        super().__init__()
        self.records: dict[int, StorageRecord] = {}
        self.modules = weakref.WeakSet()
        self.suppress = 0
        self.ctx = None

    # -- writes --

    def write(self, t: torch.Tensor, op: Op) -> None:
        key = storage_key(t)
        if key is None:
            return
        rec = self.records.setdefault(key, StorageRecord())
        rec.ops.append((region_of(t), op))

    def new_storage(self, t: torch.Tensor, op: Op) -> None:
        """``t`` holds a storage just allocated by ``op``: its record starts afresh."""
        key = storage_key(t)
        if key is not None:
            self.records[key] = StorageRecord([(None, op)])

    def simple_law(self, t: torch.Tensor) -> Optional[tuple]:
        """The law of every element of ``t`` when it covers a storage written by one whole op."""
        rec = self.records.get(storage_key(t))
        if rec is None or region_of(t) is not None:
            return None
        ops = [o for r, o in rec.ops]
        if not ops or any(r is not None for r, _ in rec.ops):
            return None
        law = None
        for o in ops:
            if o.kind == "affine":
                law = affine(law, o.scale, o.shift) if law else None
            else:
                law = numeric(o)
        return law

    def copy_of(self, src: torch.Tensor, what: str) -> Op:
        """What copying ``src`` writes: its recorded op when ``src`` is one whole op."""
        rec = self.records.get(storage_key(src))
        if rec is not None and region_of(src) is None and len(rec.ops) == 1 \
                and rec.ops[0][0] is None:
            op = rec.ops[0][1]
            if op.kind in ("init", "const", "uninit", "unrec"):
                return op
        law = self.simple_law(src)
        if law is not None:
            return law_op(law, what, tuple(src.shape))
        return Op("unrec", f"{what} from a tensor the recorder cannot describe")

    # -- the mode --

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _name(func)
        mod = getattr(func, "__module__", "") or ""
        if self.suppress == 0 and mod == "torch.nn.init" and name in INIT_FUNCTIONS \
                and args and isinstance(args[0], torch.Tensor):
            # An nn.init function reached through handle_torch_function (a reference bound
            # before the recording patched it).
            return _run_init(self, name, func, args, kwargs)
        ins = _tensors(args, []) + _tensors(kwargs, [])
        in_keys = {storage_key(t) for t in ins}
        target = args[0] if args and isinstance(args[0], torch.Tensor) else None
        pre_op = None
        if self.suppress == 0 and target is not None:
            pre_op = self._inplace_op(name, func, target, args, kwargs)
        out = func(*args, **kwargs)
        if pre_op is not None:
            region_tensor, op = pre_op
            if op is not None:
                self.write(region_tensor, op)
        outs = [o for o in _tensors(out, []) if storage_key(o) not in in_keys]
        if outs:
            made = self._made_op(name, args, kwargs, target, outs)
            for o in outs:
                self.new_storage(o, replace(made, shape=tuple(o.shape), fans=_fans(tuple(o.shape)))
                                 if made.kind == "init" else made)
        out_kw = kwargs.get("out")
        if self.suppress == 0 and isinstance(out_kw, torch.Tensor):
            made = self._made_op(name, args, kwargs, None, [out_kw])
            self.write(out_kw, made)
        return out

    def _made_op(self, name, args, kwargs, target, outs) -> Op:
        """The op that produced a new storage."""
        shape = tuple(outs[0].shape)
        what = f"torch.{name}"
        if name in _FACTORY_CONST:
            return Op("const", what, value=_FACTORY_CONST[name])
        if name in _FACTORY_UNINIT:
            return Op("uninit", f"{what} (left uninitialized)")
        if name in _FACTORY_FULL:
            v = kwargs.get("fill_value", args[-1] if len(args) >= 2 else None)
            if name == "full" and len(args) >= 2:
                v = args[1]
            c = _scalar(v)
            return Op("const", what, value=c) if c is not None else Op("unrec", what)
        if name in _FACTORY_TENSOR:
            data = args[1] if name == "new_tensor" and len(args) > 1 else (args[0] if args else kwargs.get("data"))
            c = _scalar(data)
            if c is not None:
                return Op("const", what, value=c)
            return Op("unrec", f"{what}(data) with literal values")
        if name in ("rand", "rand_like"):
            return Op("init", what, spec={"name": "uniform", "low": 0.0, "high": 1.0}, shape=shape)
        if name in ("randn", "randn_like"):
            return Op("init", what, spec={"name": "normal", "mean": 0.0, "std": 1.0}, shape=shape)
        if name == "eye":
            return Op("init", what, spec={"name": "identity", "gain": 1.0}, shape=shape)
        if target is not None:
            if name in _ARITH:
                sc = _arith(_ARITH[name], args, kwargs)
                law = self.simple_law(target)
                if sc is not None and law is not None:
                    new = affine(law, *sc)
                    if new is not None:
                        return law_op(new, f"{what} of a recorded tensor", shape)
            if name in _COPIES and tuple(target.shape) == shape:
                return self.copy_of(target, what)
            if name == "pad":
                # F.pad: transformers' tie_weights pads a decoder bias to the vocabulary size
                # (by nothing, usually); padding a constant with the same constant keeps it one.
                amounts = args[1] if len(args) > 1 else kwargs.get("pad", ())
                mode = args[2] if len(args) > 2 else kwargs.get("mode", "constant")
                value = args[3] if len(args) > 3 else kwargs.get("value", None)
                value = 0.0 if value is None else _scalar(value)
                if all(a == 0 for a in amounts):
                    return self.copy_of(target, what)
                law = self.simple_law(target)
                if mode == "constant" and law is not None and law[0] == "constant" \
                        and value is not None and law[1]["value"] == value:
                    return Op("const", what, value=value)
        return Op("unrec", what)

    def _inplace_op(self, name, func, target, args, kwargs):
        """(tensor whose region is written, op) for an in-place write, else None."""
        if name in _INPLACE_META or not (name.endswith("_") or name in
                                           ("__setitem__", "__imul__", "__iadd__", "__isub__",
                                            "__itruediv__")):
            return None
        if name.startswith("__") and name not in ("__setitem__", "__imul__", "__iadd__",
                                                  "__isub__", "__itruediv__"):
            return None
        if storage_key(target) is None:
            return None
        shape = tuple(target.shape)
        what = f"Tensor.{name}"
        try:
            if name == "uniform_":
                lo = _f(args[1] if len(args) > 1 else kwargs.get("from", 0.0))
                hi = _f(args[2] if len(args) > 2 else kwargs.get("to", 1.0))
                return target, Op("init", what, spec={"name": "uniform", "low": lo, "high": hi},
                                  shape=shape, fans=_fans(shape))
            if name == "normal_":
                m = _f(args[1] if len(args) > 1 else kwargs.get("mean", 0.0))
                s = _f(args[2] if len(args) > 2 else kwargs.get("std", 1.0))
                return target, Op("init", what, spec={"name": "normal", "mean": m, "std": s},
                                  shape=shape, fans=_fans(shape))
            if name == "zero_":
                return target, Op("const", what, value=0.0)
            if name == "fill_":
                return target, Op("const", what, value=_f(args[1] if len(args) > 1 else kwargs["value"]))
            if name == "copy_":
                src = args[1] if len(args) > 1 else kwargs.get("src")
                if isinstance(src, torch.Tensor):
                    if tuple(src.shape) != shape:
                        return target, Op("unrec", f"{what} from a broadcast tensor")
                    return target, self.copy_of(src, what)
                return target, Op("unrec", what)
            if name == "__setitem__":
                idx, value = args[1], args[2]
                c = _scalar(value)
                if c is None and isinstance(value, torch.Tensor) and value.numel() == 1 \
                        and not value.is_meta:
                    c = float(value.item())
                with torch._C.DisableTorchFunction():
                    view = target[idx]
                if storage_key(view) != storage_key(target):
                    return target, Op("unrec", f"{what} with an advanced (tensor or list) index")
                if c is None:
                    if isinstance(value, torch.Tensor) and tuple(value.shape) == tuple(view.shape):
                        return view, self.copy_of(value, what)
                    return view, Op("unrec", f"{what} with a tensor value")
                return view, Op("const", what, value=c)
            if name in _ARITH_INPLACE:
                sc = _arith(_ARITH_INPLACE[name], args, kwargs)
                if sc is not None:
                    return target, Op("affine", f"{what}({args[1] if len(args) > 1 else ''})",
                                      scale=sc[0], shift=sc[1])
            return target, Op("unrec", what)
        except _Unrecordable as e:
            return target, Op("unrec", f"{what} with {e}")


def _run_init(rec: Recorder, name: str, orig, args, kwargs):
    tensor = args[0]
    arguments: dict = {}
    try:
        bound = _SIGNATURES[name].bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        op = init_op(name, arguments, tensor)
    except _Unrecordable as e:
        op = Op("unrec", f"torch.nn.init.{name} with {e}")
    except TypeError:
        op = Op("unrec", f"torch.nn.init.{name} with arguments it does not take")
    if _meta_noop(name, tensor, op, arguments):
        rec.write(tensor, op)
        return tensor
    rec.suppress += 1
    try:
        out = orig(*args, **kwargs)
    finally:
        rec.suppress -= 1
    rec.write(tensor, op)
    return out


def _meta_noop(name: str, tensor: torch.Tensor, op: "Op", arguments: dict) -> bool:
    """Whether running ``torch.nn.init.<name>`` on ``tensor`` would do nothing but return it:
    a plain meta tensor has no values, so a call torch would accept changes nothing. Only
    ``normal_`` is skipped (on meta it runs a Python decomposition, 0.2 ms a call, a third of
    a Llama's recording), and only with arguments torch accepts: a floating tensor, a finite
    mean, a std >= 0 and no generator, read from the recorded op. Anything else runs the real
    call, so torch's own errors and warnings are raised as they would be."""
    if name != "normal_" or not tensor.is_meta or op.kind != "init" or \
            arguments.get("generator") is not None or \
            type(tensor) not in (torch.Tensor, torch.nn.Parameter) or \
            not tensor.dtype.is_floating_point:
        return False
    spec = op.spec or {}
    if spec.get("name") != "normal" or set(spec) - {"name", "mean", "std"}:
        return False
    mean, std = spec.get("mean", 0.0), spec.get("std", 1.0)
    return isinstance(mean, float) and isinstance(std, float) and math.isfinite(mean) and \
        math.isfinite(std) and std >= 0.0


_ORIGINALS = {n: getattr(torch.nn.init, n) for n in INIT_FUNCTIONS}
_SIGNATURES = {n: inspect.signature(f) for n, f in _ORIGINALS.items()}


def _wrapper(name: str):
    orig = _ORIGINALS[name]

    @functools.wraps(orig)
    def wrapped(*args, **kwargs):
        rec = active()
        if rec is None or rec.suppress or not args or not isinstance(args[0], torch.Tensor):
            return orig(*args, **kwargs)
        return _run_init(rec, name, orig, args, kwargs)

    wrapped._paraminit_wrapper = True
    return wrapped


_WRAPPERS = {n: _wrapper(n) for n in INIT_FUNCTIONS}


def patch_init_functions() -> list:
    """Points every name bound to an original ``torch.nn.init`` function at its wrapper (also
    names bound by ``from torch.nn.init import …`` in already-imported modules, and the table
    of originals in ``transformers.initialization``). Returns what to restore."""
    undo = []
    by_id = {id(f): n for n, f in _ORIGINALS.items()}
    for mod in list(sys.modules.values()):
        d = getattr(mod, "__dict__", None)
        if not isinstance(d, dict):
            continue
        # Most modules bind no init function: this test runs in C, the loop below in Python
        # (with transformers imported, the loop over every module took 60 ms per recording).
        if by_id.keys().isdisjoint(map(id, list(d.values()))):
            continue
        for attr, val in list(d.items()):
            n = by_id.get(id(val))
            if n is not None and val is _ORIGINALS[n]:
                undo.append((d, attr, val))
                d[attr] = _WRAPPERS[n]
    hf = sys.modules.get("transformers.initialization")
    table = getattr(hf, "TORCH_INIT_FUNCTIONS", None)
    if isinstance(table, dict):
        for k, v in list(table.items()):
            n = by_id.get(id(v))
            if n is not None:
                undo.append((table, k, v))
                table[k] = _WRAPPERS[n]
    return undo


def unpatch(undo: list) -> None:
    for d, k, v in reversed(undo):
        if getattr(d.get(k), "_paraminit_wrapper", False):
            d[k] = v


# --- modules --------------------------------------------------------------------------------

_MODULE_INIT = torch.nn.Module.__init__


@functools.wraps(_MODULE_INIT)
def _module_init(self, *args, **kwargs):
    _MODULE_INIT(self, *args, **kwargs)
    rec = active()
    if rec is not None:
        rec.modules.add(self)
        _patch_transformers(rec)


def _patch_transformers(rec: "Recorder") -> None:
    """transformers skips ``initialize_weights`` when the model is built under the meta device
    (``PreTrainedModel.init_weights``, 5.x): the recording needs it to run, since recording what
    ``_init_weights`` writes is the point. While ``init_weights`` runs inside the recording, its
    device check is told the device is not meta; the init functions are no-ops on meta, and
    recorded."""
    mu = sys.modules.get("transformers.modeling_utils")
    ctx = rec.ctx
    if mu is None or ctx is None or ctx.hf_undo is not None:
        return
    cls = getattr(mu, "PreTrainedModel", None)
    probe = getattr(mu, "get_torch_context_manager_or_global_device", None)
    if cls is None or probe is None:
        ctx.hf_undo = ()
        return
    orig = cls.__dict__.get("init_weights")
    if orig is None:
        ctx.hf_undo = ()
        return

    @functools.wraps(orig)
    def init_weights(self, *args, **kwargs):
        if active() is None:
            return orig(self, *args, **kwargs)
        real = mu.get_torch_context_manager_or_global_device

        def not_meta():
            d = real()
            return torch.device("cpu") if d == torch.device("meta") else d

        mu.get_torch_context_manager_or_global_device = not_meta
        try:
            return orig(self, *args, **kwargs)
        finally:
            mu.get_torch_context_manager_or_global_device = real

    cls.init_weights = init_weights
    ctx.hf_undo = (cls, orig)


_MODULE_SETSTATE = torch.nn.Module.__setstate__


@functools.wraps(_MODULE_SETSTATE)
def _module_setstate(self, state):
    # copy.deepcopy(module) (nn.Transformer's layer clones) restores modules without __init__.
    _MODULE_SETSTATE(self, state)
    rec = active()
    if rec is not None:
        rec.modules.add(self)


def snapshot(rec: Recorder, modules) -> None:
    """Stores on each module the record of its own parameters and buffers, by attribute."""
    for m in modules:
        entries = {}
        for table in (m._parameters, m._buffers):
            for attr, t in table.items():
                if t is None:
                    continue
                key = storage_key(t)
                r = rec.records.get(key)
                off = t.storage_offset() if key is not None else 0
                entries[attr] = (key, list(r.ops) if r is not None else None, t.is_meta, off)
        m.__dict__["_paraminit_record"] = entries


class _Context:
    def __init__(self):
        self.rec = Recorder()
        self.rec.ctx = self
        self.undo = []
        self.hf_undo = None

    def __enter__(self):
        stack = getattr(_local, "stack", None)
        if stack is None:
            stack = _local.stack = []
        stack.append(self.rec)
        if len(stack) == 1:
            self.undo = patch_init_functions()
            torch.nn.Module.__init__ = _module_init
            torch.nn.Module.__setstate__ = _module_setstate
        self.rec.__enter__()
        return self.rec

    def __exit__(self, *exc):
        self.rec.__exit__(*exc)
        stack = _local.stack
        stack.pop()
        if self.hf_undo:
            cls, orig = self.hf_undo
            cls.init_weights = orig
        if not stack:
            torch.nn.Module.__init__ = _MODULE_INIT
            torch.nn.Module.__setstate__ = _MODULE_SETSTATE
            unpatch(self.undo)
        snapshot(self.rec, list(self.rec.modules))
        self.rec.records.clear()
        return False


def recording() -> _Context:
    return _Context()
