r"""Distributed Muon: the Newton–Schulz work of one step split over a process group.

:class:`optkit.Muon` (and :class:`optkit.MuonClip`) run unchanged under DDP and under FSDP2;
only the middle stage of a Muon step — O = NS(U) for the group's list of matrices, see
:mod:`optkit.optim.muon` — is replaced by :func:`orthogonalize_distributed`. Momentum, decay,
the update and the AdamW groups are elementwise and stay on each rank's own tensors.

Symbols: w the world size of the process group, U_i the i-th momentum-updated matrix
(R_i × C_i), O_i = NS(U_i), P = Σ R_i·C_i the Muon elements, b the bytes of one element on
the wire (see "Wire dtype" below).

**Replicated parameters (DDP; pass** ``process_group=``\ **).** Every rank holds the same U_i (DDP
all-reduced the gradients). Matrices get an owner by greedy longest-processing-time on their cost
c_i = the Newton–Schulz FLOPs of an R_i × C_i matrix on the device at hand (plain or Gram form,
symmetric products as that device computes them: :func:`~optkit.optim.newton_schulz.ns_flops`
asks the same per-device backend that runs the iteration): sorted by decreasing cost, each goes
to the least-loaded rank — deterministic, the same on every rank, no communication. Each rank
orthogonalizes its own matrices (same shapes still batched into one ``bmm`` chain) and writes them
into one flat buffer; one all-gather (``all_gather_single``, formerly ``all_gather_into_tensor``)
gives every rank every O_i, bit-identical everywhere::

    each rank receives (w − 1)·L·b     L = max over ranks of the owned elements (≥ P/w),
                                       ≈ (w − 1)/w · P·b when the owners' loads are balanced
    (and its own L·b reach the w − 1 others)

**Sharded parameters (FSDP2; DTensors with** ``Shard(0)``\ **).** Rank r holds rows
[o_r, o_r + n_r) of each U_i (``torch.chunk`` layout, so uneven shards are fine) and keeps its
momentum sharded. Owners are chosen as above; one ``all_to_all_single`` sends every shard to
its matrix's owner, the owner orthogonalizes the assembled matrices, and a second
``all_to_all_single`` returns each rank its rows of O_i::

    each rank sends and receives, per all_to_all, about (w − 1)/w² · P·b
    in total over all ranks: 2·(w − 1)/w · P·b per step

Per rank that is 2/w of what Moonlight's Distributed Muon moves (there every rank gathers
every full matrix, (w − 1)/w · P·b, and repeats every Newton–Schulz); here each matrix is
gathered once, on its owner, and the NS work is split. For scale, per rank and step: FSDP2
itself moves about 3·(w − 1)/w of the parameter bytes (all-gather in forward and backward,
reduce-scatter of gradients), DDP's ring all-reduce 2·(w − 1)/w.

Other DTensor layouts: a stacked batch of matrices sharded on a batch dimension (MoE experts
``(E, out, in)`` with ``Shard(0)``) is orthogonalized where it lives, no communication; a
``Replicate()`` DTensor takes the replicated path over its mesh; HSDP's ``(Replicate(),
Shard(0))`` on a 2-D mesh takes the sharded path over the shard dimension's group (each
replica group repeats the same work); anything else (columns sharded, tensor parallelism)
falls back to ``full_tensor()`` on every rank — correct, not economical.

**Wire dtype.** Newton–Schulz first copies U into its compute dtype (bf16 on CUDA and on CPUs
with native bf16, :func:`optkit.optim.newton_schulz.default_ns_dtype`) and O comes out of
that dtype, so sending both in the compute dtype loses nothing: results are bit-identical to
sending the parameter dtype. With float32 parameters and bf16 compute, b = 2; with float64
(the tests) or float32 compute, b = the parameter's element size.

AdamW groups and the elementwise Muon stages stay on each rank's own tensors; under FSDP2 the
AdamW rule runs on the shards' local views (:func:`local_tensors`).

QK-clip under data parallelism (:func:`all_reduce_max_`, :func:`scale_rows_`,
:func:`full_linear`): every rank saw its own batch, so the per-head maxima are all-reduced with
MAX before the rescale (one collective of 4 bytes per head), and a head's W_q/W_k rows are
scaled on whatever rank holds them (rows of one head may sit on two ranks). MuonClip's default
``qk_clip_measure="after_step"`` recomputes q and k with the updated weights; under FSDP2 that
all-gathers W_q and W_k (and their biases) once per step with ``DTensor.full_tensor()`` —
(w − 1)/w of those bytes per rank, not counted in :data:`STATS`. With
``torch.distributed.checkpoint.state_dict.get_state_dict``, MuonClip's extra ``qk_clip``
state-dict entry (τ, the maxima last seen) is dropped; nothing in it is needed to resume.

Every collective is a plain ``torch.distributed`` one on the given group (gloo, NCCL, ...);
:data:`STATS` counts the bytes this rank sent and received.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .newton_schulz import default_ns_dtype, ns_flops, orthogonalize_many

__all__ = [
    "STATS",
    "CommStats",
    "all_reduce_max_",
    "assign_owners",
    "chunk_rows",
    "full_linear",
    "is_dtensor",
    "local_tensors",
    "matrix_cost",
    "orthogonalize_distributed",
    "process_group_of",
    "row_shard_dim",
    "scale_rows_",
]

if dist.is_available():
    from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor
else:  # pragma: no cover - torch built without distributed
    DTensor = None  # type: ignore[assignment,misc]

# torch 2.13 renamed all_gather_into_tensor (now a deprecated alias); older torch has only it.
_all_gather = getattr(dist, "all_gather_single", None) or getattr(
    dist, "all_gather_into_tensor", None
)


@dataclass
class CommStats:
    """Bytes of this rank's data that reached other ranks (``sent``), bytes it got from other
    ranks (``received``) in Muon's collectives, and how many collectives it ran."""

    sent: int = 0
    received: int = 0
    collectives: int = 0

    def reset(self) -> None:
        self.sent = self.received = self.collectives = 0


STATS = CommStats()


def is_dtensor(t: Any) -> bool:
    """True for a ``torch.distributed.tensor.DTensor`` (False where distributed is missing)."""
    return DTensor is not None and isinstance(t, DTensor)


def matrix_cost(shape: Sequence[int], device: torch.device | str = "cpu") -> float:
    """Newton–Schulz FLOPs of a matrix or stack ``(..., R, C)`` on ``device`` (5 steps, as
    :func:`~optkit.optim.newton_schulz.ns_flops` counts them for that device's form and
    symmetric products; only ratios matter).

    Example:
        >>> matrix_cost((4, 8)), matrix_cost((3, 8, 4))
        (2816.0, 8448.0)
    """
    return float(math.prod(shape[:-2])) * ns_flops(shape[-2], shape[-1], device=device)


def assign_owners(costs: Sequence[float], world: int) -> list[int]:
    """Greedy longest-processing-time assignment of jobs to ``world`` ranks.

    Jobs by decreasing cost (ties: lower index first) each go to the least-loaded rank (ties:
    lower rank), so the largest load is at most 4/3 of the optimum. Deterministic: every rank
    computes the same owners without communicating.

    Example:
        >>> assign_owners([5, 4, 3, 3, 3], 2)  # loads: rank 0: 5 + 3, rank 1: 4 + 3 + 3
        [0, 1, 1, 0, 1]
    """
    load = [0.0] * world
    owners = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        rank = min(range(world), key=lambda r: (load[r], r))
        owners[i] = rank
        load[rank] += costs[i]
    return owners


def chunk_rows(rows: int, world: int) -> list[tuple[int, int]]:
    """(offset, count) of each rank's rows under ``Shard(0)``: ``torch.chunk``'s layout.

    Chunks of ⌈rows/w⌉ rows; the last ranks get fewer, possibly none (as DTensor and FSDP2).

    Example:
        >>> chunk_rows(7, 3), chunk_rows(2, 3)
        ([(0, 3), (3, 3), (6, 1)], [(0, 1), (1, 1), (2, 0)])
    """
    size = -(-rows // world) if rows else 0
    return [
        (min(r * size, rows), max(0, min(rows, (r + 1) * size) - r * size)) for r in range(world)
    ]


def local_tensors(tensors: Any) -> Any:
    """The same NamedTuple of tensor lists with every DTensor replaced by its local shard.

    The shards are views: an in-place update of them updates the DTensors. Elementwise rules
    (AdamW) then run on plain tensors, without DTensor dispatch per op.
    """
    return type(tensors)(*([_local(t) for t in lst] for lst in tensors))


def process_group_of(tensors: Sequence[Tensor], process_group: Any = None) -> Any:
    """The group(s) to reduce over: ``process_group`` if given, else the mesh group of the
    first DTensor in ``tensors`` (a list of one group per mesh dimension for an n-D mesh, e.g.
    HSDP), else None (single process)."""
    if process_group is not None:
        return process_group
    for t in tensors:
        if is_dtensor(t):
            mesh = t.device_mesh
            return (
                mesh.get_group()
                if mesh.ndim == 1
                else [mesh.get_group(d) for d in range(mesh.ndim)]
            )
    return None


def row_shard_dim(t: Tensor) -> int | None:
    """For a DTensor whose placements are ``Shard(0)`` on one mesh dimension and
    ``Replicate()`` on the others (FSDP2: 1-D mesh; HSDP: ``(Replicate(), Shard(0))``), that
    mesh dimension; -1 when all are ``Replicate()``; None for any other layout."""
    shard = [d for d, p in enumerate(t.placements) if not isinstance(p, Replicate)]
    if not shard:
        return -1
    if len(shard) == 1 and isinstance(t.placements[shard[0]], Shard):
        if t.placements[shard[0]].dim == 0 and type(t.placements[shard[0]]) is Shard:
            return shard[0]
    return None


# --------------------------------------------------------------------------------------------
# orthogonalization


def orthogonalize_distributed(
    matrices: Sequence[Tensor],
    steps: int = 5,
    coefficients: Any = "quintic",
    *,
    eps: float = 1e-7,
    dtype: torch.dtype | None = None,
    process_group: Any = None,
    cast_back: bool = True,
) -> list[Tensor]:
    """:func:`~optkit.optim.newton_schulz.orthogonalize_many` with the work spread over ranks.

    Args:
        matrices: ``(..., rows, cols)`` tensors: plain tensors (replicated on every rank of
            ``process_group``, as under DDP; local work when ``process_group`` is None) or
            DTensors (their own mesh decides; see the module docstring).
        steps, coefficients, eps, dtype: as :func:`orthogonalize_many`.
        process_group: the group over which plain tensors are replicated; None = not.
        cast_back: False leaves results for plain tensors in the dtype they were computed or
            sent in (DTensor results always take the input's dtype).

    Returns:
        One tensor per input, same shape, dtype (unless ``cast_back=False``) and kind (DTensor
        with the same placements). Every rank must call this with the same list (same global
        shapes, same order).
    """
    ns = dict(steps=steps, coefficients=coefficients, eps=eps, dtype=dtype)
    out: list[Tensor | None] = [None] * len(matrices)
    local: list[int] = []
    replicated: dict[Any, list[int]] = {}
    sharded: dict[Any, list[int]] = {}
    fallback: list[int] = []
    for i, m in enumerate(matrices):
        if not is_dtensor(m):
            if process_group is None or dist.get_world_size(process_group) == 1:
                local.append(i)
            else:
                replicated.setdefault(process_group, []).append(i)
            continue
        mesh, placements = m.device_mesh, tuple(m.placements)
        rows = row_shard_dim(m)
        if mesh.size() == 1 or (rows == -1 and mesh.ndim > 1):
            local.append(i)  # every rank holds all of it
        elif rows == -1:
            replicated.setdefault(mesh.get_group(), []).append(i)
        elif rows is not None and m.ndim == 2:
            sharded.setdefault(mesh.get_group(rows), []).append(i)  # FSDP2, HSDP
        elif mesh.ndim == 1 and isinstance(placements[0], Shard) and placements[0].dim < m.ndim - 2:
            local.append(i)  # whole matrices of a stack live on each rank
        else:
            fallback.append(i)

    if local:
        cast = cast_back or any(is_dtensor(matrices[i]) for i in local)
        results = orthogonalize_many([_local(matrices[i]) for i in local], **ns, cast_back=cast)
        for i, o in zip(local, results):
            out[i] = _like(matrices[i], o)
    for group, idx in replicated.items():
        mats = [_local(matrices[i]) for i in idx]
        cast = cast_back or any(is_dtensor(matrices[i]) for i in idx)
        results = _orthogonalize_replicated(mats, ns, group, cast_back=cast)
        for i, o in zip(idx, results):
            out[i] = _like(matrices[i], o)
    for group, idx in sharded.items():
        results = _orthogonalize_row_sharded([matrices[i] for i in idx], ns, group)
        for i, o in zip(idx, results):
            out[i] = _like(matrices[i], o)
    for i in fallback:
        m = matrices[i]
        full = orthogonalize_many([m.full_tensor()], **ns)[0]
        out[i] = distribute_tensor(full, m.device_mesh, m.placements, src_data_rank=None)
    return out  # type: ignore[return-value]


def _local(t: Tensor) -> Tensor:
    return t.to_local() if is_dtensor(t) else t


def _like(ref: Tensor, local: Tensor) -> Tensor:
    """Wrap a local result like ``ref`` (a DTensor with its mesh, placements and shape)."""
    if not is_dtensor(ref):
        return local
    return DTensor.from_local(
        local, ref.device_mesh, ref.placements, run_check=False, shape=ref.shape,
        stride=ref.stride(),
    )  # fmt: skip


def _wire_dtype(t: Tensor, dtype: torch.dtype | None) -> torch.dtype:
    """The NS compute dtype when narrower than ``t``'s (lossless, see the module), else t's."""
    compute = dtype or default_ns_dtype(t.device, t.dtype)
    return compute if compute.itemsize < t.dtype.itemsize else t.dtype


def _buckets(tensors: Sequence[Tensor], dtype: torch.dtype | None) -> dict[Any, list[int]]:
    """Indices by (wire dtype, device): one collective each."""
    out: dict[Any, list[int]] = {}
    for i, t in enumerate(tensors):
        out.setdefault((_wire_dtype(t, dtype), t.device), []).append(i)
    return out


def _orthogonalize_replicated(
    mats: list[Tensor], ns: dict[str, Any], group: Any, cast_back: bool = True
) -> list[Tensor]:
    """Owners by cost, local NS, one all-gather per wire dtype (module docstring); results in
    the wire dtype unless ``cast_back``."""
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    owners = assign_owners([matrix_cost(m.shape, m.device) for m in mats], world)
    mine = [i for i, o in enumerate(owners) if o == rank]
    results = dict(zip(mine, orthogonalize_many([mats[i] for i in mine], **ns, cast_back=False)))
    out: list[Tensor | None] = [None] * len(mats)
    for (wire, device), idx in _buckets(mats, ns["dtype"]).items():
        by_rank = [[i for i in idx if owners[i] == r] for r in range(world)]
        width = max(sum(mats[i].numel() for i in owned) for owned in by_rank)
        if width == 0:
            continue
        send = torch.empty(width, dtype=wire, device=device)
        offset = 0
        for i in by_rank[rank]:
            n = mats[i].numel()
            send[offset : offset + n].view(mats[i].shape).copy_(results[i])
            offset += n
        send[offset:].zero_()  # padding up to the rank with the most elements
        recv = torch.empty(world * width, dtype=wire, device=device)
        _all_gather(recv, send, group=group)
        _count(
            (world - 1) * send.numel() * send.itemsize, (world - 1) * send.numel() * send.itemsize
        )
        for r, owned in enumerate(by_rank):
            offset = r * width
            for i in owned:
                n = mats[i].numel()
                out[i] = recv[offset : offset + n].view(mats[i].shape)
                if cast_back:
                    out[i] = out[i].to(mats[i].dtype)
                offset += n
    return out  # type: ignore[return-value]


def _orthogonalize_row_sharded(mats: list[Tensor], ns: dict[str, Any], group: Any) -> list[Tensor]:
    """DTensors ``(R, C)`` with ``Shard(0)``: gather each on its owner, NS, scatter the rows back.

    Returns the local rows of each O_i (plain tensors).
    """
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    locals_ = [m.to_local() for m in mats]
    layouts = [chunk_rows(m.shape[0], world) for m in mats]
    for i, (m, loc) in enumerate(zip(mats, locals_)):
        if loc.shape[0] != layouts[i][rank][1]:
            raise RuntimeError(
                f"matrix {i} of shape {tuple(m.shape)}: this rank holds {loc.shape[0]} rows, "
                f"torch.chunk layout says {layouts[i][rank][1]}; only that layout is supported"
            )
    owners = assign_owners([matrix_cost(m.shape, m.device) for m in mats], world)
    buckets = _buckets(locals_, ns["dtype"])
    full: dict[int, Tensor] = {}
    # 1. every shard to its owner; the owner assembles its matrices.
    for (wire, device), idx in buckets.items():
        owned = [[i for i in idx if owners[i] == r] for r in range(world)]
        cols = {i: mats[i].shape[1] for i in idx}
        send_splits = [sum(layouts[i][rank][1] * cols[i] for i in owned[d]) for d in range(world)]
        recv_splits = [sum(layouts[i][s][1] * cols[i] for i in owned[rank]) for s in range(world)]
        send = _pack([locals_[i] for d in range(world) for i in owned[d]], wire, device)
        recv = torch.empty(sum(recv_splits), dtype=wire, device=device)
        _all_to_all(recv, send, recv_splits, send_splits, group)
        for i in owned[rank]:
            full[i] = torch.empty(mats[i].shape, dtype=wire, device=device)
        offset = 0
        for s in range(world):
            for i in owned[rank]:
                start, count = layouts[i][s]
                n = count * cols[i]
                full[i][start : start + count].view(-1).copy_(recv[offset : offset + n])
                offset += n
    # 2. the owner orthogonalizes all its matrices at once (same shapes batched).
    mine = sorted(full)
    results = dict(zip(mine, orthogonalize_many([full[i] for i in mine], **ns, cast_back=False)))
    # 3. each rank's rows back to it.
    out: list[Tensor | None] = [None] * len(mats)
    for (wire, device), idx in buckets.items():
        owned = [[i for i in idx if owners[i] == r] for r in range(world)]
        cols = {i: mats[i].shape[1] for i in idx}
        pieces = [
            results[i][layouts[i][d][0] : layouts[i][d][0] + layouts[i][d][1]]
            for d in range(world)
            for i in owned[rank]
        ]
        send = _pack(pieces, wire, device)
        send_splits = [sum(layouts[i][d][1] * cols[i] for i in owned[rank]) for d in range(world)]
        recv_splits = [sum(layouts[i][rank][1] * cols[i] for i in owned[s]) for s in range(world)]
        recv = torch.empty(sum(recv_splits), dtype=wire, device=device)
        _all_to_all(recv, send, recv_splits, send_splits, group)
        offset = 0
        for s in range(world):
            for i in owned[s]:
                count = layouts[i][rank][1]
                n = count * cols[i]
                piece = recv[offset : offset + n].view(count, cols[i])
                out[i] = piece.to(locals_[i].dtype)
                offset += n
    return out  # type: ignore[return-value]


def _pack(tensors: list[Tensor], dtype: torch.dtype, device: torch.device) -> Tensor:
    buf = torch.empty(sum(t.numel() for t in tensors), dtype=dtype, device=device)
    offset = 0
    for t in tensors:
        n = t.numel()
        buf[offset : offset + n].view(t.shape).copy_(t)
        offset += n
    return buf


def _all_to_all(
    recv: Tensor, send: Tensor, recv_splits: list[int], send_splits: list[int], group: Any
) -> None:
    dist.all_to_all_single(recv, send, recv_splits, send_splits, group=group)
    rank, size = dist.get_rank(group), send.itemsize
    _count(
        (sum(send_splits) - send_splits[rank]) * size, (sum(recv_splits) - recv_splits[rank]) * size
    )


def _count(sent: int, received: int) -> None:
    STATS.sent += sent
    STATS.received += received
    STATS.collectives += 1


# --------------------------------------------------------------------------------------------
# QK-clip helpers


def all_reduce_max_(values: dict[str, Tensor], group: Any) -> None:
    """Replace each tensor of ``values`` by its elementwise max over the ranks of ``group``.

    One ``all_reduce(MAX)`` for the whole dict (keys sorted, so every rank packs alike); a list
    of groups (the dimensions of a mesh) reduces over each in turn, i.e. over all their ranks.
    Every rank must hold the same keys and shapes.
    """
    groups = group if isinstance(group, (list, tuple)) else [group]
    groups = [g for g in groups if g is not None and dist.get_world_size(g) > 1]
    if not groups or not values:
        return
    keys = sorted(values)
    flat = torch.cat([values[k].reshape(-1).float() for k in keys])
    for g in groups:
        dist.all_reduce(flat, op=dist.ReduceOp.MAX, group=g)
        _count(flat.numel() * 4, flat.numel() * 4)
    offset = 0
    for k in keys:
        n = values[k].numel()
        values[k] = flat[offset : offset + n].view(values[k].shape).to(values[k].dtype)
        offset += n


@torch.no_grad()
def full_linear(module: torch.nn.Module, x: Tensor) -> Tensor:
    """``module(x)`` for an ``nn.Linear`` whose weight may be an FSDP2-sharded DTensor.

    Outside FSDP's forward the weight is a shard: gather it (``full_tensor()``, every rank
    must call this alike) and apply it to the local input. Used by QK-clip's re-measure.
    """
    weight, bias = module.weight, getattr(module, "bias", None)
    if not is_dtensor(weight):
        return module(x)
    full_bias = bias.full_tensor() if is_dtensor(bias) else bias
    return torch.nn.functional.linear(x, weight.full_tensor(), full_bias)


@torch.no_grad()
def scale_rows_(t: Tensor, start: int, count: int, factor: float) -> None:
    """``t[start : start + count] *= factor`` in place, also for a DTensor sharded on dim 0
    (each rank scales the rows it holds; :func:`row_shard_dim`) or replicated."""
    if not is_dtensor(t):
        t[start : start + count].mul_(factor)
        return
    local, mesh, dim = t.to_local(), t.device_mesh, row_shard_dim(t)
    if dim == -1:
        local[start : start + count].mul_(factor)
    elif dim is not None:
        first, rows = chunk_rows(t.shape[0], mesh.size(dim))[mesh.get_local_rank(dim)]
        lo, hi = max(start, first), min(start + count, first + rows)
        if lo < hi:
            local[lo - first : hi - first].mul_(factor)
    else:
        raise NotImplementedError(
            f"QK-clip on a DTensor with placements {t.placements}: only Shard(0) on one mesh "
            "dimension (FSDP2, HSDP) with Replicate() on the others, or all Replicate()"
        )
