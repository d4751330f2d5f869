"""Reading a safetensors body as it arrives, straight into the caller's buffers.

The format (huggingface/safetensors): 8 bytes little-endian header length N, N bytes of JSON
(``{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}``, offsets
relative to the end of the header), then the data. Tensors are visited in offset order; gaps
and overlaps are refused, as the reference reader refuses them.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterable, Optional, Union

import numpy as np

_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2,
             "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the file: its name, safetensors dtype (``"F32"``…), shape and byte size."""

    name: str
    dtype: str
    shape: tuple
    nbytes: int
    offset: int

    def numpy_dtype(self) -> np.dtype:
        """The numpy dtype of this tensor (bfloat16 through ``ml_dtypes``)."""
        return numpy_dtype(self.dtype)


def numpy_dtype(st_dtype: str) -> np.dtype:
    table = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
             "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U16": np.uint16,
             "U32": np.uint32, "U64": np.uint64, "BOOL": np.bool_}
    if st_dtype == "BF16":
        import ml_dtypes  # only needed for bfloat16

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(table[st_dtype])


class _Chunks:
    """An iterable of ``bytes`` chunks seen as a ``readinto`` source (each byte copied once,
    from its chunk into the caller's buffer)."""

    def __init__(self, chunks: Iterable[bytes]):
        self._it = iter(chunks)
        self._buf = memoryview(b"")

    def readinto(self, b: memoryview) -> int:
        while not self._buf:
            chunk = next(self._it, None)
            if chunk is None:
                return 0
            self._buf = memoryview(chunk).cast("B")
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


# Skipped tensors are read through one scratch buffer of at most this size, so dropping a
# large tensor costs no allocation of its size.
_SKIP = 1 << 20


class _Reader:
    """Exact reads over a ``readinto`` source; a source that returns 0 has ended."""

    def __init__(self, src):
        self._src = src
        self._scratch: Optional[memoryview] = None

    def _fill(self, dst: memoryview) -> int:
        done, n = 0, len(dst)
        while done < n:
            got = self._src.readinto(dst[done:])
            if not got:
                break
            done += got
        return done

    def exact(self, n: int) -> bytes:
        out = bytearray(n)
        got = self._fill(memoryview(out))
        if got < n:
            raise ValueError(f"safetensors body ended after {got} of {n} bytes")
        return bytes(out)

    def into(self, dst: Optional[memoryview], n: int) -> None:
        if dst is not None:
            got = self._fill(dst)
            if got < n:
                raise ValueError(f"safetensors body ended {n - got} bytes early")
            return
        if self._scratch is None:
            self._scratch = memoryview(bytearray(_SKIP))
        left = n
        while left:
            step = min(left, _SKIP)
            got = self._fill(self._scratch[:step])
            left -= got
            if got < step:
                raise ValueError(f"safetensors body ended {left} bytes early")

    def at_end(self) -> bool:
        return self._src.readinto(memoryview(bytearray(1))) == 0


def read_safetensors(source: Union[Iterable[bytes], BinaryIO],
                     sink: Callable[[TensorInfo], Optional[memoryview]]) -> dict:
    """Stream a safetensors body into buffers chosen by ``sink``; returns ``__metadata__``.

    ``source`` is an iterable of ``bytes`` chunks, or anything with ``readinto`` (a file opened
    ``"rb"``, an ``http.client.HTTPResponse``), which is read straight into the sink's buffers
    with no intermediate copy. ``sink(info)`` returns a writable, C-contiguous buffer of
    ``info.nbytes`` bytes, or None to skip the tensor. The body must end exactly after the last
    tensor.
    """
    r = _Reader(source if hasattr(source, "readinto") else _Chunks(source))
    (n,) = struct.unpack("<Q", r.exact(8))
    if n > 100_000_000:
        raise ValueError(f"safetensors header of {n} bytes is larger than the format allows")
    header = json.loads(r.exact(n))
    metadata = header.pop("__metadata__", {}) or {}
    infos = []
    for name, t in header.items():
        begin, end = t["data_offsets"]
        infos.append(TensorInfo(name, t["dtype"], tuple(t["shape"]), end - begin, begin))
    infos.sort(key=lambda i: i.offset)
    pos = 0
    for info in infos:
        if info.offset != pos:
            raise ValueError(f"tensor {info.name!r} starts at {info.offset}, expected {pos}")
        count = 1
        for d in info.shape:
            count *= d
        if count * _ITEMSIZE[info.dtype] != info.nbytes:
            raise ValueError(f"tensor {info.name!r}: {info.nbytes} bytes for {info.dtype}{list(info.shape)}")
        dst = sink(info)
        if dst is not None:
            dst = memoryview(dst).cast("B")
            if dst.nbytes != info.nbytes:
                raise ValueError(f"buffer for {info.name!r} has {dst.nbytes} bytes, need {info.nbytes}")
        r.into(dst, info.nbytes)
        pos += info.nbytes
    if not r.at_end():
        raise ValueError("safetensors body has bytes after the last tensor")
    return metadata
