#!/usr/bin/env python3
"""Benchmark: from "model class and config" to "initialized model in memory".

A TinyLlama-shaped Llama (hidden 2048, intermediate 5632, 22 layers, 32 heads, 4 KV heads,
vocab 32000; 1.1 B parameters) in bfloat16:

* paraminit: ``with paraminit.torch.recording(), torch.device("meta"): LlamaForCausalLM(cfg)``,
  then ``paraminit.torch.initialize(model, seed, dtype=torch.bfloat16)`` (materialize with
  ``to_empty``, stream the service's answer into the parameters);
* transformers: ``LlamaForCausalLM(cfg)`` with its own init, in float32 and in bfloat16
  (``torch.set_default_dtype``), same machine, same run.

Also reported: where paraminit's time goes (recording, building the request, ``to_empty``, the
stream), the service streaming the same model to nowhere (``Client.stream`` with a sink that
drops every tensor) and the gap between the two, which is what the client controls; the CPU
seconds and page faults of this process during each (on 2 cores, every CPU second the client
spends is taken from the service's generation), and the load average, since the machine may
be shared. Not a test; prints one table.

Each timed phase starts after ``gc.collect()`` (as ``timeit`` disables the collector): after
importing torch and transformers, the first phase to allocate enough otherwise pays a full
collection of the whole interpreter heap (0.19 s here), whichever phase that happens to be.

Usage: scripts/bench_client.py [--url URL | --bin target/release/paraminit] [--layers N]
"""

from __future__ import annotations

import argparse
import gc
import os
import pathlib
import resource
import socket
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients" / "python"))

import httpx  # noqa: E402
import torch  # noqa: E402

import paraminit.torch as pt  # noqa: E402
from paraminit import Client  # noqa: E402


def start(binary: str):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PARAMINIT_ADDR=f"127.0.0.1:{port}", RUST_LOG="warn")
    proc = subprocess.Popen([binary], env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the server did not start")


def usage() -> tuple:
    """(CPU seconds, minor page faults) of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_minflt


def config(layers: int):
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=layers,
                       num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
                       max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", help="a running service (else the release binary is started)")
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "paraminit"))
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--skip-f32", action="store_true", help="skip transformers' float32 run")
    args = ap.parse_args()
    from transformers import LlamaForCausalLM

    proc = None
    url = args.url
    if url is None:
        proc, url = start(args.bin)
    cfg = config(args.layers)
    rows = []
    load0 = os.getloadavg()
    try:
        # paraminit, phase by phase (initialize does the same steps in one call).
        gc.collect()
        t0 = time.perf_counter()
        with pt.recording(), torch.device("meta"):
            model = LlamaForCausalLM(cfg)
        t_record = time.perf_counter() - t0
        t0 = time.perf_counter()
        req = pt.request_for(model, 42, dtype=torch.bfloat16)
        t_request = time.perf_counter() - t0
        nparams = sum(t["shape"][0] * (t["shape"][1] if len(t["shape"]) > 1 else 1)
                      for t in req["tensors"])
        gc.collect()
        u0, t0 = usage(), time.perf_counter()
        with Client(url) as c:
            c.stream(req, lambda info: None)
        t_null, u_null = time.perf_counter() - t0, usage()
        gc.collect()
        u1, t0 = usage(), time.perf_counter()
        with Client(url) as c:
            pt.initialize(model, 42, dtype=torch.bfloat16, client=c)
        t_init, u_init = time.perf_counter() - t0, usage()
        cpu = {"null": (u_null[0] - u0[0], u_null[1] - u0[1]),
               "init": (u_init[0] - u1[0], u_init[1] - u1[1])}
        ours = t_record + t_init
        assert model.lm_head.weight.dtype == torch.bfloat16 and not model.lm_head.weight.is_meta
        w = model.model.layers[0].self_attn.q_proj.weight.float()
        check = f"q_proj std {w.std().item():.5f} (config 0.02)"
        del model, w
        gc.collect()

        # The same steps, to see where initialize's time goes.
        with pt.recording(), torch.device("meta"):
            model = LlamaForCausalLM(cfg)
        model.to(dtype=torch.bfloat16)
        t0 = time.perf_counter()
        model.to_empty(device="cpu")
        t_empty = time.perf_counter() - t0
        del model
        gc.collect()

        rows.append(("paraminit: record on meta", t_record))
        rows.append(("paraminit: request_for", t_request))
        rows.append(("paraminit: to_empty (bf16, CPU)", t_empty))
        rows.append(("paraminit: initialize (request + to_empty + stream)", t_init))
        rows.append(("paraminit: total (record + initialize)", ours))
        rows.append(("service: same request streamed to nowhere", t_null))
        rows.append(("gap: initialize - streamed to nowhere", t_init - t_null))

        torch.manual_seed(0)
        torch.set_default_dtype(torch.bfloat16)
        gc.collect()
        t0 = time.perf_counter()
        ref = LlamaForCausalLM(cfg)
        t_hf16 = time.perf_counter() - t0
        torch.set_default_dtype(torch.float32)
        del ref
        gc.collect()
        rows.append(("transformers: LlamaForCausalLM(cfg), bf16", t_hf16))
        if not args.skip_f32:
            gc.collect()
            t0 = time.perf_counter()
            ref = LlamaForCausalLM(cfg)
            t_hf32 = time.perf_counter() - t0
            del ref
            gc.collect()
            rows.append(("transformers: LlamaForCausalLM(cfg), f32", t_hf32))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
    load1 = os.getloadavg()
    print(f"TinyLlama-shaped Llama, {args.layers} layers, {nparams / 1e9:.2f} B parameters, "
          f"bfloat16; {os.cpu_count()} cores; {check}")
    print(f"  load average (1 min) {load0[0]:.1f} at the start, {load1[0]:.1f} at the end")
    for name, t in rows:
        print(f"  {name:<55} {t:7.2f} s")
    for key, name in (("init", "initialize"), ("null", "streamed to nowhere")):
        sec, faults = cpu[key]
        print(f"  client CPU during {name:<37} {sec:7.2f} s ({faults} page faults)")
    print(f"  ratio (transformers bf16 / paraminit total)              {t_hf16 / ours:7.2f} x")


if __name__ == "__main__":
    main()
