r"""Muon: momentum + orthogonalized update for hidden matrices, AdamW for the rest; one optimizer.

Symbols (the lecture's Muon slide): θ ∈ ℝ^{m×n} a weight matrix, G_t its gradient, B_t the
momentum buffer (``momentum_buffer``), μ = ``momentum``, γ = ``lr``, w = ``weight_decay``,
O_t the orthogonalized update, r(m, n) the learning-rate adjustment (``adjust_lr``).

One step of a "muon" param group is three stages, each a function over *lists* of tensors:

1. :func:`momentum_update` — B_t and the direction U_t to orthogonalize;
2. O_t = NS(U_t) for the whole list, same-shape matrices batched into one ``bmm`` chain
   (:class:`~optkit.optim.newton_schulz.NSBatch`);
3. :func:`apply_update` — decoupled decay and θ ← θ − γ·r·O_t (foreach ops).

In one process, stage 1 writes U_t straight into stage 2's stacks (in the compute dtype, bf16
on most hardware) and stage 3 adds the bf16 O_t to the parameters: no full-precision copy of
U_t or O_t is made. Stage 2 is also the seam for distributed Muon: under DDP
(``process_group=``) or FSDP2 (DTensor parameters) stage 1 returns U_t and
``Muon._orthogonalize`` hands the list (in parameter order, reshaped to ``(…, rows, cols)``)
to :func:`optkit.optim.distributed.orthogonalize_distributed`, which gives each rank a share
by cost, orthogonalizes it with the same pure functions and returns every rank its results
(or its rows); stages 1 and 3 are elementwise and stay local.

"adamw" groups call :func:`optkit.optim.adam.adam_update` — the one Adam/AdamW rule of optkit —
with state created by :func:`optkit.optim.adam.gather_adam_state` (torch's keys), so the AdamW
part is bit-identical to ``optkit.AdamW`` with the same hyperparameters.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_int, check_number, check_pair
from ._base import OptkitOptimizer
from .adam import adam_update, check_adam_hyperparameters, gather_adam_state
from .distributed import (
    is_dtensor,
    local_tensors,
    orthogonalize_distributed,
    process_group_of,
)
from .muon_clip import AttentionSpec, QKClip, find_attention
from .newton_schulz import NSBatch, ns_schedule, orthogonalize_many
from .partition import ParamRecord, describe, partition

__all__ = [
    "Muon",
    "MuonClip",
    "apply_update",
    "lr_adjustment",
    "momentum_update",
    "normuon_update",
]

ALGORITHMS = ("muon", "adamw")
ADJUST_LR = ("spectral", "match_rms_adamw", None)


class _Unset:
    """An argument not given (None is a value of torch's ``adjust_lr_fn``)."""

    def __repr__(self) -> str:
        return "<not given>"


_UNSET: Any = _Unset()
ORTHOGONALIZE = ("matrix", "split_qkv", "per_head")


def momentum_update(
    grads: list[Tensor],
    bufs: list[Tensor],
    momentum: float,
    nesterov: bool,
    out: list[Tensor] | None = None,
) -> list[Tensor]:
    """B ← μB + (1 − μ)G in place; return U = (1 − μ)G + μB (nesterov) or B.

    This is the EMA form of KJ and ``torch.optim.Muon`` (so ``momentum_buffer`` interchanges
    with torch's). The lecture's B ← μB + G is the same buffer times 1/(1 − μ); the update
    NS(U) does not see the factor because NS normalizes U first. ``out``: tensors shaped like
    the grads (any floating dtype, e.g. Newton–Schulz's bf16 stacks) to write U into.
    """
    torch._foreach_lerp_(bufs, grads, 1 - momentum)
    if out is None:
        return torch._foreach_lerp(grads, bufs, momentum) if nesterov else list(bufs)
    for g, b, o in zip(grads, bufs, out):
        if nesterov:
            torch.lerp(g, b, momentum, out=o)
        else:
            o.copy_(b)
    return out


def lr_adjustment(adjust_lr: str | None, rows: int, cols: int) -> float:
    """r(m, n), the factor on γ for an m×n matrix.

    ``"spectral"`` (Keller Jordan): √max(1, m/n) (m = fan-out rows, n = fan-in columns), so
    that for tall matrices too the update's RMS→RMS operator norm √(n/m)·‖O‖₂ is 1.
    ``"match_rms_adamw"`` (Moonlight): 0.2·√max(m, n); O has RMS entry 1/√max(m, n), so the
    update gets the RMS (≈ 0.2) of a typical AdamW update and AdamW's lr and weight decay carry
    over. None: 1.

    Example:
        >>> lr_adjustment("spectral", 2048, 512)
        2.0
        >>> round(lr_adjustment("match_rms_adamw", 512, 2048), 4)
        9.051
    """
    if adjust_lr == "spectral":
        return math.sqrt(max(1.0, rows / cols))
    if adjust_lr == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return 1.0


def normuon_update(
    updates: list[Tensor], second_moments: list[Tensor], beta2: float, eps: float
) -> list[Tensor]:
    """NorMuon's per-neuron normalization of orthogonalized updates ``(..., m, n)``.

    .. code-block:: text

        v ← β₂·v + (1 − β₂)·mean_j O_ij²         one entry per row (output neuron) i
        N = O / (√v + ε)                         row i divided by √v_i
        N ← N · ‖O‖_F / max(‖N‖_F, ε)            the Frobenius norm of O is kept

    ``second_moments`` (v, shaped ``(..., m, 1)``, in the parameters' dtype) are updated in
    place; the results are in their dtype. Each matrix is normalized on its own (a stack of
    experts, or the q/k/v blocks of a split, each keep their own norm).
    """
    out = []
    for O, v in zip(updates, second_moments):
        O = O.to(v.dtype)
        norm = torch.linalg.matrix_norm(O, keepdim=True)
        v.lerp_(O.square().mean(dim=-1, keepdim=True), 1 - beta2)
        N = O / (v.sqrt() + eps)
        N.mul_(norm / torch.linalg.matrix_norm(N, keepdim=True).clamp_min(eps))
        out.append(N)
    return out


def apply_update(
    params: list[Tensor],
    updates: list[Tensor],
    *,
    lr: float,
    weight_decay: float,
    scales: Sequence[float],
    cautious: bool = False,
) -> None:
    """θ ← θ·(1 − γ·w·M) − γ·r·O in place; M = 1, or [O ⊙ θ ≥ 0] elementwise if ``cautious``.

    Cautious decay shrinks only the entries that the update moves towards zero anyway (O and
    θ of the same sign). ``updates`` (O, any shape with θ's numel) may be in a lower precision
    than θ (bf16 from Newton–Schulz): they are added as they are, torch converting each on
    the fly.
    """
    if weight_decay != 0 and cautious:
        for p, o in zip(params, updates):
            agree = (o.reshape(p.shape) * p) >= 0
            p.addcmul_(p, agree, value=-lr * weight_decay)
    elif weight_decay != 0:
        torch._foreach_mul_(params, 1 - lr * weight_decay)
    by_scale: dict[float, tuple[list[Tensor], list[Tensor]]] = {}
    for p, o, s in zip(params, updates, scales):
        ps, os_ = by_scale.setdefault(s, ([], []))
        ps.append(p)
        os_.append(o.reshape(p.shape))
    for s, (ps, os_) in by_scale.items():
        torch._foreach_add_(ps, os_, alpha=-lr * s)


def _as_matrices(t: Tensor, batch_dims: int) -> Tensor:
    """View ``t`` as ``(*batch, rows, cols)``: dim ``batch_dims`` is rows, the rest columns."""
    return t.reshape(*t.shape[: batch_dims + 1], -1)


# A parameter's matrix view (group key "matrix_views", one entry per parameter): None, or
# (transposed, row_blocks). transposed: the weight is stored (in, out), as transformers'
# Conv1D, so its matrix is the transpose (rows = output features, for r(m, n) and NorMuon's
# per-neuron rows). row_blocks: row counts of the blocks Newton–Schulz orthogonalizes as
# separate matrices (q | k | v of a fused projection, or one block per head); () = whole.
MatrixView = tuple[bool, tuple[int, ...]]


def _views_with_grad(group: dict[str, Any], params: list[Tensor]) -> list[MatrixView | None]:
    views = group.get("matrix_views")
    if not views:
        return [None] * len(params)
    by_id = {id(p): v for p, v in zip(group["params"], views)}
    return [_normal_view(by_id[id(p)]) for p in params]


def _normal_view(view: Any) -> MatrixView | None:
    if view is None:
        return None
    transposed, blocks = view
    if not transposed and not blocks:
        return None
    return bool(transposed), tuple(blocks)


def _matrix_view(t: Tensor, batch_dims: int, view: MatrixView | None) -> Tensor:
    m = _as_matrices(t, batch_dims)
    return m.mT if view is not None and view[0] else m


def _split(m: Tensor, view: MatrixView | None) -> tuple[Tensor, ...]:
    if view is None or not view[1]:
        return (m,)
    return m.split(list(view[1]), dim=-2)


_MUON_MATH = r"""
    .. code-block:: text

        G_t = ∇J(θ_{t-1})
        B_t = μ·B_{t-1} + (1 − μ)·G_t                  (EMA form; see Notes)
        U_t = (1 − μ)·G_t + μ·B_t                      (nesterov; else U_t = B_t)
        O_t = NS_k(U_t)                                ≈ U Vᵀ for U_t = U Σ Vᵀ
        θ_t = θ_{t-1}·(1 − γ·w) − γ·r(m, n)·O_t

    NS_k: k = ``ns_steps`` Newton–Schulz steps on the wide orientation (see
    :mod:`optkit.optim.newton_schulz`); r: ``adjust_lr`` (see :func:`lr_adjustment`).
    A conv kernel (out, in, kh, kw) is the matrix out × (in·kh·kw); stacked expert weights
    (E, out, in) are E matrices. AdamW groups run :class:`optkit.AdamW`'s update.
"""


class Muon(OptkitOptimizer):
    __doc__ = (
        r"""Muon for hidden weight matrices, AdamW for everything else: one optimizer, one state.

    The lecture's last slide: momentum, then replace the momentum matrix by its orthogonal
    factor UVᵀ (all singular values 1), computed with a few Newton–Schulz steps instead of an
    SVD; only for matrices in non-extreme layers, AdamW for the rest. Pass an ``nn.Module`` and
    the split is automatic (:func:`optkit.optim.partition.partition`; see :meth:`describe`), or
    pass tensors / param-group dicts, each group with ``"algorithm": "muon" | "adamw"``
    (default ``"muon"``). Every group carries its own ``"lr"``: AdamW groups start at
    ``adamw_lr``, so LR schedulers scale both kinds alike.

    Symbols: γ = ``lr``, μ = ``momentum``, w = ``weight_decay``, k = ``ns_steps``,
    r = ``adjust_lr``; for AdamW groups γ = ``adamw_lr``, (β₁, β₂) = ``adamw_betas``,
    ε = ``adamw_eps``, w = ``adamw_weight_decay``. Group keys: ``eps`` is Newton–Schulz's ε
    in "muon" groups (torch.optim.Muon's key); Adam's ε is ``adam_eps`` in "adamw" groups.
"""
        + _MUON_MATH
        + r"""
    Args:
        params: an ``nn.Module`` (automatic partition), tensors (one "muon" group) or
            param-group dicts with an optional ``"algorithm"`` key.
        lr: γ ≥ 0 for Muon groups (default 0.02).
        momentum: μ in [0, 1) (default 0.95).
        nesterov: use U_t = (1 − μ)G_t + μB_t (default True).
        ns_steps: k ≥ 1 (default 5).
        weight_decay: w ≥ 0, decoupled (default 0).
        adjust_lr: ``"spectral"`` (default, KJ: √max(1, m/n)), ``"match_rms_adamw"``
            (Moonlight: 0.2·√max(m, n)) or None.
        adamw_lr, adamw_betas, adamw_eps, adamw_weight_decay: the AdamW groups' γ ≥ 0
            (default 3e-4), (β₁, β₂) in [0, 1) (default (0.9, 0.95)), ε ≥ 0 (default 1e-8),
            w ≥ 0 (default 0).
        ns_coefficients: ``"quintic"`` (default, KJ's (3.4445, −4.7750, 2.0315)),
            ``"polar_express"`` (Amsel et al. 2025), one (a, b, c) triple (torch.optim.Muon's
            form) or a sequence of triples (one per step, the last repeated).
        ns_dtype: Newton–Schulz compute dtype; None (default) picks per device: bfloat16 on
            CUDA and on CPUs with native bf16 matmul, else float32; float64 params stay float64.
        ns_eps: ε of the Frobenius normalization (default 1e-7).
        head: with an ``nn.Module``, the output head module(s) or name(s); False: none;
            None: found (see :func:`~optkit.optim.partition.partition`).
        process_group: under DDP (replicated parameters), the group whose ranks share the
            Newton–Schulz work (e.g. ``torch.distributed.group.WORLD``); None = no split.
            FSDP2 parameters (DTensors) need nothing: their mesh is used. See
            :mod:`optkit.optim.distributed`.
        eps: torch.optim.Muon's name for ``ns_eps`` (give one of the two).
        adjust_lr_fn: torch.optim.Muon's form of ``adjust_lr``: None or ``"original"``
            (= ``"spectral"``) or ``"match_rms_adamw"``; give one of the two.
        example_input, input_layer, exclude: the split's example batch (one recorded forward
            pass) and overrides; see :func:`~optkit.optim.partition.partition`. ``params``
            may also be ``model.named_parameters()``.
        normuon: NorMuon (default False): after Newton–Schulz, each row (output neuron) i of
            O is divided by √v_i + ε, v_i an EMA (β₂ = ``normuon_beta2``, default 0.95) of
            the row's mean square, and the result rescaled to ‖O‖_F
            (:func:`normuon_update`; state ``second_momentum_buffer``, ``(rows, 1)``).
            ``normuon_eps``: ε (default 1e-8).
        cautious_wd: cautious weight decay (default False): decay only the entries where O
            and θ have the same sign (where the step moves θ towards 0 anyway):
            θ ← θ − γ·w·θ·[O ⊙ θ ≥ 0] − γ·r·O. Muon groups only: AdamW groups keep plain
            decoupled decay (``adamw_weight_decay``).
        orthogonalize: ``"matrix"`` (default: each weight is one matrix), ``"split_qkv"``
            (a fused qkv weight is orthogonalized as its q, k and v row blocks, as if they
            were separate parameters, each with its own r(m, n)) or ``"per_head"`` (the q, k,
            v projections — fused or not — as one block per head). The blocks come from the
            attention layers :func:`~optkit.optim.muon_clip.find_attention` finds
            (``num_heads``/``num_kv_heads`` where the modules do not carry them). Output
            projections stay whole matrices.
        num_heads, num_kv_heads: head counts for ``orthogonalize`` (and MuonClip).
        attention: :class:`~optkit.optim.muon_clip.AttentionSpec` list giving the blocks of
            ``orthogonalize`` (None: found).

    Raises:
        ValueError: a hyperparameter out of range (the message names it), an unknown
            algorithm, a "muon" tensor with fewer than 2 dimensions, or a model none of whose
            parameters is a hidden matrix (Muon would run as plain AdamW: use
            :class:`optkit.AdamW`).

    Example:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
        ...                       nn.Linear(32, 1))
        >>> opt = Muon(model, lr=0.02, adamw_lr=1e-2)
        >>> [(g["algorithm"], len(g["params"]), g["lr"]) for g in opt.param_groups]
        [('muon', 1, 0.02), ('adamw', 5, 0.01)]
        >>> x = torch.randn(256, 8); y = x[:, :1] * x[:, 1:2]
        >>> loss0 = torch.nn.functional.mse_loss(model(x), y).item()
        >>> for _ in range(100):
        ...     opt.zero_grad()
        ...     torch.nn.functional.mse_loss(model(x), y).backward()
        ...     _ = opt.step()
        >>> torch.nn.functional.mse_loss(model(x), y).item() < 0.1 * loss0
        True

    References:
        K. Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024,
        https://kellerjordan.github.io/posts/muon/ ;
        J. Liu et al., "Muon is Scalable for LLM Training" (Moonlight), 2025, arXiv:2502.16982;
        N. Amsel et al., "The Polar Express", 2025, arXiv:2505.16932;
        Z. Li et al., "NorMuon: Making Muon more efficient and scalable", 2025,
        arXiv:2510.05491 (NorMuon; as in microsoft/dion ``normuon.py``: per-row second
        moment, Frobenius norm kept);
        K. Liang et al., "Cautious Optimizers", 2024, arXiv:2411.16085, and modded-nanogpt's
        optimizer (cautious decoupled weight decay, mask O ⊙ θ ≥ 0).

    Notes:
        - Momentum uses the EMA form B ← μB + (1 − μ)G of KJ and ``torch.optim.Muon`` instead
          of the lecture's B ← μB + G: the same buffer up to the factor 1 − μ, which NS's
          normalization removes, and state dicts interchange with torch's.
        - The lecture's update θ ← θ − γO has no decay and no r; here w = 0 and
          ``adjust_lr=None`` give exactly it. The decay uses the unadjusted γ (as KJ, torch).
        - Defaults differ from ``torch.optim.Muon`` (lr 1e-3, weight_decay 0.1, NS always in
          bf16): ours follow KJ's (lr 0.02, no decay, r = "spectral"). torch's keyword forms
          (``ns_coefficients=(a, b, c)``, ``eps=``, ``adjust_lr_fn=``) are accepted; the
          positional order is this class's. State dicts load both ways with torch.optim.Muon
          (keys torch's lacks are kept from this optimizer's groups; ``state_dict()`` also
          writes ``adjust_lr_fn`` and a named single-triple schedule as its triple).
        - NorMuon normalizes each row (output neuron), as the paper and dion do; modded-nanogpt
          and nanochat normalize along the longer side (columns of a wide matrix) and clamp
          v ≥ 1e-10 instead of adding ε. The v buffer starts at 0 without bias correction
          (as both). With NorMuon the update's r(m, n) still applies.
    """
    )

    def __init__(
        self,
        params: nn.Module | Iterable[Any],
        lr: float = 0.02,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = 5,
        weight_decay: float = 0.0,
        adjust_lr: str | None = "spectral",
        adamw_lr: float = 3e-4,
        adamw_betas: tuple[float, float] = (0.9, 0.95),
        adamw_eps: float = 1e-8,
        adamw_weight_decay: float = 0.0,
        *,
        ns_coefficients: Any = "quintic",
        ns_dtype: torch.dtype | None = None,
        ns_eps: float = 1e-7,
        head: Any = None,
        process_group: Any = None,
        eps: float | None = None,
        adjust_lr_fn: Any = _UNSET,
        # the split (partition): how the network computes
        example_input: Any = None,
        input_layer: Any = None,
        exclude: Sequence[Any] = (),
        orthogonalize: str = "matrix",
        num_heads: int | None = None,
        num_kv_heads: int | None = None,
        attention: Sequence[AttentionSpec] | None = None,
        # the update's options (NorMuon, cautious decay, block-wise NS): _update_options
        normuon: bool = False,
        normuon_beta2: float = 0.95,
        normuon_eps: float = 1e-8,
        cautious_wd: bool = False,
    ) -> None:
        self.process_group = process_group
        if eps is not None:
            if ns_eps not in (eps, 1e-7):
                raise ValueError(f"eps and ns_eps name the same ε: give one, got {eps!r}, "
                                 f"{ns_eps!r}")  # fmt: skip
            ns_eps = eps
        if adjust_lr_fn is not _UNSET:
            torch_form = _from_adjust_lr_fn(adjust_lr_fn)
            if adjust_lr not in (torch_form, "spectral"):
                raise ValueError(f"adjust_lr and adjust_lr_fn name the same factor: give one, "
                                 f"got {adjust_lr!r}, {adjust_lr_fn!r}")  # fmt: skip
            adjust_lr = torch_form
        check_number("adamw_lr", adamw_lr, 0.0)
        check_pair("adamw_betas", adamw_betas, 0.0, 1.0)
        check_number("adamw_eps", adamw_eps, 0.0)
        check_number("adamw_weight_decay", adamw_weight_decay, 0.0)
        muon = dict(
            lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
            weight_decay=weight_decay, adjust_lr=adjust_lr, ns_coefficients=ns_coefficients,
            ns_dtype=ns_dtype, eps=ns_eps, batch_dims=0,
        )  # fmt: skip
        muon.update(_update_options(normuon, normuon_beta2, normuon_eps, cautious_wd))
        _check_muon_group(muon)
        adamw = dict(
            lr=adamw_lr, betas=tuple(adamw_betas), adam_eps=adamw_eps,
            weight_decay=adamw_weight_decay, amsgrad=False, maximize=False, fused=None,
        )  # fmt: skip
        self._group_defaults = {"muon": muon, "adamw": adamw}
        self.records: list[ParamRecord] | None = None
        params = _named_or_given(params)
        if isinstance(params, nn.Module) or _is_named(params):
            self.records = partition(
                params, example_input=example_input, head=head, input_layer=input_layer,
                exclude=exclude,
            )  # fmt: skip
            _check_some_muon(self.records)
            check_choice("orthogonalize", orthogonalize, ORTHOGONALIZE)
            if orthogonalize != "matrix":
                if not isinstance(params, nn.Module):
                    raise ValueError(f"orthogonalize={orthogonalize!r} needs the nn.Module (the "
                                     "attention layers give the blocks)")  # fmt: skip
                specs = attention
                if specs is None:
                    specs = find_attention(params, num_heads=num_heads, num_kv_heads=num_kv_heads)
                self.records = _with_row_blocks(self.records, specs, orthogonalize)
            params = _groups_from_records(self.records)
        elif orthogonalize != "matrix":
            raise ValueError(
                f"orthogonalize={orthogonalize!r} needs the nn.Module; with param groups give "
                "{'matrix_views': [(transposed, row_blocks), ...]}"
            )
        defaults = {**muon, "adamw_lr": adamw_lr, "adamw_eps": adamw_eps}
        defaults.update(adamw_betas=adamw["betas"], adamw_weight_decay=adamw_weight_decay)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; missing keys come from its algorithm's defaults (``adamw_*`` for AdamW)."""
        algorithm = check_choice("algorithm", param_group.get("algorithm", "muon"), ALGORITHMS)
        param_group["algorithm"] = algorithm
        # torch fills a group's missing keys from self.defaults: give it this algorithm's.
        all_defaults, self.defaults = self.defaults, self._group_defaults[algorithm]
        try:
            super().add_param_group(param_group)
        finally:
            self.defaults = all_defaults
        group = self.param_groups[-1]
        for key, value in group.items():
            if isinstance(value, Tensor) and any(
                g.get(key) is value for g in self.param_groups[:-1]
            ):
                # the automatic partition makes several groups: each gets its own tensor lr,
                # or a scheduler would scale the one shared tensor once per group
                group[key] = value.clone()
        try:
            if algorithm == "muon":
                _check_muon_group(group)
            else:
                if "eps" in group:
                    raise ValueError(
                        "an 'adamw' group of Muon names Adam's ε 'adam_eps' ('eps' "
                        "is Newton–Schulz's ε of 'muon' groups, as torch.optim.Muon)"
                    )
                check_adam_hyperparameters(group, eps_key="adam_eps")
        except ValueError:
            self.param_groups.pop()
            raise

    def describe(self) -> str:
        """A printable table: each parameter's name, shape, algorithm and the reason."""
        if self.records is not None:
            return describe(self.records)
        records = [
            ParamRecord(
                f"param_groups[{g}][{i}]",
                p,
                group["algorithm"],
                "set by param group",
                group.get("batch_dims", 0),
            )
            for g, group in enumerate(self.param_groups)
            for i, p in enumerate(group["params"])
        ]
        return describe(records)

    def _step_group(self, group: dict[str, Any]) -> None:
        if group["algorithm"] == "adamw":
            beta1, beta2 = group["betas"]
            tensors, plan = gather_adam_state(self, group)
            if any(is_dtensor(p) for p in tensors.params):  # FSDP2: each rank updates its shards
                tensors = local_tensors(tensors)
                plan = plan._replace(fused=[False] * len(tensors.params))
            adam_update(
                tensors, lr=group["lr"], beta1=beta1, beta2=beta2,
                eps=group["adam_eps"], weight_decay=group["weight_decay"], amsgrad=group["amsgrad"],
                decoupled=True, maximize=group["maximize"], plan=plan,
            )  # fmt: skip
            return
        params, grads = self._params_with_grad(group)
        if not params:
            return
        bufs = []
        for p, g in zip(params, grads):
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(g, memory_format=torch.preserve_format)
            bufs.append(state["momentum_buffer"])
        batch_dims = group["batch_dims"]
        views = _views_with_grad(group, params)
        if any(is_dtensor(p) for p in params):
            if group.get("normuon", False) or any(v is not None and v[1] for v in views):
                raise NotImplementedError(
                    "normuon and orthogonalize='split_qkv'/'per_head' are not supported with "
                    "FSDP2 (DTensor) parameters yet; use them in one process or under DDP"
                )
            # (in, out) weights as stored: NS is transpose-equivariant; r uses the stored shape
            views = [None] * len(views)
        if any(v is not None for v in views):  # transposed storage or split blocks
            directions = momentum_update(grads, bufs, group["momentum"], group["nesterov"])
            matrices = [_matrix_view(u, batch_dims, v) for u, v in zip(directions, views)]
            blocks = [b for m, v in zip(matrices, views) for b in _split(m, v)]
            if self._distributed(blocks):
                orthogonal = self._orthogonalize(blocks, group)
            else:
                orthogonal = orthogonalize_many(
                    blocks, group["ns_steps"], _ns_spec(group["ns_coefficients"]), eps=group["eps"],
                    dtype=group["ns_dtype"], cast_back=False,
                )  # fmt: skip
        else:
            blocks = [_as_matrices(g, batch_dims) for g in grads]
            if self._distributed(blocks):
                directions = momentum_update(grads, bufs, group["momentum"], group["nesterov"])
                matrices = [_as_matrices(u, batch_dims) for u in directions]
                orthogonal = self._orthogonalize(matrices, group)
            else:  # U goes straight into Newton–Schulz's stacks (compute dtype)
                batch = NSBatch(blocks, group["ns_dtype"])
                out = [slot.view(g.shape) for slot, g in zip(batch.inputs, grads)]
                momentum_update(grads, bufs, group["momentum"], group["nesterov"], out=out)
                orthogonal = batch.run(
                    group["ns_steps"],
                    _ns_spec(group["ns_coefficients"]),
                    eps=group["eps"],
                    cast_back=False,
                )
            orthogonal = [_as_matrices(o, batch_dims) for o in orthogonal]
        scales = [lr_adjustment(group["adjust_lr"], *b.shape[-2:]) for b in blocks]
        if group.get("normuon", False):
            moments = [
                m for p, v in zip(params, views)
                for m in _split(self._second_moment(p, batch_dims, v), v)
            ]  # fmt: skip
            orthogonal = normuon_update(
                orthogonal, moments, group["normuon_beta2"], group["normuon_eps"]
            )
        updates, param_scales, k = [], [], 0
        for p, v in zip(params, views):  # blocks back into their parameters
            n = 1 if v is None or not v[1] else len(v[1])
            if n == 1:
                O, s = orthogonal[k], scales[k]
            else:  # each block carries its own r, as a separate parameter would
                O, s = torch.cat([o * r for o, r in zip(orthogonal[k : k + n], scales[k : k + n])],
                                 dim=-2), 1.0  # fmt: skip
            updates.append((O.mT if v is not None and v[0] else O).reshape(p.shape))
            param_scales.append(s)
            k += n
        apply_update(
            params, updates, lr=group["lr"], weight_decay=group["weight_decay"],
            scales=param_scales, cautious=group.get("cautious_wd", False),
        )  # fmt: skip

    def _second_moment(self, p: Tensor, batch_dims: int, view: Any) -> Tensor:
        """NorMuon's v for ``p``: one entry per row of its matrix view, ``(*batch, rows, 1)``."""
        state = self.state[p]
        if "second_momentum_buffer" not in state:
            rows = _matrix_view(p.detach(), batch_dims, view).shape[:-1]
            state["second_momentum_buffer"] = torch.zeros(
                (*rows, 1), dtype=p.dtype, device=p.device
            )
        return state["second_momentum_buffer"]

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict, readable by torch.optim.Muon too: "muon" groups also carry
        torch's ``adjust_lr_fn``, and a named single-triple schedule is written as its triple."""
        state = super().state_dict()
        for group in state["param_groups"]:
            if group.get("algorithm") == "muon":
                group["adjust_lr_fn"] = _TO_ADJUST_LR_FN[group["adjust_lr"]]
                schedule = ns_schedule(_ns_spec(group["ns_coefficients"]))
                if len(schedule.coefficients) == 1 and schedule.norm_scale == 1.0:
                    group["ns_coefficients"] = schedule.coefficients[0]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load an optkit.Muon or a torch.optim.Muon state dict: keys the saved groups lack
        (``algorithm``, ``ns_dtype``, ``batch_dims``) keep this optimizer's values; torch's
        ``adjust_lr_fn`` sets ``adjust_lr``."""
        state_dict = dict(state_dict)
        groups = [dict(g) for g in state_dict["param_groups"]]
        for current, saved in zip(self.param_groups, groups):
            if "adjust_lr_fn" in saved:
                fn = saved.pop("adjust_lr_fn")
                saved.setdefault("adjust_lr", _from_adjust_lr_fn(fn))
            _upgrade_group(saved)
            for key, value in current.items():
                if key != "params":
                    saved.setdefault(key, value)
        state_dict["param_groups"] = groups
        super().load_state_dict(state_dict)

    def __getstate__(self) -> dict[str, Any]:
        # torch keeps defaults, state and param_groups; the partition records, the per-kind
        # defaults and the process group are this optimizer's too (describe(), add_param_group)
        state = super().__getstate__()
        state.update(
            records=self.records,
            _group_defaults=self._group_defaults,
            process_group=_SharedProcessGroup(getattr(self, "process_group", None)),
        )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        pg = state.pop("process_group", None)
        self.process_group = pg.group if isinstance(pg, _SharedProcessGroup) else pg
        self.records = state.pop("records", None)
        if "_group_defaults" in state:
            self._group_defaults = state.pop("_group_defaults")
        super().__setstate__(state)
        for group in self.param_groups:
            _upgrade_group(group)

    def _distributed(self, matrices: list[Tensor]) -> bool:
        """Whether NS work is split over ranks: DTensors (FSDP2) or a ``process_group`` (DDP)."""
        process_group = getattr(self, "process_group", None)  # absent after unpickling
        return process_group is not None or any(is_dtensor(m) for m in matrices)

    def _orthogonalize(self, matrices: list[Tensor], group: dict[str, Any]) -> list[Tensor]:
        """O = NS(U) for every matrix of one group over the ranks (:mod:`.distributed`).

        The local path (one process) does not come here: it fills an :class:`NSBatch`.
        """
        return orthogonalize_distributed(
            matrices, group["ns_steps"], _ns_spec(group["ns_coefficients"]), eps=group["eps"],
            dtype=group["ns_dtype"], process_group=getattr(self, "process_group", None),
            cast_back=False,  # apply_update converts bf16 O as it adds it
        )  # fmt: skip


class MuonClip(Muon):
    r"""Muon + QK-clip (Kimi K2): after each step, heads whose max logit exceeded τ are rescaled.

    The lecture's last bullet: K2 trains with Muon "+ rescaling (+ weight decay)". The
    rescaling is QK-clip (:mod:`optkit.optim.muon_clip`): forward hooks on the attention q/k
    projections record S_h, the largest pre-softmax logit of head h over the last batch; after
    the Muon/AdamW step, every head with S_h > τ gets its W_q and W_k rows multiplied by
    √(τ/S_h) each, so its logits on that batch would top out at τ. Heads at or below τ, and
    everything else, are left exactly as the step made them.

    Symbols: τ = ``qk_clip_tau``, S_h = per-head max logit, γ_h = τ/S_h; the rest as
    :class:`Muon`.

    .. code-block:: text

        θ_t = Muon/AdamW step (see Muon)
        for each head h with S_h > τ:
            W_q[h] ← √γ_h·W_q[h]     W_k[h] ← √γ_h·W_k[h]      γ_h = τ / S_h

    Args:
        params: As :class:`Muon`; so are the positional and keyword arguments not listed here.
        qk_clip_tau: τ > 0 (default 100, as K2; a small model needs a smaller one).
        qk_clip_measure: ``"after_step"`` (default: S_h recomputed on the last batch with the
            updated weights, so clipped heads end at τ) or ``"forward"`` (S_h from the forward
            pass, before the update, as K2 describes); see
            :class:`~optkit.optim.muon_clip.QKClip`.
        attention: :class:`~optkit.optim.muon_clip.AttentionSpec` list; None finds them in the
            module passed as ``params`` (:func:`~optkit.optim.muon_clip.find_attention`:
            ``nn.MultiheadAttention``, q/k projections, fused qkv, ``Conv1D``; heads read from
            each attention module or its ``config``).
        num_heads, num_kv_heads: head counts for ``find_attention`` where the modules do not
            carry them (they override what the modules say).

    Attributes:
        max_logits: per attention layer, the ``(heads,)`` maxima the last step acted on.
        qk_clip: the :class:`~optkit.optim.muon_clip.QKClip` (``.remove()`` drops the hooks).

    Example:
        >>> class Attention(nn.Module):
        ...     def __init__(self, d=16, heads=2):
        ...         super().__init__()
        ...         self.num_heads = heads
        ...         self.q_proj, self.k_proj = nn.Linear(d, d), nn.Linear(d, d)
        ...     def forward(self, x):  # only the logits matter here
        ...         return (self.q_proj(x) * self.k_proj(x)).sum()
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> model = Attention()
        >>> opt = MuonClip(model, lr=0.0, qk_clip_tau=0.5, head=False, input_layer=False)
        >>> model(torch.randn(3, 5, 16) * 4).backward()
        >>> _ = opt.step()
        >>> bool((opt.max_logits["attn"] > 0.5).any())  # seen before the clip
        True

    References:
        Kimi Team, "Kimi K2: Open Agentic Intelligence", 2025, arXiv:2507.20534, §2.1.

    Notes:
        K2 clips with Multi-head Latent Attention and only the unshared head parts; here heads
        are plain (or GQA, where the shared key head is left alone and γ_h goes on W_q[h]).
        K2 takes S_h from the forward pass, i.e. with the weights before the step; by default
        S_h is re-measured on the same batch after the step (``qk_clip_measure``), so the
        bound τ holds for the weights training continues with.
        The hooks see pre-RoPE projections unless ``AttentionSpec.rotary`` is given.
    """

    def __init__(
        self,
        params: nn.Module | Iterable[Any],
        *args: Any,
        qk_clip_tau: float = 100.0,
        attention: Sequence[AttentionSpec] | None = None,
        qk_clip_measure: str = "after_step",
        num_heads: int | None = None,
        num_kv_heads: int | None = None,
        **kwargs: Any,
    ) -> None:
        check_number("qk_clip_tau", qk_clip_tau, 0.0, low_open=True)
        if attention is None:
            if not isinstance(params, nn.Module):
                raise ValueError("attention must be given when params is not an nn.Module")
            attention = find_attention(params, num_heads=num_heads, num_kv_heads=num_kv_heads)
            if not attention:
                raise ValueError(
                    "attention: no attention layer found in the model (nn.MultiheadAttention, "
                    "q/k projections named q_proj/k_proj/query/key/..., or a fused "
                    "qkv_proj/c_attn/Wqkv/...); pass attention=[AttentionSpec(q_proj=..., "
                    "k_proj=..., num_heads=...)] (layout='fused_qkv' or 'mha' for fused weights)"
                )
        super().__init__(
            params, *args, num_heads=num_heads, num_kv_heads=num_kv_heads, attention=attention,
            **kwargs,
        )  # fmt: skip
        self.qk_clip = QKClip(attention, qk_clip_tau, measure=qk_clip_measure)

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        """One Muon/AdamW step, then QK-clip with the maxima recorded since the last step."""
        loss = super().step(closure)
        params = [p for g in self.param_groups for p in g["params"]]
        # each data-parallel rank saw its own batch: clip on the max over all of them
        self.qk_clip.clip(process_group_of(params, getattr(self, "process_group", None)))
        return loss

    @property
    def max_logits(self) -> dict[str, Tensor]:
        return self.qk_clip.last_max_logits

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["qk_clip"] = {
            "tau": self.qk_clip.tau,
            "max_logits": {k: v.clone() for k, v in self.qk_clip.max_logits.items()},
            "last_max_logits": {k: v.clone() for k, v in self.qk_clip.last_max_logits.items()},
        }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        clip = state_dict.pop("qk_clip", None)
        super().load_state_dict(state_dict)
        if clip is not None:
            self.qk_clip.tau = clip["tau"]
            self.qk_clip.max_logits = {k: v.clone() for k, v in clip["max_logits"].items()}
            self.qk_clip.last_max_logits = {
                k: v.clone() for k, v in clip["last_max_logits"].items()
            }


_TO_ADJUST_LR_FN = {"spectral": "original", "match_rms_adamw": "match_rms_adamw", None: "none"}


def _from_adjust_lr_fn(fn: Any) -> str | None:
    """torch.optim.Muon's ``adjust_lr_fn`` as ``adjust_lr`` (torch's None is the spectral r;
    its unknown strings, reachable only through a state dict, give r = 1 there as here)."""
    if fn is None or fn == "original":
        return "spectral"
    if fn == "match_rms_adamw":
        return fn
    if fn == "none":
        return None
    raise ValueError(f"adjust_lr_fn must be None, 'original' or 'match_rms_adamw', got {fn!r}")


def _ns_spec(coefficients: Any) -> Any:
    """One (a, b, c) triple (torch.optim.Muon's form) as a one-step schedule; else as given."""
    if (
        isinstance(coefficients, (tuple, list))
        and len(coefficients) == 3
        and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in coefficients)
    ):
        return (tuple(coefficients),)
    return coefficients


def _upgrade_group(group: dict[str, Any]) -> None:
    """Older optkit state dicts named Adam's ε of "adamw" groups ``eps``."""
    if group.get("algorithm") == "adamw" and "eps" in group:
        group.setdefault("adam_eps", group.pop("eps"))


class _SharedProcessGroup:
    """A process group kept by reference: deep copies share it (it is a handle to the other
    ranks, not data); a pickle stores the default group as "WORLD" (restored as that
    process's default group, None if it has none) and refuses others, whose handles do not
    cross processes."""

    def __init__(self, group: Any) -> None:
        self.group = group

    def __deepcopy__(self, memo: dict[int, Any]) -> _SharedProcessGroup:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        if self.group is None:
            return (_SharedProcessGroup, (None,))
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and self.group is dist.group.WORLD:
            return (_world_group, ())
        raise ValueError(
            "a Muon with a process group other than the default (WORLD) cannot be pickled: "
            "process group handles do not cross processes; pickle its state_dict() instead"
        )


def _world_group() -> _SharedProcessGroup:
    import torch.distributed as dist

    initialized = dist.is_available() and dist.is_initialized()
    return _SharedProcessGroup(dist.group.WORLD if initialized else None)


def _named_or_given(params: Any) -> Any:
    """An iterator of ``(name, tensor)`` pairs (``model.named_parameters()``) as a list."""
    if isinstance(params, nn.Module) or isinstance(params, (list, tuple)):
        return params
    if isinstance(params, Iterable) and not isinstance(params, (Tensor, dict)):
        return list(params)
    return params


def _is_named(params: Any) -> bool:
    return (
        isinstance(params, list)
        and bool(params)
        and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str)
                and isinstance(x[1], Tensor) for x in params)
    )  # fmt: skip


def _check_some_muon(records: list[ParamRecord]) -> None:
    """A split with no Muon parameter would silently be AdamW: say so instead."""
    if records and not any(r.algorithm == "muon" for r in records):
        raise ValueError(
            "Muon: no parameter of the model is a hidden matrix (all go to AdamW: "
            f"{', '.join(sorted({r.reason for r in records}))}); use optkit.AdamW, or pass "
            "head=False / input_layer=False if those layers should be Muon's"
        )


def _with_row_blocks(
    records: list[ParamRecord], specs: Sequence[AttentionSpec], mode: str
) -> list[ParamRecord]:
    """Records of the attention weights with the row blocks of ``mode`` (and a reason that
    says so); the rest unchanged."""
    blocks: dict[int, tuple[int, ...]] = {}
    for spec in specs:
        blocks.update({id(w): b for w, b in spec.row_blocks(mode).items()})
    if not specs:  # separate q/k/v projections are already split: no blocks, no error
        raise ValueError(f"orthogonalize={mode!r}: no attention layer found in the model "
                         "(see optkit.optim.muon_clip.find_attention)")  # fmt: skip
    out = []
    for r in records:
        b = blocks.get(id(r.param))
        if r.algorithm != "muon" or b is None or len(b) < 2:
            out.append(r)
            continue
        what = "q | k | v" if mode == "split_qkv" else f"{len(b)} head blocks"
        sizes = "+".join(str(n) for n in b) if mode == "split_qkv" else f"{len(b)}×{b[0]}"
        reason = f"{r.reason}; orthogonalized as {what} ({sizes} rows)"
        out.append(dataclasses.replace(r, reason=reason, row_blocks=tuple(b)))
    return out


def _groups_from_records(records: list[ParamRecord]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, int], list[ParamRecord]] = {}
    for r in records:
        groups.setdefault((r.algorithm, r.batch_dims), []).append(r)
    ordered = sorted(groups.items(), key=lambda kv: (kv[0][0] != "muon", kv[0][1]))
    out = []
    for (algorithm, batch_dims), rs in ordered:
        group: dict[str, Any] = {"params": [r.param for r in rs], "algorithm": algorithm}
        if algorithm == "muon":
            group["batch_dims"] = batch_dims
            if any(r.transposed or r.row_blocks for r in rs):
                group["matrix_views"] = [
                    (r.transposed, r.row_blocks) if r.transposed or r.row_blocks else None
                    for r in rs
                ]
        out.append(group)
    return out


def _update_options(
    normuon: bool, normuon_beta2: float, normuon_eps: float, cautious_wd: bool
) -> dict[str, Any]:
    """The Muon-group keys of the update's options (checked by :func:`_check_muon_group`)."""
    return dict(
        normuon=normuon, normuon_beta2=normuon_beta2, normuon_eps=normuon_eps,
        cautious_wd=cautious_wd, matrix_views=None,
    )  # fmt: skip


def _check_update_options(group: dict[str, Any]) -> None:
    for flag in ("normuon", "cautious_wd"):
        if not isinstance(group.get(flag, False), bool):
            raise ValueError(f"{flag} must be True or False, got {group[flag]!r}")
    check_number("normuon_beta2", group.get("normuon_beta2", 0.95), 0.0, 1.0, high_open=True)
    check_number("normuon_eps", group.get("normuon_eps", 1e-8), 0.0, low_open=True)
    views = group.get("matrix_views")
    if views is None:
        return
    params = list(group.get("params", ()))
    if len(views) != len(params):
        raise ValueError(f"matrix_views must have one entry per parameter ({len(params)}), got "
                         f"{len(views)}")  # fmt: skip
    for i, (p, view) in enumerate(zip(params, views)):
        view = _normal_view(view)
        if view is None:
            continue
        transposed, blocks = view
        if transposed and p.ndim != 2 + group["batch_dims"]:
            raise ValueError(f"matrix_views[{i}]: a transposed view needs a matrix, got shape "
                             f"{tuple(p.shape)}")  # fmt: skip
        rows = _matrix_view(p.detach(), group["batch_dims"], view).shape[-2]
        if blocks and (sum(blocks) != rows or min(blocks) < 1):
            raise ValueError(f"matrix_views[{i}]: row blocks {list(blocks)} must be positive and "
                             f"sum to the matrix's {rows} rows")  # fmt: skip


def _check_muon_group(group: dict[str, Any]) -> None:
    check_number("lr", group["lr"], 0.0)
    check_number("momentum", group["momentum"], 0.0, 1.0, high_open=True)
    check_int("ns_steps", group["ns_steps"], 1)
    check_number("weight_decay", group["weight_decay"], 0.0)
    check_choice("adjust_lr", group["adjust_lr"], ADJUST_LR)
    ns_schedule(_ns_spec(group["ns_coefficients"]))
    dtype = group["ns_dtype"]
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"ns_dtype must be None or a floating torch.dtype, got {dtype!r}")
    check_number("ns_eps", group["eps"], 0.0)
    batch_dims = check_int("batch_dims", group["batch_dims"], 0)
    if not isinstance(group["nesterov"], bool):
        raise ValueError(f"nesterov must be True or False, got {group['nesterov']!r}")
    for i, p in enumerate(group.get("params", ())):
        if p.ndim < 2 + batch_dims:
            raise ValueError(
                f"params[{i}] has shape {tuple(p.shape)}: a 'muon' group needs ndim >= "
                f"{2 + batch_dims} (batch_dims={batch_dims}); put it in a group with "
                "algorithm='adamw', or pass the nn.Module for the automatic partition"
            )
        if p.is_complex():
            raise ValueError(f"params[{i}] is complex; Muon supports real tensors only")
    _check_update_options(group)
