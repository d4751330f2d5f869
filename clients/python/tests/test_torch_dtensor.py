"""DTensor parameters on a 2-process gloo device mesh: each rank fills its local shards with
exactly the slice of the full initialization, fetching only that slice; gathered, the tensors
equal the single-process result bit for bit."""

import os
import pathlib
import socket
import subprocess
import sys

import torch

import paraminit.torch as pt

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import dtensor_worker as w  # noqa: E402


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dtensor_shards_are_slices_of_the_full_init(server_url, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    # gloo's traffic stays on the loopback interface.
    if pathlib.Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    subprocess.run([sys.executable, str(HERE / "dtensor_worker.py"), server_url, str(_port()),
                    str(tmp_path)], check=True, env=env, timeout=300)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    with pt.recording(), torch.device("meta"):
        model = w.build()
    single = pt.state_dict(model, w.SEED, url=server_url)
    kinds = {f"{i}.{attr}": kind for i, attr, kind in w.PLACEMENTS}
    assert set(ranks[0]["full"]) == set(single)
    full_bytes = sum(t.numel() * t.element_size() for t in single.values())
    for r, res in enumerate(ranks):
        for name, t in single.items():
            got = res["full"][name]
            assert got.dtype == t.dtype and torch.equal(got.view(-1).view(torch.uint8),
                                                        t.view(-1).view(torch.uint8)), name
            kind = kinds.get(name)
            if kind in ("shard0", "shard1", "2d"):
                d = 1 if kind == "shard1" else 0
                want = torch.tensor_split(t, 2, dim=d)[r]
                assert torch.equal(res["local"][name], want), f"rank {r} {name}"
            elif kind == "replicate":
                assert torch.equal(res["local"][name], t)
        # Only this rank's slices (and the replicated tensors, and the 2-D mesh one whole)
        # were fetched.
        expected = 0
        for name, t in single.items():
            kind = kinds.get(name)
            if kind in ("shard0", "shard1"):
                part = torch.tensor_split(t, 2, dim=0 if kind == "shard0" else 1)[r]
                expected += part.numel() * part.element_size()
            else:
                expected += t.numel() * t.element_size()
        assert res["received"] == expected < full_bytes
    # The padding row (a recorded fill) is zero in the gathered table.
    assert (ranks[0]["full"]["0.weight"][1] == 0).all()
