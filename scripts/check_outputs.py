#!/usr/bin/env python3
"""Load paraminit's output with the real Python readers and check it.

Generates the examples with the built binary (`paraminit generate`), loads the safetensors files
with `safetensors.numpy` (bf16 through `ml_dtypes`) and checks names, shapes, dtypes, the
statistics of each initializer, that the JSON body holds the same values, and that a bf16 file
is the f32 file rounded to nearest-even.

usage: check_outputs.py [path/to/paraminit]
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy before safetensors needs it)
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "paraminit")
C = 0.87962566103423978
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


def run(*args, stdin=None):
    return subprocess.run([BIN, *args], check=True, capture_output=True, input=stdin)


def generate(spec_path, tmp, stem):
    st = os.path.join(tmp, stem + ".safetensors")
    js = os.path.join(tmp, stem + ".json")
    run("generate", spec_path, "-o", st)
    run("generate", spec_path, "-o", js)
    plan = json.loads(run("plan", spec_path).stdout)
    return st, js, plan


def check_file(spec_path, tmp, stem, expect):
    st, js, plan = generate(spec_path, tmp, stem)
    tensors = load_file(st)
    names = sorted(t["name"] for t in plan["tensors"])
    check(sorted(tensors) == names, f"{stem}: names {sorted(tensors)} != plan {names}")
    with safe_open(st, framework="np") as f:
        meta = f.metadata()
    check(meta.get("format") == "pt", f"{stem}: metadata format {meta.get('format')}")
    check(meta.get("paraminit.algorithm") == "paraminit-v1", f"{stem}: algorithm {meta}")
    body = json.load(open(js))
    by_name = {t["name"]: t for t in body["tensors"]}
    for t in plan["tensors"]:
        arr = tensors[t["name"]]
        check(list(arr.shape) == t["shape"], f"{stem}: {t['name']} shape {arr.shape} != {t['shape']}")
        jt = by_name[t["name"]]
        data = np.array(jt["data"], dtype=np.float64).astype(arr.dtype).reshape(arr.shape)
        check(np.array_equal(data.view(np.uint8), arr.view(np.uint8)), f"{stem}: {t['name']} JSON != safetensors")
    for name, kind, a, b in expect:
        x = tensors[name].astype(np.float64).ravel()
        if kind == "const":
            check(np.all(x == a), f"{stem}: {name} not all {a}")
        elif kind == "uniform":
            check(x.min() >= a and x.max() <= b, f"{stem}: {name} outside [{a}, {b}]")
            want = (b - a) / math.sqrt(12)
            check(abs(x.std() / want - 1) < 0.15, f"{stem}: {name} std {x.std()} vs {want}")
        elif kind == "trunc":  # target std a, bounds ±2a/C
            bound = 2 * a / C
            check(np.abs(x).max() <= bound * (1 + 1e-6), f"{stem}: {name} beyond ±{bound}")
            check(abs(x.std() / a - 1) < 0.1, f"{stem}: {name} std {x.std()} vs {a}")
            check(abs(x.mean()) < 4 * a / math.sqrt(len(x)), f"{stem}: {name} mean {x.mean()}")
    print(f"ok: {stem}: {len(tensors)} tensors")
    return tensors


HOSTILE_NAMES = ["__metadata__x", "x__metadata__", "__METADATA__", 'a"b', "back\\slash",
                 "ünïcödé/名前", "{}", "[]", ":", "\u2028", "emoji 🦀", ","]


def check_hostile_names(tmp):
    """Names that could break a hand-written header are read back exactly by the real reader;
    the reserved `__metadata__` is refused (exit 2, reserved_name)."""
    spec = {"seed": 1, "tensors": [{"name": n, "shape": [3], "init": {"name": "constant", "value": 1.5}}
                                   for n in HOSTILE_NAMES]}
    path = os.path.join(tmp, "hostile.safetensors")
    subprocess.run([BIN, "generate", "-", "-o", path], input=json.dumps(spec).encode(), check=True)
    t = load_file(path)
    check(sorted(t) == sorted(HOSTILE_NAMES), f"hostile names: {sorted(t)} != {sorted(HOSTILE_NAMES)}")
    for n in HOSTILE_NAMES:
        check(np.all(t[n] == 1.5), f"hostile names: {n!r} values")
    bad = {"seed": 1, "tensors": [{"name": "__metadata__", "shape": [1], "init": "zeros"}]}
    out = os.path.join(tmp, "reserved.safetensors")
    p = subprocess.run([BIN, "generate", "-", "-o", out], input=json.dumps(bad).encode(), capture_output=True)
    check(p.returncode == 2 and b"reserved_name" in p.stderr, f"__metadata__: exit {p.returncode} {p.stderr!r}")
    check(not os.path.exists(out), "__metadata__: a file was left behind")
    print(f"ok: {len(HOSTILE_NAMES)} hostile names read back, __metadata__ refused")


def main():
    ex = os.path.join(ROOT, "examples")
    with tempfile.TemporaryDirectory() as tmp:
        he1, he2 = math.sqrt(2 / 100), math.sqrt(2 / 64)
        check_file(os.path.join(ex, "seed_mlp.json"), tmp, "pytorch", [
            ("0.weight", "trunc", he1, None), ("1.weight", "trunc", he2, None),
            ("0.bias", "uniform", -0.1, 0.1), ("2.weight", "uniform", -1 / math.sqrt(32), 1 / math.sqrt(32)),
            ("extra.scale", "const", 0.5, None),
        ])
        g = math.sqrt(6 / 42)
        keras = check_file(os.path.join(ex, "seed_mlp_keras.json"), tmp, "keras", [
            ("dense/kernel", "trunc", he1, None), ("dense/bias", "const", 0.0, None),
            ("dense_2/kernel", "uniform", -g, g),
        ])
        flax = check_file(os.path.join(ex, "seed_mlp_flax.json"), tmp, "flax", [
            ("params/Dense_0/kernel", "trunc", he1, None), ("params/Dense_2/kernel", "trunc", math.sqrt(1 / 32), None),
        ])
        pt = load_file(os.path.join(tmp, "pytorch.safetensors"))
        # Cross-framework identity: the Keras/Flax kernel is the transposed PyTorch weight.
        check(np.array_equal(keras["dense/kernel"], pt["0.weight"].T), "keras dense/kernel != pytorch 0.weight.T")
        check(np.array_equal(flax["params/Dense_1/kernel"], pt["1.weight"].T), "flax Dense_1 != pytorch 1.weight.T")
        # bf16 is the f32 model rounded to nearest-even.
        spec = json.load(open(os.path.join(ex, "seed_mlp.json")))
        spec["dtype"] = "bfloat16"
        bf = os.path.join(tmp, "bf16.safetensors")
        subprocess.run([BIN, "generate", "-", "-o", bf], input=json.dumps(spec).encode(), check=True)
        b = load_file(bf)
        for name, arr in pt.items():
            check(b[name].dtype == ml_dtypes.bfloat16, f"bf16: {name} dtype {b[name].dtype}")
            check(np.array_equal(arr.astype(ml_dtypes.bfloat16).view(np.uint16), b[name].view(np.uint16)),
                  f"bf16: {name} is not the f32 values rounded")
        print("ok: bfloat16 = float32 rounded to nearest-even")
        # The README's loading snippet (bytes → temporary file → load_file) on bf16 bytes.
        with open(bf, "rb") as src, tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
            f.write(src.read())
            f.flush()
            readme = load_file(f.name)
        check(sorted(readme) == sorted(b), "README snippet: names differ")
        print("ok: the README loading snippet reads bfloat16")
        check_hostile_names(tmp)
    if failures:
        print(f"{len(failures)} checks failed")
        sys.exit(1)
    print("all output checks passed")


if __name__ == "__main__":
    main()
