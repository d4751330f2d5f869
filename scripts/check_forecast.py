#!/usr/bin/env python3
"""The residual-stream forecast of /v1/analyze against a real forward and backward pass in
transformers: a Llama built from a config, loaded with the weights paraminit generates under
several recipes, run on a batch of single-token sequences (with one token the attention output
is exactly the value projection, the case where the forecast's attention assumption is exact).
Per block it compares the forecast residual variance with the measured one (forward hooks on
the decoder layers) and the forecast gradient variance at each block's input with the measured
one, from a standard-normal gradient at the top of the stream. Needs torch and transformers;
prints SKIP and exits 0 without them.

Usage: check_forecast.py path/to/paraminit
"""

import json
import os
import subprocess
import sys
import tempfile

try:
    import torch
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(0)

BIN = sys.argv[1]
CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 512,
          "intermediate_size": 1024, "num_hidden_layers": 8, "num_attention_heads": 8,
          "num_key_value_heads": 4, "vocab_size": 4096, "tie_word_embeddings": False}
RECIPES = [None, "megatron_scaled", "olmo_mitchell", "torchtitan", {"name": "mup", "base_width": 128}, "deepnet"]
BATCH = 4096


def paraminit(cmd, spec, tmp):
    path = os.path.join(tmp, "spec.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    if cmd == "generate":
        out = os.path.join(tmp, "model.safetensors")
        subprocess.run([BIN, "generate", path, "-o", out], check=True, stderr=subprocess.DEVNULL)
        return out
    return json.loads(subprocess.run([BIN, cmd, path], check=True, capture_output=True).stdout)


def measure(weights):
    cfg = LlamaConfig(**{k: v for k, v in CONFIG.items() if k != "architectures"})
    model = LlamaForCausalLM(cfg).double()
    missing, unexpected = model.load_state_dict({k: v.double() for k, v in load_file(weights).items()}, strict=False)
    assert not unexpected and all("rotary" in m for m in missing), (missing, unexpected)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, CONFIG["vocab_size"], (BATCH, 1), generator=g)
    inputs, outputs = [], []

    def hook(_m, args, kwargs, out):
        x = args[0] if args else kwargs["hidden_states"]
        x.retain_grad()
        inputs.append(x)
        outputs.append(out[0] if isinstance(out, tuple) else out)

    hs = [layer.register_forward_hook(hook, with_kwargs=True) for layer in model.model.layers]
    model.model(input_ids=ids)
    for h in hs:
        h.remove()
    top = outputs[-1]
    grad = torch.randn(top.shape, generator=g, dtype=top.dtype)
    (top * grad).sum().backward()
    resid = [o.detach().pow(2).mean().item() for o in outputs]
    grads = [x.grad.pow(2).mean().item() / grad.pow(2).mean().item() for x in inputs]
    return resid, grads


def main():
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for r in RECIPES:
            spec = {"seed": 1, "hf_config": CONFIG}
            if r is not None:
                spec["recipe"] = r
            fc = paraminit("analyze", spec, tmp)["forecast"]["layers"]
            resid, grads = measure(paraminit("generate", spec, tmp))
            name = json.dumps(r)
            worst_f = max(abs(m / f["residual_variance"] - 1) for m, f in zip(resid, fc))
            worst_b = max(abs(m / f["gradient_variance"] - 1) for m, f in zip(grads, fc))
            # Variance within 5%: a 5% std error (10% in variance) fails; measured worst is ~1.7%.
            ok = worst_f < 0.05 and worst_b < 0.05
            failed += not ok
            print(f"{'ok' if ok else 'FAIL'}: {name}: residual variance within {worst_f:.1%}, gradient variance within {worst_b:.1%} over {len(fc)} blocks"
                  f" (block 0: forecast {fc[0]['residual_variance']:.4g} / measured {resid[0]:.4g}; gradient at block 0 {fc[0]['gradient_variance']:.4g} / {grads[0]:.4g})")
    print(f"forecast: {len(RECIPES) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
