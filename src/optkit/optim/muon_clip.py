r"""QK-clip (Kimi K2): keep every attention head's max pre-softmax logit at or below τ.

With Muon, the query/key weights of some heads can grow until the attention logits explode
(a loss spike, then divergence). QK-clip watches, for each head h, the largest logit of the
last batch and, after the optimizer step, rescales only the heads above τ:

.. code-block:: text

    S_h = max over the batch, over query i, key j (j ≤ i if causal) of  s·q_i^h·k_j^h
    γ_h = τ / S_h                                  only for heads with S_h > τ
    W_q[h] ← √γ_h·W_q[h],  W_k[h] ← √γ_h·W_k[h]     (rows of head h; bias entries too)

s = ``softmax_scale`` (1/√d by default). Both factors together multiply head h's logits by
γ_h, so recomputed on the same batch its max is exactly τ; other heads are not touched (not
even multiplied by 1). With grouped-query attention (``num_kv_heads < num_heads``) a key head
is shared by several query heads, so scaling it would change heads below τ: there the whole
factor γ_h goes on W_q[h] and W_k is left alone (a departure from K2, which uses MLA).

How the logits are seen without touching the attention code: forward hooks on the q and k
projections read their outputs; S_h is computed from them by query chunks, never holding the
full T×T logit matrix. :class:`AttentionSpec` describes where each head's queries and keys
are (``layout``):

- ``"separate"``: q and k projections (``nn.Linear``, or transformers' ``Conv1D`` whose weight
  is stored (in, out)), outputs ``(..., T, heads·d)`` with heads contiguous;
- ``"fused_qkv"``: one projection (``qkv_proj``, ``Wqkv``, GPT-2's ``c_attn`` Conv1D) whose
  output features are [all q heads | all k heads | all v heads] (``qkv_order="blocks"``) or
  per head [q_h | k_h | v_h] (``qkv_order="per_head"``, GPT-NeoX style);
- ``"mha"``: an ``nn.MultiheadAttention`` (``in_proj_weight`` rows [q | k | v], or separate
  ``q_proj_weight``/``k_proj_weight``): a pre-hook reads its query and key inputs.

Cross-attention (queries and keys of different lengths) is measured without a causal mask.

RoPE: the hooks see the projections *before* any rotary embedding. Rotations keep norms but
change q_i·k_j by a position-dependent angle, so the pre-RoPE max is not the max the softmax
sees (it can be lower or higher). Pass ``rotary=fn`` (``fn(q, k) -> (q, k)`` on tensors
``(B, H, T, d)``, positions 0..T−1) to measure post-RoPE logits. The rescale itself is right
either way: RoPE is linear, so scaling W_q, W_k rows scales the rotated logits by γ_h too.
Padding masks are not seen: padded positions count, which can only over-estimate S_h.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_int, check_number
from .distributed import all_reduce_max_, full_linear, scale_rows_

__all__ = [
    "AttentionSpec",
    "QKClip",
    "find_attention",
    "head_max_logits",
    "is_conv1d",
    "is_projection",
    "project",
    "qk_clip_",
]

LAYOUTS = ("separate", "fused_qkv", "mha")
QKV_ORDERS = ("blocks", "per_head")
MEASURES = ("after_step", "forward")


def is_conv1d(module: nn.Module) -> bool:
    """Transformers' ``Conv1D``: ``weight`` stored (in, out) = (nx, nf), output ``x @ W + b``."""
    nx, nf = getattr(module, "nx", None), getattr(module, "nf", None)
    w = getattr(module, "weight", None)
    return (
        isinstance(nx, int)
        and isinstance(nf, int)
        and isinstance(w, Tensor)
        and (tuple(w.shape) == (nx, nf))
    )


def is_projection(module: Any) -> bool:
    """An ``nn.Linear`` or a ``Conv1D``: a module whose output features are weight rows (or
    columns)."""
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Module) and is_conv1d(module))


def _out_features(module: nn.Module) -> int:
    if is_conv1d(module):
        return module.weight.shape[1]
    if isinstance(module, nn.MultiheadAttention):
        return module.embed_dim
    return module.weight.shape[0]


@dataclass(frozen=True, kw_only=True)
class AttentionSpec:
    """Where one attention layer's queries and keys come from (module docstring: layouts).

    Attributes:
        q_proj: the query projection (``nn.Linear`` or ``Conv1D``), the fused qkv projection
            (``layout="fused_qkv"``), or the ``nn.MultiheadAttention`` (``layout="mha"``).
        k_proj: the key projection with ``layout="separate"``; None otherwise.
        v_proj: the value projection (``"separate"``; optional, for Muon's per-head
            orthogonalization).
        num_heads: query heads H ≥ 1.
        num_kv_heads: key/value heads (GQA/MQA), dividing H; None = H.
        head_dim: d; None = q features / H.
        layout: ``"separate"``, ``"fused_qkv"`` or ``"mha"``.
        qkv_order: with ``"fused_qkv"``: ``"blocks"`` ([q heads | k heads | v heads], default)
            or ``"per_head"`` ([q_h | k_h | v_h] per head; needs H = Hkv).
        causal: logits with key j > query i are masked and not counted (default True). A
            non-causal measure of a causal layer only over-estimates S_h.
        softmax_scale: s; None = 1/√d.
        rotary: optional ``fn(q, k) -> (q, k)`` applied before the logits (RoPE).
        name: label for logging (default: assigned by :class:`QKClip`).
    """

    q_proj: nn.Module
    k_proj: nn.Module | None = None
    v_proj: nn.Module | None = None
    num_heads: int
    num_kv_heads: int | None = None
    head_dim: int | None = None
    layout: str = "separate"
    qkv_order: str = "blocks"
    causal: bool = True
    softmax_scale: float | None = None
    rotary: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = field(
        default=None, repr=False
    )
    name: str = ""

    def __post_init__(self) -> None:
        check_choice("layout", self.layout, LAYOUTS)
        check_choice("qkv_order", self.qkv_order, QKV_ORDERS)
        check_int("num_heads", self.num_heads, 1)
        kv = check_int("num_kv_heads", self.kv_heads, 1, self.num_heads)
        if self.num_heads % kv:
            raise ValueError(f"num_kv_heads ({kv}) must divide num_heads ({self.num_heads})")
        if (self.layout == "separate") != (self.k_proj is not None):
            raise ValueError("k_proj is required with layout='separate' and must be None with "
                             f"layout={self.layout!r}")  # fmt: skip
        if self.layout == "mha":
            if not isinstance(self.q_proj, nn.MultiheadAttention):
                raise ValueError("layout='mha' needs q_proj to be an nn.MultiheadAttention")
        else:
            for label, m in (("q_proj", self.q_proj), ("k_proj", self.k_proj),
                             ("v_proj", self.v_proj)):  # fmt: skip
                if m is not None and not is_projection(m):
                    raise ValueError(f"{label} must be an nn.Linear or a Conv1D (weight stored "
                                     f"(in, out)), got {type(m).__name__}")  # fmt: skip
        if self.qkv_order == "per_head" and kv != self.num_heads:
            raise ValueError("qkv_order='per_head' needs num_kv_heads = num_heads")
        rows = self.q_features
        need = {
            "separate": self.num_heads * self.dim,
            "fused_qkv": (self.num_heads + 2 * kv) * self.dim,
            "mha": self.num_heads * self.dim,
        }[self.layout]
        if rows != need:
            raise ValueError(f"q_proj has {rows} output rows; {self.layout} with num_heads="
                             f"{self.num_heads}, num_kv_heads={kv}, head_dim={self.dim} needs "
                             f"{need}")  # fmt: skip
        if self.k_proj is not None and _out_features(self.k_proj) != kv * self.dim:
            raise ValueError(f"k_proj has {_out_features(self.k_proj)} output rows; "
                             f"num_kv_heads * head_dim = {kv * self.dim}")  # fmt: skip

    @property
    def kv_heads(self) -> int:
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

    @property
    def q_features(self) -> int:
        """Output features of ``q_proj`` (all of q, k, v for a fused projection)."""
        return _out_features(self.q_proj)

    @property
    def dim(self) -> int:
        if self.head_dim is not None:
            return self.head_dim
        if self.layout == "fused_qkv":  # H·d + 2·Hkv·d rows
            return self.q_features // (self.num_heads + 2 * self.kv_heads)
        return self.q_features // self.num_heads

    @property
    def scale(self) -> float:
        return 1 / math.sqrt(self.dim) if self.softmax_scale is None else self.softmax_scale

    def q_start(self, h: int) -> int:
        """First output feature of query head h in its module (weight row, or Conv1D column)."""
        d = self.dim
        return 3 * d * h if self.qkv_order == "per_head" and self.layout == "fused_qkv" else d * h

    def k_start(self, h: int) -> int:
        """First output feature of key head h (a kv head) in its module."""
        d = self.dim
        if self.layout == "separate":
            return d * h
        if self.layout == "fused_qkv" and self.qkv_order == "per_head":
            return 3 * d * h + d
        if self.layout == "mha" and not self.q_proj._qkv_same_embed_dim:
            return d * h  # its own k_proj_weight
        return self.num_heads * d + d * h

    def k_module(self) -> nn.Module:
        return self.k_proj if self.layout == "separate" else self.q_proj  # type: ignore[return-value]

    def feature_index(self, role: str) -> Tensor:
        """Output features of all q (or k) heads, in head order, in their module's output."""
        d, heads = self.dim, self.num_heads if role == "q" else self.kv_heads
        start = self.q_start if role == "q" else self.k_start
        return torch.cat([torch.arange(start(h), start(h) + d) for h in range(heads)])

    def row_blocks(self, mode: str) -> dict[Tensor, tuple[int, ...]]:
        """Row blocks (of each weight's matrix, rows = output features) for Muon's block-wise
        orthogonalization: ``"split_qkv"`` (q | k | v of a fused weight) or ``"per_head"``
        (every head's rows of the q, k, v projections)."""
        d, H, kv = self.dim, self.num_heads, self.kv_heads
        if self.layout == "separate":
            if mode != "per_head":
                return {}
            pairs = [(self.q_proj, H), (self.k_proj, kv), (self.v_proj, kv)]
            return {m.weight: (d,) * n for m, n in pairs if m is not None}
        weight = self.q_proj.in_proj_weight if self.layout == "mha" else self.q_proj.weight
        if weight is None:  # MultiheadAttention with separate q/k/v weights
            m = self.q_proj
            out = {m.q_proj_weight: (d,) * H, m.k_proj_weight: (d,) * kv,
                   m.v_proj_weight: (d,) * kv}  # fmt: skip
            return out if mode == "per_head" else {}
        if mode == "per_head" or self.qkv_order == "per_head":
            return {weight: (d,) * (H + 2 * kv)}
        return {weight: (H * d, kv * d, kv * d)}


def head_max_logits(
    q: Tensor,
    k: Tensor,
    num_heads: int,
    num_kv_heads: int | None = None,
    *,
    scale: float | None = None,
    causal: bool = True,
    rotary: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
    chunk_elements: int = 1 << 22,
) -> Tensor:
    """Per-head max of s·q_i·k_j over batch, queries and keys, by query chunks.

    Args:
        q: ``(..., T, H·d)`` query projections; leading dims are the batch.
        k: ``(..., Tk, Hkv·d)`` key projections (Tk ≠ T: cross-attention, never causal).
        num_heads, num_kv_heads: H and Hkv (Hkv divides H; query head h reads key head
            h // (H/Hkv), the usual GQA grouping).
        scale: s (default 1/√d). causal: skip keys after the query. rotary: see the module.
        chunk_elements: at most about this many logits exist at once.

    Returns:
        float32 tensor ``(H,)``.

    Example:
        >>> q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # T = 2, one head, d = 2
        >>> head_max_logits(q, q, 1, scale=1.0)  # causal: q0·k0 = 1, q1·k0 = 0, q1·k1 = 4
        tensor([4.])
    """
    kv = num_heads if num_kv_heads is None else num_kv_heads
    T, Tk = q.shape[-2], k.shape[-2]
    causal = causal and T == Tk  # cross-attention: every key is visible
    d = q.shape[-1] // num_heads
    s = 1 / math.sqrt(d) if scale is None else scale
    q = q.reshape(-1, T, num_heads, d).transpose(1, 2)  # (B, H, T, d)
    k = k.reshape(-1, Tk, kv, d).transpose(1, 2)  # (B, Hkv, Tk, d)
    if rotary is not None:
        q, k = rotary(q, k)
    B, group = q.shape[0], num_heads // kv
    q = q.reshape(B, kv, group, T, d)
    kt = k.mT.unsqueeze(2)  # (B, Hkv, 1, d, T)
    best = torch.full((kv, group), -math.inf, dtype=torch.float32, device=q.device)
    chunk = max(1, chunk_elements // max(1, B * num_heads * T))
    for i0 in range(0, T, chunk):
        i1 = min(T, i0 + chunk)
        keys = i1 if causal else Tk
        logits = (q[:, :, :, i0:i1] @ kt[..., :keys]).float()  # (B, Hkv, G, c, keys)
        if causal:
            i = torch.arange(i0, i1, device=q.device)[:, None]
            j = torch.arange(keys, device=q.device)[None, :]
            logits = logits.masked_fill(j > i, -math.inf)
        best = torch.maximum(best, logits.amax(dim=(0, 3, 4)))
    return (best * s).reshape(num_heads)


@torch.no_grad()
def qk_clip_(spec: AttentionSpec, max_logits: Tensor, tau: float) -> Tensor:
    """Rescale, in place, the q/k rows of the heads of ``spec`` whose max logit exceeds τ.

    Returns:
        γ per head (1 where untouched).
    """
    S = max_logits.to(torch.float64).cpu()
    gamma = torch.where(S > tau, tau / S, torch.ones_like(S))
    d, group = spec.dim, spec.num_heads // spec.kv_heads
    for h in torch.nonzero(S > tau).flatten().tolist():
        g = gamma[h].item()
        q_factor = g if group > 1 else math.sqrt(g)
        _scale_features(spec, "q", spec.q_start(h), d, q_factor)
        if group == 1:
            _scale_features(spec, "k", spec.k_start(h), d, math.sqrt(g))
    return gamma


def _scale_features(spec: AttentionSpec, role: str, start: int, count: int, f: float) -> None:
    """Multiply output features ``start : start + count`` of the q (k) projection by ``f``:
    weight rows (columns of a Conv1D's (in, out) weight) and bias entries."""
    module = spec.q_proj if role == "q" else spec.k_module()
    if spec.layout == "mha":
        bias_start = start + (spec.num_heads * spec.dim if role == "k" else 0)
        if module._qkv_same_embed_dim:
            weight, bias_start = module.in_proj_weight, start
        else:
            weight = module.q_proj_weight if role == "q" else module.k_proj_weight
        scale_rows_(weight, start, count, f)
        if module.in_proj_bias is not None:
            scale_rows_(module.in_proj_bias, bias_start, count, f)
        return
    if is_conv1d(module):
        scale_rows_(module.weight.mT, start, count, f)  # a view: the (in, out) columns
    else:
        scale_rows_(module.weight, start, count, f)  # also on FSDP2-sharded weights
    bias = getattr(module, "bias", None)
    if isinstance(bias, Tensor):
        scale_rows_(bias, start, count, f)


def project(spec: AttentionSpec, role: str, x: Tensor) -> Tensor:
    """q (``role="q"``) or k of every head, ``(..., T, heads·d)``, from the input ``x`` of the
    projection, with the current weights (gathered if FSDP2-sharded)."""
    module = spec.q_proj if role == "q" else spec.k_module()
    if spec.layout == "mha":
        E, n = module.embed_dim, spec.num_heads * spec.dim
        if module._qkv_same_embed_dim:
            w = _full(module.in_proj_weight)[:E] if role == "q" else (
                _full(module.in_proj_weight)[E : 2 * E])  # fmt: skip
        else:
            w = _full(module.q_proj_weight if role == "q" else module.k_proj_weight)
        b = module.in_proj_bias
        b = None if b is None else _full(b)[:n] if role == "q" else _full(b)[E : E + n]
        return torch.nn.functional.linear(x, w, b)
    if is_conv1d(module):
        out = x @ _full(module.weight) + _full(module.bias)
    else:
        out = full_linear(module, x)
    if spec.layout == "fused_qkv":
        return out.index_select(-1, spec.feature_index(role).to(out.device))
    return out


def _full(t: Tensor) -> Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


class QKClip:
    """Tracks per-head max logits through forward hooks and applies :func:`qk_clip_`.

    Hooks record only while the projection module is in training mode. Several forwards
    before one :meth:`clip` (gradient accumulation) are maxed together.

    ``measure`` says which weights S_h is measured with:

    - ``"after_step"`` (default): the hooks keep the q/k projections' *inputs* of the last
      batch; :meth:`clip`, called after the optimizer step, recomputes q and k with the
      updated weights and takes S_h from them. Then every clipped head's max logit on that
      batch is exactly τ *for the weights the training continues with*, computed from the
      q/k inputs recorded in the forward pass: when the same step also updates layers below
      the attention, a new forward on that batch sees changed inputs and can come out slightly
      above τ (docs/benchmarks/muonclip.md). Costs the two projections and the logit max
      again, and holds the inputs until the step.
    - ``"forward"``: S_h from the forward pass itself (K2's description), with the weights
      *before* the step; the step's own update can then carry a clipped head above τ again
      (at a high learning rate, by tens of percent — see ``benchmarks/muonclip_demo.py``).

    Attributes:
        tau: τ.
        max_logits: per spec name, the running max since the last :meth:`clip` (``(H,)``).
        last_max_logits: per spec name, the maxima the last :meth:`clip` acted on — read
            these for logging.
    """

    def __init__(
        self, specs: Sequence[AttentionSpec], tau: float, *, measure: str = "after_step"
    ) -> None:
        self.tau = check_number("qk_clip_tau", tau, 0.0, low_open=True)
        self.measure = check_choice("qk_clip_measure", measure, MEASURES)
        self._active = True
        self._inputs: dict[tuple[str, str], list[Tensor]] = {}
        names = [s.name or f"attention{i}" for i, s in enumerate(specs)]
        if len(set(names)) != len(names):
            raise ValueError(f"attention spec names must be unique, got {names}")
        self.specs = dict(zip(names, specs))
        self.max_logits: dict[str, Tensor] = {}
        self.last_max_logits: dict[str, Tensor] = {}
        self._pending: dict[tuple[str, str], Tensor] = {}
        self._handles = []
        for name, spec in self.specs.items():
            if spec.layout == "mha":
                self._handles.append(spec.q_proj.register_forward_pre_hook(
                    self._mha_hook(name), with_kwargs=True))  # fmt: skip
            elif spec.layout == "fused_qkv":
                self._handles.append(spec.q_proj.register_forward_hook(self._fused_hook(name)))
            else:
                for role, m in (("q", spec.q_proj), ("k", spec.k_proj)):
                    self._handles.append(m.register_forward_hook(self._hook(name, role)))

    def _record(self, name: str, q: Tensor, k: Tensor) -> None:
        spec = self.specs[name]
        with torch.no_grad():
            S = head_max_logits(
                q.detach(), k.detach(), spec.num_heads, spec.kv_heads, scale=spec.scale,
                causal=spec.causal, rotary=spec.rotary,
            )  # fmt: skip
        old = self.max_logits.get(name)
        self.max_logits[name] = S if old is None else torch.maximum(old, S)

    def _hook(self, name: str, role: str) -> Callable[..., None]:
        other = "k" if role == "q" else "q"

        def hook(module: nn.Module, args: Any, out: Tensor) -> None:
            if not (module.training and self._active):
                return
            if self.measure == "after_step":
                self._inputs.setdefault((name, role), []).append(args[0].detach())
                return
            partner = self._pending.pop((name, other), None)
            if partner is None:
                self._pending[(name, role)] = out.detach()
            else:
                q, k = (out, partner) if role == "q" else (partner, out)
                self._record(name, q, k)

        return hook

    def _fused_hook(self, name: str) -> Callable[..., None]:
        spec = self.specs[name]

        def hook(module: nn.Module, args: Any, out: Tensor) -> None:
            if not (module.training and self._active):
                return
            if self.measure == "after_step":
                self._inputs.setdefault((name, "q"), []).append(args[0].detach())
            else:
                q_index = spec.feature_index("q").to(out.device)
                k_index = spec.feature_index("k").to(out.device)
                self._record(name, out.index_select(-1, q_index), out.index_select(-1, k_index))

        return hook

    def _mha_hook(self, name: str) -> Callable[..., None]:
        spec = self.specs[name]

        def hook(module: nn.Module, args: Any, kwargs: dict[str, Any]) -> None:
            if not (module.training and self._active):
                return
            query = args[0] if args else kwargs["query"]
            key = args[1] if len(args) > 1 else kwargs["key"]
            if not module.batch_first and query.ndim == 3:  # (T, B, E) → (B, T, E)
                query, key = query.transpose(0, 1), key.transpose(0, 1)
            query, key = query.detach(), key.detach()
            if self.measure == "after_step":
                self._inputs.setdefault((name, "q"), []).append(query)
                self._inputs.setdefault((name, "k"), []).append(key)
            else:
                with torch.no_grad():
                    self._record(name, project(spec, "q", query), project(spec, "k", key))

        return hook

    def clip(self, process_group: Any = None) -> dict[str, Tensor]:
        """Rescale the heads above τ; return γ per spec; reset the running maxima.

        ``process_group``: under data parallelism, the ranks whose maxima are combined (MAX)
        before the rescale — each rank saw its own batch (:func:`all_reduce_max_`).
        """
        if self.measure == "after_step":
            self._remeasure()
        all_reduce_max_(self.max_logits, process_group)
        gammas = {
            name: qk_clip_(self.specs[name], S, self.tau) for name, S in self.max_logits.items()
        }
        self.last_max_logits, self.max_logits = self.max_logits, {}
        self._pending.clear()
        self._inputs.clear()
        return gammas

    @torch.no_grad()
    def _remeasure(self) -> None:
        """S_h from the kept inputs, with the current (updated) weights."""
        self._active = False
        try:
            for name, spec in self.specs.items():
                xs_q = self._inputs.get((name, "q"), [])
                if spec.layout == "fused_qkv":
                    pairs = [(x, x) for x in xs_q]
                else:
                    pairs = list(zip(xs_q, self._inputs.get((name, "k"), [])))
                for xq, xk in pairs:
                    self._record(name, project(spec, "q", xq), project(spec, "k", xk))
        finally:
            self._active = True

    def remove(self) -> None:
        """Remove the forward hooks."""
        for h in self._handles:
            h.remove()
        self._handles.clear()


_HEADS = ("num_heads", "n_head", "n_heads", "num_attention_heads", "nhead", "heads")
_KV_HEADS = ("num_kv_heads", "num_key_value_heads", "n_kv_heads", "n_kv_head", "kv_heads")
_HEAD_DIMS = ("head_dim", "attention_head_size", "key_value_proj_dim", "d_head")


def _attribute(module: nn.Module, names: Sequence[str], kind: type) -> Any:
    """The first of ``names`` that ``module`` or its ``config`` holds as a ``kind``."""
    for owner in (module, getattr(module, "config", None)):
        for a in names:
            v = getattr(owner, a, None)
            if isinstance(v, kind) and not isinstance(v, bool):
                return v
    return None


# transformers' model types whose attention takes q·k without 1/√d (T5 folds it into the init)
_UNSCALED_MODEL_TYPES = ("t5", "mt5", "umt5", "longt5", "switch_transformers")


def _unscaled_logits(module: nn.Module) -> bool:
    config = getattr(module, "config", None)
    return getattr(config, "model_type", None) in _UNSCALED_MODEL_TYPES


def find_attention(
    model: nn.Module,
    *,
    num_heads: int | None = None,
    num_kv_heads: int | None = None,
    q_names: Sequence[str] = ("q_proj", "wq", "query", "q"),
    k_names: Sequence[str] = ("k_proj", "wk", "key", "k"),
    v_names: Sequence[str] = ("v_proj", "wv", "value", "v"),
    qkv_names: Sequence[str] = ("qkv_proj", "qkv", "Wqkv", "c_attn", "wqkv", "query_key_value"),
    causal: bool = True,
) -> list[AttentionSpec]:
    """Find attention layers: ``nn.MultiheadAttention`` modules, and modules with a q and a k
    projection child, or one fused qkv child (``nn.Linear`` or ``Conv1D``), by child name.

    Read from the attention module, else from its ``config`` (transformers): heads
    (``num_heads``/``n_head``/``num_attention_heads``/…), kv heads
    (``num_key_value_heads``/…), head_dim (``head_dim``/``attention_head_size``/…),
    the softmax scale (``scaling``, a float; 1 for T5-family models, whose logits are not
    scaled), and whether it is causal (``is_causal``, a bool;
    else ``causal``; ``nn.MultiheadAttention`` layers are measured non-causal, which can only
    over-estimate). The arguments ``num_heads``/``num_kv_heads`` override them. A fused
    ``query_key_value`` child is per-head interleaved (GPT-NeoX); the other fused names hold
    [q | k | v] blocks. Names are the attention modules' dotted names.

    Raises:
        ValueError: a layer was found but its head count is unknown.
    """
    specs = []
    for mod_name, module in model.named_modules():
        name = mod_name or "attn"
        if isinstance(module, nn.MultiheadAttention):
            specs.append(AttentionSpec(q_proj=module, layout="mha", causal=False, name=name,
                                       num_heads=num_heads or module.num_heads))  # fmt: skip
            continue
        children = dict(module.named_children())

        def child(names: Sequence[str], children=children) -> nn.Module | None:
            return next((children[n] for n in names if is_projection(children.get(n))), None)

        q, k, v, qkv = child(q_names), child(k_names), child(v_names), child(qkv_names)
        if not ((q is not None and k is not None) or qkv is not None):
            continue
        heads = num_heads or _attribute(module, _HEADS, int)
        if heads is None:
            raise ValueError(f"attention module {mod_name!r}: pass num_heads (no attribute "
                             f"among {_HEADS} on the module or its config)")  # fmt: skip
        kv = num_kv_heads or _attribute(module, _KV_HEADS, int)
        head_dim = _attribute(module, _HEAD_DIMS, int)
        scaling = _attribute(module, ("scaling",), float)
        if scaling is None and _unscaled_logits(module):
            scaling = 1.0
        is_causal = getattr(module, "is_causal", None)
        common = dict(
            num_heads=heads, num_kv_heads=kv, name=name, softmax_scale=scaling,
            causal=is_causal if isinstance(is_causal, bool) else causal,
        )  # fmt: skip
        if q is not None and k is not None:
            fits = head_dim is not None and _out_features(q) == heads * head_dim
            specs.append(
                AttentionSpec(
                    q_proj=q, k_proj=k, v_proj=v, head_dim=head_dim if fits else None, **common
                )
            )
        else:
            order = "per_head" if qkv is children.get("query_key_value") else "blocks"
            rows = (heads + 2 * (kv or heads)) * (head_dim or 0)
            fits = head_dim is not None and _out_features(qkv) == rows
            specs.append(
                AttentionSpec(
                    q_proj=qkv,
                    layout="fused_qkv",
                    qkv_order=order,
                    head_dim=head_dim if fits else None,
                    **common,
                )
            )
    return specs
