"""Distributed Muon on 2 CPU processes (gloo): DDP and FSDP2 equal single-process Muon on the
concatenated batch, MuonClip under FSDP2, DCP round trip, uneven shards, odd matrix counts.

One ``torch.multiprocessing.spawn`` runs every scenario (spawning costs seconds per process);
rank 0 writes the measurements to a file that the tests below read. A scenario that raises
records its traceback instead, and only its test fails. Plain helpers (owner assignment, row
layout) are tested in-process.
"""

from __future__ import annotations

import datetime
import traceback
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from optkit.optim import distributed as D
from optkit.optim.muon import Muon, MuonClip
from optkit.optim.muon_clip import head_max_logits
from optkit.testing import ToyGPT, ToyMoE

pytestmark = pytest.mark.skipif(
    not dist.is_available(), reason="torch.distributed is not available in this torch build"
)

WORLD = 2
F64 = torch.float64
LR = dict(lr=0.02, adamw_lr=1e-2)


# ---------------------------------------------------------------------------- helpers (pure)


def test_assign_owners_balances_cost_not_count():
    costs = [D.matrix_cost(s) for s in [(64, 256), (16, 16), (16, 16), (16, 16), (16, 16)]]
    owners = D.assign_owners(costs, 2)
    assert owners[0] == 0 and set(owners[1:]) == {1}  # the big one alone on rank 0
    assert D.assign_owners(costs, 2) == owners  # deterministic
    assert D.assign_owners([1.0] * 3, 2) == [0, 1, 0]  # world size not dividing the count


@pytest.mark.parametrize("rows", [0, 1, 5, 6, 7, 21])
def test_chunk_rows_matches_torch_chunk(rows):
    for world in (1, 2, 3, 4):
        chunks = torch.arange(rows).chunk(world)
        sizes = [len(c) for c in chunks] + [0] * (world - len(chunks))
        layout = D.chunk_rows(rows, world)
        assert [n for _, n in layout] == sizes
        assert [o for (o, n) in layout if n] == [int(c[0]) for c in chunks if len(c)]


def test_single_process_path_is_unchanged():
    g = torch.Generator().manual_seed(0)
    mats = [
        torch.randn(6, 10, dtype=F64, generator=g),
        torch.randn(3, 4, 5, dtype=F64, generator=g),
    ]
    out = D.orthogonalize_distributed(mats, dtype=F64)
    ref = D.orthogonalize_many(mats, dtype=F64)
    assert all(torch.equal(a, b) for a, b in zip(out, ref))
    # cast_back=False: results stay in the compute dtype (Muon adds them as they are)
    bf = D.orthogonalize_distributed([m.float() for m in mats], dtype=torch.bfloat16,
                                     cast_back=False)  # fmt: skip
    want = D.orthogonalize_many([m.float() for m in mats], dtype=torch.bfloat16)
    assert all(o.dtype == torch.bfloat16 for o in bf)
    assert all(torch.equal(a.float(), b) for a, b in zip(bf, want))


# ---------------------------------------------------------------------------- the 2-rank run


def _gpt() -> nn.Module:
    # d = 15 with 3 heads: q/k/v/o and proj have 15 rows (shards of 8 and 7: uneven), and the
    # middle head's rows 5..9 straddle the two ranks.
    torch.manual_seed(0)
    return ToyGPT(vocab=32, d=15, layers=2, num_heads=3, block_size=16).to(F64)


def _mlp() -> nn.Module:
    # 2 Muon matrices (21×21, 21×21; 11/10-row shards) on 2 ranks; the input layer 21×15 and
    # the head are AdamW's.
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(15, 21), nn.GELU(), nn.Linear(21, 21), nn.GELU(), nn.Linear(21, 21),
        nn.GELU(), nn.Linear(21, 3),
    ).to(F64)  # fmt: skip


def _moe() -> nn.Module:
    # stacked experts (3, 16, 8) and (3, 8, 16) sharded 2/1 on the expert dimension: each rank
    # orthogonalizes the experts it holds, no communication
    torch.manual_seed(0)
    return ToyMoE(d=8, hidden=16, experts=3, classes=3).to(F64)


def _gpt_batches(steps: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 32, (4, 12), generator=g) for _ in range(steps)]


def _mlp_batches(steps: int, d: int = 15) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(2)
    return [
        (torch.randn(8, d, dtype=F64, generator=g), torch.randn(8, 3, dtype=F64, generator=g))
        for _ in range(steps)
    ]


def _gpt_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    logits = model(x[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))


def _mlp_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return F.mse_loss(model(batch[0]), batch[1])


def _shard(batch, rank):
    if isinstance(batch, tuple):
        return tuple(t.chunk(WORLD)[rank] for t in batch)
    return batch.chunk(WORLD)[rank]


def _train(model, opt, loss_fn, batches, rank=None):
    for batch in batches:
        opt.zero_grad()
        loss_fn(model, batch if rank is None else _shard(batch, rank)).backward()
        opt.step()


def _fsdp(model: nn.Module) -> nn.Module:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (WORLD,))
    for block in getattr(model, "blocks", []):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if D.is_dtensor(t) else t


def _rel_err(model: nn.Module, ref: nn.Module) -> float:
    return max(
        ((_full(p.detach()) - r.detach()).norm() / r.detach().norm()).item()
        for p, r in zip(model.parameters(), ref.parameters())
    )


def _ranks_identical(model: nn.Module) -> bool:
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(WORLD)]
    dist.all_gather(gathered, flat)
    return all(torch.equal(gathered[0], g) for g in gathered)


def _scenario_ddp(rank, tmp):
    from torch.nn.parallel import DistributedDataParallel as DDP

    out = {}
    for name, make, loss_fn, batches in [
        ("gpt", _gpt, _gpt_loss, _gpt_batches(3)),
        ("mlp", _mlp, _mlp_loss, _mlp_batches(3)),
    ]:
        ref = make()
        _train(ref, Muon(ref, **LR), loss_fn, batches)
        model = DDP(make())
        D.STATS.reset()
        opt = Muon(model.module, process_group=dist.group.WORLD, **LR)
        _train(model, opt, loss_fn, batches, rank)
        out[name] = dict(
            rel_err=_rel_err(model.module, ref), identical=_ranks_identical(model.module),
            received=D.STATS.received, collectives=D.STATS.collectives,
        )  # fmt: skip
    return out


def _scenario_fsdp(rank, tmp):
    out = {}
    for name, make, loss_fn, batches in [
        ("gpt", _gpt, _gpt_loss, _gpt_batches(3)),
        ("mlp", _mlp, _mlp_loss, _mlp_batches(3)),
        ("moe", _moe, _mlp_loss, _mlp_batches(3, d=8)),
    ]:
        ref = make()
        _train(ref, Muon(ref, **LR), loss_fn, batches)
        model = _fsdp(make())
        opt = Muon(model, **LR)
        D.STATS.reset()
        _train(model, opt, loss_fn, batches, rank)
        weight = next(
            p for g in opt.param_groups if g["algorithm"] == "muon" for p in g["params"]
            if p.ndim == 2 and p.shape[0] % WORLD
        )  # fmt: skip
        buf = opt.state[weight]["momentum_buffer"]
        out[name] = dict(
            rel_err=_rel_err(model, ref), received=D.STATS.received,
            uneven=weight.to_local().shape[0] != weight.shape[0] / WORLD,
            buffer_sharded=D.is_dtensor(buf) and buf.to_local().shape == weight.to_local().shape,
        )  # fmt: skip
    return out


def _clip_model() -> nn.Module:
    model = _gpt()
    with torch.no_grad():  # large q/k so that logits start far above τ
        for block in model.blocks:
            block.attn.q_proj.weight.mul_(6)
            block.attn.k_proj.weight.mul_(6)
    return model


def _recomputed_max_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen = {}
    hooks = [
        getattr(block.attn, name).register_forward_hook(
            lambda m, a, o, key=(i, name): seen.__setitem__(key, o.detach())
        )
        for i, block in enumerate(model.blocks)
        for name in ("q_proj", "k_proj")
    ]
    with torch.no_grad():
        model(x[:, :-1])
    for h in hooks:
        h.remove()
    return torch.stack(
        [
            head_max_logits(seen[(i, "q_proj")], seen[(i, "k_proj")], 3)
            for i in range(len(model.blocks))
        ]
    )


CLIP_CASES = [("fsdp", "after_step"), ("fsdp", "forward"), ("ddp", "after_step")]


def _scenario_clip(rank, tmp):
    from torch.nn.parallel import DistributedDataParallel as DDP

    tau, batches = 4.0, _gpt_batches(3)
    last = batches[-1]
    out = {}
    for engine, measure in CLIP_CASES:
        kw = dict(qk_clip_tau=tau, qk_clip_measure=measure, **LR)
        ref = _clip_model()
        ref_opt = MuonClip(ref, **kw)
        _train(ref, ref_opt, _gpt_loss, batches)
        if engine == "fsdp":
            model = inner = _fsdp(_clip_model())
            opt = MuonClip(model, **kw)
        else:
            model = DDP(_clip_model())
            inner = model.module
            opt = MuonClip(inner, process_group=dist.group.WORLD, **kw)
        _train(model, opt, _gpt_loss, batches, rank)
        logits = torch.stack([opt.max_logits[k] for k in sorted(opt.max_logits)])
        ref_logits = torch.stack([ref_opt.max_logits[k] for k in sorted(ref_opt.max_logits)])
        # one more step at lr 0 on the last batch: only the clip acts; recompute on the batch
        for o in (opt, ref_opt):
            for group in o.param_groups:
                group["lr"] = 0.0
        _train(model, opt, _gpt_loss, [last], rank)
        _train(ref, ref_opt, _gpt_loss, [last])
        plain = _clip_model()
        with torch.no_grad():
            for p, q in zip(plain.parameters(), inner.parameters()):
                p.copy_(_full(q))
        out[(engine, measure)] = dict(
            rel_err=_rel_err(inner, ref), max_logit_err=(logits - ref_logits).abs().max().item(),
            above_tau=(ref_logits > tau).sum().item(), tau=tau,
            recomputed=_recomputed_max_logits(plain, last).tolist(),
            ref_recomputed=_recomputed_max_logits(ref, last).tolist(),
        )  # fmt: skip
    return out


def _scenario_placements(rank, tmp):
    """orthogonalize_distributed on DTensors of every kind = orthogonalize_many of the full."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (WORLD,))
    g = torch.Generator().manual_seed(3)
    cases = [
        ((7, 10), Shard(0)), ((12, 5), Shard(0)), ((7, 10), Shard(0)),  # row-sharded
        ((3, 5, 7), Shard(0)),  # a stack sharded on its batch dimension: local
        ((6, 9), Replicate()),  # replicated over the mesh: split by cost + all-gather
        ((6, 9), Shard(1)),  # columns sharded: the full_tensor() fallback
    ]  # fmt: skip
    full = [torch.randn(shape, dtype=F64, generator=g) for shape, _ in cases]
    dts = [distribute_tensor(t, mesh, [pl]) for t, (_, pl) in zip(full, cases)]
    out = D.orthogonalize_distributed(dts, dtype=F64)
    want = D.orthogonalize_many(full, dtype=F64)
    # float32 with the default NS dtype (bf16 where the CPU has it): the wire carries the
    # compute dtype, which must not change the result
    dts32 = [distribute_tensor(t.float(), mesh, [pl]) for t, (_, pl) in zip(full, cases)]
    out32 = D.orthogonalize_distributed(dts32)
    want32 = D.orthogonalize_many([t.float() for t in full])
    # HSDP layout (Replicate(), Shard(0)) on a 2-D mesh (1 × 2 here: 2 processes)
    mesh2 = init_device_mesh("cpu", (1, WORLD), mesh_dim_names=("replicate", "shard"))
    hsdp = [distribute_tensor(t, mesh2, [Replicate(), Shard(0)]) for t in full[:3]]
    before = D.STATS.collectives
    out_hsdp = D.orthogonalize_distributed(hsdp, dtype=F64)
    hsdp_collectives = D.STATS.collectives - before
    # QK-clip's row rescale on every layout: rows 5..9 straddle the 4/3 shards of 7 rows
    scaled = []
    for t in (dts[0], hsdp[0], dts[4]):
        t = t.clone()
        D.scale_rows_(t, 3, 3, 0.5)
        scaled.append(t.full_tensor())
    want_scaled = [full[0].clone(), full[0].clone(), full[4].clone()]
    for t in want_scaled:
        t[3:6] *= 0.5
    return dict(
        hsdp_errors=[(o.full_tensor() - w).abs().max().item() for o, w in zip(out_hsdp, want)],
        hsdp_collectives=hsdp_collectives,
        scale_errors=[(a - b).abs().max().item() for a, b in zip(scaled, want_scaled)],
        errors=[(o.full_tensor() - w).abs().max().item() for o, w in zip(out, want)],
        errors32=[(o.full_tensor() - w).abs().max().item() for o, w in zip(out32, want32)],
        dtypes32=all(o.dtype == torch.float32 for o in out32),
        placements_kept=all(o.placements == d.placements for o, d in zip(out, dts)),
    )


def _scenario_dcp(rank, tmp):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    batches = _gpt_batches(4)
    model = _fsdp(_gpt())
    opt = Muon(model, **LR)
    _train(model, opt, _gpt_loss, batches[:2], rank)
    model_sd, optim_sd = get_state_dict(model, opt)
    path = Path(tmp) / "ckpt"
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=path)
    _train(model, opt, _gpt_loss, batches[2:], rank)

    torch.manual_seed(123)  # a fresh model that does not start from the same weights
    fresh = _gpt()
    with torch.no_grad():
        for p in fresh.parameters():
            p.normal_()
    fresh = _fsdp(fresh)
    fresh_opt = Muon(fresh, **LR)
    model_sd, optim_sd = get_state_dict(fresh, fresh_opt)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=path)
    set_state_dict(
        fresh, fresh_opt, model_state_dict=state["model"], optim_state_dict=state["optim"]
    )
    _train(fresh, fresh_opt, _gpt_loss, batches[2:], rank)

    params_equal = all(
        torch.equal(a.to_local(), b.to_local())
        for a, b in zip(model.parameters(), fresh.parameters())
    )
    states_equal = all(
        torch.equal(_local(opt.state[a][k]), _local(fresh_opt.state[b][k]))
        for a, b in zip(model.parameters(), fresh.parameters())
        for k in opt.state[a]
    )
    return dict(params_equal=params_equal, states_equal=states_equal)


def _local(t):
    return t.to_local() if D.is_dtensor(t) else t


SCENARIOS = {
    "placements": _scenario_placements,
    "ddp": _scenario_ddp,
    "fsdp": _scenario_fsdp,
    "clip": _scenario_clip,
    "dcp": _scenario_dcp,
}


def _worker(rank: int, tmp: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )  # fmt: skip
    results = {}
    try:
        for name, scenario in SCENARIOS.items():
            try:
                results[name] = scenario(rank, tmp)
            except Exception:  # recorded, reported by the test of this scenario
                results[name] = {"error": traceback.format_exc()}
            dist.barrier()
        if rank == 0:
            torch.save(results, Path(tmp) / "results.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    import torch.multiprocessing as mp

    tmp = tmp_path_factory.mktemp("distributed")
    mp.spawn(_worker, args=(str(tmp),), nprocs=WORLD, join=True)
    return torch.load(tmp / "results.pt", weights_only=False)


def _get(results, name):
    r = results[name]
    if "error" in r:
        pytest.fail(f"scenario {name!r} raised on rank 0:\n{r['error']}")
    return r


@pytest.mark.parametrize("model", ["gpt", "mlp"])
def test_ddp_equals_single_process(results, model):
    r = _get(results, "ddp")[model]
    assert r["rel_err"] <= 1e-6
    assert r["identical"]  # every rank ends with bit-identical parameters
    assert r["collectives"] > 0 and r["received"] > 0  # the work was really split


def test_every_dtensor_placement(results):
    r = _get(results, "placements")
    assert max(r["errors"]) <= 1e-12
    assert max(r["hsdp_errors"]) <= 1e-12
    assert r["hsdp_collectives"] == 2  # the sharded path's two all_to_all, not the fallback
    assert max(r["scale_errors"]) == 0.0
    assert max(r["errors32"]) <= 1e-6 and r["dtypes32"]
    assert r["placements_kept"]


@pytest.mark.parametrize("model", ["gpt", "mlp", "moe"])
def test_fsdp_equals_single_process(results, model):
    r = _get(results, "fsdp")[model]
    assert r["rel_err"] <= 1e-6
    assert r["uneven"]  # dim 0 not divisible by the world size
    assert r["buffer_sharded"]  # momentum stays a sharded DTensor
    assert r["received"] > 0


@pytest.mark.parametrize("case", CLIP_CASES, ids=["-".join(c) for c in CLIP_CASES])
def test_muonclip_caps_like_single_process(results, case):
    r = _get(results, "clip")[case]
    assert r["above_tau"] > 0  # the clip had something to do
    assert r["rel_err"] <= 1e-6
    assert r["max_logit_err"] <= 1e-6 * r["tau"]  # the all-reduced maxima = full-batch maxima
    # recomputed on the clipped weights: the first layer's heads end at ≤ τ (deeper layers see
    # inputs changed by the clip above them, in the single-process run alike)
    assert max(r["recomputed"][0]) <= r["tau"] * (1 + 1e-6)
    got, want = torch.tensor(r["recomputed"]), torch.tensor(r["ref_recomputed"])
    assert (got - want).abs().max().item() <= 1e-6 * r["tau"]


def test_dcp_round_trip_resumes_bit_exactly(results):
    r = _get(results, "dcp")
    assert r["params_equal"]
    assert r["states_equal"]
