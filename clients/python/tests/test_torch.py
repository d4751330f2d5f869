"""paraminit.torch against real torch, torchvision and transformers and the release server.

For every model of issue 12's list: built on ``meta`` inside ``recording()``, the service's
answer loads with ``load_state_dict(strict=True)`` into the same class built on CPU, every tensor
matches the model's own initialization (exact where all torch seeds agree — constants, zero
rows —, else two-sample KS over several torch seeds and the std ratio), and a forward pass runs
on the initialized meta model.
"""

import pathlib

import numpy as np
import pytest
import torch
from torch import nn

import paraminit.torch as pt
from paraminit import Client

from torch_models import MODELS, compare, reference

SEED = 20251201


def _build_meta(builder):
    with pt.recording(), torch.device("meta"):
        return builder()


@pytest.mark.parametrize("name", list(MODELS))
def test_model_matches_its_own_init(name, server_url):
    builder, inputs, seeds = MODELS[name]
    refs = reference(builder, seeds)

    meta = _build_meta(builder)
    sd = pt.state_dict(meta, SEED, url=server_url)
    torch.manual_seed(0)
    cpu = builder()
    cpu.load_state_dict(sd, strict=True)
    assert list(sd) == list(cpu.state_dict())

    model = pt.initialize(meta, SEED, url=server_url)
    assert not any(t.is_meta for t in model.state_dict().values())
    got = model.state_dict()
    for k, v in got.items():
        assert v.dtype == cpu.state_dict()[k].dtype, k
        assert torch.equal(v, sd[k]), f"{k}: initialize and state_dict differ"
        compare(f"{name}:{k}", v.detach().double().reshape(-1).numpy(), refs[k])

    # A forward pass, equal to the normally built model's with the same weights (so buffers
    # outside the state dict, e.g. rotary inv_freq, were materialized correctly too).
    model.eval()
    cpu.eval()
    torch.manual_seed(1)
    x = inputs()
    with torch.no_grad():
        out, want = model(*x), cpu(*x)

    def first(o):
        return o[0] if isinstance(o, tuple) else getattr(o, "logits", o)

    assert torch.isfinite(first(out)).all()
    torch.testing.assert_close(first(out), first(want), rtol=1e-4, atol=1e-5)


def test_the_check_catches_a_five_percent_std_error():
    torch.manual_seed(3)
    refs = [torch.empty(256, 256).normal_(0, 0.02).reshape(-1).double().numpy() for _ in range(2)]
    ours = torch.empty(256, 256).normal_(0, 0.02).reshape(-1).double().numpy()
    compare("same law", ours, refs)
    with pytest.raises(AssertionError):
        compare("5% wider", ours * 1.05, refs)
    with pytest.raises(AssertionError):
        compare("5% narrower", ours * 0.95, refs)
    zero_row = refs[0].copy()
    zero_row[:256] = 0
    with pytest.raises(AssertionError):
        compare("a zero row lost", ours, [zero_row, zero_row])


@pytest.mark.parametrize("name", ["custom", "embed_norms", "gpt_neox"])
def test_meta_and_cpu_give_the_same_request_and_values(name, server_url):
    builder = MODELS[name][0]
    meta = _build_meta(builder)
    with pt.recording():
        cpu = builder()
    assert pt.request_for(meta, 5) == pt.request_for(cpu, 5)
    a = pt.state_dict(meta, 5, url=server_url)
    b = pt.state_dict(cpu, 5, url=server_url)
    c = pt.state_dict(meta, 6, url=server_url)
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype
        assert torch.equal(a[k].view(torch.uint8) if a[k].dtype != torch.int64 else a[k],
                           b[k].view(torch.uint8) if b[k].dtype != torch.int64 else b[k]), k
    assert any(not torch.equal(a[k], c[k]) for k in a), "another seed must change the values"
    with Client(server_url) as client:
        req = pt.request_for(meta, 5)
        assert client.init_safetensors(req) == client.init_safetensors(req)


def test_writes_through_views_and_scalar_arithmetic_are_recorded(server_url):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.empty(6, 5))
            self.b = nn.Parameter(torch.randn(5) * 0.1 + 1.0)
            with torch.no_grad():
                self.w.normal_(0, 2)
                self.w.mul_(0.5)
                self.w[:, 1:3].fill_(7)
                self.w[4] = 0
                self.w.data[5, 4:].zero_()

    meta = _build_meta(M)
    req = pt.request_for(meta, 1)
    w, b = req["tensors"]
    assert w["init"] == {"name": "normal", "mean": 0.0, "std": 1.0}
    assert w["fills"] == [{"index": [[0, 6], [1, 3]], "value": 7.0},
                          {"index": [[4, 5]], "value": 0.0},
                          {"index": [[5, 6], [4, 5]], "value": 0.0}]
    assert b["init"] == {"name": "normal", "mean": 1.0, "std": 0.1}
    sd = pt.state_dict(meta, 1, url=server_url)
    v = sd["w"]
    assert (v[[0, 1, 2, 3, 5], 1:3] == 7).all() and (v[4] == 0).all() and v[5, 4] == 0
    rest = torch.cat([v[:4, 0], v[:4, 3:].reshape(-1), v[5, [0, 3]]])
    assert (rest != 0).all() and (rest != 7).all()


def test_built_outside_recording_shows_the_fix():
    model = nn.Linear(3, 2)
    with pytest.raises(pt.RecordingError) as e:
        pt.request_for(model, 1)
    msg = str(e.value)
    assert "weight" in msg
    assert 'with paraminit.torch.recording(), torch.device("meta"):' in msg
    assert "model = MyModel(...)" in msg


class _Unrecordable(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.raw = nn.Parameter(torch.empty(3, 4))                   # left uninitialized
        self.rate = nn.Parameter(torch.empty(5).exponential_())      # no service equivalent


def test_unrecordable_init_names_the_tensor_and_op_and_an_override_fixes_it(server_url):
    meta = _build_meta(_Unrecordable)
    with pytest.raises(pt.UnrecordableInit) as e:
        pt.request_for(meta, 1)
    assert "raw" in str(e.value) and "torch.empty" in str(e.value)
    assert "overrides=" in str(e.value)
    with pytest.raises(pt.UnrecordableInit) as e:
        pt.request_for(meta, 1, overrides={"raw": "zeros"})
    assert "rate" in str(e.value) and "exponential_" in str(e.value)
    model = pt.initialize(meta, 1, url=server_url,
                          overrides={"raw": {"name": "normal", "std": 0.5}, "ra?e": "ones"})
    assert (model.rate == 1).all()
    assert 0.2 < model.raw.std().item() < 1.0
    # The recorded part is untouched by the overrides.
    req = pt.request_for(meta, 1, overrides={"raw": "zeros", "rate": "ones"})
    inits = {t["name"]: t["init"] for t in req["tensors"]}
    assert inits["lin.weight"]["name"] == "kaiming_uniform"
    assert (inits["raw"], inits["rate"]) == ("zeros", "ones")


def test_init_code_run_later_inside_the_context_is_recorded(server_url):
    with pt.recording():
        with torch.device("meta"):
            model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2))
        for m in model:
            nn.init.orthogonal_(m.weight, gain=2.0)
            nn.init.constant_(m.bias, 0.25)
    req = pt.request_for(model, 3)
    assert [t["init"] for t in req["tensors"]] == [
        {"name": "orthogonal", "gain": 2.0}, {"name": "constant", "value": 0.25}] * 2
    pt.initialize(model, 3, url=server_url)
    w = model[0].weight.detach().double()
    assert torch.allclose(w @ w.T, 4 * torch.eye(8, dtype=torch.float64), atol=1e-4)


def test_tied_weights_stay_tied_and_dtype_applies(server_url):
    from transformers import AutoModelForCausalLM, GPT2Config

    cfg = GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=100, n_positions=16)
    with pt.recording(), torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    names = [t["name"] for t in pt.request_for(model, 1)["tensors"]]
    assert "lm_head.weight" not in names and "transformer.wte.weight" in names
    pt.initialize(model, 1, url=server_url, dtype=torch.bfloat16)
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.transformer.wte.weight.dtype == torch.bfloat16
    sd = pt.state_dict(model, 1, url=server_url)
    assert sd["lm_head.weight"] is sd["transformer.wte.weight"]
    # bf16 is the f32 answer rounded.
    f32 = pt.state_dict(model, 1, url=server_url, dtype=torch.float32)
    assert torch.equal(f32["transformer.wte.weight"].to(torch.bfloat16), sd["transformer.wte.weight"])
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[1, 2, 3]])).logits.float()).all()


def test_the_readme_lead_and_its_loading_snippet_work_as_written(server_url):
    import json
    import pathlib

    from safetensors.torch import load

    # The lead: three lines from a model to deterministic weights.
    with pt.recording(), torch.device("meta"):
        model = nn.Sequential(nn.Linear(100, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                              nn.Linear(32, 10))
    pt.initialize(model, seed=42, url=server_url)
    assert model(torch.randn(2, 100)).shape == (2, 10)
    # "Loading the result": examples/seed_mlp_sequential.json loads strictly into the same
    # nn.Sequential.
    root = pathlib.Path(__file__).resolve().parents[3]
    spec = json.loads((root / "examples" / "seed_mlp_sequential.json").read_text())
    with Client(server_url) as c:
        weights = load(c.init_safetensors(spec))
    fresh = nn.Sequential(nn.Linear(100, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                          nn.Linear(32, 10))
    fresh.load_state_dict(weights)
    assert "extra.scale" not in weights and set(weights) == set(fresh.state_dict())


def test_initialize_a_cpu_model_in_place_with_a_dtype(server_url):
    with pt.recording():
        model = nn.Sequential(nn.Embedding(20, 8, padding_idx=3), nn.Linear(8, 4))
    data_ptr = model[1].weight.data_ptr()
    sd = pt.state_dict(model, 9, url=server_url, dtype=torch.float16)
    pt.initialize(model, 9, url=server_url)
    assert model[1].weight.data_ptr() == data_ptr, "filled in place, not replaced"
    pt.initialize(model, 9, url=server_url, dtype=torch.float16)
    assert model[1].weight.dtype == torch.float16
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    assert (model[0].weight[3] == 0).all()


def test_a_meta_normal_is_recorded_without_running_and_torch_still_refuses_bad_arguments():
    # The recorder skips running nn.init.normal_ on a plain meta tensor when torch would accept
    # the call; the request is the same as from CPU, and arguments torch refuses still raise
    # torch's own error.
    def build():
        m = nn.Linear(6, 5)
        nn.init.normal_(m.weight, mean=0.5, std=0.25)
        return m

    with pt.recording(), torch.device("meta"):
        meta = build()
    with pt.recording():
        cpu = build()
    assert pt.request_for(meta, 1) == pt.request_for(cpu, 1)
    assert {"name": "normal", "mean": 0.5, "std": 0.25}.items() <= \
        pt.request_for(meta, 1)["tensors"][0]["init"].items()
    with pt.recording(), torch.device("meta"):
        m = nn.Linear(6, 5)
        with pytest.raises(RuntimeError, match="std"):
            nn.init.normal_(m.weight, std=-1.0)


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not pathlib.Path("/proc/self/status").exists(), reason="Linux only")
def test_prefault_backs_fresh_tensors_and_leaves_values_alone():
    from paraminit.torch import _Prefault

    import mmap

    # 64 MiB of new anonymous memory, no page touched yet (torch.empty may reuse pages a
    # previous test already touched).
    area = mmap.mmap(-1, 64 << 20)
    fresh = torch.frombuffer(area, dtype=torch.uint8)
    kept = torch.full((1 << 20,), 7, dtype=torch.int32)
    before = _rss()
    p = _Prefault([fresh, kept])
    p.wait()
    grown = _rss() - before
    if p.unsupported:
        pytest.skip("MADV_POPULATE_WRITE not available on this kernel")
    assert grown >= 48 << 20, f"RSS grew by {grown} bytes, expected about 64 MiB"
    assert (kept == 7).all() and int(fresh[::4096].sum()) == 0
    del fresh
    area.close()
