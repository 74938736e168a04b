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
projections (``nn.Linear``) read their outputs; S_h is computed from them by query chunks,
never holding the full T×T logit matrix. The projections must output ``(..., T, heads·d)``
with heads contiguous (the usual ``view(B, T, H, d)`` layout); a fused qkv projection is
declared with ``layout="fused_qkv"`` (rows [all q heads | all k heads | all v heads]).

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

__all__ = ["AttentionSpec", "QKClip", "find_attention", "head_max_logits", "qk_clip_"]

LAYOUTS = ("separate", "fused_qkv")
MEASURES = ("after_step", "forward")


@dataclass(frozen=True, kw_only=True)
class AttentionSpec:
    """Where one attention layer's queries and keys come from.

    Attributes:
        q_proj: the query projection (``nn.Linear``), or the fused qkv projection.
        k_proj: the key projection; None with ``layout="fused_qkv"``.
        num_heads: query heads H ≥ 1.
        num_kv_heads: key/value heads (GQA/MQA), dividing H; None = H.
        head_dim: d; None = q rows / H.
        layout: ``"separate"`` or ``"fused_qkv"``.
        causal: logits with key j > query i are masked and not counted (default True).
        softmax_scale: s; None = 1/√d.
        rotary: optional ``fn(q, k) -> (q, k)`` applied before the logits (RoPE).
        name: label for logging (default: assigned by :class:`QKClip`).
    """

    q_proj: nn.Module
    k_proj: nn.Module | None = None
    num_heads: int
    num_kv_heads: int | None = None
    head_dim: int | None = None
    layout: str = "separate"
    causal: bool = True
    softmax_scale: float | None = None
    rotary: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = field(
        default=None, repr=False
    )
    name: str = ""

    def __post_init__(self) -> None:
        check_choice("layout", self.layout, LAYOUTS)
        check_int("num_heads", self.num_heads, 1)
        kv = check_int("num_kv_heads", self.kv_heads, 1, self.num_heads)
        if self.num_heads % kv:
            raise ValueError(f"num_kv_heads ({kv}) must divide num_heads ({self.num_heads})")
        if (self.layout == "separate") != (self.k_proj is not None):
            raise ValueError("k_proj is required with layout='separate' and must be None with "
                             "layout='fused_qkv'")  # fmt: skip
        for label, m in (("q_proj", self.q_proj), ("k_proj", self.k_proj)):
            if m is not None and not isinstance(getattr(m, "weight", None), Tensor):
                raise ValueError(f"{label} must be a module with a weight (an nn.Linear)")
        rows = self.q_proj.weight.shape[0]
        need = (self.num_heads + (2 * kv if self.layout == "fused_qkv" else 0)) * self.dim
        if rows != need:
            raise ValueError(f"q_proj has {rows} output rows; {self.layout} with num_heads="
                             f"{self.num_heads}, num_kv_heads={kv}, head_dim={self.dim} needs "
                             f"{need}")  # fmt: skip
        if self.k_proj is not None and self.k_proj.weight.shape[0] != kv * self.dim:
            raise ValueError(f"k_proj has {self.k_proj.weight.shape[0]} output rows; "
                             f"num_kv_heads * head_dim = {kv * self.dim}")  # fmt: skip

    @property
    def kv_heads(self) -> int:
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

    @property
    def dim(self) -> int:
        if self.head_dim is not None:
            return self.head_dim
        rows = self.q_proj.weight.shape[0]
        if self.layout == "fused_qkv":  # H·d + 2·Hkv·d rows
            return rows // (self.num_heads + 2 * self.kv_heads)
        return rows // self.num_heads

    @property
    def scale(self) -> float:
        return 1 / math.sqrt(self.dim) if self.softmax_scale is None else self.softmax_scale

    def rows(self) -> tuple[nn.Module, int, nn.Module, int]:
        """(module, first row) of the q heads and of the k heads."""
        if self.layout == "fused_qkv":
            return self.q_proj, 0, self.q_proj, self.num_heads * self.dim
        return self.q_proj, 0, self.k_proj, 0  # type: ignore[return-value]


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
        k: ``(..., T, Hkv·d)`` key projections.
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
    T = q.shape[-2]
    d = q.shape[-1] // num_heads
    s = 1 / math.sqrt(d) if scale is None else scale
    q = q.reshape(-1, T, num_heads, d).transpose(1, 2)  # (B, H, T, d)
    k = k.reshape(-1, T, kv, d).transpose(1, 2)  # (B, Hkv, T, d)
    if rotary is not None:
        q, k = rotary(q, k)
    B, group = q.shape[0], num_heads // kv
    q = q.reshape(B, kv, group, T, d)
    kt = k.mT.unsqueeze(2)  # (B, Hkv, 1, d, T)
    best = torch.full((kv, group), -math.inf, dtype=torch.float32, device=q.device)
    chunk = max(1, chunk_elements // max(1, B * num_heads * T))
    for i0 in range(0, T, chunk):
        i1 = min(T, i0 + chunk)
        keys = i1 if causal else T
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
    q_mod, q0, k_mod, k0 = spec.rows()
    for h in torch.nonzero(S > tau).flatten().tolist():
        g = gamma[h].item()
        q_factor = g if group > 1 else math.sqrt(g)
        _scale_rows(q_mod, q0 + h * d, d, q_factor)
        if group == 1:
            _scale_rows(k_mod, k0 + h * d, d, math.sqrt(g))
    return gamma


def _scale_rows(module: nn.Module, start: int, count: int, factor: float) -> None:
    scale_rows_(module.weight, start, count, factor)  # also on FSDP2-sharded weights
    bias = getattr(module, "bias", None)
    if isinstance(bias, Tensor):
        scale_rows_(bias, start, count, factor)


class QKClip:
    """Tracks per-head max logits through forward hooks and applies :func:`qk_clip_`.

    Hooks record only while the projection module is in training mode. Several forwards
    before one :meth:`clip` (gradient accumulation) are maxed together.

    ``measure`` says which weights S_h is measured with:

    - ``"after_step"`` (default): the hooks keep the q/k projections' *inputs* of the last
      batch; :meth:`clip`, called after the optimizer step, recomputes q and k with the
      updated weights and takes S_h from them. Then every clipped head's max logit on that
      batch is exactly τ *for the weights the training continues with*. Costs the two
      projections and the logit max again, and holds the inputs until the step.
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
            if spec.layout == "fused_qkv":
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
        nq, nk = spec.num_heads * spec.dim, spec.kv_heads * spec.dim

        def hook(module: nn.Module, args: Any, out: Tensor) -> None:
            if not (module.training and self._active):
                return
            if self.measure == "after_step":
                self._inputs.setdefault((name, "q"), []).append(args[0].detach())
            else:
                self._record(name, out[..., :nq], out[..., nq : nq + nk])

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
                    nq, nk = spec.num_heads * spec.dim, spec.kv_heads * spec.dim
                    for x in xs_q:
                        out = full_linear(spec.q_proj, x)
                        self._record(name, out[..., :nq], out[..., nq : nq + nk])
                else:
                    for xq, xk in zip(xs_q, self._inputs.get((name, "k"), [])):
                        q, k = full_linear(spec.q_proj, xq), full_linear(spec.k_proj, xk)
                        self._record(name, q, k)
        finally:
            self._active = True

    def remove(self) -> None:
        """Remove the forward hooks."""
        for h in self._handles:
            h.remove()
        self._handles.clear()


_HEADS = ("num_heads", "n_head", "n_heads", "num_attention_heads", "nhead", "heads")
_KV_HEADS = ("num_kv_heads", "num_key_value_heads", "n_kv_heads", "n_kv_head", "kv_heads")


def find_attention(
    model: nn.Module,
    *,
    num_heads: int | None = None,
    num_kv_heads: int | None = None,
    q_names: Sequence[str] = ("q_proj", "wq", "query", "q"),
    k_names: Sequence[str] = ("k_proj", "wk", "key", "k"),
    qkv_names: Sequence[str] = ("qkv_proj", "qkv", "Wqkv", "c_attn", "wqkv"),
    causal: bool = True,
) -> list[AttentionSpec]:
    """Find attention layers by child names: a q and a k ``nn.Linear``, or one fused qkv.

    Head counts come from the arguments, else from the attention module's attributes
    (``num_heads``/``n_head``/…, ``num_kv_heads``/``num_key_value_heads``/…). Names are the
    attention modules' dotted names. ``nn.MultiheadAttention`` keeps its projections in a
    parameter, not a Linear, and is not supported.

    Raises:
        ValueError: a layer was found but its head count is unknown.
    """
    specs = []
    for mod_name, module in model.named_modules():
        children = dict(module.named_children())
        q = next((children[n] for n in q_names if isinstance(children.get(n), nn.Linear)), None)
        k = next((children[n] for n in k_names if isinstance(children.get(n), nn.Linear)), None)
        qkv = next((children[n] for n in qkv_names if isinstance(children.get(n), nn.Linear)), None)
        if not ((q is not None and k is not None) or qkv is not None):
            continue
        heads = num_heads or next((getattr(module, a) for a in _HEADS if hasattr(module, a)), None)
        if not isinstance(heads, int):
            raise ValueError(f"attention module {mod_name!r}: pass num_heads (no attribute "
                             f"among {_HEADS})")  # fmt: skip
        kv = num_kv_heads or next(
            (getattr(module, a) for a in _KV_HEADS if isinstance(getattr(module, a, None), int)),
            None,
        )
        common = dict(num_heads=heads, num_kv_heads=kv, causal=causal, name=mod_name or "attn")
        if q is not None and k is not None:
            specs.append(AttentionSpec(q_proj=q, k_proj=k, **common))
        else:
            specs.append(AttentionSpec(q_proj=qkv, layout="fused_qkv", **common))
    return specs
