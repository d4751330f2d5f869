"""The models of the PyTorch tests (issue 12's list) and the distribution check they share.

Each builder constructs its model on the current default device, so the same builder runs
under ``torch.device("meta")`` inside ``paraminit.torch.recording()`` and on CPU with a torch
seed for the reference ("the model's own initialization").
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten())
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.features(x))


class EmbedNorms(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16, padding_idx=0)
        self.ln = nn.LayerNorm(16)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, ids):
        h = self.ln(self.emb(ids))                      # [B, T, 16]
        return self.bn(h.reshape(h.shape[0], 4, 2, -1))


class CustomTokens(nn.Module):
    """Own parameters: a class token, position embeddings ~ N(0, 0.02) by scalar arithmetic on
    randn, a randn matrix and a head re-initialized by the module's own init loop."""

    def __init__(self, d=32, n=8):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, n + 1, d) * 0.02)
        self.mix = nn.Parameter(torch.randn(d, d))
        self.scale = nn.Parameter(torch.ones(d) * 0.5)
        self.head = nn.Linear(d, 4)
        self.register_buffer("step", torch.tensor(0, dtype=torch.long))
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, x):                               # x: [B, n, d]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.head((x @ self.mix * self.scale)[:, 0])


def tiny_gpt_neox():
    from transformers import AutoModelForCausalLM, GPTNeoXConfig

    cfg = GPTNeoXConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, vocab_size=500, max_position_embeddings=64)
    return AutoModelForCausalLM.from_config(cfg)


def tiny_gemma():
    from transformers import AutoModelForCausalLM, GemmaConfig

    cfg = GemmaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, intermediate_size=128, vocab_size=500,
                      max_position_embeddings=64, pad_token_id=0)
    return AutoModelForCausalLM.from_config(cfg)


def tiny_bert():
    from transformers import AutoModelForMaskedLM, BertConfig

    cfg = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, vocab_size=300, max_position_embeddings=64)
    return AutoModelForMaskedLM.from_config(cfg)


def _tv(name):
    def build():
        import torchvision

        return getattr(torchvision.models, name)(weights=None)
    return build


# name -> (builder, forward inputs (a function of nothing), reference seeds)
MODELS = {
    "mlp": (lambda: nn.Sequential(nn.Linear(100, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                                  nn.Linear(32, 10)),
            lambda: (torch.randn(2, 100),), 4),
    "cnn": (SmallCNN, lambda: (torch.randn(2, 3, 16, 16),), 4),
    "transformer": (lambda: nn.Transformer(d_model=64, nhead=4, num_encoder_layers=2,
                                           num_decoder_layers=2, dim_feedforward=128),
                    lambda: (torch.randn(5, 2, 64), torch.randn(3, 2, 64)), 3),
    "lstm": (lambda: nn.LSTM(24, 32, num_layers=2, bidirectional=True, proj_size=16),
             lambda: (torch.randn(5, 2, 24),), 4),
    "embed_norms": (EmbedNorms, lambda: (torch.randint(0, 50, (2, 8)),), 4),
    "custom": (CustomTokens, lambda: (torch.randn(2, 8, 32),), 4),
    "resnet18": (_tv("resnet18"), lambda: (torch.randn(1, 3, 32, 32),), 2),
    "vit_b_16": (_tv("vit_b_16"), lambda: (torch.randn(1, 3, 224, 224),), 2),
    "gpt_neox": (tiny_gpt_neox, lambda: (torch.randint(1, 500, (1, 6)),), 3),
    "gemma": (tiny_gemma, lambda: (torch.randint(1, 500, (1, 6)),), 3),
    "bert": (tiny_bert, lambda: (torch.randint(1, 300, (1, 6)),), 3),
}

SAMPLE = 20_000  # values per tensor and source compared (a fixed-stride subsample beyond)


def _sample(x: np.ndarray) -> np.ndarray:
    if x.size <= SAMPLE:
        return x
    return x[:: int(math.ceil(x.size / SAMPLE))]


def reference(builder, seeds: int) -> dict:
    """``{name: [flat float64 arrays, one per torch seed]}`` of the model's own init on CPU."""
    out: dict = {}
    for s in range(seeds):
        torch.manual_seed(1000 + s)
        m = builder()
        for k, v in m.state_dict().items():
            out.setdefault(k, []).append(v.detach().double().reshape(-1).numpy().copy())
        del m
    return out


def std_tolerance(n: int, m: int) -> float:
    """Four and a half standard errors of the ratio of two sample stds (normal samples)."""
    return 4.5 * math.sqrt(1.0 / (2 * n) + 1.0 / (2 * m))


def compare(name: str, ours: np.ndarray, refs: list) -> None:
    """Elements every reference seed agrees on (constants, zero rows, identity) must be equal
    exactly; the others must match in distribution (two-sample KS, p > 1e-3) and, where there
    are enough of them for it to be decisive, in standard deviation (catches a 5% error)."""
    ref = np.stack(refs)
    fixed = np.all(ref == ref[0], axis=0) if len(refs) > 1 else np.zeros(ours.shape, bool)
    assert ours.shape == ref[0].shape, name
    if fixed.any() and ours.size > 4096:
        # Two seeds' f32 draws coincide now and then (about once per 2^22 pairs): an agreed
        # value is structural when it is 0 or ±1 or repeats, not when it is a lone draw.
        vals, counts = np.unique(ref[0][fixed], return_counts=True)
        structural = vals[(counts > 1) | np.isin(vals, [0.0, 1.0, -1.0])]
        fixed &= np.isin(ref[0], structural)
    if fixed.any():
        np.testing.assert_array_equal(ours[fixed], ref[0][fixed], err_msg=f"{name}: constants")
        # Exact zeros are +0.0 or -0.0 alike in torch; compare the values, not the bits.
    vary = ~fixed
    if not vary.any():
        return
    a = _sample(ours[vary])
    b = np.concatenate([_sample(r[vary]) for r in refs])
    p = stats.ks_2samp(a, b).pvalue
    assert p > 1e-3, f"{name}: KS p = {p:.2e} (ours std {a.std():.4g}, torch {b.std():.4g})"
    tol = std_tolerance(a.size, b.size)
    if tol < 0.05 and b.std() > 0:
        ratio = a.std() / b.std()
        assert abs(ratio - 1) < tol, f"{name}: std ratio {ratio:.4f} (tolerance {tol:.3f})"
