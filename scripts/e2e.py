#!/usr/bin/env python3
"""End-to-end check of the release binary over a real socket.

Starts the binary (path from argv[1], default target/release/paraminit) with
PARAMINIT_ADDR=127.0.0.1:<free port>, POSTs the seed MLP as JSON and as safetensors, loads the
safetensors body with the real `safetensors` + `numpy` packages and checks it equals the JSON
body (same names, shapes and values), then sends SIGTERM and checks the exit code is 0.
Only the standard library besides safetensors and numpy.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
from safetensors.numpy import load as st_load

SEED_MLP = {
    "seed": 42,
    "framework": "pytorch",
    "dtype": "float32",
    "layers": [
        {"type": "dense", "in_features": 100, "out_features": 64, "activation": "relu",
         "kernel_initializer": "he_normal"},
        {"type": "dense", "out_features": 32, "activation": "relu", "kernel_initializer": "he_normal"},
        {"type": "dense", "out_features": 10, "activation": "softmax"},
    ],
    "tensors": [{"name": "extra.scale", "shape": [10], "init": {"name": "constant", "value": 0.5}}],
}
EXPECTED = {"0.weight": [64, 100], "0.bias": [64], "1.weight": [32, 64], "1.bias": [32],
            "2.weight": [10, 32], "2.bias": [10], "extra.scale": [10]}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(base, path, body, accept=None):
    headers = {"Content-Type": "application/json"}
    if accept:
        headers["Accept"] = accept
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers,
                                 method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, r.headers, r.read()


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/paraminit"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PARAMINIT_ADDR=f"127.0.0.1:{port}", PARAMINIT_SHUTDOWN_GRACE_SECS="10")
    proc = subprocess.Popen([binary], env=env)
    try:
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if proc.poll() is not None:
                raise SystemExit(f"FAIL: the server exited early with {proc.returncode}")
            if time.time() > deadline:
                raise SystemExit("FAIL: /healthz did not answer within 20 s")
            time.sleep(0.1)

        status, jh, jbody = post(base, "/v1/init", SEED_MLP)
        assert status == 200 and jh["Content-Type"] == "application/json", (status, jh)
        doc = json.loads(jbody)
        assert doc["seed"] == 42 and doc["algorithm"].startswith("paraminit-"), doc.keys()

        status, sh, sbody = post(base, "/v1/init?format=safetensors", SEED_MLP)
        assert status == 200, status
        assert sh["Content-Type"] == "application/octet-stream", sh
        assert int(sh["Content-Length"]) == len(sbody), (sh["Content-Length"], len(sbody))
        assert "model.safetensors" in sh.get("Content-Disposition", ""), sh
        status, ah, abody = post(base, "/v1/init", SEED_MLP, accept="application/vnd.safetensors")
        assert abody == sbody and ah["ETag"] == sh["ETag"] != jh["ETag"]

        tensors = st_load(sbody)
        assert set(tensors) == set(EXPECTED), sorted(tensors)
        from_json = {t["name"]: t for t in doc["tensors"]}
        assert set(from_json) == set(EXPECTED), sorted(from_json)
        for name, shape in EXPECTED.items():
            a = tensors[name]
            t = from_json[name]
            assert list(a.shape) == shape == t["shape"], (name, a.shape, t["shape"])
            assert a.dtype == np.float32 and t["dtype"] == "float32", (name, a.dtype)
            b = np.array(t["data"], dtype=np.float64).astype(np.float32).reshape(shape)
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), f"{name} differs"
        assert np.all(tensors["extra.scale"] == 0.5)
        print(f"ok: {len(tensors)} tensors agree between JSON and safetensors ({len(sbody)} bytes)")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise SystemExit("FAIL: the server did not stop within 30 s of SIGTERM")
    if code != 0:
        raise SystemExit(f"FAIL: exit code {code} after SIGTERM")
    print("ok: SIGTERM -> exit 0")
    print("e2e: 1 passed, 0 failed")


if __name__ == "__main__":
    main()
