"""Distributed Muon: Newton–Schulz time per rank, bytes per step, DDP step time vs AdamW.

Run (2 processes on one machine, gloo on CPU; on GPUs use --backend nccl and one process per GPU):

    torchrun --standalone --nproc_per_node 2 benchmarks/muon_distributed.py
    torchrun --standalone --nproc_per_node 2 benchmarks/muon_distributed.py --dim 512 --layers 6

Model: the GPT-like set of ``benchmarks/_gpt_params.py`` (tied embedding/head, fused qkv),
by default shrunk to d=256, 6 layers, vocab 8192 so that a run takes a minute on 2 shared
cores; ``--dim 512`` is the full 23M-parameter set. Every rank runs ``torch.set_num_threads(1)``.

Measured, with anchors run beside optkit in the same process:

1. orthogonalization time per rank: ``orthogonalize_many`` of all Muon matrices in one process
   (the single-process anchor, measured on every rank at the same time, so both see the same
   machine load) against this rank's share under ``orthogonalize_distributed`` (its own NS work
   alone, and with the all-gather included). Target ≤ 0.6× the anchor.
2. bytes this rank sent / received in Muon's collectives during one optimizer step (DDP and
   FSDP2), against the parameter bytes; DDP's own gradient all-reduce for scale.
3. step time (forward + backward with DDP's all-reduce + optimizer step) of DDP +
   ``optkit.Muon(process_group=WORLD)`` against DDP + ``torch.optim.AdamW(fused=True)``, the
   same under FSDP2 (AdamW with ``foreach=True``: torch's fused kernels reject DTensors), and
   the optimizer step alone.

Numbers are medians over ``--reps`` repetitions; rank 0 prints.

Results, with the machine and date they were measured on: docs/benchmarks/muon_distributed.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gpt_params import gpt_like_model, set_random_grads

from optkit.optim import distributed as D
from optkit.optim.muon import Muon
from optkit.optim.newton_schulz import default_ns_dtype, orthogonalize_many


def median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        dist.barrier()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    fn_max = torch.tensor(statistics.median(times))
    dist.all_reduce(fn_max, op=dist.ReduceOp.MAX)  # the slowest rank sets the pace
    return fn_max.item()


def say(*args) -> None:
    if dist.get_rank() == 0:
        print(*args, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128, help="tokens per rank per step")
    parser.add_argument("--backend", default="gloo")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group(args.backend)
    world, rank = dist.get_world_size(), dist.get_rank()
    device = torch.device("cuda", rank) if args.backend == "nccl" else torch.device("cpu")

    model = gpt_like_model(args.dim, args.layers, args.vocab).to(device)
    opt = Muon(model, process_group=dist.group.WORLD)
    muon_params = [p for g in opt.param_groups if g["algorithm"] == "muon" for p in g["params"]]
    n_params = sum(p.numel() for p in model.parameters())
    n_muon = sum(p.numel() for p in muon_params)
    elem = muon_params[0].element_size()
    ns_dtype = default_ns_dtype(device, muon_params[0].dtype)
    say(f"world {world}, backend {args.backend}, 1 thread per rank; GPT-like d={args.dim}, "
        f"{args.layers} layers, vocab {args.vocab}: {n_params / 1e6:.1f}M params, "
        f"{len(muon_params)} Muon matrices ({n_muon / 1e6:.1f}M), NS dtype {ns_dtype}")  # fmt: skip

    # 1. orthogonalization time -------------------------------------------------------------
    g = torch.Generator(device=device).manual_seed(0)
    mats = [torch.randn(p.shape, generator=g, device=device) for p in muon_params]
    owners = D.assign_owners([D.matrix_cost(m.shape) for m in mats], world)
    mine = [m for m, o in zip(mats, owners) if o == rank]
    load = [
        sum(D.matrix_cost(m.shape) for m, o in zip(mats, owners) if o == r) for r in range(world)
    ]
    # as Muon runs them: results left in the compute dtype (its update converts them)
    t_single = median_time(lambda: orthogonalize_many(mats, cast_back=False), args.reps)
    t_share = median_time(lambda: orthogonalize_many(mine, cast_back=False), args.reps)
    t_dist = median_time(
        lambda: D.orthogonalize_distributed(mats, process_group=dist.group.WORLD, cast_back=False),
        args.reps,
    )
    say("\n1. orthogonalization of all Muon matrices, seconds (max over ranks of the median)")
    say(f"   single process (anchor)        {t_single:8.3f}   1.00x")
    say(f"   this rank's share, NS only     {t_share:8.3f}   {t_share / t_single:.2f}x   "
        f"(cost split {', '.join(f'{c / sum(load):.1%}' for c in load)})")  # fmt: skip
    say(f"   distributed, with all-gather   {t_dist:8.3f}   {t_dist / t_single:.2f}x   "
        f"(target <= 0.6x)")  # fmt: skip

    # 2. bytes per optimizer step ------------------------------------------------------------
    set_random_grads(model)
    D.STATS.reset()
    opt.step()
    ddp_sent, ddp_recv = D.STATS.sent, D.STATS.received
    fsdp_sent = fsdp_recv = None
    if args.backend in ("gloo", "nccl"):
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        sharded = gpt_like_model(args.dim, args.layers, args.vocab).to(device)
        mesh = init_device_mesh(device.type, (world,))
        for block in sharded.blocks:
            fully_shard(block, mesh=mesh)
        fully_shard(sharded, mesh=mesh)
        sharded_opt = Muon(sharded)
        for p in sharded.parameters():
            local = torch.randn(p.to_local().shape, device=device) * 1e-2
            p.grad = D.DTensor.from_local(
                local, mesh, p.placements, shape=p.shape, stride=p.stride()
            )
        D.STATS.reset()
        sharded_opt.step()
        fsdp_sent, fsdp_recv = D.STATS.sent, D.STATS.received
        del sharded, sharded_opt
    pbytes = n_params * elem
    mb = 1 / 2**20
    say(f"\n2. bytes per optimizer step, this rank (rank 0); parameters {pbytes * mb:.1f} MiB, "
        f"Muon matrices {n_muon * elem * mb:.1f} MiB; wire dtype "
        f"{ns_dtype if ns_dtype.itemsize < elem else muon_params[0].dtype}")  # fmt: skip
    say(f"   DDP   Muon all-gather: sent {ddp_sent * mb:7.2f} MiB, received {ddp_recv * mb:7.2f} "
        f"MiB = {ddp_recv / pbytes:.2f}x param bytes")  # fmt: skip
    if fsdp_sent is not None:
        say(f"   FSDP2 Muon all-to-all: sent {fsdp_sent * mb:7.2f} MiB, received "
            f"{fsdp_recv * mb:7.2f} MiB = {fsdp_recv / pbytes:.2f}x param bytes")  # fmt: skip
    say(f"   for scale: DDP's gradient all-reduce (ring) moves 2(w-1)/w = "
        f"{2 * (world - 1) / world:.2f}x param bytes per rank")  # fmt: skip

    # 3. step time -----------------------------------------------------------------------------
    T = 64
    B = max(1, args.tokens // T)
    tokens = torch.randint(0, args.vocab, (B, T + 1), generator=torch.Generator().manual_seed(rank))
    tokens = tokens.to(device)

    def iteration(ddp_model, optimizer):
        optimizer.zero_grad(set_to_none=True)
        logits = ddp_model(tokens[:, :-1])
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)).backward()
        optimizer.step()

    def build(name):
        net = gpt_like_model(args.dim, args.layers, args.vocab).to(device)
        if name.startswith("DDP"):
            wrapped = DDP(net)
            if "AdamW" in name:
                return wrapped, torch.optim.AdamW(net.parameters(), lr=3e-4, fused=True)
            return wrapped, Muon(net, process_group=dist.group.WORLD)
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(device.type, (world,))
        for block in net.blocks:
            fully_shard(block, mesh=mesh)
        fully_shard(net, mesh=mesh)
        if "AdamW" in name:  # torch's fused kernels do not take DTensors
            return net, torch.optim.AdamW(net.parameters(), lr=3e-4, foreach=True)
        return net, Muon(net)

    names = (
        "DDP + torch AdamW (fused)", "DDP + optkit.Muon",
        "FSDP2 + torch AdamW (foreach)", "FSDP2 + optkit.Muon",
    )  # fmt: skip
    rows = []
    for name in names:
        wrapped, optimizer = build(name)
        iteration(wrapped, optimizer)  # warm-up, creates the state
        t_iter = median_time(lambda w=wrapped, o=optimizer: iteration(w, o), args.reps)
        t_opt = median_time(optimizer.step, args.reps)
        rows.append((name, t_iter, t_opt))
    say(f"\n3. step time, seconds ({B}x{T} tokens per rank; max over ranks of the median);")
    say("   ratios against the AdamW row of the same engine")
    for k, (name, t_iter, t_opt) in enumerate(rows):
        base_iter, base_opt = rows[k - k % 2][1], rows[k - k % 2][2]
        say(f"   {name:30s} iteration {t_iter:7.3f} ({t_iter / base_iter:.2f}x)   "
            f"optimizer.step {t_opt:7.3f} ({t_opt / base_opt:.2f}x)")  # fmt: skip
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
