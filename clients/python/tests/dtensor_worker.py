"""Two gloo processes on CPU, each with a DTensor model on a 1-D device mesh of size 2, each
initialized by paraminit.torch.initialize; writes, per rank, its local shards, the gathered
full tensors and the bytes it received to ``<out>/rank<r>.pt``.

Usage: python dtensor_worker.py URL PORT OUT_DIR
"""

import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import paraminit.torch as pt
from paraminit import Client

SEED = 77


def build():
    """An MLP with a layer norm and an embedding with a padding row (a fill in the request)."""
    return nn.Sequential(nn.Embedding(9, 8, padding_idx=1), nn.Linear(8, 7), nn.ReLU(),
                         nn.Linear(7, 5), nn.LayerNorm(5))


# (module index, attribute, placement name): column-parallel rows, row-parallel columns,
# replicated biases and norm; one tensor on a 2-D (2, 1) mesh, which the service's 1-D shard
# does not express: it is fetched whole and this rank's part kept.
PLACEMENTS = [(0, "weight", "shard0"), (1, "weight", "shard0"), (1, "bias", "shard0"),
              (3, "weight", "shard1"), (3, "bias", "replicate"), (4, "weight", "replicate"),
              (4, "bias", "2d")]


class CountingClient(Client):
    """Counts the tensor bytes each response carried."""

    received = 0

    def stream(self, request, sink):
        def counting(info):
            CountingClient.received += info.nbytes
            return sink(info)
        return super().stream(request, counting)


def main(rank, url, port, out):
    dist.init_process_group("gloo", rank=rank, world_size=2,
                            init_method=f"tcp://127.0.0.1:{port}")
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (2,))
    mesh2d = init_device_mesh("cpu", (2, 1), mesh_dim_names=("dp", "tp"))
    kinds = {"shard0": [Shard(0)], "shard1": [Shard(1)], "replicate": [Replicate()],
             "2d": [Shard(0), Replicate()]}
    with pt.recording(), torch.device("meta"):
        model = build()
    for i, attr, kind in PLACEMENTS:
        p = getattr(model[i], attr)
        d = distribute_tensor(p.detach(), mesh2d if kind == "2d" else mesh, kinds[kind],
                              src_data_rank=None)
        model[i].register_parameter(attr, nn.Parameter(d))
    with CountingClient(url) as c:
        pt.initialize(model, SEED, client=c)
    result = {"local": {}, "full": {}, "received": CountingClient.received}
    for name, t in model.state_dict().items():
        if hasattr(t, "full_tensor"):
            result["local"][name] = t.to_local().detach().clone()
            result["full"][name] = t.full_tensor().detach().clone()
        else:
            result["full"][name] = t.detach().clone()
    torch.save(result, f"{out}/rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    url, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    mp.spawn(main, args=(url, port, out), nprocs=2)
