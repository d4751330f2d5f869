"""The transport core against a real server: errors, streaming into buffers, JSON = safetensors."""

import numpy as np
import pytest
from safetensors.numpy import load

import paraminit
from paraminit import Client, ParaminitError, read_safetensors

MLP = {
    "seed": 7,
    "layers": [
        {"type": "dense", "in_features": 10, "out_features": 6},
        {"type": "relu"},
        {"type": "dense", "out_features": 3},
    ],
}


def test_error_envelope_is_raised_with_its_fields(server_url):
    with Client(server_url) as c:
        with pytest.raises(ParaminitError) as e:
            c.plan({"seed": 1, "layers": [{"type": "dense", "in_features": 3, "out_features": 0}]})
    assert e.value.status == 422
    assert e.value.code == "invalid_value"
    assert e.value.path == "layers[0].out_features"


def test_stream_into_buffers_equals_file_and_json(server_url):
    with Client(server_url) as c:
        whole = load(c.init_safetensors(MLP))
        as_json = {t["name"]: t for t in c.init_json(MLP)["tensors"]}
        got = {}

        def sink(info):
            arr = np.empty(info.shape, dtype=info.numpy_dtype())
            got[info.name] = arr
            return memoryview(arr).cast("B")

        meta = c.stream(MLP, sink)
    assert meta["format"] == "pt"
    assert set(got) == set(whole) == set(as_json)
    for name, arr in got.items():
        np.testing.assert_array_equal(arr, whole[name])
        np.testing.assert_array_equal(arr.ravel(), np.asarray(as_json[name]["data"], np.float32))


def test_stream_with_tiny_chunks_and_skips():
    # The reader must not depend on chunk boundaries: feed a real file one byte at a time.
    import struct, json as _json

    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]},
              "__metadata__": {"format": "pt"}}
    h = _json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    body = struct.pack("<Q", len(h)) + h + np.array([1, 2, 3], np.float32).tobytes()
    out = np.zeros(1, np.float32)
    meta = read_safetensors((body[i:i + 1] for i in range(len(body))),
                            lambda i: memoryview(out).cast("B") if i.name == "b" else None)
    assert meta == {"format": "pt"} and out[0] == 3.0
    with pytest.raises(ValueError, match="ended"):
        read_safetensors([body[:-1]], lambda i: None)


def test_version_exported():
    assert paraminit.__version__
