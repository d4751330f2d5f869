#!/usr/bin/env python3
"""PyTorch and NumPy on this machine, then paraminit's bench, then the ratios of issue 4.

Installs nothing: run it with a Python that has `torch` and `numpy` (PyPI), e.g.

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch numpy
    /tmp/peers/bin/python scripts/bench_peers.py

Peers: n = 2^26 float32 elements (``--log2n``), one warm-up and ``--runs`` timed runs, median,
for each thread count (``torch.set_num_threads``; NumPy's generators are single-threaded, so
its figure is the same whatever the count). Then ``cargo run --release --bin bench`` with the
same n, runs and thread counts, and the ratios paraminit / peer at equal thread counts.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time


def timed(runs, f):
    f()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def peers(n, runs, threads):
    out = {}
    try:
        import numpy as np
    except ImportError:
        np = None
        print("numpy not importable: skipped", file=sys.stderr)
    try:
        import torch
    except ImportError:
        torch = None
        print("torch not importable: skipped", file=sys.stderr)
    if np is not None:
        rng = np.random.default_rng(42)
        buf = np.empty(n, dtype=np.float32)
        t = timed(runs, lambda: rng.standard_normal(out=buf, dtype=np.float32))
        for th in threads:
            out[("numpy", "standard_normal", th)] = n / t
        t = timed(runs, lambda: rng.random(out=buf, dtype=np.float32))
        for th in threads:
            out[("numpy", "random", th)] = n / t
    if torch is not None:
        torch.manual_seed(42)
        x = torch.empty(n, dtype=torch.float32)
        for th in threads:
            torch.set_num_threads(th)
            cases = {
                "normal_": lambda: x.normal_(),
                "uniform_": lambda: x.uniform_(-0.1, 0.1),
                "trunc_normal_": lambda: torch.nn.init.trunc_normal_(x, std=1.0, a=-2.0, b=2.0),
                "trunc_normal_002": lambda: torch.nn.init.trunc_normal_(x, std=0.02),
            }
            for name, f in cases.items():
                out[("torch", name, th)] = n / timed(runs, f)
            w = torch.empty(4096, 4096, dtype=torch.float32)
            t = timed(max(1, min(runs, 3)), lambda: torch.nn.init.orthogonal_(w))
            out[("torch", "orthogonal_seconds", th)] = t
    return out


def rust_bench(args):
    cmd = [
        "cargo", "run", "--release", "--quiet", "--bin", "bench", "--",
        "--log2n", str(args.log2n), "--runs", str(args.runs),
        "--threads", ",".join(map(str, args.threads)), "--tsv",
    ]
    if args.only:
        cmd += ["--only", args.only]
    if args.formats:
        cmd += ["--formats", args.formats]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run(cmd, cwd=root, stdout=subprocess.PIPE, text=True, check=True)
    rows = {}
    for line in p.stdout.splitlines():
        if line.startswith("TSV\t"):
            _, init, dtype, fmt, th, meps, gbs, secs, cpu = line.split("\t")
            rows[(init, dtype, fmt, int(th))] = (float(meps) * 1e6, float(gbs), float(secs), float(cpu))
        else:
            print(line)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log2n", type=int, default=26)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")],
                    default=[1, os.cpu_count() or 1])
    ap.add_argument("--only", default="")
    ap.add_argument("--formats", default="")
    ap.add_argument("--skip-rust", action="store_true")
    args = ap.parse_args()
    n = 1 << args.log2n
    try:
        load = os.getloadavg()
        print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    except OSError:
        pass
    p = peers(n, args.runs, args.threads)
    print(f"== peers (n = 2^{args.log2n} f32, median of {args.runs})")
    for (lib, name, th), v in sorted(p.items()):
        if name.endswith("_seconds"):
            print(f"{lib:6} {name:20} {th} thr  {v:8.3f} s")
        else:
            print(f"{lib:6} {name:20} {th} thr  {v / 1e6:8.1f} Melem/s")
    if args.skip_rust:
        return
    print("== paraminit bench")
    r = rust_bench(args)
    print("== ratios (paraminit / peer, same thread count; goal in brackets)")
    goals = [
        ("normal", "torch", "normal_", 2.5),
        ("uniform", "torch", "uniform_", 2.5),
        ("trunc_normal", "torch", "trunc_normal_", 3.0),
        ("trunc_normal_002", "torch", "trunc_normal_002", 3.0),
        ("normal", "numpy", "standard_normal", 6.0),
    ]
    for th in args.threads:
        for ours, lib, theirs, goal in goals:
            a = r.get((ours, "f32", "safetensors", th))
            b = p.get((lib, theirs, th))
            if a and b:
                ratio = a[0] / b
                ok = "met" if ratio >= goal else "NOT met"
                print(f"{th} thr  {ours:17} / {lib} {theirs:17} = {ratio:5.2f}x  [>= {goal}x: {ok}]")
        a = r.get(("orthogonal", "f32", "safetensors", th))
        b = p.get(("torch", "orthogonal_seconds", th))
        if a and b:
            ratio = a[2] / b
            ok = "met" if ratio <= 2.0 else "NOT met"
            print(f"{th} thr  orthogonal 4096^2 time: {a[2]:.3f} s vs torch {b:.3f} s = "
                  f"{ratio:5.2f}x the time  [<= 2x: {ok}]")
        for init in ("uniform", "normal", "trunc_normal"):
            f32 = r.get((init, "f32", "safetensors", th))
            for dt in ("bf16", "f16"):
                x = r.get((init, dt, "safetensors", th))
                if f32 and x:
                    ratio = x[0] / f32[0]
                    ok = "met" if ratio >= 0.95 else "NOT met"
                    print(f"{th} thr  {init:17} {dt:4} elem/s / f32 elem/s = {ratio:5.2f}  "
                          f"[>= 1 (5% noise): {ok}]")
    try:
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    except OSError:
        pass


if __name__ == "__main__":
    main()
