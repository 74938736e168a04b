"""SGD with momentum (heavy ball or Nesterov), dampening and L2 weight decay.

Symbols (the lecture's notation): θ parameters, g gradient, b momentum buffer
(``momentum_buffer``), γ = ``lr``, α = ``momentum``, τ = ``dampening``, w = ``weight_decay``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from .._checks import check_number
from ._base import (
    OptkitOptimizer,
    cpu_blocks,
    fused_supported,
    group_by_device_dtype,
    penalized_grads,
)

__all__ = ["SGD", "sgd_update"]

# torch 2.13's CPU kernel of _fused_sgd_ returns wrong values for float16/bfloat16 (errors of
# order 0.4 after one step of lr 0.1, with or without momentum; float32/float64 are exact), so
# the automatic choice uses it on CPU only for these dtypes.
_CPU_FUSED_SGD_DTYPES = frozenset({torch.float32, torch.float64})


class SGDTensors(NamedTuple):
    params: list[Tensor]
    grads: list[Tensor]
    momentum_buffers: list[Tensor | None]  # None until a parameter's first step


def sgd_update(
    tensors: SGDTensors,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool = False,
    fused: bool | None = None,
) -> list[Tensor | None]:
    """The SGD update, in place, over lists of tensors (see :class:`SGD` for the math).

    Returns the momentum buffers (new ones created on a parameter's first step; the caller
    stores them). ``fused``: None picks torch's fused kernel when every tensor supports it, True
    requires it, False uses the foreach path.
    """
    params, grads, buffers = tensors
    if not params:
        return list(buffers)
    buffers = list(buffers)
    use_fused = fused_supported(params, _CPU_FUSED_SGD_DTYPES) if fused is None else fused
    # A parameter's first momentum step copies g into b; the rest blend. Keep the two apart so
    # each call sees one kind (torch's fused SGD assumes all-first or none-first).
    first = [i for i, b in enumerate(buffers) if b is None] if momentum != 0 else []
    later = [i for i, b in enumerate(buffers) if b is not None] if momentum != 0 else []
    if momentum == 0:
        parts = [(list(range(len(params))), False)]
    else:
        parts = [(idx, is_first) for idx, is_first in ((first, True), (later, False)) if idx]
    for idx, is_first in parts:
        if is_first:
            for i in idx:
                buffers[i] = torch.empty_like(grads[i])
        sub = [
            [params[i] for i in idx],
            [grads[i] for i in idx],
            [buffers[i] for i in idx] if momentum != 0 else [],
        ]
        for p, g, b in group_by_device_dtype(sub):
            args = dict(
                weight_decay=weight_decay, momentum=momentum, lr=lr, dampening=dampening,
                nesterov=nesterov, maximize=maximize, is_first_step=is_first,
            )  # fmt: skip
            if use_fused:
                torch._fused_sgd_(p, g, b, **args)
            else:
                for block in cpu_blocks([p, g, b]):
                    _sgd_block(*block, **args)
    return buffers


def _sgd_block(
    params, grads, buffers, *, weight_decay, momentum, lr, dampening, nesterov, maximize,
    is_first_step,
) -> None:  # fmt: skip
    grads = penalized_grads(params, grads, weight_decay, maximize)
    if momentum != 0:
        if is_first_step:
            torch._foreach_copy_(buffers, grads)
        else:
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, grads, alpha=1 - dampening)
        if nesterov:
            torch._foreach_add_(params, grads, alpha=-lr)
            torch._foreach_add_(params, buffers, alpha=-lr * momentum)
            return
        grads = buffers
    torch._foreach_add_(params, grads, alpha=-lr)


class SGD(OptkitOptimizer):
    r"""Stochastic gradient descent, with the lecture's momentum as an option.

    Plain SGD steps against the gradient. With ``momentum`` α > 0 it keeps a buffer b — the
    lecture's velocity v_t = α·v_{t−1} − γ·g written for the gradient side: θ_{t+1} =
    θ_t − γ·Σ α^i g_{t−i}, an EWMA-like memory that accelerates along consistent directions and
    damps oscillation. Same names, defaults and update as ``torch.optim.SGD`` (drop-in; equal
    in float64). The lecture's form and this one give the same iterates when τ = 0 (v = −γ·b).

    Symbols: γ = ``lr``, α = ``momentum``, τ = ``dampening``, w = ``weight_decay``.

    .. code-block:: text

        g_t = ∇J(θ_{t-1}) + w·θ_{t-1}           (−∇J when maximize)
        b_t = g_t                                 (first step)
        b_t = α·b_{t-1} + (1 − τ)·g_t             (later steps)
        d_t = g_t + α·b_t                         (nesterov)   or   d_t = b_t   (heavy ball)
        θ_t = θ_{t-1} − γ·d_t                     (d_t = g_t when α = 0)

    Args:
        params: parameters or param-group dicts.
        lr: γ ≥ 0 (default 1e-3).
        momentum: α ≥ 0 (default 0).
        dampening: τ ≥ 0 (default 0).
        weight_decay: w ≥ 0, an L2 term in the gradient (default 0).
        nesterov: Nesterov momentum; needs α > 0 and τ = 0 (default False).
        maximize: ascend instead of descend (default False).
        fused: None (default) runs torch's fused kernel when every parameter supports it
            (on CPU only for float32/float64: torch 2.13's CPU kernel miscomputes float16 and
            bfloat16), False forces the foreach path, True forces the fused kernel.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([4.0]))
        >>> opt = SGD([w], lr=0.1, momentum=0.9)
        >>> for _ in range(200):
        ...     opt.zero_grad()
        ...     (w ** 2).sum().backward()
        ...     _ = opt.step()
        >>> bool(w.abs() < 1e-3)
        True

    References:
        Polyak, "Some methods of speeding up the convergence of iteration methods", 1964;
        Sutskever et al., "On the importance of initialization and momentum", ICML 2013.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=bool(nesterov), maximize=bool(maximize), fused=fused,
        )  # fmt: skip
        super().__init__(params, defaults)

    _LATER_KEYS: ClassVar[dict[str, Any]] = {"nesterov": False, "maximize": False, "fused": None}

    def _check_group(self, group: dict[str, Any]) -> None:
        _check_sgd(group)

    def _step_group(self, group: dict[str, Any]) -> None:
        params, grads = self._params_with_grad(group)
        with_momentum = group["momentum"] != 0
        buffers = [self.state[p].get("momentum_buffer") for p in params] if with_momentum else []
        buffers = sgd_update(
            SGDTensors(params, grads, buffers),
            lr=group["lr"], momentum=group["momentum"], dampening=group["dampening"],
            weight_decay=group["weight_decay"], nesterov=group["nesterov"],
            maximize=group["maximize"], fused=group["fused"],
        )  # fmt: skip
        if with_momentum:
            for p, b in zip(params, buffers, strict=True):
                self.state[p]["momentum_buffer"] = b


def _check_sgd(group: dict[str, Any]) -> None:
    check_number("lr", group["lr"], 0.0)
    check_number("momentum", group["momentum"], 0.0)
    check_number("dampening", group["dampening"], 0.0)
    check_number("weight_decay", group["weight_decay"], 0.0)
    if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
        raise ValueError(
            "nesterov=True requires momentum > 0 and dampening = 0, got "
            f"momentum={group['momentum']!r}, dampening={group['dampening']!r}"
        )
    if group.get("fused") not in (None, True, False):
        raise ValueError(f"fused must be None, True or False, got {group['fused']!r}")
