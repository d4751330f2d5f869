#!/usr/bin/env python3
"""paraminit's `hf_config` answer checked against real transformers, class by class.

Usage: scripts/hf_check.py PARAMINIT_BINARY [--quick] [--seeds N] [--only SUBSTRING] [-v]
       scripts/hf_check.py --url http://localhost:8080 [...]   (a running service, over HTTP)

For every supported class (and a few variants of each family) it builds the model from a tiny
config with transformers (`Class._from_config`, which honours the config's dtype), writes it with
`save_pretrained`, asks the paraminit CLI (`generate`, the service's core) for the same
`config.json`, and checks:

1. the file's tensor names, shapes and dtypes equal the ones `save_pretrained` wrote, in the
   same order;
2. `Class.from_pretrained` on paraminit's file (next to HF's config.json) reports nothing
   missing, unexpected or mismatched, and no load errors;
3. per tensor, against the class's own initialization of the same config: constants are the
   same constant exactly; rows that are exactly zero (padding rows) are the same rows; every
   random tensor passes a two-sample Kolmogorov–Smirnov test (p > 1e-3) on the values pooled
   over N torch seeds vs N paraminit seeds, and its standard deviation agrees within four
   standard errors of the ratio (capped at 5%, so a 5% std error fails wherever the pooled
   sample is big enough to see it: ~8000 values per side).

`--quick` is the CI-sized subset: the LM (or top) class and one head per family, 3 seeds. Exits non-zero on any failure.
Skips (exit 0) when torch, transformers or scipy is missing.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

try:
    import numpy as np
    import torch
    import transformers
    from safetensors import safe_open
    from scipy.stats import ks_2samp
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e} (pip install torch transformers safetensors scipy)")
    sys.exit(0)

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

DEC = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
           num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
           bos_token_id=None, eos_token_id=None, pad_token_id=None)
MOE = dict(DEC, num_experts=3, num_local_experts=3, moe_intermediate_size=16,
           num_experts_per_tok=2)
ENC = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
           intermediate_size=48, max_position_embeddings=40)
T5C = dict(vocab_size=96, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
           relative_attention_num_buckets=8, decoder_start_token_id=0)
VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
           image_size=16, patch_size=4)
DB = dict(vocab_size=96, dim=32, hidden_dim=48, n_layers=2, n_heads=4, max_position_embeddings=40)
G2 = dict(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=40, bos_token_id=None,
          eos_token_id=None)

HEADS = ["ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering"]

# (model_type, class prefix, base config, LM class suffix, extra classes)
FAMILIES = [
    ("llama", "Llama", DEC, "ForCausalLM", HEADS),
    ("mistral", "Mistral", DEC, "ForCausalLM", HEADS),
    ("qwen2", "Qwen2", DEC, "ForCausalLM", HEADS),
    ("qwen3", "Qwen3", DEC, "ForCausalLM", HEADS),
    ("gemma", "Gemma", dict(DEC, pad_token_id=0), "ForCausalLM", HEADS[:2]),
    ("gemma2", "Gemma2", dict(DEC, pad_token_id=0), "ForCausalLM", HEADS[:2]),
    ("gemma3_text", "Gemma3", dict(DEC, pad_token_id=0), "ForCausalLM", []),
    ("mixtral", "Mixtral", MOE, "ForCausalLM", HEADS),
    ("qwen2_moe", "Qwen2Moe", dict(MOE, shared_expert_intermediate_size=24), "ForCausalLM", HEADS),
    ("qwen3_moe", "Qwen3Moe", MOE, "ForCausalLM", HEADS),
    ("phi3", "Phi3", DEC, "ForCausalLM", HEADS[:2]),
    ("olmo2", "Olmo2", dict(DEC, pad_token_id=1), "ForCausalLM", HEADS[:1]),
    ("gpt_neox", "GPTNeoX", dict(DEC, num_key_value_heads=None), "ForCausalLM", HEADS),
    ("gpt2", "GPT2", G2, "LMHeadModel", HEADS),
    ("bert", "Bert", ENC, "ForMaskedLM", HEADS),
    ("roberta", "Roberta", ENC, "ForMaskedLM", HEADS),
    ("distilbert", "DistilBert", DB, "ForMaskedLM", HEADS),
    ("t5", "T5", T5C, "ForConditionalGeneration", ["EncoderModel"] + HEADS),
    ("vit", "ViT", VIT, "ForImageClassification", []),
]

BASE_NAMES = {"gemma3_text": "Gemma3TextModel"}
EXTRA_NAMES = {("gemma3_text", "ForSequenceClassification"): "Gemma3TextForSequenceClassification"}


def cases(quick):
    out = []
    for mt, pre, cfg, lm, extra in FAMILIES:
        base = BASE_NAMES.get(mt, pre + "Model")
        lmc = pre + lm if not lm.startswith("LM") else pre + lm
        fam = [(lmc, cfg), (base, cfg)]
        for h in extra:
            name = EXTRA_NAMES.get((mt, h), pre + h)
            labels = 2 if (mt == "distilbert" and h == "ForQuestionAnswering") else 3
            fam.append((name, dict(cfg, num_labels=labels)))
        if mt == "gemma3_text":
            fam.append(("Gemma3TextForSequenceClassification", dict(cfg, num_labels=3)))
        # Variants: tying, biases, init range, dtype, family switches.
        if mt in ("llama", "qwen3", "mixtral", "phi3", "olmo2", "gpt_neox"):
            fam.append((lmc, dict(cfg, tie_word_embeddings=True, initializer_range=0.05)))
        if mt in ("gemma", "gemma2", "gemma3_text"):
            fam.append((lmc, dict(cfg, tie_word_embeddings=False, pad_token_id=None)))
        if mt in ("llama", "qwen3", "olmo2", "gemma"):
            fam.append((lmc, dict(cfg, attention_bias=True)))
        if mt in ("qwen2_moe", "qwen3_moe"):
            fam.append((lmc, dict(cfg, decoder_sparse_step=2, mlp_only_layers=[0])))
        if mt == "qwen2_moe":
            fam.append((lmc, dict(cfg, qkv_bias=False)))
        if mt in ("bert", "roberta", "distilbert"):
            fam.append((lmc, dict(cfg, tie_word_embeddings=False)))
        if mt in ("bert", "roberta"):
            fam.append((lmc, dict(cfg, pad_token_id=3, dtype="bfloat16")))
        if mt == "t5":
            fam.append((lmc, dict(cfg, feed_forward_proj="gated-gelu", num_decoder_layers=1,
                                   tie_word_embeddings=False, initializer_factor=0.5)))
        if mt == "vit":
            fam.append((base, dict(cfg, image_size=[16, 8], qkv_bias=False, num_channels=1)))
        if mt == "gpt2":
            fam.append((lmc, dict(cfg, tie_word_embeddings=False)))
        if mt == "t5":
            fam.append((base, dict(cfg, initializer_factor=0.0)))
        if mt == "mixtral":
            # The MoE overrides read initializer_range without the `or 0.02` fallback.
            fam.append((lmc, dict(cfg, initializer_range=0.0)))
        if mt == "gemma":
            fam.append((lmc, dict(cfg, pad_token_id=5, dtype="float16")))
        if mt == "qwen3":
            fam.append((base, {k: v for k, v in cfg.items() if k != "head_dim"}))
        if mt == "llama":
            fam.append((lmc, dict(cfg, num_key_value_heads=1, mlp_bias=True, pad_token_id=2)))
        if quick:
            heads = [x for x in fam if x[0].endswith("ForSequenceClassification")]
            fam = fam[:2] if mt in ("t5", "vit") else fam[:1] + heads[:1]
        out += [(mt, c, k, cfg) for c, k in fam]
    return out


def header(path):
    with safe_open(path, "pt") as f:
        return [(k, tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()]


def file_order(path):
    # safe_open lists keys sorted; the file's own order is the header's data offsets.
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        h = json.loads(fh.read(n))
    h.pop("__metadata__", None)
    return [k for k, _ in sorted(h.items(), key=lambda kv: kv[1]["data_offsets"][0])]


def tensors(path):
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k).float().numpy() for k in f.keys()}


def zero_rows(a):
    if a.ndim != 2:
        return set()
    return set(np.nonzero(np.all(a == 0, axis=1))[0].tolist())


def run(binary, url, mt, cls_name, kw, seeds, verbose):
    C = getattr(transformers, cls_name)
    cfg = transformers.AutoConfig.for_model(mt, **kw)
    fails = []
    with tempfile.TemporaryDirectory(prefix="hfcheck-") as d:
        hf_files = []
        for s in range(seeds):
            torch.manual_seed(s)
            m = C._from_config(cfg)
            out = f"{d}/hf{s}"
            m.save_pretrained(out)
            hf_files.append(f"{out}/model.safetensors")
        config = json.load(open(f"{d}/hf0/config.json"))
        ours = []
        for s in range(seeds):
            spec = f"{d}/req{s}.json"
            json.dump({"seed": 1000 + s, "hf_config": config}, open(spec, "w"))
            od = f"{d}/ours{s}"
            os.makedirs(od)
            if url:
                body = json.dumps({"seed": 1000 + s, "hf_config": config}).encode()
                rq = urllib.request.Request(f"{url}/v1/init?format=safetensors", data=body,
                                            headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(rq) as r, open(f"{od}/model.safetensors", "wb") as fo:
                        fo.write(r.read())
                except urllib.error.HTTPError as e:
                    return [f"paraminit refused: {e.code} {e.read()[:400]!r}"]
            else:
                r = subprocess.run([binary, "generate", spec, "-o", f"{od}/model.safetensors"],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    return [f"paraminit refused: {r.stderr.strip()[:400]}"]
            json.dump(config, open(f"{od}/config.json", "w"))
            ours.append(f"{od}/model.safetensors")
        h_hf, h_ours = header(hf_files[0]), header(ours[0])
        if h_hf != h_ours:
            a, b = set(h_hf), set(h_ours)
            fails.append(f"header differs: only HF {sorted(a - b)[:6]}, only ours {sorted(b - a)[:6]}")
        if file_order(hf_files[0]) != file_order(ours[0]):
            fails.append("file order differs")
        _, info = C.from_pretrained(os.path.dirname(ours[0]), output_loading_info=True)
        for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
            if info.get(k):
                fails.append(f"from_pretrained {k}: {sorted(info[k])[:6]}")
        if fails:
            return fails
        hf_t = [tensors(f) for f in hf_files]
        our_t = [tensors(f) for f in ours]
        for name, shape, _ in h_hf:
            hv = [t[name] for t in hf_t]
            ov = [t[name] for t in our_t]
            lo, hi = min(x.min() for x in hv), max(x.max() for x in hv)
            if lo == hi:
                if not all(np.all(x == lo) for x in ov):
                    fails.append(f"{name}: HF constant {lo}, ours {ov[0].ravel()[:4]}")
                continue
            zr = zero_rows(hv[0])
            if any(zero_rows(x) != zr for x in hv[1:]) or any(zero_rows(x) != zr for x in ov):
                fails.append(f"{name}: zero rows HF {sorted(zr)}, ours {sorted(zero_rows(ov[0]))}")
                continue
            keep = [i for i in range(shape[0]) if i not in zr] if zr else None
            pool = lambda xs: np.concatenate([(x[keep] if keep else x).ravel() for x in xs])
            a, b = pool(hv), pool(ov)
            p = ks_2samp(a, b).pvalue
            ratio = b.std() / a.std()
            se = math.sqrt(1 / (2 * len(a)) + 1 / (2 * len(b)))
            tol = min(4 * se, 0.05) if len(a) >= 8000 else 4 * se
            if p <= 1e-3 or abs(ratio - 1) > tol:
                fails.append(f"{name}: KS p={p:.2e}, std ratio {ratio:.4f} (tol {tol:.3f}, n={len(a)})")
            elif verbose:
                print(f"    {name:64s} n={len(a):6d} p={p:.3f} std {a.std():.4f}/{b.std():.4f}")
    return fails


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", nargs="?", help="the paraminit binary (its `generate` command)")
    ap.add_argument("--url", help="a running paraminit service instead of the binary")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int)
    ap.add_argument("--only")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if not a.binary and not a.url:
        ap.error("give the paraminit binary or --url")
    seeds = a.seeds or (3 if a.quick else 8)
    todo = [c for c in cases(a.quick) if not a.only or a.only in c[1] or a.only == c[0]]
    bad = 0
    for mt, cls_name, kw, base in todo:
        tag = {k: v for k, v in kw.items() if k not in base or base[k] != v}
        try:
            fails = run(a.binary, a.url, mt, cls_name, kw, seeds, a.verbose)
        except Exception as e:  # a transformers error is a failed case, not a crash
            fails = [f"{type(e).__name__}: {e}"]
        status = "ok" if not fails else "FAIL"
        print(f"{status:4s} {cls_name} {json.dumps(tag) if tag else ''}")
        for f in fails:
            print(f"     {f}")
        bad += bool(fails)
    print(f"hf_check: {len(todo) - bad} of {len(todo)} classes/variants match transformers "
          f"{transformers.__version__} ({seeds} seeds)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
