#!/usr/bin/env python3
"""Writes tests/fixtures/hf_families.json: one tiny model per supported class family and head,
read off transformers (the oracle) for tests/arch_hf_families.rs.

Usage: scripts/hf_fixtures.py [OUT]   (default tests/fixtures/hf_families.json)

Per case: the `config.json` that `save_pretrained` wrote, and every tensor of the written
`model.safetensors` in file order with its shape and dtype and what the class's own
initialization gives it, pooled over 8 torch seeds: `{"const": v}` when every element of every
seed is v, else `{"std": s, "n": count, "zero_rows": [...]}` (the empirical std of the values
outside the rows that are exactly zero in every seed). The cases are those of
scripts/hf_check.py --quick plus every head class.
"""
import json
import os
import sys
import tempfile

import numpy as np
import torch
import transformers
from safetensors import safe_open

sys.path.insert(0, os.path.dirname(__file__))
import hf_check  # noqa: E402

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
SEEDS = 8


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/hf_families.json"
    picked, seen = [], set()
    for mt, cls_name, kw, base in hf_check.cases(False):
        if cls_name in seen and kw is base:
            continue
        # Every class once, plus the first variant of each family.
        key = cls_name if kw is base or "num_labels" in kw else (mt, "variant")
        if key in seen:
            continue
        seen.add(key)
        picked.append((mt, cls_name, kw))
    cases = []
    for mt, cls_name, kw in picked:
        C = getattr(transformers, cls_name)
        cfg = transformers.AutoConfig.for_model(mt, **kw)
        per_seed = []
        with tempfile.TemporaryDirectory() as d:
            for s in range(SEEDS):
                torch.manual_seed(s)
                C._from_config(cfg).save_pretrained(f"{d}/{s}")
                per_seed.append(f"{d}/{s}/model.safetensors")
            config = json.load(open(f"{d}/0/config.json"))
            order = hf_check.file_order(per_seed[0])
            with safe_open(per_seed[0], "pt") as f:
                meta = {k: (list(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
            vals = [hf_check.tensors(p) for p in per_seed]
        tensors = []
        for name in order:
            shape, dtype = meta[name]
            xs = [v[name] for v in vals]
            lo, hi = min(x.min() for x in xs), max(x.max() for x in xs)
            if lo == hi:
                init = {"const": float(lo)}
            else:
                zr = sorted(set.intersection(*[hf_check.zero_rows(x) for x in xs]))
                keep = [i for i in range(shape[0]) if i not in zr] if zr else None
                pooled = np.concatenate([(x[keep] if keep else x).ravel() for x in xs])
                init = {"std": float(pooled.std()), "n": int(pooled.size), "zero_rows": zr}
            tensors.append({"name": name, "shape": shape, "dtype": dtype, "init": init})
        cases.append({"class": cls_name, "config": config, "tensors": tensors})
        print(f"{cls_name}: {len(tensors)} tensors")
    doc = {
        "about": "written by scripts/hf_fixtures.py from transformers "
                 f"{transformers.__version__}, torch {torch.__version__}, {SEEDS} seeds",
        "cases": cases,
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=0, sort_keys=False)
        f.write("\n")


if __name__ == "__main__":
    main()
