"""PyTorch models as they are: record how a model initializes itself, ask the service for
exactly that, and load the answer into the model's own storage.

    import torch, paraminit.torch as pt

    with pt.recording(), torch.device("meta"):
        model = MyModel(...)                  # any nn.Module, any Hugging Face class
    pt.initialize(model, seed=42, url="http://localhost:8080")   # materialized and filled

* :func:`recording` records, while models are built (and while init code such as
  ``model.init_weights()`` or ``post_init`` runs inside it), what writes each parameter and
  buffer: ``torch.nn.init.*`` (also through ``transformers.initialization``), tensor methods
  (``uniform_``, ``normal_``, ``zero_``, ``fill_``, ``copy_``, ``x[i] = c``, scalar ``mul_``/
  ``add_``…), factories (``torch.empty``/``zeros``/``ones``/``full``/``rand``/``randn``/
  ``tensor(c)``/``eye``) and scalar arithmetic on them. Last writer wins.
* :func:`request_for` turns the record into one request: every tensor of ``model.state_dict()``
  (tied aliases once), named and shaped exactly, with its initializer, constant fills of rows
  and slices, and its dtype.
* :func:`initialize` materializes a ``meta`` model (``to_empty``), streams the response into the
  tensors' storage (no second copy of the model), and returns the model. With DTensor
  parameters on a 1-D device mesh, each rank fetches only its own shards.
* :func:`state_dict` returns the tensors instead.

Nothing is generated here: the values come from the service, the same bits for the same seed on
every machine, device, dtype round and shard layout.
"""

from __future__ import annotations

import fnmatch
import math
import os
import sys
import threading
import warnings
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import torch

from . import _torch_record as _rec
from ._client import Client, ParaminitError
from ._stream import TensorInfo

__all__ = ["recording", "request_for", "initialize", "state_dict", "RecordingError",
           "UnrecordableInit"]

Initializer = Union[str, Mapping[str, Any]]


class RecordingError(ValueError):
    """The model (or one of its modules) was not built inside :func:`recording`."""


class UnrecordableInit(ValueError):
    """A tensor's initialization has no equivalent in the service (names tensor and op)."""


FIX = ("build the model inside paraminit.torch.recording(), e.g.\n"
       "    with paraminit.torch.recording(), torch.device(\"meta\"):\n"
       "        model = MyModel(...)")


def recording():
    """Context manager: modules built inside it (on any device, ``meta`` included) carry the
    record of how their parameters and buffers were initialized; init code run later inside it
    is recorded too. Use as ``with recording(), torch.device("meta"): model = Model(...)``."""
    return _rec.recording()


# --- dtypes ---------------------------------------------------------------------------------

_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16",
           torch.float64: "float64", torch.int64: "int64"}
_ST_TORCH = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
             "F64": torch.float64, "I64": torch.int64}


# --- the model's tensors ---------------------------------------------------------------------


def _is_dtensor(t) -> bool:
    return type(t).__name__ == "DTensor" and hasattr(t, "_local_tensor")


class _Entry:
    """One tensor of the state dict: its name, owner module, attribute and tensor."""

    def __init__(self, name: str, module: torch.nn.Module, attr: str, tensor: torch.Tensor):
        self.name, self.module, self.attr, self.tensor = name, module, attr, tensor
        self.aliases: list = []  # later state-dict names of the same tensor

    def alias_key(self):
        t = self.tensor
        if _is_dtensor(t):
            return ("d", id(t))
        return ("s", _rec.storage_key(t), t.storage_offset(), tuple(t.shape), tuple(t.stride()))


def _entries(model: torch.nn.Module) -> list:
    """State-dict tensors in state-dict order, tied aliases folded into their first name."""
    sd = model.state_dict(keep_vars=True)
    firsts: dict = {}
    out = []
    for name, t in sd.items():
        if not isinstance(t, torch.Tensor):
            continue
        prefix, _, attr = name.rpartition(".")
        module = model.get_submodule(prefix) if prefix else model
        e = _Entry(name, module, attr, t)
        k = e.alias_key()
        if k in firsts:
            firsts[k].aliases.append(e)
        else:
            firsts[k] = e
            out.append(e)
    return out


# --- from records to raw tensors ----------------------------------------------------------------

_FULL = "full"
_OUTSIDE = "outside"
_NOT_A_BOX = "not a box"


def _box(shape: tuple, p_off: int, reg: Optional[_rec.Region]):
    """The write ``reg`` (storage-relative) as per-axis ranges of a contiguous tensor of
    ``shape`` at storage offset ``p_off``; _FULL, _OUTSIDE or _NOT_A_BOX."""
    if reg is None:
        return _FULL
    numel = math.prod(shape)
    rel = reg.offset - p_off
    span = sum((s - 1) * st for s, st in zip(reg.sizes, reg.strides) if s > 0)
    if rel + span < 0 or rel >= numel or math.prod(reg.sizes) == 0:
        return _OUTSIDE
    if rel < 0 or rel + span >= numel:
        return _NOT_A_BOX
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1]
    start, r = [], rel
    for st in strides:
        start.append(r // st)
        r %= st
    ranges = [(s, s + 1) for s in start]
    used = set()
    for size, st in zip(reg.sizes, reg.strides):
        if size == 1:
            continue
        for d in range(len(shape)):
            if d not in used and strides[d] == st and start[d] + size <= shape[d]:
                used.add(d)
                ranges[d] = (start[d], start[d] + size)
                break
        else:
            return _NOT_A_BOX
    if math.prod(b - a for a, b in ranges) != math.prod(reg.sizes):
        return _NOT_A_BOX
    if all(r == (0, n) for r, n in zip(ranges, shape)):
        return _FULL
    # Trailing whole axes are left out of the request (they default to whole).
    while ranges and ranges[-1] == (0, shape[len(ranges) - 1]):
        ranges.pop()
    return ranges


def _resolve(name: str, shape: tuple, p_off: int, ops: list):
    """(final op, fills) of a tensor from its recorded writes, last writer wins."""
    base: Optional[_rec.Op] = None
    fills: list = []
    for reg, op in ops:
        box = _box(shape, p_off, reg)
        if box == _OUTSIDE:
            continue
        if box == _NOT_A_BOX:
            base, fills = _rec.Op("unrec", f"{op.what} on a strided view that is not a box"), []
        elif box == _FULL:
            if op.kind == "affine":
                law = _rec.numeric(base) if base is not None else None
                new = _rec.affine(law, op.scale, op.shift) if law is not None else None
                if new is None:
                    if base is None or base.kind not in ("uninit", "unrec"):
                        what = base.what if base is not None else "nothing"
                        base = _rec.Op("unrec", f"{op.what} after {what}")
                    fills = []
                else:
                    base = _rec.law_op(new, f"{base.what}, then {op.what}", base.shape)
                    fills = [(b, v * op.scale + op.shift) for b, v in fills]
            else:
                base, fills = op, []
        else:
            if op.kind == "const":
                fills.append((box, op.value))
            elif op.kind == "affine" and base is not None and base.kind == "const" and not fills:
                base = _rec.Op("unrec", f"{op.what} on a part of the tensor")
            else:
                base, fills = _rec.Op("unrec", f"{op.what} on a part of the tensor"), []
    return base, fills


def _spec_of(name: str, shape: tuple, base: _rec.Op) -> tuple:
    """(init, extra fields) for the raw tensor, or raises UnrecordableInit."""
    if base.kind == "const":
        v = base.value
        init = "zeros" if v == 0 and math.copysign(1, v) > 0 else (
            "ones" if v == 1 else {"name": "constant", "value": v})
        return init, {}
    if base.kind == "init":
        spec = dict(base.spec)
        extra = {}
        if tuple(base.shape) != tuple(shape):
            n = spec["name"]
            same_rows = base.shape and shape and base.shape[0] == shape[0] \
                and math.prod(base.shape) == math.prod(shape)
            if n in _rec.STRUCTURED and not (n == "orthogonal" and same_rows):
                raise UnrecordableInit(
                    f"{name}: {base.what} was applied to a {list(base.shape)} view of this "
                    f"{list(shape)} tensor; `{n}` depends on the shape, so it cannot be recorded")
            if base.fans is not None:
                extra = {"fan_in": base.fans[0], "fan_out": base.fans[1]}
        return spec, extra
    if base.kind == "uninit":
        raise UnrecordableInit(f"{name}: created by {base.what} and never written")
    raise UnrecordableInit(f"{name}: {base.what} has no equivalent in the service")


def _records_for(model: torch.nn.Module) -> None:
    """Inside an active recording, refresh the snapshots of the model's recorded modules."""
    rec = _rec.active()
    if rec is not None:
        _rec.snapshot(rec, [m for m in model.modules() if m in rec.modules])


def _match(name: str, patterns: Optional[Mapping]) -> Optional[Initializer]:
    if not patterns:
        return None
    if name in patterns:
        return patterns[name]
    best = None
    for pat, init in patterns.items():
        if fnmatch.fnmatchcase(name, pat) and (best is None or len(pat) > len(best[0])):
            best = (pat, init)
    return best[1] if best else None


def _raw_tensor(e: _Entry, dtype: Optional[torch.dtype], overrides) -> dict:
    t = e.tensor
    shape = tuple(t.shape)
    tdtype = t.dtype
    if dtype is not None and tdtype.is_floating_point:
        tdtype = dtype
    if tdtype not in _DTYPES:
        raise UnrecordableInit(f"{e.name}: dtype {tdtype} is not one the service writes "
                               f"(float32, float16, bfloat16, float64, int64)")
    out = {"name": e.name, "shape": list(shape)}
    ov = _match(e.name, overrides)
    if ov is not None:
        out["init"] = ov
    else:
        record = e.module.__dict__.get("_paraminit_record")
        if record is None:
            raise RecordingError(f"{e.name}: its module ({type(e.module).__name__}) was not "
                                 f"built inside paraminit.torch.recording(); {FIX}")
        if e.attr not in record:
            raise RecordingError(f"{e.name}: set after the recording ended; {FIX}")
        key, ops, was_meta, p_off = record[e.attr]
        if ops is None:
            raise UnrecordableInit(f"{e.name}: no operation the recorder saw created it (was it "
                                   f"made before the recording, or by a tensor op it does not "
                                   f"know?); pass overrides={{{e.name!r}: initializer}}")
        cur = _rec.storage_key(t)
        if cur != key and not was_meta and not _is_dtensor(t):
            raise RecordingError(f"{e.name}: replaced after the recording ended; {FIX}")
        base, fills = _resolve(e.name, shape, p_off, ops)
        if base is None:
            raise UnrecordableInit(f"{e.name}: nothing the recorder saw wrote it")
        try:
            init, extra = _spec_of(e.name, shape, base)
        except UnrecordableInit as err:
            raise UnrecordableInit(f"{err}; pass overrides={{{e.name!r}: initializer}} "
                                   f"to choose one") from None
        out["init"] = init
        out.update(extra)
        if fills:
            out["fills"] = [{"index": [list(r) for r in box], "value": float(v)}
                            for box, v in fills]
    out["dtype"] = _DTYPES[tdtype]
    if tdtype == torch.int64:
        init = out["init"]
        ok = init in ("zeros", "ones") or (isinstance(init, Mapping) and init.get("name") in
                                           ("zeros", "ones", "constant"))
        if not ok:
            raise UnrecordableInit(f"{e.name}: an int64 tensor initialized by {init!r}")
    return out


def request_for(model: torch.nn.Module, seed: int, *, dtype: Optional[torch.dtype] = None,
                overrides: Optional[Mapping[str, Initializer]] = None,
                only: Optional[Iterable[str]] = None,
                shard: Optional[Mapping[str, Any]] = None) -> dict:
    """The request (JSON-able) that reproduces this model's own initialization.

    Every tensor of ``model.state_dict()`` (tied aliases once, under their first name) becomes a
    raw tensor with its recorded initializer, constant ``fills`` for rows and slices written
    after it, and its dtype (``dtype`` replaces the floating ones). ``overrides`` maps names or
    globs (``*`` also matches ``.``) to initializers (``"zeros"``, ``{"name": "normal", "std":
    0.02}``) for tensors whose init cannot be recorded, or to change one. ``only`` and
    ``shard`` are passed to the service as they are.

    Raises :class:`RecordingError` for a model built outside :func:`recording` and
    :class:`UnrecordableInit` for a tensor whose init has no equivalent (naming it and the op).
    """
    _records_for(model)
    tensors = [_raw_tensor(e, dtype, overrides) for e in _entries(model)]
    req: dict = {"seed": int(seed), "framework": "pytorch", "tensors": tensors}
    if only is not None:
        req["only"] = list(only)
    if shard is not None:
        req["shard"] = dict(shard)
    return req


# --- loading ----------------------------------------------------------------------------------


class _Sink:
    """Maps each streamed tensor to the storage it goes into. ``targets(info)`` gives a tensor
    (filled in place when it is contiguous CPU memory of the sent dtype, else through a staging
    buffer copied in when the tensor is complete), ``(tensor, index)`` to keep only
    ``full[index]`` of the sent tensor, or None to drop it."""

    def __init__(self, targets: Callable[[TensorInfo], Any]):
        self.targets = targets
        self.pending = None

    def flush(self):
        if self.pending is not None:
            dst, tmp, idx = self.pending
            with torch.no_grad():
                dst.copy_(tmp if idx is None else tmp[idx])
            self.pending = None

    def __call__(self, info: TensorInfo):
        self.flush()
        dst = self.targets(info)
        if dst is None:
            return None
        idx = None
        if isinstance(dst, tuple):
            dst, idx = dst
        want = _ST_TORCH[info.dtype]
        shape = tuple(info.shape) if idx is None else \
            tuple(len(range(*sl.indices(n))) for sl, n in zip(idx, info.shape))
        if tuple(dst.shape) != shape:
            raise ParaminitError(f"{info.name}: the service sent {list(info.shape)}, the model "
                                 f"holds {list(dst.shape)}")
        if idx is None and dst.device.type == "cpu" and dst.is_contiguous() \
                and dst.dtype == want:
            return _bytes_of(dst)
        tmp = torch.empty(info.shape, dtype=want)
        self.pending = (dst, tmp, idx)
        return _bytes_of(tmp)


def _bytes_of(t: torch.Tensor) -> memoryview:
    flat = t.detach().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()).cast("B")


def _escape(name: str) -> str:
    return "".join("\\" + c if c in "*?[]{}\\" else c for c in name)


def _dtensor_plan(entries: list):
    """For DTensor entries on one 1-D mesh: the service shard and which tensors it slices
    exactly as DTensor does; the rest are fetched whole and sliced here."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    dims: dict = {}
    local: dict = {}  # name -> (local shape, global offset)
    mesh = None
    whole = []
    for e in entries:
        t = e.tensor
        if not _is_dtensor(t):
            dims[_escape(e.name)] = None
            continue
        m = t.device_mesh
        if mesh is None:
            mesh = m
        lshape, goff = compute_local_shape_and_global_offset(t.shape, m, t.placements)
        local[e.name] = (tuple(lshape), tuple(goff))
        pl = t.placements
        if m is not mesh or m.ndim != 1 or len(pl) != 1:
            dims[_escape(e.name)] = None
            whole.append(e.name)
            continue
        p = pl[0]
        if isinstance(p, Replicate):
            dims[_escape(e.name)] = None
        elif isinstance(p, Shard):
            d = p.dim % t.ndim
            size, ws, r = t.shape[d], m.size(), m.get_local_rank()
            base, rem = divmod(size, ws)
            start, length = r * base + min(r, rem), base + (1 if r < rem else 0)
            if (start, length) == (goff[d], lshape[d]):
                dims[_escape(e.name)] = d
            else:  # torch.chunk and numpy.array_split disagree for this size
                dims[_escape(e.name)] = None
                whole.append(e.name)
        else:
            dims[_escape(e.name)] = None
            whole.append(e.name)
    shard = None
    if mesh is not None and mesh.ndim != 1:
        # Only 1-D meshes map to the service's shard; everything is sent whole and sliced here.
        whole = [e.name for e in entries if _is_dtensor(e.tensor)]
    elif mesh is not None:
        shard = {"rank": mesh.get_local_rank(), "world_size": mesh.size(), "dim": None,
                 "dims": dims}
    return shard, whole, local


def _nonpersistent_meta(model: torch.nn.Module) -> list:
    """Non-persistent buffers still on meta: ``(qualified name, module, attribute)``."""
    out = []
    for mname, m in model.named_modules():
        for b in sorted(getattr(m, "_non_persistent_buffers_set", ())):
            t = m._buffers.get(b)
            if t is not None and t.is_meta:
                out.append((f"{mname}.{b}" if mname else b, m, b))
    return out


def _materialize(model: torch.nn.Module, entries: list, nonpersistent: list, device) -> None:
    """``to_empty`` for a model with meta tensors, keeping tied aliases tied. Non-persistent
    buffers the service cannot describe (``nonpersistent``) are recomputed where the model says
    how (Hugging Face ``_init_weights`` of their module, e.g. rotary ``inv_freq``)."""
    if not any(e.tensor.is_meta for e in entries) and not nonpersistent and \
            not any(t.is_meta for t in model.buffers()):
        return
    model.to_empty(device=device or "cpu")
    for e in entries:
        first = getattr(e.module, e.attr)
        for a in e.aliases:
            table = a.module._parameters if a.attr in a.module._parameters else a.module._buffers
            table[a.attr] = first
        e.tensor = first
    missing = []
    init = getattr(model, "_init_weights", None)
    for qname, m, b in nonpersistent:
        if callable(init):
            with torch.no_grad():
                init(m)
        else:
            missing.append(qname)
    if missing:
        warnings.warn("non-persistent buffers built on meta are not part of the state dict, "
                      "and their init could not be recorded; they were left uninitialized: "
                      f"{', '.join(missing)}", stacklevel=3)


def _client(url, token, client) -> tuple:
    if client is not None:
        return client, False
    return Client(url, token), True


def initialize(model: torch.nn.Module, seed: int, url: Optional[str] = None,
               token: Optional[str] = None, dtype: Optional[torch.dtype] = None,
               only: Optional[Iterable[str]] = None, shard: Optional[Mapping[str, Any]] = None,
               *, overrides: Optional[Mapping[str, Initializer]] = None,
               device: Optional[Union[str, torch.device]] = None,
               client: Optional[Client] = None) -> torch.nn.Module:
    """Initializes ``model`` in place from the service and returns it.

    A model with ``meta`` tensors is materialized first (``to_empty`` on ``device``, default
    CPU). ``dtype`` casts the floating tensors first and is what the service sends. The answer
    is streamed tensor by tensor into the tensors' storage. ``only`` initializes just the
    matching tensors (the others are left as they are). ``shard`` (``{"rank", "world_size",
    "dim", "dims"}``) is passed to the service for a model whose tensors have the slices'
    shapes. DTensor parameters (a 1-D device mesh, ``Shard(d)`` or ``Replicate``) are detected:
    each rank fetches only its own slices, bit-identical to the same part of the full tensors.
    """
    _records_for(model)
    # The request first: it reads the records by storage, before .to(dtype) makes new ones.
    req = request_for(model, seed, dtype=dtype, overrides=overrides, only=only, shard=shard)
    # Non-persistent buffers on meta (not in the state dict) come from the service too when
    # their init was recorded (Gemma's embed_scale); the others are recomputed after to_empty.
    extra, unresolved = [], []
    if only is None and shard is None:
        for qname, m, b in _nonpersistent_meta(model):
            try:
                req["tensors"].append(_raw_tensor(_Entry(qname, m, b, m._buffers[b]), dtype,
                                                  overrides))
                extra.append((qname, m, b))
            except (RecordingError, UnrecordableInit):
                unresolved.append((qname, m, b))
    if dtype is not None:
        model.to(dtype=dtype)
    entries = _entries(model) + [_Entry(q, m, b, m._buffers[b]) for q, m, b in extra]
    _materialize(model, entries, unresolved, device)
    by_name = {e.name: e for e in entries}
    whole: list = []
    local: dict = {}
    if shard is None and any(_is_dtensor(e.tensor) for e in entries):
        req["shard"], whole, local = _dtensor_plan(entries)

    def target(info: TensorInfo):
        e = by_name.get(info.name)
        if e is None:
            return None
        t = e.tensor
        if not _is_dtensor(t):
            return t.data
        if e.name in whole:  # sent whole (replicated in the request): keep this rank's part
            lshape, goff = local[e.name]
            return t._local_tensor, tuple(slice(o, o + n) for o, n in zip(goff, lshape))
        return t._local_tensor

    c, own = _client(url, token, client)
    prefault = _Prefault([by_name[t["name"]].tensor for t in req["tensors"]
                          if t["name"] in by_name])
    try:
        sink = _Sink(target)
        c.stream(req, sink)
        sink.flush()
    finally:
        prefault.stop()
        if own:
            c.close()
    return model


class _Prefault:
    """Touches the pages of freshly materialized CPU tensors on a second thread, in the order
    the service sends them, while the first thread reads the socket.

    A tensor ``to_empty`` made has no memory behind it yet: the first write to each 4 KiB page
    faults, and on the stream's thread the faults of a 2.2 GB model (537,000 of them, about
    0.8 CPU-s) ran after the bytes they waited for. Faulted here, in the kernel's batch form
    (``madvise(MADV_POPULATE_WRITE)``, Linux 5.14+; the call releases the GIL), they overlap
    the service's generation. Values are untouched: the stream writes every byte afterwards. A
    kernel without the call, another OS, or ``PARAMINIT_PREFAULT=0`` skips it."""

    _MADV_POPULATE_WRITE = 23

    def __init__(self, tensors: list):
        self._stop = threading.Event()
        self._thread = None
        self.unsupported = False
        if not tensors or os.environ.get("PARAMINIT_PREFAULT", "1") == "0" or \
                not sys.platform.startswith("linux"):
            return
        ranges = []
        seen = set()
        for t in tensors:
            t = t.data if not _is_dtensor(t) else t._local_tensor
            if t.device.type != "cpu" or t.is_meta:
                continue
            a = t.untyped_storage().data_ptr()
            n = t.untyped_storage().nbytes()
            lo, hi = (a + 4095) & ~4095, (a + n) & ~4095
            if hi > lo and a not in seen:
                seen.add(a)
                ranges.append((lo, hi))
        if not ranges:
            return
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            madvise = libc.madvise
            madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            madvise.restype = ctypes.c_int
        except (OSError, AttributeError):
            return
        self._thread = threading.Thread(target=self._run, args=(madvise, ranges),
                                        name="paraminit-prefault", daemon=True)
        self._thread.start()

    def _run(self, madvise, ranges):
        step = 8 << 20  # in pieces, so stop() is prompt
        for lo, hi in ranges:
            while lo < hi:
                if self._stop.is_set():
                    return
                n = min(step, hi - lo)
                if madvise(lo, n, self._MADV_POPULATE_WRITE) != 0:
                    # Not supported (EINVAL) or no memory: the stream faults the rest itself.
                    self.unsupported = True
                    return
                lo += n

    def wait(self):
        """Waits until every page is backed (tests)."""
        if self._thread is not None:
            self._thread.join()

    def stop(self):
        """Stops touching pages (the stream has ended) and joins the thread."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()


def state_dict(model: torch.nn.Module, seed: int, url: Optional[str] = None,
               token: Optional[str] = None, dtype: Optional[torch.dtype] = None,
               only: Optional[Iterable[str]] = None, shard: Optional[Mapping[str, Any]] = None,
               *, overrides: Optional[Mapping[str, Initializer]] = None,
               client: Optional[Client] = None) -> dict:
    """The tensors :func:`initialize` would load, as a new ``{name: tensor}`` dict on CPU (tied
    aliases are the same tensor, under every name of ``model.state_dict()``). The model is not
    touched; with ``shard`` the tensors are this rank's slices."""
    entries = _entries(model)
    req = request_for(model, seed, dtype=dtype, overrides=overrides, only=only, shard=shard)
    out: dict = {}

    def target(info: TensorInfo):
        t = torch.empty(info.shape, dtype=_ST_TORCH[info.dtype])
        out[info.name] = t
        return t

    c, own = _client(url, token, client)
    try:
        c.stream(req, _Sink(target))
    finally:
        if own:
            c.close()
    first = {e.name: e.name for e in entries}
    for e in entries:
        for a in e.aliases:
            first[a.name] = e.name
    return {name: out[first[name]] for name in model.state_dict(keep_vars=True)
            if name in first and first[name] in out}
