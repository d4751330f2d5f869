#!/usr/bin/env python3
"""PyTorch and NumPy on this machine, then paraminit's bench, then the ratios of issue 4.

Installs nothing: run it with a Python that has `torch` and `numpy` (PyPI), e.g.

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch numpy
    /tmp/peers/bin/python scripts/bench_peers.py

Peers: n = 2^26 float32 elements (``--log2n``), one warm-up and ``--runs`` timed runs, median,
for each thread count (``torch.set_num_threads``; NumPy's generators are single-threaded, so
its figure is the same whatever the count). Then ``cargo run --release --bin bench`` with the
same n, runs and thread counts, and the ratios paraminit / peer at equal thread counts (the
bench itself ends with the JSON goal of issue 17: normal f32 >= 80 M numbers/s on 2 threads).

Two further comparisons (issue 17), each optional:

``--transport``: the transport's ceiling. The release server (``target/release/paraminit``)
and nginx (Debian's package) on loopback ports; the same safetensors file (a normal f32 tensor
of ``--transport-gib`` GiB) is fetched with ``curl -o /dev/null`` from nginx, which sends it
from the page cache (read once before, so it is cached), and from the service, which generates
it; also ``zeros`` from the service (no generation). GB/s of each, two runs.

``--e2e``: end to end against transformers. A TinyLlama-shaped ``LlamaConfig`` (hidden 2048,
intermediate 5632, 22 layers, 32 heads, 4 KV heads, vocab 32000; ``--llama-layers`` to shrink
it) in bf16 and f32: ``LlamaForCausalLM(config)`` + ``save_pretrained`` (safetensors) against
POST /v1/init with the same config as ``hf_config``, with curl to a file and to /dev/null.
Needs disk for two copies of the model (4.4 GB each in f32 at full size), deleted after use.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(runs, f):
    f()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def peers(n, runs, threads, only=()):
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
            # With --only, just the peers of the chosen initializers.
            ours = {"normal_": "normal", "uniform_": "uniform", "trunc_normal_": "trunc_normal",
                    "trunc_normal_002": "trunc_normal_002"}
            for name, f in cases.items():
                if only and ours[name] not in only:
                    continue
                out[("torch", name, th)] = n / timed(runs, f)
            if only and "orthogonal" not in only:
                continue
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


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_server(bin_path, port, tmp):
    env = dict(os.environ, PARAMINIT_ADDR=f"127.0.0.1:{port}", RUST_LOG="warn")
    proc = subprocess.Popen([bin_path], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(tmp, "server.log"), "w"))
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("paraminit did not start")


def curl(args):
    """(seconds, bytes, http code) of one curl transfer; args are extra curl arguments."""
    out = subprocess.run(["curl", "-s", "-w", "%{time_total} %{size_download} %{http_code}", *args],
                         stdout=subprocess.PIPE, text=True, check=True).stdout.split()
    return float(out[-3]), int(out[-2]), out[-1]


def post_args(url, body_path, out):
    return ["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", f"@{body_path}",
            "-o", out, url]


def transport(args):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    bin_path = os.path.join(ROOT, "target", "release", "paraminit")
    if not os.path.exists(nginx) or not os.path.exists(bin_path) or not shutil.which("curl"):
        print("transport: needs nginx, curl and target/release/paraminit: skipped", file=sys.stderr)
        return
    tmp = tempfile.mkdtemp(prefix="paraminit-transport-")
    os.chmod(tmp, 0o755)
    port, nport = free_port(), free_port()
    server = start_server(bin_path, port, tmp)
    n = int(args.transport_gib * (1 << 30)) // 4
    base = f"http://127.0.0.1:{port}/v1/init?format=safetensors"
    bodies = {}
    for init in ("normal", "zeros"):
        bodies[init] = os.path.join(tmp, f"{init}.json")
        with open(bodies[init], "w") as f:
            json.dump({"seed": 42, "tensors": [{"name": "w", "shape": [n], "init": init}]}, f)
    os.makedirs(os.path.join(tmp, "www"))
    page = os.path.join(tmp, "www", "normal.safetensors")
    ng = None
    try:
        curl(post_args(base, bodies["normal"], page))
        with open(page, "rb") as f:  # into the page cache
            while f.read(1 << 24):
                pass
        conf = os.path.join(tmp, "nginx.conf")
        user = "user root;\n" if os.geteuid() == 0 else ""
        with open(conf, "w") as f:
            f.write(f"""{user}worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/error.log;
events {{}}
http {{ access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path {tmp}/b; proxy_temp_path {tmp}/p; fastcgi_temp_path {tmp}/f;
  uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;
  server {{ listen 127.0.0.1:{nport}; root {tmp}/www; }} }}
""")
        ng = subprocess.Popen([nginx, "-p", tmp, "-c", conf, "-g", "daemon off;"])
        time.sleep(0.5)
        print(f"== transport (loopback, curl -o /dev/null, {os.path.getsize(page) / 1e9:.2f} GB file)")
        rows = [("nginx, file from the page cache", ["-o", "/dev/null", f"http://127.0.0.1:{nport}/normal.safetensors"]),
                ("paraminit normal f32 (generated)", post_args(base, bodies["normal"], "/dev/null")),
                ("paraminit zeros f32", post_args(base, bodies["zeros"], "/dev/null"))]
        for label, a in rows:
            figs = []
            for _ in range(2):
                t, b, code = curl(a)
                figs.append(f"{b / t / 1e9:.2f}" if code == "200" else f"HTTP {code}")
            print(f"{label:36} {', '.join(figs)} GB/s")
    finally:
        if ng:
            ng.terminate()
            ng.wait()
        server.terminate()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def e2e(args):
    try:
        import torch
        import transformers
    except ImportError:
        print("e2e: torch/transformers not importable: skipped", file=sys.stderr)
        return
    bin_path = os.path.join(ROOT, "target", "release", "paraminit")
    tmp = tempfile.mkdtemp(prefix="paraminit-e2e-", dir=args.e2e_dir)
    port = free_port()
    server = start_server(bin_path, port, tmp)
    torch.set_num_threads(max(args.threads))
    print(f"== end to end: TinyLlama-shaped LlamaConfig, {args.llama_layers} layers, "
          f"{torch.get_num_threads()} torch threads")
    try:
        for dtype, tdt in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
            cfg = transformers.LlamaConfig(
                hidden_size=2048, intermediate_size=5632, num_hidden_layers=args.llama_layers,
                num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
                max_position_embeddings=2048, torch_dtype=dtype)
            out_dir = os.path.join(tmp, "hf")
            t = time.perf_counter()
            old = torch.get_default_dtype()
            torch.set_default_dtype(tdt)
            try:
                model = transformers.LlamaForCausalLM(cfg)
            finally:
                torch.set_default_dtype(old)
            t_init = time.perf_counter() - t
            model.save_pretrained(out_dir, safe_serialization=True)
            t_hf = time.perf_counter() - t
            params = sum(p.numel() for p in model.parameters())
            del model
            size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir)
                       if f.endswith(".safetensors"))
            shutil.rmtree(out_dir)
            body = os.path.join(tmp, "req.json")
            with open(body, "w") as f:
                json.dump({"seed": 42, "dtype": dtype, "hf_config": cfg.to_dict()}, f)
            url = f"http://127.0.0.1:{port}/v1/init?format=safetensors"
            file_out = os.path.join(tmp, "model.safetensors")
            t_file, b_file, c1 = curl(post_args(url, body, file_out))
            os.remove(file_out)
            t_null, b_null, c2 = curl(post_args(url, body, "/dev/null"))
            print(f"{dtype:9} {params / 1e9:.3f} B params: transformers {t_hf:6.2f} s "
                  f"(init {t_init:.2f} s, {size / 1e9:.2f} GB written); paraminit to a file "
                  f"{t_file:6.2f} s ({b_file / 1e9:.2f} GB, HTTP {c1}), to /dev/null {t_null:6.2f} s "
                  f"(HTTP {c2}); transformers / paraminit = {t_hf / t_file:.1f}x (file), "
                  f"{t_hf / t_null:.1f}x (/dev/null)")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log2n", type=int, default=26)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")],
                    default=[1, os.cpu_count() or 1])
    ap.add_argument("--only", default="")
    ap.add_argument("--formats", default="")
    ap.add_argument("--skip-rust", action="store_true")
    ap.add_argument("--skip-peers", action="store_true", help="no torch/NumPy generation timings")
    ap.add_argument("--transport", action="store_true", help="nginx page-cache ceiling vs the service")
    ap.add_argument("--transport-gib", type=float, default=2.0)
    ap.add_argument("--e2e", action="store_true", help="transformers LlamaForCausalLM + save_pretrained vs the service")
    ap.add_argument("--llama-layers", type=int, default=22)
    ap.add_argument("--e2e-dir", default=None, help="where the temporary model files go")
    args = ap.parse_args()
    if args.transport:
        transport(args)
    if args.e2e:
        e2e(args)
    if args.transport or args.e2e:
        if args.skip_peers and args.skip_rust:
            return
    n = 1 << args.log2n
    try:
        load = os.getloadavg()
        print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    except OSError:
        pass
    p = {} if args.skip_peers else peers(n, args.runs, args.threads, [x for x in args.only.split(",") if x])
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
