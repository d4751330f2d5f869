"""Checks docs/determinism.md against the binary: the independent reimplementation in
`paraminit_reimpl.py` (written from the document alone) must produce the same safetensors file,
byte for byte, and the same JSON body (with the free-text `reason` entries removed) as
`paraminit generate` for every request in `scripts/reimpl/requests/` and `examples/`.

Usage: python scripts/reimpl/check.py target/release/paraminit
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import tempfile

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import paraminit_reimpl as ri  # noqa: E402


def version() -> str:
    """The service version: the Cargo package version (determinism.md, metadata table)."""
    text = (ROOT / "Cargo.toml").read_text()
    return re.search(r'^version = "([^"]+)"', text, re.M).group(1)


def first_difference(a: bytes, b: bytes) -> str:
    n = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
    return f"lengths {len(a)} vs {len(b)}, first difference at byte {n}: {a[n:n + 80]!r} vs {b[n:n + 80]!r}"


def unit_checks() -> None:
    # The document's examples.
    assert ri.stream_id("tensor/w") == 0x20F912F97121F1EE
    s, c = ri.sincos_2pi(np.array([0.5], dtype=np.float32))
    assert (s.view(np.uint32)[0], c.view(np.uint32)[0]) == (0x80000000, 0xBF800000)
    assert ri.fmt64(1e-6) == "1e-6" and ri.fmt64(1e-5) == "0.00001" and ri.fmt64(3.0) == "3.0"
    assert ri.fmt64(1e15) == "1000000000000000.0" and ri.fmt64(1e16) == "1e16"
    # ln agrees with the f64 logarithm to < 1 ulp on a sweep (a sanity check of the transcription).
    x = np.linspace(1e-6, 1.0, 100001, dtype=np.float32)
    err = np.abs(ri.ln_f32(x).astype(np.float64) - np.log(x.astype(np.float64)))
    assert np.all(err <= np.spacing(np.abs(np.log(x)).astype(np.float32)).astype(np.float64) + 1e-45)


def main() -> int:
    binary = sys.argv[1]
    unit_checks()
    ver = version()
    requests = sorted((HERE / "requests").glob("*.json")) + sorted((ROOT / "examples").glob("*.json"))
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in requests:
            req = json.loads(path.read_text())
            for fmt in ("safetensors", "json"):
                out = pathlib.Path(tmp) / f"out.{fmt}"
                subprocess.run([binary, "generate", str(path), "-o", str(out), "--format", fmt], check=True)
                got = out.read_bytes()
                if fmt == "safetensors":
                    want = ri.safetensors_file(req, ver)
                else:
                    want, got = ri.json_body(req, ver), ri.strip_reasons(got)
                if got == want:
                    print(f"ok   {path.relative_to(ROOT)} ({fmt}, {len(got)} bytes)")
                else:
                    failures += 1
                    print(f"FAIL {path.relative_to(ROOT)} ({fmt}): {first_difference(want, got)}")
    print(f"reimplementation check: {len(requests) * 2 - failures} ok, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
